/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers shared by the dma-buf I/O test programs in tests/vm/dmabuf/.
 *
 * Every program takes the target (a block device such as /dev/nvme0n1, or
 * a preallocated file on a dmafs mount) as its first argument and exits
 * T_EXIT_PASS, T_EXIT_FAIL, or T_EXIT_SKIP when a precondition is missing:
 * no target argument, no such target, no dma-buf exporter device.  A kernel
 * without the extension is a failure, not a skip.
 *
 * The programs WRITE to the target: its contents are destroyed.
 *
 * Helpers return 0 (or a count) or a negative errno and never exit; they
 * print what went wrong to stderr where the caller could not say it better.
 * Nothing here is thread-safe except t_pattern_*(), which touch only their
 * arguments.
 */
#ifndef DMAFS_TESTS_DMABUF_HELPERS_H
#define DMAFS_TESTS_DMABUF_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

#include "dmafs/io_uring_dmabuf.h"

#define T_EXIT_PASS	0
#define T_EXIT_FAIL	1
#define T_EXIT_SKIP	77

#define T_KiB		((uint64_t)1 << 10)
#define T_MiB		((uint64_t)1 << 20)
#define T_GiB		((uint64_t)1 << 30)

/* Largest dma-buf the kernel accepts (ARCHITECTURE.md, layer 1). */
#define T_DMABUF_MAX	T_GiB

/*
 * The kernel series' debugfs interface (kpatch/README, patch 0007), needed
 * because udmabuf and vgem are not dynamic exporters and never invalidate
 * by themselves:
 *   invalidate  write the number of one of the writer's dma-buf fds: runs
 *               move_notify for all of that dma-buf's dynamic attachments
 *               under its reservation lock and returns once the in-flight
 *               I/O drained.  $DMAFS_DMABUF_INVALIDATE overrides the path.
 *   stats       "tokens N", "maps N" (live) and "invalidations N" lines.
 */
#define T_INVALIDATE_TRIGGER	"/sys/kernel/debug/dma_buf_io/invalidate"
#define T_DMABUF_IO_STATS	"/sys/kernel/debug/dma_buf_io/stats"
#define T_DMABUF_BUFINFO	"/sys/kernel/debug/dma_buf/bufinfo"

/* ---- output ------------------------------------------------------------ */

/* "name: " prefix of every message; set by the program's main(). */
extern const char *t_prog;

