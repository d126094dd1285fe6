// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fuse_forward: FUSE forwarding of direct I/O and dma-buf registrations to a
 * block device through extent maps (kernel extension, layer 2; the API is
 * include/dmafs/fuse_dmafs.h).
 *
 *   fuse_forward DEVICE [-s udmabuf|vgem]
 *
 * A tiny FUSE daemon (libfuse low-level API, in a thread of this program)
 * exposes two files whose data lives at fixed extents of DEVICE:
 *
 *   contig  1 MiB, one extent at 16 MiB
 *   frag    1 MiB + 3000 bytes: [0, 256K) at 32M + 768K, [256K, 512K) at
 *           32M, a hole [512K, 640K), [640K, 1M + 4K) at 40M
 *
 * It registers DEVICE on its /dev/fuse connection and pushes a file's map
 * when the file is opened.  It serves READ and WRITE itself (holes read as
 * zeros, writes outside the extents fail with ENOSPC) and counts them, so
 * that the test can tell which I/O bypassed it.
 *
 * Checks, in order: the feature probe; FUSE_DEV_IOC_BACKING_OPEN errors
 * (no CAP_SYS_ADMIN, not a block device, not O_DIRECT, not read-write, not
 * the device's exclusive claim, bad flags, bad fd, a second device) and
 * dma-buf registration without a device; SET_EXTENTS validation errors,
 * blocks that another file's map points to among them; O_DIRECT pread/pwrite through the maps,
 * data-exact against raw reads of the device at the extents, without a
 * daemon request, and the fall back to the daemon for holes and past EOF;
 * READ_FIXED/WRITE_FIXED on a dma-buf registered against the FUSE file,
 * data-exact, short at EOF, ENODATA for a hole and a write past EOF;
 * INVAL_EXTENTS (partial, with the split extent's data still right; under
 * I/O); SET_EXTENTS and INVAL_EXTENTS from a process without CAP_SYS_ADMIN
 * that holds the fd (EPERM); the map dropped by truncate and fallocate,
 * and by the kernel itself when the server may reuse the blocks without
 * invalidating (FUSE_NOTIFY_INVAL_INODE, a size shrunk in the server's
 * attributes, the last link unlinked); SET_WINDOW (errors, a window that
 * would leave an installed map outside, maps outside the window refused,
 * no widening); a daemon killed
 * during I/O (a forked daemon on a second mount): every I/O either
 * completes or fails with ENOTCONN or EIO, and all registrations can be
 * released; and, where the kernel has fault injection (the debug kernel),
 * INVAL_EXTENTS failing at each of its allocations in turn: ENOMEM, the map
 * unchanged, and no reference on the registration left behind.
 *
 * Exit 0 pass, 1 fail, 77 skip (no device argument, no such device, no
 * dma-buf exporter).  Destroys the contents of DEVICE.
 */
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 35
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "dmafs/fuse_dmafs.h"
#include "helpers.h"

#define NR_FILES	2
#define MAX_EXT		4
#define BUF_SIZE	(4 * T_MiB)	/* dma-buf */
#define TIMEOUT_S	3600.0		/* attribute and entry timeouts */

/* ---- the daemon -------------------------------------------------------- */

struct t_file {
	const char *name;
	fuse_ino_t ino;
	uint64_t size;
	unsigned int nr;
	struct fuse_dmafs_extent ext[MAX_EXT];
	bool push_on_open;	/* cleared by truncate: the map stays gone */
	bool unlinked;		/* UNLINK served: no longer in the directory */
};

static struct t_file files[NR_FILES] = {
	{ "contig", 2, T_MiB, 1, {
		{ 0, T_MiB, 16 * T_MiB } }, true },
	{ "frag", 3, T_MiB + 3000, 3, {
		{ 0, 256 * T_KiB, 32 * T_MiB + 768 * T_KiB },
		{ 256 * T_KiB, 256 * T_KiB, 32 * T_MiB },
		{ 640 * T_KiB, T_MiB + 4 * T_KiB - 640 * T_KiB, 40 * T_MiB } },
	  true },
};

struct t_daemon {
	struct fuse_session *se;
	char mnt[64];
	const char *dev;
	int dev_fd;		/* O_RDWR | O_DIRECT | O_EXCL, the backing */
	int backing_id;		/* 0 until registered */
	pthread_mutex_t lock;	/* files[] sizes and push flags */
	atomic_ulong reads, writes;
	pthread_t thread;
};

static struct t_daemon D = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct t_file *file_by_ino(fuse_ino_t ino)
{
	for (int i = 0; i < NR_FILES; i++)
		if (files[i].ino == ino)
			return &files[i];
	return NULL;
}

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
	struct t_file *f = file_by_ino(ino);

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (!f) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return;
	}
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = !f->unlinked;
	st->st_size = f->size;
	st->st_blksize = 4096;
}

/* Device I/O of the daemon: O_DIRECT with an aligned bounce buffer. */
static int dev_rw(bool write, uint64_t off, void *data, size_t len)
{
	uint64_t start = off & ~4095ULL;
	uint64_t end = (off + len + 4095) & ~4095ULL;
	uint8_t *b = t_alloc_aligned(end - start);
	int ret;

	if (!b)
		return -ENOMEM;
	ret = t_pread_full(D.dev_fd, b, end - start, start);
	if (!ret && write) {
		memcpy(b + (off - start), data, len);
		ret = t_pwrite_full(D.dev_fd, b, end - start, start);
	} else if (!ret) {
		memcpy(data, b + (off - start), len);
	}
	free(b);
	return ret;
}

/* Read or write [off, off + len) of f; holes read as zeros. */
static int file_rw(struct t_file *f, bool write, uint64_t off, uint8_t *data,
		   size_t len)
{
	while (len) {
		const struct fuse_dmafs_extent *e = NULL;
		uint64_t n = len;
		int ret;

		for (unsigned int i = 0; i < f->nr; i++) {
			if (off >= f->ext[i].offset &&
			    off < f->ext[i].offset + f->ext[i].length) {
				e = &f->ext[i];
				break;
			}
			if (f->ext[i].offset > off && f->ext[i].offset - off < n)
				n = f->ext[i].offset - off;
		}
		if (e && e->offset + e->length - off < n)
			n = e->offset + e->length - off;
		if (!e) {
			if (write)
				return -ENOSPC;
			memset(data, 0, n);
		} else {
			ret = dev_rw(write, e->dev_offset + (off - e->offset),
				     data, n);
			if (ret)
				return ret;
		}
		off += n;
		data += n;
		len -= n;
	}
	return 0;
}

static int push_map(int fuse_fd, struct t_file *f)
{
	struct fuse_dmafs_map m = {
		.nodeid = f->ino,
		.backing_id = D.backing_id,
		.extents = (uint64_t)(uintptr_t)f->ext,
		.nr_extents = f->nr,
	};

	return ioctl(fuse_fd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &m) ? -errno : 0;
}

static void d_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	for (int i = 0; i < NR_FILES; i++) {
		if (parent != FUSE_ROOT_ID || strcmp(name, files[i].name) ||
		    files[i].unlinked)
			continue;
		memset(&e, 0, sizeof(e));
		e.ino = files[i].ino;
		e.attr_timeout = TIMEOUT_S;
		e.entry_timeout = TIMEOUT_S;
		pthread_mutex_lock(&D.lock);
		fill_attr(e.ino, &e.attr);
		pthread_mutex_unlock(&D.lock);
		fuse_reply_entry(req, &e);
		return;
	}
	fuse_reply_err(req, ENOENT);
}

static void d_getattr(fuse_req_t req, fuse_ino_t ino,
		      struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	pthread_mutex_lock(&D.lock);
	fill_attr(ino, &st);
	pthread_mutex_unlock(&D.lock);
	fuse_reply_attr(req, &st, TIMEOUT_S);
}

static void d_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		      int to_set, struct fuse_file_info *fi)
{
	struct t_file *f = file_by_ino(ino);
	struct stat st;

	(void)fi;
	pthread_mutex_lock(&D.lock);
	if (f && (to_set & FUSE_SET_ATTR_SIZE)) {
		/* the kernel dropped the map; this daemon pushes no new one */
		f->size = attr->st_size;
		f->push_on_open = false;
	}
	fill_attr(ino, &st);
	pthread_mutex_unlock(&D.lock);
	fuse_reply_attr(req, &st, TIMEOUT_S);
}

