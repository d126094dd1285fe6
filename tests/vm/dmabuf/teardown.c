// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * teardown: a dma-buf registration torn down while I/O on it is in flight,
 * and its mapping invalidated by the exporter during I/O.
 *
 *   teardown TARGET [-s udmabuf|vgem]
 *
 * With 32 requests (256 KiB, reads and writes) in flight:
 *  unregister  empty the slot: the update succeeds, every request completes
 *              (full length, data exact) or fails cleanly (an errno), new
 *              requests on the slot get -EFAULT, and the registration's
 *              references to the dma-buf and its attachment are dropped.
 *  unreg-all   the same with IORING_UNREGISTER_BUFFERS.
 *  exit        close the ring: the references are dropped once the ring is
 *              gone; the device still works.
 *  close       close the dma-buf fd and unmap it: the registration keeps it
 *              alive (requests complete, new writes from it are exact); once
 *              the slot is emptied, the dma-buf is freed.
 *  invalidate  a thread makes the exporter invalidate the mapping over and
 *              over (the debugfs trigger, see T_INVALIDATE_TRIGGER) while
 *              batches run: every request completes in full with exact data
 *              (in-flight I/O is drained before the mapping goes, -EAGAIN
 *              is resubmitted), the kernel counts every invalidation, and
 *              afterwards I/O still works.
 * Each on both ring variants.  After each case the dma-buf's references and
 * attachments (dma_buf/bufinfo) and the kernel's live tokens and maps
 * (dma_buf_io/stats) must be back where they were: debugfs is required.
 *
 * Destroys the contents of TARGET.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define BUF_SIZE	(16 * T_MiB)
#define NR_REQS		32
#define REQ_LEN		(256 * T_KiB)
#define RELEASE_TIMEOUT	30.0	/* s for references to go after teardown */
#define INVAL_TIME	3.0	/* s of I/O under invalidation */
#define INVAL_QD	16

struct ctx {
	struct t_target *t;
	enum t_src src;
	uint8_t *bounce;
	uint64_t gen;
	uint64_t rng;
	const char *trigger;	/* the invalidation trigger, NULL if none */
	bool have_stats;	/* T_DMABUF_IO_STATS readable */
	struct t_io_stats base;	/* ... at the start */
};

/* A registered buffer and what bufinfo said about it before registering. */
struct reg {
	struct t_dmabuf b;
	struct io_uring ring;
	bool ring_up;
	long base_count;	/* file references before registration */
	int base_attached;	/* attachments before registration */
	char label[64];
};

static uint64_t next_gen(struct ctx *c)
{
	c->gen = c->gen % 0x7fff + 1;
	return c->gen;
}

static bool wait_io_stats(const struct ctx *c, const struct reg *g,
			  const char *when);

/* Buffer, bufinfo baseline, ring, registration in slot 0. */
static int reg_setup(struct ctx *c, struct reg *g, int variant,
		     const char *name)
{
	int ret;

	memset(g, 0, sizeof(*g));
	snprintf(g->label, sizeof(g->label), "%s %s/%s", name,
		 t_src_name(c->src), t_ring_variant_names[variant]);
	ret = t_dmabuf_create(c->src, BUF_SIZE, true, &g->b);
	if (ret) {
		t_fail("%s: creating the dma-buf: %s", g->label,
		       strerror(-ret));
		return ret;
	}
	ret = t_dmabuf_debug_info(g->b.ino, &g->base_count, &g->base_attached);
	if (ret) {
		t_fail("%s: the new dma-buf (ino %" PRIu64 ") is not in %s: %s",
		       g->label, g->b.ino, T_DMABUF_BUFINFO, strerror(-ret));
		goto out_destroy;
	}
	ret = t_ring_init(&g->ring, 2 * NR_REQS, t_ring_variants[variant], 2);
	if (ret) {
		t_fail("%s: ring setup: %s", g->label, strerror(-ret));
		goto out_destroy;
	}
	g->ring_up = true;
	ret = t_buf_register(&g->ring, 0, &g->b, c->t->fd);
	if (ret) {
		t_fail("%s: registering the dma-buf: %s", g->label,
		       strerror(-ret));
		goto out_ring;
	}
	return 0;

out_ring:
	io_uring_queue_exit(&g->ring);
	g->ring_up = false;
out_destroy:
	t_dmabuf_destroy(&g->b);
	return ret;
}

