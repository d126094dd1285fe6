// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The write-ahead log: record appenders, commit, checkpoint, and the mount
 * time load (superblock, checkpoint, replay).  See include/dmafs/format.h
 * for the on-disk side and the ordering rules this file implements.
 *
 * Locking: appenders run under fs->lock.  A commit takes fs->commit_lock,
 * then fs->lock just long enough to seal the open chunk's contents, and
 * does its I/O with only commit_lock held, so metadata operations go on
 * while a chunk is being written.  A checkpoint holds both locks for its
 * whole duration: it is rare (log full, unmount) and must see a frozen
 * state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dmafs.h"

/* A chunk never grows past this, so one allocation always holds it. */
#define CHUNK_MAX_BLOCKS	256u
/* Background commit interval, like ext4's default journal commit. */
#define FLUSH_INTERVAL_US	(5 * G_USEC_PER_SEC)

struct dmafs_log {
	GByteArray *buf;	/* open chunk payload */
	uint32_t nrec;
	uint64_t seq;		/* sequence of the open chunk */
	uint64_t head;		/* next chunk position, relative to log_start */
	uint64_t used;		/* live blocks from the replay head to head */
	uint64_t nblocks;	/* log region length */
	int err;		/* sticky: a failed commit makes the fs read-only */

	GThread *flusher;
	GMutex flusher_lock;
	GCond flusher_cond;
	bool stop;
};

static uint64_t blk_off(uint64_t blk)
{
	return blk << DMAFS_BLOCK_SHIFT;
}

/* ---- appenders ---- */

static void *rec_add(struct dmafs_fs *fs, uint16_t type, uint64_t ino,
		     size_t fixed, const void *v1, size_t l1, const void *v2,
		     size_t l2)
{
	struct dmafs_log *log = fs->log;
	uint32_t len = dmafs_rec_align(fixed + l1 + l2);
	guint at = log->buf->len;
	struct dmafs_disk_rec *r;

	g_byte_array_set_size(log->buf, at + len);
	r = (void *)(log->buf->data + at);
	memset(r, 0, len);
	r->type = cpu16(type);
	r->len = cpu32(len);
	r->ino = cpu64(ino);
	if (l1)
		memcpy((char *)r + fixed, v1, l1);
	if (l2)
		memcpy((char *)r + fixed + l1, v2, l2);
	log->nrec++;
	return r;
}

static void ts_to_disk(struct dmafs_disk_timespec *d, const struct timespec *ts)
{
	d->sec = cpu64((uint64_t)ts->tv_sec);
	d->nsec = cpu32(ts->tv_nsec);
}

static void encode_inode(struct dmafs_disk_rec_inode *r,
			 const struct dmafs_inode *in)
{
	r->mode = cpu32(in->mode);
	r->uid = cpu32(in->uid);
	r->gid = cpu32(in->gid);
	r->nlink = cpu32(in->nlink);
	r->rdev = cpu64(in->rdev);
	r->size = cpu64(in->size);
	r->iflags = cpu32(in->iflags);
	r->generation = cpu64(in->generation);
	ts_to_disk(&r->atime, &in->atime);
	ts_to_disk(&r->mtime, &in->mtime);
	ts_to_disk(&r->ctime, &in->ctime);
	ts_to_disk(&r->btime, &in->btime);
}

void dmafs_log_inode(struct dmafs_fs *fs, struct dmafs_inode *in)
{
	encode_inode(rec_add(fs, DMAFS_REC_INODE, in->ino,
			     sizeof(struct dmafs_disk_rec_inode), NULL, 0, NULL,
			     0),
		     in);
	if (in->dirty) {
		in->dirty = false;
		g_hash_table_remove(fs->dirty, in);
	}
}

void dmafs_mark_dirty(struct dmafs_fs *fs, struct dmafs_inode *in)
{
	if (!in->dirty) {
		in->dirty = true;
		g_hash_table_add(fs->dirty, in);
	}
}

void dmafs_log_inode_del(struct dmafs_fs *fs, uint64_t ino)
{
	rec_add(fs, DMAFS_REC_INODE_DEL, ino, sizeof(struct dmafs_disk_rec),
		NULL, 0, NULL, 0);
}

void dmafs_log_dirent(struct dmafs_fs *fs, int type, uint64_t dir,
		      const char *name, uint64_t child, uint64_t cookie,
		      uint8_t dtype)
{
	size_t nl = strlen(name);
	struct dmafs_disk_rec_dirent *d;

	d = rec_add(fs, type, dir, sizeof(*d), name, nl, NULL, 0);
	d->child = cpu64(child);
	d->cookie = cpu64(cookie);
	d->name_len = cpu16(nl);
	d->dtype = dtype;
}

