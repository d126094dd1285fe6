// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * dmafs_errors: dma-buf I/O on files of a mounted dmafs (kernel extension,
 * layers 1 and 2), the error cases with the errno the contracts define
 * (include/dmafs/fuse_dmafs.h, include/dmafs/io_uring_dmabuf.h,
 * docs/kernel-extension.md), and several rings in threads at once.
 *
 *   dmafs_errors CASE FILE [ARGS...] [-s udmabuf|vgem]... [-p PID] [-n N]
 *
 * FILE is a regular file on a dmafs mount in kext mode, prepared by
 * tests/vm/test_dmafs_e2e.py as each case says.  "pattern" below is the
 * helpers.c pattern of generation 1 at the file position
 * (t_pattern_fill(.., 1, pos)), which the Python side writes too.
 *
 *  notdirect FILE          registration against FILE opened without
 *                          O_DIRECT (O_RDWR, O_RDONLY): -EINVAL.
 *  otherfile FILE OTHER    a dma-buf registered for FILE; READ/WRITE_FIXED
 *                          on OTHER (another dmafs file) and on a second,
 *                          independent open of FILE: -EBADF; a dup() of
 *                          the registered fd works.  Both preallocated.
 *  hole FILE OFF LEN       FILE holds the pattern except for the hole
 *                          [OFF, OFF + LEN) (punched): I/O touching the
 *                          hole -ENODATA, I/O around it data-exact; an
 *                          O_DIRECT pwrite with a user buffer fills the
 *                          hole (through the daemon), after which dma-buf
 *                          I/O there works; a hole made by extending the
 *                          size with ftruncate: -ENODATA; the hole punched
 *                          again through the registered fd: -ENODATA at
 *                          once (FILE ends as it started, for the next
 *                          source).
 *  eof FILE                FILE (size not a multiple of 4096) holds the
 *                          pattern: READ_FIXED across EOF is short (exactly
 *                          up to EOF, data exact), at or past EOF 0;
 *                          WRITE_FIXED ending past EOF or starting at EOF
 *                          -ENODATA; the size does not change.
 *  unaligned FILE          file offset / length / dma-buf offset not
 *                          aligned: -EINVAL (preallocated FILE).
 *  truncate FILE NEWSIZE   batches of reads and writes over all of FILE
 *                          (preallocated) while another thread truncates it
 *                          to NEWSIZE: every request completes in full with
 *                          exact data, is a read cut short at the new EOF
 *                          (exact data), or fails with -ENODATA/-EAGAIN;
 *                          afterwards I/O below NEWSIZE is exact, reads
 *                          past it 0, writes past it -ENODATA.
 *  punch FILE OFF LEN      the same while another thread punches
 *                          [OFF, OFF + LEN): afterwards I/O touching it
 *                          -ENODATA, elsewhere exact.
 *  kill FILE -p PID        batches of I/O back to back while another thread
 *                          kills the daemon PID with SIGKILL: each request
 *                          completes in full (reads exact) or fails with
 *                          -ENOTCONN/-EIO; once it is dead, I/O fails
 *                          with -ENOTCONN/-EIO; nothing hangs; the slot can
 *                          be emptied and the ring closed; no token leaks.
 *  umount FILE             registers and does I/O, prints "READY" and waits
 *                          for a line on stdin (the caller runs umount -l
 *                          meanwhile), then I/O on the still-registered
 *                          buffer must still be exact; teardown leaks no
 *                          token.
 *  nobody FILE             FILE is root's, mode 0644, preallocated.  The
 *                          program creates the dma-buf as root, then drops
 *                          to uid/gid 65534 (nobody): open O_RDWR and
 *                          O_WRONLY fail with EACCES; O_RDONLY | O_DIRECT
 *                          works, a dma-buf registers against it,
 *                          READ_FIXED is exact, WRITE_FIXED fails -EBADF
 *                          and the file is unchanged.
 *  threads FILE            -n N threads (default 4), each with its own ring
 *                          (plain and SINGLE_ISSUER|DEFER_TASKRUN
 *                          alternately), its own dma-buf (the -s sources in
 *                          turn) and its own O_DIRECT open of FILE, write
 *                          and read back their own stripe of FILE
 *                          concurrently, data-exact; stripe i finally holds
 *                          the pattern of generation 256 * (i + 1) +
 *                          THREAD_ITERS - 1 (printed as "stripe I OFF LEN
 *                          seed S" for the caller's cross-checks).
 *
 * Each case runs once per -s source (default: udmabuf, then vgem), except
 * kill, umount and nobody, which use the first.  Exit 0 pass, 1 fail, 77
 * skip (no file, no exporter).  Writes to FILE.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "helpers.h"

#define BLK		4096u
#define BUF_SIZE	(4 * T_MiB)	/* dma-buf per case */
#define PAT_SEED	1		/* generation of the file's pattern */
#define MAX_EAGAIN	1000
#define RACE_QD		32
#define RACE_LEN	(64 * T_KiB)
#define RACE_BATCHES	40
#define THREAD_ITERS	12
#define THREAD_QD	8
#define RELEASE_TIMEOUT	30.0
#define NOBODY		65534

struct ctx {
	struct t_target t;
	enum t_src src;
	struct t_dmabuf b;
	struct io_uring ring;
	bool ring_up;
	char label[80];
};

static enum t_src srcs[4];
static int nr_srcs;
static bool skipped;

/* The PAT_SEED pattern over [0, size) of fd, O_DIRECT: 0 or -errno. */
static int fill_pattern(int fd, uint64_t size)
{
	void *p = t_alloc_aligned(size);
	int ret;

	if (!p)
		return -ENOMEM;
	t_pattern_fill(p, size, PAT_SEED, 0);
	ret = t_pwrite_full(fd, p, size, 0);
	free(p);
	return ret;
}

static bool expect(const struct ctx *c, const char *what, int got, int want)
{
	char gb[64], wb[64];

	if (got == want) {
		t_info("ok   %s: %s: %s", c->label, what,
		       t_res_str(got, gb, sizeof(gb)));
		return true;
	}
	t_fail("%s: %s: got %s, expected %s", c->label, what,
	       t_res_str(got, gb, sizeof(gb)), t_res_str(want, wb, sizeof(wb)));
	return false;
}

/* One request; its result (-EAGAIN resubmitted). */
static int io1(struct ctx *c, uint8_t op, int fd, uint64_t boff,
	       uint64_t doff, uint32_t len)
{
	struct t_req r = {
		.opcode = op, .fd = fd, .slot = 0,
		.boff = boff, .doff = doff, .len = len,
	};

	return t_req_run(&c->ring, &c->b, &r);
}

static void expect_rw(struct ctx *c, const char *what, int fd, uint64_t boff,
		      uint64_t doff, uint32_t len, int want)
{
	char s[200];

	snprintf(s, sizeof(s), "READ_FIXED %s (off %" PRIu64 " len %u)", what,
		 doff, len);
	expect(c, s, io1(c, IORING_OP_READ_FIXED, fd, boff, doff, len), want);
	snprintf(s, sizeof(s), "WRITE_FIXED %s (off %" PRIu64 " len %u)",
		 what, doff, len);
	expect(c, s, io1(c, IORING_OP_WRITE_FIXED, fd, boff, doff, len),
	       want);
}

/* Fill dma-buf [boff, +len) with the pattern for file position doff. */
static void buf_fill(struct ctx *c, uint64_t boff, uint64_t doff, size_t len,
		     uint64_t seed)
{
	t_dmabuf_cpu_begin(&c->b);
	t_pattern_fill(c->b.map + boff, len, seed, doff);
	t_dmabuf_cpu_end(&c->b);
}

static void buf_poison(struct ctx *c, uint64_t boff, size_t len)
{
	t_dmabuf_cpu_begin(&c->b);
	memset(c->b.map + boff, T_POISON, len);
	t_dmabuf_cpu_end(&c->b);
}

/* Check dma-buf [boff, +len) against the pattern of doff; report. */
static bool buf_check(struct ctx *c, uint64_t boff, uint64_t doff, size_t len,
		      uint64_t seed, const char *what)
{
	char s[200];
	long bad;

	t_dmabuf_cpu_begin(&c->b);
	bad = t_pattern_check(c->b.map + boff, len, seed, doff);
	if (bad >= 0) {
		snprintf(s, sizeof(s), "%s: %s", c->label, what);
		t_pattern_report(c->b.map + boff, len, seed, doff, bad, s);
	}
	t_dmabuf_cpu_end(&c->b);
	return bad < 0;
}

/* A read of [doff, +len) into the dma-buf at boff: want bytes, exact. */
static void expect_read_exact(struct ctx *c, const char *what, int fd,
			      uint64_t boff, uint64_t doff, uint32_t len,
			      int want, uint64_t seed)
{
	char s[200];
	int ret;

	buf_poison(c, boff, len);
	ret = io1(c, IORING_OP_READ_FIXED, fd, boff, doff, len);
	snprintf(s, sizeof(s), "READ_FIXED %s (off %" PRIu64 " len %u)", what,
		 doff, len);
	if (expect(c, s, ret, want) && want > 0)
		buf_check(c, boff, doff, (size_t)want, seed, s);
}

/* READ_FIXED of [doff, +len) in pieces of up to 1 MiB: all exact. */
static void expect_range_exact(struct ctx *c, const char *what, int fd,
			       uint64_t doff, uint64_t len, uint64_t seed)
{
	while (len) {
		uint32_t n = len < T_MiB ? len : T_MiB;

		expect_read_exact(c, what, fd, 0, doff, n, n, seed);
		doff += n;
		len -= n;
	}
}

/* O_DIRECT pread of [off, +len) compared with the pattern. */
static void expect_file_pattern(struct ctx *c, int fd, uint64_t off,
				size_t len, uint64_t seed, const char *what)
{
	uint8_t *p = t_alloc_aligned(len);
	char s[200];
	int ret;

	if (!p) {
		t_fail("out of memory");
		return;
	}
	ret = t_pread_full(fd, p, len, off);
	snprintf(s, sizeof(s), "%s: %s: O_DIRECT pread of [%" PRIu64
		 ", +%zu)", c->label, what, off, len);
	if (ret) {
		t_fail("%s: %s", s, strerror(-ret));
	} else {
		long bad = t_pattern_check(p, len, seed, off);

		if (bad >= 0)
			t_pattern_report(p, len, seed, off, bad, s);
	}
	free(p);
}

/* ---- setup --------------------------------------------------------------- */

static int ctx_open(struct ctx *c, const char *path, enum t_src src,
		    const char *name)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->t.fd = -1;
	c->b.fd = -1;
	c->b.exporter_fd = -1;
	c->src = src;
	snprintf(c->label, sizeof(c->label), "%s/%s", name, t_src_name(src));
	ret = t_target_open(path, &c->t);
	if (ret) {
		t_fail("%s: open %s O_RDWR|O_DIRECT: %s", c->label, path,
		       strerror(-ret));
		return ret;
	}
	ret = t_dmabuf_create(src, BUF_SIZE, true, &c->b);
	if (ret == -ENODEV) {
		t_skip("%s: no %s exporter", c->label, t_src_name(src));
		skipped = true;
		goto out_target;
	}
	if (ret) {
		t_fail("%s: creating the dma-buf: %s", c->label,
		       strerror(-ret));
		goto out_target;
	}
	ret = t_ring_init(&c->ring, 2 * RACE_QD, 0, 2);
	if (ret) {
		t_fail("%s: ring setup: %s", c->label, strerror(-ret));
		goto out_buf;
	}
	c->ring_up = true;
	return 0;

out_buf:
	t_dmabuf_destroy(&c->b);
out_target:
	t_target_close(&c->t);
	return ret ? ret : -EINVAL;
}

