// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * reg_errors: invalid dma-buf registrations and I/O fail with the errno of
 * the contract in include/dmafs/io_uring_dmabuf.h, and leave the buffer
 * table as it was.
 *
 *   reg_errors TARGET [-s udmabuf|vgem]
 *
 * Every errno is the one the upstream proposal (v3, io-uring list,
 * 2026-04-29) gives, in its order of checks, except where
 * include/dmafs/io_uring_dmabuf.h says this kernel adds one.
 * Registration: bad, closed and non-dma-buf dmabuf_fd; bad and closed
 * target_fd (checked first: -EBADF even with a bad dmabuf_fd), the ring
 * itself as target (-EOPNOTSUPP); a target not opened O_DIRECT; targets
 * that cannot do dma-buf I/O (-EOPNOTSUPP; a loop device: -EINVAL); every
 * reserved field, unknown update flag and type; desc.flags, which is not
 * checked; fds, sizes and addresses a type does not take; slots past the
 * table; a dma-buf of 1 GiB + 4 KiB (vgem, lazily backed; exactly 1 GiB
 * must be accepted when the machine has the memory to spare); partial
 * success of a multi-descriptor update.  IO_REGBUF_TYPE_UADDR buffers work
 * through the extended update and are bound to no file.
 * I/O: on another file (-EBADF; a dup() of the target is fine); offsets,
 * lengths and dma-buf offsets that are not aligned, a target whose
 * O_DIRECT was cleared with fcntl() (-EINVAL); ranges outside the dma-buf,
 * zero lengths, empty slots and slots past the table (-EFAULT); other
 * users of fixed buffers: zero-copy send over TCP and NVMe passthrough on
 * the namespace's /dev/ngXnY (each first checked to work from an ordinary
 * buffer; -EFAULT), and vectored fixed ops where the kernel has them
 * (-EOPNOTSUPP).
 * Access mode: a dma-buf exported read-only (vgem, PRIME without DRM_RDWR)
 * registers, and WRITE_FIXED from it works, but READ_FIXED into it, which
 * would have the device write memory the caller may only read, fails with
 * -EACCES and leaves the buffer as it was.
 *
 * Writes to the first few blocks of TARGET.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/loop.h>
#include <linux/nvme_ioctl.h>
#include <netinet/in.h>

#include "helpers.h"

#define NR_SLOTS	8
#define BUF_SIZE	(1 * T_MiB)
#define UADDR_SLOT	7		/* an ordinary user buffer */
#define UADDR_SIZE	(64 * T_KiB)

/* The vectored fixed ops of Linux 6.15; a 6.12 kernel has neither. */
#define OP_READV_FIXED	60
#define OP_WRITEV_FIXED	61

struct ctx {
	struct t_target *t;
	struct io_uring ring;
	struct t_dmabuf b;
	uint8_t *ubuf;		/* UADDR_SIZE bytes in UADDR_SLOT */
	bool skipped;		/* a case did not run: no exporter for it */
};

/* Compare and report one result. */
static bool expect(const char *what, int got, int want)
{
	char gb[64], wb[64];

	if (got == want) {
		t_info("ok   %s: %s", what, t_res_str(got, gb, sizeof(gb)));
		return true;
	}
	t_fail("%s: got %s, expected %s", what, t_res_str(got, gb, sizeof(gb)),
	       t_res_str(want, wb, sizeof(wb)));
	return false;
}

static void desc_dmabuf(struct io_uring_regbuf_desc *d, int dmabuf_fd,
			int target_fd)
{
	memset(d, 0, sizeof(*d));
	d->type = IO_REGBUF_TYPE_DMABUF;
	d->dmabuf_fd = dmabuf_fd;
	d->target_fd = target_fd;
}

static int update(struct ctx *c, unsigned int slot,
		  const struct io_uring_regbuf_desc *d, unsigned int nr)
{
	return dmafs_regbuf_update(c->ring.ring_fd, slot, d, nr);
}

/* One fixed-buffer request; its result. */
static int io(struct ctx *c, uint8_t opcode, int fd, unsigned int slot,
	      uint64_t boff, uint64_t doff, uint32_t len)
{
	struct t_req r = {
		.opcode = opcode,
		.fd = fd,
		.slot = slot,
		.boff = boff,
		.doff = doff,
		.len = len,
	};

	return t_req_run(&c->ring, &c->b, &r);
}

/* Both directions of a request expected to give want. */
static void expect_io(struct ctx *c, const char *what, int fd,
		      unsigned int slot, uint64_t boff, uint64_t doff,
		      uint32_t len, int want)
{
	char s[200];

	snprintf(s, sizeof(s), "READ_FIXED %s", what);
	expect(s, io(c, IORING_OP_READ_FIXED, fd, slot, boff, doff, len), want);
	snprintf(s, sizeof(s), "WRITE_FIXED %s", what);
	expect(s, io(c, IORING_OP_WRITE_FIXED, fd, slot, boff, doff, len),
	       want);
}