void dmafs_log_extent(struct dmafs_fs *fs, int type, uint64_t ino,
		      uint64_t fblk, uint64_t len, uint64_t phys,
		      uint32_t flags)
{
	struct dmafs_disk_rec_extent *e;

	e = rec_add(fs, type, ino, sizeof(*e), NULL, 0, NULL, 0);
	e->file_block = cpu64(fblk);
	e->nblocks = cpu64(len);
	e->phys = cpu64(phys);
	e->eflags = cpu32(flags);
}

void dmafs_log_xattr(struct dmafs_fs *fs, int type, uint64_t ino,
		     const char *name, const void *value, size_t len)
{
	size_t nl = strlen(name);
	struct dmafs_disk_rec_xattr *x;

	x = rec_add(fs, type, ino, sizeof(*x), name, nl, value, len);
	x->name_len = cpu16(nl);
	x->value_len = cpu32(len);
}

void dmafs_log_symlink(struct dmafs_fs *fs, uint64_t ino, const char *target)
{
	rec_add(fs, DMAFS_REC_SYMLINK, ino, sizeof(struct dmafs_disk_rec),
		target, strlen(target), NULL, 0);
}

uint64_t dmafs_log_open_seq(struct dmafs_fs *fs)
{
	return fs->log->seq;
}

/* ---- commit ---- */

static uint32_t chunk_blocks(size_t nbytes)
{
	return (DMAFS_CHUNK_HDR_SIZE + nbytes + DMAFS_BLOCK_SIZE - 1) /
	       DMAFS_BLOCK_SIZE;
}

/* Where a chunk of n blocks goes, or -ENOSPC if the log is too full. */
static int log_place(struct dmafs_log *log, uint64_t n, uint64_t *pos,
		     uint64_t *waste)
{
	*pos = log->head;
	*waste = 0;
	if (log->head + n > log->nblocks) {
		*waste = log->nblocks - log->head;
		*pos = 0;
	}
	if (log->used + *waste + n > log->nblocks)
		return -ENOSPC;
	return 0;
}

static void flush_dirty(struct dmafs_fs *fs)
{
	GHashTableIter it;
	gpointer k;

	g_hash_table_iter_init(&it, fs->dirty);
	while (g_hash_table_iter_next(&it, &k, NULL)) {
		struct dmafs_inode *in = k;

		encode_inode(rec_add(fs, DMAFS_REC_INODE, in->ino,
				     sizeof(struct dmafs_disk_rec_inode), NULL,
				     0, NULL, 0),
			     in);
		in->dirty = false;
		g_hash_table_iter_remove(&it);
	}
}

static int checkpoint_locked(struct dmafs_fs *fs);

/* flush: flush the device even when there is nothing to log. */
static int commit_locked(struct dmafs_fs *fs, bool flush)
{
	struct dmafs_log *log = fs->log;
	GByteArray *payload;
	uint64_t seq, pos, waste;
	uint32_t nrec, nb;
	void *buf;
	int ret;

	g_mutex_lock(&fs->lock);
	if (log->err) {
		g_mutex_unlock(&fs->lock);
		return log->err;
	}
	flush_dirty(fs);
	if (!log->buf->len) {
		g_mutex_unlock(&fs->lock);
		return flush ? dmafs_dev_flush(fs->dev) : 0;
	}
	nb = chunk_blocks(log->buf->len);
	if (nb > CHUNK_MAX_BLOCKS || log_place(log, nb, &pos, &waste)) {
		g_mutex_unlock(&fs->lock);
		return checkpoint_locked(fs);
	}
	payload = log->buf;
	nrec = log->nrec;
	seq = log->seq++;
	log->buf = g_byte_array_new();
	log->nrec = 0;
	g_mutex_unlock(&fs->lock);

	ret = -ENOMEM;
	buf = dmafs_dev_alloc_buf((size_t)nb * DMAFS_BLOCK_SIZE);
	if (!buf)
		goto out_fail;
	memcpy((char *)buf + DMAFS_CHUNK_HDR_SIZE, payload->data, payload->len);
	dmafs_chunk_seal(buf, DMAFS_CHUNK_LOG, seq, nb, payload->len, nrec,
			 le64(fs->sb.log_nonce), 0, fs->sb.uuid);
	/* Rule 1: the data this chunk points at is durable before it is. */
	ret = dmafs_dev_flush(fs->dev);
	if (!ret)
		ret = dmafs_dev_write(fs->dev, buf,
				      (size_t)nb * DMAFS_BLOCK_SIZE,
				      blk_off(le64(fs->sb.log_start) + pos),
				      DMAFS_IO_FUA);
	free(buf);
	if (ret)
		goto out_fail;
	g_byte_array_unref(payload);

	g_mutex_lock(&fs->lock);
	log->used += waste + nb;
	log->head = pos + nb;
	if (log->head == log->nblocks)
		log->head = 0;
	g_mutex_unlock(&fs->lock);
	/* Rule 2: what this chunk freed may now be reused. */
	dmafs_alloc_release(fs->alloc, seq);
	return 0;

out_fail:
	g_byte_array_unref(payload);
	g_mutex_lock(&fs->lock);
	log->err = ret;
	g_mutex_unlock(&fs->lock);
	g_critical("log commit failed: %s; the filesystem is read-only until remounted",
		   g_strerror(-ret));
	return ret;
}

