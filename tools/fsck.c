// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fsck.dmafs: check and repair a dmafs filesystem.
 *
 * Phases, in the spirit of xfs_repair and e2fsck:
 *   1. superblocks: both copies, which one is newest, the error flag;
 *   2. metadata: the checkpoint and the log, loaded by the same code the
 *      daemon mounts with, every bad record reported and skipped;
 *   3. namespace: entries that point nowhere, directories with two names,
 *      inodes no directory reaches (to /lost+found), orphans, link counts;
 *   4. space: extents claimed twice, checkpoint accounting;
 *   5. repair: the repaired state is written as a new checkpoint, the same
 *      crash-safe way the daemon writes one, so an interrupted repair
 *      leaves the old filesystem as it was.
 *
 * Exit codes as e2fsck: 0 clean, 1 errors fixed, 4 errors left, 8
 * operational error.  Single-threaded.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dmafs.h"

#define EXIT_CLEAN	0
#define EXIT_FIXED	1
#define EXIT_ERRORS	4
#define EXIT_OPERATIONAL 8

enum fsck_mode { MODE_CHECK, MODE_PREEN, MODE_YES };

struct fsck {
	struct dmafs_fs fs;
	const char *device;
	enum fsck_mode mode;
	bool verbose;
	unsigned int errors;	/* problems found */
	unsigned int notes;	/* benign findings (orphans, stale backup) */
	unsigned int unfixable;	/* problems repair cannot mend */
	bool changed;		/* the in-memory state differs from the disk */
};

static bool repairing(const struct fsck *f)
{
	return f->mode != MODE_CHECK;
}