/* ctx_open and register the dma-buf in slot 0 for the target. */
static int ctx_setup(struct ctx *c, const char *path, enum t_src src,
		     const char *name)
{
	int ret = ctx_open(c, path, src, name);

	if (ret)
		return ret;
	ret = dmafs_register_dmabuf(c->ring.ring_fd, 0, c->b.fd, c->t.fd);
	if (!expect(c, "register the dma-buf for the file", ret, 1))
		return -EPROTO;
	return 0;
}

static void ctx_close(struct ctx *c)
{
	if (c->ring_up)
		io_uring_queue_exit(&c->ring);
	c->ring_up = false;
	t_dmabuf_destroy(&c->b);
	t_target_close(&c->t);
}

static int file_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*size = st.st_size;
	return 0;
}

/* Tokens and maps of the kernel back at base (debugfs stats, if any). */
static void expect_no_leak(const char *label, const struct t_io_stats *base)
{
	double end = t_now() + RELEASE_TIMEOUT;
	struct t_io_stats st;

	if (base->tokens < 0)
		return;
	for (;;) {
		if (t_dmabuf_io_stats(&st)) {
			t_fail("%s: cannot read %s", label, T_DMABUF_IO_STATS);
			return;
		}
		if (st.tokens == base->tokens && st.maps == base->maps) {
			t_info("ok   %s: no dma-buf I/O token or map left",
			       label);
			return;
		}
		if (t_now() > end)
			break;
		usleep(20000);
	}
	t_fail("%s: %ld tokens and %ld maps live %.0f s after teardown, "
	       "expected %ld and %ld (leaked)", label, st.tokens, st.maps,
	       RELEASE_TIMEOUT, base->tokens, base->maps);
}

static void stats_base(struct t_io_stats *base)
{
	base->tokens = base->maps = base->invalidations = -1;
	if (t_debugfs_mount() || t_dmabuf_io_stats(base)) {
		t_info("note: %s not readable: token leaks are not checked",
		       T_DMABUF_IO_STATS);
		base->tokens = base->maps = -1;
	}
}

/* ---- notdirect, otherfile, unaligned -------------------------------------- */

static void case_notdirect(const char *path, enum t_src src)
{
	static const struct {
		int flags;
		const char *what;
	} opens[] = {
		{ O_RDWR, "O_RDWR without O_DIRECT" },
		{ O_RDONLY, "O_RDONLY without O_DIRECT" },
	};
	struct ctx c;

	if (ctx_open(&c, path, src, "notdirect"))
		return;
	for (unsigned int i = 0; i < 2; i++) {
		char s[120];
		int fd = open(path, opens[i].flags | O_CLOEXEC);

		if (fd < 0) {
			t_fail("%s: open %s: %s", c.label, opens[i].what,
			       strerror(errno));
			continue;
		}
		snprintf(s, sizeof(s), "register for the file opened %s",
			 opens[i].what);
		expect(&c, s, dmafs_register_dmabuf(c.ring.ring_fd, 0, c.b.fd,
						    fd), -EINVAL);
		close(fd);
	}
	/* Nothing was installed. */
	expect_rw(&c, "on the slot of the refused registrations", c.t.fd, 0,
		  0, BLK, -EFAULT);
	/* And the O_DIRECT open registers fine. */
	expect(&c, "register for the file opened O_RDWR|O_DIRECT",
	       dmafs_register_dmabuf(c.ring.ring_fd, 0, c.b.fd, c.t.fd), 1);
	expect_rw(&c, "on it", c.t.fd, 0, 0, BLK, BLK);
	ctx_close(&c);
}

