/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmafs: move file data between a file and a dma-buf with io_uring.
 *
 * On a dmafs file with the kernel extension (ARCHITECTURE.md, layers 1 and
 * 2), the NVMe device DMAs straight into the dma-buf: READ_FIXED and
 * WRITE_FIXED on a dma-buf registered against the file.  Everywhere else
 * (a stock kernel, a file on another filesystem, a plain memory buffer) the
 * same calls work in "compat" mode: data goes through an aligned bounce
 * buffer with O_DIRECT reads and writes through io_uring, and the CPU
 * copies between the bounce buffer and a mapping of the dma-buf, bracketed
 * by DMA_BUF_IOCTL_SYNC.  The mode is chosen per registration and can be
 * asked for with dmafs_ring_slot_mode(), with the reason.
 *
 * Objects
 * -------
 *   struct dmafs_file  a file opened O_DIRECT for dma-buf I/O
 *   struct dmafs_buf   a dma-buf (udmabuf, DRM dumb buffer, imported fd) or
 *                      plain page-aligned memory standing in for one
 *   struct dmafs_ring  an io_uring with a table of buffer slots; each slot
 *                      holds one (buffer, file) registration
 *
 * A typical program:
 *
 *     struct dmafs_file *f;
 *     struct dmafs_buf *b;
 *     struct dmafs_ring *r;
 *
 *     dmafs_file_open("/mnt/dmafs/ckpt", O_RDWR | O_CREAT, 0644, &f);
 *     dmafs_prealloc(f, 0, 1 << 30);
 *     dmafs_buf_alloc_udmabuf(64 << 20, &b);
 *     dmafs_ring_create(32, 1, 0, &r);
 *     dmafs_ring_register(r, 0, b, f);
 *     dmafs_write(r, 0, 0, 0, 64 << 20);    (slot 0, dma-buf offset 0,
 *                                            file offset 0, 64 MiB)
 *     dmafs_ring_destroy(r);
 *     dmafs_buf_free(b);
 *     dmafs_file_close(f);
 *
 * Conventions
 * -----------
 *   - Every function that can fail returns 0 (or a count) on success and a
 *     negative errno on failure; errno is not used.  Functions named like a
 *     question return bool.
 *   - Offsets and lengths are bytes.  File offsets and lengths of I/O must
 *     be multiples of the file's direct-I/O alignment
 *     (dmafs_file_offset_align()); dma-buf offsets multiples of
 *     dmafs_file_mem_align().  Otherwise -EINVAL, in both modes, so that a
 *     program tested in compat mode behaves the same with the extension.
 *   - Threads: objects are not locked.  A ring is used by one thread at a
 *     time (by exactly one thread, its creator, with
 *     DMAFS_RING_SINGLE_ISSUER); files and buffers may be shared between
 *     rings as long as their lifetimes are respected.
 *   - Lifetimes: a file and a buffer registered in a slot must stay open
 *     until the slot is unregistered or the ring destroyed.
 */
#ifndef DMAFS_DMAFS_H
#define DMAFS_DMAFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- files --------------------------------------------------------------- */

struct dmafs_file;

/*
 * Open path for dma-buf I/O: open(2) with flags | O_DIRECT | O_CLOEXEC
 * (flags must include O_RDONLY, O_WRONLY or O_RDWR; O_CREAT uses mode),
 * then find out whether the file is on dmafs and its alignments.
 * Errors: those of open(2), statx(2), e.g. -ENOENT, -EACCES, -EISDIR;
 * -EINVAL when the filesystem refuses O_DIRECT; -EINVAL for a file that is
 * neither regular nor a block device; -ENOMEM.
 */
int dmafs_file_open(const char *path, int flags, mode_t mode,
		    struct dmafs_file **out);

/* Close the file.  NULL is accepted. */
void dmafs_file_close(struct dmafs_file *f);

/* The O_DIRECT file descriptor (owned by f; do not close it). */
int dmafs_file_fd(const struct dmafs_file *f);

/* The path f was opened with. */
const char *dmafs_file_path(const struct dmafs_file *f);

/*
 * Whether the file lives on a dmafs mount: statfs f_type is FUSE's and the
 * mount's filesystem type in /proc/self/mountinfo is "fuse.dmafs".
 */
bool dmafs_file_on_dmafs(const struct dmafs_file *f);

enum dmafs_daemon_mode {
	DMAFS_DAEMON_UNKNOWN = 0,	/* not on dmafs, or no answer */
	DMAFS_DAEMON_COMPAT = 1,	/* the daemon serves all I/O */
	DMAFS_DAEMON_KEXT = 2,		/* the kernel serves O_DIRECT/dma-buf */
};

