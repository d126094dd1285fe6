/* SPDX-License-Identifier: GPL-2.0-or-later WITH Linux-syscall-note */
/*
 * FUSE forwarding of direct I/O and dma-buf registrations to a block device:
 * the user API of kpatch/ layer 2 (ARCHITECTURE.md, "Layer 2").  It is
 * dmafs's own, not upstream's: ioctls on the daemon's /dev/fuse fd, no new
 * FUSE opcodes and no new INIT flags, so a stock libfuse 3.14 daemon uses it
 * through fuse_session_fd().
 *
 * A daemon uses it in four steps:
 *
 *   1. Probe, once the connection is up (from the daemon's INIT handler,
 *      before it replies, or later; the ioctls work as soon as the fd is
 *      the mount's connection):
 *        __u64 feat = 0;
 *        ioctl(fuse_fd, FUSE_DEV_IOC_DMAFS_FEATURES, &feat);
 *      A kernel without the extension fails with ENOTTY (or EINVAL); the
 *      daemon then runs as on any kernel and serves all I/O itself.
 *
 *   2. Register the block device the files' extents live on:
 *        struct fuse_backing_map m = {
 *                .fd = open(dev, O_RDWR | O_DIRECT | O_EXCL),
 *                .flags = FUSE_BACKING_TYPE_BLOCKDEV,
 *        };
 *        int backing_id = ioctl(fuse_fd, FUSE_DEV_IOC_BACKING_OPEN, &m);
 *      CAP_SYS_ADMIN is required (EPERM).  The fd must be a block device
 *      (ENOTBLK otherwise) opened with O_DIRECT and for reading and writing
 *      (EINVAL otherwise), and it must be the device's exclusive claim, an
 *      O_EXCL open (EBUSY when someone else holds the claim, a mounted
 *      filesystem for instance; EINVAL when nobody does): the kernel keeps
 *      the claim for as long as the registration lives, so nothing but the
 *      maps writes the device meanwhile.  Then, with FUSE_DMAFS_FEAT_WINDOW,
 *      bound the maps to the part of the device that holds file data:
 *        struct fuse_dmafs_window w = { .backing_id = backing_id,
 *                .dev_offset = data_start, .length = data_length };
 *        ioctl(fuse_fd, FUSE_DEV_IOC_DMAFS_SET_WINDOW, &w);
 *      Unlike passthrough backing files this needs no
 *      FUSE_PASSTHROUGH negotiation.  FUSE_DEV_IOC_BACKING_CLOSE with the id
 *      drops the registration; maps and dma-buf tokens that use the device
 *      keep it alive until they are gone.  The connection may hold one
 *      block-device backing at a time (EBUSY for a second).  On a connection
 *      without FUSE_PASSTHROUGH, BACKING_CLOSE of any other id fails with
 *      EPERM, as on a stock kernel.
 *
 *   3. Before replying to an open with O_DIRECT (and whenever a file's
 *      layout is known to be stable), install the file's extent map:
 *        ioctl(fuse_fd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS, &map);
 *      Like INVAL_EXTENTS, it needs CAP_SYS_ADMIN of the caller (EPERM),
 *      whoever opened the fd.
 *      It replaces the inode's previous map as a whole.  With
 *      FUSE_DMAFS_FEAT_WINDOW, a map with a block outside the backing's
 *      window fails with EINVAL, and a map with a block that another file's
 *      map points to fails with EBUSY.  Byte ranges of the
 *      file that no extent covers are holes for the kernel.  The node must
 *      be in the kernel's inode cache (ENOENT otherwise): a CREATE cannot
 *      install a map before its reply, since the kernel makes the inode
 *      from the reply; the daemon installs it at the file's first change
 *      of layout or its next open instead.
 *
 *   4. Before moving, freeing or reusing any block a map points to (truncate,
 *      punch hole, unlink of the last link, defragmentation), remove the
 *      range from the map:
 *        ioctl(fuse_fd, FUSE_DEV_IOC_DMAFS_INVAL_EXTENTS, &inval);
 *      It returns once no I/O that was using the removed extents is still in
 *      flight, so the blocks can be reused right away.
 *
 * What the kernel then does (FUSE files with a map):
 *   - dma-buf registration against a FUSE file opened O_DIRECT is forwarded
 *     to the registered block device (create_dmabuf_token); without a block
 *     device registered it fails with EOPNOTSUPP, against a FUSE file not
 *     opened O_DIRECT with EINVAL, once the daemon is gone with ENOTCONN.
 *     The registration keeps the device open until it is released;
 *   - READ_FIXED/WRITE_FIXED on a dma-buf slot, and O_DIRECT read(2)/write(2)
 *     with user buffers on a range the map covers entirely, go to the device
 *     through the extents; the daemon sees no request;
 *   - O_DIRECT I/O with user buffers on a range the map does not cover
 *     (a hole, past EOF, no map) goes to the daemon as usual;
 *   - dma-buf I/O cannot go to the daemon.  Reads stop at EOF (a short read,
 *     0 at or past EOF).  A dma-buf read or write that touches a byte the map
 *     does not cover, or a write that would end past EOF, fails with ENODATA:
 *     such files are preallocated first (fallocate(2); dmafs_prealloc() in
 *     libdmafs).  Also for dma-buf I/O: file position or length not a
 *     multiple of the logical block size: EINVAL; a registration made
 *     before the daemon registered another block device: EXDEV; a write
 *     that ends at an EOF that is not a multiple of the file's st_blksize:
 *     ENODATA (user-buffer I/O in these cases goes to the daemon);
 *   - writes through the map behave as write(2) (FUSE_DMAFS_FEAT_WRITE_TIMES):
 *     O_APPEND goes to EOF (so to the daemon), RLIMIT_FSIZE gives EFBIG,
 *     set-id bits and security.capability are removed (SETATTR and
 *     REMOVEXATTR to the daemon), and a SETATTR sets mtime and ctime when
 *     they change, at most once per timestamp tick;
 *   - the map is dropped on truncate and fallocate through the kernel
 *     (before the request goes to the daemon), on inode eviction and on
 *     connection abort; and, whatever the daemon does, when the last link
 *     goes (unlink, rename over the file, FUSE_NOTIFY_DELETE), on
 *     FUSE_NOTIFY_INVAL_INODE, and when the daemon's attributes show the
 *     file shrunk: the daemon installs it again when it needs it.  I/O on a file whose daemon died fails with ENOTCONN
 *     or EIO.
 *
 * Locking: the daemon calls SET_EXTENTS and INVAL_EXTENTS while it serves
 * requests that the kernel sent with the inode's i_rwsem held (SETATTR for
 * truncate, FALLOCATE, WRITE).  The ioctls therefore take neither i_rwsem
 * nor any lock the kernel holds while it waits for a reply; INVAL_EXTENTS
 * waits only for I/O already submitted to the device.
 *
 * Offsets and lengths are bytes.  Every offset and length in a map must be
 * a multiple of the block device's logical block size.
 */
