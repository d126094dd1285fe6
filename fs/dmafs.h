/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dmafs daemon's in-memory filesystem.
 *
 * All metadata lives in memory (struct dmafs_inode in fs->inodes) and is
 * made durable through the write-ahead log (log.c): every mutation appends
 * records to fs->log's open chunk before fs->lock is dropped, so each
 * operation's records land in one chunk and a crash replays it whole or not
 * at all.  Inode attribute updates that need no atomicity with anything
 * else (size and times after a write) only mark the inode dirty; the commit
 * appends the latest state of every dirty inode to the chunk it seals.
 *
 * Locking, outermost first:
 *   fs->commit_lock   serialises commits and checkpoints (log.c)
 *   inode->io_lock    data I/O of one file: readers shared, writers and
 *                     block-freeing operations (truncate, punch, delete)
 *                     exclusive, so a read never sees blocks that were
 *                     freed and reused under it
 *   fs->lock          every field of every inode, the inode table, the log
 *                     buffer; never held across device I/O except by a
 *                     checkpoint
 * The allocator has its own internal mutex (alloc.h).
 */
#ifndef DMAFS_FS_H
#define DMAFS_FS_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "core.h"
#include "dev.h"

struct dmafs_extent {
	uint64_t fblk;		/* first file block */
	uint64_t len;		/* blocks */
	uint64_t phys;		/* first device block */
	uint32_t flags;		/* DMAFS_EXTENT_* */
};

struct dmafs_dirent {
	char *name;		/* key in parent->dents */
	uint64_t ino;
	uint64_t cookie;	/* key in parent->dents_by_cookie */
	uint8_t dtype;
};

struct dmafs_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink;
	uint64_t rdev, size, generation;
	uint32_t iflags;
	struct timespec atime, mtime, ctime, btime;

	char *symlink;			/* S_IFLNK target */
	GHashTable *xattrs;		/* name -> GBytes; NULL if none */

	/* directories */
	GHashTable *dents;		/* name -> struct dmafs_dirent */
	GTree *dents_by_cookie;		/* &cookie -> struct dmafs_dirent */
	uint64_t next_cookie;
	uint64_t parent;		/* ".." (directories only) */

	/* regular files */
	GTree *extents;			/* &fblk -> struct dmafs_extent */
	uint64_t blocks;		/* mapped blocks, for st_blocks */

	/* runtime only, not on disk */
	uint64_t nlookup;		/* kernel references (FUSE lookup count) */
	uint32_t nopen;			/* open file handles */
	bool dirty;			/* attributes not yet logged */
	GRWLock io_lock;
	uint64_t map_gen;		/* bumped by every extent map edit */

	/*
	 * The kernel extension's copy of the extent map (kext.c).  Changed
	 * with io_lock held exclusive and fs->lock held; read under either.
	 */
	uint32_t kmap_opens;		/* O_DIRECT handles that want a map */
	bool kmap;			/* a map may be installed in the kernel */
	bool kmap_used;			/* one was, since the inode was loaded:
					 * the kernel may have written to the
					 * device behind our back */
	uint64_t kmap_gen;		/* map_gen and size that the */
	uint64_t kmap_size;		/* installed map reflects */
};

/*
 * The kernel extension (include/dmafs/fuse_dmafs.h, docs/kernel-extension.md).
 * Set up once in op_init, read-only afterwards.
 */
struct dmafs_kext {
	bool active;			/* maps are pushed; else compat mode */
	int fuse_fd;			/* the session's /dev/fuse fd, or -1 */
	uint32_t backing_id;		/* FUSE_DEV_IOC_BACKING_OPEN's result */
	uint64_t features;		/* FUSE_DMAFS_FEAT_* */
	char why[160];			/* why this mode, for the mount log */
};

struct dmafs_log;

struct dmafs_fs {
	struct dmafs_dev *dev;
	char *devpath;
	bool ro;
	struct dmafs_disk_super sb;	/* last written / read, host copy */
	struct dmafs_kext kext;

