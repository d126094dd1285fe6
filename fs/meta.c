// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * In-memory metadata: the inode table, directories, extent maps, xattrs,
 * and the replay of log and checkpoint records into them.
 *
 * Everything here runs with fs->lock held (or single-threaded at mount);
 * nothing here does I/O or writes log records: callers decide what to log,
 * so that replay and live operation share the same edit functions.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dmafs.h"

void dmafs_fs_init(struct dmafs_fs *fs, const char *devpath, bool ro)
{
	memset(fs, 0, sizeof(*fs));
	fs->ro = ro;
	fs->devpath = g_strdup(devpath);
	g_mutex_init(&fs->lock);
	g_mutex_init(&fs->commit_lock);
	fs->inodes = g_hash_table_new(g_int64_hash, g_int64_equal);
	fs->dirty = g_hash_table_new(NULL, NULL);
	fs->ckpt_ext = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	fs->kext.fuse_fd = -1;
}

void dmafs_fs_destroy(struct dmafs_fs *fs)
{
	GHashTableIter it;
	gpointer v;

	dmafs_log_destroy(fs);
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v))
		dmafs_inode_free(v);
	g_hash_table_destroy(fs->inodes);
	g_hash_table_destroy(fs->dirty);
	g_array_unref(fs->ckpt_ext);
	if (fs->alloc)
		dmafs_alloc_destroy(fs->alloc);
	if (fs->dev)
		dmafs_dev_close(fs->dev);
	g_free(fs->devpath);
	g_mutex_clear(&fs->lock);
	g_mutex_clear(&fs->commit_lock);
}

void dmafs_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static gint cmp_u64(gconstpointer a, gconstpointer b, gpointer unused)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void dirent_free(gpointer p)
{
	struct dmafs_dirent *d = p;

	g_free(d->name);
	g_free(d);
}

struct dmafs_inode *dmafs_inode_get(struct dmafs_fs *fs, uint64_t ino)
{
	return g_hash_table_lookup(fs->inodes, &ino);
}

struct dmafs_inode *dmafs_inode_new(struct dmafs_fs *fs, uint64_t ino,
				    uint32_t mode)
{
	struct dmafs_inode *in = g_new0(struct dmafs_inode, 1);

	in->ino = ino;
	in->mode = mode;
	g_rw_lock_init(&in->io_lock);
	if (S_ISDIR(mode)) {
		in->dents = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
						  dirent_free);
		in->dents_by_cookie = g_tree_new_full(cmp_u64, NULL, NULL, NULL);
		in->next_cookie = 3;	/* 1 and 2 are "." and ".." */
	} else if (S_ISREG(mode)) {
		in->extents = g_tree_new_full(cmp_u64, NULL, NULL, g_free);
	}
	g_hash_table_insert(fs->inodes, &in->ino, in);
	fs->ninodes++;
	if (ino >= fs->next_ino)
		fs->next_ino = ino + 1;
	return in;
}

void dmafs_inode_free(struct dmafs_inode *in)
{
	if (in->dents_by_cookie)
		g_tree_destroy(in->dents_by_cookie);
	if (in->dents)
		g_hash_table_destroy(in->dents);
	if (in->extents)
		g_tree_destroy(in->extents);
	if (in->xattrs)
		g_hash_table_destroy(in->xattrs);
	g_free(in->symlink);
	g_rw_lock_clear(&in->io_lock);
	g_free(in);
}

void dmafs_inode_stat(struct dmafs_fs *fs, const struct dmafs_inode *in,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_size = in->size;
	st->st_blksize = DMAFS_BLOCK_SIZE;
	st->st_blocks = in->blocks * (DMAFS_BLOCK_SIZE / 512);
	if (S_ISLNK(in->mode) || S_ISDIR(in->mode))
		st->st_blocks = 0;
	/* Directories have no data blocks; report what ext4 users expect. */
	if (S_ISDIR(in->mode))
		st->st_size = DMAFS_BLOCK_SIZE;
	st->st_atim = in->atime;
	st->st_mtim = in->mtime;
	st->st_ctim = in->ctime;
}

uint8_t dmafs_dtype(uint32_t mode)
{
	return (mode & S_IFMT) >> 12;
}

struct dmafs_dirent *dmafs_dir_lookup(struct dmafs_inode *dir, const char *name)
{
	return g_hash_table_lookup(dir->dents, name);
}

