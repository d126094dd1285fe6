// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Free-space allocator: hands out contiguous extents of 4 KiB blocks over
 * [start, end) and takes them back, immediately (put) or once the log
 * chunk that frees them is durable (free_deferred + release).  Nothing here
 * is on disk: the state is rebuilt at every mount by marking each used
 * extent, so the structures are built for millions of extents and every
 * operation is O(log n) in the number of free or pending extents.
 *
 * Data structures (all glib, all owned by struct dmafs_alloc):
 *
 *   free_by_start  free extents, keyed by start block.  They never overlap
 *                  and never touch: a free range is always one maximal
 *                  extent, so "is [b, b+n) free" is one lookup and freeing
 *                  merges with at most two neighbours.
 *   free_by_size   the same extent objects keyed by (len, start), for best
 *                  fit (smallest len >= want) and largest.  Only allocation
 *                  needs it, so it is built on demand: see "Mount" below.
 *   pend_by_start  deferred frees not yet released, keyed by start.  They
 *                  never overlap each other or a free extent, which is what
 *                  lets a double free be detected instead of corrupting the
 *                  free trees.  They may touch (they merge when released).
 *   pend_by_seq    seq -> group of the pending extents freed in that chunk,
 *                  so release(s) takes the oldest groups in O(k log n).
 *
 * The by_start trees own their extents (value destroy function) and store
 * the start block itself as the key, not a pointer to it: a descent then
 * compares without touching the extents, one cache miss a level instead of
 * two, which made the mount-time marking below a third faster.  That needs
 * 64-bit pointers (asserted).
 *
 * Mount: the caller marks every used extent, in no particular order, before
 * it allocates anything.  Each of those calls is one descent of
 * free_by_start (plus an insert along the same, by then cached, path), but
 * keeping free_by_size current would add three descents at unrelated
 * places; with a million extents every descent is a chain of cache misses
 * and that made mount four times slower.  So free_by_size starts out
 * invalid, mark_used leaves it so, and the first call that needs it (get,
 * check) builds it in one sorted pass, about as costly as a few hundred
 * thousand random descents: mark_used stays O(log n), get is amortized
 * O(log n), and from then on every call keeps the index current.
 *
 * Trees are searched only with g_tree_search() and a callback that records
 * the best candidate along the search path (the floor, ceiling and maximum
 * of a BST all lie on it).  g_tree_lower_bound() would be tidier but needs
 * glib 2.68, and meson.build accepts 2.66.
 *
 * Locking: one GMutex, a->lock, guards every field of struct dmafs_alloc
 * and every extent and group reachable from it.  Each public function takes
 * it for its whole duration, so every call is atomic with respect to the
 * others; static helpers expect it held.  g_warning() may run an
 * application log handler that calls back in (to print free space, say),
 * so warnings are issued only after unlocking.
 */
#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "dmafs-alloc"
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "alloc.h"

/* Block numbers are stored in tree keys (see above). */
G_STATIC_ASSERT(sizeof(gpointer) >= sizeof(uint64_t));
#define BLK_KEY(blk)	((gpointer)(uintptr_t)(blk))
#define KEY_BLK(key)	((uint64_t)(uintptr_t)(key))

/* A free or pending extent; seq is meaningful for pending ones only. */
struct dmafs_alloc_ext {
	uint64_t start;			/* equals its key in the by_start tree */
	uint64_t len;
	uint64_t seq;
};

/* All pending extents freed by one log chunk. */
struct dmafs_alloc_group {
	uint64_t seq;			/* its key in pend_by_seq (by address) */
	GPtrArray *exts;		/* struct dmafs_alloc_ext * */
};

struct dmafs_alloc {
	GMutex lock;			/* guards everything below */
	uint64_t start, end;		/* managed range [start, end) */
	uint64_t avail;			/* blocks in free_by_start */
	uint64_t pending;		/* blocks in pend_by_start */
	GTree *free_by_start;		/* start -> ext (owned) */
	GTree *free_by_size;		/* ext -> ext, by (len, start) */
	bool by_size_valid;		/* free_by_size mirrors free_by_start */
	GTree *pend_by_start;		/* start -> ext (owned) */
	GTree *pend_by_seq;		/* &group->seq -> group (owned) */
};

