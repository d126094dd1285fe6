// SPDX-License-Identifier: GPL-2.0
/*
 * Smoke test of the dma-buf I/O kernel patches: udmabuf and vgem dma-bufs
 * registered with io_uring against an NVMe namespace opened O_DIRECT,
 * WRITE_FIXED / READ_FIXED checked against pread/pwrite, the error cases of
 * the registration API, and invalidation through debugfs, including while
 * I/O is in flight.  Usage: dmabuf_io_test /dev/nvme0n1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/udmabuf.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <libdrm/drm.h>
#include <libdrm/drm_mode.h>

#define IORING_RSRC_UPDATE_EXTENDED (1U << 1)
struct regbuf_desc {
	uint32_t type, flags;
	uint64_t size, uaddr;
	int32_t dmabuf_fd, target_fd;
	uint64_t resv[6];
};
_Static_assert(sizeof(struct regbuf_desc) == 80, "desc size");

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __func__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static int reg_update(struct io_uring *ring, unsigned slot, struct regbuf_desc *d,
		      unsigned nr, uint32_t flags, uint32_t resv2)
{
	struct { uint32_t offset, flags; uint64_t data, tags; uint32_t nr, resv2; } up = {
		.offset = slot, .flags = flags, .data = (uintptr_t)d, .nr = nr, .resv2 = resv2 };
	int ret = syscall(__NR_io_uring_register, ring->ring_fd,
			  IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up));
	return ret < 0 ? -errno : ret;
}

static int reg_dmabuf(struct io_uring *ring, unsigned slot, int dmabuf_fd, int target_fd)
{
	struct regbuf_desc d = { .type = 2, .dmabuf_fd = dmabuf_fd, .target_fd = target_fd };

	return reg_update(ring, slot, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0);
}

static int rw_fixed(struct io_uring *ring, int op, int fd, uint64_t addr,
		    unsigned len, uint64_t pos, int idx, int rwflags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	io_uring_prep_rw(op, sqe, fd, (void *)(uintptr_t)addr, len, pos);
	sqe->buf_index = idx;
	sqe->rw_flags = rwflags;
	io_uring_submit(ring);
	ret = io_uring_wait_cqe(ring, &cqe);
	if (ret)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

/* resubmit on the spurious -EAGAIN the API allows */
static int rw_fixed_retry(struct io_uring *ring, int op, int fd, uint64_t addr,
			  unsigned len, uint64_t pos, int idx)
{
	int ret, tries = 0;

	do
		ret = rw_fixed(ring, op, fd, addr, len, pos, idx, 0);
	while (ret == -EAGAIN && ++tries < 100);
	return ret;
}

static int make_udmabuf(size_t size, void **map)
{
	struct udmabuf_create c = { 0 };
	int memfd, dev, fd;

	memfd = memfd_create("dmabuf-io", MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, size) || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return -errno;
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	dev = open("/dev/udmabuf", O_RDWR);
	if (dev < 0 || *map == MAP_FAILED)
		return -errno;
	c.memfd = memfd;
	c.flags = UDMABUF_FLAGS_CLOEXEC;
	c.size = size;
	fd = ioctl(dev, UDMABUF_CREATE, &c);
	close(dev);
	close(memfd);
	return fd < 0 ? -errno : fd;
}