static void problem(struct fsck *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A real inconsistency: reported, and fixed when repairing. */
static void problem(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("  ");
	vprintf(fmt, ap);
	printf(repairing(f) ? " (fixed)\n" : "\n");
	va_end(ap);
	f->errors++;
	if (repairing(f))
		f->changed = true;
}

static void unfixable(struct fsck *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A problem that even repair leaves as it is. */
static void unfixable(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("  ");
	vprintf(fmt, ap);
	printf(" (not fixed)\n");
	va_end(ap);
	f->errors++;
	f->unfixable++;
}

static void note(struct fsck *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Something a crash leaves behind and the mount cleans up by itself. */
static void note(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("  ");
	vprintf(fmt, ap);
	printf(repairing(f) ? " (cleaned up)\n" : " (the mount cleans this up)\n");
	va_end(ap);
	f->notes++;
	if (repairing(f))
		f->changed = true;
}

static struct fsck *the_fsck;

static void report_hook(struct dmafs_fs *fs, const char *what)
{
	problem(the_fsck, "bad metadata record dropped: %s", what);
}

/* ---- phase 1 ---- */

static int check_supers(struct fsck *f)
{
	struct dmafs_fs *fs = &f->fs;
	uint64_t dev_blocks = dmafs_dev_info(fs->dev)->size / DMAFS_BLOCK_SIZE;
	struct dmafs_disk_super p, b;
	char pwhy[DMAFS_WHY_MAX] = "", bwhy[DMAFS_WHY_MAX] = "";
	int pret, bret;
	uint64_t bblk;

	printf("Phase 1: superblocks\n");
	if (dev_blocks < DMAFS_MIN_BLOCKS) {
		fprintf(stderr, "fsck.dmafs: %s: too small for a dmafs filesystem\n",
			f->device);
		return -ENODATA;
	}
	pret = dmafs_log_read_super(fs, 0, dev_blocks, &p, pwhy, sizeof(pwhy));
	bblk = pret ? dev_blocks - 1 : le64(p.total_blocks) - 1;
	bret = dmafs_log_read_super(fs, bblk, dev_blocks, &b, bwhy,
				    sizeof(bwhy));
	if (pret && bret) {
		if (pret == -ENODATA && bret == -ENODATA) {
			fprintf(stderr, "fsck.dmafs: %s: not a dmafs filesystem\n",
				f->device);
			return -ENODATA;
		}
		fprintf(stderr,
			"fsck.dmafs: %s: no valid superblock (primary: %s; backup: %s); cannot repair\n",
			f->device, pwhy, bwhy);
		return -EUCLEAN;
	}
	if (pret == -EOPNOTSUPP || bret == -EOPNOTSUPP) {
		fprintf(stderr, "fsck.dmafs: %s: %s\n", f->device,
			pret == -EOPNOTSUPP ? pwhy : bwhy);
		return -EOPNOTSUPP;
	}
	if (pret)
		problem(f, "primary superblock is damaged (%s); the backup is good",
			pwhy);
	else if (bret)
		problem(f, "backup superblock at block %llu is damaged (%s)",
			(unsigned long long)bblk, bwhy);
	else if (le64(p.generation) != le64(b.generation))
		note(f, "the superblock copies differ in generation (%llu, %llu): an update was interrupted",
		     (unsigned long long)le64(p.generation),
		     (unsigned long long)le64(b.generation));
	if (le32((pret ? b : p).flags) & DMAFS_SB_NEEDS_FSCK)
		problem(f, "the filesystem is marked as having errors");
	return 0;
}

/* ---- phase 3 ---- */

struct ns_ctx {
	struct fsck *f;
	struct dmafs_inode *lf;	/* where lost inodes go, once made */
	GHashTable *refs;	/* ino -> number of entries naming it */
	GHashTable *parent;	/* directory ino -> its parent's ino */
	GHashTable *seen;	/* inodes reachable from the root */
};

static uint64_t *key(uint64_t ino)
{
	uint64_t *k = g_new(uint64_t, 1);

	*k = ino;
	return k;
}

static guint count_of(GHashTable *h, uint64_t ino)
{
	return GPOINTER_TO_UINT(g_hash_table_lookup(h, &ino));
}

static void count_inc(GHashTable *h, uint64_t ino)
{
	g_hash_table_replace(h, key(ino),
			     GUINT_TO_POINTER(count_of(h, ino) + 1));
}

/* Drop entries that point nowhere; give every directory one parent. */
static void check_entries(struct ns_ctx *c)
{
	struct dmafs_fs *fs = &c->f->fs;
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *dir = v;
		GPtrArray *drop;
		GHashTableIter di;
		gpointer dv;

		if (!S_ISDIR(dir->mode))
			continue;
		drop = g_ptr_array_new_with_free_func(g_free);
		g_hash_table_iter_init(&di, dir->dents);
		while (g_hash_table_iter_next(&di, NULL, &dv)) {
			struct dmafs_dirent *d = dv;
			struct dmafs_inode *child = dmafs_inode_get(fs, d->ino);

			if (!child || d->ino == DMAFS_ROOT_INO) {
				problem(c->f,
					"entry '%s' in directory %llu points to %s inode %llu",
					d->name, (unsigned long long)dir->ino,
					child ? "the root" : "missing",
					(unsigned long long)d->ino);
				g_ptr_array_add(drop, g_strdup(d->name));
				continue;
			}
			if (S_ISDIR(child->mode)) {
				if (g_hash_table_contains(c->parent, &d->ino)) {
					problem(c->f,
						"directory %llu has a second name '%s' in directory %llu",
						(unsigned long long)d->ino,
						d->name,
						(unsigned long long)dir->ino);
					g_ptr_array_add(drop, g_strdup(d->name));
					continue;
				}
				g_hash_table_insert(c->parent, key(d->ino),
						    GSIZE_TO_POINTER(dir->ino));
			}
			if (d->dtype != dmafs_dtype(child->mode)) {
				problem(c->f,
					"entry '%s' in directory %llu has the wrong file type",
					d->name, (unsigned long long)dir->ino);
				d->dtype = dmafs_dtype(child->mode);
			}
		}
		for (guint i = 0; i < drop->len; i++)
			dmafs_dir_remove(dir, drop->pdata[i]);
		g_ptr_array_free(drop, TRUE);
	}
}

static void walk(struct ns_ctx *c, uint64_t ino)
{
	GQueue q = G_QUEUE_INIT;

	if (g_hash_table_contains(c->seen, &ino))
		return;
	g_hash_table_add(c->seen, key(ino));
	g_queue_push_tail(&q, GSIZE_TO_POINTER(ino));
	while (!g_queue_is_empty(&q)) {
		uint64_t d = GPOINTER_TO_SIZE(g_queue_pop_head(&q));
		struct dmafs_inode *dir = dmafs_inode_get(&c->f->fs, d);
		GHashTableIter it;
		gpointer v;

		if (!dir || !S_ISDIR(dir->mode))
			continue;
		g_hash_table_iter_init(&it, dir->dents);
		while (g_hash_table_iter_next(&it, NULL, &v)) {
			struct dmafs_dirent *e = v;

			if (g_hash_table_contains(c->seen, &e->ino))
				continue;
			g_hash_table_add(c->seen, key(e->ino));
			g_queue_push_tail(&q, GSIZE_TO_POINTER(e->ino));
		}
	}
}

/*
 * The directory reattached inodes go to: /lost+found, or, when that name is
 * taken by something else, the first free "lost+found.N".  NULL if no inode
 * number is left to make one.
 */
static struct dmafs_inode *lost_found(struct ns_ctx *c)
{
	struct dmafs_fs *fs = &c->f->fs;
	struct dmafs_inode *root = dmafs_inode_get(fs, DMAFS_ROOT_INO);
	struct dmafs_inode *lf;
	struct timespec now;
	char name[32] = "lost+found";
	int n = 0;

	if (c->lf)
		return c->lf;
	for (;;) {
		struct dmafs_dirent *d = dmafs_dir_lookup(root, name);

		if (!d)
			break;
		lf = dmafs_inode_get(fs, d->ino);
		if (lf && S_ISDIR(lf->mode) &&
		    g_hash_table_contains(c->seen, &lf->ino))
			return c->lf = lf;
		g_snprintf(name, sizeof(name), "lost+found.%d", ++n);
	}
	if (fs->next_ino >= DMAFS_INO_MAX || root->next_cookie >= DMAFS_COOKIE_MAX)
		return NULL;
	lf = dmafs_inode_new(fs, fs->next_ino, S_IFDIR | 0700);
	lf->nlink = 2;
	lf->parent = DMAFS_ROOT_INO;
	dmafs_now(&now);
	lf->atime = lf->mtime = lf->ctime = lf->btime = now;
	dmafs_dir_add(root, name, lf->ino, dmafs_dtype(lf->mode), 0);
	root->nlink++;
	g_hash_table_add(c->seen, key(lf->ino));
	return c->lf = lf;
}

/* Give a lost inode a name in lost+found; false if that is impossible. */
static bool reattach(struct ns_ctx *c, struct dmafs_inode *in)
{
	struct dmafs_inode *lf = lost_found(c);
	char name[48];
	int n = 0;

	if (!lf || lf->next_cookie >= DMAFS_COOKIE_MAX)
		return false;
	g_snprintf(name, sizeof(name), "#%llu", (unsigned long long)in->ino);
	while (dmafs_dir_lookup(lf, name))
		g_snprintf(name, sizeof(name), "#%llu.%d",
			   (unsigned long long)in->ino, ++n);
	dmafs_dir_add(lf, name, in->ino, dmafs_dtype(in->mode), 0);
	if (S_ISDIR(in->mode))
		g_hash_table_replace(c->parent, key(in->ino),
				     GSIZE_TO_POINTER(lf->ino));
	walk(c, in->ino);
	return true;
}

/* Unlink a directory from a parent that is itself lost (a cycle). */
static void detach_dir(struct ns_ctx *c, struct dmafs_inode *in)
{
	struct dmafs_fs *fs = &c->f->fs;
	gpointer p = g_hash_table_lookup(c->parent, &in->ino);
	struct dmafs_inode *par = p ? dmafs_inode_get(fs, GPOINTER_TO_SIZE(p)) :
				      NULL;
	GHashTableIter it;
	gpointer v;

	if (!par)
		return;
	g_hash_table_iter_init(&it, par->dents);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_dirent *d = v;

		if (d->ino == in->ino) {
			g_tree_remove(par->dents_by_cookie, &d->cookie);
			g_hash_table_iter_remove(&it);
			break;
		}
	}
}

static void check_reachable(struct ns_ctx *c)
{
	struct dmafs_fs *fs = &c->f->fs;
	GPtrArray *lost = g_ptr_array_new();
	GHashTableIter it;
	gpointer v;

	walk(c, DMAFS_ROOT_INO);
	/* Directories first: reattaching one brings its subtree back. */
	for (int pass = 0; pass < 2; pass++) {
		g_hash_table_iter_init(&it, fs->inodes);
		while (g_hash_table_iter_next(&it, NULL, &v)) {
			struct dmafs_inode *in = v;

			if (in->ino == DMAFS_ROOT_INO ||
			    g_hash_table_contains(c->seen, &in->ino) ||
			    (pass == 0) != !!S_ISDIR(in->mode))
				continue;
			g_ptr_array_add(lost, in);
		}
		for (guint i = 0; i < lost->len; i++) {
			struct dmafs_inode *in = lost->pdata[i];

			if (g_hash_table_contains(c->seen, &in->ino))
				continue;	/* came back with a parent */
			if (!S_ISDIR(in->mode) && !in->nlink) {
				note(c->f, "orphan inode %llu (unlinked while open) is freed",
				     (unsigned long long)in->ino);
				continue;
			}
			if (S_ISDIR(in->mode))
				detach_dir(c, in);
			if (reattach(c, in)) {
				problem(c->f,
					"inode %llu is not reachable from the root; moved to %s",
					(unsigned long long)in->ino,
					"lost+found");
			} else {
				unfixable(c->f,
					  "inode %llu is not reachable from the root, and no directory can be made to hold it",
					  (unsigned long long)in->ino);
			}
		}
		g_ptr_array_set_size(lost, 0);
	}
	g_ptr_array_free(lost, TRUE);
}

/* Free the orphans (unreachable, no links): what the mount would do. */
static void drop_orphans(struct ns_ctx *c)
{
	struct dmafs_fs *fs = &c->f->fs;
	GPtrArray *gone = g_ptr_array_new();
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *in = v;

		/* Only orphans: what could not be reattached stays. */
		if (!g_hash_table_contains(c->seen, &in->ino) &&
		    !S_ISDIR(in->mode) && !in->nlink)
			g_ptr_array_add(gone, v);
	}
	for (guint i = 0; i < gone->len; i++) {
		struct dmafs_inode *in = gone->pdata[i];

		g_hash_table_remove(fs->inodes, &in->ino);
		fs->ninodes--;
		dmafs_inode_free(in);
	}
	g_ptr_array_free(gone, TRUE);
}

