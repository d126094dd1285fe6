// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Device I/O layer: opens a block device (NVMe namespace or any other) or
 * an image file with O_DIRECT and moves data through io_uring, plus the
 * probing helpers mkfs and fsck need before they touch a device.
 *
 * Threading rules
 * ---------------
 * A struct dmafs_dev is shared by any number of threads.  Every thread
 * owns one io_uring (depth DEV_RING_DEPTH) that serves all devices: a ring
 * is not tied to an fd, and a call waits for all of its completions before
 * it returns, so a ring is always empty between calls and never needs a
 * lock on the submission path.  The ring is created on the thread's first
 * I/O and reached through the __thread pointer dev_tls_ring.
 *
 * Every ring is also on a process-wide list under dev_rings_lock, taken
 * only when a ring is created or destroyed, so that it can be torn down
 * from two places:
 *
 *  - at thread exit, by the GPrivate destroy notify of the owning thread
 *    (which still sees its own __thread variables at that point);
 *  - by the dmafs_dev_close() of the last open device, which frees every
 *    thread's ring and clears each owner's dev_tls_ring through the pointer
 *    kept in the list.  This is safe without the owners' cooperation: once
 *    no device is open no thread can be inside a dmafs_dev call, and any
 *    later call needs a device from dmafs_dev_open(), which takes the same
 *    lock, so the cleared pointer is seen and a fresh ring is made.
 *
 * Closing a device that is not the last one leaves the rings alone, since
 * their threads may be using another device at that moment.  Closing a
 * device while another thread still has I/O in flight on it is a caller
 * bug, as for any fd.
 *
 * fork(): the child drops every inherited ring (a pthread_atfork handler)
 * and makes its own on first use.  The parent's rings were set up
 * single-issuer, so the child could not submit to them (fuse_daemonize()
 * forks after the daemon has already read the device).
 *
 * Conventions: calls return 0 or a negative errno.  Requests that break the
 * alignment or range contract of dev.h fail with -EINVAL (checked in every
 * build: it is cheap and user input may reach it), writes and discards on
 * a read-only device with -EROFS.
 */
#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "dmafs-dev"
#endif

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fs.h>

#include <blkid/blkid.h>
#include <glib.h>
#include <liburing.h>
#include <nvme/ioctl.h>
#include <nvme/types.h>

#include "dmafs/format.h"
#include "dev.h"

#define DEV_RING_DEPTH		64u
/*
 * The kernel caps one read or write at MAX_RW_COUNT (INT_MAX rounded down
 * to a page): anything longer always comes back short, so refuse it.
 */
#define DEV_MAX_IO_LEN		0x7ffff000u
/* A CQE of -EAGAIN is transient (no memory for a request): resubmit. */
#define DEV_MAX_EAGAIN		16u
/* MPSMIN is in CAP, which only fabrics expose through libnvme; 4 KiB is the
 * minimum page size the spec allows and what PCIe controllers report. */
#define DEV_NVME_MPSMIN		4096u

struct dmafs_dev {
	int fd;
	bool rdonly;
	struct dmafs_dev_info info;
	/* power-cut simulation: see dev_trace() */
	int trace_fd;
	pthread_mutex_t trace_lock;
};

/*
 * Test hook for the power-cut simulator (tests/crashsim.py): with
 * DMAFS_DEV_TRACE=PATH in the environment, every write is appended to PATH
 * when it completes, and every flush when it completes, before the caller
 * learns of the completion.  A crash image is then any state the device
 * may be in after a power cut: everything before the last flush, FUA
 * writes, and any torn subset of the writes since.
 */
struct dev_trace_rec {
	uint32_t magic;		/* DEV_TRACE_MAGIC */
	uint32_t type;		/* DEV_TRACE_* */
	uint64_t off;		/* bytes */
	uint64_t len;		/* bytes of data following the record */
};

#define DEV_TRACE_MAGIC		0x43525444u	/* "DTRC" */
#define DEV_TRACE_WRITE		1
#define DEV_TRACE_FUA		2
#define DEV_TRACE_FLUSH		3

static void dev_trace(struct dmafs_dev *dev, uint32_t type, uint64_t off,
		      const void *buf, uint64_t len)
{
	struct dev_trace_rec rec = { DEV_TRACE_MAGIC, type, off, len };
	struct iovec iov[2] = { { &rec, sizeof(rec) }, { (void *)buf, len } };

	if (dev->trace_fd < 0)
		return;
	pthread_mutex_lock(&dev->trace_lock);
	if (writev(dev->trace_fd, iov, len ? 2 : 1) !=
	    (ssize_t)(sizeof(rec) + len))
		g_warning("%s: device trace write failed", dev->info.path);
	pthread_mutex_unlock(&dev->trace_lock);
}