static void d_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct t_file *f = file_by_ino(ino);
	int ret = 0;

	if (!f) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* the map goes in before the open reply: the first I/O may use it */
	pthread_mutex_lock(&D.lock);
	if (D.backing_id > 0 && f->push_on_open)
		ret = push_map(fuse_session_fd(D.se), f);
	pthread_mutex_unlock(&D.lock);
	if (ret)
		fprintf(stderr, "daemon: SET_EXTENTS %s: %s\n", f->name,
			strerror(-ret));
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void d_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct t_file *f = file_by_ino(ino);
	uint8_t *buf;
	int ret;

	(void)fi;
	atomic_fetch_add(&D.reads, 1);
	pthread_mutex_lock(&D.lock);
	if ((uint64_t)off >= f->size)
		size = 0;
	else if (off + size > f->size)
		size = f->size - off;
	pthread_mutex_unlock(&D.lock);
	buf = malloc(size + 1);
	ret = buf ? file_rw(f, false, off, buf, size) : -ENOMEM;
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_buf(req, (char *)buf, size);
	free(buf);
}

static void d_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		    size_t size, off_t off, struct fuse_file_info *fi)
{
	struct t_file *f = file_by_ino(ino);
	int ret;

	(void)fi;
	atomic_fetch_add(&D.writes, 1);
	ret = file_rw(f, true, off, (uint8_t *)buf, size);
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	pthread_mutex_lock(&D.lock);
	if (off + size > f->size)
		f->size = off + size;
	pthread_mutex_unlock(&D.lock);
	fuse_reply_write(req, size);
}

static void d_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			off_t len, struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)off, (void)len, (void)fi;
	fuse_reply_err(req, 0);
}

/*
 * Frees nothing and, like a careless server, does not invalidate the map:
 * the kernel must drop it by itself when the last link goes.
 */
static void d_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	for (int i = 0; i < NR_FILES; i++) {
		if (parent != FUSE_ROOT_ID || strcmp(name, files[i].name) ||
		    files[i].unlinked)
			continue;
		pthread_mutex_lock(&D.lock);
		files[i].unlinked = true;
		pthread_mutex_unlock(&D.lock);
		fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, ENOENT);
}

static const struct fuse_lowlevel_ops d_ops = {
	.lookup		= d_lookup,
	.getattr	= d_getattr,
	.setattr	= d_setattr,
	.open		= d_open,
	.read		= d_read,
	.write		= d_write,
	.fallocate	= d_fallocate,
	.unlink		= d_unlink,
};

static int backing_open(int fuse_fd, int fd, uint32_t flags)
{
	struct fuse_backing_map m = { .fd = fd, .flags = flags };
	int ret = ioctl(fuse_fd, FUSE_DEV_IOC_BACKING_OPEN, &m);

	return ret < 0 ? -errno : ret;
}

/* Session and mount on D.mnt; the device opened, not yet registered. */
static int daemon_setup(const char *dev)
{
	char *argv[] = { "fuse_forward", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);

	D.dev = dev;
	/*
	 * The registration of an earlier daemon (a ring that is still
	 * closing holds it) may keep the claim a little longer.
	 */
	D.dev_fd = open(dev, O_RDWR | O_DIRECT | O_EXCL | O_CLOEXEC);
	for (int i = 0; D.dev_fd < 0 && errno == EBUSY && i < 40; i++) {
		usleep(50000);
		D.dev_fd = open(dev, O_RDWR | O_DIRECT | O_EXCL | O_CLOEXEC);
	}
	if (D.dev_fd < 0)
		return -errno;
	strcpy(D.mnt, "/tmp/fuse_forward.XXXXXX");
	if (!mkdtemp(D.mnt))
		return -errno;
	D.se = fuse_session_new(&args, &d_ops, sizeof(d_ops), NULL);
	if (!D.se)
		return -EIO;
	if (fuse_session_mount(D.se, D.mnt)) {
		fuse_session_destroy(D.se);
		D.se = NULL;
		return -EIO;
	}
	return 0;
}

static void *daemon_thread(void *arg)
{
	(void)arg;
	fuse_session_loop(D.se);
	return NULL;
}

static void daemon_stop(void)
{
	if (!D.se)
		return;
	/* unmounting ends the loop (ENODEV from /dev/fuse) */
	umount2(D.mnt, MNT_DETACH);
	fuse_session_exit(D.se);
	pthread_join(D.thread, NULL);
	fuse_session_destroy(D.se);
	D.se = NULL;
	rmdir(D.mnt);
}

/* ---- test helpers ------------------------------------------------------ */

static int raw_fd;		/* the device, O_DIRECT, for checks */
static uint32_t lba;
static enum t_src src = T_SRC_UDMABUF;

#define CHECK(cond, ...) do {						\
	if (!(cond))							\
		t_fail(__VA_ARGS__);					\
} while (0)

static char *path_of(const struct t_file *f)
{
	static char p[2][128];
	static int i;

	i ^= 1;
	snprintf(p[i], sizeof(p[i]), "%s/%s", D.mnt, f->name);
	return p[i];
}

/* Put generation seed of f's data (positions = file offsets) on the device. */
static void raw_fill(const struct t_file *f, uint64_t seed)
{
	for (unsigned int i = 0; i < f->nr; i++) {
		const struct fuse_dmafs_extent *e = &f->ext[i];
		uint8_t *b = t_alloc_aligned(e->length);

		t_pattern_fill(b, e->length, seed, e->offset);
		if (t_pwrite_full(raw_fd, b, e->length, e->dev_offset))
			t_fail("raw write of %s extent %u", f->name, i);
		free(b);
	}
}

/* Whether [off, off + len) of f on the device holds generation seed. */
static bool raw_check(const struct t_file *f, uint64_t off, uint64_t len,
		      uint64_t seed, const char *what)
{
	bool ok = true;

	for (unsigned int i = 0; i < f->nr; i++) {
		const struct fuse_dmafs_extent *e = &f->ext[i];
		uint64_t s = off > e->offset ? off : e->offset;
		uint64_t end = off + len;
		uint8_t *b;
		long bad;

		if (end > e->offset + e->length)
			end = e->offset + e->length;
		if (s >= end)
			continue;
		b = t_alloc_aligned(end - s);
		if (t_pread_full(raw_fd, b, end - s, e->dev_offset +
				 (s - e->offset))) {
			t_fail("%s: raw read", what);
			ok = false;
		} else if ((bad = t_pattern_check(b, end - s, seed, s)) >= 0) {
			t_pattern_report(b, end - s, seed, s, bad, what);
			ok = false;
		}
		free(b);
	}
	return ok;
}

static unsigned long daemon_ios(void)
{
	return atomic_load(&D.reads) + atomic_load(&D.writes);
}

/* ---- checks ------------------------------------------------------------ */

static void test_features(int sfd)
{
	__u64 feat = 0;

	if (ioctl(sfd, FUSE_DEV_IOC_DMAFS_FEATURES, &feat)) {
		t_fail("FUSE_DEV_IOC_DMAFS_FEATURES: %s (a kernel without "
		       "layer 2?)", strerror(errno));
		return;
	}
	CHECK(feat & FUSE_DMAFS_FEAT_EXTENTS, "features %#llx lack EXTENTS",
	      (unsigned long long)feat);
	CHECK(feat & FUSE_DMAFS_FEAT_DMABUF, "features %#llx lack DMABUF",
	      (unsigned long long)feat);
	CHECK(feat & FUSE_DMAFS_FEAT_WINDOW, "features %#llx lack WINDOW",
	      (unsigned long long)feat);
}

static int drop_cap_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[CAP_SYS_ADMIN / 32].effective &= ~(1U << (CAP_SYS_ADMIN % 32));
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

static void expect_backing(int sfd, int fd, uint32_t flags, int err,
			   const char *what)
{
	int ret = backing_open(sfd, fd, flags);

	if (ret >= 0) {
		ioctl(sfd, FUSE_DEV_IOC_BACKING_CLOSE, &ret);
		t_fail("BACKING_OPEN %s: succeeded, want %s", what,
		       strerror(err));
	} else {
		CHECK(ret == -err, "BACKING_OPEN %s: %s, want %s", what,
		      strerror(-ret), strerror(err));
	}
}

static void test_backing_open(int sfd, struct io_uring *ring,
			      struct t_dmabuf *b)
{
	struct fuse_backing_map m = { .fd = D.dev_fd,
		.flags = FUSE_BACKING_TYPE_BLOCKDEV, .padding = 1 };
	int fd, id, ret, status;
	pid_t pid;