static void expect_io_ok(struct ctx *c, const char *what, int fd,
			 unsigned int slot)
{
	expect_io(c, what, fd, slot, 0, 0, c->t->lba, (int)c->t->lba);
}

static int closed_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd >= 0 ? fd : 1000;
}

static void reg_bad_fds(struct ctx *c)
{
	struct io_uring_regbuf_desc d;
	int fd, memfd;

	desc_dmabuf(&d, -1, c->t->fd);
	expect("register dmabuf_fd -1", update(c, 1, &d, 1), -EBADF);
	desc_dmabuf(&d, closed_fd(), c->t->fd);
	expect("register a closed dmabuf_fd", update(c, 1, &d, 1), -EBADF);

	memfd = memfd_create("not-a-dmabuf", MFD_CLOEXEC);
	if (memfd >= 0 && ftruncate(memfd, BUF_SIZE) == 0) {
		desc_dmabuf(&d, memfd, c->t->fd);
		expect("register a memfd as the dma-buf", update(c, 1, &d, 1),
		       -EINVAL);
	} else {
		t_fail("memfd_create: %s", strerror(errno));
	}
	if (memfd >= 0)
		close(memfd);

	desc_dmabuf(&d, c->b.fd, -1);
	expect("register target_fd -1", update(c, 1, &d, 1), -EBADF);
	desc_dmabuf(&d, c->b.fd, closed_fd());
	expect("register a closed target_fd", update(c, 1, &d, 1), -EBADF);
	desc_dmabuf(&d, c->b.fd, c->ring.ring_fd);
	expect("register for the io_uring itself", update(c, 1, &d, 1),
	       -EOPNOTSUPP);
	/* the target is looked at first */
	desc_dmabuf(&d, -1, -1);
	expect("register dmabuf_fd -1 for target_fd -1", update(c, 1, &d, 1),
	       -EBADF);
	memfd = memfd_create("not-a-dmabuf", MFD_CLOEXEC);
	if (memfd >= 0) {
		desc_dmabuf(&d, memfd, closed_fd());
		expect("register a memfd for a closed target_fd",
		       update(c, 1, &d, 1), -EBADF);
		close(memfd);
	}

	fd = t_target_reopen(c->t, O_RDWR);
	if (fd >= 0) {
		desc_dmabuf(&d, c->b.fd, fd);
		expect("register for a target opened without O_DIRECT",
		       update(c, 1, &d, 1), -EINVAL);
		close(fd);
	} else {
		t_fail("reopening %s without O_DIRECT: %s", c->t->path,
		       strerror(-fd));
	}
}

/*
 * A loop device over a file in /tmp, opened O_RDWR | O_DIRECT: a block
 * device whose driver has no dma-buf support: that fd, or -errno.  *dev_fd
 * is the plain open that detaches it (LOOP_CLR_FD, then close).
 */
static int loop_attach(int *dev_fd)
{
	char tmpl[] = "/tmp/dmafs-reg-errors-loop-XXXXXX", path[32];
	int ctl, nr, file, dev, ret;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	ret = nr < 0 ? -errno : 0;
	close(ctl);
	if (ret)
		return ret;
	file = mkostemp(tmpl, O_CLOEXEC);
	if (file < 0)
		return -errno;
	unlink(tmpl);
	if (ftruncate(file, 1 << 20) < 0) {
		ret = -errno;
		close(file);
		return ret;
	}
	snprintf(path, sizeof(path), "/dev/loop%d", nr);
	dev = open(path, O_RDWR | O_CLOEXEC);
	if (dev < 0 || ioctl(dev, LOOP_SET_FD, file) < 0) {
		ret = -errno;
		if (dev >= 0)
			close(dev);
		close(file);
		return ret;
	}
	close(file);
	*dev_fd = dev;
	ret = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (ret < 0) {
		ret = -errno;
		ioctl(dev, LOOP_CLR_FD, 0);
		close(dev);
	}
	return ret;
}