struct dev_ring {
	struct io_uring ring;
	struct dev_ring **owner;	/* the owning thread's dev_tls_ring */
	struct dev_ring *prev, *next;	/* on dev_rings, under the lock */
};

static void dev_ring_thread_exit(gpointer unused);

static __thread struct dev_ring *dev_tls_ring;
static GPrivate dev_ring_key = G_PRIVATE_INIT(dev_ring_thread_exit);
/* pthread rather than GMutex: ThreadSanitizer sees through it. */
static pthread_mutex_t dev_rings_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dev_ring *dev_rings;		/* under dev_rings_lock */
static unsigned int dev_open_count;		/* under dev_rings_lock */
static gint dev_warned_buffered;

/* ---- per-thread rings ------------------------------------------------ */

static void dev_ring_unlink(struct dev_ring *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		dev_rings = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void dev_ring_free(struct dev_ring *r)
{
	io_uring_queue_exit(&r->ring);
	free(r);
}

static void dev_atfork_prepare(void)
{
	pthread_mutex_lock(&dev_rings_lock);
}

static void dev_atfork_parent(void)
{
	pthread_mutex_unlock(&dev_rings_lock);
}

/* Only the forking thread lives on: its pointer is the one to clear. */
static void dev_atfork_child(void)
{
	struct dev_ring *rings = dev_rings, *r;

	dev_rings = NULL;
	dev_tls_ring = NULL;
	pthread_mutex_unlock(&dev_rings_lock);
	while (rings) {
		r = rings;
		rings = r->next;
		dev_ring_free(r);
	}
}

static void dev_atfork_register(void)
{
	pthread_atfork(dev_atfork_prepare, dev_atfork_parent,
		       dev_atfork_child);
}

static void dev_ring_thread_exit(gpointer unused)
{
	struct dev_ring *r;

	pthread_mutex_lock(&dev_rings_lock);
	r = dev_tls_ring;
	if (r) {
		dev_ring_unlink(r);
		dev_tls_ring = NULL;
	}
	pthread_mutex_unlock(&dev_rings_lock);
	if (r)
		dev_ring_free(r);
}

/* Drop this thread's ring after an unrecoverable ring error. */
static void dev_ring_discard(struct dev_ring *r)
{
	pthread_mutex_lock(&dev_rings_lock);
	dev_ring_unlink(r);
	dev_tls_ring = NULL;
	pthread_mutex_unlock(&dev_rings_lock);
	dev_ring_free(r);
}

static int dev_ring_get(struct dev_ring **out)
{
	static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
	struct dev_ring *r = dev_tls_ring;
	int ret;

	if (G_LIKELY(r)) {
		*out = r;
		return 0;
	}
	pthread_once(&atfork_once, dev_atfork_register);
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	/*
	 * Only this thread ever submits to the ring and it always waits for
	 * its own completions, which is exactly what these flags promise
	 * the kernel (6.1+); older kernels refuse them with -EINVAL.
	 */
	ret = io_uring_queue_init(DEV_RING_DEPTH, &r->ring,
				  IORING_SETUP_SINGLE_ISSUER |
				  IORING_SETUP_DEFER_TASKRUN);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(DEV_RING_DEPTH, &r->ring, 0);
	if (ret < 0) {
		g_debug("io_uring_queue_init: %s", g_strerror(-ret));
		free(r);
		return ret;
	}

	pthread_mutex_lock(&dev_rings_lock);
	r->owner = &dev_tls_ring;
	r->next = dev_rings;
	if (dev_rings)
		dev_rings->prev = r;
	dev_rings = r;
	dev_tls_ring = r;
	pthread_mutex_unlock(&dev_rings_lock);
	/* Any non-NULL value: it only arms the thread-exit notify. */
	g_private_set(&dev_ring_key, GINT_TO_POINTER(1));
	*out = r;
	return 0;
}

/* Submit what is queued and wait for at least one completion. */
static int dev_ring_wait(struct dev_ring *r)
{
	int ret;

	do {
		ret = io_uring_submit_and_wait(&r->ring, 1);
	} while (ret == -EINTR || ret == -EAGAIN);
	/* -EBUSY: a CQ backlog, which the caller's reaping clears. */
	return ret < 0 && ret != -EBUSY ? ret : 0;
}

/* ---- open / close ---------------------------------------------------- */

/* Copy a space-padded identify string and drop the padding. */
static void dev_copy_trimmed(char *dst, size_t dstlen, const char *src,
			     size_t srclen)
{
	size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;

	memcpy(dst, src, n);
	dst[n] = '\0';
	while (n && (dst[n - 1] == ' ' || dst[n - 1] == '\0'))
		dst[--n] = '\0';
}

/* realpath of the device's sysfs directory, NULL if there is none. */
static char *dev_sysfs_dir(dev_t rdev)
{
	char link[64];

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(rdev),
		 minor(rdev));
	return realpath(link, NULL);
}

