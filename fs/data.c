// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * File data: reads and writes through the extent map, truncate, fallocate
 * and SEEK_DATA/SEEK_HOLE.
 *
 * Device I/O is done in whole 4 KiB blocks through aligned bounce buffers;
 * partial blocks at the edges of a write are read, modified and written.
 *
 * Crash safety (format.h, rule 1): newly allocated blocks enter the
 * in-memory extent map, and the log, only after their data write has
 * completed.  Until then they are held by the allocator and owned by no
 * file, so neither a commit nor a checkpoint can make a pointer to them
 * durable before their contents.
 *
 * Locking: callers hold inode->io_lock (shared for reads, exclusive for
 * everything else); these functions take fs->lock around map and log
 * updates and drop it for device I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>

#include "dmafs.h"

#define BS DMAFS_BLOCK_SIZE
#define MAX_FBLK (UINT64_MAX >> DMAFS_BLOCK_SHIFT)

/* A piece of a file range: mapped (phys != 0) or a hole. */
struct seg {
	uint64_t fblk, len, phys;
	uint32_t flags;
};

/* Split [fblk, fblk+n) into mapped pieces and holes; fs->lock held. */
static GArray *map_range(struct dmafs_inode *in, uint64_t fblk, uint64_t n)
{
	GArray *segs = g_array_new(FALSE, TRUE, sizeof(struct seg));
	uint64_t end = fblk + n;

	while (fblk < end) {
		struct dmafs_extent *e = dmafs_extent_find(in, fblk);
		struct seg s = { .fblk = fblk };

		if (!e || e->fblk >= end) {
			s.len = end - fblk;
		} else if (e->fblk > fblk) {
			s.len = e->fblk - fblk;
		} else {
			s.len = MIN(e->fblk + e->len, end) - fblk;
			s.phys = e->phys + (fblk - e->fblk);
			s.flags = e->flags;
		}
		g_array_append_val(segs, s);
		fblk += s.len;
	}
	return segs;
}

static bool seg_has_data(const struct seg *s)
{
	return s->phys && !(s->flags & DMAFS_EXTENT_UNWRITTEN);
}

/* Device reads (or writes) for the mapped pieces of segs into buf. */
static int seg_io(struct dmafs_fs *fs, GArray *segs, uint64_t base_fblk,
		  char *buf, bool write, bool data_only)
{
	struct dmafs_io *ios = g_new0(struct dmafs_io, segs->len);
	unsigned int n = 0;
	int ret;

	for (guint i = 0; i < segs->len; i++) {
		struct seg *s = &g_array_index(segs, struct seg, i);

		if (!s->phys || (data_only && !seg_has_data(s)))
			continue;
		ios[n].buf = buf + (s->fblk - base_fblk) * BS;
		ios[n].len = s->len * BS;
		ios[n].off = s->phys * BS;
		ios[n].flags = write ? DMAFS_IO_WRITE : 0;
		n++;
	}
	ret = n ? dmafs_dev_submit(fs->dev, ios, n) : 0;
	g_free(ios);
	return ret;
}

int dmafs_data_read(struct dmafs_fs *fs, struct dmafs_inode *in, uint64_t off,
		    size_t size, void **bufp, size_t *startp, size_t *lenp)
{
	uint64_t fblk, nblk;
	GArray *segs;
	char *buf;
	int ret;

	*bufp = NULL;
	*startp = *lenp = 0;
	g_mutex_lock(&fs->lock);
	if (off >= in->size || !size) {
		g_mutex_unlock(&fs->lock);
		return 0;
	}
	size = MIN(size, in->size - off);
	fblk = off / BS;
	nblk = (off + size + BS - 1) / BS - fblk;
	segs = map_range(in, fblk, nblk);
	g_mutex_unlock(&fs->lock);

	ret = -ENOMEM;
	buf = dmafs_dev_alloc_buf(nblk * BS);
	if (!buf)
		goto out_segs;
	/* Holes and unwritten extents stay as the buffer's zeros. */
	ret = seg_io(fs, segs, fblk, buf, false, true);
	if (ret) {
		free(buf);
		goto out_segs;
	}
	*bufp = buf;
	*startp = off % BS;
	*lenp = size;
out_segs:
	g_array_unref(segs);
	return ret;
}