static void case_otherfile(const char *path, const char *other,
			   enum t_src src)
{
	struct ctx c;
	int fd;

	if (ctx_setup(&c, path, src, "otherfile"))
		goto out;
	expect_rw(&c, "on the registered file", c.t.fd, 0, 0, BLK, BLK);
	fd = open(other, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		t_fail("%s: open %s: %s", c.label, other, strerror(errno));
	} else {
		expect_rw(&c, "on another dmafs file", fd, 0, 0, BLK, -EBADF);
		close(fd);
	}
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		t_fail("%s: reopen %s: %s", c.label, path, strerror(errno));
	} else {
		expect_rw(&c, "on a second open of the same file", fd, 0, 0,
			  BLK, -EBADF);
		close(fd);
	}
	fd = dup(c.t.fd);
	if (fd >= 0) {
		expect_rw(&c, "on a dup() of the registered fd", fd, 0, 0, BLK,
			  BLK);
		close(fd);
	}
out:
	ctx_close(&c);
}

static void case_unaligned(const char *path, enum t_src src)
{
	struct ctx c;
	int fd, ret;

	if (ctx_setup(&c, path, src, "unaligned"))
		goto out;
	fd = c.t.fd;
	expect_rw(&c, "aligned (control)", fd, 0, BLK, BLK, BLK);
	expect_rw(&c, "at file offset 1", fd, 0, 1, BLK, -EINVAL);
	expect_rw(&c, "at file offset 256", fd, 0, 256, BLK, -EINVAL);
	expect_rw(&c, "at file offset 4096 + 100", fd, 0, BLK + 100, BLK,
		  -EINVAL);
	expect_rw(&c, "of 256 bytes", fd, 0, 0, 256, -EINVAL);
	expect_rw(&c, "of 4096 + 8 bytes", fd, 0, 0, BLK + 8, -EINVAL);
	expect_rw(&c, "of 1 byte", fd, 0, 0, 1, -EINVAL);
	expect_rw(&c, "at dma-buf offset 1", fd, 1, 0, BLK, -EINVAL);
	expect_rw(&c, "at dma-buf offset 2", fd, 2, 0, BLK, -EINVAL);
	/*
	 * 512-aligned but not 4096-aligned: the contract leaves the FUSE
	 * file's block size open (the device's LBA or dmafs's 4096); report
	 * what the kernel does.
	 */
	ret = io1(&c, IORING_OP_READ_FIXED, fd, 0, 2048, BLK);
	t_info("note: %s: READ_FIXED at file offset 2048: %d (%s); the "
	       "file's offset alignment as the test programs see it: %u "
	       "(%s)", c.label, ret, ret < 0 ? strerror(-ret) : "bytes",
	       c.t.lba, c.t.mem_align ? "statx STATX_DIOALIGN" :
	       "no STATX_DIOALIGN from statx: 4096 assumed");
out:
	ctx_close(&c);
}

/* ---- hole, eof --------------------------------------------------------- */

static void case_hole(const char *path, uint64_t hoff, uint64_t hlen,
		      enum t_src src)
{
	struct ctx c;
	uint64_t size = 0;
	uint8_t *ubuf;
	int fd, ret;

	if (ctx_setup(&c, path, src, "hole"))
		goto out;
	fd = c.t.fd;
	if (file_size(fd, &size) || size < hoff + hlen + 2 * BLK ||
	    hoff < 2 * BLK || hoff % BLK || hlen % BLK || !hlen) {
		t_fail("%s: %s must be larger than the hole [%" PRIu64
		       ", +%" PRIu64 ") + 8 KiB, the hole block aligned",
		       c.label, path, hoff, hlen);
		goto out;
	}
	expect_read_exact(&c, "before the hole", fd, 0, 0, hoff, hoff,
			  PAT_SEED);
	expect_read_exact(&c, "after the hole", fd, 0, hoff + hlen,
			  size - hoff - hlen, size - hoff - hlen, PAT_SEED);
	/* Refused writes carry other data: a partial write would show. */
	buf_fill(&c, 0, 0, size, PAT_SEED + 1);
	expect_rw(&c, "in the hole's first block", fd, 0, hoff, BLK,
		  -ENODATA);
	expect_rw(&c, "in the hole's last block", fd, 0, hoff + hlen - BLK,
		  BLK, -ENODATA);
	expect_rw(&c, "from the block before into the hole", fd, 0,
		  hoff - BLK, 2 * BLK, -ENODATA);
	expect_rw(&c, "from the hole into the block after", fd, 0,
		  hoff + hlen - BLK, 2 * BLK, -ENODATA);
	expect_rw(&c, "over the whole file", fd, 0, 0, size, -ENODATA);
	/* The refused write left the data around the hole alone. */
	expect_file_pattern(&c, fd, hoff - BLK, BLK, PAT_SEED,
			    "the block before the hole after refused writes");
	expect_file_pattern(&c, fd, hoff + hlen, BLK, PAT_SEED,
			    "the block after the hole after refused writes");

	/* A user buffer fills the hole through the daemon ... */
	ubuf = t_alloc_aligned(hlen);
	if (!ubuf) {
		t_fail("out of memory");
		goto out;
	}
	t_pattern_fill(ubuf, hlen, PAT_SEED, hoff);
	ret = t_pwrite_full(fd, ubuf, hlen, hoff);
	expect(&c, "O_DIRECT pwrite with a user buffer into the hole", ret,
	       0);
	free(ubuf);
	/* ... and the daemon's new map makes it dma-buf I/O-able. */
	expect_read_exact(&c, "in the filled hole", fd, 0, hoff, hlen, hlen,
			  PAT_SEED);
	buf_fill(&c, 0, hoff, BLK, PAT_SEED);
	expect(&c, "WRITE_FIXED in the filled hole",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, hoff, BLK), BLK);
	expect_read_exact(&c, "over the whole file", fd, 0, 0, size, size,
			  PAT_SEED);

	/* A hole made by growing the file. */
	ret = ftruncate(fd, size + 2 * BLK) ? -errno : 0;
	expect(&c, "ftruncate to 8 KiB more", ret, 0);
	expect_rw(&c, "in the new hole past the old size", fd, 0, size, BLK,
		  -ENODATA);
	expect_read_exact(&c, "below the old size after growing", fd, 0, 0,
			  size, size, PAT_SEED);
	ret = ftruncate(fd, size) ? -errno : 0;
	expect(&c, "ftruncate back", ret, 0);

	/*
	 * Punch the hole again through the registered fd (the next source
	 * starts from the same file): at once -ENODATA there, exact around.
	 */
	ret = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, hoff,
			hlen) ? -errno : 0;
	expect(&c, "fallocate PUNCH_HOLE of the hole again", ret, 0);
	buf_fill(&c, 0, hoff, BLK, PAT_SEED + 1);
	expect_rw(&c, "in the punched-again hole", fd, 0, hoff, BLK,
		  -ENODATA);
	expect_read_exact(&c, "before the punched-again hole", fd, 0, 0,
			  hoff, hoff, PAT_SEED);
	expect_read_exact(&c, "after the punched-again hole", fd, 0,
			  hoff + hlen, size - hoff - hlen, size - hoff - hlen,
			  PAT_SEED);
out:
	ctx_close(&c);
}

