/* SPDX-License-Identifier: GPL-2.0-or-later WITH Linux-syscall-note */
/*
 * io_uring dma-buf fixed buffers: the user API of the kernel extension
 * (kpatch/, layer 1 in ARCHITECTURE.md), for userspace built against
 * headers that lack it (liburing 2.3, Debian 12's linux-libc-dev 6.1).
 *
 * It is the API of the upstream "dmabuf backed read/write" proposal, so
 * programs written against this header run unchanged on a kernel that has
 * the proposal merged.  Every definition below is guarded: a <linux/
 * io_uring.h> that has the API is taken to provide all of it, and then
 * only the layout checks at the end of this file apply (to the kernel
 * header's struct).  The proposal's header (and kpatch's, which follows it)
 * declares IORING_RSRC_UPDATE_EXTENDED and IO_REGBUF_TYPE_* as enum
 * constants, which the preprocessor cannot see: define
 * DMAFS_HAVE_KERNEL_REGBUF_DESC when building against such a header
 * (meson.build checks and does), or have IORING_RSRC_UPDATE_EXTENDED
 * defined as a macro.  Include this header after <liburing.h> or
 * <linux/io_uring.h>; included first, it pulls in <linux/io_uring.h>
 * itself.
 *
 * How it is used
 * --------------
 *
 *   1. Create a sparse buffer table:
 *        io_uring_register_buffers_sparse(&ring, nr_slots);
 *   2. Install a dma-buf into slot S for the file it will be used with
 *      (the "target"; opened with O_DIRECT):
 *        dmafs_register_dmabuf(ring.ring_fd, S, dmabuf_fd, target_fd);
 *      which is IORING_REGISTER_BUFFERS_UPDATE with
 *      io_uring_rsrc_update2.flags (the field formerly called resv) =
 *      IORING_RSRC_UPDATE_EXTENDED and .data pointing to an array of .nr
 *      struct io_uring_regbuf_desc.
 *   3. Move data with IORING_OP_READ_FIXED / IORING_OP_WRITE_FIXED on the
 *      target: sqe->buf_index = S, sqe->addr = byte offset inside the
 *      dma-buf (not a pointer), sqe->off = file offset, sqe->len = bytes.
 *        io_uring_prep_read_fixed(sqe, target_fd,
 *                                 (void *)(uintptr_t)dmabuf_offset,
 *                                 len, file_offset, S);
 *   4. Empty the slot (dmafs_unregister_slot()) or unregister the whole
 *      table.  The registration holds its own reference to the dma-buf and
 *      to the target: the caller may close both fds right after step 2.
 *      Requests already submitted keep what they use alive until they
 *      complete.
 *      When the ring's last fd is closed (or its process exits), its
 *      dma-buf slots are released at once, target included: a block device
 *      opened O_EXCL can be opened O_EXCL again as soon as the process is
 *      reaped.  Requests still in flight then (a process killed mid-I/O)
 *      hold the target until they complete, as any io_uring request does.
 *
 * Descriptor rules
 * ----------------
 *   IO_REGBUF_TYPE_EMPTY   empties the slot; every other field is 0 (an
 *                          all-zero descriptor empties a slot).
 *   IO_REGBUF_TYPE_UADDR   an ordinary user buffer [uaddr, uaddr + size),
 *                          as with IORING_REGISTER_BUFFERS; fds are 0.
 *   IO_REGBUF_TYPE_DMABUF  dmabuf_fd, target_fd set; size and uaddr 0 (the
 *                          size is the dma-buf's).
 *   flags and __resv[] are 0 for every type.
 *
 * Errno contract (values returned as -errno; the tests in tests/vm/dmabuf/
 * check each one)
 * ---------------------------------------------------------------------
 * Registration, io_uring_register(IORING_REGISTER_BUFFERS_UPDATE):
 *   >= 1        the number of descriptors installed, in order from .offset.
 *               When descriptor k > 0 fails, the call returns k (slots
 *               .offset + k ... are left untouched); when the first fails,
 *               the call returns its error.
 *               The errors and their order are the proposal's (v3):
 *   -EINVAL     unknown bits in .flags; .resv2 != 0; .nr == 0; slots past
 *               the end of the table; unknown desc.type; any
 *               desc.__resv[] != 0; dmabuf_fd or target_fd != 0 for a
 *               type other than DMABUF; size or uaddr != 0 for a dma-buf;
 *               dmabuf_fd is not a dma-buf; the dma-buf is larger than
 *               1 GiB; target not opened O_DIRECT; a block device whose
 *               driver cannot do dma-buf I/O (a loop device).
 *               desc.flags is not checked (no flag is defined yet).
 *               A kernel without this extension returns -EINVAL for
 *               IORING_RSRC_UPDATE_EXTENDED, so -EINVAL on an all-zero
 *               (EMPTY) descriptor means "not supported".
 *   -EBADF      target_fd is not an open file descriptor (checked before
 *               dmabuf_fd); dmabuf_fd is not one.
 *   -EOPNOTSUPP the target cannot do dma-buf I/O (a file whose
 *               file_operations lack create_dmabuf_token: a pipe, a
 *               character device, an io_uring, a file on another
 *               filesystem; an NVMe device that cannot map dma-bufs, e.g.
 *               over TCP, or whose namespace has metadata).
 *   -EFAULT     EMPTY with size or uaddr != 0; UADDR with uaddr 0 (an
 *               empty slot is EMPTY's) or size 0; .data or .tags points
 *               to unreadable memory.
 *   -ENXIO      the ring has no buffer table.
 *   -ENOMEM     out of memory.
 * I/O, IORING_OP_READ_FIXED / IORING_OP_WRITE_FIXED on a dma-buf slot
 * (cqe->res):
 *   >= 0        bytes transferred.
 *   -EBADF      the request's file is not the registration's target (a
 *               dup() of the target fd is the same file and is fine).
 *   -EFAULT     the slot is empty or past the end of the table;
 *               [addr, addr + len) is not inside the dma-buf; len is 0;
 *               any other user of fixed buffers on a dma-buf slot:
 *               IORING_OP_SEND_ZC / SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF,
 *               IORING_OP_URING_CMD with IORING_URING_CMD_FIXED (NVMe
 *               passthrough).
 *   -EINVAL     file offset or length not a multiple of the target's
 *               logical block size; addr not aligned to the device's DMA
 *               alignment (statx STATX_DIOALIGN stx_dio_mem_align); the
 *               target's O_DIRECT was cleared (fcntl) after registration.
 *   -EOPNOTSUPP vectored fixed ops (READV_FIXED/WRITEV_FIXED, which Linux
 *               6.12 does not have).
 *   -EACCES     the device would write memory the caller may only read:
 *               READ_FIXED into a dma-buf whose file is not open for
 *               writing (a DRM PRIME export without DRM_RDWR), or
 *               WRITE_FIXED from one not open for reading.  This kernel's
 *               addition: the proposal does not check the access mode.
 *   -EAGAIN     spurious, e.g. the exporter invalidated the mapping while
 *               the request was being issued: resubmit it unchanged.
 *   -EIO etc.   device errors, as for any direct I/O.
 */
