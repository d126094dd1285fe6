// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Helpers shared by the fuzz targets: a sane superblock, the invariants
 * every loaded in-memory state must satisfy whatever the records said, and
 * a field-by-field comparison of two states (checkpoint round trips).
 */
#include <string.h>

#include "fuzz.h"

const uint8_t fuzz_uuid[16] = {
	0x64, 0x6d, 0x61, 0x66, 0x73, 0x2d, 0x66, 0x75,
	0x7a, 0x7a, 0x2d, 0x75, 0x75, 0x69, 0x64, 0x21,
};

static void log_handler(const gchar *domain, GLogLevelFlags level,
			const gchar *message, gpointer unused)
{
	/* Messages and warnings about damaged input are expected; stay quiet. */
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		fprintf(stderr, "%s: %s\n", domain ? domain : "glib", message);
}

void fuzz_init_glib(void)
{
	g_log_set_default_handler(log_handler, NULL);
	/* A glib critical is an API misuse (g_return_if_fail): a bug. */
	g_log_set_fatal_mask("GLib", G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
}

void fuzz_super_init(struct dmafs_disk_super *sb, uint64_t total_blocks)
{
	struct dmafs_layout l;

	FUZZ_ASSERT(!dmafs_layout_compute(total_blocks, &l),
		    "layout of %llu blocks", (unsigned long long)total_blocks);
	memset(sb, 0, sizeof(*sb));
	sb->magic = cpu64(DMAFS_MAGIC);
	sb->version = cpu32(DMAFS_FORMAT_VERSION);
	sb->block_size = cpu32(DMAFS_BLOCK_SIZE);
	sb->lba_size = cpu32(512);
	memcpy(sb->uuid, fuzz_uuid, 16);
	sb->total_blocks = cpu64(l.total_blocks);
	sb->log_start = cpu64(l.log_start);
	sb->log_blocks = cpu64(l.log_blocks);
	sb->data_start = cpu64(l.data_start);
	sb->generation = cpu64(1);
	sb->ckpt_block = cpu64(l.data_start);
	sb->ckpt_seq = cpu64(1);
	sb->ckpt_blocks = cpu64(1);
	sb->log_head_seq = cpu64(2);
	sb->next_ino = cpu64(2);
	dmafs_super_seal(sb);
}

void fuzz_fs_setup(struct dmafs_fs *fs, const struct dmafs_disk_super *sb)
{
	fs->sb = *sb;
	fs->next_ino = le64(sb->next_ino);
	fs->alloc = dmafs_alloc_new(le64(sb->data_start),
				    le64(sb->total_blocks) - 1);
}

void fuzz_check_why(int ret, const char *why, const char *what)
{
	if (!ret)
		return;
	FUZZ_ASSERT(why[0], "%s failed (%d) without saying why", what, ret);
	FUZZ_ASSERT(!strstr(why, "(null)"), "%s: unclear reason '%s'", what,
		    why);
}

struct ext_walk {
	struct dmafs_inode *in;
	uint64_t end, blocks;
	uint64_t lo, hi;	/* data area */
};

static gboolean check_extent(gpointer k, gpointer v, gpointer data)
{
	struct ext_walk *w = data;
	struct dmafs_extent *e = v;
	uint64_t ino = w->in->ino;

	FUZZ_ASSERT(k == &e->fblk, "inode %llu: extent keyed wrongly",
		    (unsigned long long)ino);
	FUZZ_ASSERT(e->len, "inode %llu: empty extent at %llu",
		    (unsigned long long)ino, (unsigned long long)e->fblk);
	FUZZ_ASSERT(e->fblk >= w->end,
		    "inode %llu: extents overlap at file block %llu",
		    (unsigned long long)ino, (unsigned long long)e->fblk);
	FUZZ_ASSERT(e->fblk + e->len > e->fblk,
		    "inode %llu: extent wraps", (unsigned long long)ino);
	FUZZ_ASSERT(e->phys >= w->lo && e->phys < w->hi &&
		    e->len <= w->hi - e->phys,
		    "inode %llu: extent %llu+%llu outside the data area",
		    (unsigned long long)ino, (unsigned long long)e->phys,
		    (unsigned long long)e->len);
	FUZZ_ASSERT(!(e->flags & ~DMAFS_EXTENT_UNWRITTEN),
		    "inode %llu: extent flags 0x%x", (unsigned long long)ino,
		    e->flags);
	w->end = e->fblk + e->len;
	w->blocks += e->len;
	return FALSE;
}

struct dent_walk {
	struct dmafs_inode *dir;
	guint n;
};

static gboolean check_cookie(gpointer k, gpointer v, gpointer data)
{
	struct dent_walk *w = data;
	struct dmafs_dirent *d = v;

	FUZZ_ASSERT(k == &d->cookie, "dir %llu: cookie keyed wrongly",
		    (unsigned long long)w->dir->ino);
	FUZZ_ASSERT(g_hash_table_lookup(w->dir->dents, d->name) == d,
		    "dir %llu: entry '%s' by cookie but not by name",
		    (unsigned long long)w->dir->ino, d->name);
	/*
	 * Cookies 1 and 2 belong to "." and ".." in readdir, but replay
	 * accepts them (reported separately): only check the range.
	 */
	FUZZ_ASSERT(d->cookie >= 1 && d->cookie < w->dir->next_cookie,
		    "dir %llu: cookie %llu (next %llu)",
		    (unsigned long long)w->dir->ino,
		    (unsigned long long)d->cookie,
		    (unsigned long long)w->dir->next_cookie);
	w->n++;
	return FALSE;
}

void fuzz_check_state(struct dmafs_fs *fs, const char *what)
{
	GHashTableIter it;
	gpointer k, v;

	FUZZ_ASSERT(fs->ninodes == g_hash_table_size(fs->inodes),
		    "%s: ninodes %llu but %u inodes", what,
		    (unsigned long long)fs->ninodes,
		    g_hash_table_size(fs->inodes));
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, &k, &v)) {
		struct dmafs_inode *in = v;

		FUZZ_ASSERT(k == &in->ino, "%s: inode %llu keyed wrongly",
			    what, (unsigned long long)in->ino);
		FUZZ_ASSERT(in->ino && in->ino < fs->next_ino,
			    "%s: inode %llu but next_ino %llu", what,
			    (unsigned long long)in->ino,
			    (unsigned long long)fs->next_ino);
		FUZZ_ASSERT(!!in->dents == !!S_ISDIR(in->mode) &&
			    !!in->dents_by_cookie == !!S_ISDIR(in->mode),
			    "%s: inode %llu: directory tables vs mode 0%o",
			    what, (unsigned long long)in->ino, in->mode);
		FUZZ_ASSERT(!!in->extents == !!S_ISREG(in->mode),
			    "%s: inode %llu: extent map vs mode 0%o", what,
			    (unsigned long long)in->ino, in->mode);
		FUZZ_ASSERT(!in->symlink || S_ISLNK(in->mode),
			    "%s: inode %llu: target on a non-symlink", what,
			    (unsigned long long)in->ino);
		if (in->extents) {
			struct ext_walk w = {
				in, 0, 0, le64(fs->sb.data_start),
				le64(fs->sb.total_blocks) - 1
			};

			g_tree_foreach(in->extents, check_extent, &w);
			FUZZ_ASSERT(w.blocks == in->blocks,
				    "%s: inode %llu: blocks %llu, extents hold %llu",
				    what, (unsigned long long)in->ino,
				    (unsigned long long)in->blocks,
				    (unsigned long long)w.blocks);
		}
		if (in->dents) {
			struct dent_walk w = { in, 0 };
			GHashTableIter di;
			gpointer dk, dv;

			g_tree_foreach(in->dents_by_cookie, check_cookie, &w);
			FUZZ_ASSERT(w.n == g_hash_table_size(in->dents),
				    "%s: dir %llu: %u entries by cookie, %u by name",
				    what, (unsigned long long)in->ino, w.n,
				    g_hash_table_size(in->dents));
			g_hash_table_iter_init(&di, in->dents);
			while (g_hash_table_iter_next(&di, &dk, &dv)) {
				struct dmafs_dirent *d = dv;

				FUZZ_ASSERT(dk == d->name && d->name[0] &&
					    !strchr(d->name, '/') &&
					    strcmp(d->name, ".") &&
					    strcmp(d->name, "..") &&
					    strlen(d->name) <= DMAFS_NAME_MAX,
					    "%s: dir %llu: bad entry name '%s'",
					    what, (unsigned long long)in->ino,
					    d->name);
				FUZZ_ASSERT(d->ino,
					    "%s: dir %llu: entry '%s' to inode 0",
					    what, (unsigned long long)in->ino,
					    d->name);
			}
		}
	}
}