int dmafs_log_commit(struct dmafs_fs *fs)
{
	int ret;

	if (fs->ro)
		return 0;
	g_mutex_lock(&fs->commit_lock);
	ret = commit_locked(fs, false);
	g_mutex_unlock(&fs->commit_lock);
	return ret;
}

int dmafs_log_commit_flush(struct dmafs_fs *fs)
{
	int ret;

	if (fs->ro)
		return 0;
	g_mutex_lock(&fs->commit_lock);
	ret = commit_locked(fs, true);
	g_mutex_unlock(&fs->commit_lock);
	return ret;
}

void dmafs_log_maybe_commit(struct dmafs_fs *fs)
{
	gsize len;

	g_mutex_lock(&fs->lock);
	len = fs->log->buf->len;
	g_mutex_unlock(&fs->lock);
	/* Keep chunks well below CHUNK_MAX_BLOCKS and an eighth of the log. */
	if (len > MIN(CHUNK_MAX_BLOCKS / 2, fs->log->nblocks / 8) *
			  DMAFS_BLOCK_SIZE)
		dmafs_log_commit(fs);
}

/* ---- checkpoint ---- */

static void ckpt_inode(struct dmafs_fs *fs, GByteArray *out,
		       struct dmafs_inode *in);

/* Serialise the whole state as records; fs->lock held. */
static GByteArray *ckpt_serialise(struct dmafs_fs *fs)
{
	struct dmafs_log *log = fs->log;
	GByteArray *saved = log->buf, *out;
	struct dmafs_disk_rec_meta *m;
	GHashTableIter it;
	gpointer v;

	/* Reuse the appenders by pointing them at a fresh buffer. */
	out = g_byte_array_sized_new(fs->ninodes * 200 + 4096);
	log->buf = out;
	m = rec_add(fs, DMAFS_REC_META, 0, sizeof(*m), NULL, 0, NULL, 0);
	m->next_ino = cpu64(fs->next_ino);
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v))
		ckpt_inode(fs, out, v);
	log->buf = saved;
	return out;
}

struct ckpt_ext_ctx {
	struct dmafs_fs *fs;
	uint64_t ino;
};

static gboolean ckpt_extent_rec(gpointer k, gpointer v, gpointer data)
{
	struct ckpt_ext_ctx *c = data;
	struct dmafs_extent *e = v;

	dmafs_log_extent(c->fs, DMAFS_REC_EXTENT_SET, c->ino, e->fblk, e->len,
			 e->phys, e->flags);
	return FALSE;
}

static gboolean ckpt_dirent(gpointer k, gpointer v, gpointer data)
{
	struct ckpt_ext_ctx *c = data;
	struct dmafs_dirent *d = v;

	dmafs_log_dirent(c->fs, DMAFS_REC_DIRENT_ADD, c->ino, d->name, d->ino,
			 d->cookie, d->dtype);
	return FALSE;
}

static void ckpt_inode(struct dmafs_fs *fs, GByteArray *out,
		       struct dmafs_inode *in)
{
	struct ckpt_ext_ctx c = { fs, in->ino };