static void reg_destroy(struct reg *g)
{
	if (g->ring_up)
		io_uring_queue_exit(&g->ring);
	g->ring_up = false;
	t_dmabuf_destroy(&g->b);
}

/*
 * Wait until bufinfo shows the dma-buf with count references and attached
 * devices (count < 0: until it is gone).
 */
static bool wait_state(const struct ctx *c, const struct reg *g, long count,
		       int attached, const char *when)
{
	double end = t_now() + RELEASE_TIMEOUT;
	long cur = -1;
	int att = -1, ret;

	for (;;) {
		ret = t_dmabuf_debug_info(g->b.ino, &cur, &att);
		if ((count < 0 && ret == -ENOENT) ||
		    (!ret && cur == count && att == attached))
			return wait_io_stats(c, g, when);
		if (ret && ret != -ENOENT) {
			t_fail("%s: reading %s: %s", g->label, T_DMABUF_BUFINFO,
			       strerror(-ret));
			return false;
		}
		if (t_now() > end)
			break;
		usleep(10000);
	}
	if (count < 0)
		t_fail("%s: %s, the dma-buf is still alive after %.0f s: "
		       "%ld references, %d attachments (leaked)",
		       g->label, when, RELEASE_TIMEOUT, cur, att);
	else if (ret == -ENOENT)
		t_fail("%s: %s, the dma-buf is gone, expected %ld references "
		       "(freed too early)", g->label, when, count);
	else
		t_fail("%s: %s, the dma-buf has %ld references and %d "
		       "attachments after %.0f s, expected %ld and %d",
		       g->label, when, cur, att, RELEASE_TIMEOUT, count,
		       attached);
	return false;
}

/*
 * Wait until the kernel's live tokens and maps are back at the numbers of
 * the start: a registration torn down leaves nothing behind.
 */
static bool wait_io_stats(const struct ctx *c, const struct reg *g,
			  const char *when)
{
	double end = t_now() + RELEASE_TIMEOUT;
	struct t_io_stats st = { -1, -1, -1 };

	if (!c->have_stats)
		return true;
	for (;;) {
		int ret = t_dmabuf_io_stats(&st);

		if (ret) {
			t_fail("%s: reading %s: %s", g->label,
			       T_DMABUF_IO_STATS, strerror(-ret));
			return false;
		}
		if (st.tokens == c->base.tokens && st.maps == c->base.maps)
			return true;
		if (t_now() > end)
			break;
		usleep(10000);
	}
	t_fail("%s: %s, %ld dma-buf I/O tokens and %ld maps are live after "
	       "%.0f s, expected %ld and %ld (leaked)", g->label, when,
	       st.tokens, st.maps, RELEASE_TIMEOUT, c->base.tokens,
	       c->base.maps);
	return false;
}

/* NR_REQS requests, alternately write and read, on disjoint stripes. */
static int make_load(struct ctx *c, struct reg *g, struct t_req *reqs,
		     unsigned int n)
{
	const uint32_t lba = c->t->lba;
	const uint64_t dstripe = c->t->size / n / lba * lba;
	const uint64_t bstripe = g->b.size / n / 4096 * 4096;
	uint32_t len = REQ_LEN;
	int ret;

	if (len > bstripe - 2 * T_GUARD)
		len = (bstripe - 2 * T_GUARD) / lba * lba;
	memset(reqs, 0, n * sizeof(*reqs));
	ret = t_dmabuf_cpu_begin(&g->b);
	if (ret) {
		t_fail("%s: DMA_BUF_IOCTL_SYNC: %s", g->label, strerror(-ret));
		return ret;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct t_req *r = &reqs[i];
		uint64_t room = dstripe - 2 * lba - len;

		r->opcode = i & 1 ? IORING_OP_READ_FIXED :
				    IORING_OP_WRITE_FIXED;
		r->fd = c->t->fd;
		r->slot = 0;
		r->len = len;
		r->doff = dstripe * i + lba +
			  t_rand(&c->rng) % (room / lba + 1) * lba;
		r->boff = bstripe * i + T_GUARD;
		r->seed = next_gen(c);
		ret = t_req_prepare(c->t, &g->b, r, c->bounce, g->label);
		if (ret)
			break;
	}
	t_dmabuf_cpu_end(&g->b);
	return ret;
}