static void reg_unsupported_targets(struct ctx *c)
{
	struct io_uring_regbuf_desc d;
	char tmpl[] = "/tmp/dmafs-reg-errors-XXXXXX";
	int fd, lfd = -1, pfd[2];

	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		desc_dmabuf(&d, c->b.fd, fd);
		expect("register for /dev/null", update(c, 1, &d, 1),
		       -EOPNOTSUPP);
		close(fd);
	}
	if (pipe2(pfd, O_CLOEXEC) == 0) {
		desc_dmabuf(&d, c->b.fd, pfd[1]);
		expect("register for a pipe", update(c, 1, &d, 1), -EOPNOTSUPP);
		close(pfd[0]);
		close(pfd[1]);
	}
	fd = loop_attach(&lfd);
	if (fd >= 0) {
		desc_dmabuf(&d, c->b.fd, fd);
		expect("register for a loop device (no driver support)",
		       update(c, 1, &d, 1), -EINVAL);
		close(fd);
		ioctl(lfd, LOOP_CLR_FD, 0);
		close(lfd);
	} else {
		t_fail("setting up a loop device: %s", strerror(-fd));
	}
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd >= 0) {
		char path[64];
		int dfd;

		unlink(tmpl);
		if (ftruncate(fd, BUF_SIZE) < 0)
			t_info("ftruncate %s: %s", tmpl, strerror(errno));
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		dfd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
		if (dfd >= 0) {
			desc_dmabuf(&d, c->b.fd, dfd);
			expect("register for an O_DIRECT file on /tmp",
			       update(c, 1, &d, 1), -EOPNOTSUPP);
			close(dfd);
		} else {
			t_info("note: /tmp has no O_DIRECT (%s); that case "
			       "is not run", strerror(errno));
		}
		close(fd);
	}
}

static void reg_reserved(struct ctx *c)
{
	struct io_uring_rsrc_update2_ext up;
	struct io_uring_regbuf_desc d;
	char what[80];

	desc_dmabuf(&d, c->b.fd, c->t->fd);
	/* no flag is defined, and the proposal does not check them */
	d.flags = 1;
	expect("register with desc.flags 1 (not checked)",
	       update(c, 1, &d, 1), 1);
	d.flags = 1U << 31;
	expect("register with desc.flags 1<<31 (not checked)",
	       update(c, 1, &d, 1), 1);
	expect("empty slot 1 again", dmafs_unregister_slot(c->ring.ring_fd, 1),
	       1);
	for (int i = 0; i < 6; i++) {
		desc_dmabuf(&d, c->b.fd, c->t->fd);
		d.__resv[i] = 1ULL << (i * 11);
		snprintf(what, sizeof(what),
			 "register with desc.__resv[%d] set", i);
		expect(what, update(c, 1, &d, 1), -EINVAL);
	}
	desc_dmabuf(&d, c->b.fd, c->t->fd);
	d.size = 4096;
	expect("register a dma-buf with desc.size set", update(c, 1, &d, 1),
	       -EINVAL);
	desc_dmabuf(&d, c->b.fd, c->t->fd);
	d.uaddr = 4096;
	expect("register a dma-buf with desc.uaddr set", update(c, 1, &d, 1),
	       -EINVAL);
	/* what EMPTY and UADDR do not take */
	memset(&d, 0, sizeof(d));
	d.size = 4096;
	expect("EMPTY with desc.size set", update(c, 1, &d, 1), -EFAULT);
	memset(&d, 0, sizeof(d));
	d.uaddr = 4096;
	expect("EMPTY with desc.uaddr set", update(c, 1, &d, 1), -EFAULT);
	memset(&d, 0, sizeof(d));
	d.dmabuf_fd = c->b.fd;
	expect("EMPTY with desc.dmabuf_fd set", update(c, 1, &d, 1), -EINVAL);
	memset(&d, 0, sizeof(d));
	d.type = IO_REGBUF_TYPE_UADDR;
	expect("UADDR with uaddr 0 and size 0", update(c, 1, &d, 1), -EFAULT);
	d.size = 4096;
	expect("UADDR with uaddr 0", update(c, 1, &d, 1), -EFAULT);
	d.target_fd = c->t->fd;
	expect("UADDR with desc.target_fd set", update(c, 1, &d, 1), -EINVAL);

	desc_dmabuf(&d, c->b.fd, c->t->fd);
	d.type = 3;
	expect("register desc.type 3", update(c, 1, &d, 1), -EINVAL);
	d.type = ~0U;
	expect("register desc.type 0xffffffff", update(c, 1, &d, 1), -EINVAL);

	/* The update itself. */
	desc_dmabuf(&d, c->b.fd, c->t->fd);
	static const struct {
		uint32_t flags;
		const char *what;
	} bad_flags[] = {
		{ IORING_RSRC_UPDATE_EXTENDED | (1U << 2), "EXTENDED|1<<2" },
		{ IORING_RSRC_UPDATE_EXTENDED | (1U << 31), "EXTENDED|1<<31" },
		{ IORING_RSRC_UPDATE_EXTENDED | 1U, "EXTENDED|1<<0" },
		{ 1U << 3, "1<<3 alone" },
	};
	for (unsigned int i = 0; i < sizeof(bad_flags) / sizeof(*bad_flags);
	     i++) {
		memset(&up, 0, sizeof(up));
		up.offset = 1;
		up.flags = bad_flags[i].flags;
		up.data = (__u64)(uintptr_t)&d;
		up.nr = 1;
		snprintf(what, sizeof(what), "update with flags %s",
			 bad_flags[i].what);
		expect(what, dmafs_rsrc_update_ext(c->ring.ring_fd, &up),
		       -EINVAL);
	}
	memset(&up, 0, sizeof(up));
	up.offset = 1;
	up.flags = IORING_RSRC_UPDATE_EXTENDED;
	up.data = (__u64)(uintptr_t)&d;
	up.nr = 1;
	up.resv2 = 1;
	expect("update with resv2 set",
	       dmafs_rsrc_update_ext(c->ring.ring_fd, &up), -EINVAL);
	up.resv2 = 0;
	up.nr = 0;
	expect("update with nr 0", dmafs_rsrc_update_ext(c->ring.ring_fd, &up),
	       -EINVAL);
	expect("register slot past the table", update(c, NR_SLOTS, &d, 1),
	       -EINVAL);
	{
		struct io_uring_regbuf_desc two[2];

		desc_dmabuf(&two[0], c->b.fd, c->t->fd);
		desc_dmabuf(&two[1], c->b.fd, c->t->fd);
		expect("register two descriptors into the last slot",
		       update(c, NR_SLOTS - 1, two, 2), -EINVAL);
	}
}