static bool dev_sysfs_exists(const char *dir, const char *name)
{
	g_autofree char *p = g_build_filename(dir, name, NULL);

	return access(p, F_OK) == 0;
}

/*
 * A whole NVMe namespace: nvmeXnY by name, or its device link leads to an
 * nvme controller or subsystem.  Partitions are left out: identify would
 * describe the whole namespace, not the partition.
 */
static bool dev_is_nvme_ns(dev_t rdev)
{
	g_autofree char *sys = dev_sysfs_dir(rdev);
	g_autofree char *devlink = NULL;
	g_autofree char *target = NULL;
	const char *name;
	unsigned int ctrl, ns;
	int end = 0;

	if (!sys || dev_sysfs_exists(sys, "partition"))
		return false;
	name = strrchr(sys, '/') + 1;
	if (sscanf(name, "nvme%un%u%n", &ctrl, &ns, &end) == 2 && !name[end])
		return true;
	devlink = g_build_filename(sys, "device", NULL);
	target = realpath(devlink, NULL);
	return target && strstr(target, "/nvme");
}

/* Identify failures are not fatal: the device is then just a block device. */
static void dev_nvme_identify(struct dmafs_dev *dev)
{
	struct dmafs_dev_info *info = &dev->info;
	struct nvme_id_ctrl *ctrl;
	struct nvme_id_ns *ns;
	unsigned int lbaf;
	__u32 nsid;
	int ret;

	ctrl = dmafs_dev_alloc_buf(sizeof(*ctrl));
	ns = dmafs_dev_alloc_buf(sizeof(*ns));
	if (!ctrl || !ns) {
		g_debug("%s: no memory for NVMe identify", info->path);
		goto out_free;
	}
	if (nvme_get_nsid(dev->fd, &nsid) < 0) {
		g_debug("%s: NVMe get nsid: %s", info->path,
			g_strerror(errno));
		goto out_free;
	}
	/* Status > 0 is an NVMe status code, < 0 an errno in errno. */
	ret = nvme_identify_ctrl(dev->fd, ctrl);
	if (ret) {
		g_debug("%s: NVMe identify controller: %s", info->path,
			ret < 0 ? g_strerror(errno) : "command failed");
		goto out_free;
	}
	ret = nvme_identify_ns(dev->fd, nsid, ns);
	if (ret) {
		g_debug("%s: NVMe identify namespace %u: %s", info->path,
			nsid, ret < 0 ? g_strerror(errno) : "command failed");
		goto out_free;
	}

	info->is_nvme = true;
	dev_copy_trimmed(info->model, sizeof(info->model), ctrl->mn,
			 sizeof(ctrl->mn));
	dev_copy_trimmed(info->serial, sizeof(info->serial), ctrl->sn,
			 sizeof(ctrl->sn));
	dev_copy_trimmed(info->firmware, sizeof(info->firmware), ctrl->fr,
			 sizeof(ctrl->fr));
	info->nsid = nsid;
	info->nsze = le64toh(ns->nsze);
	info->vwc = ctrl->vwc & NVME_CTRL_VWC_PRESENT;
	/* Beyond 4 GiB the limit does not fit and is no limit in practice. */
	if (ctrl->mdts && ctrl->mdts < 20)
		info->max_transfer = (1u << ctrl->mdts) * DEV_NVME_MPSMIN;

	/*
	 * FLBAS bits 3:0 are the low bits of the format index; bits 6:5
	 * are its bits 5:4, meaningful only with more than 16 formats
	 * (NLBAF is 0's based).
	 */
	lbaf = ns->flbas & NVME_NS_FLBAS_LOWER_MASK;
	if (ns->nlbaf >= 16)
		lbaf |= (ns->flbas & NVME_NS_FLBAS_HIGHER_MASK) >> 1;
	info->lbaf_index = lbaf;
	if (lbaf <= ns->nlbaf && lbaf < G_N_ELEMENTS(ns->lbaf)) {
		info->lbaf_ms = le16toh(ns->lbaf[lbaf].ms);
		if (ns->lbaf[lbaf].ds < 32 &&
		    (1u << ns->lbaf[lbaf].ds) != info->lba_size)
			g_debug("%s: LBA format %u has %u-byte blocks, kernel says %u",
				info->path, lbaf, 1u << ns->lbaf[lbaf].ds,
				info->lba_size);
	} else {
		g_debug("%s: in-use LBA format %u beyond NLBAF %u",
			info->path, lbaf, ns->nlbaf);
	}

out_free:
	free(ns);
	free(ctrl);
}

static int dev_probe_blockdev(struct dmafs_dev *dev, const struct stat *st)
{
	struct dmafs_dev_info *info = &dev->info;
	uint64_t size;
	int lba;

	if (ioctl(dev->fd, BLKGETSIZE64, &size) < 0)
		return -errno;
	if (ioctl(dev->fd, BLKSSZGET, &lba) < 0)
		return -errno;
	if (lba < 512 || (lba & (lba - 1)))
		return -EINVAL;
	info->size = size;
	info->lba_size = lba;
	info->is_blockdev = true;
	if (dev_is_nvme_ns(st->st_rdev))
		dev_nvme_identify(dev);
	return 0;
}