static inline uint64_t dmafs_alloc_ext_end(const struct dmafs_alloc_ext *e)
{
	return e->start + e->len;
}

static gint dmafs_alloc_cmp_blk(gconstpointer pa, gconstpointer pb,
				gpointer unused)
{
	uint64_t a = KEY_BLK(pa), b = KEY_BLK(pb);

	if (a != b)
		return a < b ? -1 : 1;
	return 0;
}

static gint dmafs_alloc_cmp_size(gconstpointer pa, gconstpointer pb,
				 gpointer unused)
{
	const struct dmafs_alloc_ext *a = pa, *b = pb;

	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	return 0;
}

static gint dmafs_alloc_cmp_seq(gconstpointer pa, gconstpointer pb,
				gpointer unused)
{
	uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;

	if (a != b)
		return a < b ? -1 : 1;
	return 0;
}

/*
 * Search helpers.  A g_tree_search() callback returns < 0 to descend
 * towards smaller keys, > 0 towards larger ones and 0 to stop; ours stop
 * only on an exact hit and remember the best candidate seen on the way.
 */
struct dmafs_alloc_probe {
	uint64_t blk;			/* floor: the block looked for */
	bool found;
	uint64_t best_blk;		/* floor: its result */
	struct dmafs_alloc_ext key;	/* size searches: the key */
	struct dmafs_alloc_ext *best;	/* size searches: the result */
};

/* Floor by start: the greatest key <= blk. */
static gint dmafs_alloc_floor_cb(gconstpointer node_key, gconstpointer data)
{
	struct dmafs_alloc_probe *p = (struct dmafs_alloc_probe *)data;
	uint64_t k = KEY_BLK(node_key);

	if (k > p->blk)
		return -1;
	p->found = true;
	p->best_blk = k;
	return k == p->blk ? 0 : 1;
}

/* Ceiling by (len, start): the smallest extent >= key in size order. */
static gint dmafs_alloc_ceil_size_cb(gconstpointer node_key,
				     gconstpointer data)
{
	struct dmafs_alloc_probe *p = (struct dmafs_alloc_probe *)data;
	gint c = dmafs_alloc_cmp_size(node_key, &p->key, NULL);

	if (c < 0)
		return 1;
	p->best = (struct dmafs_alloc_ext *)node_key;
	return c == 0 ? 0 : -1;
}

/* Maximum: always descend right. */
static gint dmafs_alloc_max_cb(gconstpointer node_key, gconstpointer data)
{
	struct dmafs_alloc_probe *p = (struct dmafs_alloc_probe *)data;

	p->best = (struct dmafs_alloc_ext *)node_key;
	return 1;
}

/* The extent of a by_start tree with the greatest start <= blk. */
static struct dmafs_alloc_ext *dmafs_alloc_floor(GTree *t, uint64_t blk)
{
	struct dmafs_alloc_probe p = { .blk = blk };

	g_tree_search(t, dmafs_alloc_floor_cb, &p);
	if (!p.found)
		return NULL;
	/*
	 * The callback sees keys, not values.  Looking the key up again
	 * walks the path just walked, which is in cache.
	 */
	return g_tree_lookup(t, BLK_KEY(p.best_blk));
}

/* The extent of a by_start tree that overlaps [blk, blk+n), if any. */
static struct dmafs_alloc_ext *dmafs_alloc_overlap(GTree *t, uint64_t blk,
						   uint64_t n)
{
	/*
	 * Extents are disjoint and sorted, so if any overlaps the range, the
	 * last one starting inside or before it does.
	 */
	struct dmafs_alloc_ext *e = dmafs_alloc_floor(t, blk + n - 1);

	if (e && dmafs_alloc_ext_end(e) > blk)
		return e;
	return NULL;
}

/* Move e to a new start in its by_start tree t (g_tree keys are fixed). */
static void dmafs_alloc_rekey(GTree *t, struct dmafs_alloc_ext *e,
			      uint64_t start)
{
	g_tree_steal(t, BLK_KEY(e->start));
	e->start = start;
	g_tree_insert(t, BLK_KEY(start), e);
}