static void case_eof(const char *path, enum t_src src)
{
	struct ctx c;
	uint64_t size = 0, size2 = 0, last, end;
	uint32_t tail;
	int fd;

	if (ctx_setup(&c, path, src, "eof"))
		goto out;
	fd = c.t.fd;
	if (file_size(fd, &size) || size % BLK == 0 || size < 2 * BLK) {
		t_fail("%s: %s must be > 8 KiB, not a multiple of 4096",
		       c.label, path);
		goto out;
	}
	last = size / BLK * BLK;	/* the partial last block */
	end = last + BLK;		/* EOF rounded up */
	tail = size - last;

	expect_read_exact(&c, "of the last, partial block", fd, 0, last, BLK,
			  tail, PAT_SEED);
	expect_read_exact(&c, "across EOF, 2 blocks", fd, 0, last - BLK,
			  3 * BLK, BLK + tail, PAT_SEED);
	expect_read_exact(&c, "of the whole file and more", fd, 0, 0,
			  end + 4 * BLK, size, PAT_SEED);
	expect_read_exact(&c, "at EOF rounded up", fd, 0, end, BLK, 0,
			  PAT_SEED);
	expect_read_exact(&c, "1 MiB past EOF", fd, 0, end + T_MiB, BLK, 0,
			  PAT_SEED);

	/* Refused writes carry other data: a partial write would show. */
	buf_fill(&c, 0, last, BLK, PAT_SEED + 1);
	expect(&c, "WRITE_FIXED of the partial last block (ends past EOF)",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, last, BLK), -ENODATA);
	buf_fill(&c, 0, last - BLK, 2 * BLK, PAT_SEED + 1);
	expect(&c, "WRITE_FIXED across EOF",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, last - BLK, 2 * BLK),
	       -ENODATA);
	expect(&c, "WRITE_FIXED at EOF rounded up",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, end, BLK), -ENODATA);
	expect(&c, "WRITE_FIXED 1 MiB past EOF",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, end + T_MiB, BLK),
	       -ENODATA);
	buf_fill(&c, 0, last - BLK, BLK, PAT_SEED);
	expect(&c, "WRITE_FIXED of the block before the last (control)",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, last - BLK, BLK), BLK);
	if (!file_size(fd, &size2) && size2 != size)
		t_fail("%s: the size changed from %" PRIu64 " to %" PRIu64,
		       c.label, size, size2);
	expect_read_exact(&c, "of the whole file afterwards", fd, 0, 0, end,
			  size, PAT_SEED);
out:
	ctx_close(&c);
}

/* ---- truncate and punch during I/O --------------------------------------- */

struct racer {
	int fd;			/* a separate, buffered open of the file */
	bool punch;
	uint64_t off, len;	/* punch range; truncate: new size in off */
	int delay_us;
	int err;
	atomic_bool done;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	usleep(r->delay_us);
	if (r->punch)
		r->err = fallocate(r->fd, FALLOC_FL_PUNCH_HOLE |
				   FALLOC_FL_KEEP_SIZE, r->off, r->len) ?
				 errno : 0;
	else
		r->err = ftruncate(r->fd, r->off) ? errno : 0;
	atomic_store(&r->done, true);
	return NULL;
}

/*
 * RACE_QD requests over stripes of [0, size): even ones write the
 * pattern, odd ones read.  All data is the pattern of PAT_SEED, so any
 * completed read must find it whatever the order.
 */
static void race_batch(struct ctx *c, struct t_req *reqs, uint64_t size,
		       uint64_t *rng)
{
	const uint64_t stripe = size / RACE_QD / BLK * BLK;

	for (unsigned int i = 0; i < RACE_QD; i++) {
		struct t_req *r = &reqs[i];
		uint64_t room = stripe - RACE_LEN;

		memset(r, 0, sizeof(*r));
		r->opcode = i & 1 ? IORING_OP_READ_FIXED :
				    IORING_OP_WRITE_FIXED;
		r->fd = c->t.fd;
		r->slot = 0;
		r->len = RACE_LEN;
		r->doff = stripe * i + t_rand(rng) % (room / BLK + 1) * BLK;
		r->boff = (uint64_t)i * RACE_LEN;
		r->seed = PAT_SEED;
	}
	t_dmabuf_cpu_begin(&c->b);
	for (unsigned int i = 0; i < RACE_QD; i++) {
		struct t_req *r = &reqs[i];

		if (r->opcode == IORING_OP_WRITE_FIXED)
			t_pattern_fill(c->b.map + r->boff, r->len, r->seed,
				       r->doff);
		else
			memset(c->b.map + r->boff, T_POISON, r->len);
	}
	t_dmabuf_cpu_end(&c->b);
}

/*
 * Whether r's result is allowed while the layout changes: full, a read
 * cut at EOF (eof_ok), -ENODATA or -EAGAIN; data of reads exact.
 */
static void race_check(struct ctx *c, struct t_req *r, bool eof_ok,
		       unsigned long *full, unsigned long *cut,
		       unsigned long *failed)
{
	char what[200];

	t_req_describe(r, c->label, what, sizeof(what));
	if (r->res == (int)r->len) {
		(*full)++;
	} else if (r->res >= 0 && eof_ok && r->opcode == IORING_OP_READ_FIXED) {
		(*cut)++;
	} else if (r->res == -ENODATA || r->res == -EAGAIN) {
		(*failed)++;
		return;
	} else {
		t_fail("%s while the file is %s: %d (%s), expected %u, "
		       "-ENODATA or -EAGAIN%s", what,
		       eof_ok ? "truncated" : "hole-punched", r->res,
		       r->res < 0 ? strerror(-r->res) : "short", r->len,
		       eof_ok ? " (or a read cut at the new EOF)" : "");
		return;
	}
	if (r->opcode == IORING_OP_READ_FIXED && r->res > 0) {
		t_dmabuf_cpu_begin(&c->b);
		long bad = t_pattern_check(c->b.map + r->boff, r->res, r->seed,
					   r->doff);
		if (bad >= 0)
			t_pattern_report(c->b.map + r->boff, r->res, r->seed,
					 r->doff, bad, what);
		t_dmabuf_cpu_end(&c->b);
	}
}

static void case_race(const char *path, bool punch, uint64_t a, uint64_t b2,
		      enum t_src src)
{
	struct racer rc = { .fd = -1, .punch = punch, .off = a, .len = b2 };
	unsigned long full = 0, cut = 0, failed = 0, batches = 0;
	uint64_t rng = 0x9e3779b97f4a7c15ull ^ (punch ? 7 : 3);
	struct t_req reqs[RACE_QD];
	struct ctx c;
	uint64_t size, sz;
	pthread_t th;
	bool started = false;
	int fd, ret;

	if (ctx_setup(&c, path, src, punch ? "punch" : "truncate"))
		goto out;
	fd = c.t.fd;
	if (file_size(fd, &size) || size % BLK || size < RACE_QD * 2 *
	    RACE_LEN || (punch ? (a % BLK || b2 % BLK || !b2 ||
				  a + b2 > size) : (a % BLK || a >= size))) {
		t_fail("%s: bad file size or range for %s", c.label, path);
		goto out;
	}
	/* The whole file holds the pattern (O_DIRECT, through the map). */
	ret = fill_pattern(fd, size);
	if (!expect(&c, "O_DIRECT pwrite of the pattern over the file", ret,
		    0))
		goto out;
	/* Control: a batch without the race is exact. */
	race_batch(&c, reqs, size, &rng);
	if (t_reqs_submit(&c.ring, &c.b, reqs, RACE_QD) ||
	    t_reqs_reap(&c.ring, &c.b, reqs, RACE_QD, MAX_EAGAIN))
		goto out;
	for (unsigned int i = 0; i < RACE_QD; i++) {
		unsigned long f0 = failed, c0 = cut;

		race_check(&c, &reqs[i], false, &full, &cut, &failed);
		if (failed != f0 || cut != c0)
			t_fail("%s: control batch: request %u: %d", c.label, i,
			       reqs[i].res);
	}
	full = 0;