static void reg_partial(struct ctx *c)
{
	struct io_uring_regbuf_desc d[2];

	desc_dmabuf(&d[0], c->b.fd, c->t->fd);
	desc_dmabuf(&d[1], c->b.fd, c->t->fd);
	expect("register two dma-bufs in one call (slots 4, 5): count",
	       update(c, 4, d, 2), 2);
	expect_io_ok(c, "on slot 4", c->t->fd, 4);
	expect_io_ok(c, "on slot 5", c->t->fd, 5);

	desc_dmabuf(&d[1], -1, c->t->fd);
	expect("register [valid, bad fd] into slots 2, 3: count",
	       update(c, 2, d, 2), 1);
	expect_io_ok(c, "on slot 2 (installed)", c->t->fd, 2);
	expect_io(c, "on slot 3 (not installed)", c->t->fd, 3, 0, 0,
		  c->t->lba, -EFAULT);
}

static uint64_t mem_available(void)
{
	unsigned long long kb = 0;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb * 1024;
}

/*
 * A dma-buf of size bytes, unmapped: vgem first (lazily backed, so it costs
 * no memory until something maps it), else udmabuf (pins memory, and
 * refuses more than udmabuf.size_limit_mb, 64 MiB by default).
 */
static int big_dmabuf(size_t size, struct t_dmabuf *b)
{
	int ret = t_dmabuf_create(T_SRC_VGEM, size, false, b);

	if (ret == -ENODEV)
		ret = t_dmabuf_create(T_SRC_UDMABUF, size, false, b);
	return ret;
}

static void reg_size_limit(struct ctx *c)
{
	struct t_dmabuf big;
	int ret;

	ret = big_dmabuf(T_DMABUF_MAX + 4096, &big);
	if (ret) {
		t_skip("no dma-buf of 1 GiB + 4 KiB to register (%s): it needs "
		       "vgem, or udmabuf with udmabuf.size_limit_mb >= 1025 "
		       "and the memory", strerror(-ret));
		c->skipped = true;
	} else {
		ret = dmafs_register_dmabuf(c->ring.ring_fd, 6, big.fd,
					    c->t->fd);
		if (ret == 1) {
			/*
			 * Allowed by the contract: accepted, but every I/O on
			 * it fails with -EINVAL.  Nothing must be mapped.
			 */
			t_info("note: the 1 GiB + 4 KiB %s dma-buf was "
			       "registered; checking that I/O on it fails",
			       t_src_name(big.src));
			expect_io(c, "on a dma-buf over 1 GiB", c->t->fd, 6, 0,
				  0, c->t->lba, -EINVAL);
			dmafs_unregister_slot(c->ring.ring_fd, 6);
		} else {
			expect("register a dma-buf of 1 GiB + 4 KiB", ret,
			       -EINVAL);
		}
		t_dmabuf_destroy(&big);
	}

	/*
	 * Exactly 1 GiB is allowed.  Registering may pin it (udmabuf and vgem
	 * are not dynamic exporters, so attaching maps them), so only with
	 * the memory to spare; no I/O.
	 */
	if (mem_available() < T_GiB + T_GiB / 2) {
		t_info("note: %" PRIu64 " MiB available; the exactly-1-GiB "
		       "case needs 1536 and is not run",
		       mem_available() / T_MiB);
		return;
	}
	if (t_dmabuf_create(T_SRC_VGEM, T_DMABUF_MAX, false, &big)) {
		t_info("note: no vgem; the exactly-1-GiB case is not run");
		return;
	}
	expect("register a dma-buf of exactly 1 GiB",
	       dmafs_register_dmabuf(c->ring.ring_fd, 6, big.fd, c->t->fd), 1);
	dmafs_unregister_slot(c->ring.ring_fd, 6);
	t_dmabuf_destroy(&big);
}

