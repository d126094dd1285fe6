// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * rw_exact: READ_FIXED / WRITE_FIXED between a target and a dma-buf move
 * exactly the right bytes.
 *
 *   rw_exact TARGET [-s udmabuf|vgem|selftest]... [-r SEED]
 *
 * For each dma-buf source (default: udmabuf and vgem) and each ring
 * variant (plain; SINGLE_ISSUER + DEFER_TASKRUN):
 *
 *  matrix   one request at a time: sizes from one logical block to 6 MiB,
 *           across the PRP-list page boundaries (8 KiB, 2 MiB) and the
 *           device's transfer limit; dma-buf offsets 0, one block, page +
 *           block, the DMA alignment the device reports, up to the end of
 *           the buffer; target offsets 0, its last blocks and random ones.
 *  qd       batches of 1..64 requests in flight at once on disjoint
 *           ranges: all writes, all reads, then mixed.
 *
 * Every write is checked by an O_DIRECT pread of the target through an
 * ordinary buffer (data exact, the block before and after untouched, the
 * dma-buf not modified); every read against data put there by an O_DIRECT
 * pwrite (data exact, the 4 KiB of the dma-buf before and after
 * untouched).  -EAGAIN completions are resubmitted, as the contract says;
 * short transfers and other errors fail.
 *
 * Destroys the contents of TARGET.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define BUF_SIZE	(16 * T_MiB)	/* dma-buf size */
#define MIN_TARGET	(64 * T_MiB)
#define MAX_QD		64
#define MAX_EAGAIN	1000
#define MAX_FAILURES	20

struct rw_ctx {
	struct t_target *t;
	struct t_dmabuf *b;
	struct io_uring *ring;
	unsigned int slot;
	uint8_t *bounce;	/* O_DIRECT buffer: BUF_SIZE + 2 blocks */
	uint64_t gen;		/* last pattern generation used */
	uint64_t rng;
	char label[64];
	/* statistics of the current phase */
	unsigned long ios;
	uint64_t bytes;
	unsigned long eagain;
};

static uint64_t next_gen(struct rw_ctx *c)
{
	/* 15 bits; bit 15 marks the guard blocks of a request. */
	c->gen = c->gen % 0x7fff + 1;
	return c->gen;
}

static uint64_t rand_below(struct rw_ctx *c, uint64_t n)
{
	return n ? t_rand(&c->rng) % n : 0;
}

/* A random multiple of align in [0, max]. */
static uint64_t rand_aligned(struct rw_ctx *c, uint64_t max, uint64_t align)
{
	return rand_below(c, max / align + 1) * align;
}

/* Check one completed request: its result, then its data. */
static void verify(struct rw_ctx *c, struct t_req *r)
{
	char what[200];

	if (r->res != (int)r->len) {
		t_req_describe(r, c->label, what, sizeof(what));
		t_fail("%s: result %d (%s), expected %u", what, r->res,
		       r->res < 0 ? strerror(-r->res) : "wrong length",
		       r->len);
		return;
	}
	c->ios++;
	c->bytes += r->len;
	c->eagain += r->eagain;
	t_req_verify(c->t, c->b, r, c->bounce, c->label);
}

/* Run reqs[0..n) (disjoint ranges) at once and check each. */
static int run_batch(struct rw_ctx *c, struct t_req *reqs, unsigned int n)
{
	int ret;

	ret = t_dmabuf_cpu_begin(c->b);
	if (ret) {
		t_fail("%s: DMA_BUF_IOCTL_SYNC start: %s", c->label,
		       strerror(-ret));
		return ret;
	}
	for (unsigned int i = 0; i < n; i++) {
		reqs[i].fd = c->t->fd;
		reqs[i].slot = c->slot;
		reqs[i].seed = next_gen(c);
		ret = t_req_prepare(c->t, c->b, &reqs[i], c->bounce, c->label);
		if (ret)
			return ret;
	}
	t_dmabuf_cpu_end(c->b);

	ret = t_reqs_submit(c->ring, c->b, reqs, n);
	if (ret) {
		t_fail("%s: submitting %u requests: %s", c->label, n,
		       strerror(-ret));
		return ret;
	}
	ret = t_reqs_reap(c->ring, c->b, reqs, n, MAX_EAGAIN);
	if (ret)
		return ret;

	t_dmabuf_cpu_begin(c->b);
	for (unsigned int i = 0; i < n; i++)
		verify(c, &reqs[i]);
	t_dmabuf_cpu_end(c->b);
	return t_failures >= MAX_FAILURES ? -ECANCELED : 0;
}

