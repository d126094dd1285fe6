// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The kernel extension's side of the daemon: extent maps pushed to the
 * kernel so that O_DIRECT and dma-buf I/O go straight to the block device
 * (include/dmafs/fuse_dmafs.h, docs/kernel-extension.md).
 *
 * Modes.  At INIT the daemon probes the extension on its /dev/fuse fd.
 * Without it (a stock kernel), with -o nokext, on an image file or on a
 * read-only mount it runs in compat mode: nothing here does anything and
 * the daemon serves all I/O, exactly as before.  Otherwise it registers the
 * device as the connection's block-device backing and is "active".
 *
 * The map of a file is installed while the file has O_DIRECT handles open
 * (in->kmap_opens): at each O_DIRECT open, and again after every operation
 * of the daemon that changed the file's extents or size while such handles
 * exist.  It is removed when the last of them is released.  What it holds:
 *   - the file's written extents below its size rounded up to the block,
 *     in bytes, physically contiguous neighbours merged;
 *   - no unwritten extents: the kernel has no unwritten state, so before
 *     a push the unwritten extents below EOF are written with zeros and
 *     converted (data.c, dmafs_data_write_unwritten), as a write would.
 *
 * Invariant: every extent installed in the kernel maps a block that the
 * file owns, at that offset.  The daemon never remaps a block in place
 * (writes go to the mapped block, holes get fresh blocks), so the only
 * way to break it is to free a block; every path that frees blocks of a
 * file (truncate, punch hole, zero range, deletion) calls dmafs_kext_inval
 * for the range first, which returns only once the kernel's I/O on it has
 * drained.  A map that is out of date is therefore at worst incomplete:
 * the kernel sends the I/O it does not cover to the daemon, or fails
 * dma-buf I/O with ENODATA.
 *
 * Locking: pushes and invalidations run with the inode's io_lock held
 * exclusive, so no data operation of the daemon changes the extents
 * between building a map and installing it, and no push can reinstall
 * blocks that are about to be freed.  fs->lock guards the kmap_* fields
 * and is held while the map is built, never across an ioctl, with one
 * exception: deleting an inode (dmafs_data_free_all) invalidates under
 * fs->lock, when the kernel has no reference to the inode left and the
 * ioctl returns at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dmafs.h"
#include "dmafs/fuse_dmafs.h"

#define BS DMAFS_BLOCK_SIZE
/* FUSE_DEV_IOC_DMAFS_SET_EXTENTS takes at most this many (E2BIG). */
#define KEXT_MAX_EXTENTS (1U << 20)

const char *dmafs_kext_mode(const struct dmafs_fs *fs)
{
	return fs->kext.active ? "kext" : "compat";
}

/* Decide the mode; on success the backing is registered.  0 or -errno. */
static int kext_setup(struct dmafs_fs *fs, int fuse_fd, bool disabled)
{
	struct dmafs_kext *k = &fs->kext;
	const struct dmafs_dev_info *info = dmafs_dev_info(fs->dev);
	struct fuse_backing_map m = { .flags = FUSE_BACKING_TYPE_BLOCKDEV };
	uint64_t feat = 0;
	int id;

	if (disabled) {
		snprintf(k->why, sizeof(k->why), "disabled by -o nokext");
		return -ECANCELED;
	}
	if (ioctl(fuse_fd, FUSE_DEV_IOC_DMAFS_FEATURES, &feat) < 0) {
		snprintf(k->why, sizeof(k->why), "absent (%s)",
			 g_strerror(errno));
		return -ENOTTY;
	}
	k->features = feat;
	if (!(feat & FUSE_DMAFS_FEAT_EXTENTS)) {
		snprintf(k->why, sizeof(k->why),
			 "present without extent maps (features %#" PRIx64 ")",
			 feat);
		return -EOPNOTSUPP;
	}
	if (!info->is_blockdev || !info->direct) {
		snprintf(k->why, sizeof(k->why),
			 "present, not used: %s is an image file", fs->devpath);
		return -ENOTBLK;
	}
	/*
	 * The backing must be open for writing, and -o ro promises that
	 * nothing writes to the device (it may be write-protected).
	 */
	if (fs->ro) {
		snprintf(k->why, sizeof(k->why),
			 "present, not used on a read-only mount");
		return -EROFS;
	}
	/*
	 * The kernel takes our own fd, O_RDWR | O_DIRECT and the device's
	 * exclusive claim (O_EXCL): it keeps the claim while it can write
	 * through the maps, so nothing else can mount or write the device
	 * meanwhile, even after we are gone.
	 */
	m.fd = dmafs_dev_fd(fs->dev);
	id = ioctl(fuse_fd, FUSE_DEV_IOC_BACKING_OPEN, &m);
	if (id < 0) {
		int err = errno;

		snprintf(k->why, sizeof(k->why),
			 "present, not used: the kernel refused %s as backing (%s%s)",
			 fs->devpath, g_strerror(err),
			 err == EPERM ? ", needs CAP_SYS_ADMIN" : "");
		return -err;
	}
	/*
	 * Maps point into the data area only: whatever a bug in the
	 * daemon pushed, no file's I/O could reach a superblock or the log.
	 */
	if (feat & FUSE_DMAFS_FEAT_WINDOW) {
		struct fuse_dmafs_window w = {
			.backing_id = id,
			.dev_offset = le64(fs->sb.data_start) *
				      DMAFS_BLOCK_SIZE,
		};

		w.length = (le64(fs->sb.total_blocks) - 1) * DMAFS_BLOCK_SIZE -
			   w.dev_offset;
		if (ioctl(fuse_fd, FUSE_DEV_IOC_DMAFS_SET_WINDOW, &w) < 0) {
			int err = errno;
			uint32_t bid = id;

			snprintf(k->why, sizeof(k->why),
				 "present, not used: the kernel refused the "
				 "data area of %s as window (%s)",
				 fs->devpath, g_strerror(err));
			ioctl(fuse_fd, FUSE_DEV_IOC_BACKING_CLOSE, &bid);
			return -err;
		}
	}
	k->backing_id = id;
	k->fuse_fd = fuse_fd;
	k->active = true;
	snprintf(k->why, sizeof(k->why), "active on %s (extent maps%s)",
		 fs->devpath,
		 feat & FUSE_DMAFS_FEAT_DMABUF ? ", dma-buf" : "");
	return 0;
}