static void io_other_file(struct ctx *c)
{
	char tmpl[] = "/tmp/dmafs-reg-errors-XXXXXX";
	int fd;

	fd = t_target_reopen(c->t, O_RDWR | O_DIRECT);
	if (fd >= 0) {
		expect_io(c, "on another open file of the target's device", fd,
			  0, 0, 0, c->t->lba, -EBADF);
		close(fd);
	} else {
		t_fail("reopening %s: %s", c->t->path, strerror(-fd));
	}
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd >= 0) {
		unlink(tmpl);
		if (ftruncate(fd, BUF_SIZE) == 0)
			expect_io(c, "on a file in /tmp", fd, 0, 0, 0,
				  c->t->lba, -EBADF);
		close(fd);
	}
	fd = dup(c->t->fd);
	if (fd >= 0) {
		expect_io_ok(c, "through a dup() of the target fd", fd, 0);
		close(fd);
	}
}

static void io_unaligned(struct ctx *c)
{
	const uint32_t lba = c->t->lba;
	const uint32_t ma = c->t->mem_align;
	int fd = c->t->fd;

	expect_io(c, "at target offset 1", fd, 0, 0, 1, lba, -EINVAL);
	expect_io(c, "at target offset lba/2", fd, 0, 0, lba / 2, lba,
		  -EINVAL);
	expect_io(c, "of lba/2 bytes", fd, 0, 0, 0, lba / 2, -EINVAL);
	expect_io(c, "of lba+8 bytes", fd, 0, 0, 0, lba + 8, -EINVAL);
	expect_io(c, "at dma-buf offset 1", fd, 0, 1, 0, lba, -EINVAL);
	if (ma > 2)
		expect_io(c, "at dma-buf offset 2 (below the DMA alignment)",
			  fd, 0, 2, 0, lba, -EINVAL);
	if (ma && ma < lba) {
		char what[80];

		/* Allowed: the device takes this alignment (statx). */
		snprintf(what, sizeof(what),
			 "at dma-buf offset %u (the DMA alignment)", ma);
		expect_io(c, what, fd, 0, ma, 0, lba, (int)lba);
	}
}

/* O_DIRECT cleared after registration: dma-buf memory has no buffered path. */
static void io_not_direct(struct ctx *c)
{
	int fl = fcntl(c->t->fd, F_GETFL);

	if (fl < 0 || fcntl(c->t->fd, F_SETFL, fl & ~O_DIRECT) < 0) {
		t_fail("fcntl F_SETFL on the target: %s", strerror(errno));
		return;
	}
	expect_io(c, "after O_DIRECT was cleared with fcntl", c->t->fd, 0, 0,
		  0, c->t->lba, -EINVAL);
	if (fcntl(c->t->fd, F_SETFL, fl) < 0)
		t_fail("restoring O_DIRECT on the target: %s", strerror(errno));
	expect_io_ok(c, "once O_DIRECT is set again", c->t->fd, 0);
}

static void io_bad_ranges(struct ctx *c)
{
	const uint32_t lba = c->t->lba;
	const uint64_t size = c->b.size;
	int fd = c->t->fd;

	expect_io(c, "ending one block past the dma-buf", fd, 0, size - lba, 0,
		  2 * lba, -EFAULT);
	expect_io(c, "starting at the end of the dma-buf", fd, 0, size, 0, lba,
		  -EFAULT);
	expect_io(c, "whose dma-buf range wraps around 2^64", fd, 0,
		  UINT64_MAX - lba + 1, 0, lba, -EFAULT);
	expect_io(c, "larger than the dma-buf", fd, 0, 0, 0,
		  (uint32_t)size + lba, -EFAULT);
	expect_io(c, "of length 0", fd, 0, 0, 0, 0, -EFAULT);
	expect_io(c, "on an empty slot", fd, 1, 0, 0, lba, -EFAULT);
	expect_io(c, "on a slot past the table", fd, NR_SLOTS, 0, 0, lba,
		  -EFAULT);
	expect_io(c, "on slot 65535", fd, 65535, 0, 0, lba, -EFAULT);
}

static void io_vectored(struct ctx *c)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(&c->ring);
	static const uint8_t ops[] = { OP_READV_FIXED, OP_WRITEV_FIXED };

	if (!p) {
		t_fail("io_uring_get_probe_ring failed");
		return;
	}
	for (unsigned int i = 0; i < 2; i++) {
		struct iovec iov = { .iov_base = 0, .iov_len = c->t->lba };
		const char *name = i ? "WRITEV_FIXED" : "READV_FIXED";
		struct io_uring_sqe *sqe;
		struct io_uring_cqe *cqe;
		char what[80];
		int ret;

		if (!io_uring_opcode_supported(p, ops[i])) {
			t_info("note: the kernel has no IORING_OP_%s: no "
			       "vectored fixed op to refuse", name);
			continue;
		}
		sqe = io_uring_get_sqe(&c->ring);
		io_uring_prep_rw(ops[i], sqe, c->t->fd, &iov, 1, 0);
		sqe->buf_index = 0;
		io_uring_submit(&c->ring);
		ret = io_uring_wait_cqe(&c->ring, &cqe);
		if (ret) {
			t_fail("waiting for %s: %s", name, strerror(-ret));
			continue;
		}
		ret = cqe->res;
		io_uring_cqe_seen(&c->ring, cqe);
		snprintf(what, sizeof(what), "%s on a dma-buf slot", name);
		expect(what, ret, -EOPNOTSUPP);
	}
	io_uring_free_probe(p);
}

