// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit test for the map the daemon pushes to the kernel extension
 * (fs/kext.c, dmafs_kext_build_map): directed cases, then a randomized
 * check against a per-block model of the file.
 *
 * What a map must be (include/dmafs/fuse_dmafs.h and kext.c): byte
 * offsets and lengths, all multiples of 4096; sorted by file offset, not
 * overlapping; only written extents, only below the size rounded up to the
 * block; neighbours that continue each other in the file and on the device
 * merged into one.
 *
 * Standalone: exit 0 when everything passes, 1 otherwise, with each failure
 * printed.  TEST_KEXT_SEED=<n> reruns the randomized part with another seed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "dmafs.h"
#include "dmafs/fuse_dmafs.h"

#define BS DMAFS_BLOCK_SIZE

static int failures;

#define FAIL(fmt, ...)							\
	do {								\
		fprintf(stderr, "FAIL %s:%d: " fmt "\n", __FILE__,	\
			__LINE__, ##__VA_ARGS__);			\
		failures++;						\
	} while (0)

#define CHECK_EQ(x, y)							\
	do {								\
		uint64_t x_ = (uint64_t)(x), y_ = (uint64_t)(y);	\
		if (x_ != y_)						\
			FAIL("%s is %" PRIu64 ", expected %s = %" PRIu64, \
			     #x, x_, #y, y_);				\
	} while (0)

static struct dmafs_fs fs;

static struct dmafs_inode *new_file(void)
{
	static uint64_t ino = 100;

	return dmafs_inode_new(&fs, ino++, S_IFREG | 0644);
}

/* Insert an extent as is, without the merging dmafs_extent_set does. */
static void raw_extent(struct dmafs_inode *in, uint64_t fblk, uint64_t len,
		       uint64_t phys, uint32_t flags)
{
	struct dmafs_extent *e = g_new(struct dmafs_extent, 1);

	*e = (struct dmafs_extent){ fblk, len, phys, flags };
	g_tree_insert(in->extents, &e->fblk, e);
}

static GArray *build(struct dmafs_inode *in, uint64_t size)
{
	GArray *out = g_array_new(FALSE, FALSE,
				  sizeof(struct fuse_dmafs_extent));

	dmafs_kext_build_map(in, size, out);
	return out;
}

#define X(out, i) g_array_index(out, struct fuse_dmafs_extent, i)

static void expect(GArray *out, guint i, uint64_t off, uint64_t len,
		   uint64_t dev)
{
	if (i >= out->len) {
		FAIL("extent %u missing (%u in the map)", i, out->len);
		return;
	}
	CHECK_EQ(X(out, i).offset, off);
	CHECK_EQ(X(out, i).length, len);
	CHECK_EQ(X(out, i).dev_offset, dev);
}

static void test_directed(void)
{
	struct dmafs_inode *in;
	GArray *m;

	/* An empty file, and a file that is all hole. */
	in = new_file();
	m = build(in, 0);
	CHECK_EQ(m->len, 0);
	g_array_unref(m);
	m = build(in, 1 << 20);
	CHECK_EQ(m->len, 0);
	g_array_unref(m);

	/* One extent, bytes; the last partial block is in the map. */
	dmafs_extent_set(in, 0, 4, 100, 0, NULL, NULL);
	m = build(in, 3 * BS + 1);
	CHECK_EQ(m->len, 1);
	expect(m, 0, 0, 4 * BS, 100 * BS);
	g_array_unref(m);
	/* Trimmed at the size rounded up: blocks past EOF are left out. */
	m = build(in, 2 * BS);
	CHECK_EQ(m->len, 1);
	expect(m, 0, 0, 2 * BS, 100 * BS);
	g_array_unref(m);
	m = build(in, 1);
	CHECK_EQ(m->len, 1);
	expect(m, 0, 0, BS, 100 * BS);
	g_array_unref(m);
	/* Preallocated past a size of 0 (fallocate KEEP_SIZE). */
	m = build(in, 0);
	CHECK_EQ(m->len, 0);
	g_array_unref(m);

	/* Unwritten extents are holes for the kernel. */
	in = new_file();
	dmafs_extent_set(in, 0, 2, 100, 0, NULL, NULL);
	dmafs_extent_set(in, 2, 2, 102, DMAFS_EXTENT_UNWRITTEN, NULL, NULL);
	dmafs_extent_set(in, 4, 2, 104, 0, NULL, NULL);
	m = build(in, 6 * BS);
	CHECK_EQ(m->len, 2);
	expect(m, 0, 0, 2 * BS, 100 * BS);
	expect(m, 1, 4 * BS, 2 * BS, 104 * BS);
	g_array_unref(m);
	/* Converted in place (what a push does first): one extent again. */
	dmafs_extent_set(in, 2, 2, 102, 0, NULL, NULL);
	m = build(in, 6 * BS);
	CHECK_EQ(m->len, 1);
	expect(m, 0, 0, 6 * BS, 100 * BS);
	g_array_unref(m);

	/* Contiguous in the file and on the device, kept apart in the tree. */
	in = new_file();
	raw_extent(in, 0, 1, 50, 0);
	raw_extent(in, 1, 3, 51, 0);
	raw_extent(in, 4, 1, 54, 0);
	m = build(in, 5 * BS);
	CHECK_EQ(m->len, 1);
	expect(m, 0, 0, 5 * BS, 50 * BS);
	g_array_unref(m);

	/* Contiguous in the file only, or on the device only: not merged. */
	in = new_file();
	dmafs_extent_set(in, 0, 2, 100, 0, NULL, NULL);
	dmafs_extent_set(in, 2, 2, 200, 0, NULL, NULL);
	dmafs_extent_set(in, 5, 1, 202, 0, NULL, NULL);
	m = build(in, 6 * BS);
	CHECK_EQ(m->len, 3);
	expect(m, 0, 0, 2 * BS, 100 * BS);
	expect(m, 1, 2 * BS, 2 * BS, 200 * BS);
	expect(m, 2, 5 * BS, BS, 202 * BS);
	g_array_unref(m);

	/* Large offsets: byte values past 32 bits, past 2^52. */
	in = new_file();
	dmafs_extent_set(in, 1ULL << 40, 3, 1ULL << 30, 0, NULL, NULL);
	m = build(in, ((1ULL << 40) + 3) * BS);
	CHECK_EQ(m->len, 1);
	expect(m, 0, (1ULL << 40) * BS, 3 * BS, (1ULL << 30) * BS);
	g_array_unref(m);
	m = build(in, UINT64_MAX);
	CHECK_EQ(m->len, 1);
	g_array_unref(m);
}

/* Per-block model: phys of each block, 0 for a hole or unwritten. */
static void test_random(unsigned int seed)
{
	enum { NBLK = 256, ROUNDS = 2000 };
	uint64_t model[NBLK];
	GRand *r = g_rand_new_with_seed(seed);

	for (int round = 0; round < ROUNDS && failures < 10; round++) {
		struct dmafs_inode *in = new_file();
		uint64_t size, nblk, blk = 0, next_phys = 1000;
		GArray *m;

		for (int i = 0; i < NBLK; i++)
			model[i] = 0;
		/* Random runs of holes, written and unwritten blocks. */
		while (blk < NBLK) {
			/* Not inside MIN(), which evaluates it twice. */
			uint64_t len = g_rand_int_range(r, 1, 9);
			int kind = g_rand_int_range(r, 0, 4);

			len = MIN(len, NBLK - blk);

			/* Sometimes continue the device range, sometimes not. */
			if (g_rand_boolean(r))
				next_phys += g_rand_int_range(r, 1, 5);
			if (kind == 1 || kind == 2) {
				uint32_t fl = kind == 2 ?
					DMAFS_EXTENT_UNWRITTEN : 0;

				if (g_rand_boolean(r))
					raw_extent(in, blk, len, next_phys, fl);
				else
					dmafs_extent_set(in, blk, len,
							 next_phys, fl, NULL,
							 NULL);
				for (uint64_t b = 0; b < len && !fl; b++)
					model[blk + b] = next_phys + b;
				next_phys += len;
			}
			blk += len;
		}
		size = g_rand_int_range(r, 0, (NBLK + 4) * BS);
		nblk = (size + BS - 1) / BS;
		m = build(in, size);

		/* Shape: aligned, sorted, disjoint, maximally merged. */
		for (guint i = 0; i < m->len; i++) {
			struct fuse_dmafs_extent *x = &X(m, i);

			if (!x->length || (x->offset | x->length |
					   x->dev_offset) % BS)
				FAIL("round %d: extent %u not aligned or empty",
				     round, i);
			if (x->offset + x->length > nblk * BS)
				FAIL("round %d: extent %u past EOF", round, i);
			if (i && X(m, i - 1).offset + X(m, i - 1).length >
					 x->offset)
				FAIL("round %d: extent %u unsorted/overlapping",
				     round, i);
			if (i && X(m, i - 1).offset + X(m, i - 1).length ==
					 x->offset &&
			    X(m, i - 1).dev_offset + X(m, i - 1).length ==
					 x->dev_offset)
				FAIL("round %d: extents %u and %u not merged",
				     round, i - 1, i);
		}
		/* Content: every block as the model says. */
		for (uint64_t b = 0, i = 0; b < MIN(nblk, NBLK); b++) {
			uint64_t got = 0;

			while (i < m->len &&
			       X(m, i).offset + X(m, i).length <= b * BS)
				i++;
			if (i < m->len && X(m, i).offset <= b * BS)
				got = (X(m, i).dev_offset + b * BS -
				       X(m, i).offset) / BS;
			if (got != model[b]) {
				FAIL("round %d: block %" PRIu64 " maps to %"
				     PRIu64 ", expected %" PRIu64, round, b,
				     got, model[b]);
				break;
			}
		}
		g_array_unref(m);
	}
	g_rand_free(r);
}

int main(void)
{
	const char *s = getenv("TEST_KEXT_SEED");
	unsigned int seed = s ? strtoul(s, NULL, 0) : 1;

	dmafs_fs_init(&fs, "none", true);
	test_directed();
	test_random(seed);
	dmafs_fs_destroy(&fs);
	if (failures) {
		fprintf(stderr, "%d failure(s) (seed %u)\n", failures, seed);
		return 1;
	}
	printf("test_kext: all passed (seed %u)\n", seed);
	return 0;
}