#ifndef DMAFS_IO_URING_DMABUF_H
#define DMAFS_IO_URING_DMABUF_H

#if defined(__STRICT_ANSI__) && !defined(_DEFAULT_SOURCE) && \
	!defined(_GNU_SOURCE)
#error "define _DEFAULT_SOURCE or _GNU_SOURCE: the helpers use syscall(2)"
#endif

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/types.h>
#ifndef LINUX_IO_URING_H
#include <linux/io_uring.h>
#endif

#if !defined(IORING_RSRC_UPDATE_EXTENDED) && \
	!defined(DMAFS_HAVE_KERNEL_REGBUF_DESC)
/* io_uring_rsrc_update2.flags: .data points to struct io_uring_regbuf_desc[] */
#define IORING_RSRC_UPDATE_EXTENDED	(1U << 1)

#define IO_REGBUF_TYPE_EMPTY		0
#define IO_REGBUF_TYPE_UADDR		1
#define IO_REGBUF_TYPE_DMABUF		2

struct io_uring_regbuf_desc {		/* 80 bytes */
	__u32 type;		/* IO_REGBUF_TYPE_* */
	__u32 flags;		/* none defined: set 0 (not checked) */
	__u64 size;		/* bytes, UADDR only; 0 for a dma-buf */
	__u64 uaddr;		/* UADDR only; 0 for a dma-buf */
	__s32 dmabuf_fd;	/* DMABUF only */
	__s32 target_fd;	/* DMABUF: the file the buffer is used with */
	__u64 __resv[6];	/* 0 */
};
#endif /* no dma-buf registration in <linux/io_uring.h> */

/*
 * struct io_uring_rsrc_update2 with the field after .offset under its new
 * name.  Our own name, so that it coexists with either version of the
 * kernel header; the layout checks below pin it to the kernel's struct.
 */
struct io_uring_rsrc_update2_ext {
	__u32 offset;		/* first slot */
	__u32 flags;		/* IORING_RSRC_UPDATE_EXTENDED or 0 */
	__aligned_u64 data;	/* struct io_uring_regbuf_desc[nr] (EXTENDED) */
	__aligned_u64 tags;	/* __u64[nr] or 0 */
	__u32 nr;		/* number of descriptors */
	__u32 resv2;		/* 0 */
};

