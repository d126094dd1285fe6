// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * vm_probe: device checks for the dmafs test VM (tests/vm/smoke.sh builds and
 * runs it inside the guest).
 *
 *   vm_probe uring DEV LBA   io_uring: NOP, then WRITE_FIXED and READ_FIXED
 *                            with registered buffers, O_DIRECT on DEV at
 *                            LBA-aligned offsets; the data must round-trip
 *   vm_probe udmabuf         a udmabuf from a sealed memfd: create, mmap,
 *                            write through one mapping, read through another
 *   vm_probe vgem DEV        DRM device DEV is vgem; a dumb buffer exports
 *                            as a dma-buf (PRIME) that can be mmapped
 *   vm_probe heap DEV        allocate from the dma-buf heap DEV
 *
 * Prints one line saying what it did; exit 0 when the check passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>

#define die(...)                                                              \
	do {                                                                  \
		fprintf(stderr, "vm_probe: " __VA_ARGS__);                    \
		fputc('\n', stderr);                                          \
		exit(1);                                                      \
	} while (0)

/* The few DRM uapi definitions needed, so that no libdrm headers are. */
struct probe_drm_version {
	int version_major, version_minor, version_patchlevel;
	size_t name_len;
	char *name;
	size_t date_len;
	char *date;
	size_t desc_len;
	char *desc;
};

struct probe_drm_create_dumb {
	uint32_t height, width, bpp, flags;
	uint32_t handle, pitch;
	uint64_t size;
};

struct probe_drm_prime_handle {
	uint32_t handle, flags;
	int32_t fd;
};

#define PROBE_DRM_IOCTL_VERSION _IOWR('d', 0x00, struct probe_drm_version)
#define PROBE_DRM_IOCTL_PRIME_HANDLE_TO_FD                                    \
	_IOWR('d', 0x2d, struct probe_drm_prime_handle)
#define PROBE_DRM_IOCTL_MODE_CREATE_DUMB                                      \
	_IOWR('d', 0xB2, struct probe_drm_create_dumb)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 12)) & 0xff);
}

static void *xalign(size_t n)
{
	void *p;

	if (posix_memalign(&p, 4096, n))
		die("posix_memalign(%zu) failed", n);
	return p;
}

static int uring_one(struct io_uring *ring, int op, int fd, void *buf,
		     unsigned len, off_t off, int idx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	if (!sqe)
		die("no sqe");
	if (op == IORING_OP_WRITE_FIXED)
		io_uring_prep_write_fixed(sqe, fd, buf, len, off, idx);
	else if (op == IORING_OP_READ_FIXED)
		io_uring_prep_read_fixed(sqe, fd, buf, len, off, idx);
	else
		io_uring_prep_nop(sqe);
	ret = io_uring_submit(ring);
	if (ret != 1)
		die("io_uring_submit: %s", strerror(ret < 0 ? -ret : EIO));
	ret = io_uring_wait_cqe(ring, &cqe);
	if (ret)
		die("io_uring_wait_cqe: %s", strerror(-ret));
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

static int probe_uring(const char *dev, unsigned lba)
{
	const unsigned len = 1 << 20;
	struct io_uring ring;
	struct iovec iov[2];
	unsigned char *wbuf = xalign(len), *rbuf = xalign(len);
	off_t off = 3 * (off_t)lba + (8 << 20);
	int fd, ret, pass;

	fd = open(dev, O_RDWR | O_DIRECT);
	if (fd < 0)
		die("open %s O_DIRECT: %s", dev, strerror(errno));
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret)
		die("io_uring_queue_init: %s", strerror(-ret));
	ret = uring_one(&ring, IORING_OP_NOP, -1, NULL, 0, 0, 0);
	if (ret)
		die("NOP completed with %d", ret);
	iov[0] = (struct iovec){ wbuf, len };
	iov[1] = (struct iovec){ rbuf, len };
	ret = io_uring_register_buffers(&ring, iov, 2);
	if (ret)
		die("io_uring_register_buffers: %s", strerror(-ret));
	for (pass = 0; pass < 2; pass++) {
		/* The second pass moves by one logical block. */
		off_t o = off + pass * (off_t)lba;

		fill(wbuf, len, pass + 1);
		memset(rbuf, 0, len);
		ret = uring_one(&ring, IORING_OP_WRITE_FIXED, fd, wbuf, len, o,
				0);
		if (ret != (int)len)
			die("WRITE_FIXED at %lld: %s", (long long)o,
			    ret < 0 ? strerror(-ret) : "short write");
		ret = uring_one(&ring, IORING_OP_READ_FIXED, fd, rbuf, len, o,
				1);
		if (ret != (int)len)
			die("READ_FIXED at %lld: %s", (long long)o,
			    ret < 0 ? strerror(-ret) : "short read");
		if (memcmp(wbuf, rbuf, len))
			die("READ_FIXED at %lld returned other data than written",
			    (long long)o);
	}
	/* An offset that is not a multiple of the block size must fail. */
	if (lba > 512) {
		ret = uring_one(&ring, IORING_OP_READ_FIXED, fd, rbuf, lba,
				off + 512, 1);
		if (ret != -EINVAL)
			die("READ_FIXED at a 512-byte offset on a %u-byte-LBA "
			    "device returned %d, not -EINVAL", lba, ret);
	}
	io_uring_queue_exit(&ring);
	close(fd);
	printf("io_uring: NOP, WRITE_FIXED + READ_FIXED of 1 MiB O_DIRECT on %s "
	       "(LBA %u) round-trip\n", dev, lba);
	return 0;
}