	/* no CAP_SYS_ADMIN */
	pid = fork();
	if (pid == 0) {
		if (drop_cap_sys_admin())
			_exit(2);
		_exit(backing_open(sfd, D.dev_fd, FUSE_BACKING_TYPE_BLOCKDEV)
		      == -EPERM ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "BACKING_OPEN without CAP_SYS_ADMIN: not EPERM (status %#x)",
	      status);

	fd = open("/tmp/fuse_forward.reg", O_RDWR | O_CREAT | O_TRUNC, 0600);
	expect_backing(sfd, fd, FUSE_BACKING_TYPE_BLOCKDEV, ENOTBLK,
		       "regular file");
	close(fd);
	unlink("/tmp/fuse_forward.reg");
	fd = open("/dev/null", O_RDWR);
	expect_backing(sfd, fd, FUSE_BACKING_TYPE_BLOCKDEV, ENOTBLK,
		       "character device");
	close(fd);
	fd = open(D.dev, O_RDWR);
	expect_backing(sfd, fd, FUSE_BACKING_TYPE_BLOCKDEV, EINVAL,
		       "device without O_DIRECT");
	close(fd);
	fd = open(D.dev, O_RDONLY | O_DIRECT);
	expect_backing(sfd, fd, FUSE_BACKING_TYPE_BLOCKDEV, EINVAL,
		       "device O_RDONLY");
	close(fd);
	/* D.dev_fd holds the claim: a mounted filesystem would, too */
	fd = open(D.dev, O_RDWR | O_DIRECT);
	expect_backing(sfd, fd, FUSE_BACKING_TYPE_BLOCKDEV, EBUSY,
		       "device without O_EXCL while another file holds the "
		       "claim");
	close(fd);
	expect_backing(sfd, D.dev_fd, FUSE_BACKING_TYPE_BLOCKDEV | 1, EINVAL,
		       "unknown flag");
	ret = ioctl(sfd, FUSE_DEV_IOC_BACKING_OPEN, &m);
	CHECK(ret < 0 && errno == EINVAL, "BACKING_OPEN padding: %d/%s", ret,
	      strerror(errno));
	expect_backing(sfd, 999, FUSE_BACKING_TYPE_BLOCKDEV, EBADF, "bad fd");

	/* no block device registered: a dma-buf cannot be registered */
	fd = open(path_of(&files[0]), O_RDWR | O_DIRECT);
	if (fd < 0) {
		t_fail("open %s: %s", path_of(&files[0]), strerror(errno));
	} else {
		ret = t_buf_register(ring, 0, b, fd);
		CHECK(ret == -EOPNOTSUPP, "dma-buf registration without a "
		      "device: %s, want EOPNOTSUPP", strerror(-ret));
		close(fd);
	}

	id = backing_open(sfd, D.dev_fd, FUSE_BACKING_TYPE_BLOCKDEV);
	CHECK(id > 0, "BACKING_OPEN: %s", strerror(-id));
	expect_backing(sfd, D.dev_fd, FUSE_BACKING_TYPE_BLOCKDEV, EBUSY,
		       "second device");
	/* close and register again: the id is usable, the old one is gone */
	ret = ioctl(sfd, FUSE_DEV_IOC_BACKING_CLOSE, &id);
	CHECK(!ret, "BACKING_CLOSE: %s", strerror(errno));
	/* without passthrough, ids that are not the device's: EPERM */
	ret = ioctl(sfd, FUSE_DEV_IOC_BACKING_CLOSE, &id);
	CHECK(ret < 0 && errno == EPERM, "second BACKING_CLOSE: %d/%s", ret,
	      strerror(errno));
	id = backing_open(sfd, D.dev_fd, FUSE_BACKING_TYPE_BLOCKDEV);
	CHECK(id > 0, "BACKING_OPEN again: %s", strerror(-id));
	pthread_mutex_lock(&D.lock);
	D.backing_id = id;
	pthread_mutex_unlock(&D.lock);
}

static int set_extents(int sfd, uint64_t nodeid, uint32_t backing,
		       const struct fuse_dmafs_extent *e, uint32_t nr)
{
	struct fuse_dmafs_map m = {
		.nodeid = nodeid, .backing_id = backing,
		.extents = (uint64_t)(uintptr_t)e, .nr_extents = nr,
	};

	return ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &m) ? -errno : 0;
}

static int inval(int sfd, uint64_t ino, uint64_t off, uint64_t len);

static void test_set_extents_errors(int sfd, uint64_t dev_size)
{
	struct fuse_dmafs_map m;
	struct {
		const char *what;
		struct fuse_dmafs_extent e[2];
		uint32_t nr;
	} bad[] = {
		{ "unaligned offset", { { 512 / 2, 4096, 0 } }, 1 },
		{ "unaligned length", { { 0, lba + lba / 2, 0 } }, 1 },
		{ "unaligned dev_offset", { { 0, 4096, lba / 2 } }, 1 },
		{ "zero length", { { 0, 0, 0 } }, 1 },
		{ "unsorted", { { 8192, 4096, 0 }, { 0, 4096, 8192 } }, 2 },
		{ "overlapping in the file",
		  { { 0, 8192, 0 }, { 4096, 4096, 65536 } }, 2 },
		{ "overlapping on the device",
		  { { 0, 8192, 65536 }, { 65536, 8192, 69632 } }, 2 },
		{ "past the device end",
		  { { 0, 8192, dev_size - 4096 } }, 1 },
		{ "device offset overflow",
		  { { 0, 8192, ~0ULL & ~65535ULL } }, 1 },
		{ "file offset overflow",
		  { { ~0ULL & ~65535ULL, 1ULL << 20, 0 } }, 1 },
	};
	const uint64_t ino = files[0].ino;
	const int id = D.backing_id;
	struct fuse_dmafs_extent ok = { 0, 4096, 0 };
	struct fuse_dmafs_extent alias = { 0, 4096, 0 };
	int ret, status;
	pid_t pid;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ret = set_extents(sfd, ino, id, bad[i].e, bad[i].nr);
		CHECK(ret == -EINVAL, "SET_EXTENTS %s: %s, want EINVAL",
		      bad[i].what, strerror(-ret));
	}

	memset(&m, 0, sizeof(m));
	m.nodeid = ino;
	m.backing_id = id;
	m.extents = (uint64_t)(uintptr_t)&ok;
	m.nr_extents = 1;
	m.flags = 1;
	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &m) ? errno : 0;
	CHECK(ret == EINVAL, "SET_EXTENTS flags: %s", strerror(ret));
	m.flags = 0;
	m.padding = 1;
	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &m) ? errno : 0;
	CHECK(ret == EINVAL, "SET_EXTENTS padding: %s", strerror(ret));
	m.padding = 0;
	m.reserved[1] = 1;
	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &m) ? errno : 0;
	CHECK(ret == EINVAL, "SET_EXTENTS reserved: %s", strerror(ret));
	m.reserved[1] = 0;
	m.nr_extents = (1U << 20) + 1;
	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &m) ? errno : 0;
	CHECK(ret == E2BIG, "SET_EXTENTS 2^20 + 1 extents: %s", strerror(ret));
	m.nr_extents = 1;
	m.extents = 8;
	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &m) ? errno : 0;
	CHECK(ret == EFAULT, "SET_EXTENTS bad pointer: %s", strerror(ret));

	ret = set_extents(sfd, ino, id + 1000, &ok, 1);
	CHECK(ret == -EBADF, "SET_EXTENTS unknown backing id: %s",
	      strerror(-ret));
	ret = set_extents(sfd, ino, 0, &ok, 1);
	CHECK(ret == -EBADF, "SET_EXTENTS backing id 0: %s", strerror(-ret));
	ret = set_extents(sfd, 12345, id, &ok, 1);
	CHECK(ret == -ENOENT, "SET_EXTENTS uncached nodeid: %s",
	      strerror(-ret));
	ret = set_extents(sfd, FUSE_ROOT_ID, id, &ok, 1);
	CHECK(ret == -EISDIR, "SET_EXTENTS on the root: %s", strerror(-ret));
	/* an empty map is valid: all holes */
	ret = set_extents(sfd, ino, id, NULL, 0);
	CHECK(!ret, "SET_EXTENTS empty: %s", strerror(-ret));
	ret = set_extents(sfd, ino, id, files[0].ext, files[0].nr);
	CHECK(!ret, "SET_EXTENTS contig: %s", strerror(-ret));

	/* two files on the same blocks: refused while contig's map has them */
	alias.dev_offset = files[0].ext[0].dev_offset + 4096;
	ret = set_extents(sfd, files[1].ino, id, &alias, 1);
	CHECK(ret == -EBUSY, "SET_EXTENTS of frag on a block of contig's map: "
	      "%s, want EBUSY", strerror(-ret));
	/* the same file may map them again (a new version of its map) */
	ret = set_extents(sfd, ino, id, files[0].ext, files[0].nr);
	CHECK(!ret, "SET_EXTENTS contig on its own blocks: %s",
	      strerror(-ret));
	/* blocks invalidated in contig's map are free for another file */
	ret = inval(sfd, ino, 4096, 4096);
	CHECK(!ret, "INVAL_EXTENTS contig [4K, 8K): %s", strerror(-ret));
	ret = set_extents(sfd, files[1].ino, id, &alias, 1);
	CHECK(!ret, "SET_EXTENTS of frag on a block contig's map let go: %s",
	      strerror(-ret));
	ret = set_extents(sfd, ino, id, files[0].ext, files[0].nr);
	CHECK(ret == -EBUSY, "SET_EXTENTS contig on a block of frag's map: "
	      "%s, want EBUSY", strerror(-ret));
	ret = set_extents(sfd, files[1].ino, id, NULL, 0);
	CHECK(!ret, "SET_EXTENTS frag empty: %s", strerror(-ret));
	ret = set_extents(sfd, ino, id, files[0].ext, files[0].nr);
	CHECK(!ret, "SET_EXTENTS contig once frag's map let go: %s",
	      strerror(-ret));

	/* holding the fd is not enough: CAP_SYS_ADMIN, as for BACKING_OPEN */
	pid = fork();
	if (pid == 0) {
		struct fuse_dmafs_inval iv = { .nodeid = ino, .length = 4096 };

		if (drop_cap_sys_admin())
			_exit(2);
		if (set_extents(sfd, ino, id, files[0].ext, files[0].nr) !=
		    -EPERM)
			_exit(3);
		_exit(ioctl(sfd, FUSE_DEV_IOC_DMAFS_INVAL_EXTENTS, &iv) < 0 &&
		      errno == EPERM ? 0 : 4);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "SET_EXTENTS/INVAL_EXTENTS without CAP_SYS_ADMIN: not EPERM "
	      "(status %#x: 3 SET_EXTENTS, 4 INVAL_EXTENTS)", status);
	ret = set_extents(sfd, ino, id, files[0].ext, files[0].nr);
	CHECK(!ret, "SET_EXTENTS contig again: %s", strerror(-ret));
}

