// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * dmabuf_bench: random reads from a block device (or a file) in three ways,
 * for the VM benchmark bench/vm-dmabuf.sh:
 *
 *   dmabuf   IORING_OP_READ_FIXED into a udmabuf registered as a dma-buf
 *            fixed buffer (kernel extension, layer 1)
 *   regbuf   IORING_OP_READ_FIXED into an ordinary registered buffer
 *   pread    pread(2) on the O_DIRECT fd at queue depth 1; at a deeper
 *            queue IORING_OP_READ with unregistered buffers
 *
 * Usage: dmabuf_bench TARGET [-m MODE] [-b BS] [-q QD] [-t SECONDS]
 *                     [-s SPAN] [-S SEED]
 *
 * Each run prints one JSON object per line: mode, bs, qd, ios, seconds,
 * iops, and CPU time per I/O twice: "cpu_us_per_io" from the process's
 * rusage (user + system) and "sys_us_per_io" from /proc/stat (every CPU's
 * busy time, which includes interrupt and softirq completion work done
 * outside the process).  Offsets are uniformly random, aligned to BS,
 * within the first SPAN bytes (default: the target's size, at most 1 GiB).
 * Reads only: the target's contents are left alone.
 *
 * Exit status 0, 1 on any failed I/O, 77 when the dma-buf mode cannot run
 * (no udmabuf or no extension).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

enum mode { M_DMABUF, M_REGBUF, M_PREAD };
static const char *const mode_names[] = { "dmabuf", "regbuf", "pread" };

struct opts {
	const char *target;
	enum mode mode;
	uint32_t bs;
	unsigned int qd;
	double seconds;
	uint64_t span;
	uint64_t seed;
};

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; break;
	case 'm': case 'M': v <<= 20; break;
	case 'g': case 'G': v <<= 30; break;
	case '\0': break;
	default:
		fprintf(stderr, "dmabuf_bench: bad size '%s'\n", s);
		exit(2);
	}
	return v;
}

/* Busy and total jiffies of all CPUs from the first line of /proc/stat. */
static int cpu_busy(uint64_t *busy)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 7)
		return -EIO;
	/* user nice system [idle] [iowait] irq softirq steal */
	*busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	return 0;
}

static double rusage_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static uint64_t next_off(const struct opts *o, uint64_t *rng)
{
	return (t_rand(rng) % (o->span / o->bs)) * o->bs;
}

/* qd 1 pread(2) loop. */
static int run_pread(const struct opts *o, int fd, uint64_t *ios)
{
	void *buf = t_alloc_aligned(o->bs);
	uint64_t rng = o->seed;
	double end = t_now() + o->seconds;

	if (!buf)
		return -ENOMEM;
	while (t_now() < end) {
		for (int i = 0; i < 64; i++) {
			ssize_t r = pread(fd, buf, o->bs, next_off(o, &rng));

			if (r != (ssize_t)o->bs) {
				fprintf(stderr, "pread: %s\n",
					r < 0 ? strerror(errno) : "short");
				free(buf);
				return -EIO;
			}
			(*ios)++;
		}
	}
	free(buf);
	return 0;
}

static void prep(const struct opts *o, struct io_uring_sqe *sqe, int fd,
		 uint8_t *bufs, unsigned int i, uint64_t off)
{
	switch (o->mode) {
	case M_DMABUF:
		/* addr is a byte offset in the dma-buf, not a pointer. */
		io_uring_prep_read_fixed(sqe, fd,
					 (void *)(uintptr_t)((uint64_t)i * o->bs),
					 o->bs, off, 0);
		break;
	case M_REGBUF:
		io_uring_prep_read_fixed(sqe, fd, bufs + (size_t)i * o->bs,
					 o->bs, off, 0);
		break;
	case M_PREAD:
		io_uring_prep_read(sqe, fd, bufs + (size_t)i * o->bs, o->bs,
				   off);
		break;
	}
	sqe->user_data = i;
}