struct count_ctx {
	struct dmafs_fs *fs;
	GHashTable *refs;	/* ino -> entries naming it */
	GHashTable *subdirs;	/* directory ino -> its subdirectories */
};

static int count_links(struct dmafs_inode *dir, struct dmafs_dirent *d,
		       void *arg)
{
	struct count_ctx *cc = arg;
	struct dmafs_inode *child = dmafs_inode_get(cc->fs, d->ino);

	count_inc(cc->refs, d->ino);
	if (child && S_ISDIR(child->mode)) {
		count_inc(cc->subdirs, dir->ino);
		child->parent = dir->ino;
	}
	return 0;
}

static void check_links(struct ns_ctx *c)
{
	struct dmafs_fs *fs = &c->f->fs;
	GHashTable *subdirs = g_hash_table_new_full(g_int64_hash,
						    g_int64_equal, g_free,
						    NULL);
	GHashTableIter it;
	gpointer v;

	struct count_ctx cc = { fs, c->refs, subdirs };

	g_hash_table_remove_all(c->refs);
	dmafs_meta_foreach_dirent(fs, count_links, &cc);
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *in = v;
		uint32_t want;

		want = S_ISDIR(in->mode) ? 2 + count_of(subdirs, in->ino) :
					   count_of(c->refs, in->ino);
		if (!g_hash_table_contains(c->seen, &in->ino)) {
			/* Not reached, could not be reattached: kept, not an
			 * orphan the mount would drop. */
			if (!in->nlink)
				in->nlink = S_ISDIR(in->mode) ? 2 : 1;
		} else if (in->nlink != want) {
			problem(c->f, "inode %llu has link count %u, should be %u",
				(unsigned long long)in->ino, in->nlink, want);
			in->nlink = want;
		}
		if (S_ISLNK(in->mode) && !in->symlink) {
			problem(c->f, "symlink %llu has no target",
				(unsigned long long)in->ino);
			in->symlink = g_strdup("(lost)");
		}
		if (in->ino >= fs->next_ino)
			fs->next_ino = in->ino + 1;
	}
	g_hash_table_destroy(subdirs);
}