static int set_extents(int sfd, uint64_t nodeid, uint32_t backing,
		       const struct fuse_dmafs_extent *e, uint32_t nr);

/* pread/pwrite through the FUSE file with O_DIRECT user buffers. */
static void test_odirect(int sfd)
{
	struct t_file *fr = &files[1];
	struct {
		uint64_t off, len;
	} r[] = {
		{ 0, 4096 }, { 0, 256 * T_KiB }, { 252 * T_KiB, 8 * T_KiB },
		{ 0, 512 * T_KiB }, { 128 * T_KiB, 300 * T_KiB },
		{ 640 * T_KiB, 384 * T_KiB }, { 700 * T_KiB, 64 * T_KiB },
	};
	uint8_t *buf = t_alloc_aligned(T_MiB + 64 * T_KiB);
	int fd = open(path_of(fr), O_RDWR | O_DIRECT);
	unsigned long before;
	ssize_t n;
	long bad;

	if (fd < 0) {
		t_fail("open %s: %s", path_of(fr), strerror(errno));
		free(buf);
		return;
	}
	raw_fill(fr, 101);
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		before = daemon_ios();
		n = pread(fd, buf, r[i].len, r[i].off);
		CHECK(n == (ssize_t)r[i].len, "frag pread %" PRIu64 "+%" PRIu64
		      ": %zd (%s)", r[i].off, r[i].len, n, strerror(errno));
		if (n == (ssize_t)r[i].len &&
		    (bad = t_pattern_check(buf, n, 101, r[i].off)) >= 0)
			t_pattern_report(buf, n, 101, r[i].off, bad,
					 "frag O_DIRECT read");
		CHECK(daemon_ios() == before, "frag pread %" PRIu64 "+%" PRIu64
		      " went to the daemon", r[i].off, r[i].len);
	}
	/* short at EOF: size is 1 MiB + 3000 */
	n = pread(fd, buf, 64 * T_KiB, T_MiB);
	CHECK(n == 3000, "frag pread at 1 MiB: %zd, want 3000", n);
	if (n == 3000 && (bad = t_pattern_check(buf, 3000 & ~7, 101, T_MiB))
	    >= 0)
		t_pattern_report(buf, 3000 & ~7, 101, T_MiB, bad, "EOF read");
	n = pread(fd, buf, 4096, 2 * T_MiB);
	CHECK(n == 0, "frag pread past EOF: %zd", n);

	/* a hole goes to the daemon, which reads zeros */
	before = daemon_ios();
	n = pread(fd, buf, 64 * T_KiB, 512 * T_KiB);
	CHECK(n == 64 * (ssize_t)T_KiB && t_check_byte(buf, n, 0) < 0,
	      "frag pread of the hole: %zd (%s) or not zeros", n,
	      strerror(errno));
	CHECK(daemon_ios() > before, "hole read did not go to the daemon");

	/* writes through the map */
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		uint64_t seed = 200 + i;

		t_pattern_fill(buf, r[i].len, seed, r[i].off);
		before = daemon_ios();
		n = pwrite(fd, buf, r[i].len, r[i].off);
		CHECK(n == (ssize_t)r[i].len, "frag pwrite %" PRIu64 "+%"
		      PRIu64 ": %zd (%s)", r[i].off, r[i].len, n,
		      strerror(errno));
		CHECK(daemon_ios() == before, "frag pwrite %" PRIu64 "+%"
		      PRIu64 " went to the daemon", r[i].off, r[i].len);
		raw_check(fr, r[i].off, r[i].len, seed, "frag O_DIRECT write");
	}
	/* unaligned: the daemon does it */
	before = daemon_ios();
	n = pread(fd, buf, 4096, 100);
	CHECK(n == 4096, "unaligned pread: %zd (%s)", n, strerror(errno));
	CHECK(daemon_ios() > before, "unaligned read did not go to daemon");
	/*
	 * A write past EOF goes to the daemon (which has no room: ENOSPC).
	 * The failed extending write truncates the file back to its size,
	 * which drops the map: push it again.
	 */
	before = daemon_ios();
	n = pwrite(fd, buf, 4096, T_MiB + 4 * T_KiB);
	CHECK(n < 0 && errno == ENOSPC, "frag pwrite across EOF: %zd (%s), "
	      "want the daemon's ENOSPC", n, strerror(errno));
	CHECK(daemon_ios() > before, "write past EOF did not go to daemon");
	pthread_mutex_lock(&D.lock);
	fr->push_on_open = true;
	pthread_mutex_unlock(&D.lock);
	n = set_extents(sfd, fr->ino, D.backing_id, fr->ext, fr->nr);
	CHECK(!n, "SET_EXTENTS frag: %s", strerror(-n));
	close(fd);
	free(buf);
}

static int run_fixed(struct io_uring *ring, struct t_dmabuf *b, int fd,
		     uint8_t op, uint64_t boff, uint64_t doff, uint32_t len)
{
	struct t_req r = { .opcode = op, .fd = fd, .slot = 0, .boff = boff,
			   .doff = doff, .len = len };

	return t_req_run(ring, b, &r);
}