int dmafs_dir_add(struct dmafs_inode *dir, const char *name, uint64_t ino,
		  uint8_t dtype, uint64_t cookie)
{
	struct dmafs_dirent *d;

	if (g_hash_table_contains(dir->dents, name))
		return -EEXIST;
	if (!cookie && dir->next_cookie >= DMAFS_COOKIE_MAX)
		return -ENOSPC;		/* 2^62 entries made in one directory */
	if (!cookie)
		cookie = dir->next_cookie++;
	else if (g_tree_lookup(dir->dents_by_cookie, &cookie))
		return -EEXIST;
	if (cookie >= dir->next_cookie)
		dir->next_cookie = cookie + 1;
	d = g_new0(struct dmafs_dirent, 1);
	d->name = g_strdup(name);
	d->ino = ino;
	d->cookie = cookie;
	d->dtype = dtype;
	g_hash_table_insert(dir->dents, d->name, d);
	g_tree_insert(dir->dents_by_cookie, &d->cookie, d);
	return 0;
}

int dmafs_dir_remove(struct dmafs_inode *dir, const char *name)
{
	struct dmafs_dirent *d = g_hash_table_lookup(dir->dents, name);

	if (!d)
		return -ENOENT;
	g_tree_remove(dir->dents_by_cookie, &d->cookie);
	g_hash_table_remove(dir->dents, name);
	return 0;
}

/* ---- extent maps ---- */

struct dmafs_extent *dmafs_extent_find(struct dmafs_inode *in, uint64_t fblk)
{
	GTreeNode *n = g_tree_upper_bound(in->extents, &fblk);
	GTreeNode *p = n ? g_tree_node_previous(n) :
			   g_tree_node_last(in->extents);
	struct dmafs_extent *e;

	if (p) {
		e = g_tree_node_value(p);
		if (fblk < e->fblk + e->len)
			return e;
	}
	return n ? g_tree_node_value(n) : NULL;
}

static void extent_insert(struct dmafs_inode *in, uint64_t fblk, uint64_t len,
			  uint64_t phys, uint32_t flags)
{
	struct dmafs_extent *e = g_new(struct dmafs_extent, 1);

	e->fblk = fblk;
	e->len = len;
	e->phys = phys;
	e->flags = flags;
	g_tree_insert(in->extents, &e->fblk, e);
	in->blocks += len;
}

/*
 * Unmap [fblk, fblk+len).  Blocks whose mapping is removed are reported to
 * cb, except those that keep the same physical block under (keep_phys):
 * a conversion of an unwritten extent to written re-maps in place.
 */
static void extent_unmap(struct dmafs_inode *in, uint64_t fblk, uint64_t len,
			 uint64_t keep_phys, dmafs_freed_fn cb, void *arg)
{
	uint64_t end = fblk + len;

	for (;;) {
		struct dmafs_extent *e = dmafs_extent_find(in, fblk);
		uint64_t s, t, ee;
		struct dmafs_extent old;

		if (!e || e->fblk >= end)
			break;
		old = *e;
		ee = old.fblk + old.len;
		s = MAX(old.fblk, fblk);
		t = MIN(ee, end);
		g_tree_remove(in->extents, &e->fblk);
		in->blocks -= old.len;
		if (old.fblk < s)
			extent_insert(in, old.fblk, s - old.fblk, old.phys,
				      old.flags);
		if (t < ee)
			extent_insert(in, t, ee - t, old.phys + (t - old.fblk),
				      old.flags);
		if (cb && !(keep_phys &&
			    old.phys + (s - old.fblk) ==
				    keep_phys + (s - fblk)))
			cb(arg, old.phys + (s - old.fblk), t - s);
		fblk = t;
		if (fblk >= end)
			break;
	}
}

void dmafs_extent_punch(struct dmafs_inode *in, uint64_t fblk, uint64_t len,
			dmafs_freed_fn cb, void *arg)
{
	in->map_gen++;
	extent_unmap(in, fblk, len, 0, cb, arg);
}