	GMutex lock;			/* see the top of this file */
	GHashTable *inodes;		/* &ino -> struct dmafs_inode */
	GHashTable *dirty;		/* inodes with dirty attributes */
	uint64_t next_ino;
	uint64_t ninodes;

	struct dmafs_alloc *alloc;
	struct dmafs_log *log;
	GMutex commit_lock;

	/* checkpoint extents: pairs of (block, nblocks) */
	GArray *ckpt_ext;

	uint32_t ckpt_chunks;		/* chunks in the loaded checkpoint */
	uint64_t log_chunks;		/* log chunks replayed at load */
	uint32_t orphans;		/* orphans dropped at load */
	bool log_stale;			/* chunks of this log session lie past
					 * the end of the replay */

	/*
	 * fsck sets this: load problems are reported through it and the
	 * load carries on (skipping the bad record), and a filesystem marked
	 * as needing repair is accepted.
	 */
	void (*report)(struct dmafs_fs *fs, const char *problem);
};

/* ---- meta.c: inodes, directories, extents, xattrs ---- */
void dmafs_fs_init(struct dmafs_fs *fs, const char *devpath, bool ro);
/* Frees everything, closes the device; no I/O (checkpointing is the caller's). */
void dmafs_fs_destroy(struct dmafs_fs *fs);
struct dmafs_inode *dmafs_inode_get(struct dmafs_fs *fs, uint64_t ino);
struct dmafs_inode *dmafs_inode_new(struct dmafs_fs *fs, uint64_t ino,
				    uint32_t mode);
void dmafs_inode_free(struct dmafs_inode *in);
void dmafs_inode_stat(struct dmafs_fs *fs, const struct dmafs_inode *in,
		      struct stat *st);
struct dmafs_dirent *dmafs_dir_lookup(struct dmafs_inode *dir,
				      const char *name);
int dmafs_dir_add(struct dmafs_inode *dir, const char *name, uint64_t ino,
		  uint8_t dtype, uint64_t cookie);
int dmafs_dir_remove(struct dmafs_inode *dir, const char *name);
uint8_t dmafs_dtype(uint32_t mode);

/* Extent map edits.  Blocks that lose their mapping are passed to cb. */
typedef void (*dmafs_freed_fn)(void *arg, uint64_t phys, uint64_t len);
void dmafs_extent_set(struct dmafs_inode *in, uint64_t fblk, uint64_t len,
		      uint64_t phys, uint32_t flags, dmafs_freed_fn cb,
		      void *arg);
void dmafs_extent_punch(struct dmafs_inode *in, uint64_t fblk, uint64_t len,
			dmafs_freed_fn cb, void *arg);
/* The extent containing fblk, or the next one after it (NULL if none). */
struct dmafs_extent *dmafs_extent_find(struct dmafs_inode *in, uint64_t fblk);

int dmafs_xattr_set(struct dmafs_inode *in, const char *name,
		    const void *value, size_t len);
int dmafs_xattr_del(struct dmafs_inode *in, const char *name);
GBytes *dmafs_xattr_get(struct dmafs_inode *in, const char *name);

/*
 * Call fn for every entry of every directory, stopping at the first
 * non-zero return, which is passed back.  fn must not add or remove
 * entries.
 */
typedef int (*dmafs_dirent_fn)(struct dmafs_inode *dir, struct dmafs_dirent *d,
			       void *arg);
int dmafs_meta_foreach_dirent(struct dmafs_fs *fs, dmafs_dirent_fn fn,
			      void *arg);

/* Apply one log or checkpoint record to the in-memory state (replay). */
int dmafs_meta_apply(struct dmafs_fs *fs, const struct dmafs_disk_rec *rec,
		     char *why, size_t whylen);
/* After replay: check references, compute parents, rebuild free space. */
int dmafs_meta_finish_load(struct dmafs_fs *fs, char *why, size_t whylen);