#ifndef DMAFS_FUSE_DMAFS_H
#define DMAFS_FUSE_DMAFS_H

#include <linux/ioctl.h>
#include <linux/types.h>

#ifndef FUSE_DEV_IOC_MAGIC
#define FUSE_DEV_IOC_MAGIC		229
#endif

/*
 * Linux 6.9+ (passthrough) names; Debian 12's linux-libc-dev (6.1) lacks
 * them.  The layout is the kernel's.
 */
#ifndef FUSE_DEV_IOC_BACKING_OPEN
struct fuse_backing_map {
	__s32 fd;
	__u32 flags;
	__u64 padding;
};

#define FUSE_DEV_IOC_BACKING_OPEN	_IOW(FUSE_DEV_IOC_MAGIC, 1, \
					     struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE	_IOW(FUSE_DEV_IOC_MAGIC, 2, __u32)
#endif

/*
 * The rest is in <linux/fuse.h> of a kernel with the extension; the
 * definitions below are the same, for userspace built against older
 * headers.
 */
#ifndef FUSE_DEV_IOC_DMAFS_FEATURES

/* fuse_backing_map.flags: the fd is a block device for extent-mapped I/O. */
#define FUSE_BACKING_TYPE_BLOCKDEV	(1U << 31)

/* FUSE_DEV_IOC_DMAFS_FEATURES result bits. */
#define FUSE_DMAFS_FEAT_EXTENTS		(1ULL << 0)	/* steps 2-4 */
#define FUSE_DMAFS_FEAT_DMABUF		(1ULL << 1)	/* dma-buf forwarding */