/* Blocks the allocator must keep for metadata (the next checkpoint). */
static uint64_t meta_reserve(struct dmafs_fs *fs)
{
	return 2 * le64(fs->sb.ckpt_blocks) + fs->ninodes / 8 + 256;
}

static int space_check(struct dmafs_fs *fs, uint64_t need)
{
	uint64_t avail = dmafs_alloc_avail_blocks(fs->alloc);
	uint64_t rsv = meta_reserve(fs);

	return avail >= rsv && avail - rsv >= need ? 0 : -ENOSPC;
}

/*
 * Allocate device blocks for every hole in segs (splitting them into
 * allocated pieces, appended to *fresh).  On failure everything allocated
 * here is returned to the allocator.  fs->lock held.
 */
static int alloc_holes(struct dmafs_fs *fs, GArray **segsp, GArray *fresh,
		       uint64_t goal)
{
	GArray *segs = *segsp, *out;
	uint64_t need = 0;
	int ret;

	for (guint i = 0; i < segs->len; i++) {
		struct seg *s = &g_array_index(segs, struct seg, i);

		if (!s->phys)
			need += s->len;
		else
			goal = s->phys + s->len;
	}
	if (!need)
		return 0;
	ret = space_check(fs, need);
	if (ret)
		return ret;
	out = g_array_new(FALSE, TRUE, sizeof(struct seg));
	for (guint i = 0; i < segs->len; i++) {
		struct seg s = g_array_index(segs, struct seg, i);

		if (s.phys) {
			g_array_append_val(out, s);
			goal = s.phys + s.len;
			continue;
		}
		while (s.len) {
			/* Unwritten until the caller's data write completes. */
			struct seg p = { .fblk = s.fblk,
					 .flags = DMAFS_EXTENT_UNWRITTEN };
			uint64_t got;

			ret = dmafs_alloc_get(fs->alloc, s.len, 1, goal,
					      &p.phys, &got);
			if (ret)
				goto out_undo;
			p.len = got;
			g_array_append_val(out, p);
			g_array_append_val(fresh, p);
			goal = p.phys + got;
			s.fblk += got;
			s.len -= got;
		}
	}
	g_array_unref(segs);
	*segsp = out;
	return 0;
out_undo:
	for (guint i = 0; i < fresh->len; i++) {
		struct seg *p = &g_array_index(fresh, struct seg, i);

		dmafs_alloc_put(fs->alloc, p->phys, p->len);
	}
	g_array_set_size(fresh, 0);
	g_array_unref(out);
	return ret;
}

static void put_fresh(struct dmafs_fs *fs, GArray *fresh)
{
	for (guint i = 0; i < fresh->len; i++) {
		struct seg *p = &g_array_index(fresh, struct seg, i);

		dmafs_alloc_put(fs->alloc, p->phys, p->len);
	}
}

struct free_ctx {
	struct dmafs_fs *fs;
	uint64_t seq;
};

static void free_deferred_cb(void *arg, uint64_t phys, uint64_t len)
{
	struct free_ctx *c = arg;

	dmafs_alloc_free_deferred(c->fs->alloc, phys, len, c->seq);
}