__attribute__((format(printf, 1, 2))) void t_info(const char *fmt, ...);
/* Prints "FAIL: ..." and counts it in t_failures. */
__attribute__((format(printf, 1, 2))) void t_fail(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void t_skip(const char *fmt, ...);
extern int t_failures;

/* A program's exit status from t_failures and whether it skipped work. */
int t_exit_status(bool skipped);

/* ---- the target -------------------------------------------------------- */

struct t_target {
	const char *path;
	int fd;			/* O_RDWR | O_DIRECT (+ O_EXCL for a bdev) */
	bool is_blkdev;
	uint64_t size;		/* bytes */
	uint32_t lba;		/* logical block size, bytes */
	uint32_t mem_align;	/* DMA alignment (statx), 0 if not reported */
	uint64_t max_io;	/* max_hw_sectors_kb in bytes, 0 if unknown */
};

/*
 * Open path for the tests: -ENOENT when it does not exist (a skip), other
 * -errno on failure.  A block device is opened O_EXCL, so a mounted or
 * otherwise claimed device is refused (-EBUSY).
 */
int t_target_open(const char *path, struct t_target *t);
/*
 * t_target_open() of a program's target argument, saying what went wrong:
 * T_EXIT_PASS (0) when open, T_EXIT_SKIP when path does not exist,
 * T_EXIT_FAIL otherwise.
 */
int t_target_open_arg(const char *path, struct t_target *t);
void t_target_close(struct t_target *t);
/* Another, independent open file of the same target (no O_EXCL). */
int t_target_reopen(const struct t_target *t, int flags);

/* ---- dma-buf sources --------------------------------------------------- */

enum t_src {
	T_SRC_UDMABUF,		/* memfd + /dev/udmabuf */
	T_SRC_VGEM,		/* vgem dumb buffer, exported with PRIME */
	/*
	 * No dma-buf at all: a shared memfd mapping registered as an ordinary
	 * fixed buffer.  Checks the test programs themselves on any kernel;
	 * proves nothing about the extension.
	 */
	T_SRC_SELFTEST,
};

struct t_dmabuf {
	enum t_src src;
	int fd;			/* the dma-buf (the memfd for SELFTEST) */
	int exporter_fd;	/* memfd (udmabuf), DRM fd (vgem), or -1 */
	size_t size;		/* bytes */
	uint8_t *map;		/* CPU mapping of all of it, or NULL */
	uint64_t ino;		/* inode number of the dma-buf file */
};

const char *t_src_name(enum t_src src);
int t_src_parse(const char *name, enum t_src *src);

/*
 * A zero-filled buffer of size bytes (a multiple of 4096), mapped for the
 * CPU when map is set.  -ENODEV when the exporter device is missing (a
 * skip); other -errno on failure.
 */
int t_dmabuf_create(enum t_src src, size_t size, bool map,
		    struct t_dmabuf *b);
/* Close the fds and unmap; safe on a partly torn-down buffer. */
void t_dmabuf_destroy(struct t_dmabuf *b);
/* Drop the CPU mapping / the dma-buf fd only (teardown tests). */
void t_dmabuf_unmap(struct t_dmabuf *b);
void t_dmabuf_close_fd(struct t_dmabuf *b);
/* DMA_BUF_IOCTL_SYNC around CPU access (no-ops for SELFTEST). */
int t_dmabuf_cpu_begin(const struct t_dmabuf *b);
int t_dmabuf_cpu_end(const struct t_dmabuf *b);
/* The vgem DRM device: an open fd, or -ENODEV. */
int t_vgem_open(void);
/*
 * A new zero-filled vgem buffer of size bytes exported with PRIME: the
 * dma-buf fd in *dmabuf_fd, opened read-write with rdwr (DRM_RDWR), else
 * read-only.  0 or -errno (-ENODEV without vgem).
 */
int t_vgem_export(size_t size, bool rdwr, int *dmabuf_fd);

/* ---- rings and registration -------------------------------------------- */

/*
 * A ring of entries SQEs with setup flags and a sparse buffer table of
 * nr_slots slots.
 */
int t_ring_init(struct io_uring *ring, unsigned int entries,
		unsigned int flags, unsigned int nr_slots);
/* Setup flags of the ring variants every data test runs on. */
extern const unsigned int t_ring_variants[];
extern const char *const t_ring_variant_names[];
#define T_NR_RING_VARIANTS 2

/*
 * Whether the kernel has dma-buf fixed buffers: 0 if so; otherwise prints
 * a FAIL line saying why and returns the registration's error (-EINVAL
 * from a stock kernel).  Needs a ring with a sparse table; empties slot 0.
 */
int t_check_feature(struct io_uring *ring);

/*
 * Put b into slot for I/O on target_fd: 0 or -errno.  For SELFTEST an
 * ordinary fixed buffer over b->map.
 */
int t_buf_register(struct io_uring *ring, unsigned int slot,
		   const struct t_dmabuf *b, int target_fd);
/* sqe->addr for byte off of b. */
uint64_t t_buf_addr(const struct t_dmabuf *b, uint64_t off);

/* ---- data patterns ----------------------------------------------------- */

/*
 * The pattern is a sequence of 64-bit words; the word at stream position
 * pos (bytes, a multiple of 8) of generation seed encodes both, so a
 * mismatch says where the data came from.  Tests use the target offset as
 * pos, whatever buffer the data sits in.  len and pos: multiples of 8.
 */
void t_pattern_fill(void *dst, size_t len, uint64_t seed, uint64_t pos);
/* Byte offset of the first mismatching word, or -1 when all match. */
long t_pattern_check(const void *src, size_t len, uint64_t seed,
		     uint64_t pos);
/* Reports the mismatch at off via t_fail(); what names the data. */
void t_pattern_report(const void *src, size_t len, uint64_t seed,
		      uint64_t pos, long off, const char *what);
/* Offset of the first byte that is not c, or -1. */
long t_check_byte(const void *src, size_t len, uint8_t c);

/* Deterministic pseudo-random numbers (xorshift64*). */
uint64_t t_rand(uint64_t *state);

/* ---- plain O_DIRECT I/O ------------------------------------------------ */

void *t_alloc_aligned(size_t len);
/* Whole-length pread/pwrite: 0, -EIO on a short transfer, or -errno. */
int t_pread_full(int fd, void *buf, size_t len, uint64_t off);
int t_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* ---- fixed-buffer requests --------------------------------------------- */

struct t_req {
	uint8_t opcode;		/* IORING_OP_READ_FIXED / _WRITE_FIXED */
	int fd;
	unsigned int slot;
	uint64_t boff;		/* byte offset in the buffer */
	uint64_t doff;		/* byte offset in the target */
	uint32_t len;
	uint64_t seed;		/* pattern generation of its data */
	/* results */
	int res;		/* final cqe->res */
	unsigned int eagain;	/* -EAGAIN completions resubmitted */
	bool done;
};

/*
 * Queue reqs[0..n) (user_data = index) and submit them: 0 or -errno.  The
 * ring must have at least n free SQEs.
 */
int t_reqs_submit(struct io_uring *ring, const struct t_dmabuf *b,
		  struct t_req *reqs, unsigned int n);
/*
 * Reap until every request is done, resubmitting those that complete with
 * -EAGAIN (at most max_eagain times each; beyond that the request is done
 * with -EAGAIN).  0, or -errno if the ring itself failed.
 */
int t_reqs_reap(struct io_uring *ring, const struct t_dmabuf *b,
		struct t_req *reqs, unsigned int n, unsigned int max_eagain);
/* One request, submitted and reaped: cqe->res (-EAGAIN retried). */
int t_req_run(struct io_uring *ring, const struct t_dmabuf *b,
	      struct t_req *req);

/* ---- checked requests -------------------------------------------------- */

#define T_GUARD		4096u	/* dma-buf bytes a read must leave alone */
#define T_POISON	0xe7	/* ... and what they hold */

/*
 * Put in place the data that r (opcode, doff, boff, len and seed, a
 * generation below 0x8000, set by the caller) is checked against:
 *   write: the target range and the block before and after it get the
 *          "guard" generation seed | 0x8000 (O_DIRECT pwrite), the dma-buf
 *          range the pattern of generation seed at position doff;
 *   read:  the target range (and its neighbour blocks) the pattern of
 *          generation seed, the dma-buf range and T_GUARD bytes on each
 *          side T_POISON.
 * The dma-buf must be mapped and between t_dmabuf_cpu_begin()/_end().
 * bounce: an aligned buffer of at least len + 2 blocks.  0 or -errno
 * (reported with t_fail()).
 */
int t_req_prepare(const struct t_target *t, struct t_dmabuf *b,
		  struct t_req *r, uint8_t *bounce, const char *label);
/*
 * Check r after it completed with r->res == r->len: a read put exactly the
 * pattern in the dma-buf and left the guard bytes alone; a write put exactly
 * the pattern on the target (O_DIRECT pread), left its neighbour blocks
 * alone and did not change the dma-buf.  Mismatches are reported with
 * t_fail(); true when all is well.
 */
bool t_req_verify(const struct t_target *t, struct t_dmabuf *b,
		  const struct t_req *r, uint8_t *bounce, const char *label);
/* "label OP target off X dma-buf off Y len Z" */
void t_req_describe(const struct t_req *r, const char *label, char *s,
		    size_t n);

/* ---- debugfs ----------------------------------------------------------- */

/* Write the string s to the sysfs, debugfs or proc file path: 0 or -errno. */
int t_write_str(const char *path, const char *s);
/* Mount debugfs on /sys/kernel/debug unless it is: 0 or -errno. */
int t_debugfs_mount(void);
/*
 * The dma-buf with inode number ino in dma_buf/bufinfo: its file reference
 * count and number of attached devices.  0, -ENOENT when it is not listed
 * (freed), -errno when bufinfo cannot be read.
 */
int t_dmabuf_debug_info(uint64_t ino, long *count, int *attached);

struct t_io_stats {
	long tokens;		/* live dma-buf I/O tokens (registrations) */
	long maps;		/* live mappings */
	long invalidations;	/* move_notify calls so far */
};

/* Read T_DMABUF_IO_STATS: 0, or -errno (-ENOENT: no such file). */
int t_dmabuf_io_stats(struct t_io_stats *st);

/*
 * A result for messages: "-EINVAL" and the like for the errnos the
 * contracts name, otherwise the number (and strerror() when negative) in
 * buf.
 */
const char *t_res_str(int v, char *buf, size_t n);

/* Monotonic time in seconds. */
double t_now(void);

#endif /* DMAFS_TESTS_DMABUF_HELPERS_H */