static void test_dmabuf(struct io_uring *ring, struct t_dmabuf *b)
{
	struct t_file *fr = &files[1], *fc = &files[0];
	struct {
		uint64_t off, len, boff;
	} r[] = {
		{ 0, 4096, 0 }, { 0, 256 * T_KiB, 4096 },
		{ 252 * T_KiB, 8 * T_KiB, 64 * T_KiB },
		{ 0, 512 * T_KiB, 0 }, { 128 * T_KiB, 300 * T_KiB, 8192 },
		{ 640 * T_KiB, 384 * T_KiB, T_MiB },
	};
	unsigned long before;
	int fd, fd_buffered, ret;
	long bad;

	fd_buffered = open(path_of(fr), O_RDWR);
	ret = t_buf_register(ring, 0, b, fd_buffered);
	CHECK(ret == -EINVAL, "dma-buf registration on a FUSE file without "
	      "O_DIRECT: %s, want EINVAL", strerror(-ret));
	close(fd_buffered);

	fd = open(path_of(fr), O_RDWR | O_DIRECT);
	ret = t_buf_register(ring, 0, b, fd);
	if (ret) {
		t_fail("dma-buf registration on %s: %s", fr->name,
		       strerror(-ret));
		close(fd);
		return;
	}
	raw_fill(fr, 301);
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		t_dmabuf_cpu_begin(b);
		memset(b->map, T_POISON, b->size);
		t_dmabuf_cpu_end(b);
		before = daemon_ios();
		ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, r[i].boff,
				r[i].off, r[i].len);
		CHECK(ret == (int)r[i].len, "READ_FIXED frag %" PRIu64 "+%"
		      PRIu64 ": %d (%s)", r[i].off, r[i].len, ret,
		      strerror(ret < 0 ? -ret : 0));
		CHECK(daemon_ios() == before, "READ_FIXED went to the daemon");
		t_dmabuf_cpu_begin(b);
		if (ret == (int)r[i].len &&
		    (bad = t_pattern_check(b->map + r[i].boff, r[i].len, 301,
					   r[i].off)) >= 0)
			t_pattern_report(b->map + r[i].boff, r[i].len, 301,
					 r[i].off, bad, "READ_FIXED");
		if (r[i].boff >= 8 && t_check_byte(b->map + r[i].boff - 8, 8,
						   T_POISON) >= 0)
			t_fail("READ_FIXED wrote before its range");
		if (t_check_byte(b->map + r[i].boff + r[i].len, 8, T_POISON)
		    >= 0)
			t_fail("READ_FIXED wrote past its range");
		t_dmabuf_cpu_end(b);
	}
	/* short at EOF, 0 past it */
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, T_MiB,
			64 * T_KiB);
	CHECK(ret == 3000, "READ_FIXED at 1 MiB: %d, want 3000", ret);
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 2 * T_MiB, 4096);
	CHECK(ret == 0, "READ_FIXED past EOF: %d, want 0", ret);
	/* holes and writes past EOF cannot go to the daemon */
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 512 * T_KiB,
			4096);
	CHECK(ret == -ENODATA, "READ_FIXED of the hole: %d, want ENODATA",
	      ret);
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 500 * T_KiB,
			64 * T_KiB);
	CHECK(ret == -ENODATA, "READ_FIXED into the hole: %d", ret);
	ret = run_fixed(ring, b, fd, IORING_OP_WRITE_FIXED, 0, T_MiB, 4096);
	CHECK(ret == -ENODATA, "WRITE_FIXED across EOF: %d, want ENODATA",
	      ret);
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 100, 4096);
	CHECK(ret == -EINVAL, "READ_FIXED unaligned: %d, want EINVAL", ret);

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		uint64_t seed = 400 + i;

		t_dmabuf_cpu_begin(b);
		t_pattern_fill(b->map + r[i].boff, r[i].len, seed, r[i].off);
		t_dmabuf_cpu_end(b);
		before = daemon_ios();
		ret = run_fixed(ring, b, fd, IORING_OP_WRITE_FIXED, r[i].boff,
				r[i].off, r[i].len);
		CHECK(ret == (int)r[i].len, "WRITE_FIXED frag %" PRIu64 "+%"
		      PRIu64 ": %d", r[i].off, r[i].len, ret);
		CHECK(daemon_ios() == before, "WRITE_FIXED went to daemon");
		raw_check(fr, r[i].off, r[i].len, seed, "WRITE_FIXED");
	}
	close(fd);	/* the registration keeps the file */

	/* another file than the target */
	fd = open(path_of(fc), O_RDWR | O_DIRECT);
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 0, 4096);
	CHECK(ret == -EBADF, "READ_FIXED on another file: %d", ret);
	close(fd);
}

static int inval(int sfd, uint64_t ino, uint64_t off, uint64_t len)
{
	struct fuse_dmafs_inval iv = { .nodeid = ino, .offset = off,
				       .length = len };

	return ioctl(sfd, FUSE_DEV_IOC_DMAFS_INVAL_EXTENTS, &iv) ? -errno : 0;
}

struct io_loop {
	int fd;
	struct t_dmabuf *b;
	atomic_bool stop;
	unsigned long ok, enodata, other;
	int other_err;
	bool user;		/* user-buffer preads instead of READ_FIXED */
	bool tolerate_dead;	/* ENOTCONN, EIO count as ok failures */
	unsigned long dead;
};

static void *io_loop_thread(void *arg)
{
	struct io_loop *l = arg;
	struct io_uring ring;
	uint8_t *buf = t_alloc_aligned(256 * T_KiB);
	uint64_t rng = 7;

	if (!l->user && (t_ring_init(&ring, 8, 0, 1) ||
			 t_buf_register(&ring, 0, l->b, l->fd))) {
		l->other++;
		l->other_err = -1;
		free(buf);
		return NULL;
	}
	while (!atomic_load(&l->stop)) {
		uint64_t off = (t_rand(&rng) % 12) * 64 * T_KiB;
		int ret;

		/*
		 * Pace the readers: the VM's emulated NVMe interrupts through
		 * a shared INTx line, and two threads hammering it for
		 * seconds (io-wq and a pread loop, with or without FUSE or
		 * dma-bufs) can end in "irq 20: nobody cared" under TCG.
		 */
		usleep(500);

		if (l->user) {
			ssize_t n = pread(l->fd, buf, 256 * T_KiB, off);

			ret = n < 0 ? -errno : (int)n;
		} else {
			ret = run_fixed(&ring, l->b, l->fd,
					IORING_OP_READ_FIXED, 0, off,
					256 * T_KiB);
		}
		if (ret == 256 * (int)T_KiB || (ret > 0 && off + ret == T_MiB))
			l->ok++;
		else if (ret == -ENODATA)
			l->enodata++;
		else if (l->tolerate_dead && (ret == -ENOTCONN || ret == -EIO))
			l->dead++;
		else if (ret >= 0 && off >= T_MiB)
			l->ok++;
		else {
			l->other++;
			l->other_err = ret;
		}
	}
	if (!l->user)
		io_uring_queue_exit(&ring);
	free(buf);
	return NULL;
}

static void test_inval(int sfd, struct io_uring *ring, struct t_dmabuf *b)
{
	struct t_file *fc = &files[0];
	struct io_loop l[2];
	pthread_t th[2];
	int fd = open(path_of(fc), O_RDWR | O_DIRECT);
	uint8_t *buf = t_alloc_aligned(T_MiB);
	unsigned long before;
	ssize_t n;
	int ret;
	long bad;

	raw_fill(fc, 501);
	ret = t_buf_register(ring, 0, b, fd);
	CHECK(!ret, "register on contig: %s", strerror(-ret));

	/* remove [256K, 320K): the rest stays mapped, right data both sides */
	ret = inval(sfd, fc->ino, 256 * T_KiB, 64 * T_KiB);
	CHECK(!ret, "INVAL_EXTENTS partial: %s", strerror(-ret));
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 256 * T_KiB,
			4096);
	CHECK(ret == -ENODATA, "READ_FIXED of an invalidated range: %d", ret);
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 316 * T_KiB,
			8192);
	CHECK(ret == -ENODATA, "READ_FIXED across the invalidated end: %d",
	      ret);
	before = daemon_ios();
	n = pread(fd, buf, 256 * T_KiB, 0);
	CHECK(n == 256 * (ssize_t)T_KiB && daemon_ios() == before,
	      "pread left of the invalidated range: %zd, daemon %lu", n,
	      daemon_ios() - before);
	if (n > 0 && (bad = t_pattern_check(buf, n, 501, 0)) >= 0)
		t_pattern_report(buf, n, 501, 0, bad, "left of INVAL");
	n = pread(fd, buf, 704 * T_KiB, 320 * T_KiB);
	CHECK(n == 704 * (ssize_t)T_KiB && daemon_ios() == before,
	      "pread right of the invalidated range: %zd", n);
	if (n > 0 && (bad = t_pattern_check(buf, n, 501, 320 * T_KiB)) >= 0)
		t_pattern_report(buf, n, 501, 320 * T_KiB, bad,
				 "right of INVAL");
	/* the daemon still serves the removed range */
	n = pread(fd, buf, 64 * T_KiB, 256 * T_KiB);
	CHECK(n == 64 * (ssize_t)T_KiB && daemon_ios() > before,
	      "pread of the invalidated range via the daemon: %zd", n);
	if (n > 0 && (bad = t_pattern_check(buf, n, 501, 256 * T_KiB)) >= 0)
		t_pattern_report(buf, n, 501, 256 * T_KiB, bad, "daemon read");
	ret = inval(sfd, 12345, 0, ~0ULL);
	CHECK(!ret, "INVAL_EXTENTS uncached nodeid: %s", strerror(-ret));
	struct fuse_dmafs_inval iv = { .nodeid = fc->ino, .flags = 1 };

	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_INVAL_EXTENTS, &iv) ? errno : 0;
	CHECK(ret == EINVAL, "INVAL_EXTENTS flags: %s", strerror(ret));

	/* whole-file invalidation while dma-buf and user-buffer reads run */
	for (int round = 0; round < 3; round++) {
		ret = set_extents(sfd, fc->ino, D.backing_id, fc->ext, fc->nr);
		CHECK(!ret, "SET_EXTENTS: %s", strerror(-ret));
		for (int i = 0; i < 2; i++) {
			memset(&l[i], 0, sizeof(l[i]));
			l[i].fd = fd;
			l[i].b = b;
			l[i].user = i == 1;
			pthread_create(&th[i], NULL, io_loop_thread, &l[i]);
		}
		usleep(200000);
		ret = inval(sfd, fc->ino, 0, ~0ULL);
		CHECK(!ret, "INVAL_EXTENTS under I/O: %s", strerror(-ret));
		usleep(100000);
		for (int i = 0; i < 2; i++) {
			atomic_store(&l[i].stop, true);
			pthread_join(th[i], NULL);
			CHECK(!l[i].other, "%s reads during INVAL: %lu "
			      "unexpected results (last %d)",
			      l[i].user ? "user" : "dma-buf", l[i].other,
			      l[i].other_err);
		}
		t_info("INVAL round %d: dma-buf %lu ok %lu ENODATA, user %lu "
		       "ok", round, l[0].ok, l[0].enodata, l[1].ok);
		CHECK(l[0].enodata, "no dma-buf read saw the map gone");
	}
	ret = set_extents(sfd, fc->ino, D.backing_id, fc->ext, fc->nr);
	CHECK(!ret, "SET_EXTENTS: %s", strerror(-ret));
	close(fd);
	free(buf);
}