/*
 * After a teardown with requests in flight: each completed in full (then
 * its data must be exact, if check_data) or failed with an errno.
 */
static void check_teardown_results(struct ctx *c, struct reg *g,
				   struct t_req *reqs, unsigned int n,
				   bool check_data)
{
	unsigned int full = 0, failed = 0;
	int first_err = 0;

	if (check_data)
		t_dmabuf_cpu_begin(&g->b);
	for (unsigned int i = 0; i < n; i++) {
		struct t_req *r = &reqs[i];
		char what[200];

		if (r->res == (int)r->len) {
			full++;
			if (check_data)
				t_req_verify(c->t, &g->b, r, c->bounce,
					     g->label);
		} else if (r->res < 0) {
			failed++;
			if (!first_err)
				first_err = r->res;
		} else {
			t_req_describe(r, g->label, what, sizeof(what));
			t_fail("%s: partial transfer %d of %u", what, r->res,
			       r->len);
		}
	}
	if (check_data)
		t_dmabuf_cpu_end(&g->b);
	t_info("%s: %u of %u in-flight requests completed, %u failed%s%s",
	       g->label, full, n, failed, first_err ? " with " : "",
	       first_err ? strerror(-first_err) : "");
}

static void expect_slot_empty(struct reg *g, int fd, uint32_t lba)
{
	struct t_req r = {
		.opcode = IORING_OP_READ_FIXED,
		.fd = fd,
		.slot = 0,
		.len = lba,
	};
	int ret = t_req_run(&g->ring, &g->b, &r);

	if (ret != -EFAULT)
		t_fail("%s: READ_FIXED on the emptied slot: %d (%s), expected "
		       "-EFAULT", g->label, ret,
		       ret < 0 ? strerror(-ret) : "success");
}

/* Empty the slot (or the whole table) with requests in flight. */
static void case_unregister(struct ctx *c, int variant, bool whole_table)
{
	struct t_req reqs[NR_REQS];
	struct reg g;
	int ret;

	if (reg_setup(c, &g, variant, whole_table ? "unreg-all" : "unregister"))
		return;
	if (make_load(c, &g, reqs, NR_REQS))
		goto out;
	ret = t_reqs_submit(&g.ring, &g.b, reqs, NR_REQS);
	if (ret) {
		t_fail("%s: submit: %s", g.label, strerror(-ret));
		goto out;
	}
	if (whole_table) {
		ret = io_uring_unregister_buffers(&g.ring);
		if (ret)
			t_fail("%s: IORING_UNREGISTER_BUFFERS with I/O in "
			       "flight: %s", g.label, strerror(-ret));
	} else {
		ret = dmafs_unregister_slot(g.ring.ring_fd, 0);
		if (ret != 1)
			t_fail("%s: emptying the slot with I/O in flight: %d "
			       "(%s), expected 1", g.label, ret,
			       ret < 0 ? strerror(-ret) : "?");
	}
	/* -EAGAIN is not retried: the slot is gone. */
	if (t_reqs_reap(&g.ring, &g.b, reqs, NR_REQS, 0))
		goto out;
	check_teardown_results(c, &g, reqs, NR_REQS, true);
	if (!whole_table)
		expect_slot_empty(&g, c->t->fd, c->t->lba);
	wait_state(c, &g, g.base_count, g.base_attached,
		   "after the slot was emptied and the I/O finished");
out:
	reg_destroy(&g);
}

/* Close the ring with requests in flight. */
static void case_exit(struct ctx *c, int variant)
{
	struct t_req reqs[NR_REQS];
	struct reg g;
	int ret;

	if (reg_setup(c, &g, variant, "exit"))
		return;
	if (make_load(c, &g, reqs, NR_REQS))
		goto out;
	ret = t_reqs_submit(&g.ring, &g.b, reqs, NR_REQS);
	if (ret) {
		t_fail("%s: submit: %s", g.label, strerror(-ret));
		goto out;
	}
	io_uring_queue_exit(&g.ring);
	g.ring_up = false;
	wait_state(c, &g, g.base_count, g.base_attached,
		   "after the ring was closed with I/O in flight");
	ret = t_pread_full(c->t->fd, c->bounce, REQ_LEN, 0);
	if (ret)
		t_fail("%s: O_DIRECT pread of the target afterwards: %s",
		       g.label, strerror(-ret));
out:
	reg_destroy(&g);
}