static void check_namespace(struct fsck *f)
{
	struct ns_ctx c = {
		.f = f,
		.refs = g_hash_table_new_full(g_int64_hash, g_int64_equal,
					      g_free, NULL),
		.parent = g_hash_table_new_full(g_int64_hash, g_int64_equal,
						g_free, NULL),
		.seen = g_hash_table_new_full(g_int64_hash, g_int64_equal,
					      g_free, NULL),
	};
	struct dmafs_inode *root = dmafs_inode_get(&f->fs, DMAFS_ROOT_INO);

	printf("Phase 3: namespace\n");
	if (!root) {
		problem(f, "the root directory is missing; a new one is made");
		root = dmafs_inode_new(&f->fs, DMAFS_ROOT_INO, S_IFDIR | 0755);
		root->nlink = 2;
		dmafs_now(&root->ctime);
		root->atime = root->mtime = root->btime = root->ctime;
	}
	check_entries(&c);
	check_reachable(&c);
	drop_orphans(&c);
	check_links(&c);
	root->parent = DMAFS_ROOT_INO;
	g_hash_table_destroy(c.refs);
	g_hash_table_destroy(c.parent);
	g_hash_table_destroy(c.seen);
}

/* ---- phase 4 ---- */

struct space_ctx {
	struct fsck *f;
	struct dmafs_inode *in;
	GArray *dup;		/* struct dmafs_extent claimed twice */
};