/*
 * The size index.  An extent must be taken out before its len or start
 * changes (the tree could no longer find it) and put back after.
 */
static void dmafs_alloc_size_del(struct dmafs_alloc *a,
				 struct dmafs_alloc_ext *e)
{
	if (a->by_size_valid)
		g_tree_remove(a->free_by_size, e);
}

static void dmafs_alloc_size_add(struct dmafs_alloc *a,
				 struct dmafs_alloc_ext *e)
{
	if (a->by_size_valid)
		g_tree_insert(a->free_by_size, e, e);
}

struct dmafs_alloc_size_ent {
	uint64_t len, start;
	struct dmafs_alloc_ext *e;
};

static gboolean dmafs_alloc_collect_cb(gpointer key, gpointer value,
				       gpointer data)
{
	struct dmafs_alloc_ext *e = value;
	struct dmafs_alloc_size_ent ent = { e->len, e->start, e };

	g_array_append_val((GArray *)data, ent);
	return FALSE;
}

static gint dmafs_alloc_cmp_size_ent(gconstpointer pa, gconstpointer pb)
{
	const struct dmafs_alloc_size_ent *a = pa, *b = pb;

	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	if (a->start != b->start)
		return a->start < b->start ? -1 : 1;
	return 0;
}

/*
 * Build free_by_size if it is not current (see "Mount").  The keys are
 * copied next to the pointers and sorted there, where comparisons touch
 * consecutive memory; inserting in order then only walks the tree's
 * rightmost path, which stays in cache.
 */
static void dmafs_alloc_index(struct dmafs_alloc *a)
{
	GArray *arr;
	guint i;

	if (a->by_size_valid)
		return;
	arr = g_array_sized_new(FALSE, FALSE,
				sizeof(struct dmafs_alloc_size_ent),
				g_tree_nnodes(a->free_by_start));
	g_tree_foreach(a->free_by_start, dmafs_alloc_collect_cb, arr);
	g_array_sort(arr, dmafs_alloc_cmp_size_ent);
	for (i = 0; i < arr->len; i++) {
		struct dmafs_alloc_ext *e =
			g_array_index(arr, struct dmafs_alloc_size_ent, i).e;

		g_tree_insert(a->free_by_size, e, e);
	}
	g_array_free(arr, TRUE);
	a->by_size_valid = true;
}

static void dmafs_alloc_ext_add(struct dmafs_alloc *a, uint64_t start,
				uint64_t len)
{
	struct dmafs_alloc_ext *e = g_new(struct dmafs_alloc_ext, 1);

	e->start = start;
	e->len = len;
	e->seq = 0;
	g_tree_insert(a->free_by_start, BLK_KEY(start), e);
	dmafs_alloc_size_add(a, e);
}

static void dmafs_alloc_ext_del(struct dmafs_alloc *a,
				struct dmafs_alloc_ext *e)
{
	dmafs_alloc_size_del(a, e);
	g_tree_remove(a->free_by_start, BLK_KEY(e->start));	/* frees e */
}

/*
 * Take [blk, blk+n) out of free extent e, which contains it.  What is left
 * keeps e's object where possible, so the common cases (carving from an
 * edge) cost no allocation.
 */
static void dmafs_alloc_carve(struct dmafs_alloc *a, struct dmafs_alloc_ext *e,
			      uint64_t blk, uint64_t n)
{
	uint64_t left = blk - e->start;
	uint64_t right = dmafs_alloc_ext_end(e) - (blk + n);

	a->avail -= n;
	if (!left && !right) {
		dmafs_alloc_ext_del(a, e);
		return;
	}
	dmafs_alloc_size_del(a, e);
	if (!left) {
		dmafs_alloc_rekey(a->free_by_start, e, blk + n);
		e->len = right;
	} else {
		e->len = left;
	}
	dmafs_alloc_size_add(a, e);
	if (left && right)
		dmafs_alloc_ext_add(a, blk + n, right);
}