static void dev_probe_file(struct dmafs_dev *dev, const struct stat *st)
{
	struct dmafs_dev_info *info = &dev->info;

	info->lba_size = 512;
#ifdef STATX_DIOALIGN
	/*
	 * O_DIRECT on a file needs the alignment of the filesystem's own
	 * device (4096 on a 4Kn disk); the kernel tells since 6.1.
	 */
	if (info->direct) {
		struct statx stx;

		if (statx(dev->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN,
			  &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
		    stx.stx_dio_offset_align > info->lba_size &&
		    !(stx.stx_dio_offset_align &
		      (stx.stx_dio_offset_align - 1)))
			info->lba_size = stx.stx_dio_offset_align;
	}
#endif
	/* A partial last block cannot be reached with aligned I/O. */
	info->size = (uint64_t)st->st_size & ~(uint64_t)(info->lba_size - 1);
}

/* Once per process: a test setup on tmpfs would otherwise repeat it. */
static void dev_warn_buffered(const char *path)
{
	if (g_atomic_int_compare_and_exchange(&dev_warned_buffered, 0, 1))
		g_warning("%s: O_DIRECT not supported, using buffered I/O",
			  path);
	else
		g_debug("%s: O_DIRECT not supported, using buffered I/O", path);
}

int dmafs_dev_open(const char *path, unsigned int flags, struct dmafs_dev **out)
{
	struct dmafs_dev *dev;
	struct stat st, fst;
	int oflags, fl, ret;

	if (!path || !out || (flags & ~(DMAFS_DEV_RDONLY | DMAFS_DEV_EXCL)))
		return -EINVAL;
	*out = NULL;
	if (strlen(path) >= sizeof(dev->info.path))
		return -ENAMETOOLONG;
	/*
	 * Look before opening: opening a FIFO or a tape has side effects
	 * or blocks.  fstat below catches a path swapped in between.
	 */
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return -ENOTBLK;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	g_strlcpy(dev->info.path, path, sizeof(dev->info.path));
	dev->rdonly = flags & DMAFS_DEV_RDONLY;

	oflags = (dev->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY |
		 O_NONBLOCK;
	/* O_EXCL on a block device claims it: the kernel refuses if mounted. */
	if (S_ISBLK(st.st_mode) && (flags & DMAFS_DEV_EXCL))
		oflags |= O_EXCL;
	dev->info.direct = true;
	dev->fd = open(path, oflags | O_DIRECT);
	/* As for the flock below: a holder that just died lets go soon. */
	for (int tries = 0; dev->fd < 0 && errno == EBUSY &&
			    (oflags & O_EXCL) && tries < 40; tries++) {
		g_usleep(50000);
		dev->fd = open(path, oflags | O_DIRECT);
	}
	if (dev->fd < 0 && errno == EINVAL) {
		dev->info.direct = false;
		dev->fd = open(path, oflags);
		if (dev->fd >= 0)
			dev_warn_buffered(path);
	}
	if (dev->fd < 0) {
		ret = -errno;
		goto out_free_dev;
	}

	if (fstat(dev->fd, &fst) < 0) {
		ret = -errno;
		goto out_close_fd;
	}
	if ((fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
		ret = -ENOTBLK;
		goto out_close_fd;
	}
	/* O_NONBLOCK only guarded the open; io_uring would honour it. */
	fl = fcntl(dev->fd, F_GETFL);
	if (fl < 0 || fcntl(dev->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		ret = -errno;
		goto out_close_fd;
	}

	if (S_ISREG(fst.st_mode) && (flags & DMAFS_DEV_EXCL)) {
		/*
		 * A holder killed a moment ago may still own the lock: the
		 * kernel tears down its io_uring asynchronously, and requests
		 * in flight keep the file open until then.  Give it 2 s.
		 */
		for (int tries = 0;; tries++) {
			if (!flock(dev->fd, LOCK_EX | LOCK_NB))
				break;
			if (errno != EWOULDBLOCK || tries == 40) {
				ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
				goto out_close_fd;
			}
			g_usleep(50000);
		}
	}

	if (S_ISBLK(fst.st_mode)) {
		ret = dev_probe_blockdev(dev, &fst);
		if (ret)
			goto out_close_fd;
	} else {
		dev_probe_file(dev, &fst);
	}

	dev->trace_fd = -1;
	if (!dev->rdonly && getenv("DMAFS_DEV_TRACE")) {
		dev->trace_fd = open(getenv("DMAFS_DEV_TRACE"),
				     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				     0600);
		if (dev->trace_fd < 0) {
			ret = -errno;
			goto out_close_fd;
		}
		pthread_mutex_init(&dev->trace_lock, NULL);
	}

	pthread_mutex_lock(&dev_rings_lock);
	dev_open_count++;
	pthread_mutex_unlock(&dev_rings_lock);
	*out = dev;
	return 0;

out_close_fd:
	close(dev->fd);		/* also drops the flock */
out_free_dev:
	free(dev);
	return ret;
}

void dmafs_dev_close(struct dmafs_dev *dev)
{
	struct dev_ring *rings = NULL, *r;

	if (!dev)
		return;
	close(dev->fd);
	if (dev->trace_fd >= 0) {
		close(dev->trace_fd);
		pthread_mutex_destroy(&dev->trace_lock);
	}
	free(dev);

	pthread_mutex_lock(&dev_rings_lock);
	if (!--dev_open_count) {
		/* No thread can be in a dev call now: see the top. */
		rings = dev_rings;
		dev_rings = NULL;
		for (r = rings; r; r = r->next)
			*r->owner = NULL;
	}
	pthread_mutex_unlock(&dev_rings_lock);
	while (rings) {
		r = rings;
		rings = r->next;
		dev_ring_free(r);
	}
}

const struct dmafs_dev_info *dmafs_dev_info(const struct dmafs_dev *dev)
{
	return &dev->info;
}

int dmafs_dev_fd(const struct dmafs_dev *dev)
{
	return dev->fd;
}

/* ---- I/O ------------------------------------------------------------- */

struct dev_slot {
	struct dmafs_io *io;
	size_t done;			/* bytes already transferred */
	unsigned int eagain;
	bool retried;			/* short-transfer retry used up */
};

static int dev_check_range(const struct dmafs_dev *dev, uint64_t off,
			   uint64_t len)
{
	uint64_t mask = dev->info.lba_size - 1;

	if ((off | len) & mask)
		return -EINVAL;
	if (off > dev->info.size || len > dev->info.size - off)
		return -EINVAL;
	return 0;
}

static int dev_check_io(const struct dmafs_dev *dev, const struct dmafs_io *io)
{
	if (io->flags & ~(DMAFS_IO_WRITE | DMAFS_IO_FUA))
		return -EINVAL;
	if ((io->flags & DMAFS_IO_WRITE) && dev->rdonly)
		return -EROFS;
	if (!io->buf || (uintptr_t)io->buf % DMAFS_DEV_BUF_ALIGN)
		return -EINVAL;
	if (io->len > DEV_MAX_IO_LEN)
		return -EINVAL;
	return dev_check_range(dev, io->off, io->len);
}

/*
 * Queue the rest of a slot's request.  An SQE is always free: each busy
 * slot has at most one SQE or request outstanding and there are as many
 * slots as SQ entries.
 */
static int dev_queue_slot(struct dev_ring *r, int fd, struct dev_slot *s,
			  unsigned int slot)
{
	struct dmafs_io *io = s->io;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	char *buf = (char *)io->buf + s->done;
	unsigned int len = io->len - s->done;
	uint64_t off = io->off + s->done;

	if (!sqe)
		return -EBUSY;
	if (io->flags & DMAFS_IO_WRITE) {
		io_uring_prep_write(sqe, fd, buf, len, off);
		if (io->flags & DMAFS_IO_FUA)
			sqe->rw_flags = RWF_DSYNC;
	} else {
		io_uring_prep_read(sqe, fd, buf, len, off);
	}
	io_uring_sqe_set_data64(sqe, slot);
	return 0;
}

int dmafs_dev_submit(struct dmafs_dev *dev, struct dmafs_io *ios,
		     unsigned int n)
{
	struct dev_slot slots[DEV_RING_DEPTH];
	unsigned int free_slots[DEV_RING_DEPTH];
	unsigned int nfree = 0, inflight = 0, next = 0, i;
	struct dev_ring *r;
	int ret;

	if (!n)
		return 0;
	if (!dev || !ios)
		return -EINVAL;
	ret = dev_ring_get(&r);
	if (ret) {
		for (i = 0; i < n; i++)
			ios[i].res = ret;
		return ret;
	}
	for (i = 0; i < DEV_RING_DEPTH; i++) {
		slots[i].io = NULL;
		free_slots[nfree++] = i;
	}

	/*
	 * Keep up to DEV_RING_DEPTH requests in flight and refill a slot as
	 * soon as it completes, so a batch larger than the ring flows
	 * through it in overlapping waves.
	 */
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, seen = 0;

		while (nfree && next < n) {
			struct dmafs_io *io = &ios[next++];
			struct dev_slot *s;
			unsigned int slot;

			io->res = dev_check_io(dev, io);
			if (io->res || !io->len)
				continue;
			slot = free_slots[--nfree];
			s = &slots[slot];
			*s = (struct dev_slot){ .io = io };
			io->res = dev_queue_slot(r, dev->fd, s, slot);
			if (io->res) {
				s->io = NULL;
				free_slots[nfree++] = slot;
				continue;
			}
			inflight++;
		}
		if (!inflight)
			break;

		ret = dev_ring_wait(r);
		if (ret)
			goto out_ring_broken;

		io_uring_for_each_cqe(&r->ring, head, cqe) {
			unsigned int slot = io_uring_cqe_get_data64(cqe);
			struct dev_slot *s = &slots[slot];
			size_t left = s->io->len - s->done;
			int res = cqe->res;

			seen++;
			if (res == -EAGAIN && s->eagain++ < DEV_MAX_EAGAIN) {
				res = dev_queue_slot(r, dev->fd, s, slot);
				if (!res)
					continue;
			} else if (res >= 0 && (size_t)res == left) {
				res = 0;
				if (s->io->flags & DMAFS_IO_WRITE)
					dev_trace(dev, s->io->flags & DMAFS_IO_FUA ?
						  DEV_TRACE_FUA : DEV_TRACE_WRITE,
						  s->io->off, s->io->buf,
						  s->io->len);
			} else if (res >= 0 && (size_t)res < left &&
				   !s->retried) {
				s->retried = true;
				s->done += res;
				res = dev_queue_slot(r, dev->fd, s, slot);
				if (!res)
					continue;
			} else if (res >= 0) {
				res = -EIO;
			}
			s->io->res = res;
			s->io = NULL;
			free_slots[nfree++] = slot;
			inflight--;
		}
		io_uring_cq_advance(&r->ring, seen);
	}

	for (i = 0; i < n; i++)
		if (ios[i].res)
			return ios[i].res;
	return 0;

out_ring_broken:
	/*
	 * Cannot happen with a sane ring (only EFAULT-class errors are
	 * left).  Closing the ring makes the kernel cancel or finish what is
	 * in flight; the buffers stay pinned until then.
	 */
	g_warning("%s: io_uring wait failed with %u requests in flight: %s",
		  dev->info.path, inflight, g_strerror(-ret));
	for (i = 0; i < DEV_RING_DEPTH; i++)
		if (slots[i].io)
			slots[i].io->res = ret;
	for (; next < n; next++)
		ios[next].res = ret;
	dev_ring_discard(r);
	for (i = 0; i < n; i++)
		if (ios[i].res)
			return ios[i].res;
	return ret;
}

int dmafs_dev_read(struct dmafs_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct dmafs_io io = { .buf = buf, .len = len, .off = off };

	return dmafs_dev_submit(dev, &io, 1);
}

int dmafs_dev_write(struct dmafs_dev *dev, const void *buf, size_t len,
		    uint64_t off, unsigned int flags)
{
	/* The cast is safe: a write only reads the buffer. */
	struct dmafs_io io = {
		.buf = (void *)buf,
		.len = len,
		.off = off,
		.flags = flags | DMAFS_IO_WRITE,
	};

	return dmafs_dev_submit(dev, &io, 1);
}

int dmafs_dev_flush(struct dmafs_dev *dev)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	unsigned int eagain = 0;
	struct dev_ring *r;
	int ret;

	ret = dev_ring_get(&r);
	if (ret)
		return ret;
	do {
		sqe = io_uring_get_sqe(&r->ring);
		/* Cannot fail: the ring is empty between calls. */
		if (!sqe)
			return -EBUSY;
		/* A full fsync: on a block device it sends a cache flush. */
		io_uring_prep_fsync(sqe, dev->fd, 0);
		io_uring_sqe_set_data64(sqe, 0);
		ret = dev_ring_wait(r);
		if (!ret) {
			do {
				ret = io_uring_wait_cqe(&r->ring, &cqe);
			} while (ret == -EINTR || ret == -EAGAIN);
		}
		if (ret) {
			g_warning("%s: io_uring wait failed during flush: %s",
				  dev->info.path, g_strerror(-ret));
			dev_ring_discard(r);
			return ret;
		}
		ret = cqe->res;
		io_uring_cqe_seen(&r->ring, cqe);
	} while (ret == -EAGAIN && eagain++ < DEV_MAX_EAGAIN);
	if (!ret)
		dev_trace(dev, DEV_TRACE_FLUSH, 0, NULL, 0);
	return ret < 0 ? ret : 0;
}

int dmafs_dev_discard(struct dmafs_dev *dev, uint64_t off, uint64_t len)
{
	int ret;

	if (dev->rdonly)
		return -EROFS;
	ret = dev_check_range(dev, off, len);
	if (ret || !len)
		return ret;

	/*
	 * Synchronous: io_uring in liburing 2.3 has no discard op.  Callers
	 * must not rely on discarded ranges reading back as zeros.
	 */
	if (dev->info.is_blockdev) {
		uint64_t range[2] = { off, len };

		if (ioctl(dev->fd, BLKDISCARD, range) < 0)
			return errno == ENOTTY ? -EOPNOTSUPP : -errno;
		return 0;
	}
	if (fallocate(dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      off, len) < 0)
		return errno == ENOSYS ? -EOPNOTSUPP : -errno;
	return 0;
}

void *dmafs_dev_alloc_buf(size_t len)
{
	void *buf;

	if (posix_memalign(&buf, DMAFS_DEV_BUF_ALIGN, len ? len : 1)) {
		errno = ENOMEM;
		return NULL;
	}
	memset(buf, 0, len);
	return buf;
}

/* ---- probing helpers -------------------------------------------------- */

/* 1 if block 0 holds a dmafs superblock magic, 0 if not, -errno. */
static int dev_has_dmafs_magic(int fd)
{
	__le64 magic;
	ssize_t n;
	char *buf;
	int ret = 0;

	/* Plain (buffered) fd from blkid: any alignment will do. */
	buf = malloc(DMAFS_SB_SIZE);
	if (!buf)
		return -ENOMEM;
	n = pread(fd, buf, DMAFS_SB_SIZE, 0);
	if (n < 0) {
		ret = -errno;
	} else if (n >= (ssize_t)sizeof(magic)) {
		memcpy(&magic, buf, sizeof(magic));
		ret = le64toh(magic) == DMAFS_MAGIC;
	}
	free(buf);
	return ret;
}

static void dev_set_type(char *type, size_t typelen, const char *val)
{
	if (type && typelen)
		g_strlcpy(type, val, typelen);
}

/* TYPE (filesystem, raid, LVM, swap) before PTTYPE (partition table). */
static bool dev_blkid_type(blkid_probe pr, char *type, size_t typelen)
{
	const char *val;

	if (!blkid_probe_lookup_value(pr, "TYPE", &val, NULL) ||
	    !blkid_probe_lookup_value(pr, "PTTYPE", &val, NULL)) {
		dev_set_type(type, typelen, val);
		return true;
	}
	return false;
}

int dmafs_dev_signature(const char *path, char *type, size_t typelen)
{
	blkid_probe pr;
	int ret;

	dev_set_type(type, typelen, "");
	if (!path)
		return -EINVAL;
	errno = 0;
	pr = blkid_new_probe_from_filename(path);
	if (!pr)
		return errno ? -errno : -EIO;

	/* Our superblock owns block 0: it wins over stale foreign bits. */
	ret = dev_has_dmafs_magic(blkid_probe_get_fd(pr));
	if (ret) {
		if (ret > 0)
			dev_set_type(type, typelen, "dmafs");
		goto out_free_probe;
	}

	blkid_probe_enable_superblocks(pr, 1);
	/* Damaged signatures count too: they mean someone's data is there. */
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE |
					  BLKID_SUBLKS_BADCSUM);
	blkid_probe_enable_partitions(pr, 1);

	errno = 0;
	ret = blkid_do_safeprobe(pr);
	switch (ret) {
	case 0:
		if (!dev_blkid_type(pr, type, typelen))
			dev_set_type(type, typelen, "unknown");
		ret = 1;
		break;
	case 1:
		ret = 0;
		break;
	case -2:
		/* Several signatures: safeprobe names none; take the first. */
		blkid_reset_probe(pr);
		if (blkid_do_probe(pr) != 0 ||
		    !dev_blkid_type(pr, type, typelen))
			dev_set_type(type, typelen, "ambivalent");
		ret = 1;
		break;
	default:
		ret = errno ? -errno : -EIO;
		break;
	}

out_free_probe:
	blkid_free_probe(pr);
	return ret;
}

/* Undo the octal escapes (\040 and friends) of /proc/self/mountinfo. */
static void dev_mountinfo_unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (s[1] - '0') << 6 | (s[2] - '0') << 3 |
			       (s[3] - '0');
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/*
 * Walk /proc/self/mountinfo (our mount namespace); for each mount pass
 * its device number and its source (unescaped, NULL unless a path) to
 * match().  Returns 1 as soon as match() does.
 */
static int dev_mountinfo_any(bool (*match)(dev_t mdev, const char *source,
					   const void *arg),
			     const void *arg)
{
	g_autofree char *contents = NULL;
	g_autoptr(GError) err = NULL;
	char *line, *save = NULL;

	if (!g_file_get_contents("/proc/self/mountinfo", &contents, NULL,
				 &err)) {
		g_debug("mountinfo: %s", err->message);
		return -EIO;
	}
	for (line = strtok_r(contents, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned int maj, min;
		char *sep, *source, *end;

		/* id parent maj:min root point opts [tags] - type source ... */
		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2)
			continue;
		sep = strstr(line, " - ");
		source = NULL;
		if (sep) {
			source = strchr(sep + 3, ' ');
			if (source) {
				source++;
				end = strchr(source, ' ');
				if (end)
					*end = '\0';
				if (source[0] != '/')
					source = NULL;
				else
					dev_mountinfo_unescape(source);
			}
		}
		if (match(makedev(maj, min), source, arg))
			return 1;
	}
	return 0;
}

static bool dev_match_bdev(dev_t mdev, const char *source, const void *arg)
{
	dev_t rdev = *(const dev_t *)arg;
	struct stat st;

	if (mdev == rdev)
		return true;
	/* btrfs and friends report an anonymous dev: look at the source. */
	return source && stat(source, &st) == 0 && S_ISBLK(st.st_mode) &&
	       st.st_rdev == rdev;
}

static bool dev_match_file(dev_t mdev, const char *source, const void *arg)
{
	const struct stat *img = arg;
	struct stat st;

	/* FUSE mounts (dmafs itself) name the image as their source. */
	return source && stat(source, &st) == 0 && S_ISREG(st.st_mode) &&
	       st.st_dev == img->st_dev && st.st_ino == img->st_ino;
}

static bool dev_read_devno(const char *path, dev_t *out)
{
	g_autofree char *s = NULL;
	unsigned int maj, min;

	if (!g_file_get_contents(path, &s, NULL, NULL) ||
	    sscanf(s, "%u:%u", &maj, &min) != 2)
		return false;
	*out = makedev(maj, min);
	return true;
}

static bool dev_sysfs_dir_nonempty(const char *dir, const char *name)
{
	g_autofree char *p = g_build_filename(dir, name, NULL);
	struct dirent *de;
	bool found = false;
	DIR *d;

	d = opendir(p);
	if (!d)
		return false;
	while (!found && (de = readdir(d)))
		found = strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return found;
}

/* One block device: mounted, or claimed by a holder (dm, md, ...). */
static int dev_bdev_busy_one(dev_t rdev, const char *sys)
{
	if (sys && dev_sysfs_dir_nonempty(sys, "holders"))
		return 1;
	return dev_mountinfo_any(dev_match_bdev, &rdev);
}

/* A block device counts as busy if it or any of its partitions is. */
static int dev_bdev_busy(dev_t rdev)
{
	g_autofree char *sys = dev_sysfs_dir(rdev);
	struct dirent *de;
	DIR *d;
	int ret;

	ret = dev_bdev_busy_one(rdev, sys);
	if (ret || !sys)
		return ret;
	d = opendir(sys);
	if (!d)
		return 0;
	while (!ret && (de = readdir(d))) {
		g_autofree char *part = NULL;
		g_autofree char *devfile = NULL;
		dev_t pdev;

		if (de->d_name[0] == '.')
			continue;
		part = g_build_filename(sys, de->d_name, NULL);
		if (!dev_sysfs_exists(part, "partition"))
			continue;
		devfile = g_build_filename(part, "dev", NULL);
		if (dev_read_devno(devfile, &pdev))
			ret = dev_bdev_busy_one(pdev, part);
	}
	closedir(d);
	return ret;
}

/* An image file is busy if a loop device backed by it is. */
static int dev_file_looped_busy(const struct stat *img)
{
	struct dirent *de;
	int ret = 0;
	DIR *d;

	d = opendir("/sys/block");
	if (!d)
		return 0;
	while (!ret && (de = readdir(d))) {
		g_autofree char *bf = NULL;
		g_autofree char *backing = NULL;
		g_autofree char *devfile = NULL;
		struct stat st;
		dev_t ldev;

		if (strncmp(de->d_name, "loop", 4))
			continue;
		bf = g_build_filename("/sys/block", de->d_name, "loop",
				      "backing_file", NULL);
		if (!g_file_get_contents(bf, &backing, NULL, NULL))
			continue;	/* not attached */
		backing[strcspn(backing, "\n")] = '\0';
		if (stat(backing, &st) < 0 || st.st_dev != img->st_dev ||
		    st.st_ino != img->st_ino)
			continue;
		devfile = g_build_filename("/sys/block", de->d_name, "dev",
					   NULL);
		if (dev_read_devno(devfile, &ldev))
			ret = dev_bdev_busy(ldev);
	}
	closedir(d);
	return ret;
}

int dmafs_dev_mounted(const char *path)
{
	g_autofree char *real = NULL;
	struct stat st;
	int ret;

	if (!path)
		return -EINVAL;
	real = realpath(path, NULL);
	if (!real)
		return -errno;
	if (stat(real, &st) < 0)
		return -errno;

	if (S_ISBLK(st.st_mode))
		return dev_bdev_busy(st.st_rdev);
	if (!S_ISREG(st.st_mode))
		return -ENOTBLK;
	ret = dev_mountinfo_any(dev_match_file, &st);
	if (ret)
		return ret;
	return dev_file_looped_busy(&st);
}