void dmafs_extent_set(struct dmafs_inode *in, uint64_t fblk, uint64_t len,
		      uint64_t phys, uint32_t flags, dmafs_freed_fn cb,
		      void *arg)
{
	struct dmafs_extent *prev, *next;

	in->map_gen++;
	extent_unmap(in, fblk, len, phys, cb, arg);
	/* Merge with neighbours that continue the same device range. */
	prev = fblk ? dmafs_extent_find(in, fblk - 1) : NULL;
	if (prev && prev->fblk + prev->len == fblk &&
	    prev->phys + prev->len == phys && prev->flags == flags) {
		prev->len += len;
		in->blocks += len;
	} else {
		extent_insert(in, fblk, len, phys, flags);
		prev = dmafs_extent_find(in, fblk);
	}
	next = dmafs_extent_find(in, prev->fblk + prev->len);
	if (next && next->fblk == prev->fblk + prev->len &&
	    next->phys == prev->phys + prev->len && next->flags == flags) {
		uint64_t nlen = next->len;

		g_tree_remove(in->extents, &next->fblk);
		prev->len += nlen;
	}
}

/* ---- xattrs ---- */

int dmafs_xattr_set(struct dmafs_inode *in, const char *name,
		    const void *value, size_t len)
{
	if (!in->xattrs)
		in->xattrs = g_hash_table_new_full(
			g_str_hash, g_str_equal, g_free,
			(GDestroyNotify)g_bytes_unref);
	g_hash_table_replace(in->xattrs, g_strdup(name),
			     g_bytes_new(value, len));
	return 0;
}

int dmafs_xattr_del(struct dmafs_inode *in, const char *name)
{
	if (!in->xattrs || !g_hash_table_remove(in->xattrs, name))
		return -ENODATA;
	return 0;
}

GBytes *dmafs_xattr_get(struct dmafs_inode *in, const char *name)
{
	return in->xattrs ? g_hash_table_lookup(in->xattrs, name) : NULL;
}

/* ---- replay ---- */

static int corrupt(char *why, size_t whylen, const char *what, uint64_t ino)
{
	snprintf(why, whylen, "%s (inode %llu)", what, (unsigned long long)ino);
	return -EUCLEAN;
}

static void ts_from_disk(struct timespec *ts,
			 const struct dmafs_disk_timespec *d)
{
	ts->tv_sec = (int64_t)le64(d->sec);
	ts->tv_nsec = le32(d->nsec) % 1000000000u;
}

static int apply_inode(struct dmafs_fs *fs, const struct dmafs_disk_rec_inode *r,
		       char *why, size_t whylen)
{
	uint64_t ino = le64(r->h.ino);
	uint32_t mode = le32(r->mode);
	struct dmafs_inode *in = dmafs_inode_get(fs, ino);

	if (!ino || ino >= DMAFS_INO_MAX)
		return corrupt(why, whylen, "bad inode number", ino);
	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
	case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		break;
	default:
		return corrupt(why, whylen, "bad inode type", ino);
	}
	if (in && (in->mode & S_IFMT) != (mode & S_IFMT))
		return corrupt(why, whylen, "inode changes type", ino);
	if (ino == DMAFS_ROOT_INO && !S_ISDIR(mode))
		return corrupt(why, whylen, "root is not a directory", ino);
	if (!in)
		in = dmafs_inode_new(fs, ino, mode);
	in->mode = mode;
	in->uid = le32(r->uid);
	in->gid = le32(r->gid);
	in->nlink = le32(r->nlink);
	in->rdev = le64(r->rdev);
	in->size = le64(r->size);
	in->iflags = le32(r->iflags);
	in->generation = le64(r->generation);
	ts_from_disk(&in->atime, &r->atime);
	ts_from_disk(&in->mtime, &r->mtime);
	ts_from_disk(&in->ctime, &r->ctime);
	ts_from_disk(&in->btime, &r->btime);
	return 0;
}

static bool phys_ok(struct dmafs_fs *fs, uint64_t phys, uint64_t len)
{
	uint64_t lo = le64(fs->sb.data_start);
	uint64_t hi = le64(fs->sb.total_blocks) - 1;

	return len && phys >= lo && phys < hi && len <= hi - phys;
}