void dmafs_kext_start(struct dmafs_fs *fs, int fuse_fd, bool disabled)
{
	if (kext_setup(fs, fuse_fd, disabled))
		g_message("kernel extension: %s; the daemon serves all I/O "
			  "(compat mode)", fs->kext.why);
	else
		g_message("kernel extension: %s", fs->kext.why);
}

void dmafs_kext_stop(struct dmafs_fs *fs)
{
	struct dmafs_kext *k = &fs->kext;
	uint32_t id = k->backing_id;

	if (!k->active)
		return;
	/* Fails harmlessly once the connection is gone, which drops it too. */
	if (ioctl(k->fuse_fd, FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0)
		g_debug("kernel extension: closing the backing: %s",
			g_strerror(errno));
	k->active = false;
}

void dmafs_kext_build_map(const struct dmafs_inode *in, uint64_t size,
			  GArray *out)
{
	/* Blocks below EOF; size < 2^64, so this cannot overflow. */
	uint64_t nblk = size / BS + (size % BS != 0);
	struct fuse_dmafs_extent *last = NULL;
	GTreeNode *n;

	if (!in->extents)
		return;
	for (n = g_tree_node_first(in->extents); n; n = g_tree_node_next(n)) {
		const struct dmafs_extent *e = g_tree_node_value(n);
		struct fuse_dmafs_extent x;

		if (e->fblk >= nblk)
			break;
		if (e->flags & DMAFS_EXTENT_UNWRITTEN)
			continue;
		x.offset = e->fblk * BS;
		x.length = (MIN(e->fblk + e->len, nblk) - e->fblk) * BS;
		x.dev_offset = e->phys * BS;
		if (last && last->offset + last->length == x.offset &&
		    last->dev_offset + last->length == x.dev_offset) {
			last->length += x.length;
			continue;
		}
		g_array_append_val(out, x);
		last = &g_array_index(out, struct fuse_dmafs_extent,
				      out->len - 1);
	}
}

/* Set the kmap fields; fs->lock NOT held. */
static void kmap_state(struct dmafs_fs *fs, struct dmafs_inode *in, bool on,
		       uint64_t gen, uint64_t size)
{
	g_mutex_lock(&fs->lock);
	in->kmap = on;
	if (on) {
		in->kmap_used = true;
		in->kmap_gen = gen;
		in->kmap_size = size;
	}
	g_mutex_unlock(&fs->lock);
}

/*
 * Install in's current map.  Returns 0, or the error of writing zeros over
 * its unwritten extents; a map the kernel refuses is logged and left out
 * (the kernel then sends the file's O_DIRECT I/O to the daemon).
 */
static int kext_push(struct dmafs_fs *fs, struct dmafs_inode *in)
{
	GArray *ext = g_array_new(FALSE, FALSE,
				  sizeof(struct fuse_dmafs_extent));
	struct fuse_dmafs_map map = {
		.nodeid = in->ino,		/* node ids are inode numbers */
		.backing_id = fs->kext.backing_id,
	};
	uint64_t size, gen;
	bool log_ok;
	int ret = 0;

	g_mutex_lock(&fs->lock);
	size = in->size;
	g_mutex_unlock(&fs->lock);
	log_ok = !dmafs_log_error(fs);
	/* A log that failed cannot record the conversion: they stay holes. */
	if (log_ok) {
		ret = dmafs_data_write_unwritten(fs, in,
						 size / BS + (size % BS != 0));
		if (ret)
			goto out_drop;
	}
	g_mutex_lock(&fs->lock);
	size = in->size;
	gen = in->map_gen;
	dmafs_kext_build_map(in, size, ext);
	g_mutex_unlock(&fs->lock);

	map.extents = (uintptr_t)ext->data;
	map.nr_extents = ext->len;
	if (ext->len > KEXT_MAX_EXTENTS)
		errno = E2BIG;
	else if (!ioctl(fs->kext.fuse_fd, FUSE_DEV_IOC_DMAFS_SET_EXTENTS,
			&map))
		goto out_ok;
	if (errno == ENOENT) {
		/* The kernel has no inode for it: no map to keep up to date. */
		g_debug("kernel extension: inode %" PRIu64 " not in the kernel",
			in->ino);
	} else {
		g_warning("kernel extension: installing the map of inode %"
			  PRIu64 " (%u extents) failed: %s; its O_DIRECT I/O "
			  "goes through the daemon", in->ino, ext->len,
			  g_strerror(errno));
	}
out_drop:
	/* Whatever older map is left is still correct; drop it anyway. */
	dmafs_kext_inval(fs, in, 0, UINT64_MAX);
	kmap_state(fs, in, false, 0, 0);
	g_array_unref(ext);
	return ret;
out_ok:
	kmap_state(fs, in, true, gen, size);
	g_array_unref(ext);
	return 0;
}

int dmafs_kext_open(struct dmafs_fs *fs, struct dmafs_inode *in, bool created)
{
	int ret;

	if (!fs->kext.active || !S_ISREG(in->mode))
		return 0;
	g_mutex_lock(&fs->lock);
	in->kmap_opens++;
	g_mutex_unlock(&fs->lock);
	/*
	 * A file being created has no kernel inode until we reply, and
	 * nothing to map; the first write, truncate or fallocate pushes.
	 */
	if (created)
		return 0;
	ret = kext_push(fs, in);
	if (ret) {
		g_mutex_lock(&fs->lock);
		in->kmap_opens--;
		g_mutex_unlock(&fs->lock);
	}
	return ret;
}

void dmafs_kext_close(struct dmafs_fs *fs, struct dmafs_inode *in, bool wrote,
		      bool release)
{
	bool last = false;

	g_mutex_lock(&fs->lock);
	/*
	 * Writes through the map bypass the daemon.  A kernel with
	 * FUSE_DMAFS_FEAT_WRITE_TIMES sends their times itself; with an older
	 * one the times stamped are those of the fsync or close that follows.
	 */
	if (wrote && !fs->ro &&
	    !(fs->kext.features & FUSE_DMAFS_FEAT_WRITE_TIMES)) {
		dmafs_now(&in->mtime);
		in->ctime = in->mtime;
		dmafs_mark_dirty(fs, in);
	}
	if (release && in->kmap_opens) {
		in->kmap_opens--;
		last = !in->kmap_opens;
	}
	g_mutex_unlock(&fs->lock);
	if (last) {
		dmafs_kext_inval(fs, in, 0, UINT64_MAX);
		kmap_state(fs, in, false, 0, 0);
	}
}

int dmafs_kext_inval(struct dmafs_fs *fs, struct dmafs_inode *in,
		     uint64_t off, uint64_t len)
{
	struct fuse_dmafs_inval iv = {
		.nodeid = in->ino,
		.offset = off,
		.length = len,
	};

	if (!in->kmap || !len)
		return 0;
	if (!ioctl(fs->kext.fuse_fd, FUSE_DEV_IOC_DMAFS_INVAL_EXTENTS, &iv))
		return 0;
	/* An aborted connection has dropped every map already. */
	if (errno == ENOTCONN || errno == ENODEV)
		return 0;
	g_critical("kernel extension: removing [%" PRIu64 ", +%" PRIu64
		   ") of inode %" PRIu64 " from the kernel's map failed: %s",
		   off, len, in->ino, g_strerror(errno));
	return -EIO;
}

void dmafs_kext_refresh(struct dmafs_fs *fs, struct dmafs_inode *in,
			bool always)
{
	bool stale;

	if (!fs->kext.active)
		return;
	g_mutex_lock(&fs->lock);
	stale = in->kmap_opens &&
		(always || !in->kmap || in->kmap_gen != in->map_gen ||
		 in->kmap_size != in->size);
	g_mutex_unlock(&fs->lock);
	if (stale && kext_push(fs, in))
		g_warning("kernel extension: cannot write zeros over the "
			  "preallocated blocks of inode %" PRIu64 "; its "
			  "O_DIRECT I/O goes through the daemon", in->ino);
}