	rc.fd = open(path, O_RDWR | O_CLOEXEC);
	if (rc.fd < 0) {
		t_fail("%s: open %s: %s", c.label, path, strerror(errno));
		goto out;
	}
	for (int k = 0; k < RACE_BATCHES; k++) {
		race_batch(&c, reqs, size, &rng);
		ret = t_reqs_submit(&c.ring, &c.b, reqs, RACE_QD);
		if (ret) {
			t_fail("%s: submit: %s", c.label, strerror(-ret));
			break;
		}
		if (k == 2) {
			rc.delay_us = 500;
			ret = pthread_create(&th, NULL, racer_main, &rc);
			if (ret) {
				t_fail("pthread_create: %s", strerror(ret));
				break;
			}
			started = true;
		}
		if (t_reqs_reap(&c.ring, &c.b, reqs, RACE_QD, MAX_EAGAIN))
			break;
		for (unsigned int i = 0; i < RACE_QD; i++)
			race_check(&c, &reqs[i], !punch, &full, &cut, &failed);
		batches++;
		if (started && atomic_load(&rc.done) && k > 6)
			break;
	}
	if (started)
		pthread_join(th, NULL);
	t_info("%s: %lu batches during the %s: %lu requests in full, %lu "
	       "reads cut at EOF, %lu -ENODATA/-EAGAIN", c.label, batches,
	       punch ? "punch" : "truncate", full, cut, failed);
	if (!started || !atomic_load(&rc.done))
		goto out;
	expect(&c, punch ? "fallocate PUNCH_HOLE during I/O" :
			   "ftruncate during I/O", -rc.err, 0);
	if (rc.err)
		goto out;

	/* Afterwards: the right errno at once, exact data elsewhere. */
	if (punch) {
		buf_fill(&c, 0, a >= BLK ? a - BLK : a, b2 + 2 * BLK,
			 PAT_SEED + 1);
		expect_rw(&c, "in the punched range", fd, 0, a, BLK, -ENODATA);
		expect_rw(&c, "over the punched range", fd, 0, a,
			  b2 < 2 * BLK ? BLK : b2, -ENODATA);
		expect_rw(&c, "ending in the punched range", fd, 0,
			  a >= BLK ? a - BLK : a, 2 * BLK, -ENODATA);
		expect_range_exact(&c, "before the punched range", fd, 0, a,
				   PAT_SEED);
		expect_range_exact(&c, "after the punched range", fd, a + b2,
				   size - a - b2, PAT_SEED);
		if (!file_size(fd, &sz) && sz != size)
			t_fail("%s: the size changed from %" PRIu64 " to %"
			       PRIu64 " by a KEEP_SIZE punch", c.label, size,
			       sz);
	} else {
		if (!file_size(fd, &sz) && sz != a)
			t_fail("%s: size %" PRIu64 " after truncating to %"
			       PRIu64, c.label, sz, a);
		expect_range_exact(&c, "below the new size", fd, 0, a,
				   PAT_SEED);
		expect_read_exact(&c, "at the new EOF", fd, 0, a, BLK, 0,
				  PAT_SEED);
		expect_read_exact(&c, "across the new EOF", fd, 0, a - BLK,
				  2 * BLK, BLK, PAT_SEED);
		expect_read_exact(&c, "where the old EOF was", fd, 0,
				  size - BLK, BLK, 0, PAT_SEED);
		buf_fill(&c, 0, a - BLK, 2 * BLK, PAT_SEED + 1);
		expect(&c, "WRITE_FIXED at the new EOF",
		       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, a, BLK),
		       -ENODATA);
		expect(&c, "WRITE_FIXED across the new EOF",
		       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, a - BLK,
			   2 * BLK), -ENODATA);
		expect(&c, "WRITE_FIXED where the old EOF was",
		       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, size - BLK,
			   BLK), -ENODATA);
		expect_file_pattern(&c, fd, a - BLK, BLK, PAT_SEED,
				    "the last block after refused writes");
		if (!file_size(fd, &sz) && sz != a)
			t_fail("%s: size %" PRIu64 " after refused writes, "
			       "expected %" PRIu64, c.label, sz, a);
	}
	/* Writes below still land exactly. */
	buf_fill(&c, 0, 0, BLK, PAT_SEED + 1);
	expect(&c, "WRITE_FIXED of block 0 afterwards",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, 0, BLK), BLK);
	expect_file_pattern(&c, fd, 0, BLK, PAT_SEED + 1,
			    "block 0 after the WRITE_FIXED");
	buf_fill(&c, 0, 0, BLK, PAT_SEED);
	expect(&c, "WRITE_FIXED of block 0 back to the pattern",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, 0, BLK), BLK);
out:
	if (rc.fd >= 0)
		close(rc.fd);
	ctx_close(&c);
}

/* ---- the daemon killed --------------------------------------------------- */

static bool proc_dead(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	bool dead = true;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
	    p[1] == ' ')
		dead = p[2] == 'Z' || p[2] == 'X';
	fclose(f);
	return dead;
}

static bool dead_errno(int res)
{
	return res == -ENOTCONN || res == -EIO;
}

struct killer {
	pid_t pid;
	int err;
	atomic_bool done;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;

	usleep(20000);
	k->err = kill(k->pid, SIGKILL) ? errno : 0;
	atomic_store(&k->done, true);
	return NULL;
}