/*
 * Make [blk, blk+n) free, merging with the free extents that end at blk
 * and start at blk+n.  The caller has checked that no block of the range
 * is free or pending.
 */
static void dmafs_alloc_insert_free(struct dmafs_alloc *a, uint64_t blk,
				    uint64_t n)
{
	struct dmafs_alloc_ext *prev = NULL, *next;

	if (blk > a->start) {
		prev = dmafs_alloc_floor(a->free_by_start, blk - 1);
		if (prev && dmafs_alloc_ext_end(prev) != blk)
			prev = NULL;
	}
	next = g_tree_lookup(a->free_by_start, BLK_KEY(blk + n));
	a->avail += n;

	if (prev) {
		dmafs_alloc_size_del(a, prev);
		prev->len += n;
		if (next) {
			prev->len += next->len;
			dmafs_alloc_ext_del(a, next);
		}
		dmafs_alloc_size_add(a, prev);
	} else if (next) {
		dmafs_alloc_size_del(a, next);
		dmafs_alloc_rekey(a->free_by_start, next, blk);
		next->len += n;
		dmafs_alloc_size_add(a, next);
	} else {
		dmafs_alloc_ext_add(a, blk, n);
	}
}

static void dmafs_alloc_group_free(gpointer data)
{
	struct dmafs_alloc_group *g = data;

	g_ptr_array_free(g->exts, TRUE);
	g_free(g);
}

struct dmafs_alloc *dmafs_alloc_new(uint64_t start, uint64_t end)
{
	struct dmafs_alloc *a;

	/* A caller bug, not a runtime condition: no allocator for it. */
	if (start > end)
		return NULL;

	a = g_new0(struct dmafs_alloc, 1);
	g_mutex_init(&a->lock);
	a->start = start;
	a->end = end;
	a->free_by_start = g_tree_new_full(dmafs_alloc_cmp_blk, NULL,
					   NULL, g_free);
	a->free_by_size = g_tree_new_full(dmafs_alloc_cmp_size, NULL,
					  NULL, NULL);
	a->pend_by_start = g_tree_new_full(dmafs_alloc_cmp_blk, NULL,
					   NULL, g_free);
	a->pend_by_seq = g_tree_new_full(dmafs_alloc_cmp_seq, NULL,
					 NULL, dmafs_alloc_group_free);
	if (end > start)
		dmafs_alloc_insert_free(a, start, end - start);
	return a;
}

void dmafs_alloc_destroy(struct dmafs_alloc *a)
{
	if (!a)
		return;
	/* The non-owning trees go first so nothing points at freed extents. */
	g_tree_destroy(a->free_by_size);
	g_tree_destroy(a->pend_by_seq);
	g_tree_destroy(a->free_by_start);
	g_tree_destroy(a->pend_by_start);
	g_mutex_clear(&a->lock);
	g_free(a);
}

/* Is [blk, blk+n) a non-empty range inside [a->start, a->end)? */
static bool dmafs_alloc_in_range(const struct dmafs_alloc *a, uint64_t blk,
				 uint64_t n)
{
	return n && blk >= a->start && blk < a->end && n <= a->end - blk;
}

/*
 * n == 0 is -EINVAL rather than a silent success: a zero-length extent in
 * the metadata being loaded is itself corruption the caller should see.
 */
int dmafs_alloc_mark_used(struct dmafs_alloc *a, uint64_t blk, uint64_t n)
{
	struct dmafs_alloc_ext *e;
	int ret = 0;

	if (!n)
		return -EINVAL;
	if (!dmafs_alloc_in_range(a, blk, n))
		return -ERANGE;

	g_mutex_lock(&a->lock);
	/* Free extents are maximal, so an all-free range lies in just one. */
	e = dmafs_alloc_floor(a->free_by_start, blk);
	if (!e || dmafs_alloc_ext_end(e) < blk + n)
		ret = -EUCLEAN;
	else
		dmafs_alloc_carve(a, e, blk, n);
	g_mutex_unlock(&a->lock);
	return ret;
}