static void test_truncate(int sfd, struct io_uring *ring, struct t_dmabuf *b)
{
	struct t_file *fc = &files[0];
	int fd = open(path_of(fc), O_RDWR | O_DIRECT);
	uint8_t *buf = t_alloc_aligned(64 * T_KiB);
	unsigned long before;
	ssize_t n;
	int ret;

	ret = t_buf_register(ring, 0, b, fd);
	CHECK(!ret, "register on contig: %s", strerror(-ret));
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 0, 4096);
	CHECK(ret == 4096, "READ_FIXED before fallocate: %d", ret);
	/* fallocate drops the map; the daemon pushes it again on open */
	ret = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096) ? -errno : 0;
	CHECK(!ret, "fallocate: %s", strerror(-ret));
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 0, 4096);
	CHECK(ret == -ENODATA, "READ_FIXED after fallocate: %d, want ENODATA",
	      ret);
	ret = set_extents(sfd, fc->ino, D.backing_id, fc->ext, fc->nr);
	CHECK(!ret, "SET_EXTENTS: %s", strerror(-ret));
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 0, 4096);
	CHECK(ret == 4096, "READ_FIXED after SET_EXTENTS: %d", ret);

	/* truncate drops the map; this daemon does not push it again */
	ret = ftruncate(fd, 512 * T_KiB) ? -errno : 0;
	CHECK(!ret, "ftruncate: %s", strerror(-ret));
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 0, 4096);
	CHECK(ret == -ENODATA, "READ_FIXED after truncate: %d, want ENODATA",
	      ret);
	before = daemon_ios();
	n = pread(fd, buf, 4096, 0);
	CHECK(n == 4096 && daemon_ios() > before,
	      "pread after truncate: %zd, did%s go to the daemon", n,
	      daemon_ios() > before ? "" : " not");
	close(fd);
	fd = open(path_of(fc), O_RDWR | O_DIRECT);
	ret = run_fixed(ring, b, fd, IORING_OP_READ_FIXED, 0, 0, 4096);
	CHECK(ret == -EBADF, "READ_FIXED on a new open file: %d", ret);
	close(fd);
	free(buf);
}

/* ---- the server changes a file behind the kernel's back ------------------ */

/* Whether a 4 KiB O_DIRECT pread at 0 of fd went to the device directly. */
static bool read_via_map(int fd, uint8_t *buf)
{
	unsigned long before = daemon_ios();
	ssize_t n = pread(fd, buf, 4096, 0);

	if (n != 4096) {
		t_fail("O_DIRECT pread: %zd (%s)", n, strerror(errno));
		return false;
	}
	return daemon_ios() == before;
}

/*
 * The map goes when the server may reuse the file's blocks without having
 * invalidated it: FUSE_NOTIFY_INVAL_INODE, a size that shrank in the
 * attributes the server returns, the last link unlinked.
 */
static void test_server_changes(int sfd)
{
	struct t_file *f = &files[1];
	uint8_t *buf = t_alloc_aligned(4096);
	uint64_t size = f->size;
	struct statx stx;
	int fd, ret;

	fd = open(path_of(f), O_RDWR | O_DIRECT);
	if (fd < 0 || !buf) {
		t_fail("open %s: %s", path_of(f), strerror(errno));
		goto out;
	}
	CHECK(read_via_map(fd, buf), "%s: no map after open", f->name);

	ret = fuse_lowlevel_notify_inval_inode(D.se, f->ino, -1, 0);
	CHECK(!ret, "FUSE_NOTIFY_INVAL_INODE: %s", strerror(-ret));
	CHECK(!read_via_map(fd, buf),
	      "the map survived FUSE_NOTIFY_INVAL_INODE");
	ret = set_extents(sfd, f->ino, D.backing_id, f->ext, f->nr);
	CHECK(!ret, "SET_EXTENTS: %s", strerror(-ret));
	CHECK(read_via_map(fd, buf), "no map after SET_EXTENTS");

	/* the server shrinks the file and only says so in its attributes */
	pthread_mutex_lock(&D.lock);
	f->size = 768 * T_KiB;
	pthread_mutex_unlock(&D.lock);
	ret = statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_SIZE,
		    &stx) ? -errno : 0;
	CHECK(!ret && stx.stx_size == 768 * T_KiB,
	      "statx after the server shrank the file: %s, size %llu",
	      strerror(-ret), (unsigned long long)stx.stx_size);
	CHECK(!read_via_map(fd, buf),
	      "the map survived a size that shrank behind the kernel");
	pthread_mutex_lock(&D.lock);
	f->size = size;
	pthread_mutex_unlock(&D.lock);
	ret = statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_SIZE,
		    &stx) ? -errno : 0;
	CHECK(!ret && stx.stx_size == size, "statx: size %llu, want %llu",
	      (unsigned long long)stx.stx_size, (unsigned long long)size);
	ret = set_extents(sfd, f->ino, D.backing_id, f->ext, f->nr);
	CHECK(!ret, "SET_EXTENTS: %s", strerror(-ret));
	CHECK(read_via_map(fd, buf), "no map after SET_EXTENTS");

	/* unlink of the last link; the file stays open */
	ret = unlink(path_of(f)) ? -errno : 0;
	CHECK(!ret, "unlink %s: %s", path_of(f), strerror(-ret));
	CHECK(!read_via_map(fd, buf),
	      "the map of an unlinked file survived its last link");
	close(fd);
out:
	free(buf);
}

static int set_window(int sfd, uint32_t backing, uint64_t off, uint64_t len)
{
	struct fuse_dmafs_window w = {
		.backing_id = backing, .dev_offset = off, .length = len,
	};

	return ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_WINDOW, &w) ? -errno : 0;
}

/*
 * SET_WINDOW: maps only inside the window, which only narrows and never
 * past an installed map.  Run last on the main daemon: the window stays.
 */