static int probe_udmabuf(void)
{
	const size_t size = 4 << 20;
	struct udmabuf_create create = { 0 };
	unsigned char *a, *b;
	int memfd, dev, buf;

	memfd = memfd_create("vm_probe", MFD_ALLOW_SEALING);
	if (memfd < 0)
		die("memfd_create: %s", strerror(errno));
	if (ftruncate(memfd, size))
		die("ftruncate: %s", strerror(errno));
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK))
		die("F_ADD_SEALS: %s", strerror(errno));
	dev = open("/dev/udmabuf", O_RDWR);
	if (dev < 0)
		die("open /dev/udmabuf: %s", strerror(errno));
	create.memfd = memfd;
	create.flags = UDMABUF_FLAGS_CLOEXEC;
	create.size = size;
	buf = ioctl(dev, UDMABUF_CREATE, &create);
	if (buf < 0)
		die("UDMABUF_CREATE: %s", strerror(errno));
	a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	fill(a, size, 3);
	if (memcmp(a, b, size))
		die("the udmabuf mapping does not show the memfd's data");
	printf("udmabuf: 4 MiB dma-buf from a sealed memfd, mapped, same data\n");
	return 0;
}

static int probe_vgem(const char *dev)
{
	char name[64] = "";
	struct probe_drm_version v = { .name = name, .name_len = sizeof(name) - 1 };
	struct probe_drm_create_dumb dumb = { .height = 256, .width = 1024,
					      .bpp = 32 };
	struct probe_drm_prime_handle prime = { 0 };
	unsigned char *p;
	int fd;

	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", dev, strerror(errno));
	if (ioctl(fd, PROBE_DRM_IOCTL_VERSION, &v))
		die("DRM_IOCTL_VERSION: %s", strerror(errno));
	if (strcmp(name, "vgem"))
		die("%s is DRM driver '%s', not vgem", dev, name);
	if (ioctl(fd, PROBE_DRM_IOCTL_MODE_CREATE_DUMB, &dumb))
		die("DRM_IOCTL_MODE_CREATE_DUMB: %s", strerror(errno));
	prime.handle = dumb.handle;
	prime.flags = O_CLOEXEC | O_RDWR;
	if (ioctl(fd, PROBE_DRM_IOCTL_PRIME_HANDLE_TO_FD, &prime))
		die("DRM_IOCTL_PRIME_HANDLE_TO_FD: %s", strerror(errno));
	p = mmap(NULL, dumb.size, PROT_READ | PROT_WRITE, MAP_SHARED, prime.fd,
		 0);
	if (p == MAP_FAILED)
		die("mmap of the vgem dma-buf: %s", strerror(errno));
	fill(p, dumb.size, 5);
	printf("vgem: %s is vgem %d.%d; %llu-byte dumb buffer exported as a "
	       "dma-buf and mapped\n", dev, v.version_major, v.version_minor,
	       (unsigned long long)dumb.size);
	return 0;
}

static int probe_heap(const char *dev)
{
	struct dma_heap_allocation_data alloc = {
		.len = 1 << 20,
		.fd_flags = O_RDWR | O_CLOEXEC,
	};
	unsigned char *p;
	int fd;

	fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", dev, strerror(errno));
	if (ioctl(fd, DMA_HEAP_IOCTL_ALLOC, &alloc))
		die("DMA_HEAP_IOCTL_ALLOC: %s", strerror(errno));
	p = mmap(NULL, alloc.len, PROT_READ | PROT_WRITE, MAP_SHARED,
		 (int)alloc.fd, 0);
	if (p == MAP_FAILED)
		die("mmap of the heap dma-buf: %s", strerror(errno));
	fill(p, alloc.len, 7);
	printf("dma-heap: 1 MiB dma-buf from %s, mapped\n", dev);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "uring"))
		return probe_uring(argv[2], (unsigned)strtoul(argv[3], NULL, 0));
	if (argc == 2 && !strcmp(argv[1], "udmabuf"))
		return probe_udmabuf();
	if (argc == 3 && !strcmp(argv[1], "vgem"))
		return probe_vgem(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "heap"))
		return probe_heap(argv[2]);
	fprintf(stderr, "usage: vm_probe uring DEV LBA | udmabuf | vgem DEV | "
			"heap DEV\n");
	return 2;
}