static void case_kill(const char *path, pid_t pid, enum t_src src)
{
	struct t_req reqs[RACE_QD];
	unsigned long full = 0, failed = 0;
	uint64_t rng = 0x4b11, size;
	struct t_io_stats base;
	struct t_dmabuf b2;
	struct ctx c;
	double end;
	int ret;

	stats_base(&base);
	if (ctx_setup(&c, path, src, "kill"))
		goto out;
	if (file_size(c.t.fd, &size) || size % BLK ||
	    size < RACE_QD * 2 * RACE_LEN) {
		t_fail("%s: %s too small", c.label, path);
		goto out;
	}
	ret = fill_pattern(c.t.fd, size);
	if (!expect(&c, "O_DIRECT pwrite of the pattern over the file", ret,
		    0))
		goto out;
	/* Control batch. */
	race_batch(&c, reqs, size, &rng);
	if (t_reqs_submit(&c.ring, &c.b, reqs, RACE_QD) ||
	    t_reqs_reap(&c.ring, &c.b, reqs, RACE_QD, MAX_EAGAIN))
		goto out;
	for (unsigned int i = 0; i < RACE_QD; i++) {
		if (reqs[i].res != (int)reqs[i].len)
			t_fail("%s: control batch: request %u: %d", c.label, i,
			       reqs[i].res);
	}
	if (t_failures)
		goto out;

	/*
	 * The kill, from another thread, while batches run back to back:
	 * each request completes in full (reads exact) or fails cleanly.
	 */
	{
		struct killer k = { .pid = pid };
		pthread_t th;
		int batches = 0, k_err;

		ret = pthread_create(&th, NULL, killer_main, &k);
		if (ret) {
			t_fail("pthread_create: %s", strerror(ret));
			goto out;
		}
		while (batches < 2000 && t_failures == 0) {
			unsigned long f0 = failed;

			race_batch(&c, reqs, size, &rng);
			ret = t_reqs_submit(&c.ring, &c.b, reqs, RACE_QD);
			if (ret) {
				t_fail("%s: submit: %s", c.label,
				       strerror(-ret));
				break;
			}
			if (t_reqs_reap(&c.ring, &c.b, reqs, RACE_QD,
					MAX_EAGAIN))
				break;	/* hung: reported */
			batches++;
			for (unsigned int i = 0; i < RACE_QD; i++) {
				struct t_req *r = &reqs[i];
				char what[200];

				t_req_describe(r, c.label, what, sizeof(what));
				if (r->res == (int)r->len) {
					full++;
					if (r->opcode == IORING_OP_READ_FIXED)
						buf_check(&c, r->boff, r->doff,
							  r->len, r->seed,
							  what);
				} else if (dead_errno(r->res)) {
					failed++;
				} else {
					t_fail("%s around the kill of the "
					       "daemon: %d (%s), expected %u, "
					       "-ENOTCONN or -EIO", what,
					       r->res, r->res < 0 ?
					       strerror(-r->res) : "short",
					       r->len);
				}
			}
			/* A whole batch failed: the connection is gone. */
			if (atomic_load(&k.done) && failed - f0 == RACE_QD)
				break;
		}
		pthread_join(th, NULL);
		k_err = k.err;
		if (k_err) {
			t_fail("%s: kill -9 %d: %s", c.label, (int)pid,
			       strerror(k_err));
			goto out;
		}
		t_info("%s: daemon %d killed during %d batches of %d "
		       "requests: %lu completed, %lu failed cleanly",
		       c.label, (int)pid, batches, RACE_QD, full, failed);
	}

	end = t_now() + 30;
	while (!proc_dead(pid) && t_now() < end)
		usleep(10000);
	if (!proc_dead(pid)) {
		t_fail("%s: the daemon %d is still alive 30 s after SIGKILL",
		       c.label, (int)pid);
		goto out;
	}
	/* The connection is gone: everything fails cleanly now. */
	race_batch(&c, reqs, size, &rng);
	if (t_reqs_submit(&c.ring, &c.b, reqs, RACE_QD) ||
	    t_reqs_reap(&c.ring, &c.b, reqs, RACE_QD, MAX_EAGAIN))
		goto out;
	for (unsigned int i = 0; i < RACE_QD; i++) {
		char what[200];

		if (dead_errno(reqs[i].res))
			continue;
		t_req_describe(&reqs[i], c.label, what, sizeof(what));
		t_fail("%s after the daemon died: %d (%s), expected -ENOTCONN "
		       "or -EIO", what, reqs[i].res,
		       reqs[i].res < 0 ? strerror(-reqs[i].res) : "success");
	}
	{
		uint8_t *q = t_alloc_aligned(BLK);
		ssize_t n = q ? pread(c.t.fd, q, BLK, 0) : -1;
		int e = n < 0 ? -errno : (int)n;

		if (!dead_errno(e))
			t_fail("%s: O_DIRECT pread after the daemon died: %d "
			       "(%s), expected -ENOTCONN or -EIO", c.label,
			       e, e < 0 ? strerror(-e) : "success");
		else
			t_info("ok   %s: O_DIRECT pread after the daemon "
			       "died: %s", c.label, strerror(-e));
		free(q);
	}
	/* A new registration: whatever it says, it must not hang or leak. */
	if (!t_dmabuf_create(src, BUF_SIZE / 4, false, &b2)) {
		ret = dmafs_register_dmabuf(c.ring.ring_fd, 1, b2.fd, c.t.fd);
		t_info("note: %s: registering a dma-buf for the file of the "
		       "dead daemon: %d (%s)", c.label, ret,
		       ret < 0 ? strerror(-ret) : "installed");
		if (ret == 1)
			dmafs_unregister_slot(c.ring.ring_fd, 1);
		t_dmabuf_destroy(&b2);
	}
	expect(&c, "empty the slot after the daemon died",
	       dmafs_unregister_slot(c.ring.ring_fd, 0), 1);
	ctx_close(&c);
	expect_no_leak(c.label, &base);
	return;
out:
	ctx_close(&c);
}

/* ---- umount -l with a registration --------------------------------------- */

static void rw_exact_round(struct ctx *c, uint64_t size, uint64_t seed,
			   const char *when)
{
	uint32_t len = size < 256 * T_KiB ? size : 256 * T_KiB;
	char s[160];

	snprintf(s, sizeof(s), "WRITE_FIXED of [0, %u) %s", len, when);
	buf_fill(c, 0, 0, len, seed);
	expect(c, s, io1(c, IORING_OP_WRITE_FIXED, c->t.fd, 0, 0, len),
	       (int)len);
	expect_file_pattern(c, c->t.fd, 0, len, seed, s);
	snprintf(s, sizeof(s), "of [0, %u) %s", len, when);
	expect_read_exact(c, s, c->t.fd, len, 0, len, len, seed);
}

static void case_umount(const char *path, enum t_src src)
{
	struct t_io_stats base;
	struct ctx c;
	uint64_t size;
	char line[64];

	stats_base(&base);
	if (ctx_setup(&c, path, src, "umount"))
		goto out;
	if (file_size(c.t.fd, &size) || size < BLK) {
		t_fail("%s: %s is empty", c.label, path);
		goto out;
	}
	rw_exact_round(&c, size, 11, "before the unmount");
	printf("READY\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		t_fail("%s: no go-ahead on stdin", c.label);
		goto out;
	}
	t_info("%s: the mount is detached (umount -l); the buffer is still "
	       "registered", c.label);
	rw_exact_round(&c, size, 12, "after umount -l");
	expect(&c, "empty the slot after umount -l",
	       dmafs_unregister_slot(c.ring.ring_fd, 0), 1);
	ctx_close(&c);
	expect_no_leak(c.label, &base);
	return;
out:
	ctx_close(&c);
}

/* ---- a user without write permission ------------------------------------- */

static void case_nobody(const char *path, enum t_src src)
{
	struct ctx c;
	uint64_t size;
	uint8_t *p;
	int fd, ret;

	memset(&c, 0, sizeof(c));
	c.src = src;
	c.t.fd = -1;
	snprintf(c.label, sizeof(c.label), "nobody/%s", t_src_name(src));
	/* As root: the pattern into the file, and the dma-buf. */
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || file_size(fd, &size) || size % BLK || !size ||
	    size > BUF_SIZE / 2) {
		t_fail("%s: %s: cannot open as root, or size not a multiple "
		       "of 4096 up to %" PRIu64, c.label, path, BUF_SIZE / 2);
		if (fd >= 0)
			close(fd);
		return;
	}
	p = t_alloc_aligned(size);
	if (!p) {
		close(fd);
		return;
	}
	t_pattern_fill(p, size, PAT_SEED, 0);
	ret = t_pwrite_full(fd, p, size, 0);
	close(fd);
	if (!expect(&c, "O_DIRECT pwrite of the pattern as root", ret, 0))
		goto out_p;
	ret = t_dmabuf_create(src, BUF_SIZE, true, &c.b);
	if (ret == -ENODEV) {
		t_skip("%s: no exporter", c.label);
		skipped = true;
		goto out_p;
	}
	if (ret) {
		t_fail("%s: dma-buf: %s", c.label, strerror(-ret));
		goto out_p;
	}
	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY)) {
		t_fail("%s: dropping to uid/gid %d: %s", c.label, NOBODY,
		       strerror(errno));
		goto out_buf;
	}
	t_info("%s: now uid %d gid %d", c.label, (int)getuid(), (int)getgid());
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	expect(&c, "open O_RDWR|O_DIRECT as nobody", fd < 0 ? -errno : 0,
	       -EACCES);
	if (fd >= 0)
		close(fd);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	expect(&c, "open O_WRONLY as nobody", fd < 0 ? -errno : 0, -EACCES);
	if (fd >= 0)
		close(fd);
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (!expect(&c, "open O_RDONLY|O_DIRECT as nobody",
		    fd < 0 ? -errno : 0, 0))
		goto out_buf;
	c.t.fd = fd;
	c.t.path = path;
	ret = t_ring_init(&c.ring, 8, 0, 2);
	if (ret) {
		t_fail("%s: ring setup as nobody: %s", c.label,
		       strerror(-ret));
		goto out_buf;
	}
	c.ring_up = true;
	if (!expect(&c, "register the dma-buf for the O_RDONLY file",
		    dmafs_register_dmabuf(c.ring.ring_fd, 0, c.b.fd, fd), 1))
		goto out_buf;
	expect_read_exact(&c, "of the whole file as nobody", fd, 0, 0, size,
			  size, PAT_SEED);
	buf_fill(&c, 0, 0, size, PAT_SEED + 1);
	expect(&c, "WRITE_FIXED on the O_RDONLY file",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, 0, BLK), -EBADF);
	expect(&c, "WRITE_FIXED of the whole O_RDONLY file",
	       io1(&c, IORING_OP_WRITE_FIXED, fd, 0, 0, size), -EBADF);
	{
		ssize_t n = pwrite(fd, p, BLK, 0);

		expect(&c, "O_DIRECT pwrite on the O_RDONLY file",
		       n < 0 ? -errno : (int)n, -EBADF);
	}
	expect_file_pattern(&c, fd, 0, size, PAT_SEED,
			    "the file after the refused writes");