/* IO_REGBUF_TYPE_UADDR: an ordinary buffer through the extended update. */
static void reg_uaddr(struct ctx *c)
{
	struct io_uring_regbuf_desc d;
	char what[80];
	int zfd;

	c->ubuf = t_alloc_aligned(UADDR_SIZE);
	if (!c->ubuf) {
		t_fail("out of memory");
		return;
	}
	memset(&d, 0, sizeof(d));
	d.type = IO_REGBUF_TYPE_UADDR;
	d.uaddr = (uintptr_t)c->ubuf;
	d.size = UADDR_SIZE;
	snprintf(what, sizeof(what),
		 "register a user buffer (UADDR) in slot %d", UADDR_SLOT);
	if (!expect(what, update(c, UADDR_SLOT, &d, 1), 1))
		return;
	expect_io(c, "on the UADDR slot", c->t->fd, UADDR_SLOT,
		  (uintptr_t)c->ubuf, 0, c->t->lba, (int)c->t->lba);
	/* Not bound to a file: any file will do. */
	zfd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (zfd >= 0) {
		expect("READ_FIXED into the UADDR slot from /dev/zero",
		       io(c, IORING_OP_READ_FIXED, zfd, UADDR_SLOT,
			  (uintptr_t)c->ubuf, 0, 4096), 4096);
		close(zfd);
	}
}

/* A connected TCP pair over the loopback: 0 or -errno. */
static int tcp_pair(int *tx, int *rx)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int l, ret = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*tx = *rx = -1;
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0) {
		ret = -errno;
		goto out;
	}
	*tx = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*tx < 0 || connect(*tx, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	*rx = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (*rx < 0)
		ret = -errno;
out:
	close(l);
	if (ret) {
		if (*tx >= 0)
			close(*tx);
		*tx = -1;
	}
	return ret;
}

/* SEND_ZC from a fixed buffer: its result (the notification is reaped). */
static int send_zc(struct io_uring *ring, int sock, unsigned int slot,
		   uint64_t addr, unsigned int len)
{
	struct __kernel_timespec ts = { .tv_sec = 30 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	bool more = true, have_res = false;
	int res = -ETIME;

	io_uring_prep_send_zc_fixed(sqe, sock, (void *)(uintptr_t)addr, len, 0,
				    0, slot);
	io_uring_submit(ring);
	while (!have_res || more) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe_timeout(ring, &cqe, &ts))
			return have_res ? res : -ETIME;
		if (cqe->flags & IORING_CQE_F_NOTIF) {
			more = false;
		} else {
			res = cqe->res;
			have_res = true;
			more = cqe->flags & IORING_CQE_F_MORE;
		}
		io_uring_cqe_seen(ring, cqe);
	}
	return res;
}

/* Zero-copy send from a dma-buf slot: refused, nothing sent. */
static void io_send_zc(struct ctx *c)
{
	char junk[4096];
	int tx, rx, ret;
	ssize_t n;

	ret = tcp_pair(&tx, &rx);
	if (ret) {
		t_info("note: no TCP over the loopback (%s): the SEND_ZC "
		       "case is not run", strerror(-ret));
		return;
	}
	/* Control: the same send from an ordinary fixed buffer works. */
	if (c->ubuf) {
		ret = send_zc(&c->ring, tx, UADDR_SLOT, (uintptr_t)c->ubuf,
			      512);
		if (ret == -EOPNOTSUPP) {
			t_info("note: SEND_ZC is not supported on this socket; "
			       "that case is not run");
			goto out;
		}
		expect("SEND_ZC from the UADDR slot (control)", ret, 512);
		usleep(100000);
		while (recv(rx, junk, sizeof(junk), 0) > 0)
			;
	}
	expect("SEND_ZC from a dma-buf slot",
	       send_zc(&c->ring, tx, 0, 4096, 512), -EFAULT);
	usleep(100000);
	n = recv(rx, junk, sizeof(junk), 0);
	if (n > 0)
		t_fail("SEND_ZC from a dma-buf slot: the peer received %zd "
		       "bytes", n);
out:
	close(tx);
	close(rx);
}