int dmafs_meta_apply(struct dmafs_fs *fs, const struct dmafs_disk_rec *rec,
		     char *why, size_t whylen)
{
	uint64_t ino = le64(rec->ino);
	uint32_t type = le16(rec->type);
	struct dmafs_inode *in = NULL;

	if (type == DMAFS_REC_INODE)
		return apply_inode(fs, (const void *)rec, why, whylen);
	if (type == DMAFS_REC_META) {
		const struct dmafs_disk_rec_meta *m = (const void *)rec;

		if (le64(m->next_ino) > DMAFS_INO_MAX)
			return corrupt(why, whylen, "next inode number out of range",
				       le64(m->next_ino));
		if (le64(m->next_ino) > fs->next_ino)
			fs->next_ino = le64(m->next_ino);
		return 0;
	}
	in = dmafs_inode_get(fs, ino);
	if (!in)
		return corrupt(why, whylen, "record for a missing inode", ino);

	switch (type) {
	case DMAFS_REC_INODE_DEL:
		if (ino == DMAFS_ROOT_INO)
			return corrupt(why, whylen, "root deleted", ino);
		g_hash_table_remove(fs->dirty, in);
		g_hash_table_remove(fs->inodes, &ino);
		fs->ninodes--;
		dmafs_inode_free(in);
		return 0;
	case DMAFS_REC_DIRENT_ADD:
	case DMAFS_REC_DIRENT_DEL: {
		const struct dmafs_disk_rec_dirent *d = (const void *)rec;
		char name[DMAFS_NAME_MAX + 1];
		uint16_t nl = le16(d->name_len);

		if (!S_ISDIR(in->mode))
			return corrupt(why, whylen, "entry in a non-directory",
				       ino);
		memcpy(name, d + 1, nl);
		name[nl] = 0;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			return corrupt(why, whylen, "dot entry logged", ino);
		if (type == DMAFS_REC_DIRENT_DEL)
			return dmafs_dir_remove(in, name) ?
				corrupt(why, whylen, "removal of a missing entry",
					ino) : 0;
		if (!le64(d->child) || le64(d->cookie) < 3 ||
		    le64(d->cookie) >= DMAFS_COOKIE_MAX)
			return corrupt(why, whylen, "bad directory entry", ino);
		if (dmafs_dir_add(in, name, le64(d->child), d->dtype,
				  le64(d->cookie)))
			return corrupt(why, whylen, "duplicate directory entry",
				       ino);
		return 0;
	}
	case DMAFS_REC_EXTENT_SET:
	case DMAFS_REC_EXTENT_PUNCH: {
		const struct dmafs_disk_rec_extent *e = (const void *)rec;
		uint64_t f = le64(e->file_block), n = le64(e->nblocks);

		if (!S_ISREG(in->mode))
			return corrupt(why, whylen, "extent on a non-file", ino);
		if (!n || f + n < f || f + n > (UINT64_MAX >> DMAFS_BLOCK_SHIFT))
			return corrupt(why, whylen, "bad extent range", ino);
		if (type == DMAFS_REC_EXTENT_PUNCH) {
			dmafs_extent_punch(in, f, n, NULL, NULL);
			return 0;
		}
		if (!phys_ok(fs, le64(e->phys), n) ||
		    (le32(e->eflags) & ~DMAFS_EXTENT_UNWRITTEN))
			return corrupt(why, whylen, "extent outside the data area",
				       ino);
		dmafs_extent_set(in, f, n, le64(e->phys), le32(e->eflags),
				 NULL, NULL);
		return 0;
	}
	case DMAFS_REC_XATTR_SET:
	case DMAFS_REC_XATTR_DEL: {
		const struct dmafs_disk_rec_xattr *x = (const void *)rec;
		char name[DMAFS_XATTR_NAME_MAX + 1];
		uint16_t nl = le16(x->name_len);

		memcpy(name, x + 1, nl);
		name[nl] = 0;
		if (type == DMAFS_REC_XATTR_DEL)
			return dmafs_xattr_del(in, name) ?
				corrupt(why, whylen, "removal of a missing xattr",
					ino) : 0;
		return dmafs_xattr_set(in, name, (const char *)(x + 1) + nl,
				       le32(x->value_len));
	}
	case DMAFS_REC_SYMLINK: {
		size_t len = le32(rec->len) - sizeof(*rec);

		const char *target = (const char *)(rec + 1);

		if (!S_ISLNK(in->mode))
			return corrupt(why, whylen, "target for a non-symlink",
				       ino);
		if (!len || !target[0])
			return corrupt(why, whylen, "empty symlink", ino);
		g_free(in->symlink);
		in->symlink = g_strndup(target, len);
		return 0;
	}
	}
	return corrupt(why, whylen, "unknown record", ino);
}

struct load_ctx {
	struct dmafs_fs *fs;
	char *why;
	size_t whylen;
	int err;
};