out_buf:
	ctx_close(&c);
out_p:
	free(p);
}

/* ---- threads ------------------------------------------------------------- */

struct worker {
	pthread_t th;
	int idx;
	const char *path;
	enum t_src src;
	unsigned int ring_flags;
	uint64_t off, len;	/* its stripe */
	uint64_t last_seed;
	int failures;
	char msg[512];
	unsigned long ios;
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void wfail(struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void wfail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	w->failures++;
	pthread_mutex_lock(&out_lock);
	fprintf(stderr, "%s: FAIL: thread %d (%s, %s ring): ", t_prog, w->idx,
		t_src_name(w->src), w->ring_flags ? "defer" : "plain");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&out_lock);
}

/* Run n requests and wait for them: 0 or -errno of the ring. */
static int w_batch(struct io_uring *ring, struct t_req *reqs, unsigned int n)
{
	struct __kernel_timespec ts = { .tv_sec = 120 };
	unsigned int pending = n;

	for (unsigned int i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		io_uring_prep_rw(reqs[i].opcode, sqe, reqs[i].fd,
				 (void *)(uintptr_t)reqs[i].boff, reqs[i].len,
				 reqs[i].doff);
		sqe->buf_index = reqs[i].slot;
		io_uring_sqe_set_data64(sqe, i);
		reqs[i].done = false;
	}
	if (io_uring_submit(ring) < 0)
		return -EIO;
	while (pending) {
		struct io_uring_cqe *cqe;
		struct t_req *r;
		int ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);

		if (ret == -EINTR)
			continue;
		if (ret)
			return ret;
		r = &reqs[io_uring_cqe_get_data64(cqe) % n];
		ret = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (ret == -EAGAIN && r->eagain++ < MAX_EAGAIN) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

			io_uring_prep_rw(r->opcode, sqe, r->fd,
					 (void *)(uintptr_t)r->boff, r->len,
					 r->doff);
			sqe->buf_index = r->slot;
			io_uring_sqe_set_data64(sqe, r - reqs);
			io_uring_submit(ring);
			continue;
		}
		r->res = ret;
		r->done = true;
		pending--;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const uint64_t chunk = w->len / THREAD_QD;
	struct t_req reqs[THREAD_QD];
	struct io_uring ring;
	struct t_dmabuf b;
	int fd, ret;

	/* Two halves: written from the first, read into the second. */
	ret = t_dmabuf_create(w->src, 2 * w->len, true, &b);
	if (ret) {
		wfail(w, "dma-buf of %" PRIu64 " bytes: %s", 2 * w->len,
		      strerror(-ret));
		return NULL;
	}
	fd = open(w->path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		wfail(w, "open: %s", strerror(errno));
		goto out_buf;
	}
	ret = io_uring_queue_init(2 * THREAD_QD, &ring, w->ring_flags);
	if (!ret)
		ret = io_uring_register_buffers_sparse(&ring, 1);
	if (ret) {
		wfail(w, "ring: %s", strerror(-ret));
		goto out_fd;
	}
	ret = dmafs_register_dmabuf(ring.ring_fd, 0, b.fd, fd);
	if (ret != 1) {
		wfail(w, "register: %d (%s)", ret,
		      ret < 0 ? strerror(-ret) : "?");
		goto out_ring;
	}
	for (int it = 0; it < THREAD_ITERS && !w->failures; it++) {
		uint64_t seed = 256 * (w->idx + 1) + it;

		t_dmabuf_cpu_begin(&b);
		t_pattern_fill(b.map, w->len, seed, w->off);
		memset(b.map + w->len, T_POISON, w->len);
		t_dmabuf_cpu_end(&b);
		for (unsigned int d = 0; d < 2; d++) {
			for (unsigned int i = 0; i < THREAD_QD; i++) {
				memset(&reqs[i], 0, sizeof(reqs[i]));
				reqs[i].opcode = d ? IORING_OP_READ_FIXED :
						     IORING_OP_WRITE_FIXED;
				reqs[i].fd = fd;
				reqs[i].len = chunk;
				reqs[i].doff = w->off + i * chunk;
				reqs[i].boff = (d ? w->len : 0) + i * chunk;
			}
			ret = w_batch(&ring, reqs, THREAD_QD);
			if (ret) {
				wfail(w, "iteration %d: ring: %s%s", it,
				      strerror(-ret), ret == -ETIME ?
				      " (the I/O hangs)" : "");
				goto out_ring;
			}
			for (unsigned int i = 0; i < THREAD_QD; i++) {
				if (reqs[i].res != (int)chunk)
					wfail(w, "iteration %d: %s at %" PRIu64
					      ": %d, expected %" PRIu64, it,
					      d ? "READ_FIXED" : "WRITE_FIXED",
					      reqs[i].doff, reqs[i].res,
					      chunk);
				else
					w->ios++;
			}
		}
		t_dmabuf_cpu_begin(&b);
		long bad = t_pattern_check(b.map + w->len, w->len, seed,
					   w->off);
		if (bad >= 0) {
			const uint64_t *q = (const uint64_t *)(b.map + w->len);

			wfail(w, "iteration %d: read back wrong data at file "
			      "offset %" PRIu64 ": 0x%016" PRIx64
			      " (generation %" PRIu64 " pos %#" PRIx64 ")",
			      it, w->off + bad, q[bad / 8],
			      (q[bad / 8] ^ ((uint64_t)0x5a5a << 32)) >> 48,
			      (q[bad / 8] ^ ((uint64_t)0x5a5a << 32)) &
				      (((uint64_t)1 << 48) - 1));
		}
		t_dmabuf_cpu_end(&b);
		w->last_seed = seed;
	}
	if (dmafs_unregister_slot(ring.ring_fd, 0) != 1)
		wfail(w, "emptying the slot failed");
out_ring:
	io_uring_queue_exit(&ring);
out_fd:
	close(fd);
out_buf:
	t_dmabuf_destroy(&b);
	return NULL;
}