/* Map freshly written pieces and convert written unwritten ones; log them. */
static void map_written(struct dmafs_fs *fs, struct dmafs_inode *in,
			GArray *segs)
{
	struct free_ctx fc = { fs, dmafs_log_open_seq(fs) };

	for (guint i = 0; i < segs->len; i++) {
		struct seg *s = &g_array_index(segs, struct seg, i);

		if (seg_has_data(s))
			continue;
		dmafs_extent_set(in, s->fblk, s->len, s->phys, 0,
				 free_deferred_cb, &fc);
		dmafs_log_extent(fs, DMAFS_REC_EXTENT_SET, in->ino, s->fblk,
				 s->len, s->phys, 0);
	}
}

/*
 * Write whole blocks [fblk, fblk+nblk) from buf, allocating holes.  The
 * caller has prepared partial edge blocks.  Updates no attributes.
 */
static int write_blocks(struct dmafs_fs *fs, struct dmafs_inode *in,
			uint64_t fblk, uint64_t nblk, char *buf)
{
	GArray *fresh = g_array_new(FALSE, TRUE, sizeof(struct seg));
	GArray *segs;
	bool retried = false;
	int ret;

again:
	g_mutex_lock(&fs->lock);
	segs = map_range(in, fblk, nblk);
	ret = alloc_holes(fs, &segs, fresh, 0);
	g_mutex_unlock(&fs->lock);
	if (ret == -ENOSPC && !retried &&
	    dmafs_alloc_free_blocks(fs->alloc) >
		    dmafs_alloc_avail_blocks(fs->alloc)) {
		/* Frees wait for their commit (rule 2): make it happen now. */
		g_array_unref(segs);
		retried = true;
		dmafs_log_commit(fs);
		goto again;
	}
	if (ret)
		goto out;
	ret = seg_io(fs, segs, fblk, buf, true, false);
	if (ret) {
		put_fresh(fs, fresh);
		goto out;
	}
	g_mutex_lock(&fs->lock);
	map_written(fs, in, segs);
	g_mutex_unlock(&fs->lock);
out:
	g_array_unref(segs);
	g_array_unref(fresh);
	return ret;
}

/* Read the edge blocks a partial write must preserve into buf. */
static int read_edges(struct dmafs_fs *fs, struct dmafs_inode *in,
		      uint64_t off, uint64_t end, uint64_t fblk, uint64_t nblk,
		      char *buf)
{
	GArray *segs = g_array_new(FALSE, TRUE, sizeof(struct seg));
	uint64_t edge[2];
	int n = 0, ret;

	if (off % BS)
		edge[n++] = fblk;
	if (end % BS && (end / BS != fblk || !n))
		edge[n++] = fblk + nblk - 1;
	g_mutex_lock(&fs->lock);
	for (int i = 0; i < n; i++) {
		GArray *one = map_range(in, edge[i], 1);

		g_array_append_vals(segs, one->data, one->len);
		g_array_unref(one);
	}
	g_mutex_unlock(&fs->lock);
	ret = seg_io(fs, segs, fblk, buf, false, true);
	g_array_unref(segs);
	return ret;
}

/* Zero bytes [from, to) inside one block, on disk, if it holds data. */
static int zero_partial(struct dmafs_fs *fs, struct dmafs_inode *in,
			uint64_t from, uint64_t to)
{
	uint64_t fblk = from / BS;
	struct seg s;
	GArray *segs;
	char *buf;
	int ret;

	if (from >= to)
		return 0;
	g_mutex_lock(&fs->lock);
	segs = map_range(in, fblk, 1);
	s = g_array_index(segs, struct seg, 0);
	g_mutex_unlock(&fs->lock);
	g_array_unref(segs);
	if (!seg_has_data(&s))
		return 0;
	buf = dmafs_dev_alloc_buf(BS);
	if (!buf)
		return -ENOMEM;
	ret = dmafs_dev_read(fs->dev, buf, BS, s.phys * BS);
	if (!ret) {
		memset(buf + from % BS, 0, to - from);
		ret = dmafs_dev_write(fs->dev, buf, BS, s.phys * BS, 0);
	}
	free(buf);
	return ret;
}