	encode_inode(rec_add(fs, DMAFS_REC_INODE, in->ino,
			     sizeof(struct dmafs_disk_rec_inode), NULL, 0, NULL,
			     0),
		     in);
	if (in->symlink)
		dmafs_log_symlink(fs, in->ino, in->symlink);
	if (in->xattrs) {
		GHashTableIter it;
		gpointer k, v;

		g_hash_table_iter_init(&it, in->xattrs);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			gsize len;
			const void *d = g_bytes_get_data(v, &len);

			dmafs_log_xattr(fs, DMAFS_REC_XATTR_SET, in->ino, k, d,
					len);
		}
	}
	if (in->extents)
		g_tree_foreach(in->extents, ckpt_extent_rec, &c);
	if (in->dents)
		g_tree_foreach(in->dents_by_cookie, ckpt_dirent, &c);
}

static int write_super(struct dmafs_fs *fs)
{
	struct dmafs_disk_super *buf = dmafs_dev_alloc_buf(DMAFS_SB_SIZE);
	uint64_t backup = le64(fs->sb.total_blocks) - 1;
	int ret;

	if (!buf)
		return -ENOMEM;
	fs->sb.generation = cpu64(le64(fs->sb.generation) + 1);
	fs->sb.write_time = cpu64((uint64_t)time(NULL));
	fs->sb.next_ino = cpu64(fs->next_ino);
	dmafs_super_seal(&fs->sb);
	memcpy(buf, &fs->sb, DMAFS_SB_SIZE);
	/*
	 * Primary, then backup, each durable before the next: a torn write
	 * leaves the other copy valid, and mount takes the valid copy with
	 * the higher generation.
	 */
	ret = dmafs_dev_write(fs->dev, buf, DMAFS_SB_SIZE, 0, DMAFS_IO_FUA);
	if (!ret)
		ret = dmafs_dev_write(fs->dev, buf, DMAFS_SB_SIZE,
				      blk_off(backup), DMAFS_IO_FUA);
	free(buf);
	return ret;
}

struct ckpt_chunk {
	guint off;		/* in the serialised stream */
	uint32_t nbytes, nrec, nb;
	uint64_t blk;
};

/* Cut the serialised records into chunks at record boundaries. */
static GArray *ckpt_cut(GByteArray *s)
{
	const uint32_t max = CHUNK_MAX_BLOCKS * DMAFS_BLOCK_SIZE -
			     DMAFS_CHUNK_HDR_SIZE;
	GArray *chunks = g_array_new(FALSE, TRUE, sizeof(struct ckpt_chunk));
	struct ckpt_chunk c = { 0 };
	guint off = 0;

	while (off < s->len) {
		const struct dmafs_disk_rec *r = (const void *)(s->data + off);
		uint32_t len = le32(r->len);

		if (c.nbytes + len > max) {
			g_array_append_val(chunks, c);
			memset(&c, 0, sizeof(c));
			c.off = off;
		}
		c.nbytes += len;
		c.nrec++;
		off += len;
	}
	g_array_append_val(chunks, c);
	for (guint i = 0; i < chunks->len; i++) {
		struct ckpt_chunk *p = &g_array_index(chunks, struct ckpt_chunk,
						      i);

		p->nb = chunk_blocks(p->nbytes);
	}
	return chunks;
}