/* An NVMe passthrough command using fixed buffer slot: cqe->res. */
static int nvme_cmd(struct io_uring *ring, int ngfd, __u32 nsid, __u8 opcode,
		    unsigned int slot, uint64_t addr, uint32_t lba)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct nvme_uring_cmd *cmd = (struct nvme_uring_cmd *)sqe->cmd;
	struct io_uring_cqe *cqe;
	int ret;

	memset(sqe, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = ngfd;
	sqe->cmd_op = NVME_URING_CMD_IO;
	sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
	sqe->buf_index = slot;
	cmd->opcode = opcode;		/* 0x01 write, 0x02 read */
	cmd->nsid = nsid;
	cmd->addr = addr;
	cmd->data_len = lba;
	cmd->cdw10 = 0;			/* LBA 0 */
	cmd->cdw12 = 0;			/* one block */
	io_uring_submit(ring);
	ret = io_uring_wait_cqe(ring, &cqe);
	if (ret)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

/*
 * NVMe passthrough (uring_cmd with IORING_URING_CMD_FIXED) on the
 * namespace's generic char device from a dma-buf slot: refused.
 */
static void io_uring_cmd(struct ctx *c)
{
	struct io_uring ring;
	unsigned int ctrl, ns;
	char ng[64];
	int ngfd, nsid, ret;

	if (sscanf(c->t->path, "/dev/nvme%un%u", &ctrl, &ns) != 2) {
		t_info("note: %s is no NVMe namespace: the NVMe passthrough "
		       "case is not run", c->t->path);
		return;
	}
	snprintf(ng, sizeof(ng), "/dev/ng%un%u", ctrl, ns);
	ngfd = open(ng, O_RDWR | O_CLOEXEC);
	if (ngfd < 0) {
		t_info("note: %s: %s: the NVMe passthrough case is not run", ng,
		       strerror(errno));
		return;
	}
	nsid = ioctl(ngfd, NVME_IOCTL_ID);
	if (nsid <= 0 || t_ring_init(&ring, 4, IORING_SETUP_SQE128 |
				     IORING_SETUP_CQE32, 2)) {
		t_fail("NVMe passthrough setup on %s failed", ng);
		close(ngfd);
		return;
	}
	ret = dmafs_register_dmabuf(ring.ring_fd, 0, c->b.fd, c->t->fd);
	if (!expect("register the dma-buf on an SQE128 ring", ret, 1))
		goto out;
	if (c->ubuf) {
		struct io_uring_regbuf_desc d;

		memset(&d, 0, sizeof(d));
		d.type = IO_REGBUF_TYPE_UADDR;
		d.uaddr = (uintptr_t)c->ubuf;
		d.size = UADDR_SIZE;
		ret = dmafs_regbuf_update(ring.ring_fd, 1, &d, 1);
		expect("register the user buffer on an SQE128 ring", ret, 1);
		if (ret == 1)
			expect("NVMe passthrough read into the UADDR slot "
			       "(control)",
			       nvme_cmd(&ring, ngfd, nsid, 0x02, 1,
					(uintptr_t)c->ubuf, c->t->lba), 0);
	}
	/* Not at dma-buf offset 0: nvme maps no data for a zero address. */
	expect("NVMe passthrough read into a dma-buf slot",
	       nvme_cmd(&ring, ngfd, nsid, 0x02, 0, 4096, c->t->lba),
	       -EFAULT);
	expect("NVMe passthrough write from a dma-buf slot",
	       nvme_cmd(&ring, ngfd, nsid, 0x01, 0, 4096, c->t->lba),
	       -EFAULT);
out:
	io_uring_queue_exit(&ring);
	close(ngfd);
}

/*
 * A read-only dma-buf: the device may read it (WRITE_FIXED) but never write
 * it (READ_FIXED: -EACCES).  vgem whatever the -s source, since udmabuf
 * always exports read-write.
 */
static void io_readonly(struct ctx *c)
{
	const unsigned int slot = 6;
	uint32_t lba = c->t->lba;
	uint8_t *blk, *map;
	int fd, ret, res;
	struct t_req r = {
		.fd = c->t->fd, .slot = slot, .len = lba,
	};
	struct t_dmabuf ro = { .src = T_SRC_VGEM, .exporter_fd = -1 };

	ret = t_vgem_export(BUF_SIZE, false, &fd);
	if (ret) {
		t_fail("read-only vgem export: %s", strerror(-ret));
		return;
	}
	ro.fd = fd;
	ro.size = BUF_SIZE;
	blk = t_alloc_aligned(lba);
	if (!blk) {
		t_fail("out of memory");
		goto out_close;
	}
	if (!expect("register a read-only dma-buf",
		    dmafs_register_dmabuf(c->ring.ring_fd, slot, fd, c->t->fd),
		    1))
		goto out_free;

	/* The block holds a pattern: a read into the buffer must not run. */
	t_pattern_fill(blk, lba, 77, 0);
	ret = t_pwrite_full(c->t->fd, blk, lba, 0);
	if (ret) {
		t_fail("O_DIRECT pwrite: %s", strerror(-ret));
		goto out_unreg;
	}
	r.opcode = IORING_OP_READ_FIXED;
	expect("READ_FIXED into a read-only dma-buf",
	       t_req_run(&c->ring, &ro, &r), -EACCES);
	map = mmap(NULL, BUF_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		t_fail("mmap of the read-only dma-buf: %s", strerror(errno));
	} else {
		if (t_check_byte(map, BUF_SIZE, 0) >= 0)
			t_fail("READ_FIXED into a read-only dma-buf changed it");
		munmap(map, BUF_SIZE);
	}

	/* The device reading it is fine: the block becomes zeros. */
	r.opcode = IORING_OP_WRITE_FIXED;
	res = t_req_run(&c->ring, &ro, &r);
	expect("WRITE_FIXED from a read-only dma-buf", res, (int)lba);
	ret = t_pread_full(c->t->fd, blk, lba, 0);
	if (ret)
		t_fail("O_DIRECT pread: %s", strerror(-ret));
	else if (res == (int)lba && t_check_byte(blk, lba, 0) >= 0)
		t_fail("WRITE_FIXED from a read-only dma-buf did not write "
		       "its zeros");
out_unreg:
	expect("empty the read-only dma-buf's slot",
	       dmafs_unregister_slot(c->ring.ring_fd, slot), 1);
out_free:
	free(blk);
out_close:
	close(fd);
}

static void usage(void)
{
	fprintf(stderr, "usage: %s TARGET [-s udmabuf|vgem]\n"
			"  writes to the first blocks of TARGET\n", t_prog);
}

int main(int argc, char **argv)
{
	struct t_target t;
	struct ctx c = { .t = &t };
	enum t_src src = T_SRC_UDMABUF;
	bool src_given = false;
	int opt, ret;

	t_prog = "reg_errors";
	while ((opt = getopt(argc, argv, "s:h")) != -1) {
		if (opt == 's' && !t_src_parse(optarg, &src) &&
		    src != T_SRC_SELFTEST) {
			src_given = true;
			continue;
		}
		usage();
		return opt == 'h' ? T_EXIT_PASS : T_EXIT_FAIL;
	}
	if (optind >= argc) {
		t_skip("no target given");
		usage();
		return T_EXIT_SKIP;
	}
	ret = t_target_open_arg(argv[optind], &t);
	if (ret)
		return ret;
	ret = t_ring_init(&c.ring, 8, 0, NR_SLOTS);
	if (ret) {
		t_fail("ring setup: %s", strerror(-ret));
		goto out_close;
	}
	if (t_check_feature(&c.ring))
		goto out_ring;

	ret = t_dmabuf_create(src, BUF_SIZE, false, &c.b);
	if (ret == -ENODEV && !src_given) {
		src = T_SRC_VGEM;
		ret = t_dmabuf_create(src, BUF_SIZE, false, &c.b);
	}
	if (ret == -ENODEV) {
		t_skip("no dma-buf exporter (/dev/udmabuf or vgem)");
		c.skipped = true;
		goto out_ring;
	}
	if (ret) {
		t_fail("creating a %s buffer: %s", t_src_name(src),
		       strerror(-ret));
		goto out_ring;
	}
	t_info("target %s (%u-byte blocks, DMA alignment %u), %s dma-buf",
	       t.path, t.lba, t.mem_align, t_src_name(src));

	/* The valid case first: without it the rest means nothing. */
	expect("register the dma-buf in slot 0",
	       dmafs_register_dmabuf(c.ring.ring_fd, 0, c.b.fd, t.fd), 1);
	expect_io_ok(&c, "on slot 0", t.fd, 0);
	if (t_failures)
		goto out_buf;

	reg_bad_fds(&c);
	reg_unsupported_targets(&c);
	reg_reserved(&c);
	/* None of that may have touched slots 0 and 1. */
	expect_io_ok(&c, "on slot 0 after the failed registrations", t.fd, 0);
	expect_io(&c, "on slot 1 after the failed registrations", t.fd, 1, 0,
		  0, t.lba, -EFAULT);
	reg_partial(&c);
	reg_size_limit(&c);
	reg_uaddr(&c);

	io_other_file(&c);
	io_unaligned(&c);
	io_not_direct(&c);
	io_bad_ranges(&c);
	io_vectored(&c);
	io_send_zc(&c);
	io_uring_cmd(&c);
	io_readonly(&c);

	expect("empty slot 0", dmafs_unregister_slot(c.ring.ring_fd, 0), 1);
	expect_io(&c, "on slot 0 after emptying it", t.fd, 0, 0, 0, t.lba,
		  -EFAULT);
	expect("empty slot 0 again", dmafs_unregister_slot(c.ring.ring_fd, 0),
	       1);
out_buf:
	free(c.ubuf);
	t_dmabuf_destroy(&c.b);
out_ring:
	io_uring_queue_exit(&c.ring);
out_close:
	t_target_close(&t);
	return t_exit_status(c.skipped);
}