static gboolean mark_extent(gpointer k, gpointer v, gpointer data)
{
	struct space_ctx *c = data;
	struct dmafs_extent *e = v;

	if (dmafs_alloc_mark_used(c->f->fs.alloc, e->phys, e->len)) {
		problem(c->f,
			"inode %llu: blocks %llu-%llu (file block %llu) are also used by another file; the range becomes a hole",
			(unsigned long long)c->in->ino,
			(unsigned long long)e->phys,
			(unsigned long long)(e->phys + e->len - 1),
			(unsigned long long)e->fblk);
		g_array_append_val(c->dup, *e);
	}
	return FALSE;
}

static void check_space(struct fsck *f)
{
	struct dmafs_fs *fs = &f->fs;
	struct space_ctx c = { f, NULL,
			       g_array_new(FALSE, FALSE,
					   sizeof(struct dmafs_extent)) };
	uint64_t total = 0;
	GHashTableIter it;
	gpointer v;

	printf("Phase 4: space\n");
	for (guint i = 0; i < fs->ckpt_ext->len; i += 2) {
		uint64_t b = g_array_index(fs->ckpt_ext, uint64_t, i);
		uint64_t n = g_array_index(fs->ckpt_ext, uint64_t, i + 1);

		total += n;
		if (dmafs_alloc_mark_used(fs->alloc, b, n))
			problem(f, "checkpoint chunks overlap at block %llu",
				(unsigned long long)b);
	}
	if (total != le64(fs->sb.ckpt_blocks))
		problem(f, "superblock counts %llu checkpoint blocks, the checkpoint has %llu",
			(unsigned long long)le64(fs->sb.ckpt_blocks),
			(unsigned long long)total);
	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		c.in = v;
		if (!c.in->extents)
			continue;
		g_array_set_size(c.dup, 0);
		g_tree_foreach(c.in->extents, mark_extent, &c);
		for (guint i = 0; i < c.dup->len; i++) {
			struct dmafs_extent *e = &g_array_index(
				c.dup, struct dmafs_extent, i);

			dmafs_extent_punch(c.in, e->fblk, e->len, NULL, NULL);
		}
	}
	g_array_free(c.dup, TRUE);
}