void dmafs_now(struct timespec *ts);

/* ---- log.c: write-ahead log, commit, checkpoint, mount-time replay ---- */
/* Mount: dmafs_log_open + dmafs_log_load_state + dmafs_meta_finish_load. */
int dmafs_log_load(struct dmafs_fs *fs, char *why, size_t whylen);
/* Pick the superblock and set up the log and an empty allocator. */
int dmafs_log_open(struct dmafs_fs *fs, char *why, size_t whylen);
/* Load the checkpoint and replay the log into memory. */
int dmafs_log_load_state(struct dmafs_fs *fs, char *why, size_t whylen);
/* Read and check one superblock copy. */
int dmafs_log_read_super(struct dmafs_fs *fs, uint64_t blk, uint64_t dev_blocks,
			 struct dmafs_disk_super *out, char *why, size_t whylen);
void dmafs_log_destroy(struct dmafs_fs *fs);
/* Record appenders; fs->lock held. */
void dmafs_log_inode(struct dmafs_fs *fs, struct dmafs_inode *in);
void dmafs_log_inode_del(struct dmafs_fs *fs, uint64_t ino);
void dmafs_log_dirent(struct dmafs_fs *fs, int type, uint64_t dir,
		      const char *name, uint64_t child, uint64_t cookie,
		      uint8_t dtype);
void dmafs_log_extent(struct dmafs_fs *fs, int type, uint64_t ino,
		      uint64_t fblk, uint64_t len, uint64_t phys,
		      uint32_t flags);
void dmafs_log_xattr(struct dmafs_fs *fs, int type, uint64_t ino,
		     const char *name, const void *value, size_t len);
void dmafs_log_symlink(struct dmafs_fs *fs, uint64_t ino, const char *target);
void dmafs_mark_dirty(struct dmafs_fs *fs, struct dmafs_inode *in);
/* Sequence number of the open chunk (for deferred frees); fs->lock held. */
uint64_t dmafs_log_open_seq(struct dmafs_fs *fs);
/* Make everything logged so far durable.  fs->lock NOT held. */
int dmafs_log_commit(struct dmafs_fs *fs);
/*
 * The same, and flush the device's write cache even when there is nothing
 * to log: data that the kernel wrote straight to the device (kernel
 * extension) is durable only after a flush.  fs->lock NOT held.
 */
int dmafs_log_commit_flush(struct dmafs_fs *fs);
/* Commit if the open chunk grew large; fs->lock NOT held. */
void dmafs_log_maybe_commit(struct dmafs_fs *fs);
/* Write a full checkpoint (unmount, log full).  fs->lock NOT held. */
int dmafs_log_checkpoint(struct dmafs_fs *fs);
/* Sticky commit error (negative errno) or 0. */
int dmafs_log_error(struct dmafs_fs *fs);
void dmafs_log_start_flusher(struct dmafs_fs *fs);
void dmafs_log_stop_flusher(struct dmafs_fs *fs);

/* ---- data.c: file data through the extent map ---- */
/* Read into a new aligned buffer: the data is *lenp bytes at *startp. */
int dmafs_data_read(struct dmafs_fs *fs, struct dmafs_inode *in, uint64_t off,
		    size_t size, void **bufp, size_t *startp, size_t *lenp);
int dmafs_data_write(struct dmafs_fs *fs, struct dmafs_inode *in,
		     const char *buf, size_t size, uint64_t off);
/* Set the size, freeing or zeroing what lies beyond; io_lock held excl. */
int dmafs_data_truncate(struct dmafs_fs *fs, struct dmafs_inode *in,
			uint64_t size);
int dmafs_data_fallocate(struct dmafs_fs *fs, struct dmafs_inode *in,
			 int mode, uint64_t off, uint64_t len);
int dmafs_data_seek(struct dmafs_fs *fs, struct dmafs_inode *in, uint64_t off,
		    int whence, uint64_t *res);
