// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Helpers shared by the dma-buf I/O test programs; see helpers.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/fs.h>
#include <linux/udmabuf.h>

#include <xf86drm.h>

#include "helpers.h"

const char *t_prog = "test";
int t_failures;

/* ---- output ------------------------------------------------------------ */

static void t_vmsg(const char *tag, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s", t_prog, tag);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void t_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	t_vmsg("", fmt, ap);
	va_end(ap);
}

void t_fail(const char *fmt, ...)
{
	va_list ap;

	t_failures++;
	va_start(ap, fmt);
	t_vmsg("FAIL: ", fmt, ap);
	va_end(ap);
}

void t_skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	t_vmsg("SKIP: ", fmt, ap);
	va_end(ap);
}

int t_exit_status(bool skipped)
{
	if (t_failures) {
		t_info("%d failure(s)", t_failures);
		return T_EXIT_FAIL;
	}
	return skipped ? T_EXIT_SKIP : T_EXIT_PASS;
}

double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the target -------------------------------------------------------- */

static uint64_t t_read_sysfs_u64(const char *path)
{
	unsigned long long v = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

int t_target_open(const char *path, struct t_target *t)
{
	struct statx stx;
	struct stat st;
	int flags = O_RDWR | O_DIRECT | O_CLOEXEC;
	int ret;

	memset(t, 0, sizeof(*t));
	t->path = path;
	t->fd = -1;
	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		t->is_blkdev = true;
		flags |= O_EXCL;
	} else if (!S_ISREG(st.st_mode)) {
		t_info("%s: neither a block device nor a regular file", path);
		return -EINVAL;
	}
	t->fd = open(path, flags);
	if (t->fd < 0) {
		ret = -errno;
		t_info("open %s O_DIRECT%s: %s", path,
		       t->is_blkdev ? " O_EXCL" : "", strerror(-ret));
		return ret;
	}
	if (t->is_blkdev) {
		char sys[128];
		int lba;

		if (ioctl(t->fd, BLKGETSIZE64, &t->size) < 0 ||
		    ioctl(t->fd, BLKSSZGET, &lba) < 0) {
			ret = -errno;
			goto out_close;
		}
		t->lba = lba;
		snprintf(sys, sizeof(sys),
			 "/sys/dev/block/%u:%u/queue/max_hw_sectors_kb",
			 major(st.st_rdev), minor(st.st_rdev));
		t->max_io = t_read_sysfs_u64(sys) * 1024;
	} else {
		t->size = st.st_size;
	}
	if (statx(AT_FDCWD, path, 0, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		t->mem_align = stx.stx_dio_mem_align;
		if (!t->is_blkdev)
			t->lba = stx.stx_dio_offset_align;
	}
	if (!t->lba)
		t->lba = 4096;
	return 0;

out_close:
	close(t->fd);
	t->fd = -1;
	return ret;
}

void t_target_close(struct t_target *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

int t_target_reopen(const struct t_target *t, int flags)
{
	int fd = open(t->path, flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* ---- dma-buf sources --------------------------------------------------- */

static const char *const t_src_names[] = {
	[T_SRC_UDMABUF] = "udmabuf",
	[T_SRC_VGEM] = "vgem",
	[T_SRC_SELFTEST] = "selftest",
};

const char *t_src_name(enum t_src src)
{
	return t_src_names[src];
}

int t_src_parse(const char *name, enum t_src *src)
{
	for (unsigned int i = 0; i < sizeof(t_src_names) / sizeof(*t_src_names);
	     i++) {
		if (!strcmp(name, t_src_names[i])) {
			*src = i;
			return 0;
		}
	}
	return -EINVAL;
}

int t_vgem_open(void)
{
	DIR *dir = opendir("/dev/dri");
	struct dirent *de;
	int found = -ENODEV;

	if (!dir)
		return -ENODEV;
	while ((de = readdir(dir))) {
		char path[300];
		drmVersionPtr v;
		int fd;

		if (strncmp(de->d_name, "card", 4))
			continue;
		snprintf(path, sizeof(path), "/dev/dri/%s", de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		v = drmGetVersion(fd);
		if (v && !strcmp(v->name, "vgem")) {
			drmFreeVersion(v);
			found = fd;
			break;
		}
		if (v)
			drmFreeVersion(v);
		close(fd);
	}
	closedir(dir);
	return found;
}

static int t_udmabuf_create(size_t size, int *dmabuf_fd)
{
	struct udmabuf_create c;
	int dev, memfd, ret;

	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return errno == ENOENT ? -ENODEV : -errno;
	memfd = memfd_create("dmafs-test", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (memfd < 0) {
		ret = -errno;
		goto out_close_dev;
	}
	if (ftruncate(memfd, size) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		ret = -errno;
		goto out_close_memfd;
	}
	memset(&c, 0, sizeof(c));
	c.memfd = memfd;
	c.flags = UDMABUF_FLAGS_CLOEXEC;
	c.offset = 0;
	c.size = size;
	ret = ioctl(dev, UDMABUF_CREATE, &c);
	if (ret < 0) {
		ret = -errno;
		goto out_close_memfd;
	}
	*dmabuf_fd = ret;
	ret = 0;
	/* The udmabuf holds the memfd's pages; the fds are not needed. */
out_close_memfd:
	close(memfd);
out_close_dev:
	close(dev);
	return ret;
}

int t_vgem_export(size_t size, bool rdwr, int *dmabuf_fd)
{
	struct drm_mode_create_dumb c;
	struct drm_gem_close gc;
	int drm, ret;

	drm = t_vgem_open();
	if (drm < 0)
		return drm;
	/* 1024 pixels of 32 bits: one 4 KiB page per row. */
	memset(&c, 0, sizeof(c));
	c.width = 1024;
	c.bpp = 32;
	c.height = size / 4096;
	if (drmIoctl(drm, DRM_IOCTL_MODE_CREATE_DUMB, &c) < 0) {
		ret = -errno;
		goto out_close_drm;
	}
	if (c.size < size) {
		t_info("vgem dumb buffer of %zu bytes is only %llu", size,
		       (unsigned long long)c.size);
		ret = -ENOSPC;
		goto out_close_handle;
	}
	ret = drmPrimeHandleToFD(drm, c.handle,
				 DRM_CLOEXEC | (rdwr ? DRM_RDWR : 0),
				 dmabuf_fd);
	if (ret)
		ret = -errno;
out_close_handle:
	/* The dma-buf holds the object; the handle and DRM fd can go. */
	memset(&gc, 0, sizeof(gc));
	gc.handle = c.handle;
	drmIoctl(drm, DRM_IOCTL_GEM_CLOSE, &gc);
out_close_drm:
	close(drm);
	return ret;
}

int t_dmabuf_create(enum t_src src, size_t size, bool map, struct t_dmabuf *b)
{
	struct stat st;
	int ret;

	memset(b, 0, sizeof(*b));
	b->src = src;
	b->fd = -1;
	b->exporter_fd = -1;
	b->size = size;
	switch (src) {
	case T_SRC_UDMABUF:
		ret = t_udmabuf_create(size, &b->fd);
		break;
	case T_SRC_VGEM:
		ret = t_vgem_export(size, true, &b->fd);
		break;
	case T_SRC_SELFTEST:
		b->fd = memfd_create("dmafs-selftest", MFD_CLOEXEC);
		ret = b->fd < 0 ? -errno : 0;
		if (!ret && ftruncate(b->fd, size) < 0)
			ret = -errno;
		break;
	default:
		ret = -EINVAL;
	}
	if (ret)
		goto out_destroy;
	if (fstat(b->fd, &st) < 0) {
		ret = -errno;
		goto out_destroy;
	}
	b->ino = st.st_ino;
	if (map) {
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       b->fd, 0);

		if (p == MAP_FAILED) {
			ret = -errno;
			t_info("mmap of the %s buffer: %s", t_src_name(src),
			       strerror(-ret));
			goto out_destroy;
		}
		b->map = p;
	}
	return 0;

out_destroy:
	t_dmabuf_destroy(b);
	return ret;
}

void t_dmabuf_unmap(struct t_dmabuf *b)
{
	if (b->map)
		munmap(b->map, b->size);
	b->map = NULL;
}

void t_dmabuf_close_fd(struct t_dmabuf *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

void t_dmabuf_destroy(struct t_dmabuf *b)
{
	t_dmabuf_unmap(b);
	t_dmabuf_close_fd(b);
	if (b->exporter_fd >= 0)
		close(b->exporter_fd);
	b->exporter_fd = -1;
}

static int t_dmabuf_sync(const struct t_dmabuf *b, __u64 flags)
{
	struct dma_buf_sync s = { .flags = flags | DMA_BUF_SYNC_RW };

	if (b->src == T_SRC_SELFTEST)
		return 0;
	while (ioctl(b->fd, DMA_BUF_IOCTL_SYNC, &s) < 0) {
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

int t_dmabuf_cpu_begin(const struct t_dmabuf *b)
{
	return t_dmabuf_sync(b, DMA_BUF_SYNC_START);
}

int t_dmabuf_cpu_end(const struct t_dmabuf *b)
{
	return t_dmabuf_sync(b, DMA_BUF_SYNC_END);
}

/* ---- rings and registration -------------------------------------------- */

const unsigned int t_ring_variants[T_NR_RING_VARIANTS] = {
	0,
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
};
const char *const t_ring_variant_names[T_NR_RING_VARIANTS] = {
	"plain",
	"single-issuer+defer-taskrun",
};

int t_ring_init(struct io_uring *ring, unsigned int entries,
		unsigned int flags, unsigned int nr_slots)
{
	int ret = io_uring_queue_init(entries, ring, flags);

	if (ret) {
		t_info("io_uring_queue_init(%u, flags %#x): %s", entries, flags,
		       strerror(-ret));
		return ret;
	}
	if (!nr_slots)
		return 0;
	ret = io_uring_register_buffers_sparse(ring, nr_slots);
	if (ret) {
		t_info("io_uring_register_buffers_sparse(%u): %s", nr_slots,
		       strerror(-ret));
		io_uring_queue_exit(ring);
	}
	return ret;
}

int t_check_feature(struct io_uring *ring)
{
	int ret = dmafs_unregister_slot(ring->ring_fd, 0);

	if (ret == 1)
		return 0;
	if (ret == -EINVAL)
		t_fail("the kernel has no dma-buf fixed buffers: "
		       "IORING_REGISTER_BUFFERS_UPDATE with "
		       "IORING_RSRC_UPDATE_EXTENDED returned -EINVAL, as a "
		       "kernel without the kpatch/ series does");
	else
		t_fail("emptying a buffer slot with "
		       "IORING_RSRC_UPDATE_EXTENDED returned %d (%s), "
		       "expected 1",
		       ret, ret < 0 ? strerror(-ret) : "?");
	return ret < 0 ? ret : -EPROTO;
}

int t_buf_register(struct io_uring *ring, unsigned int slot,
		   const struct t_dmabuf *b, int target_fd)
{
	struct io_uring_rsrc_update2_ext up;
	struct iovec iov;
	int ret;

	if (b->src != T_SRC_SELFTEST) {
		ret = dmafs_register_dmabuf(ring->ring_fd, slot, b->fd,
					    target_fd);
	} else {
		iov.iov_base = b->map;
		iov.iov_len = b->size;
		memset(&up, 0, sizeof(up));
		up.offset = slot;
		up.data = (__u64)(uintptr_t)&iov;
		up.nr = 1;
		ret = dmafs_rsrc_update_ext(ring->ring_fd, &up);
	}
	if (ret == 1)
		return 0;
	return ret < 0 ? ret : -EPROTO;
}

uint64_t t_buf_addr(const struct t_dmabuf *b, uint64_t off)
{
	if (b->src == T_SRC_SELFTEST)
		return (uint64_t)(uintptr_t)b->map + off;
	return off;
}

/* ---- data patterns ----------------------------------------------------- */

#define T_PATTERN_KEY	((uint64_t)0x5a5a << 32)
#define T_POS_MASK	(((uint64_t)1 << 48) - 1)

static inline uint64_t t_pattern_word(uint64_t seed, uint64_t pos)
{
	return (seed << 48) ^ (pos & T_POS_MASK) ^ T_PATTERN_KEY;
}

void t_pattern_fill(void *dst, size_t len, uint64_t seed, uint64_t pos)
{
	uint64_t *w = dst;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = t_pattern_word(seed, pos + i * 8);
}

long t_pattern_check(const void *src, size_t len, uint64_t seed, uint64_t pos)
{
	const uint64_t *w = src;

	for (size_t i = 0; i < len / 8; i++) {
		if (w[i] != t_pattern_word(seed, pos + i * 8))
			return (long)(i * 8);
	}
	return -1;
}

void t_pattern_report(const void *src, size_t len, uint64_t seed,
		      uint64_t pos, long off, const char *what)
{
	const uint64_t *w = src;
	uint64_t got = w[off / 8];
	uint64_t dec = got ^ T_PATTERN_KEY;
	size_t bad = 0;

	for (size_t i = off / 8; i < len / 8; i++)
		bad += w[i] != t_pattern_word(seed, pos + i * 8);
	t_fail("%s: data mismatch at byte %ld of %zu (%zu of %zu words bad): "
	       "expected 0x%016" PRIx64 " (generation %" PRIu64
	       " pos %#" PRIx64 "), found 0x%016" PRIx64
	       " (read as a pattern word: generation %" PRIu64 " pos %#" PRIx64
	       ")",
	       what, off, len, bad, len / 8, t_pattern_word(seed, pos + off),
	       seed, pos + off, got, dec >> 48, dec & T_POS_MASK);
}

long t_check_byte(const void *src, size_t len, uint8_t c)
{
	const uint8_t *p = src;

	for (size_t i = 0; i < len; i++) {
		if (p[i] != c)
			return (long)i;
	}
	return -1;
}

uint64_t t_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* ---- plain O_DIRECT I/O ------------------------------------------------ */

void *t_alloc_aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, 4096, len ? len : 4096))
		return NULL;
	return p;
}

int t_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do {
		n = pread(fd, buf, len, off);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int t_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	do {
		n = pwrite(fd, buf, len, off);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* ---- fixed-buffer requests --------------------------------------------- */

/* How long a batch may take before the test calls the I/O hung. */
#define T_IO_TIMEOUT_S	120

static struct io_uring_sqe *t_get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static int t_req_queue(struct io_uring *ring, const struct t_dmabuf *b,
		       struct t_req *r, unsigned int idx)
{
	struct io_uring_sqe *sqe = t_get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_rw(r->opcode, sqe, r->fd,
			 (void *)(uintptr_t)t_buf_addr(b, r->boff), r->len,
			 r->doff);
	sqe->buf_index = r->slot;
	io_uring_sqe_set_data64(sqe, idx);
	return 0;
}

int t_reqs_submit(struct io_uring *ring, const struct t_dmabuf *b,
		  struct t_req *reqs, unsigned int n)
{
	int ret;

	for (unsigned int i = 0; i < n; i++) {
		reqs[i].done = false;
		reqs[i].eagain = 0;
		reqs[i].res = 0;
		ret = t_req_queue(ring, b, &reqs[i], i);
		if (ret)
			return ret;
	}
	ret = io_uring_submit(ring);
	return ret < 0 ? ret : 0;
}

int t_reqs_reap(struct io_uring *ring, const struct t_dmabuf *b,
		struct t_req *reqs, unsigned int n, unsigned int max_eagain)
{
	struct __kernel_timespec ts = { .tv_sec = T_IO_TIMEOUT_S };
	unsigned int pending = 0;

	for (unsigned int i = 0; i < n; i++)
		pending += !reqs[i].done;
	while (pending) {
		struct io_uring_cqe *cqe;
		struct t_req *r;
		uint64_t idx;
		int ret;

		ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
		if (ret == -EINTR)
			continue;
		if (ret) {
			t_fail("waiting for %u of %u requests: %s%s", pending,
			       n, strerror(-ret),
			       ret == -ETIME ? " (the I/O hangs)" : "");
			return ret;
		}
		idx = io_uring_cqe_get_data64(cqe);
		ret = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (idx >= n || reqs[idx].done) {
			t_fail("unexpected completion user_data %" PRIu64
			       " res %d", idx, ret);
			continue;
		}
		r = &reqs[idx];
		if (ret == -EAGAIN && r->eagain < max_eagain) {
			r->eagain++;
			ret = t_req_queue(ring, b, r, idx);
			if (!ret)
				ret = io_uring_submit(ring);
			if (ret < 0) {
				t_fail("resubmitting after -EAGAIN: %s",
				       strerror(-ret));
				return ret;
			}
			continue;
		}
		r->res = ret;
		r->done = true;
		pending--;
	}
	return 0;
}

int t_req_run(struct io_uring *ring, const struct t_dmabuf *b,
	      struct t_req *req)
{
	int ret = t_reqs_submit(ring, b, req, 1);

	if (!ret)
		ret = t_reqs_reap(ring, b, req, 1, 1000);
	return ret ? ret : req->res;
}

/* ---- checked requests -------------------------------------------------- */

void t_req_describe(const struct t_req *r, const char *label, char *s,
		    size_t n)
{
	snprintf(s, n,
		 "%s %s target off %" PRIu64 " dma-buf off %" PRIu64
		 " len %u",
		 label,
		 r->opcode == IORING_OP_READ_FIXED ? "READ_FIXED" :
						     "WRITE_FIXED",
		 r->doff, r->boff, r->len);
}

/* The target blocks just before and after r, clipped to the target. */
static void t_guard_range(const struct t_target *t, const struct t_req *r,
			  uint64_t *start, uint64_t *end)
{
	*start = r->doff >= t->lba ? r->doff - t->lba : 0;
	*end = r->doff + r->len + t->lba;
	if (*end > t->size)
		*end = t->size;
}

/* The dma-buf bytes around r that a read must not touch, clipped. */
static void t_buf_guard_range(const struct t_dmabuf *b, const struct t_req *r,
			      uint64_t *start, uint64_t *end)
{
	*start = r->boff >= T_GUARD ? r->boff - T_GUARD : 0;
	*end = r->boff + r->len + T_GUARD;
	if (*end > b->size)
		*end = b->size;
}

int t_req_prepare(const struct t_target *t, struct t_dmabuf *b,
		  struct t_req *r, uint8_t *bounce, const char *label)
{
	uint64_t gs, ge, bs, be;
	char what[200];
	int ret;

	t_guard_range(t, r, &gs, &ge);
	if (r->opcode == IORING_OP_WRITE_FIXED) {
		t_pattern_fill(bounce, ge - gs, r->seed | 0x8000, gs);
		t_pattern_fill(b->map + r->boff, r->len, r->seed, r->doff);
	} else {
		t_pattern_fill(bounce, ge - gs, r->seed, gs);
		t_buf_guard_range(b, r, &bs, &be);
		memset(b->map + bs, T_POISON, be - bs);
	}
	ret = t_pwrite_full(t->fd, bounce, ge - gs, gs);
	if (ret) {
		t_req_describe(r, label, what, sizeof(what));
		t_fail("%s: O_DIRECT pwrite of the reference data at %" PRIu64
		       " (%" PRIu64 " bytes): %s",
		       what, gs, ge - gs, strerror(-ret));
	}
	return ret;
}

static bool t_check_poison(const uint8_t *p, uint64_t len, const char *what,
			   const char *where)
{
	long bad = t_check_byte(p, len, T_POISON);

	if (bad < 0)
		return true;
	t_fail("%s: READ_FIXED wrote outside its range: byte %ld of the "
	       "%" PRIu64 " dma-buf bytes %s it changed to %#x",
	       what, bad, len, where, p[bad]);
	return false;
}

/* Check len bytes at p against the pattern; report as what. */
static bool t_check_pattern(const void *p, size_t len, uint64_t seed,
			    uint64_t pos, const char *what)
{
	long bad = t_pattern_check(p, len, seed, pos);

	if (bad < 0)
		return true;
	t_pattern_report(p, len, seed, pos, bad, what);
	return false;
}

bool t_req_verify(const struct t_target *t, struct t_dmabuf *b,
		  const struct t_req *r, uint8_t *bounce, const char *label)
{
	uint64_t gs, ge, bs, be;
	char what[200], w2[260];
	bool ok = true;
	int ret;

	t_req_describe(r, label, what, sizeof(what));
	if (r->opcode == IORING_OP_READ_FIXED) {
		ok &= t_check_pattern(b->map + r->boff, r->len, r->seed,
				      r->doff, what);
		t_buf_guard_range(b, r, &bs, &be);
		ok &= t_check_poison(b->map + bs, r->boff - bs, what,
				     "before the range");
		ok &= t_check_poison(b->map + r->boff + r->len,
				     be - (r->boff + r->len), what,
				     "after the range");
		return ok;
	}
	snprintf(w2, sizeof(w2), "%s: the dma-buf (source) changed", what);
	ok &= t_check_pattern(b->map + r->boff, r->len, r->seed, r->doff, w2);
	t_guard_range(t, r, &gs, &ge);
	ret = t_pread_full(t->fd, bounce, ge - gs, gs);
	if (ret) {
		t_fail("%s: O_DIRECT pread to check it: %s", what,
		       strerror(-ret));
		return false;
	}
	ok &= t_check_pattern(bounce + (r->doff - gs), r->len, r->seed,
			      r->doff, what);
	snprintf(w2, sizeof(w2), "%s: the target block before it", what);
	ok &= t_check_pattern(bounce, r->doff - gs, r->seed | 0x8000, gs, w2);
	snprintf(w2, sizeof(w2), "%s: the target block after it", what);
	ok &= t_check_pattern(bounce + (r->doff - gs) + r->len,
			      ge - r->doff - r->len, r->seed | 0x8000,
			      r->doff + r->len, w2);
	return ok;
}

/* ---- debugfs ----------------------------------------------------------- */

int t_write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		ret = -errno;
	close(fd);
	return ret;
}

int t_debugfs_mount(void)
{
	if (access(T_DMABUF_BUFINFO, R_OK) == 0)
		return 0;
	if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL) < 0 &&
	    errno != EBUSY)
		return -errno;
	return access(T_DMABUF_BUFINFO, R_OK) ? -errno : 0;
}

int t_dmabuf_debug_info(uint64_t ino, long *count, int *attached)
{
	FILE *f = fopen(T_DMABUF_BUFINFO, "r");
	char *line = NULL;
	size_t cap = 0;
	bool in_buf = false;
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		unsigned long long size, l_ino;
		unsigned int flags, mode;
		long cnt;
		int n;

		if (in_buf &&
		    sscanf(line, "Total %d devices attached", &n) == 1) {
			*attached = n;
			ret = 0;
			break;
		}
		/* size flags mode count exp_name ino name */
		if (sscanf(line, "%llu %x %x %ld %*s %llu", &size, &flags,
			   &mode, &cnt, &l_ino) == 5 &&
		    l_ino == ino) {
			*count = cnt;
			in_buf = true;
		}
	}
	free(line);
	fclose(f);
	return ret;
}

int t_dmabuf_io_stats(struct t_io_stats *st)
{
	FILE *f = fopen(T_DMABUF_IO_STATS, "r");
	char line[128];
	int found = 0;

	if (!f)
		return -errno;
	st->tokens = st->maps = st->invalidations = -1;
	while (fgets(line, sizeof(line), f)) {
		found += sscanf(line, "tokens %ld", &st->tokens) == 1;
		found += sscanf(line, "maps %ld", &st->maps) == 1;
		found += sscanf(line, "invalidations %ld",
				&st->invalidations) == 1;
	}
	fclose(f);
	return found == 3 ? 0 : -EPROTO;
}

int t_target_open_arg(const char *path, struct t_target *t)
{
	int ret = t_target_open(path, t);

	if (ret == -ENOENT) {
		t_skip("%s does not exist", path);
		return T_EXIT_SKIP;
	}
	if (ret) {
		t_fail("cannot use %s as the target: %s", path, strerror(-ret));
		return T_EXIT_FAIL;
	}
	return T_EXIT_PASS;
}

const char *t_res_str(int v, char *buf, size_t n)
{
	static const struct {
		int err;
		const char *name;
	} names[] = {
		{ EINVAL, "-EINVAL" }, { EBADF, "-EBADF" },
		{ EFAULT, "-EFAULT" }, { EOPNOTSUPP, "-EOPNOTSUPP" },
		{ EAGAIN, "-EAGAIN" }, { ENODATA, "-ENODATA" },
		{ ENOTCONN, "-ENOTCONN" }, { EIO, "-EIO" },
		{ EACCES, "-EACCES" }, { EPERM, "-EPERM" },
		{ ENXIO, "-ENXIO" }, { ENOMEM, "-ENOMEM" },
	};

	for (unsigned int i = 0; i < sizeof(names) / sizeof(*names); i++) {
		if (v == -names[i].err)
			return names[i].name;
	}
	if (v < 0)
		snprintf(buf, n, "%d (%s)", v, strerror(-v));
	else
		snprintf(buf, n, "%d", v);
	return buf;
}