/* IORING_REGISTER_BUFFERS_UPDATE is an enum constant in the kernel header. */
#define DMAFS_IORING_REGISTER_BUFFERS_UPDATE	16

#ifdef __cplusplus
#define DMAFS_UAPI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define DMAFS_UAPI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

DMAFS_UAPI_ASSERT(sizeof(struct io_uring_regbuf_desc) == 80, "regbuf_desc");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_regbuf_desc, type) == 0, "type");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_regbuf_desc, flags) == 4, "flags");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_regbuf_desc, size) == 8, "size");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_regbuf_desc, uaddr) == 16, "uaddr");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_regbuf_desc, dmabuf_fd) == 24,
		  "dmabuf_fd");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_regbuf_desc, target_fd) == 28,
		  "target_fd");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_regbuf_desc, __resv) == 32,
		  "__resv");
DMAFS_UAPI_ASSERT(sizeof(((struct io_uring_regbuf_desc *)0)->__resv) == 48,
		  "__resv size");

DMAFS_UAPI_ASSERT(sizeof(struct io_uring_rsrc_update2_ext) == 32, "update2");
DMAFS_UAPI_ASSERT(sizeof(struct io_uring_rsrc_update2_ext) ==
		  sizeof(struct io_uring_rsrc_update2), "update2 vs kernel");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_rsrc_update2_ext, offset) ==
		  offsetof(struct io_uring_rsrc_update2, offset), "offset");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_rsrc_update2_ext, flags) == 4,
		  "update2 flags");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_rsrc_update2_ext, data) ==
		  offsetof(struct io_uring_rsrc_update2, data), "data");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_rsrc_update2_ext, tags) ==
		  offsetof(struct io_uring_rsrc_update2, tags), "tags");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_rsrc_update2_ext, nr) ==
		  offsetof(struct io_uring_rsrc_update2, nr), "nr");
DMAFS_UAPI_ASSERT(offsetof(struct io_uring_rsrc_update2_ext, resv2) ==
		  offsetof(struct io_uring_rsrc_update2, resv2), "resv2");

/*
 * IORING_REGISTER_BUFFERS_UPDATE with an arbitrary update (flags, resv2 and
 * all): the kernel's result, >= 0 or -errno.  For tests of the contract
 * above; applications use the two helpers below.
 */
static inline int dmafs_rsrc_update_ext(int ring_fd,
					struct io_uring_rsrc_update2_ext *up)
{
	long ret = syscall(__NR_io_uring_register, ring_fd,
			   DMAFS_IORING_REGISTER_BUFFERS_UPDATE, up,
			   sizeof(*up));

	return ret < 0 ? -errno : (int)ret;
}

/*
 * Install nr descriptors into slots [slot, slot + nr): the number installed
 * or -errno (see the contract at the top).
 */
static inline int dmafs_regbuf_update(int ring_fd, unsigned int slot,
				      const struct io_uring_regbuf_desc *descs,
				      unsigned int nr)
{
	struct io_uring_rsrc_update2_ext up;

	memset(&up, 0, sizeof(up));
	up.offset = slot;
	up.flags = IORING_RSRC_UPDATE_EXTENDED;
	up.data = (__u64)(unsigned long)descs;
	up.nr = nr;
	return dmafs_rsrc_update_ext(ring_fd, &up);
}

/*
 * Register dmabuf_fd in slot for I/O on target_fd: 1 on success, else
 * -errno.  The slot must exist in a table created with
 * io_uring_register_buffers_sparse(); whatever was in it is replaced.
 */
static inline int dmafs_register_dmabuf(int ring_fd, unsigned int slot,
					int dmabuf_fd, int target_fd)
{
	struct io_uring_regbuf_desc d;

	memset(&d, 0, sizeof(d));
	d.type = IO_REGBUF_TYPE_DMABUF;
	d.dmabuf_fd = dmabuf_fd;
	d.target_fd = target_fd;
	return dmafs_regbuf_update(ring_fd, slot, &d, 1);
}

/*
 * Empty slot: 1 on success, else -errno; -EINVAL from a kernel without the
 * extension.  Requests in flight on the slot finish with the old buffer;
 * new ones get -EFAULT.
 */
static inline int dmafs_unregister_slot(int ring_fd, unsigned int slot)
{
	struct io_uring_regbuf_desc d;

	memset(&d, 0, sizeof(d));
	d.type = IO_REGBUF_TYPE_EMPTY;
	return dmafs_regbuf_update(ring_fd, slot, &d, 1);
}

#endif /* DMAFS_IO_URING_DMABUF_H */