/*
 * The dmafs daemon's mode for this mount, read at open from the virtual
 * xattr "user.dmafs.mode" (docs/kernel-extension.md): "kext" or "compat".
 * DMAFS_DAEMON_UNKNOWN off dmafs or when the daemon does not answer.
 */
enum dmafs_daemon_mode dmafs_file_daemon_mode(const struct dmafs_file *f);

/*
 * Alignment of file offsets and lengths for I/O: statx STATX_DIOALIGN
 * stx_dio_offset_align where the filesystem reports it, the logical block
 * size for a block device, else 4096.
 */
uint32_t dmafs_file_offset_align(const struct dmafs_file *f);

/*
 * Alignment of dma-buf offsets: stx_dio_mem_align where reported, else
 * 512.
 */
uint32_t dmafs_file_mem_align(const struct dmafs_file *f);

/* Current size in bytes, or -errno from fstat(2). */
int64_t dmafs_file_size(const struct dmafs_file *f);

/*
 * Allocate blocks for [off, off + len) (fallocate(2) mode 0: the size
 * grows to off + len if smaller).  dma-buf writes on dmafs need the range
 * allocated first: writes into holes or past EOF fail there with ENODATA.
 * Errors: those of fallocate(2): -ENOSPC, -EOPNOTSUPP (the filesystem
 * cannot preallocate), -EBADF (not open for writing), -EINVAL (len 0).
 */
int dmafs_prealloc(struct dmafs_file *f, uint64_t off, uint64_t len);

/*
 * Whether path (any file or directory) is on a dmafs mount: 1 yes, 0 no,
 * -errno from statfs(2) (-ENOENT, -EACCES ...).
 */
int dmafs_path_is_dmafs(const char *path);

/* ---- buffers ------------------------------------------------------------- */

enum dmafs_buf_kind {
	DMAFS_BUF_UDMABUF = 1,	/* memfd + /dev/udmabuf */
	DMAFS_BUF_DRM = 2,	/* DRM dumb buffer exported with PRIME */
	DMAFS_BUF_IMPORTED = 3,	/* a dma-buf fd the caller gave us */
	DMAFS_BUF_MEM = 4,	/* plain memory, not a dma-buf (compat only) */
};

/* DMA_BUF_IOCTL_SYNC directions for dmafs_buf_cpu_begin/end(). */
#define DMAFS_SYNC_READ		(1u << 0)	/* the CPU reads the buffer */
#define DMAFS_SYNC_WRITE	(1u << 1)	/* the CPU writes the buffer */

struct dmafs_buf;

/*
 * A udmabuf of size bytes (rounded up to the page size): a sealed memfd
 * (F_SEAL_SHRINK) handed to /dev/udmabuf.  Errors: -ENODEV without
 * /dev/udmabuf; -EINVAL for size 0 or beyond the udmabuf module's
 * size_limit_mb (64 MiB by default); -EACCES; -ENOMEM.
 */
int dmafs_buf_alloc_udmabuf(size_t size, struct dmafs_buf **out);

/*
 * A DRM dumb buffer of at least size bytes (rounded up to 4 KiB), exported
 * as a dma-buf with PRIME.  node is a DRM node path ("/dev/dri/card0"), or
 * NULL to take the first card node that can do it, vgem first.  Errors:
 * -ENODEV without a usable DRM node (or node has no dumb buffers or PRIME
 * export); -EINVAL for size 0 or too large for the driver; -ENOSPC when
 * the driver returns a smaller buffer; errors of open(2) on node.
 */
int dmafs_buf_alloc_drm(const char *node, size_t size,
			struct dmafs_buf **out);

/*
 * Wrap the caller's dma-buf fd (duplicated; the caller keeps its own).
 * The size is the dma-buf's (lseek SEEK_END).  Errors: -EBADF; -EINVAL if
 * fd is not a dma-buf.
 */
int dmafs_buf_import(int dmabuf_fd, struct dmafs_buf **out);

/*
 * Page-aligned zeroed memory of size bytes standing in for a dma-buf: it
 * only works in compat mode (registration says why).  For tests and for
 * machines without exporters.  Errors: -EINVAL for size 0, -ENOMEM.
 */
int dmafs_buf_alloc_mem(size_t size, struct dmafs_buf **out);

/* Unmap, close and free.  NULL is accepted. */
void dmafs_buf_free(struct dmafs_buf *b);

/* The dma-buf fd (owned by b), or -1 for DMAFS_BUF_MEM. */
int dmafs_buf_fd(const struct dmafs_buf *b);

/* Size in bytes. */
size_t dmafs_buf_size(const struct dmafs_buf *b);

enum dmafs_buf_kind dmafs_buf_kind(const struct dmafs_buf *b);

/* "udmabuf", "drm", "imported", "mem". */
const char *dmafs_buf_kind_name(enum dmafs_buf_kind kind);