int dmafs_meta_foreach_dirent(struct dmafs_fs *fs, dmafs_dirent_fn fn,
			      void *arg)
{
	GHashTableIter it, di;
	gpointer v, dv;
	int ret;

	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *dir = v;

		if (!S_ISDIR(dir->mode))
			continue;
		g_hash_table_iter_init(&di, dir->dents);
		while (g_hash_table_iter_next(&di, NULL, &dv)) {
			ret = fn(dir, dv, arg);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/* A directory entry must point at a live inode; a directory has one parent. */
static int check_dirent(struct dmafs_inode *dir, struct dmafs_dirent *d,
			void *arg)
{
	struct load_ctx *c = arg;

	struct dmafs_inode *child = dmafs_inode_get(c->fs, d->ino);

	if (!child || d->ino == DMAFS_ROOT_INO)
		return c->err = corrupt(c->why, c->whylen,
					"directory entry points to a missing inode",
					d->ino);
	d->dtype = dmafs_dtype(child->mode);
	if (S_ISDIR(child->mode)) {
		if (child->parent)
			return c->err = corrupt(c->why, c->whylen,
						"directory has two parents",
						d->ino);
		child->parent = dir->ino;
	}
	return 0;
}

static gboolean mark_extent(gpointer key, gpointer value, gpointer data)
{
	struct dmafs_extent *e = value;
	struct load_ctx *c = data;

	if (dmafs_alloc_mark_used(c->fs->alloc, e->phys, e->len)) {
		snprintf(c->why, c->whylen,
			 "blocks %llu+%llu are used twice (file offset block %llu)",
			 (unsigned long long)e->phys,
			 (unsigned long long)e->len,
			 (unsigned long long)e->fblk);
		c->err = -EUCLEAN;
		return TRUE;
	}
	return FALSE;
}

/*
 * Inodes with no links left when the last session ended were unlinked
 * while open (format.h, rule 3): nothing can reach them, so they go before
 * anything is checked or allocated.  A read-write mount logs their removal;
 * their blocks are free at once, which is safe because the removal is in
 * the first chunk any later allocation can be committed in.
 */
static void drop_orphans(struct dmafs_fs *fs)
{
	GPtrArray *orphans = g_ptr_array_new();
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v))
		if (!((struct dmafs_inode *)v)->nlink &&
		    ((struct dmafs_inode *)v)->ino != DMAFS_ROOT_INO)
			g_ptr_array_add(orphans, v);
	for (guint i = 0; i < orphans->len; i++) {
		struct dmafs_inode *in = orphans->pdata[i];

		if (!fs->ro && !fs->report)
			dmafs_log_inode_del(fs, in->ino);
		g_hash_table_remove(fs->dirty, in);
		g_hash_table_remove(fs->inodes, &in->ino);
		fs->ninodes--;
		dmafs_inode_free(in);
	}
	if (orphans->len)
		g_message("removed %u orphaned inodes", orphans->len);
	fs->orphans = orphans->len;
	g_ptr_array_free(orphans, TRUE);
}

int dmafs_meta_finish_load(struct dmafs_fs *fs, char *why, size_t whylen)
{
	struct load_ctx c = { fs, why, whylen, 0 };
	struct dmafs_inode *root = dmafs_inode_get(fs, DMAFS_ROOT_INO);
	GHashTableIter it;
	gpointer v;

	if (!root || !S_ISDIR(root->mode))
		return corrupt(why, whylen, "no root directory", DMAFS_ROOT_INO);
	drop_orphans(fs);
	/* Entries point at live inodes; parents of directories, for "..". */
	if (dmafs_meta_foreach_dirent(fs, check_dirent, &c))
		return c.err;
	root->parent = DMAFS_ROOT_INO;
	/* Free space: everything not held by a file or the checkpoint. */
	for (guint i = 0; i < fs->ckpt_ext->len; i += 2) {
		uint64_t b = g_array_index(fs->ckpt_ext, uint64_t, i);
		uint64_t n = g_array_index(fs->ckpt_ext, uint64_t, i + 1);

		if (dmafs_alloc_mark_used(fs->alloc, b, n)) {
			snprintf(why, whylen,
				 "checkpoint blocks %llu+%llu overlap",
				 (unsigned long long)b, (unsigned long long)n);
			return -EUCLEAN;
		}
	}
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *in = v;

		if (in->extents)
			g_tree_foreach(in->extents, mark_extent, &c);
		if (c.err)
			return c.err;
		if (S_ISLNK(in->mode) && !in->symlink)
			return corrupt(why, whylen, "symlink without target",
				       in->ino);
	}
	return 0;
}