static void test_window(int sfd, uint64_t dev_size)
{
	const int id = D.backing_id;
	const struct t_file *f = &files[0];
	const uint64_t lo = 16 * T_MiB, hi = 48 * T_MiB;
	struct fuse_dmafs_extent e = { 0, T_MiB, 0 };
	struct fuse_dmafs_window w;
	int ret, status;
	pid_t pid;

	ret = set_extents(sfd, f->ino, id, f->ext, f->nr);
	CHECK(!ret, "SET_EXTENTS contig: %s", strerror(-ret));

	memset(&w, 0, sizeof(w));
	w.backing_id = id;
	w.length = dev_size;
	w.flags = 1;
	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_WINDOW, &w) ? errno : 0;
	CHECK(ret == EINVAL, "SET_WINDOW flags: %s", strerror(ret));
	w.flags = 0;
	w.reserved[0] = 1;
	ret = ioctl(sfd, FUSE_DEV_IOC_DMAFS_SET_WINDOW, &w) ? errno : 0;
	CHECK(ret == EINVAL, "SET_WINDOW reserved: %s", strerror(ret));
	ret = set_window(sfd, id, lo, 0);
	CHECK(ret == -EINVAL, "SET_WINDOW length 0: %s", strerror(-ret));
	ret = set_window(sfd, id, lo + lba / 2, T_MiB);
	CHECK(ret == -EINVAL, "SET_WINDOW unaligned: %s", strerror(-ret));
	ret = set_window(sfd, id, ~0ULL & ~65535ULL, T_MiB);
	CHECK(ret == -EINVAL, "SET_WINDOW overflow: %s", strerror(-ret));
	ret = set_window(sfd, id, 0, dev_size + 65536);
	CHECK(ret == -EINVAL, "SET_WINDOW past the device end: %s",
	      strerror(-ret));
	ret = set_window(sfd, id + 1000, lo, hi - lo);
	CHECK(ret == -EBADF, "SET_WINDOW unknown backing id: %s",
	      strerror(-ret));
	pid = fork();
	if (pid == 0) {
		if (drop_cap_sys_admin())
			_exit(2);
		_exit(set_window(sfd, id, lo, hi - lo) == -EPERM ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "SET_WINDOW without CAP_SYS_ADMIN: not EPERM (status %#x)",
	      status);

	/* contig's map is at [16M, 17M): a window without it is refused */
	ret = set_window(sfd, id, lo + T_MiB, hi - lo - T_MiB);
	CHECK(ret == -EBUSY, "SET_WINDOW leaving contig's map outside: %s, "
	      "want EBUSY", strerror(-ret));
	ret = set_window(sfd, id, lo, hi - lo);
	CHECK(!ret, "SET_WINDOW [16M, 48M): %s", strerror(-ret));

	e.dev_offset = lo - T_MiB;
	ret = set_extents(sfd, f->ino, id, &e, 1);
	CHECK(ret == -EINVAL, "SET_EXTENTS below the window: %s, want EINVAL",
	      strerror(-ret));
	e.dev_offset = hi - T_MiB / 2;
	ret = set_extents(sfd, f->ino, id, &e, 1);
	CHECK(ret == -EINVAL, "SET_EXTENTS across the window's end: %s, want "
	      "EINVAL", strerror(-ret));
	e.dev_offset = hi - T_MiB;
	ret = set_extents(sfd, f->ino, id, &e, 1);
	CHECK(!ret, "SET_EXTENTS at the window's end: %s", strerror(-ret));
	ret = set_window(sfd, id, 0, dev_size);
	CHECK(ret == -EINVAL, "SET_WINDOW widening: %s, want EINVAL",
	      strerror(-ret));
	ret = set_window(sfd, id, lo, hi - lo);
	CHECK(!ret, "SET_WINDOW to the same window: %s", strerror(-ret));
	ret = set_extents(sfd, f->ino, id, f->ext, f->nr);
	CHECK(!ret, "SET_EXTENTS contig inside the window: %s",
	      strerror(-ret));
}

/* ---- a daemon killed during I/O ---------------------------------------- */