/*
 * The DRM driver name of a DMAFS_BUF_DRM buffer ("vgem", "amdgpu"...),
 * else NULL.
 */
const char *dmafs_buf_driver(const struct dmafs_buf *b);

/*
 * A CPU mapping of the whole buffer, read-write, created on first call and
 * kept until dmafs_buf_free().  Bracket CPU access with
 * dmafs_buf_cpu_begin()/_end().  Errors: those of mmap(2) on the dma-buf
 * (an exporter without mmap: -ENODEV or -EINVAL; for DRM buffers the dumb
 * mapping of the DRM node is tried next).
 */
int dmafs_buf_map(struct dmafs_buf *b, void **addr);

/*
 * DMA_BUF_IOCTL_SYNC START / END for CPU access in the given directions
 * (DMAFS_SYNC_*), retried on EINTR/EAGAIN.  No-ops for DMAFS_BUF_MEM.
 * Errors: -EINVAL for no direction; those of the ioctl.
 */
int dmafs_buf_cpu_begin(struct dmafs_buf *b, unsigned int dirs);
int dmafs_buf_cpu_end(struct dmafs_buf *b, unsigned int dirs);

/* ---- rings, registration and modes -------------------------------------- */

/* dmafs_ring_create() flags */
#define DMAFS_RING_SINGLE_ISSUER	(1u << 0)	/* SINGLE_ISSUER|DEFER_TASKRUN */
#define DMAFS_RING_FORCE_COMPAT		(1u << 1)	/* never use dma-buf I/O */

enum dmafs_mode {
	DMAFS_MODE_NONE = 0,	/* slot empty */
	DMAFS_MODE_DMABUF = 1,	/* READ_FIXED/WRITE_FIXED on the dma-buf */
	DMAFS_MODE_COMPAT = 2,	/* bounce buffer + CPU copy */
};

enum dmafs_reason {
	DMAFS_REASON_NONE = 0,		/* dma-buf mode, or slot empty */
	DMAFS_REASON_FORCED,		/* DMAFS_RING_FORCE_COMPAT */
	DMAFS_REASON_NOT_DMABUF,	/* the buffer is DMAFS_BUF_MEM */
	DMAFS_REASON_NO_KERNEL_EXT,	/* no io_uring dma-buf buffers */
	DMAFS_REASON_NOT_DMAFS,		/* EOPNOTSUPP, file not on dmafs */
	DMAFS_REASON_NO_FORWARDING,	/* EOPNOTSUPP from a dmafs file */
	DMAFS_REASON_DAEMON_COMPAT,	/* same, the daemon says "compat" */
};

struct dmafs_ring;

/*
 * An io_uring of depth entries (1..4096) with nr_slots (1..16384) sparse
 * buffer slots, and up to depth requests in flight.  flags: DMAFS_RING_*.
 * It probes once whether the kernel has dma-buf fixed buffers (an EMPTY
 * extended update of slot 0; -EINVAL means no).  Errors: -EINVAL for bad
 * arguments or flags; those of io_uring_setup(2) (-ENOMEM; -EINVAL for
 * DMAFS_RING_SINGLE_ISSUER before Linux 6.1; -EPERM where io_uring is
 * disabled) and of buffer registration.
 */
int dmafs_ring_create(unsigned int depth, unsigned int nr_slots,
		      unsigned int flags, struct dmafs_ring **out);

/*
 * Wait for the requests in flight (their completions are dropped), free
 * the bounce buffers, unregister everything and close the ring.  NULL is
 * accepted.
 */
void dmafs_ring_destroy(struct dmafs_ring *r);

/* The io_uring fd, for polling with the CQ event fd or for diagnostics. */
int dmafs_ring_fd(const struct dmafs_ring *r);

/* Whether the kernel has io_uring dma-buf fixed buffers (layer 1). */
bool dmafs_ring_kernel_has_dmabuf(const struct dmafs_ring *r);

/*
 * Register buffer b in slot for I/O on file f, replacing what the slot held
 * (requests in flight on it must have completed: -EBUSY otherwise).
 * Picks the mode: dma-buf mode when the kernel accepts the registration;
 * compat mode, with the reason, for DMAFS_BUF_MEM, a forced-compat ring, a
 * kernel without the extension, or EOPNOTSUPP from the kernel (the file is
 * not on dmafs, or dmafs runs without the kernel forwarding; the reason is
 * DMAFS_REASON_DAEMON_COMPAT when the daemon reports compat mode).  Compat mode
 * needs a CPU mapping of the buffer (dmafs_buf_map()), made here.
 * Errors: -EINVAL (slot out of range; the kernel refused the dma-buf, e.g.
 * larger than 1 GiB); -EBUSY; -EBADF; errors of dmafs_buf_map() in compat
 * mode; -ENOMEM.
 */