/* Close the dma-buf fd and unmap it with requests in flight. */
static void case_close(struct ctx *c, int variant)
{
	struct t_req reqs[NR_REQS], again;
	struct reg g;
	int ret;

	if (reg_setup(c, &g, variant, "close"))
		return;
	if (make_load(c, &g, reqs, NR_REQS))
		goto out;
	/* Written again below, after the fd and the mapping are gone. */
	again = reqs[0];
	again.doff = reqs[1].doff;
	ret = t_reqs_submit(&g.ring, &g.b, reqs, NR_REQS);
	if (ret) {
		t_fail("%s: submit: %s", g.label, strerror(-ret));
		goto out;
	}
	t_dmabuf_unmap(&g.b);
	t_dmabuf_close_fd(&g.b);
	if (t_reqs_reap(&g.ring, &g.b, reqs, NR_REQS, 1000))
		goto out;
	/* The dma-buf is unmapped: only the writes (even) can be checked. */
	check_teardown_results(c, &g, reqs, NR_REQS, false);
	for (unsigned int i = 0; i < NR_REQS; i += 2) {
		uint64_t off = reqs[i].doff;
		long bad;

		if (reqs[i].res != (int)reqs[i].len)
			continue;
		ret = t_pread_full(c->t->fd, c->bounce, reqs[i].len, off);
		bad = ret ? 0 : t_pattern_check(c->bounce, reqs[i].len,
						reqs[i].seed, off);
		if (ret)
			t_fail("%s: pread: %s", g.label, strerror(-ret));
		else if (bad >= 0)
			t_pattern_report(c->bounce, reqs[i].len, reqs[i].seed,
					 off, bad, g.label);
	}

	/*
	 * The registration holds the dma-buf: a new write from it works
	 * and carries what was in it (the pattern of reqs[0], made for
	 * target offset reqs[0].doff, now written at reqs[1].doff).
	 */
	ret = t_req_run(&g.ring, &g.b, &again);
	if (ret != (int)again.len) {
		t_fail("%s: WRITE_FIXED after the dma-buf fd was closed: %d "
		       "(%s), expected %u", g.label, ret,
		       ret < 0 ? strerror(-ret) : "short", again.len);
	} else {
		ret = t_pread_full(c->t->fd, c->bounce, again.len, again.doff);
		if (!ret) {
			long bad = t_pattern_check(c->bounce, again.len,
						   again.seed, reqs[0].doff);

			if (bad >= 0)
				t_pattern_report(c->bounce, again.len,
						 again.seed, reqs[0].doff, bad,
						 "WRITE_FIXED from a closed "
						 "dma-buf");
		}
	}
	ret = dmafs_unregister_slot(g.ring.ring_fd, 0);
	if (ret != 1)
		t_fail("%s: emptying the slot: %d", g.label, ret);
	wait_state(c, &g, -1, 0, "after its fd, mapping and slot were dropped");
out:
	reg_destroy(&g);
}

/* ---- invalidation ------------------------------------------------------- */

struct trigger_thread {
	const char *path;
	char fd[32];		/* the dma-buf's fd number, as written */
	atomic_bool stop;
	unsigned long writes;
	int err;		/* first failed write's errno */
};

static int trigger_once(const char *path, const char *what)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int ret = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, what, strlen(what));
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != strlen(what))
		ret = -EIO;
	close(fd);
	return ret;
}

static void *trigger_main(void *arg)
{
	struct trigger_thread *tt = arg;

	while (!atomic_load(&tt->stop)) {
		int ret = trigger_once(tt->path, tt->fd);

		if (ret) {
			tt->err = -ret;
			break;
		}
		tt->writes++;
		usleep(2000);
	}
	return NULL;
}

/* List debugfs files that look like a trigger, to help whoever set it up. */
static void list_candidates(const char *dir, int depth, char *out, size_t n)
{
	DIR *d;
	struct dirent *de;

	if (depth > 3 || !(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		char p[512];

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "tracing"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR) {
			list_candidates(p, depth + 1, out, n);
		} else if (strstr(de->d_name, "invalidat") ||
			   strstr(de->d_name, "move_notify")) {
			size_t l = strlen(out);

			snprintf(out + l, n - l, " %s", p);
		}
	}
	closedir(d);
}