static void phase_done(struct rw_ctx *c, const char *phase, int failures0)
{
	t_info("%s: %s: %lu I/Os, %" PRIu64 " MiB, %lu -EAGAIN resubmitted%s",
	       c->label, phase, c->ios, c->bytes / T_MiB, c->eagain,
	       t_failures > failures0 ? " -- FAILED" : "");
	c->ios = 0;
	c->bytes = 0;
	c->eagain = 0;
}

static int add_unique(uint64_t *v, int n, uint64_t x)
{
	for (int i = 0; i < n; i++) {
		if (v[i] == x)
			return n;
	}
	v[n] = x;
	return n + 1;
}

/* One request at a time over sizes x dma-buf offsets x target offsets. */
static int phase_matrix(struct rw_ctx *c)
{
	const uint32_t lba = c->t->lba;
	const uint32_t ma = c->t->mem_align;
	const uint64_t max_len = c->b->size - 4 * 4096;
	const uint64_t sizes_wanted[] = {
		lba,
		4096,
		4096 + lba,
		8192,			/* PRP2 is data, not a list */
		12288,			/* smallest PRP list */
		64 * T_KiB - lba,
		128 * T_KiB,
		c->t->max_io,		/* the device's transfer limit */
		c->t->max_io + lba,	/* ... and just over: a split */
		512 * T_KiB + 8192,
		T_MiB + lba,
		2 * T_MiB - 4096,	/* 511 PRP entries: one list page */
		2 * T_MiB,
		2 * T_MiB + 4096,	/* a chained PRP list */
		4 * T_MiB + lba,
		6 * T_MiB + 4096,
	};
	uint64_t sizes[32];
	int nr_sizes = 0;
	int failures0 = t_failures;
	unsigned int k = 0;

	for (size_t i = 0; i < sizeof(sizes_wanted) / sizeof(*sizes_wanted);
	     i++) {
		uint64_t s = sizes_wanted[i];

		if (s && s % lba == 0 && s <= max_len &&
		    s <= c->t->size - 2 * lba && s <= INT32_MAX)
			nr_sizes = add_unique(sizes, nr_sizes, s);
	}
	for (int si = 0; si < nr_sizes; si++) {
		const uint64_t len = sizes[si];
		uint64_t boffs[8];
		int nr_boffs = 0;

		nr_boffs = add_unique(boffs, nr_boffs, 0);
		nr_boffs = add_unique(boffs, nr_boffs, lba);
		if (len < T_MiB) {
			nr_boffs = add_unique(boffs, nr_boffs, 4096 + lba);
			nr_boffs = add_unique(boffs, nr_boffs, 3 * 4096 - lba);
			/*
			 * Only DMA-aligned: the data starts inside a word.  Not
			 * for ordinary fixed buffers, whose page segments must
			 * each be whole blocks.
			 */
			if (ma && ma < lba && c->b->src != T_SRC_SELFTEST) {
				nr_boffs = add_unique(boffs, nr_boffs, ma);
				nr_boffs = add_unique(boffs, nr_boffs,
						      4096 - ma);
			}
		}
		nr_boffs = add_unique(boffs, nr_boffs, c->b->size - len);

		for (int bi = 0; bi < nr_boffs; bi++, k++) {
			uint64_t last = (c->t->size - len) / lba * lba;
			struct t_req r[1];
			uint64_t doff;
			int ret;

			switch (k % 4) {
			case 0:
				doff = 0;
				break;
			case 1:
				doff = last;
				break;
			default:
				doff = rand_aligned(c, last, lba);
			}
			for (int dir = 0; dir < 2; dir++) {
				memset(r, 0, sizeof(r));
				r->opcode = dir ? IORING_OP_READ_FIXED :
						  IORING_OP_WRITE_FIXED;
				r->doff = doff;
				r->boff = boffs[bi];
				r->len = len;
				ret = run_batch(c, r, 1);
				if (ret)
					return ret;
			}
		}
	}
	phase_done(c, "matrix", failures0);
	return 0;
}