int dmafs_ring_register(struct dmafs_ring *r, unsigned int slot,
			struct dmafs_buf *b, struct dmafs_file *f);

/*
 * Empty slot.  Errors: -EINVAL slot out of range; -EBUSY requests in
 * flight on it.  Emptying an empty slot is not an error.
 */
int dmafs_ring_unregister(struct dmafs_ring *r, unsigned int slot);

/*
 * The mode of slot and, if reason is not NULL, why (DMAFS_REASON_NONE in
 * dma-buf mode).  DMAFS_MODE_NONE for an empty or out-of-range slot.
 */
enum dmafs_mode dmafs_ring_slot_mode(const struct dmafs_ring *r,
				     unsigned int slot,
				     enum dmafs_reason *reason);

/* "none", "dmabuf", "compat". */
const char *dmafs_mode_name(enum dmafs_mode mode);

/* One line, no trailing period: why compat mode is in use. */
const char *dmafs_reason_str(enum dmafs_reason reason);

/* ---- I/O ----------------------------------------------------------------- */

/*
 * Requests move len bytes between [buf_off, buf_off + len) of the buffer in
 * slot and [file_off, file_off + len) of its file.  A request completes
 * once, with:
 *   len        all of it;
 *   0..len-1   a read that reached end of file (never for writes);
 *   -errno     -EINVAL: file_off or len not a multiple of the file's
 *                  offset alignment, buf_off not a multiple of its memory
 *                  alignment, len 0;
 *              -EFAULT: the slot is empty or [buf_off, buf_off + len) is
 *                  outside the buffer;
 *              -ENODATA: dma-buf write into a hole or past EOF on dmafs
 *                  (dmafs_prealloc() first);
 *              -EIO, -ENOSPC ...: from the device or filesystem;
 *              -EAGAIN: more than 1000 spurious -EAGAIN in a row.
 * The library resubmits a spurious -EAGAIN unchanged and continues short
 * transfers from where they stopped, so callers never see either.  A
 * request in compat mode is split into pieces of at most
 * DMAFS_BOUNCE_SIZE bytes, done one after the other.  When a request fails
 * part-way, the bytes before the failure may have been transferred.
 */
#define DMAFS_BOUNCE_SIZE	(1u << 20)

struct dmafs_completion {
	void *cookie;		/* as passed to dmafs_queue_*() */
	int64_t res;		/* bytes transferred, or -errno */
};

/*
 * Queue a read (file -> buffer) or a write (buffer -> file); it is
 * submitted by the next dmafs_ring_submit() or dmafs_ring_reap().
 * Argument errors are returned here, not as a completion: -EINVAL,
 * -EFAULT as above; -EBUSY when depth requests are already in flight.
 */
int dmafs_queue_read(struct dmafs_ring *r, unsigned int slot, uint64_t buf_off,
		     uint64_t file_off, size_t len, void *cookie);
int dmafs_queue_write(struct dmafs_ring *r, unsigned int slot,
		      uint64_t buf_off, uint64_t file_off, size_t len,
		      void *cookie);

/*
 * Submit what is queued: the number of SQEs submitted, or -errno from
 * io_uring_enter(2).
 */
int dmafs_ring_submit(struct dmafs_ring *r);

/*
 * Submit what is queued and collect up to max completed requests into
 * comps, waiting until at least min_complete have completed (min_complete
 * is capped to the number of requests in flight; 0 does not wait).
 * Returns the number stored, or -errno from io_uring_enter(2) (-EINTR is
 * retried).  Completions are of whole requests; resubmissions are handled
 * inside.
 */
int dmafs_ring_reap(struct dmafs_ring *r, struct dmafs_completion *comps,
		    unsigned int max, unsigned int min_complete);

/* Requests queued or in flight, not yet returned by dmafs_ring_reap(). */
unsigned int dmafs_ring_inflight(const struct dmafs_ring *r);

/*
 * Synchronous read and write: queue one request, submit, wait.  The
 * result is that of the completion (bytes or -errno).  -EBUSY when
 * asynchronous requests are in flight on the ring.
 */
int64_t dmafs_read(struct dmafs_ring *r, unsigned int slot, uint64_t buf_off,
		   uint64_t file_off, size_t len);
int64_t dmafs_write(struct dmafs_ring *r, unsigned int slot, uint64_t buf_off,
		    uint64_t file_off, size_t len);

/* ---- kernel support ------------------------------------------------------ */

/*
 * Whether this kernel has io_uring dma-buf fixed buffers: 1 yes, 0 no,
 * -errno when io_uring itself is unavailable (-ENOSYS, -EPERM).
 */
int dmafs_kernel_has_dmabuf(void);

/* The library version, "MAJOR.MINOR.PATCH". */
const char *dmafs_version(void);

#ifdef __cplusplus
}
#endif

#endif /* DMAFS_DMAFS_H */