static const char *find_trigger(void)
{
	const char *p = getenv("DMAFS_DMABUF_INVALIDATE");
	char cand[1024] = "";

	if (!p || !*p)
		p = T_INVALIDATE_TRIGGER;
	if (access(p, W_OK) == 0)
		return p;
	list_candidates("/sys/kernel/debug", 0, cand, sizeof(cand));
	t_fail("no dma-buf invalidation trigger at %s (%s). The kernel series "
	       "must provide one (kpatch/README, patch 0007; udmabuf and vgem "
	       "never invalidate by themselves): writing the number of one of "
	       "the writer's dma-buf fds runs move_notify on that dma-buf; set "
	       "DMAFS_DMABUF_INVALIDATE if it lives elsewhere. Files that look "
	       "like one:%s",
	       p, strerror(errno), *cand ? cand : " none");
	return NULL;
}

/* Batches of mixed I/O while the mapping is invalidated over and over. */
static void case_invalidate(struct ctx *c, int variant)
{
	struct trigger_thread tt = { .path = c->trigger };
	unsigned long batches = 0, ios = 0, eagain = 0;
	struct t_io_stats st0, st1;
	struct t_req reqs[INVAL_QD];
	pthread_t thread;
	int failures0 = t_failures;
	struct reg g;
	double end;
	int ret;

	if (reg_setup(c, &g, variant, "invalidate"))
		return;
	snprintf(tt.fd, sizeof(tt.fd), "%d\n", g.b.fd);
	if (c->have_stats && t_dmabuf_io_stats(&st0))
		st0.invalidations = -1;
	ret = trigger_once(tt.path, tt.fd);
	if (ret) {
		t_fail("%s: writing the dma-buf fd number %d to %s: %s",
		       g.label, g.b.fd, tt.path, strerror(-ret));
		goto out;
	}
	ret = pthread_create(&thread, NULL, trigger_main, &tt);
	if (ret) {
		t_fail("pthread_create: %s", strerror(ret));
		goto out;
	}
	end = t_now() + INVAL_TIME;
	while (t_now() < end && t_failures == failures0) {
		if (make_load(c, &g, reqs, INVAL_QD))
			break;
		ret = t_reqs_submit(&g.ring, &g.b, reqs, INVAL_QD);
		if (ret) {
			t_fail("%s: submit: %s", g.label, strerror(-ret));
			break;
		}
		if (t_reqs_reap(&g.ring, &g.b, reqs, INVAL_QD, 1000))
			break;
		t_dmabuf_cpu_begin(&g.b);
		for (unsigned int i = 0; i < INVAL_QD; i++) {
			char what[200];

			eagain += reqs[i].eagain;
			if (reqs[i].res == (int)reqs[i].len) {
				ios++;
				t_req_verify(c->t, &g.b, &reqs[i], c->bounce,
					     g.label);
				continue;
			}
			t_req_describe(&reqs[i], g.label, what, sizeof(what));
			t_fail("%s during invalidation: %d (%s), expected %u: "
			       "in-flight I/O must be drained, not failed "
			       "(only -EAGAIN, which is resubmitted)",
			       what, reqs[i].res,
			       reqs[i].res < 0 ? strerror(-reqs[i].res) :
						 "short",
			       reqs[i].len);
		}
		t_dmabuf_cpu_end(&g.b);
		batches++;
	}
	atomic_store(&tt.stop, true);
	pthread_join(thread, NULL);
	if (tt.err)
		t_fail("%s: the trigger failed after %lu invalidations: %s",
		       g.label, tt.writes, strerror(tt.err));
	t_info("%s: %lu batches, %lu requests, %lu invalidations, %lu -EAGAIN "
	       "resubmitted", g.label, batches, ios, tt.writes + 1, eagain);

	/* Once more, quiet: invalidate, then I/O maps the buffer again. */
	ret = trigger_once(tt.path, tt.fd);
	if (ret)
		t_fail("%s: trigger: %s", g.label, strerror(-ret));
	if (!make_load(c, &g, reqs, 2)) {
		if (!t_reqs_submit(&g.ring, &g.b, reqs, 2) &&
		    !t_reqs_reap(&g.ring, &g.b, reqs, 2, 1000)) {
			t_dmabuf_cpu_begin(&g.b);
			for (int i = 0; i < 2; i++) {
				if (reqs[i].res != (int)reqs[i].len)
					t_fail("%s: I/O after an invalidation: "
					       "%d", g.label, reqs[i].res);
				else
					t_req_verify(c->t, &g.b, &reqs[i],
						     c->bounce, g.label);
			}
			t_dmabuf_cpu_end(&g.b);
		}
	}
	/* One attachment: each trigger write is one move_notify. */
	if (c->have_stats && st0.invalidations >= 0 &&
	    !t_dmabuf_io_stats(&st1) &&
	    st1.invalidations - st0.invalidations < (long)tt.writes + 2)
		t_fail("%s: %lu invalidations triggered, but the kernel "
		       "counted %ld", g.label, tt.writes + 2,
		       st1.invalidations - st0.invalidations);
	ret = dmafs_unregister_slot(g.ring.ring_fd, 0);
	if (ret != 1)
		t_fail("%s: emptying the slot: %d", g.label, ret);
	wait_state(c, &g, g.base_count, g.base_attached,
		   "after invalidations and emptying the slot");
out:
	reg_destroy(&g);
}