/* ---- main ---- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: fsck.dmafs [-n|-p|-y] [-f] [-v] DEVICE|IMAGE\n"
		"  -n  check only, change nothing (the default)\n"
		"  -p  repair automatically (preen)\n"
		"  -y  repair, answering yes to everything\n"
		"  -f  check even if the filesystem looks clean (always done)\n"
		"  -v  verbose\n"
		"exit status: 0 clean, 1 errors fixed, 4 errors left, 8 operational error\n");
}

static void summary(struct fsck *f)
{
	struct dmafs_fs *fs = &f->fs;
	uint64_t files = 0, dirs = 0, data = le64(fs->sb.total_blocks) -
					    le64(fs->sb.data_start) - 1;
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		if (S_ISDIR(((struct dmafs_inode *)v)->mode))
			dirs++;
		else
			files++;
	}
	printf("%s: %llu inodes (%llu directories), %llu/%llu blocks used, "
	       "checkpoint %u chunks, %llu log chunks replayed\n",
	       f->device, (unsigned long long)(files + dirs),
	       (unsigned long long)dirs,
	       (unsigned long long)(data - dmafs_alloc_free_blocks(fs->alloc)),
	       (unsigned long long)data, fs->ckpt_chunks,
	       (unsigned long long)fs->log_chunks);
}

int main(int argc, char **argv)
{
	struct fsck f = { .mode = MODE_CHECK };
	char why[DMAFS_WHY_MAX] = "";
	unsigned int dflags;
	int opt, ret, status;

	while ((opt = getopt(argc, argv, "npyfvV")) != -1) {
		switch (opt) {
		case 'n':
			f.mode = MODE_CHECK;
			break;
		case 'p':
			f.mode = MODE_PREEN;
			break;
		case 'y':
			f.mode = MODE_YES;
			break;
		case 'f':
			break;
		case 'v':
			f.verbose = true;
			break;
		case 'V':
			printf("fsck.dmafs %s\n", DMAFS_VERSION);
			return EXIT_CLEAN;
		default:
			usage(stderr);
			return EXIT_OPERATIONAL;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return EXIT_OPERATIONAL;
	}
	f.device = argv[optind];
	the_fsck = &f;
	dmafs_fs_init(&f.fs, f.device, !repairing(&f));
	f.fs.report = report_hook;

	dflags = DMAFS_DEV_EXCL | (repairing(&f) ? 0 : DMAFS_DEV_RDONLY);
	ret = dmafs_dev_open(f.device, dflags, &f.fs.dev);
	if (ret) {
		fprintf(stderr, "fsck.dmafs: %s: %s\n", f.device,
			ret == -EBUSY ? "in use (mounted?); unmount it first" :
					g_strerror(-ret));
		status = EXIT_OPERATIONAL;
		goto out;
	}
	ret = check_supers(&f);
	if (ret) {
		status = ret == -EUCLEAN ? EXIT_ERRORS : EXIT_OPERATIONAL;
		goto out;
	}
	printf("Phase 2: checkpoint and log\n");
	ret = dmafs_log_open(&f.fs, why, sizeof(why));
	if (!ret)
		ret = dmafs_log_load_state(&f.fs, why, sizeof(why));
	if (ret) {
		fprintf(stderr,
			"fsck.dmafs: %s: cannot load the metadata: %s; fsck cannot repair this and changed nothing\n",
			f.device, why[0] ? why : g_strerror(-ret));
		status = ret == -EUCLEAN ? EXIT_ERRORS : EXIT_OPERATIONAL;
		goto out;
	}
	check_namespace(&f);
	check_space(&f);

	status = f.errors ? (repairing(&f) && !f.unfixable ? EXIT_FIXED :
						       EXIT_ERRORS) :
			    EXIT_CLEAN;
	if (repairing(&f) && f.changed) {
		printf("Phase 5: writing the repaired metadata\n");
		f.fs.sb.flags = cpu32(le32(f.fs.sb.flags) & ~DMAFS_SB_NEEDS_FSCK);
		ret = dmafs_log_checkpoint(&f.fs);
		if (ret) {
			fprintf(stderr,
				"fsck.dmafs: %s: writing the repaired metadata failed: %s\n",
				f.device, g_strerror(-ret));
			status = EXIT_ERRORS;
			goto out;
		}
	}
	summary(&f);
	if (f.errors)
		printf("%s: %u problem%s %s\n", f.device, f.errors,
		       f.errors == 1 ? "" : "s",
		       !repairing(&f) ? "found; run fsck.dmafs -y to repair" :
		       f.unfixable ? "found, some left unfixed" : "fixed");
	else
		printf("%s: clean\n", f.device);
out:
	dmafs_fs_destroy(&f.fs);
	return status;
}