struct fuse_dmafs_extent {
	__u64 offset;		/* in the file */
	__u64 length;		/* > 0 */
	__u64 dev_offset;	/* on the block device */
};

/*
 * Validation (EINVAL unless noted): flags and reserved fields 0; every
 * offset and length aligned to the device's logical block size; extents
 * sorted by offset and not overlapping in the file; every extent inside the
 * device (offset + length <= device size, no overflow) and not overlapping
 * another extent of the same map on the device; nr_extents <= 1 << 20
 * (E2BIG).  nodeid not in the kernel's inode cache: ENOENT; not a regular
 * file: EISDIR or EINVAL.  backing_id not a block-device backing of this
 * connection: EBADF.  nr_extents == 0 installs an empty map (all holes).
 */
struct fuse_dmafs_map {
	__u64 nodeid;		/* FUSE node id of a regular file */
	__u32 backing_id;	/* from FUSE_DEV_IOC_BACKING_OPEN */
	__u32 flags;		/* 0 */
	__u64 extents;		/* user pointer: struct fuse_dmafs_extent[] */
	__u32 nr_extents;
	__u32 padding;		/* 0 */
	__u64 reserved[2];	/* 0 */
};

/*
 * Remove [offset, offset + length) of the file from its map (length
 * ~0ULL: to the end) and wait until no I/O that used the removed part is in
 * flight.  Extents straddling a boundary are trimmed.  nodeid not in the
 * inode cache, or a file without a map: success (nothing to wait for).
 */
struct fuse_dmafs_inval {
	__u64 nodeid;
	__u64 offset;
	__u64 length;
	__u32 flags;		/* 0 */
	__u32 padding;		/* 0 */
};

#define FUSE_DEV_IOC_DMAFS_FEATURES	_IOR(FUSE_DEV_IOC_MAGIC, 0x80, __u64)
#define FUSE_DEV_IOC_DMAFS_SET_EXTENTS	_IOW(FUSE_DEV_IOC_MAGIC, 0x81, \
					     struct fuse_dmafs_map)
#define FUSE_DEV_IOC_DMAFS_INVAL_EXTENTS _IOW(FUSE_DEV_IOC_MAGIC, 0x82, \
					     struct fuse_dmafs_inval)

#endif /* FUSE_DEV_IOC_DMAFS_FEATURES */

/*
 * Extent-mapped writes run the VFS write checks (O_APPEND, RLIMIT_FSIZE,
 * set-id and security.capability removal) under i_rwsem and send the new
 * mtime and ctime with a SETATTR, at most once per timestamp tick.
 * Without it the daemon stamps the times at the next fsync or close.
 * Defined apart: kernel headers of the series before it lack it.
 */
#ifndef FUSE_DMAFS_FEAT_WRITE_TIMES
#define FUSE_DMAFS_FEAT_WRITE_TIMES	(1ULL << 2)
#endif

/*
 * FUSE_DEV_IOC_DMAFS_SET_WINDOW: from now on, maps on backing_id may only
 * point into [dev_offset, dev_offset + length) of the device (all of it at
 * registration); SET_EXTENTS refuses a map whose blocks another file's map
 * points to (EBUSY).  Errors: flags or reserved not 0, length 0, offset or
 * length not a multiple of the logical block size, a window that is not
 * inside the current one (it only narrows): EINVAL; a map installed on the
 * backing with a block outside the new window: EBUSY; backing_id not the
 * connection's block-device backing: EBADF; no CAP_SYS_ADMIN: EPERM.
 * Defined apart, as FUSE_DMAFS_FEAT_WRITE_TIMES.
 */
#ifndef FUSE_DMAFS_FEAT_WINDOW
#define FUSE_DMAFS_FEAT_WINDOW		(1ULL << 3)

struct fuse_dmafs_window {
	__u32 backing_id;
	__u32 flags;		/* 0 */
	__u64 dev_offset;
	__u64 length;
	__u64 reserved[2];	/* 0 */
};

#define FUSE_DEV_IOC_DMAFS_SET_WINDOW	_IOW(FUSE_DEV_IOC_MAGIC, 0x83, \
					     struct fuse_dmafs_window)
#endif

#endif /* DMAFS_FUSE_DMAFS_H */