/*
 * n requests of random direction (dir: 0 writes, 1 reads, 2 mixed) and
 * size on disjoint, randomly placed ranges: target and dma-buf are cut
 * into n stripes, one request inside each, with room for the guards.
 */
static int qd_batch(struct rw_ctx *c, unsigned int n, int dir)
{
	const uint32_t lba = c->t->lba;
	const uint64_t dstripe = c->t->size / n / lba * lba;
	const uint64_t bstripe = c->b->size / n / 4096 * 4096;
	uint64_t lens[] = { lba, 4096, 8192 + lba, 64 * T_KiB, 132 * T_KiB,
			    bstripe - 2 * T_GUARD };
	struct t_req reqs[MAX_QD];

	memset(reqs, 0, sizeof(reqs));
	for (unsigned int i = 0; i < n; i++) {
		struct t_req *r = &reqs[i];
		uint64_t len, balign;

		do {
			len = lens[rand_below(c, sizeof(lens) / sizeof(*lens))];
		} while (len > bstripe - 2 * T_GUARD ||
			 len > dstripe - 2 * lba || len > 4 * T_MiB);
		len = len / lba * lba;
		balign = (t_rand(&c->rng) & 1) ? 4096 : lba;
		r->opcode = (dir == 1 || (dir == 2 && (t_rand(&c->rng) & 1))) ?
				    IORING_OP_READ_FIXED :
				    IORING_OP_WRITE_FIXED;
		r->len = len;
		r->doff = dstripe * i + lba +
			  rand_aligned(c, dstripe - 2 * lba - len, lba);
		r->boff = bstripe * i + T_GUARD +
			  rand_aligned(c, bstripe - 2 * T_GUARD - len, balign);
	}
	return run_batch(c, reqs, n);
}

static int phase_qd(struct rw_ctx *c)
{
	static const unsigned int depths[] = { 1, 2, 3, 8, 16, 32, 64 };
	int failures0 = t_failures;

	for (unsigned int i = 0; i < sizeof(depths) / sizeof(*depths); i++) {
		for (int dir = 0; dir < 3; dir++) {
			int ret = qd_batch(c, depths[i], dir);

			if (ret)
				return ret;
		}
	}
	phase_done(c, "queue depths 1..64", failures0);
	return 0;
}