int dmafs_alloc_get(struct dmafs_alloc *a, uint64_t want, uint64_t min,
		    uint64_t goal, uint64_t *blk, uint64_t *got)
{
	struct dmafs_alloc_probe p = { .key.len = want, .key.start = 0 };
	struct dmafs_alloc_ext *e;
	uint64_t b, n;

	if (!want || min > want)
		return -EINVAL;

	g_mutex_lock(&a->lock);

	/*
	 * Goal first, so that a growing file stays contiguous, but only if
	 * the run from goal satisfies min: the caller's minimum is a hard
	 * limit, contiguity only a preference.
	 */
	if (goal >= a->start && goal < a->end) {
		e = dmafs_alloc_floor(a->free_by_start, goal);
		if (e && dmafs_alloc_ext_end(e) > goal &&
		    dmafs_alloc_ext_end(e) - goal >= min) {
			b = goal;
			n = MIN(dmafs_alloc_ext_end(e) - goal, want);
			goto take;
		}
	}

	/* Best fit keeps the large extents whole for large requests. */
	dmafs_alloc_index(a);
	g_tree_search(a->free_by_size, dmafs_alloc_ceil_size_cb, &p);
	e = p.best;
	if (e) {
		b = e->start;
		n = want;
		goto take;
	}

	/* Nothing holds want: the largest, if it holds min. */
	g_tree_search(a->free_by_size, dmafs_alloc_max_cb, &p);
	e = p.best;
	if (e && e->len >= min) {
		b = e->start;
		n = e->len;		/* < want, or best fit had found it */
		goto take;
	}

	g_mutex_unlock(&a->lock);
	return -ENOSPC;

take:
	dmafs_alloc_carve(a, e, b, n);
	g_mutex_unlock(&a->lock);
	*blk = b;
	*got = n;
	return 0;
}

/*
 * Why [blk, blk+n) may not be freed, or NULL if it may: it is outside the
 * managed range, or some block of it is already free or pending (a double
 * free), *at being the first such block.  Freeing such a range would
 * corrupt the trees, and freeing only its used part would hide which owner
 * was wrong, so the whole range is refused.
 */
static const char *dmafs_alloc_free_check(struct dmafs_alloc *a, uint64_t blk,
					  uint64_t n, uint64_t *at)
{
	struct dmafs_alloc_ext *e;

	if (!dmafs_alloc_in_range(a, blk, n))
		return "out of range";
	e = dmafs_alloc_overlap(a->free_by_start, blk, n);
	if (e) {
		*at = MAX(e->start, blk);
		return "double free: already free";
	}
	e = dmafs_alloc_overlap(a->pend_by_start, blk, n);
	if (e) {
		*at = MAX(e->start, blk);
		return "double free: already pending release";
	}
	return NULL;
}

static void dmafs_alloc_warn_free(const char *fn, const char *why, uint64_t blk,
				  uint64_t n, uint64_t at)
{
	g_warning("%s: ignoring free of blocks [%" PRIu64 ", +%" PRIu64
		  "): %s (block %" PRIu64 ")", fn, blk, n, why, at);
}

void dmafs_alloc_put(struct dmafs_alloc *a, uint64_t blk, uint64_t n)
{
	const char *why;
	uint64_t at = blk;

	if (!n)
		return;
	g_mutex_lock(&a->lock);
	why = dmafs_alloc_free_check(a, blk, n, &at);
	if (!why)
		dmafs_alloc_insert_free(a, blk, n);
	g_mutex_unlock(&a->lock);
	if (why)
		dmafs_alloc_warn_free(__func__, why, blk, n, at);
}