static void usage(void)
{
	fprintf(stderr, "usage: %s TARGET [-s udmabuf|vgem]\n"
			"  destroys the contents of TARGET\n", t_prog);
}

int main(int argc, char **argv)
{
	struct ctx c = { .src = T_SRC_UDMABUF, .gen = 0, .rng = 0x5eed };
	bool src_given = false;
	struct t_target t;
	struct io_uring ring;
	struct t_dmabuf probe;
	int opt, ret;

	t_prog = "teardown";
	while ((opt = getopt(argc, argv, "s:h")) != -1) {
		if (opt == 's' && !t_src_parse(optarg, &c.src) &&
		    c.src != T_SRC_SELFTEST) {
			src_given = true;
			continue;
		}
		usage();
		return opt == 'h' ? T_EXIT_PASS : T_EXIT_FAIL;
	}
	if (optind >= argc) {
		t_skip("no target given");
		usage();
		return T_EXIT_SKIP;
	}
	ret = t_target_open_arg(argv[optind], &t);
	if (ret)
		return ret;
	c.t = &t;
	ret = t_ring_init(&ring, 4, 0, 1);
	if (ret) {
		t_fail("ring setup: %s", strerror(-ret));
		goto out_close;
	}
	ret = t_check_feature(&ring);
	io_uring_queue_exit(&ring);
	if (ret)
		goto out_close;

	ret = t_dmabuf_create(c.src, 4096, false, &probe);
	if (ret == -ENODEV && !src_given) {
		c.src = T_SRC_VGEM;
		ret = t_dmabuf_create(c.src, 4096, false, &probe);
	}
	if (ret == -ENODEV) {
		t_skip("no dma-buf exporter (/dev/udmabuf or vgem)");
		t_target_close(&t);
		return T_EXIT_SKIP;
	}
	if (ret) {
		t_fail("creating a %s buffer: %s", t_src_name(c.src),
		       strerror(-ret));
		goto out_close;
	}
	t_dmabuf_destroy(&probe);

	ret = t_debugfs_mount();
	if (ret) {
		t_fail("%s is not readable (%s): the checks need debugfs "
		       "(CONFIG_DEBUG_FS) mounted on /sys/kernel/debug",
		       T_DMABUF_BUFINFO, strerror(-ret));
		goto out_close;
	}
	c.bounce = t_alloc_aligned(REQ_LEN + 2 * 4096);
	if (!c.bounce) {
		t_fail("out of memory");
		goto out_close;
	}
	t_info("target %s (%u-byte blocks), %s dma-bufs", t.path, t.lba,
	       t_src_name(c.src));
	ret = t_dmabuf_io_stats(&c.base);
	c.have_stats = !ret;
	if (ret)
		t_fail("%s: %s: the kernel series provides it (kpatch/README, "
		       "patch 0007); without it leaked tokens and maps go "
		       "unnoticed", T_DMABUF_IO_STATS, strerror(-ret));
	c.trigger = find_trigger();

	for (int v = 0; v < T_NR_RING_VARIANTS; v++) {
		case_unregister(&c, v, false);
		case_unregister(&c, v, true);
		case_exit(&c, v);
		case_close(&c, v);
		if (c.trigger)
			case_invalidate(&c, v);
	}
	free(c.bounce);
out_close:
	t_target_close(&t);
	return t_exit_status(false);
}