static int make_vgem(uint32_t width, uint32_t height, void **map, uint64_t *size)
{
	struct drm_mode_create_dumb c = { .width = width, .height = height, .bpp = 32 };
	struct drm_prime_handle p = { 0 };
	int card = open("/dev/dri/card0", O_RDWR);

	if (card < 0 || ioctl(card, DRM_IOCTL_MODE_CREATE_DUMB, &c))
		return -errno;
	p.handle = c.handle;
	p.flags = DRM_CLOEXEC | DRM_RDWR;
	if (ioctl(card, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p))
		return -errno;
	*size = c.size;
	if (map) {
		*map = mmap(NULL, c.size, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
		if (*map == MAP_FAILED)
			return -errno;
	}
	return p.fd;
}

static void fill(void *p, size_t len, unsigned seed)
{
	uint32_t *w = p;

	for (size_t i = 0; i < len / 4; i++)
		w[i] = seed * 2654435761u + i;
}

static long stat_of(const char *name)
{
	char buf[256], *p;
	FILE *f = fopen("/sys/kernel/debug/dma_buf_io/stats", "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strstr(buf, name);
	return p ? atol(p + strlen(name) + 1) : -1;
}

static int invalidate(int dmabuf_fd)
{
	char s[32];
	int fd = open("/sys/kernel/debug/dma_buf_io/invalidate", O_WRONLY);
	int ret;

	if (fd < 0)
		return -errno;
	snprintf(s, sizeof(s), "%d", dmabuf_fd);
	ret = write(fd, s, strlen(s)) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

/* data written from the dma-buf must read back with pread, and vice versa */
static void data_test(struct io_uring *ring, int fd, int slot, void *cpu, size_t bufsz,
		      const char *what)
{
	size_t lens[] = { 512, 4096, 4096 + 512, 65536, 192 * 1024, 1024 * 1024, 3 * 1024 * 1024 };
	size_t offs[] = { 0, 512, 4096, 12288 + 512 };
	void *bounce;
	int ret;

	if (posix_memalign(&bounce, 4096, 4 << 20))
		exit(1);
	for (unsigned li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		for (unsigned oi = 0; oi < sizeof(offs) / sizeof(offs[0]); oi++) {
			size_t len = lens[li], off = offs[oi];
			uint64_t pos = (1 << 20) * (1 + oi) + 4096 * li;

			if (off + len > bufsz)
				continue;
			fill((char *)cpu + off, len, li * 16 + oi + 1);
			ret = rw_fixed_retry(ring, IORING_OP_WRITE_FIXED, fd, off, len, pos, slot);
			CHECK(ret == (int)len, "%s write len %zu off %zu: %d", what, len, off, ret);
			ret = pread(fd, bounce, len, pos);
			CHECK(ret == (int)len && !memcmp(bounce, (char *)cpu + off, len),
			      "%s pread-back len %zu off %zu: %d", what, len, off, ret);

			fill(bounce, len, li * 16 + oi + 101);
			ret = pwrite(fd, bounce, len, pos);
			CHECK(ret == (int)len, "pwrite %d", ret);
			memset((char *)cpu + off, 0xa5, len);
			ret = rw_fixed_retry(ring, IORING_OP_READ_FIXED, fd, off, len, pos, slot);
			CHECK(ret == (int)len && !memcmp(bounce, (char *)cpu + off, len),
			      "%s read len %zu off %zu: %d", what, len, off, ret);
		}
	}
	free(bounce);
}

struct inflight_arg { int dmabuf_fd; volatile int stop; int n; };

static void *invalidator(void *p)
{
	struct inflight_arg *a = p;

	while (!a->stop) {
		if (invalidate(a->dmabuf_fd) == 0)
			a->n++;
		usleep(200);
	}
	return NULL;
}

/* many reads in flight while another thread keeps invalidating */
static void stress_test(struct io_uring *ring, int fd, int slot, int dmabuf_fd,
			void *cpu, size_t bufsz)
{
	struct inflight_arg a = { .dmabuf_fd = dmabuf_fd };
	const unsigned chunk = 64 * 1024, depth = 16;
	void *ref;
	pthread_t t;
	int ok = 0, eagain = 0, bad = 0;

	if (posix_memalign(&ref, 4096, bufsz))
		exit(1);
	fill(ref, bufsz, 4242);
	if (pwrite(fd, ref, bufsz, 64 << 20) != (ssize_t)bufsz)
		CHECK(0, "pwrite ref");
	pthread_create(&t, NULL, invalidator, &a);
	for (int round = 0; round < 40; round++) {
		memset(cpu, 0, bufsz);
		for (unsigned i = 0; i < depth; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			uint64_t off = (uint64_t)(i * chunk) % bufsz;

			io_uring_prep_rw(IORING_OP_READ_FIXED, sqe, fd, (void *)(uintptr_t)off,
					 chunk, (64 << 20) + off);
			sqe->buf_index = slot;
			sqe->user_data = off;
		}
		io_uring_submit(ring);
		for (unsigned i = 0; i < depth; i++) {
			struct io_uring_cqe *cqe;

			io_uring_wait_cqe(ring, &cqe);
			if (cqe->res == (int)chunk && !memcmp((char *)cpu + cqe->user_data,
							      (char *)ref + cqe->user_data, chunk))
				ok++;
			else if (cqe->res == -EAGAIN)
				eagain++;
			else
				bad++;
			io_uring_cqe_seen(ring, cqe);
		}
	}
	a.stop = 1;
	pthread_join(t, NULL);
	printf("stress: %d ok, %d eagain, %d bad, %d invalidations\n", ok, eagain, bad, a.n);
	CHECK(bad == 0 && ok > 0 && a.n > 0, "stress");
	free(ref);
}

int main(int argc, char **argv)
{
	struct io_uring ring;
	struct regbuf_desc d;
	size_t bufsz = 4 << 20;
	void *cpu, *vcpu;
	int fd, fd2, fd_buffered, dmabuf, vgem, ret;
	uint64_t vsize;
	long maps0, inv0;

	if (argc < 2) {
		printf("usage: %s /dev/nvmeXnY\n", argv[0]);
		return 77;
	}
	fd = open(argv[1], O_RDWR | O_DIRECT);
	fd2 = open(argv[1], O_RDWR | O_DIRECT);
	fd_buffered = open(argv[1], O_RDWR);
	if (fd < 0 || fd2 < 0 || fd_buffered < 0) {
		perror("open");
		return 1;
	}
	dmabuf = make_udmabuf(bufsz, &cpu);
	CHECK(dmabuf >= 0, "udmabuf %d", dmabuf);
	if (io_uring_queue_init(64, &ring, 0) || io_uring_register_buffers_sparse(&ring, 8)) {
		printf("ring setup failed\n");
		return 1;
	}

	/* registration errors */
	memset(&d, 0, sizeof(d));
	d.type = 2; d.dmabuf_fd = dmabuf; d.target_fd = fd;
	CHECK(reg_update(&ring, 0, &d, 1, 1U << 0, 0) == -EINVAL, "unknown update flag");
	CHECK(reg_update(&ring, 0, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 1) == -EINVAL, "resv2");
	d.flags = 1;
	CHECK(reg_update(&ring, 0, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == -EINVAL, "desc flags");
	d.flags = 0; d.resv[5] = 1;
	CHECK(reg_update(&ring, 0, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == -EINVAL, "desc resv");
	d.resv[5] = 0; d.type = 7;
	CHECK(reg_update(&ring, 0, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == -EINVAL, "desc type");
	d.type = 2; d.size = 4096;
	CHECK(reg_update(&ring, 0, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == -EINVAL, "dmabuf size");
	d.size = 0;
	CHECK(reg_dmabuf(&ring, 0, 999, fd) == -EBADF, "bad dmabuf fd: %d", reg_dmabuf(&ring, 0, 999, fd));
	CHECK(reg_dmabuf(&ring, 0, fd, fd) == -EINVAL, "non-dmabuf fd");
	CHECK(reg_dmabuf(&ring, 0, dmabuf, 999) == -EBADF, "bad target fd");
	CHECK(reg_dmabuf(&ring, 0, dmabuf, ring.ring_fd) == -EBADF, "ring target");
	CHECK(reg_dmabuf(&ring, 0, dmabuf, fd_buffered) == -EINVAL, "buffered target: %d",
	      reg_dmabuf(&ring, 0, dmabuf, fd_buffered));
	CHECK(reg_dmabuf(&ring, 0, dmabuf, 0) == -EOPNOTSUPP || reg_dmabuf(&ring, 0, dmabuf, 0) == -EBADF,
	      "stdin target");
	CHECK(reg_dmabuf(&ring, 9, dmabuf, fd) == -EINVAL, "slot out of range");
	memset(&d, 0, sizeof(d));
	d.target_fd = fd;
	CHECK(reg_update(&ring, 0, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == -EINVAL, "empty with fd");
	{
		/* a user buffer through a descriptor, used for a normal WRITE_FIXED */
		void *ubuf, *chk;
		int r;

		if (posix_memalign(&ubuf, 4096, 65536) || posix_memalign(&chk, 4096, 65536))
			return 1;
		fill(ubuf, 65536, 77);
		memset(&d, 0, sizeof(d));
		d.type = 1; d.uaddr = (uintptr_t)ubuf; d.size = 65536; d.dmabuf_fd = 3;
		CHECK(reg_update(&ring, 3, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == -EINVAL, "uaddr with fd");
		d.dmabuf_fd = 0;
		r = reg_update(&ring, 3, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0);
		CHECK(r == 1, "uaddr register: %d", r);
		r = rw_fixed(&ring, IORING_OP_WRITE_FIXED, fd, (uintptr_t)ubuf, 65536, 32 << 20, 3, 0);
		CHECK(r == 65536 && pread(fd, chk, 65536, 32 << 20) == 65536 && !memcmp(ubuf, chk, 65536),
		      "uaddr write: %d", r);
		memset(&d, 0, sizeof(d));
		CHECK(reg_update(&ring, 3, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == 1, "uaddr clear");
		free(chk);
	}

	maps0 = stat_of("maps");
	ret = reg_dmabuf(&ring, 0, dmabuf, fd);
	CHECK(ret == 1, "register: %d", ret);
	CHECK(stat_of("tokens") >= 1, "tokens");
	CHECK(stat_of("maps") == maps0, "map created before first I/O");

	/* use errors */
	CHECK(rw_fixed(&ring, IORING_OP_READ_FIXED, fd2, 0, 4096, 0, 0, 0) == -EBADF, "other file");
	CHECK(rw_fixed(&ring, IORING_OP_READ_FIXED, fd, bufsz - 4096, 8192, 0, 0, 0) == -EFAULT, "range");
	CHECK(rw_fixed(&ring, IORING_OP_READ_FIXED, fd, -4096ULL, 8192, 0, 0, 0) == -EFAULT, "overflow");
	CHECK(rw_fixed(&ring, IORING_OP_READ_FIXED, fd, 1, 4096, 0, 0, 0) == -EINVAL, "unaligned offset: %d",
	      rw_fixed(&ring, IORING_OP_READ_FIXED, fd, 1, 4096, 0, 0, 0));
	CHECK(rw_fixed(&ring, IORING_OP_READ_FIXED, fd, 0, 100, 0, 0, 0) == -EINVAL, "unaligned len");
	ret = rw_fixed(&ring, IORING_OP_READ_FIXED, fd, 0, 4096, 0, 0, RWF_NOWAIT);
	CHECK(ret == 4096 || ret == -EAGAIN, "nowait: %d", ret);

	data_test(&ring, fd, 0, cpu, bufsz, "udmabuf");
	CHECK(stat_of("maps") == maps0 + 1, "one map after I/O: %ld", stat_of("maps"));

	/* invalidation: the map goes, the next I/O maps again */
	inv0 = stat_of("invalidations");
	CHECK(invalidate(dmabuf) == 0, "invalidate");
	CHECK(stat_of("invalidations") == inv0 + 1, "invalidations");
	CHECK(stat_of("maps") == maps0, "map dropped");
	data_test(&ring, fd, 0, cpu, bufsz, "udmabuf after invalidation");
	CHECK(stat_of("maps") == maps0 + 1, "map re-created");
	stress_test(&ring, fd, 0, dmabuf, cpu, bufsz);

	/* vgem: another exporter, and the 1 GiB limit */
	vgem = make_vgem(1024, 1024, &vcpu, &vsize);
	if (vgem >= 0) {
		CHECK(reg_dmabuf(&ring, 1, vgem, fd) == 1, "vgem register");
		data_test(&ring, fd, 1, vcpu, vsize, "vgem");
		close(vgem);
		vgem = make_vgem(4096, 65537, NULL, &vsize);
		CHECK(vgem >= 0 && reg_dmabuf(&ring, 2, vgem, fd) == -EINVAL, "vgem > 1 GiB: %d",
		      reg_dmabuf(&ring, 2, vgem, fd));
		close(vgem);
	} else {
		printf("vgem unavailable (%d), skipped\n", vgem);
	}

	/* unregister with an empty descriptor, tokens must go away */
	memset(&d, 0, sizeof(d));
	CHECK(reg_update(&ring, 0, &d, 1, IORING_RSRC_UPDATE_EXTENDED, 0) == 1, "empty slot");
	CHECK(rw_fixed(&ring, IORING_OP_READ_FIXED, fd, 0, 4096, 0, 0, 0) == -EFAULT, "empty slot I/O");
	io_uring_queue_exit(&ring);
	usleep(100000);
	CHECK(stat_of("tokens") == 0, "tokens leaked: %ld", stat_of("tokens"));
	CHECK(stat_of("maps") == 0, "maps leaked: %ld", stat_of("maps"));

	printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