static int run_source(struct t_target *t, enum t_src src, uint64_t seed,
		      bool *skipped)
{
	struct t_dmabuf b;
	uint8_t *bounce;
	int ret;

	ret = t_dmabuf_create(src, BUF_SIZE, true, &b);
	if (ret == -ENODEV) {
		t_skip("%s: no exporter device (/dev/udmabuf or a vgem "
		       "/dev/dri/card*)", t_src_name(src));
		*skipped = true;
		return 0;
	}
	if (ret) {
		t_fail("%s: creating a %" PRIu64 " MiB buffer: %s",
		       t_src_name(src), BUF_SIZE / T_MiB, strerror(-ret));
		return ret;
	}
	bounce = t_alloc_aligned(BUF_SIZE + 2 * 4096);
	if (!bounce) {
		t_fail("out of memory");
		ret = -ENOMEM;
		goto out_destroy;
	}

	for (int v = 0; v < T_NR_RING_VARIANTS; v++) {
		struct io_uring ring;
		struct rw_ctx c = {
			.t = t,
			.b = &b,
			.ring = &ring,
			/* slot 0 with one ring, the last slot with the other */
			.slot = v ? 3 : 0,
			.bounce = bounce,
			.rng = seed * 2654435761u + v + 1,
		};

		snprintf(c.label, sizeof(c.label), "%s/%s", t_src_name(src),
			 t_ring_variant_names[v]);
		ret = t_ring_init(&ring, MAX_QD, t_ring_variants[v], 4);
		if (ret) {
			t_fail("%s: ring setup: %s", c.label, strerror(-ret));
			break;
		}
		ret = t_buf_register(&ring, c.slot, &b, t->fd);
		if (ret) {
			t_fail("%s: registering the buffer in slot %u for %s: "
			       "%d (%s)", c.label, c.slot, t->path, ret,
			       strerror(-ret));
		} else {
			ret = phase_matrix(&c);
			if (!ret)
				ret = phase_qd(&c);
		}
		io_uring_queue_exit(&ring);
		if (ret)
			break;
	}
	free(bounce);
out_destroy:
	t_dmabuf_destroy(&b);
	return ret;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: %s TARGET [-s udmabuf|vgem|selftest]... [-r SEED]\n"
		"  destroys the contents of TARGET\n",
		t_prog);
}

int main(int argc, char **argv)
{
	enum t_src srcs[8];
	int nr_srcs = 0;
	uint64_t seed = 1;
	bool skipped = false, need_feature = false;
	struct t_target t;
	int opt, ret;

	t_prog = "rw_exact";
	while ((opt = getopt(argc, argv, "s:r:h")) != -1) {
		switch (opt) {
		case 's':
			if (nr_srcs == 8 ||
			    t_src_parse(optarg, &srcs[nr_srcs])) {
				usage();
				return T_EXIT_FAIL;
			}
			nr_srcs++;
			break;
		case 'r':
			seed = strtoull(optarg, NULL, 0);
			break;
		default:
			usage();
			return opt == 'h' ? T_EXIT_PASS : T_EXIT_FAIL;
		}
	}
	if (optind >= argc) {
		t_skip("no target given");
		usage();
		return T_EXIT_SKIP;
	}
	if (!nr_srcs) {
		srcs[nr_srcs++] = T_SRC_UDMABUF;
		srcs[nr_srcs++] = T_SRC_VGEM;
	}
	for (int i = 0; i < nr_srcs; i++)
		need_feature |= srcs[i] != T_SRC_SELFTEST;

	ret = t_target_open_arg(argv[optind], &t);
	if (ret)
		return ret;
	t_info("target %s: %" PRIu64 " MiB, %u-byte blocks, DMA alignment %u, "
	       "max transfer %" PRIu64 " KiB; seed %" PRIu64,
	       t.path, t.size / T_MiB, t.lba, t.mem_align, t.max_io / T_KiB,
	       seed);
	if (t.size < MIN_TARGET) {
		t_skip("%s is smaller than %" PRIu64 " MiB", t.path,
		       MIN_TARGET / T_MiB);
		t_target_close(&t);
		return T_EXIT_SKIP;
	}
	if (need_feature) {
		struct io_uring ring;

		ret = t_ring_init(&ring, 4, 0, 1);
		if (ret) {
			t_fail("ring setup: %s", strerror(-ret));
			goto out;
		}
		ret = t_check_feature(&ring);
		io_uring_queue_exit(&ring);
		if (ret)
			goto out;
	}
	for (int i = 0; i < nr_srcs && t_failures < MAX_FAILURES; i++)
		run_source(&t, srcs[i], seed, &skipped);
out:
	t_target_close(&t);
	return t_exit_status(skipped);
}