void dmafs_alloc_free_deferred(struct dmafs_alloc *a, uint64_t blk, uint64_t n,
			       uint64_t seq)
{
	struct dmafs_alloc_group *g;
	struct dmafs_alloc_ext *e;
	const char *why;
	uint64_t at = blk;

	if (!n)
		return;
	g_mutex_lock(&a->lock);
	why = dmafs_alloc_free_check(a, blk, n, &at);
	if (why)
		goto out;

	e = g_new(struct dmafs_alloc_ext, 1);
	e->start = blk;
	e->len = n;
	e->seq = seq;
	g_tree_insert(a->pend_by_start, BLK_KEY(blk), e);

	g = g_tree_lookup(a->pend_by_seq, &seq);
	if (!g) {
		g = g_new(struct dmafs_alloc_group, 1);
		g->seq = seq;
		g->exts = g_ptr_array_new();
		g_tree_insert(a->pend_by_seq, &g->seq, g);
	}
	g_ptr_array_add(g->exts, e);
	a->pending += n;
out:
	g_mutex_unlock(&a->lock);
	if (why)
		dmafs_alloc_warn_free(__func__, why, blk, n, at);
}

/* g_tree_foreach: collect the groups with seq <= limit, oldest first. */
struct dmafs_alloc_release_ctx {
	uint64_t limit;
	GPtrArray *groups;
};

static gboolean dmafs_alloc_release_cb(gpointer key, gpointer value,
				       gpointer data)
{
	struct dmafs_alloc_release_ctx *c = data;
	struct dmafs_alloc_group *g = value;

	if (g->seq > c->limit)
		return TRUE;		/* stop: the rest are newer */
	g_ptr_array_add(c->groups, g);
	return FALSE;
}

void dmafs_alloc_release(struct dmafs_alloc *a, uint64_t seq)
{
	struct dmafs_alloc_release_ctx c = { .limit = seq };
	guint i, j;

	g_mutex_lock(&a->lock);
	/* A tree may not change under g_tree_foreach: collect, then move. */
	c.groups = g_ptr_array_new();
	g_tree_foreach(a->pend_by_seq, dmafs_alloc_release_cb, &c);
	for (i = 0; i < c.groups->len; i++) {
		struct dmafs_alloc_group *g = g_ptr_array_index(c.groups, i);

		for (j = 0; j < g->exts->len; j++) {
			struct dmafs_alloc_ext *e = g_ptr_array_index(g->exts, j);
			uint64_t blk = e->start, n = e->len;

			g_tree_remove(a->pend_by_start, BLK_KEY(blk)); /* frees e */
			a->pending -= n;
			dmafs_alloc_insert_free(a, blk, n);
		}
		g_tree_remove(a->pend_by_seq, &g->seq);	/* frees g */
	}
	g_ptr_array_free(c.groups, TRUE);
	g_mutex_unlock(&a->lock);
}

uint64_t dmafs_alloc_free_blocks(struct dmafs_alloc *a)
{
	uint64_t n;

	g_mutex_lock(&a->lock);
	n = a->avail + a->pending;
	g_mutex_unlock(&a->lock);
	return n;
}

uint64_t dmafs_alloc_avail_blocks(struct dmafs_alloc *a)
{
	uint64_t n;

	g_mutex_lock(&a->lock);
	n = a->avail;
	g_mutex_unlock(&a->lock);
	return n;
}

/*
 * Consistency check: walks every tree, O(n log n), for tests and fsck, not
 * for the I/O path.  Builds the size index first if need be, so that it is
 * checked too.
 */
struct dmafs_alloc_check_ctx {
	struct dmafs_alloc *a;
	bool pending;			/* walking pend_by_start */
	bool have_prev;
	uint64_t prev_end;		/* end of the previous extent, by start */
	uint64_t blocks;
	uint64_t count;
	char why[160];
};

static gboolean dmafs_alloc_check_fail(struct dmafs_alloc_check_ctx *c,
				       const struct dmafs_alloc_ext *e,
				       const char *what)
{
	g_snprintf(c->why, sizeof(c->why), "%s extent [%" PRIu64 ", +%" PRIu64
		   "): %s", c->pending ? "pending" : "free", e->start, e->len,
		   what);
	return TRUE;
}