/*
 * The file grows from old_size: bytes past the old end in its last block
 * may hold anything (truncate does not clear them, so that a truncate that
 * never became durable cannot have destroyed data).  Clear them now, before
 * the larger size can become durable.  upto bounds the clearing when the
 * caller is about to overwrite the rest of that block itself.
 */
static int zero_tail(struct dmafs_fs *fs, struct dmafs_inode *in,
		     uint64_t old_size, uint64_t upto)
{
	uint64_t block_end = (old_size / BS + 1) * BS;

	if (!(old_size % BS) || upto <= old_size)
		return 0;
	return zero_partial(fs, in, old_size, MIN(block_end, upto));
}

int dmafs_data_write(struct dmafs_fs *fs, struct dmafs_inode *in,
		     const char *data, size_t size, uint64_t off)
{
	uint64_t end = off + size, fblk, nblk, old_size;
	char *buf;
	int ret;

	if (!size)
		return 0;
	if (end < off || end / BS >= MAX_FBLK)
		return -EFBIG;
	fblk = off / BS;
	nblk = (end + BS - 1) / BS - fblk;
	buf = dmafs_dev_alloc_buf(nblk * BS);
	if (!buf)
		return -ENOMEM;
	g_mutex_lock(&fs->lock);
	old_size = in->size;
	g_mutex_unlock(&fs->lock);
	ret = zero_tail(fs, in, old_size, off);
	if (!ret)
		ret = read_edges(fs, in, off, end, fblk, nblk, buf);
	if (ret)
		goto out_free;
	/* The edge block may hold stale bytes past the old end (zero_tail). */
	if (old_size < off && old_size / BS == fblk)
		memset(buf + old_size % BS, 0, off - old_size);
	memcpy(buf + off % BS, data, size);
	ret = write_blocks(fs, in, fblk, nblk, buf);
	if (ret)
		goto out_free;
	g_mutex_lock(&fs->lock);
	if (end > in->size)
		in->size = end;
	dmafs_now(&in->mtime);
	in->ctime = in->mtime;
	dmafs_mark_dirty(fs, in);
	g_mutex_unlock(&fs->lock);
	dmafs_log_maybe_commit(fs);
out_free:
	free(buf);
	return ret;
}

/* Unmap whole blocks [fblk, fblk+n), deferring the frees; fs->lock held. */
static void punch_locked(struct dmafs_fs *fs, struct dmafs_inode *in,
			 uint64_t fblk, uint64_t n)
{
	struct free_ctx fc = { fs, dmafs_log_open_seq(fs) };

	if (!n || !dmafs_extent_find(in, fblk))
		return;
	dmafs_extent_punch(in, fblk, n, free_deferred_cb, &fc);
	dmafs_log_extent(fs, DMAFS_REC_EXTENT_PUNCH, in->ino, fblk, n, 0, 0);
}

int dmafs_data_truncate(struct dmafs_fs *fs, struct dmafs_inode *in,
			uint64_t size)
{
	uint64_t first, old_size;
	int ret;

	if (size / BS >= MAX_FBLK)
		return -EFBIG;
	g_mutex_lock(&fs->lock);
	old_size = in->size;
	g_mutex_unlock(&fs->lock);
	ret = zero_tail(fs, in, old_size, size);
	if (ret)
		return ret;
	first = (size + BS - 1) / BS;
	/* The kernel must stop using the blocks before they are freed. */
	ret = dmafs_kext_inval(fs, in, first * BS, UINT64_MAX);
	if (ret)
		return ret;
	g_mutex_lock(&fs->lock);
	punch_locked(fs, in, first, MAX_FBLK - first);
	in->size = size;
	dmafs_log_inode(fs, in);
	g_mutex_unlock(&fs->lock);
	return 0;
}