/* Keep qd reads in flight until the time is up. */
static int run_ring(const struct opts *o, int fd, uint64_t *ios)
{
	size_t len = (size_t)o->bs * o->qd;
	struct t_dmabuf db = { .fd = -1, .exporter_fd = -1 };
	uint8_t *bufs = NULL;
	struct io_uring ring;
	uint64_t rng = o->seed;
	unsigned int inflight = 0;
	bool stop = false;
	double end;
	int ret;

	ret = t_ring_init(&ring, o->qd, 0, 1);
	if (ret)
		return ret;
	if (o->mode == M_DMABUF) {
		ret = t_dmabuf_create(T_SRC_UDMABUF, len, false, &db);
		if (ret) {
			fprintf(stderr, "udmabuf: %s\n", strerror(-ret));
			ret = ret == -ENODEV ? -ENOTSUP : ret;
			goto out;
		}
		ret = t_buf_register(&ring, 0, &db, fd);
		if (ret) {
			fprintf(stderr, "dma-buf registration: %s\n",
				strerror(-ret));
			ret = -ENOTSUP;
			goto out;
		}
	} else {
		bufs = t_alloc_aligned(len);
		if (!bufs) {
			ret = -ENOMEM;
			goto out;
		}
		if (o->mode == M_REGBUF) {
			struct iovec iov = { bufs, len };

			ret = io_uring_register_buffers_update_tag(&ring, 0,
								   &iov, NULL,
								   1);
			if (ret != 1) {
				fprintf(stderr, "buffer registration: %s\n",
					strerror(-ret));
				ret = ret < 0 ? ret : -EIO;
				goto out;
			}
		}
	}

	end = t_now() + o->seconds;
	for (unsigned int i = 0; i < o->qd; i++)
		prep(o, io_uring_get_sqe(&ring), fd, bufs, i,
		     next_off(o, &rng));
	inflight = o->qd;
	ret = io_uring_submit(&ring);
	if (ret < 0)
		goto out;
	ret = 0;
	while (inflight) {
		struct io_uring_cqe *cqe;
		unsigned int slot;
		int res;

		ret = io_uring_wait_cqe(&ring, &cqe);
		if (ret)
			goto out;
		slot = (unsigned int)cqe->user_data;
		res = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		inflight--;
		if (res == -EAGAIN) {
			/* Spurious by contract: the same request again. */
		} else if (res != (int)o->bs) {
			fprintf(stderr, "%s read: %s\n", mode_names[o->mode],
				res < 0 ? strerror(-res) : "short");
			ret = -EIO;
			stop = true;
			continue;
		} else {
			(*ios)++;
		}
		if (stop || ((*ios & 63) == 0 && t_now() >= end)) {
			stop = true;
			continue;
		}
		prep(o, io_uring_get_sqe(&ring), fd, bufs, slot,
		     next_off(o, &rng));
		inflight++;
		res = io_uring_submit(&ring);
		if (res < 0) {
			ret = res;
			goto out;
		}
	}
out:
	io_uring_queue_exit(&ring);
	t_dmabuf_destroy(&db);
	free(bufs);
	return ret;
}

static void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: dmabuf_bench TARGET [-m dmabuf|regbuf|pread] [-b BS] "
		"[-q QD] [-t SECONDS] [-s SPAN] [-S SEED]\n");
	exit(status);
}

int main(int argc, char **argv)
{
	struct opts o = { .mode = M_DMABUF, .bs = 4096, .qd = 1,
			  .seconds = 5, .seed = 0x9e3779b97f4a7c15ULL };
	struct t_target t;
	uint64_t ios = 0, busy0, busy1;
	double t0, t1, cpu0, cpu1;
	long hz = sysconf(_SC_CLK_TCK);
	int c, ret;

	t_prog = "dmabuf_bench";
	while ((c = getopt(argc, argv, "m:b:q:t:s:S:h")) != -1) {
		switch (c) {
		case 'm':
			for (o.mode = 0; o.mode <= M_PREAD; o.mode++)
				if (!strcmp(optarg, mode_names[o.mode]))
					break;
			if (o.mode > M_PREAD)
				usage(2);
			break;
		case 'b': o.bs = (uint32_t)parse_size(optarg); break;
		case 'q': o.qd = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 't': o.seconds = strtod(optarg, NULL); break;
		case 's': o.span = parse_size(optarg); break;
		case 'S': o.seed = strtoull(optarg, NULL, 0) | 1; break;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (optind + 1 != argc || !o.qd || o.qd > 1024 || !o.bs ||
	    o.bs % 512 || o.seconds <= 0)
		usage(2);
	o.target = argv[optind];

	ret = t_target_open(o.target, &t);
	if (ret) {
		fprintf(stderr, "dmabuf_bench: %s: %s\n", o.target,
			strerror(-ret));
		return 1;
	}
	if (!o.span || o.span > t.size)
		o.span = t.size < T_GiB ? t.size : T_GiB;
	if (o.span < o.bs || o.bs % t.lba) {
		fprintf(stderr, "dmabuf_bench: block size %u does not fit "
			"(span %" PRIu64 ", LBA %u)\n", o.bs, o.span, t.lba);
		return 2;
	}

	if (cpu_busy(&busy0))
		busy0 = 0;
	cpu0 = rusage_s();
	t0 = t_now();
	if (o.mode == M_PREAD && o.qd == 1)
		ret = run_pread(&o, t.fd, &ios);
	else
		ret = run_ring(&o, t.fd, &ios);
	t1 = t_now();
	cpu1 = rusage_s();
	if (cpu_busy(&busy1))
		busy1 = busy0;
	t_target_close(&t);
	if (ret == -ENOTSUP)
		return 77;
	if (ret) {
		fprintf(stderr, "dmabuf_bench: %s: %s\n", mode_names[o.mode],
			strerror(-ret));
		return 1;
	}
	if (!ios)
		return 1;
	printf("{\"mode\": \"%s\", \"bs\": %u, \"qd\": %u, \"ios\": %" PRIu64
	       ", \"seconds\": %.3f, \"iops\": %.1f, \"cpu_us_per_io\": %.2f, "
	       "\"sys_us_per_io\": %.2f}\n",
	       mode_names[o.mode], o.bs, o.qd, ios, t1 - t0, ios / (t1 - t0),
	       (cpu1 - cpu0) * 1e6 / ios,
	       (double)(busy1 - busy0) * 1e6 / hz / ios);
	return 0;
}