/* ---- comparison ---- */

static bool ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

struct ext_cmp {
	GTree *other;
	uint64_t ino;
	const char *what;
};

static gboolean cmp_extent(gpointer k, gpointer v, gpointer data)
{
	struct ext_cmp *c = data;
	struct dmafs_extent *e = v, *o = g_tree_lookup(c->other, k);

	FUZZ_ASSERT(o && o->len == e->len && o->phys == e->phys &&
		    o->flags == e->flags,
		    "%s: inode %llu: extent at file block %llu differs", c->what,
		    (unsigned long long)c->ino, (unsigned long long)e->fblk);
	return FALSE;
}

static void cmp_inode(struct dmafs_inode *a, struct dmafs_inode *b,
		      const char *what)
{
	unsigned long long ino = a->ino;

	FUZZ_ASSERT(a->mode == b->mode && a->uid == b->uid &&
		    a->gid == b->gid && a->nlink == b->nlink &&
		    a->rdev == b->rdev && a->size == b->size &&
		    a->iflags == b->iflags && a->generation == b->generation,
		    "%s: inode %llu: attributes differ (mode 0%o/0%o nlink %u/%u size %llu/%llu)",
		    what, ino, a->mode, b->mode, a->nlink, b->nlink,
		    (unsigned long long)a->size, (unsigned long long)b->size);
	FUZZ_ASSERT(ts_eq(&a->atime, &b->atime) &&
		    ts_eq(&a->mtime, &b->mtime) &&
		    ts_eq(&a->ctime, &b->ctime) &&
		    ts_eq(&a->btime, &b->btime),
		    "%s: inode %llu: times differ", what, ino);
	FUZZ_ASSERT(!a->symlink == !b->symlink &&
		    (!a->symlink || !strcmp(a->symlink, b->symlink)),
		    "%s: inode %llu: symlink target differs ('%s' / '%s')",
		    what, ino, a->symlink ? a->symlink : "(none)",
		    b->symlink ? b->symlink : "(none)");
	FUZZ_ASSERT((a->xattrs ? g_hash_table_size(a->xattrs) : 0) ==
		    (b->xattrs ? g_hash_table_size(b->xattrs) : 0),
		    "%s: inode %llu: xattr count differs", what, ino);
	if (a->xattrs) {
		GHashTableIter it;
		gpointer k, v;

		g_hash_table_iter_init(&it, a->xattrs);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			GBytes *o = b->xattrs ?
				g_hash_table_lookup(b->xattrs, k) : NULL;

			FUZZ_ASSERT(o && g_bytes_equal(o, v),
				    "%s: inode %llu: xattr '%s' differs", what,
				    ino, (const char *)k);
		}
	}
	FUZZ_ASSERT(a->blocks == b->blocks &&
		    (a->extents ? g_tree_nnodes(a->extents) : 0) ==
			    (b->extents ? g_tree_nnodes(b->extents) : 0),
		    "%s: inode %llu: extent maps differ (%llu / %llu blocks)",
		    what, ino, (unsigned long long)a->blocks,
		    (unsigned long long)b->blocks);
	if (a->extents) {
		struct ext_cmp c = { b->extents, a->ino, what };

		g_tree_foreach(a->extents, cmp_extent, &c);
	}
	if (a->dents) {
		GHashTableIter it;
		gpointer v;

		FUZZ_ASSERT(g_hash_table_size(a->dents) ==
			    g_hash_table_size(b->dents),
			    "%s: dir %llu: entry count differs (%u / %u)", what,
			    ino, g_hash_table_size(a->dents),
			    g_hash_table_size(b->dents));
		FUZZ_ASSERT(a->parent == b->parent,
			    "%s: dir %llu: parent %llu / %llu", what, ino,
			    (unsigned long long)a->parent,
			    (unsigned long long)b->parent);
		g_hash_table_iter_init(&it, a->dents);
		while (g_hash_table_iter_next(&it, NULL, &v)) {
			struct dmafs_dirent *d = v;
			struct dmafs_dirent *o = dmafs_dir_lookup(b, d->name);

			FUZZ_ASSERT(o && o->ino == d->ino &&
				    o->cookie == d->cookie &&
				    o->dtype == d->dtype,
				    "%s: dir %llu: entry '%s' differs", what, ino,
				    d->name);
		}
	}
}

void fuzz_compare_state(struct dmafs_fs *a, struct dmafs_fs *b,
			const char *what)
{
	GHashTableIter it;
	gpointer v;

	FUZZ_ASSERT(g_hash_table_size(a->inodes) == g_hash_table_size(b->inodes),
		    "%s: %u inodes became %u", what,
		    g_hash_table_size(a->inodes), g_hash_table_size(b->inodes));
	FUZZ_ASSERT(a->next_ino == b->next_ino,
		    "%s: next inode %llu became %llu", what,
		    (unsigned long long)a->next_ino,
		    (unsigned long long)b->next_ino);
	g_hash_table_iter_init(&it, a->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *in = v;
		struct dmafs_inode *o = dmafs_inode_get(b, in->ino);

		FUZZ_ASSERT(o, "%s: inode %llu is lost", what,
			    (unsigned long long)in->ino);
		cmp_inode(in, o, what);
	}
}