void dmafs_data_free_all(struct dmafs_fs *fs, struct dmafs_inode *in)
{
	struct free_ctx fc = { fs, dmafs_log_open_seq(fs) };

	/* No kernel reference is left, so no map either; but be sure. */
	dmafs_kext_inval(fs, in, 0, UINT64_MAX);
	if (in->extents)
		dmafs_extent_punch(in, 0, MAX_FBLK, free_deferred_cb, &fc);
}

/* Zero buffer size and requests per batch for dmafs_data_write_unwritten. */
#define ZERO_BUF (1024 * 1024)
#define ZERO_BATCH 64

/* Write zeros over every piece of segs (all mapped). */
static int zero_segs(struct dmafs_fs *fs, GArray *segs)
{
	struct dmafs_io *ios = g_new0(struct dmafs_io, ZERO_BATCH);
	void *zero = dmafs_dev_alloc_buf(ZERO_BUF);
	unsigned int n = 0;
	int ret = zero ? 0 : -ENOMEM;

	for (guint i = 0; i < segs->len && !ret; i++) {
		struct seg *s = &g_array_index(segs, struct seg, i);
		uint64_t off = s->phys * BS, end = (s->phys + s->len) * BS;

		while (off < end && !ret) {
			if (n == ZERO_BATCH) {
				ret = dmafs_dev_submit(fs->dev, ios, n);
				n = 0;
			}
			/* Every request writes the same zero buffer. */
			ios[n] = (struct dmafs_io){ .buf = zero,
						    .len = MIN(end - off,
							       ZERO_BUF),
						    .off = off,
						    .flags = DMAFS_IO_WRITE };
			off += ios[n++].len;
		}
	}
	if (!ret && n)
		ret = dmafs_dev_submit(fs->dev, ios, n);
	free(zero);
	g_free(ios);
	return ret;
}

int dmafs_data_write_unwritten(struct dmafs_fs *fs, struct dmafs_inode *in,
			       uint64_t nblk)
{
	GArray *todo = g_array_new(FALSE, TRUE, sizeof(struct seg));
	GArray *segs;
	int ret = 0;

	g_mutex_lock(&fs->lock);
	segs = map_range(in, 0, MIN(nblk, MAX_FBLK));
	for (guint i = 0; i < segs->len; i++) {
		struct seg *s = &g_array_index(segs, struct seg, i);

		if (s->phys && (s->flags & DMAFS_EXTENT_UNWRITTEN))
			g_array_append_val(todo, *s);
	}
	g_mutex_unlock(&fs->lock);
	g_array_unref(segs);
	if (!todo->len)
		goto out;
	/*
	 * The blocks may hold a former owner's data: the zeros must be on
	 * the device before the conversion can be.  The commit that seals
	 * the conversion flushes the device first (rule 1).
	 */
	ret = zero_segs(fs, todo);
	if (ret)
		goto out;
	g_mutex_lock(&fs->lock);
	map_written(fs, in, todo);
	g_mutex_unlock(&fs->lock);
	dmafs_log_maybe_commit(fs);
out:
	g_array_unref(todo);
	return ret;
}

/* Allocate unwritten extents for the holes of [fblk, fblk+n). */
static int prealloc(struct dmafs_fs *fs, struct dmafs_inode *in, uint64_t fblk,
		    uint64_t n)
{
	GArray *fresh = g_array_new(FALSE, TRUE, sizeof(struct seg));
	GArray *segs;
	int ret;

	g_mutex_lock(&fs->lock);
	segs = map_range(in, fblk, n);
	ret = alloc_holes(fs, &segs, fresh, 0);
	if (!ret) {
		/* Unwritten extents read as zeros: no data write needed. */
		for (guint i = 0; i < fresh->len; i++) {
			struct seg *p = &g_array_index(fresh, struct seg, i);

			dmafs_extent_set(in, p->fblk, p->len, p->phys,
					 DMAFS_EXTENT_UNWRITTEN, NULL, NULL);
			dmafs_log_extent(fs, DMAFS_REC_EXTENT_SET, in->ino,
					 p->fblk, p->len, p->phys,
					 DMAFS_EXTENT_UNWRITTEN);
		}
	}
	g_mutex_unlock(&fs->lock);
	g_array_unref(segs);
	g_array_unref(fresh);
	return ret;
}