static gboolean dmafs_alloc_check_cb(gpointer key, gpointer value,
				     gpointer data)
{
	struct dmafs_alloc_check_ctx *c = data;
	struct dmafs_alloc_ext *e = value;
	struct dmafs_alloc *a = c->a;

	if (KEY_BLK(key) != e->start)
		return dmafs_alloc_check_fail(c, e, "key is not its start");
	if (!dmafs_alloc_in_range(a, e->start, e->len))
		return dmafs_alloc_check_fail(c, e, "empty or out of range");
	if (c->have_prev && e->start < c->prev_end)
		return dmafs_alloc_check_fail(c, e, "overlaps the previous one");
	if (c->pending) {
		if (dmafs_alloc_overlap(a->free_by_start, e->start, e->len))
			return dmafs_alloc_check_fail(c, e, "overlaps free space");
		if (!g_tree_lookup(a->pend_by_seq, &e->seq))
			return dmafs_alloc_check_fail(c, e, "its seq has no group");
	} else {
		/* Free extents must be maximal; pending ones may touch. */
		if (c->have_prev && e->start == c->prev_end)
			return dmafs_alloc_check_fail(c, e,
						      "not merged with previous");
		if (g_tree_lookup(a->free_by_size, e) != e)
			return dmafs_alloc_check_fail(c, e, "not in size index");
	}
	c->prev_end = dmafs_alloc_ext_end(e);
	c->have_prev = true;
	c->blocks += e->len;
	c->count++;
	return FALSE;
}

static gboolean dmafs_alloc_check_group_cb(gpointer key, gpointer value,
					   gpointer data)
{
	struct dmafs_alloc_check_ctx *c = data;
	struct dmafs_alloc_group *g = value;
	guint i;

	if (key != &g->seq || !g->exts->len) {
		g_snprintf(c->why, sizeof(c->why),
			   "pending group %" PRIu64 " is malformed", g->seq);
		return TRUE;
	}
	for (i = 0; i < g->exts->len; i++) {
		struct dmafs_alloc_ext *e = g_ptr_array_index(g->exts, i);

		if (e->seq != g->seq ||
		    g_tree_lookup(c->a->pend_by_start, BLK_KEY(e->start)) != e)
			return dmafs_alloc_check_fail(c, e,
					"not in pending tree or wrong group");
	}
	c->count += g->exts->len;
	return FALSE;
}

int dmafs_alloc_check(struct dmafs_alloc *a)
{
	struct dmafs_alloc_check_ctx c = { .a = a };
	int ret = -EUCLEAN;

	g_mutex_lock(&a->lock);

	dmafs_alloc_index(a);
	g_tree_foreach(a->free_by_start, dmafs_alloc_check_cb, &c);
	if (c.why[0])
		goto out;
	if (c.blocks != a->avail) {
		g_snprintf(c.why, sizeof(c.why), "free extents hold %" PRIu64
			   " blocks, counter says %" PRIu64, c.blocks, a->avail);
		goto out;
	}
	/* Each free extent is in the size index; equal counts: no others. */
	if (c.count != (uint64_t)g_tree_nnodes(a->free_by_size)) {
		g_snprintf(c.why, sizeof(c.why), "size index has %d extents, "
			   "start tree %" PRIu64, g_tree_nnodes(a->free_by_size),
			   c.count);
		goto out;
	}

	c = (struct dmafs_alloc_check_ctx){ .a = a, .pending = true };
	g_tree_foreach(a->pend_by_start, dmafs_alloc_check_cb, &c);
	if (c.why[0])
		goto out;
	if (c.blocks != a->pending) {
		g_snprintf(c.why, sizeof(c.why), "pending extents hold %" PRIu64
			   " blocks, counter says %" PRIu64, c.blocks, a->pending);
		goto out;
	}
	/* The groups hold exactly the pending extents, each once. */
	c.count = 0;
	g_tree_foreach(a->pend_by_seq, dmafs_alloc_check_group_cb, &c);
	if (c.why[0])
		goto out;
	if (c.count != (uint64_t)g_tree_nnodes(a->pend_by_start)) {
		g_snprintf(c.why, sizeof(c.why), "groups hold %" PRIu64
			   " extents, pending tree %d", c.count,
			   g_tree_nnodes(a->pend_by_start));
		goto out;
	}
	ret = 0;
out:
	g_mutex_unlock(&a->lock);
	if (ret)
		g_warning("dmafs_alloc_check: %s", c.why);
	return ret;
}