/* Free all of an inode's blocks (deferred); fs->lock held. */
void dmafs_data_free_all(struct dmafs_fs *fs, struct dmafs_inode *in);
/*
 * Write zeros over the unwritten extents in blocks [0, nblk) and map them
 * as written (the zeros complete before the conversion is logged, rule 1).
 * io_lock held exclusive.
 */
int dmafs_data_write_unwritten(struct dmafs_fs *fs, struct dmafs_inode *in,
			       uint64_t nblk);

/* ---- kext.c: the kernel extension's extent maps (fuse_dmafs.h) ---- */
/* The xattr that tells which mode is active: "kext" or "compat". */
#define DMAFS_KEXT_MODE_XATTR "user.dmafs.mode"
/*
 * Probe the extension on the session's /dev/fuse fd (the connection is up)
 * and register the device; logs one line saying which mode is active and
 * why.  disabled: -o nokext.
 */
void dmafs_kext_start(struct dmafs_fs *fs, int fuse_fd, bool disabled);
void dmafs_kext_stop(struct dmafs_fs *fs);
const char *dmafs_kext_mode(const struct dmafs_fs *fs);
/*
 * Build the kernel's map of a file of the given size: its written extents
 * below size rounded up to the block, in bytes, physically contiguous
 * neighbours merged.  Unwritten extents are left out (holes for the
 * kernel).  Appends struct fuse_dmafs_extent to out; fs->lock held.
 */
void dmafs_kext_build_map(const struct dmafs_inode *in, uint64_t size,
			  GArray *out);
/*
 * An O_DIRECT open of in: count it and install the map (unwritten extents
 * below EOF written as zeros first).  created: the kernel has no inode for
 * it yet (create), so nothing can be installed; the first change pushes.
 * io_lock held exclusive.  0, or a negative errno (the open fails and is
 * not counted).
 */
int dmafs_kext_open(struct dmafs_fs *fs, struct dmafs_inode *in, bool created);
/*
 * An O_DIRECT handle is released (or fsync'd: release false).  wrote: it
 * was open for writing, so the kernel may have written through the map:
 * mtime and ctime become now.  The last release removes the map.
 * io_lock held exclusive.
 */
void dmafs_kext_close(struct dmafs_fs *fs, struct dmafs_inode *in, bool wrote,
		      bool release);
/*
 * Remove bytes [off, off + len) (len UINT64_MAX: to the end) from the
 * kernel's map and wait for the I/O using them: before any block of the
 * range is freed or moved.  No-op without a map.  io_lock held exclusive
 * (or the inode has no kernel reference left).  0, or -EIO when the kernel
 * refused (the caller must then not free the blocks).
 */
int dmafs_kext_inval(struct dmafs_fs *fs, struct dmafs_inode *in,
		     uint64_t off, uint64_t len);
/*
 * After an operation that may have changed in's extents or size (write,
 * truncate, fallocate): reinstall the map if O_DIRECT handles are open and
 * it is out of date (always: true when the kernel dropped it).  io_lock
 * held exclusive.
 */
void dmafs_kext_refresh(struct dmafs_fs *fs, struct dmafs_inode *in,
			bool always);

/* ---- acl.c: POSIX ACL inheritance and chmod ---- */
int dmafs_acl_inherit(struct dmafs_fs *fs, struct dmafs_inode *dir,
		      struct dmafs_inode *in, uint32_t *mode, uint32_t umask);
void dmafs_acl_chmod(struct dmafs_fs *fs, struct dmafs_inode *in);
/*
 * A new access ACL is being set: take the permission bits from it into
 * in->mode; *store says whether the ACL says more than the mode (and must be
 * kept as an xattr).  -EINVAL if malformed.
 */
int dmafs_acl_access_set(struct dmafs_fs *fs, struct dmafs_inode *in,
			 const void *value, size_t size, bool *store);
extern const char dmafs_acl_access[];
extern const char dmafs_acl_default[];

#endif /* DMAFS_FS_H */