/* Zero [off, end): partial edge blocks on disk, whole blocks unmapped. */
static int zero_range(struct dmafs_fs *fs, struct dmafs_inode *in,
		      uint64_t off, uint64_t end, uint64_t *wfirst,
		      uint64_t *wlast)
{
	uint64_t first = (off + BS - 1) / BS, last = end / BS;
	int ret;

	if (first > last) {
		/* Inside a single block. */
		*wfirst = *wlast = 0;
		return zero_partial(fs, in, off, end);
	}
	ret = zero_partial(fs, in, off, first * BS);
	if (!ret)
		ret = zero_partial(fs, in, last * BS, end);
	if (!ret && last > first)
		ret = dmafs_kext_inval(fs, in, first * BS, (last - first) * BS);
	if (ret)
		return ret;
	g_mutex_lock(&fs->lock);
	punch_locked(fs, in, first, last - first);
	g_mutex_unlock(&fs->lock);
	*wfirst = first;
	*wlast = last;
	return 0;
}

int dmafs_data_fallocate(struct dmafs_fs *fs, struct dmafs_inode *in,
			 int mode, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, first, last;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	int ret;

	if (!len || end < off || end / BS >= MAX_FBLK)
		return len ? -EFBIG : -EINVAL;
	switch (mode & ~FALLOC_FL_KEEP_SIZE) {
	case 0:
		ret = prealloc(fs, in, off / BS, (end + BS - 1) / BS - off / BS);
		break;
	case FALLOC_FL_PUNCH_HOLE:
		if (!keep)
			return -EOPNOTSUPP;
		ret = zero_range(fs, in, off, MIN(end, MAX(in->size, off)),
				 &first, &last);
		keep = true;
		break;
	case FALLOC_FL_ZERO_RANGE:
		ret = zero_range(fs, in, off, end, &first, &last);
		if (!ret && last > first)
			ret = prealloc(fs, in, first, last - first);
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (!ret && !keep)
		ret = zero_tail(fs, in, in->size, end);
	if (ret)
		return ret;
	g_mutex_lock(&fs->lock);
	if (!keep && end > in->size)
		in->size = end;
	dmafs_now(&in->ctime);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		in->mtime = in->ctime;
	dmafs_log_inode(fs, in);
	g_mutex_unlock(&fs->lock);
	return 0;
}

int dmafs_data_seek(struct dmafs_fs *fs, struct dmafs_inode *in, uint64_t off,
		    int whence, uint64_t *res)
{
	uint64_t fblk = off / BS, pos;
	struct dmafs_extent *e;
	int ret = 0;

	g_mutex_lock(&fs->lock);
	if (off >= in->size) {
		ret = -ENXIO;
		goto out;
	}
	/* Unwritten extents read as zeros and count as holes, as on ext4. */
	if (whence == SEEK_DATA) {
		for (e = dmafs_extent_find(in, fblk); e;
		     e = dmafs_extent_find(in, e->fblk + e->len))
			if (!(e->flags & DMAFS_EXTENT_UNWRITTEN))
				break;
		pos = e ? MAX(off, e->fblk * BS) : in->size;
		if (pos >= in->size)
			ret = -ENXIO;
	} else {
		pos = off;
		while ((e = dmafs_extent_find(in, pos / BS)) &&
		       e->fblk <= pos / BS &&
		       !(e->flags & DMAFS_EXTENT_UNWRITTEN))
			pos = (e->fblk + e->len) * BS;
		pos = MIN(pos, in->size);
	}
	*res = pos;
out:
	g_mutex_unlock(&fs->lock);
	return ret;
}