static void case_threads(const char *path, int n)
{
	struct worker ws[16];
	struct ctx c;
	uint64_t size, stripe;
	unsigned long ios = 0;
	int fd;

	memset(&c, 0, sizeof(c));
	snprintf(c.label, sizeof(c.label), "threads");
	if (n < 1 || n > 16) {
		t_fail("threads: 1..16 threads, not %d", n);
		return;
	}
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || file_size(fd, &size)) {
		t_fail("threads: open %s: %s", path, strerror(errno));
		return;
	}
	stripe = size / n / (THREAD_QD * BLK) * (THREAD_QD * BLK);
	if (stripe < THREAD_QD * BLK || stripe > 16 * T_MiB) {
		t_fail("threads: %s: %" PRIu64 " bytes is a bad size for %d "
		       "threads", path, size, n);
		close(fd);
		return;
	}
	memset(ws, 0, sizeof(ws));
	for (int i = 0; i < n; i++) {
		struct worker *w = &ws[i];

		w->idx = i;
		w->path = path;
		w->src = srcs[i % nr_srcs];
		w->ring_flags = t_ring_variants[i % T_NR_RING_VARIANTS];
		w->off = stripe * i;
		w->len = stripe;
		if (pthread_create(&w->th, NULL, worker_main, w)) {
			t_fail("pthread_create failed");
			n = i;
			break;
		}
	}
	for (int i = 0; i < n; i++) {
		pthread_join(ws[i].th, NULL);
		t_failures += ws[i].failures;
		ios += ws[i].ios;
	}
	t_info("threads: %d threads, %lu I/Os", n, ios);
	/* Every stripe holds its thread's last generation. */
	for (int i = 0; i < n; i++) {
		char s[80];

		if (!ws[i].last_seed)
			continue;
		snprintf(s, sizeof(s), "stripe of thread %d", i);
		expect_file_pattern(&c, fd, ws[i].off, ws[i].len,
				    ws[i].last_seed, s);
		printf("stripe %d %" PRIu64 " %" PRIu64 " seed %" PRIu64 "\n",
		       i, ws[i].off, ws[i].len, ws[i].last_seed);
	}
	fflush(stdout);
	close(fd);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: %s CASE FILE [ARGS] [-s udmabuf|vgem]... [-p PID] "
		"[-n THREADS]\n"
		"  cases: notdirect FILE | otherfile FILE OTHER | "
		"hole FILE OFF LEN | eof FILE |\n"
		"         unaligned FILE | truncate FILE NEWSIZE | "
		"punch FILE OFF LEN |\n"
		"         kill FILE -p PID | umount FILE | nobody FILE | "
		"threads FILE\n", t_prog);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

int main(int argc, char **argv)
{
	const char *cs, *path;
	uint64_t a = 0, b = 0;
	int nthreads = 4, opt, nargs;
	pid_t pid = 0;

	t_prog = "dmafs_errors";
	while ((opt = getopt(argc, argv, "+s:p:n:h")) != -1) {
		switch (opt) {
		case 's':
			if (nr_srcs == 4 || t_src_parse(optarg,
							&srcs[nr_srcs]) ||
			    srcs[nr_srcs] == T_SRC_SELFTEST) {
				usage();
				return T_EXIT_FAIL;
			}
			nr_srcs++;
			break;
		case 'p':
			pid = atoi(optarg);
			break;
		case 'n':
			nthreads = atoi(optarg);
			break;
		default:
			usage();
			return opt == 'h' ? T_EXIT_PASS : T_EXIT_FAIL;
		}
	}
	if (argc - optind < 2) {
		usage();
		return T_EXIT_SKIP;
	}
	cs = argv[optind];
	path = argv[optind + 1];
	nargs = argc - optind - 2;
	/* Options may also follow the positional arguments. */
	optind += 2;
	{
		char **rest = argv + optind;
		int nrest = nargs;

		nargs = 0;
		for (int i = 0; i < nrest; i++) {
			if (!strcmp(rest[i], "-s") && i + 1 < nrest) {
				if (nr_srcs == 4 ||
				    t_src_parse(rest[++i], &srcs[nr_srcs]) ||
				    srcs[nr_srcs] == T_SRC_SELFTEST) {
					usage();
					return T_EXIT_FAIL;
				}
				nr_srcs++;
			} else if (!strcmp(rest[i], "-p") && i + 1 < nrest) {
				pid = atoi(rest[++i]);
			} else if (!strcmp(rest[i], "-n") && i + 1 < nrest) {
				nthreads = atoi(rest[++i]);
			} else {
				rest[nargs++] = rest[i];
			}
		}
		argv = rest;
	}
	if (!nr_srcs) {
		srcs[nr_srcs++] = T_SRC_UDMABUF;
		srcs[nr_srcs++] = T_SRC_VGEM;
	}
	if (access(path, F_OK)) {
		t_skip("%s does not exist", path);
		return T_EXIT_SKIP;
	}
	{
		/* The extension must be there: otherwise a failure. */
		struct io_uring ring;

		if (t_ring_init(&ring, 4, 0, 1))
			return T_EXIT_FAIL;
		if (t_check_feature(&ring)) {
			io_uring_queue_exit(&ring);
			return T_EXIT_FAIL;
		}
		io_uring_queue_exit(&ring);
	}

#define NEED(n)								\
	do {								\
		if (nargs != (n)) {					\
			usage();					\
			return T_EXIT_FAIL;				\
		}							\
	} while (0)

	if (!strcmp(cs, "notdirect")) {
		NEED(0);
		for (int i = 0; i < nr_srcs; i++)
			case_notdirect(path, srcs[i]);
	} else if (!strcmp(cs, "otherfile")) {
		NEED(1);
		for (int i = 0; i < nr_srcs; i++)
			case_otherfile(path, argv[0], srcs[i]);
	} else if (!strcmp(cs, "hole")) {
		NEED(2);
		if (!parse_u64(argv[0], &a) || !parse_u64(argv[1], &b)) {
			usage();
			return T_EXIT_FAIL;
		}
		for (int i = 0; i < nr_srcs; i++)
			case_hole(path, a, b, srcs[i]);
	} else if (!strcmp(cs, "eof")) {
		NEED(0);
		for (int i = 0; i < nr_srcs; i++)
			case_eof(path, srcs[i]);
	} else if (!strcmp(cs, "unaligned")) {
		NEED(0);
		for (int i = 0; i < nr_srcs; i++)
			case_unaligned(path, srcs[i]);
	} else if (!strcmp(cs, "truncate") || !strcmp(cs, "punch")) {
		bool punch = !strcmp(cs, "punch");

		NEED(punch ? 2 : 1);
		if (!parse_u64(argv[0], &a) ||
		    (punch && !parse_u64(argv[1], &b))) {
			usage();
			return T_EXIT_FAIL;
		}
		/* Once: the first truncate or punch changes the file. */
		case_race(path, punch, a, b, srcs[0]);
	} else if (!strcmp(cs, "kill")) {
		NEED(0);
		if (pid <= 1) {
			usage();
			return T_EXIT_FAIL;
		}
		case_kill(path, pid, srcs[0]);
	} else if (!strcmp(cs, "umount")) {
		NEED(0);
		case_umount(path, srcs[0]);
	} else if (!strcmp(cs, "nobody")) {
		NEED(0);
		case_nobody(path, srcs[0]);
	} else if (!strcmp(cs, "threads")) {
		NEED(0);
		case_threads(path, nthreads);
	} else {
		usage();
		return T_EXIT_FAIL;
	}
	return t_exit_status(skipped);
}