static int checkpoint_locked(struct dmafs_fs *fs)
{
	struct dmafs_log *log = fs->log;
	struct dmafs_io *ios = NULL;
	GArray *chunks, *newext;
	uint64_t goal = 0, seq, total = 0;
	GByteArray *s;
	guint i, got_n = 0;
	int ret;

	g_mutex_lock(&fs->lock);
	if (log->err) {
		ret = log->err;
		goto out_unlock;
	}
	s = ckpt_serialise(fs);
	chunks = ckpt_cut(s);
	newext = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	ios = g_new0(struct dmafs_io, chunks->len);

	for (i = 0; i < chunks->len; i++) {
		struct ckpt_chunk *c = &g_array_index(chunks, struct ckpt_chunk,
						      i);
		uint64_t got;

		ret = dmafs_alloc_get(fs->alloc, c->nb, c->nb, goal, &c->blk,
				      &got);
		if (ret)
			goto out_undo;
		got_n = i + 1;
		goal = c->blk + c->nb;
		total += c->nb;
		{
			uint64_t pair[2] = { c->blk, c->nb };

			g_array_append_vals(newext, pair, 2);
		}
	}
	seq = log->seq;
	for (i = 0; i < chunks->len; i++) {
		struct ckpt_chunk *c = &g_array_index(chunks, struct ckpt_chunk,
						      i);
		uint64_t next = i + 1 < chunks->len ?
			g_array_index(chunks, struct ckpt_chunk, i + 1).blk : 0;
		void *buf = dmafs_dev_alloc_buf((size_t)c->nb *
						DMAFS_BLOCK_SIZE);

		ret = -ENOMEM;
		if (!buf)
			goto out_undo;
		memcpy((char *)buf + DMAFS_CHUNK_HDR_SIZE, s->data + c->off,
		       c->nbytes);
		dmafs_chunk_seal(buf, DMAFS_CHUNK_CKPT, seq, c->nb, c->nbytes,
				 c->nrec, next, i, fs->sb.uuid);
		ios[i].buf = buf;
		ios[i].len = (size_t)c->nb * DMAFS_BLOCK_SIZE;
		ios[i].off = blk_off(c->blk);
		ios[i].flags = DMAFS_IO_WRITE;
	}
	ret = dmafs_dev_submit(fs->dev, ios, chunks->len);
	if (!ret)
		ret = dmafs_dev_flush(fs->dev);
	if (ret)
		goto out_undo;

	fs->sb.ckpt_block = cpu64(g_array_index(chunks, struct ckpt_chunk, 0).blk);
	fs->sb.ckpt_seq = cpu64(seq);
	fs->sb.ckpt_blocks = cpu64(total);
	fs->sb.log_head_block = cpu64(log->head);
	fs->sb.log_head_seq = cpu64(seq + 1);
	/* A new log session: no chunk already on the device can match it. */
	fs->sb.log_nonce = cpu64((uint64_t)g_random_int() << 32 |
				 g_random_int());
	ret = write_super(fs);
	if (ret)
		goto out_fail;

	/* The new checkpoint is the truth now; the old one's blocks are free. */
	for (i = 0; i < fs->ckpt_ext->len; i += 2)
		dmafs_alloc_put(fs->alloc,
				g_array_index(fs->ckpt_ext, uint64_t, i),
				g_array_index(fs->ckpt_ext, uint64_t, i + 1));
	g_array_unref(fs->ckpt_ext);
	fs->ckpt_ext = newext;
	newext = NULL;
	log->seq = seq + 1;
	log->used = 0;
	g_byte_array_set_size(log->buf, 0);
	log->nrec = 0;
	/* The checkpoint holds the dirty inodes' current state. */
	{
		GHashTableIter it;
		gpointer k;

		g_hash_table_iter_init(&it, fs->dirty);
		while (g_hash_table_iter_next(&it, &k, NULL)) {
			((struct dmafs_inode *)k)->dirty = false;
			g_hash_table_iter_remove(&it);
		}
	}
	dmafs_alloc_release(fs->alloc, seq);
	ret = 0;
	goto out_free;

out_undo:
	for (i = 0; i < got_n; i++) {
		struct ckpt_chunk *c = &g_array_index(chunks, struct ckpt_chunk,
						      i);

		dmafs_alloc_put(fs->alloc, c->blk, c->nb);
	}
	if (ret != -ENOSPC)
		goto out_fail;
	g_warning("checkpoint: no space for %llu blocks of metadata",
		  (unsigned long long)total);
	goto out_free;
out_fail:
	log->err = ret;
	g_critical("checkpoint failed: %s; the filesystem is read-only until remounted",
		   g_strerror(-ret));
out_free:
	for (i = 0; i < chunks->len; i++)
		free(ios[i].buf);
	g_free(ios);
	if (newext)
		g_array_unref(newext);
	g_array_unref(chunks);
	g_byte_array_unref(s);
out_unlock:
	g_mutex_unlock(&fs->lock);
	return ret;
}

int dmafs_log_checkpoint(struct dmafs_fs *fs)
{
	int ret;

	if (fs->ro)
		return 0;
	g_mutex_lock(&fs->commit_lock);
	ret = checkpoint_locked(fs);
	g_mutex_unlock(&fs->commit_lock);
	return ret;
}

int dmafs_log_error(struct dmafs_fs *fs)
{
	return fs->log->err;
}

/* ---- background commits ---- */

static gpointer flusher_main(gpointer data)
{
	struct dmafs_fs *fs = data;
	struct dmafs_log *log = fs->log;

	g_mutex_lock(&log->flusher_lock);
	while (!log->stop) {
		gint64 until = g_get_monotonic_time() + FLUSH_INTERVAL_US;

		if (g_cond_wait_until(&log->flusher_cond, &log->flusher_lock,
				      until))
			continue;
		g_mutex_unlock(&log->flusher_lock);
		dmafs_log_commit(fs);
		g_mutex_lock(&log->flusher_lock);
	}
	g_mutex_unlock(&log->flusher_lock);
	return NULL;
}

void dmafs_log_start_flusher(struct dmafs_fs *fs)
{
	if (!fs->ro)
		fs->log->flusher = g_thread_new("dmafs-commit", flusher_main, fs);
}