static void test_kill(const char *dev, struct t_dmabuf *b)
{
	int pfd[2], status, fd, ret;
	struct io_loop l[2];
	pthread_t th[2];
	char path[128];
	pid_t pid;

	if (pipe(pfd))
		return t_fail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		/* a fresh daemon: its own session, mount and registration */
		close(pfd[0]);
		D.se = NULL;
		files[0].size = T_MiB;
		files[0].push_on_open = true;
		if (daemon_setup(dev))
			_exit(1);
		/* nobody holds the claim: a plain fd is not good enough */
		close(D.dev_fd);
		fd = open(dev, O_RDWR | O_DIRECT);
		ret = backing_open(fuse_session_fd(D.se), fd,
				   FUSE_BACKING_TYPE_BLOCKDEV);
		if (ret != -EINVAL)
			_exit(3);
		close(fd);
		D.dev_fd = open(dev, O_RDWR | O_DIRECT | O_EXCL | O_CLOEXEC);
		D.backing_id = backing_open(fuse_session_fd(D.se), D.dev_fd,
					    FUSE_BACKING_TYPE_BLOCKDEV);
		if (D.backing_id <= 0)
			_exit(1);
		if (write(pfd[1], D.mnt, sizeof(D.mnt)) != sizeof(D.mnt))
			_exit(1);
		fuse_session_loop(D.se);
		_exit(0);
	}
	close(pfd[1]);
	char mnt[64];

	if (read(pfd[0], mnt, sizeof(mnt)) != sizeof(mnt)) {
		close(pfd[0]);
		waitpid(pid, &status, 0);
		return t_fail("the forked daemon did not start (status %#x; "
			      "exit 3: BACKING_OPEN of a device nobody holds, "
			      "opened without O_EXCL, not EINVAL)", status);
	}
	close(pfd[0]);
	snprintf(path, sizeof(path), "%s/contig", mnt);
	fd = open(path, O_RDWR | O_DIRECT);
	if (fd < 0) {
		t_fail("open %s: %s", path, strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return;
	}
	for (int i = 0; i < 2; i++) {
		memset(&l[i], 0, sizeof(l[i]));
		l[i].fd = fd;
		l[i].b = b;
		l[i].user = i == 1;
		l[i].tolerate_dead = true;
		pthread_create(&th[i], NULL, io_loop_thread, &l[i]);
	}
	usleep(300000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	usleep(300000);
	for (int i = 0; i < 2; i++) {
		atomic_store(&l[i].stop, true);
		pthread_join(th[i], NULL);
		t_info("daemon killed: %s reads %lu ok, %lu ENOTCONN/EIO, "
		       "%lu ENODATA", l[i].user ? "user" : "dma-buf", l[i].ok,
		       l[i].dead, l[i].enodata);
		CHECK(!l[i].other && !l[i].enodata, "%s reads with a dead "
		      "daemon: %lu unexpected results (last %d)",
		      l[i].user ? "user" : "dma-buf", l[i].other + l[i].enodata,
		      l[i].other_err);
		CHECK(l[i].dead, "%s reads never failed after the daemon died",
		      l[i].user ? "user" : "dma-buf");
	}
	/* after the death, everything fails cleanly */
	{
		struct io_uring ring;
		uint8_t *buf = t_alloc_aligned(4096);
		ssize_t n = pread(fd, buf, 4096, 0);

		CHECK(n < 0 && (errno == ENOTCONN || errno == EIO),
		      "pread after the daemon died: %zd (%s)", n,
		      strerror(errno));
		free(buf);
		if (!t_ring_init(&ring, 4, 0, 1)) {
			ret = t_buf_register(&ring, 0, b, fd);
			CHECK(ret == -ENOTCONN, "dma-buf registration with a "
			      "dead daemon: %s", strerror(-ret));
			io_uring_queue_exit(&ring);
		}
	}
	close(fd);
	if (umount2(mnt, MNT_DETACH))
		t_fail("umount %s: %s", mnt, strerror(errno));
	rmdir(mnt);
}

/* ---- allocation failures (fault injection) ----------------------------- */

#define FAIL_NTH	"/proc/thread-self/fail-nth"
#define FAILSLAB	"/sys/kernel/debug/failslab/"

/* O_DIRECT pread of 4 KiB at @off; true if the daemon did not serve it. */
static bool read_via_map_at(int fd, uint8_t *buf, uint64_t off)
{
	unsigned long before = daemon_ios();

	if (pread(fd, buf, 4096, off) != 4096) {
		t_fail("O_DIRECT pread at %" PRIu64 ": %s", off,
		       strerror(errno));
		return false;
	}
	return daemon_ios() == before;
}

/*
 * The forked daemon of test_enomem(): registers the device, opened O_EXCL,
 * and invalidates a block in the middle of contig's only extent (which
 * splits it: a new map is allocated) with the Nth slab allocation of the
 * ioctl failing, N = 1, 2, ... until the ioctl succeeds.  Returns an exit
 * status.
 */
static int enomem_child(const char *dev)
{
	struct t_file *f = &files[0];
	int fd, nth_fd, sfd, ret = -EIO, injected = 0;
	uint8_t *buf = t_alloc_aligned(4096);
	char s[16];

	D.se = NULL;
	f->size = T_MiB;
	f->push_on_open = true;
	if (!buf || daemon_setup(dev))
		return T_EXIT_FAIL;
	sfd = fuse_session_fd(D.se);
	D.backing_id = backing_open(sfd, D.dev_fd, FUSE_BACKING_TYPE_BLOCKDEV);
	if (D.backing_id <= 0) {
		t_fail("BACKING_OPEN: %s", strerror(-D.backing_id));
		goto out_stop;
	}
	pthread_create(&D.thread, NULL, daemon_thread, NULL);
	fd = open(path_of(f), O_RDWR | O_DIRECT);
	nth_fd = open(FAIL_NTH, O_RDWR);
	if (fd < 0 || nth_fd < 0) {
		t_fail("open %s or " FAIL_NTH ": %s", path_of(f),
		       strerror(errno));
		goto out_close;
	}
	CHECK(read_via_map_at(fd, buf, 64 * T_KiB), "%s: no map after open",
	      f->name);
	for (int nth = 1; nth <= 64; nth++) {
		snprintf(s, sizeof(s), "%d", nth);
		if (pwrite(nth_fd, s, strlen(s), 0) < 0) {
			t_fail("write " FAIL_NTH ": %s", strerror(errno));
			break;
		}
		ret = inval(sfd, f->ino, 64 * T_KiB, 4096);
		/* reads 0 once the failure was injected */
		memset(s, 0, sizeof(s));
		if (pread(nth_fd, s, sizeof(s) - 1, 0) < 0)
			s[0] = '?';
		if (pwrite(nth_fd, "0", 1, 0) < 0)
			t_fail("write " FAIL_NTH ": %s", strerror(errno));
		if (!ret)
			break;
		CHECK(ret == -ENOMEM && atoi(s) == 0,
		      "INVAL_EXTENTS, slab allocation %d failing: %s "
		      "(fail-nth now '%s')", nth, strerror(-ret), s);
		injected++;
		/* a failed invalidation changes nothing */
		CHECK(read_via_map_at(fd, buf, 64 * T_KiB),
		      "INVAL_EXTENTS failed with ENOMEM, but its range left "
		      "the map");
		CHECK(read_via_map_at(fd, buf, 0),
		      "INVAL_EXTENTS failed with ENOMEM, but the map is gone");
	}
	t_info("INVAL_EXTENTS failed %d time(s) with ENOMEM before it "
	       "succeeded", injected);
	CHECK(injected > 0, "no allocation of INVAL_EXTENTS could be failed");
	CHECK(!ret, "INVAL_EXTENTS: %s", strerror(-ret));
	CHECK(!read_via_map_at(fd, buf, 64 * T_KiB),
	      "the invalidated block is still mapped");
	CHECK(read_via_map_at(fd, buf, 0), "the rest of the map is gone");
out_close:
	if (nth_fd >= 0)
		close(nth_fd);
	if (fd >= 0)
		close(fd);
out_stop:
	daemon_stop();
	if (D.dev_fd >= 0)
		close(D.dev_fd);
	free(buf);
	return t_exit_status(false);
}

/*
 * Allocation failures must undo what they did: a forked daemon makes
 * INVAL_EXTENTS fail at each of its allocations in turn (enomem_child()).
 * A reference on its registration left behind shows when the connection
 * goes: the kernel warns (fuse_backing_id_free(), a kernel log report that
 * fails the test), or the device stays claimed by the daemon's O_EXCL open.
 * Needs fault injection
 * (CONFIG_FAILSLAB, CONFIG_FAULT_INJECTION_DEBUG_FS), which the debug
 * kernel has.
 */
static void test_enomem(const char *dev)
{
	int status, fd = -1;
	pid_t pid;

	if (access(FAIL_NTH, W_OK)) {
		CHECK(access("/sys/kernel/debug/kmemleak", F_OK),
		      "the debug kernel has no fault injection (" FAIL_NTH
		      ": %s)", strerror(errno));
		t_info("no fault injection in this kernel: allocation "
		       "failures are checked on the debug kernel");
		return;
	}
	/* fail GFP_KERNEL allocations too; no stack dump for each failure */
	if (t_write_str(FAILSLAB "ignore-gfp-wait", "N") ||
	    t_write_str(FAILSLAB "verbose", "0"))
		return t_fail(FAILSLAB ": %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(enomem_child(dev));
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		status = -1;
	t_write_str(FAILSLAB "ignore-gfp-wait", "Y");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == T_EXIT_PASS,
	      "the allocation-failure daemon failed (status %#x)", status);
	/* the connection goes with the daemon's last fd and the umount */
	for (int i = 0; i < 40; i++) {
		fd = open(dev, O_RDWR | O_EXCL);
		if (fd >= 0 || errno != EBUSY)
			break;
		usleep(50000);
	}
	CHECK(fd >= 0, "%s still claimed 2 s after its daemon exited: a "
	      "reference on its registration leaked (%s)", dev,
	      strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void check_no_tokens(void)
{
	struct t_io_stats st;

	/* registrations are released when the rings are gone */
	for (int i = 0; i < 50; i++) {
		if (t_dmabuf_io_stats(&st) || !st.tokens)
			break;
		usleep(100000);
	}
	if (!t_dmabuf_io_stats(&st))
		CHECK(!st.tokens, "%ld dma-buf tokens left after all rings "
		      "were closed", st.tokens);
}

int main(int argc, char **argv)
{
	struct io_uring ring;
	struct t_dmabuf b;
	uint64_t dev_size;
	int opt, ret, sfd;

	t_prog = "fuse_forward";
	while ((opt = getopt(argc, argv, "s:")) != -1) {
		if (opt != 's' || t_src_parse(optarg, &src)) {
			fprintf(stderr, "usage: %s DEVICE [-s udmabuf|vgem]\n",
				argv[0]);
			return T_EXIT_FAIL;
		}
	}
	if (optind >= argc) {
		t_skip("no device argument");
		return T_EXIT_SKIP;
	}
	raw_fd = open(argv[optind], O_RDWR | O_DIRECT);
	if (raw_fd < 0) {
		t_skip("%s: %s", argv[optind], strerror(errno));
		return T_EXIT_SKIP;
	}
	if (ioctl(raw_fd, BLKSSZGET, &lba) ||
	    ioctl(raw_fd, BLKGETSIZE64, &dev_size) || dev_size < 64 * T_MiB) {
		t_fail("%s: no block device of at least 64 MiB", argv[optind]);
		return T_EXIT_FAIL;
	}
	ret = t_dmabuf_create(src, BUF_SIZE, true, &b);
	if (ret == -ENODEV) {
		t_skip("no %s device", t_src_name(src));
		return T_EXIT_SKIP;
	}
	if (ret) {
		t_fail("creating a %s dma-buf: %s", t_src_name(src),
		       strerror(-ret));
		return T_EXIT_FAIL;
	}
	t_debugfs_mount();
	signal(SIGPIPE, SIG_IGN);

	ret = daemon_setup(argv[optind]);
	if (ret) {
		t_fail("starting the daemon: %s", strerror(-ret));
		return T_EXIT_FAIL;
	}
	sfd = fuse_session_fd(D.se);
	pthread_create(&D.thread, NULL, daemon_thread, NULL);
	if (t_ring_init(&ring, 8, 0, 1)) {
		t_fail("io_uring");
		daemon_stop();
		return T_EXIT_FAIL;
	}
	/* look the files up: the ioctls need them in the inode cache */
	for (int i = 0; i < NR_FILES; i++) {
		struct stat st;

		if (stat(path_of(&files[i]), &st) ||
		    (uint64_t)st.st_size != files[i].size)
			t_fail("stat %s", path_of(&files[i]));
	}

	t_info("feature probe");
	test_features(sfd);
	t_info("backing open");
	test_backing_open(sfd, &ring, &b);
	if (D.backing_id <= 0)
		goto out;
	t_info("SET_EXTENTS validation");
	test_set_extents_errors(sfd, dev_size);
	t_info("O_DIRECT through the map");
	test_odirect(sfd);
	t_info("dma-buf through the map (%s)", t_src_name(src));
	test_dmabuf(&ring, &b);
	t_info("INVAL_EXTENTS");
	test_inval(sfd, &ring, &b);
	t_info("truncate and fallocate");
	test_truncate(sfd, &ring, &b);
	t_info("the server changes a file behind the kernel's back");
	test_server_changes(sfd);
	t_info("SET_WINDOW");
	test_window(sfd, dev_size);
out:
	io_uring_queue_exit(&ring);
	daemon_stop();
	/* the claim goes with the connection, once the kernel lets it go */
	close(D.dev_fd);
	D.dev_fd = -1;
	t_info("daemon killed during I/O");
	test_kill(argv[optind], &b);
	t_info("allocation failures in INVAL_EXTENTS");
	test_enomem(argv[optind]);
	check_no_tokens();
	t_dmabuf_destroy(&b);
	close(raw_fd);
	return t_exit_status(false);
}