void dmafs_log_stop_flusher(struct dmafs_fs *fs)
{
	struct dmafs_log *log = fs->log;

	if (!log->flusher)
		return;
	g_mutex_lock(&log->flusher_lock);
	log->stop = true;
	g_cond_signal(&log->flusher_cond);
	g_mutex_unlock(&log->flusher_lock);
	g_thread_join(log->flusher);
	log->flusher = NULL;
}

/* ---- mount: superblock, checkpoint, replay ---- */

int dmafs_log_read_super(struct dmafs_fs *fs, uint64_t blk, uint64_t dev_blocks,
			 struct dmafs_disk_super *out, char *why, size_t whylen)
{
	void *buf = dmafs_dev_alloc_buf(DMAFS_SB_SIZE);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = dmafs_dev_read(fs->dev, buf, DMAFS_SB_SIZE, blk_off(blk));
	if (ret) {
		snprintf(why, whylen, "cannot read superblock: %s",
			 g_strerror(-ret));
	} else {
		memcpy(out, buf, DMAFS_SB_SIZE);
		ret = dmafs_super_check(out, dev_blocks, why, whylen);
	}
	free(buf);
	return ret;
}

static int pick_super(struct dmafs_fs *fs, char *why, size_t whylen)
{
	const struct dmafs_dev_info *info = dmafs_dev_info(fs->dev);
	uint64_t dev_blocks = info->size / DMAFS_BLOCK_SIZE;
	struct dmafs_disk_super p, b;
	char bwhy[DMAFS_WHY_MAX];
	uint64_t bblk;
	int pret, bret;

	if (dev_blocks < 2) {
		snprintf(why, whylen, "device too small for a dmafs filesystem");
		return -EINVAL;
	}
	pret = dmafs_log_read_super(fs, 0, dev_blocks, &p, why, whylen);
	bblk = pret ? dev_blocks - 1 : le64(p.total_blocks) - 1;
	bret = dmafs_log_read_super(fs, bblk, dev_blocks, &b, bwhy, sizeof(bwhy));
	if (pret == -EOPNOTSUPP)
		return pret;
	if (!pret && (bret || le64(p.generation) >= le64(b.generation))) {
		fs->sb = p;
	} else if (!bret && (!pret || pret == -EUCLEAN || pret == -EIO ||
			     (pret == -ENODATA && fs->report))) {
		/*
		 * A torn primary: the backup is the newest valid copy.  A
		 * primary without our magic at all may be another filesystem
		 * made over ours: only fsck, asked to repair, goes on.
		 */
		if (pret)
			g_message("primary superblock invalid (%s), using the backup",
				  why);
		else
			g_message("the backup superblock is newer than the primary, using it");
		fs->sb = b;
	} else {
		if (pret == -ENODATA)
			snprintf(why, whylen, "not a dmafs filesystem");
		return pret;
	}
	if (le32(fs->sb.lba_size) < info->lba_size) {
		snprintf(why, whylen,
			 "formatted for %u-byte LBAs but the device has %u-byte LBAs",
			 le32(fs->sb.lba_size), info->lba_size);
		return -EINVAL;
	}
	if ((le32(fs->sb.flags) & DMAFS_SB_NEEDS_FSCK) && !fs->report) {
		snprintf(why, whylen,
			 "filesystem has errors recorded; run fsck.dmafs");
		return -EUCLEAN;
	}
	if (!fs->ro && (le32(fs->sb.ro_compat) & ~DMAFS_FEATURE_RO_COMPAT_SUPP)) {
		snprintf(why, whylen,
			 "unknown read-only-compatible features 0x%x: mount with -o ro",
			 le32(fs->sb.ro_compat));
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * Read and verify the chunk at blk (max_blocks long at most).  Returns 0
 * with *out (free()) and *nb set, or a negative errno.
 */
static int read_chunk(struct dmafs_fs *fs, uint64_t blk, uint32_t type,
		      uint64_t seq, uint32_t max_blocks, void **out,
		      uint32_t *nb, char *why, size_t whylen)
{
	void *buf = dmafs_dev_alloc_buf(DMAFS_BLOCK_SIZE);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = dmafs_dev_read(fs->dev, buf, DMAFS_BLOCK_SIZE, blk_off(blk));
	if (ret)
		goto out_free;
	ret = dmafs_chunk_verify(buf, 1, type, seq, fs->sb.uuid, max_blocks,
				 nb, why, whylen);
	if (ret == -EAGAIN) {
		free(buf);
		buf = dmafs_dev_alloc_buf((size_t)*nb * DMAFS_BLOCK_SIZE);
		if (!buf)
			return -ENOMEM;
		ret = dmafs_dev_read(fs->dev, buf,
				     (size_t)*nb * DMAFS_BLOCK_SIZE,
				     blk_off(blk));
		if (!ret)
			ret = dmafs_chunk_verify(buf, *nb, type, seq,
						 fs->sb.uuid, max_blocks, nb,
						 why, whylen);
	}
	if (!ret && type == DMAFS_CHUNK_LOG &&
	    le64(((struct dmafs_disk_chunk *)buf)->next) !=
		    le64(fs->sb.log_nonce)) {
		snprintf(why, whylen, "chunk of an earlier log session");
		ret = -EUCLEAN;
	}
	if (ret)
		goto out_free;
	*out = buf;
	return 0;
out_free:
	free(buf);
	return ret;
}

static int apply_chunk(struct dmafs_fs *fs, const void *chunk, char *why,
		       size_t whylen)
{
	const struct dmafs_disk_chunk *c = chunk;
	const struct dmafs_disk_rec *rec;
	uint32_t off = 0, n = 0;
	int ret;

	while ((ret = dmafs_rec_next(c + 1, le32(c->nbytes), &off, &rec, why,
				     whylen)) > 0) {
		n++;
		ret = dmafs_meta_apply(fs, rec, why, whylen);
		if (ret && fs->report) {
			/* fsck: note the bad record and keep going */
			fs->report(fs, why);
			ret = 0;
		}
		if (ret)
			return ret;
	}
	if (!ret && n != le32(c->nrecords)) {
		snprintf(why, whylen, "chunk holds %u records, header says %u",
			 n, le32(c->nrecords));
		ret = -EUCLEAN;
	}
	return ret;
}

static int load_checkpoint(struct dmafs_fs *fs, char *why, size_t whylen)
{
	uint64_t blk = le64(fs->sb.ckpt_block), seq = le64(fs->sb.ckpt_seq);
	uint64_t lo = le64(fs->sb.data_start);
	uint64_t hi = le64(fs->sb.total_blocks) - 1;
	uint64_t total = 0;
	uint32_t index = 0;
	char cwhy[DMAFS_WHY_MAX];
	int ret;

	while (blk) {
		const struct dmafs_disk_chunk *c;
		uint32_t nb;
		void *buf;

		if (blk < lo || blk >= hi || total > hi - lo) {
			snprintf(why, whylen,
				 "checkpoint chunk %u at block %llu is outside the data area",
				 index, (unsigned long long)blk);
			return -EUCLEAN;
		}
		ret = read_chunk(fs, blk, DMAFS_CHUNK_CKPT, seq,
				 MIN(hi - blk, CHUNK_MAX_BLOCKS), &buf, &nb,
				 cwhy, sizeof(cwhy));
		if (ret) {
			snprintf(why, whylen, "checkpoint chunk %u at block %llu: %s",
				 index, (unsigned long long)blk,
				 ret == -EUCLEAN ? cwhy : g_strerror(-ret));
			return ret == -EUCLEAN || ret == -EAGAIN ? -EUCLEAN : ret;
		}
		fs->ckpt_chunks++;
		c = buf;
		if (le32(c->index) != index) {
			free(buf);
			snprintf(why, whylen, "checkpoint chunk %u out of order",
				 index);
			return -EUCLEAN;
		}
		ret = apply_chunk(fs, buf, cwhy, sizeof(cwhy));
		g_array_append_val(fs->ckpt_ext, blk);
		blk = le64(c->next);
		free(buf);
		if (ret && fs->report) {
			snprintf(why, whylen, "checkpoint chunk %u: %s", index,
				 cwhy);
			fs->report(fs, why);
			ret = 0;
		}
		if (ret) {
			snprintf(why, whylen, "checkpoint chunk %u: %s", index,
				 cwhy);
			return ret;
		}
		{
			uint64_t n64 = nb;

			g_array_append_val(fs->ckpt_ext, n64);
		}
		total += nb;
		index++;
	}
	return 0;
}

/*
 * Does blk hold the header of a chunk of this log session, valid or not?
 * Then appending in this session could one day make it replayable again.
 */
static bool session_chunk_at(struct dmafs_fs *fs, uint64_t blk)
{
	struct dmafs_disk_chunk *c = dmafs_dev_alloc_buf(DMAFS_BLOCK_SIZE);
	bool ours;

	if (!c)
		return true;
	ours = !dmafs_dev_read(fs->dev, c, DMAFS_BLOCK_SIZE, blk_off(blk)) &&
	       le32(c->magic) == DMAFS_CHUNK_MAGIC &&
	       !memcmp(c->uuid, fs->sb.uuid, 16) &&
	       le32(c->type) == DMAFS_CHUNK_LOG &&
	       le64(c->next) == le64(fs->sb.log_nonce);
	free(c);
	return ours;
}

/* Replay the log chunks after the checkpoint; leaves log->head/seq/used. */
static int replay(struct dmafs_fs *fs, char *why, size_t whylen)
{
	struct dmafs_log *log = fs->log;
	uint64_t start = le64(fs->sb.log_start), L = log->nblocks;
	uint64_t pos = le64(fs->sb.log_head_block);
	uint64_t seq = le64(fs->sb.log_head_seq), used = 0;
	char cwhy[DMAFS_WHY_MAX];
	unsigned long nchunks = 0;
	int ret;

	for (;;) {
		uint64_t at = pos, waste = 0;
		uint32_t nb = 0;
		void *buf = NULL;

		ret = read_chunk(fs, start + at, DMAFS_CHUNK_LOG, seq,
				 MIN(L - at, CHUNK_MAX_BLOCKS), &buf, &nb, cwhy,
				 sizeof(cwhy));
		if (ret && ret != -ENOMEM && at != 0) {
			/* The writer wraps when a chunk does not fit. */
			waste = L - at;
			at = 0;
			ret = read_chunk(fs, start, DMAFS_CHUNK_LOG, seq,
					 MIN(L, CHUNK_MAX_BLOCKS), &buf, &nb,
					 cwhy, sizeof(cwhy));
		}
		if (ret == -ENOMEM)
			return ret;
		if (ret)
			break;		/* the end of the log */
		if (used + waste + nb > L) {
			free(buf);
			break;		/* would overrun the checkpointed head */
		}
		ret = apply_chunk(fs, buf, cwhy, sizeof(cwhy));
		free(buf);
		if (ret && fs->report) {
			snprintf(why, whylen, "log chunk %llu: %s",
				 (unsigned long long)seq, cwhy);
			fs->report(fs, why);
			ret = 0;
		}
		if (ret) {
			snprintf(why, whylen, "log chunk %llu: %s",
				 (unsigned long long)seq, cwhy);
			return ret;
		}
		used += waste + nb;
		pos = at + nb;
		if (pos == L)
			pos = 0;
		seq++;
		nchunks++;
	}
	log->head = pos;
	log->seq = seq;
	log->used = used;
	fs->log_chunks = nchunks;
	fs->log_stale = session_chunk_at(fs, start + pos) ||
			(pos && session_chunk_at(fs, start));
	g_debug("replayed %lu log chunks", nchunks);
	return 0;
}

int dmafs_log_open(struct dmafs_fs *fs, char *why, size_t whylen)
{
	struct dmafs_log *log = g_new0(struct dmafs_log, 1);
	int ret;

	log->buf = g_byte_array_new();
	g_mutex_init(&log->flusher_lock);
	g_cond_init(&log->flusher_cond);
	fs->log = log;

	ret = pick_super(fs, why, whylen);
	if (ret)
		return ret;
	log->nblocks = le64(fs->sb.log_blocks);
	fs->next_ino = le64(fs->sb.next_ino);
	fs->alloc = dmafs_alloc_new(le64(fs->sb.data_start),
				    le64(fs->sb.total_blocks) - 1);
	return 0;
}

int dmafs_log_load_state(struct dmafs_fs *fs, char *why, size_t whylen)
{
	int ret = load_checkpoint(fs, why, whylen);

	return ret ? ret : replay(fs, why, whylen);
}

int dmafs_log_load(struct dmafs_fs *fs, char *why, size_t whylen)
{
	int ret = dmafs_log_open(fs, why, whylen);

	if (!ret)
		ret = dmafs_log_load_state(fs, why, whylen);
	return ret ? ret : dmafs_meta_finish_load(fs, why, whylen);
}

void dmafs_log_destroy(struct dmafs_fs *fs)
{
	struct dmafs_log *log = fs->log;

	if (!log)
		return;
	dmafs_log_stop_flusher(fs);
	g_byte_array_unref(log->buf);
	g_mutex_clear(&log->flusher_lock);
	g_cond_clear(&log->flusher_cond);
	g_free(log);
	fs->log = NULL;
}
