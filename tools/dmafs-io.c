// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * dmafs-io: read, write, verify and benchmark between a file and a dma-buf
 * with libdmafs.  See docs/man/dmafs-io.1.
 *
 * One dma-buf of qd * bs bytes (verify: two); request k uses the chunk at
 * k * bs, so a chunk is never in two requests at once.  Data checks use a
 * pattern of 64-bit words that encode the file position, so a block read
 * from the wrong place is caught, not only a wrong byte.
 *
 * Exit status: 0 success; 1 data mismatch (verify, read --check);
 * 2 usage error; 3 any other failure (setup, I/O error).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "dmafs/dmafs.h"

#define EXIT_MISMATCH	1
#define EXIT_USAGE	2
#define EXIT_ERROR	3

#define PATTERN_KEY	((uint64_t)0x5a5a << 32)
#define POS_MASK	(((uint64_t)1 << 48) - 1)
#define MAX_REPORTS	10

static struct {
	char *dmabuf;
	char *size;
	char *offset;
	char *bs;
	int qd;
	char *ring;
	gboolean compat;
	gint64 seed;
	char *input;
	char *output;
	gboolean check;
	gboolean no_prealloc;
	char *op;
	double time;
	gboolean progress;
	gboolean quiet;
} opt = {
	.qd = 8,
	.seed = 1,
};

static GOptionEntry entries[] = {
	{ "dmabuf", 'd', 0, G_OPTION_ARG_STRING, &opt.dmabuf,
	  "buffer: udmabuf (default), drm[:/dev/dri/cardN], mem", "KIND" },
	{ "size", 's', 0, G_OPTION_ARG_STRING, &opt.size,
	  "bytes to move (K/M/G suffixes); read: default to EOF; "
	  "others: 64M", "SIZE" },
	{ "offset", 'o', 0, G_OPTION_ARG_STRING, &opt.offset,
	  "file offset (default 0)", "OFF" },
	{ "bs", 'b', 0, G_OPTION_ARG_STRING, &opt.bs,
	  "bytes per I/O (default 1M)", "SIZE" },
	{ "qd", 'q', 0, G_OPTION_ARG_INT, &opt.qd,
	  "I/Os in flight (default 8)", "N" },
	{ "ring", 'r', 0, G_OPTION_ARG_STRING, &opt.ring,
	  "ring setup: plain (default), defer (SINGLE_ISSUER|DEFER_TASKRUN)",
	  "MODE" },
	{ "compat", 0, 0, G_OPTION_ARG_NONE, &opt.compat,
	  "force compat (bounce buffer) mode", NULL },
	{ "seed", 0, 0, G_OPTION_ARG_INT64, &opt.seed,
	  "pattern seed (default 1)", "N" },
	{ "input", 'i', 0, G_OPTION_ARG_FILENAME, &opt.input,
	  "write: data from this file instead of the pattern", "PATH" },
	{ "output", 'O', 0, G_OPTION_ARG_FILENAME, &opt.output,
	  "read: also store the data read into this file", "PATH" },
	{ "check", 'c', 0, G_OPTION_ARG_NONE, &opt.check,
	  "read: compare with the pattern of --seed", NULL },
	{ "no-prealloc", 0, 0, G_OPTION_ARG_NONE, &opt.no_prealloc,
	  "write, verify, bench: do not fallocate the range first", NULL },
	{ "op", 0, 0, G_OPTION_ARG_STRING, &opt.op,
	  "bench: read (default), write, randread, randwrite", "OP" },
	{ "time", 't', 0, G_OPTION_ARG_DOUBLE, &opt.time,
	  "bench: run for SECONDS (default: the range once)", "SECONDS" },
	{ "progress", 'P', 0, G_OPTION_ARG_NONE, &opt.progress,
	  "progress lines on stderr (default: only on a terminal)", NULL },
	{ "quiet", 'Q', 0, G_OPTION_ARG_NONE, &opt.quiet,
	  "print only errors", NULL },
	{ NULL }
};

enum cmd { CMD_READ, CMD_WRITE, CMD_VERIFY, CMD_BENCH };

/* One pass over a file range with one buffer. */
struct job {
	const char *name;		/* for messages */
	struct dmafs_ring *ring;
	struct dmafs_buf *buf;
	void *map;			/* CPU mapping when data is touched */
	unsigned int slot;
	bool write;
	bool random;
	bool fill;			/* write: fill chunks (pattern/input) */
	bool check;			/* read: compare with the pattern */
	int in_fd, out_fd;		/* --input / --output, or -1 */
	uint64_t start, end;		/* file range */
	size_t bs;
	unsigned int qd;
	double deadline;		/* bench --time, 0: one pass */
	/* state */
	uint64_t next;
	uint64_t *chunk_off;		/* per chunk: file offset in flight */
	size_t *chunk_len;
	unsigned int *free_chunks;
	unsigned int nr_free;
	bool stop;
	/* results */
	uint64_t bytes, ios;
	uint64_t mismatches;
	int error;			/* first -errno */
	bool eof;
};

static bool show_progress;
static double last_progress;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mult = 1;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mult = 1ull << 10; end++; break;
	case 'm': case 'M': mult = 1ull << 20; end++; break;
	case 'g': case 'G': mult = 1ull << 30; end++; break;
	case 't': case 'T': mult = 1ull << 40; end++; break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end || (v && mult > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mult;
	return 0;
}

static inline uint64_t pattern_word(uint64_t seed, uint64_t pos)
{
	return (seed << 48) ^ (pos & POS_MASK) ^ PATTERN_KEY;
}

static void pattern_fill(void *dst, size_t len, uint64_t seed, uint64_t pos)
{
	uint64_t *w = dst;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = pattern_word(seed, pos + i * 8);
}

/* Byte offset of the first wrong word, or -1. */
static long pattern_check(const void *src, size_t len, uint64_t seed,
			  uint64_t pos)
{
	const uint64_t *w = src;

	for (size_t i = 0; i < len / 8; i++) {
		if (w[i] != pattern_word(seed, pos + i * 8))
			return (long)(i * 8);
	}
	return -1;
}

static void progress(struct job *j, bool last)
{
	double t = now();
	uint64_t total = j->end - j->start;

	if (!show_progress || (!last && t - last_progress < 0.5))
		return;
	last_progress = t;
	if (j->deadline)
		fprintf(stderr, "%s: %" PRIu64 " MiB, %" PRIu64 " I/Os",
			j->name, j->bytes >> 20, j->ios);
	else
		fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 " MiB (%.0f%%)",
			j->name, j->bytes >> 20, total >> 20,
			total ? 100.0 * j->bytes / total : 100.0);
	fputs(isatty(STDERR_FILENO) && !last ? "\r" : "\n", stderr);
	fflush(stderr);
}

static void job_fail(struct job *j, int err, const char *what, uint64_t off)
{
	if (!j->error) {
		j->error = err;
		fprintf(stderr, "dmafs-io: %s at file offset %" PRIu64 ": %s\n",
			what, off, g_strerror(-err));
	}
	j->stop = true;
}

/* Next file offset and length to issue; false when there is none. */
static bool job_next(struct job *j, uint64_t *off, size_t *len)
{
	uint64_t range = j->end - j->start;

	if (j->stop || !range)
		return false;
	if (j->deadline && now() >= j->deadline)
		return false;
	if (j->random) {
		uint64_t nblocks = (range + j->bs - 1) / j->bs;

		if (!j->deadline && j->next >= j->end)
			return false;
		*off = j->start + (uint64_t)g_random_int_range(0,
			(gint32)MIN(nblocks, (uint64_t)G_MAXINT32)) * j->bs;
		j->next += j->bs;
	} else {
		if (j->next >= j->end) {
			if (!j->deadline)
				return false;
			j->next = j->start;	/* bench --time: wrap */
		}
		*off = j->next;
		j->next += j->bs;
	}
	*len = MIN((uint64_t)j->bs, j->end - *off);
	return true;
}

static int chunk_fill(struct job *j, unsigned int k, uint64_t off, size_t len)
{
	char *p = (char *)j->map + (size_t)k * j->bs;
	int ret;

	ret = dmafs_buf_cpu_begin(j->buf, DMAFS_SYNC_WRITE);
	if (ret)
		return ret;
	if (j->in_fd >= 0) {
		ssize_t n = pread(j->in_fd, p, len, off - j->start);

		if (n < 0)
			ret = -errno;
		else if ((size_t)n < len)
			memset(p + n, 0, len - n);
	} else {
		pattern_fill(p, len, opt.seed, off);
	}
	dmafs_buf_cpu_end(j->buf, DMAFS_SYNC_WRITE);
	return ret;
}

static int chunk_consume(struct job *j, unsigned int k, uint64_t off,
			 size_t len)
{
	const char *p = (const char *)j->map + (size_t)k * j->bs;
	int ret;

	ret = dmafs_buf_cpu_begin(j->buf, DMAFS_SYNC_READ);
	if (ret)
		return ret;
	if (j->check) {
		long bad = pattern_check(p, len, opt.seed, off);

		if (bad >= 0) {
			uint64_t got, want = pattern_word(opt.seed, off + bad);

			memcpy(&got, p + bad, 8);
			if (j->mismatches < MAX_REPORTS)
				fprintf(stderr,
					"dmafs-io: %s: mismatch at file offset %" PRIu64
					": %#018" PRIx64 ", expected %#018" PRIx64 "\n",
					j->name, off + bad, got, want);
			j->mismatches++;
		}
	}
	if (j->out_fd >= 0 && pwrite(j->out_fd, p, len, off - j->start) !=
	    (ssize_t)len)
		ret = errno ? -errno : -EIO;
	dmafs_buf_cpu_end(j->buf, DMAFS_SYNC_READ);
	return ret;
}

static int job_run(struct job *j)
{
	struct dmafs_completion *comps = g_new0(struct dmafs_completion, j->qd);
	int ret;

	j->chunk_off = g_new0(uint64_t, j->qd);
	j->chunk_len = g_new0(size_t, j->qd);
	j->free_chunks = g_new0(unsigned int, j->qd);
	for (unsigned int k = 0; k < j->qd; k++)
		j->free_chunks[j->nr_free++] = j->qd - 1 - k;
	j->next = j->start;

	for (;;) {
		uint64_t off;
		size_t len;
		int n;

		while (j->nr_free && job_next(j, &off, &len)) {
			unsigned int k = j->free_chunks[--j->nr_free];

			j->chunk_off[k] = off;
			j->chunk_len[k] = len;
			if (j->fill) {
				ret = chunk_fill(j, k, off, len);
				if (ret) {
					j->free_chunks[j->nr_free++] = k;
					job_fail(j, ret, "filling the buffer", off);
					break;
				}
			}
			if (j->write)
				ret = dmafs_queue_write(j->ring, j->slot,
							(uint64_t)k * j->bs,
							off, len,
							GUINT_TO_POINTER(k + 1));
			else
				ret = dmafs_queue_read(j->ring, j->slot,
						       (uint64_t)k * j->bs,
						       off, len,
						       GUINT_TO_POINTER(k + 1));
			if (ret) {
				j->free_chunks[j->nr_free++] = k;
				job_fail(j, ret, j->write ? "write" : "read",
					 off);
				break;
			}
		}
		if (!dmafs_ring_inflight(j->ring))
			break;
		n = dmafs_ring_reap(j->ring, comps, j->qd, 1);
		if (n < 0) {
			job_fail(j, n, "waiting for completions", j->next);
			break;
		}
		for (int i = 0; i < n; i++) {
			unsigned int k = GPOINTER_TO_UINT(comps[i].cookie) - 1;
			int64_t res = comps[i].res;

			j->free_chunks[j->nr_free++] = k;
			if (res < 0) {
				job_fail(j, res, j->write ? "write" : "read",
					 j->chunk_off[k]);
				continue;
			}
			j->ios++;
			j->bytes += res;
			if ((size_t)res < j->chunk_len[k]) {
				/* Only reads are short: end of file. */
				j->eof = true;
				if (!j->deadline)
					j->end = MIN(j->end,
						     j->chunk_off[k] + res);
			}
			if (!j->write && res && (j->check || j->out_fd >= 0) &&
			    (ret = chunk_consume(j, k, j->chunk_off[k], res)))
				job_fail(j, ret, "reading the buffer",
					 j->chunk_off[k]);
		}
		progress(j, false);
	}
	progress(j, true);
	g_free(comps);
	g_free(j->chunk_off);
	g_free(j->chunk_len);
	g_free(j->free_chunks);
	return j->error;
}

static int buf_alloc(size_t size, struct dmafs_buf **out)
{
	const char *kind = opt.dmabuf ? opt.dmabuf : "udmabuf";

	if (!strcmp(kind, "udmabuf"))
		return dmafs_buf_alloc_udmabuf(size, out);
	if (!strcmp(kind, "mem"))
		return dmafs_buf_alloc_mem(size, out);
	if (!strcmp(kind, "drm"))
		return dmafs_buf_alloc_drm(NULL, size, out);
	if (!strncmp(kind, "drm:", 4))
		return dmafs_buf_alloc_drm(kind + 4, size, out);
	return -EINVAL;
}

static void print_mode(struct dmafs_ring *ring, unsigned int slot)
{
	enum dmafs_reason why;
	enum dmafs_mode mode = dmafs_ring_slot_mode(ring, slot, &why);

	if (opt.quiet)
		return;
	if (mode == DMAFS_MODE_COMPAT)
		printf("mode: compat (%s)\n", dmafs_reason_str(why));
	else
		printf("mode: %s\n", dmafs_mode_name(mode));
}

static void print_result(const struct job *j, double secs, double cpu)
{
	double mbs = secs > 0 ? j->bytes / secs / 1e6 : 0;

	if (opt.quiet)
		return;
	printf("%s: %" PRIu64 " bytes in %" PRIu64 " I/Os, %.3f s, %.1f MB/s",
	       j->name, j->bytes, j->ios, secs, mbs);
	if (j->eof)
		printf(", end of file");
	printf("\n");
	if (cpu >= 0)
		printf("bench: iops %.0f mbps %.1f cpu_us_per_io %.2f\n",
		       secs > 0 ? j->ios / secs : 0, mbs,
		       j->ios ? cpu * 1e6 / j->ios : 0);
}

static int G_GNUC_PRINTF(2, 3) usage_error(GOptionContext *ctx,
					  const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dmafs-io: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(dmafs-io --help for usage)\n");
	g_option_context_free(ctx);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	g_autoptr(GError) err = NULL;
	GOptionContext *ctx;
	struct dmafs_file *file = NULL;
	struct dmafs_ring *ring = NULL;
	struct dmafs_buf *bufa = NULL, *bufb = NULL;
	uint64_t size = 64ull << 20, offset = 0, bs = 1ull << 20;
	bool size_given = false;
	unsigned int rflags = 0;
	int in_fd = -1, out_fd = -1;
	int oflags, ret, status = EXIT_ERROR;
	const char *path;
	enum cmd cmd;
	size_t bufsize;

	ctx = g_option_context_new("read|write|verify|bench FILE");
	g_option_context_set_summary(ctx,
		"Move data between FILE and a dma-buf with libdmafs.\n"
		"  read    FILE -> dma-buf (--check, --output)\n"
		"  write   dma-buf -> FILE (pattern, or --input)\n"
		"  verify  write a pattern, read it back into another dma-buf, "
		"compare\n"
		"  bench   IOPS, MB/s and CPU time per I/O (--op, --time)");
	g_option_context_set_description(ctx,
		"Exit status: 0 success, 1 data mismatch, 2 usage error, "
		"3 other failure.");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage_error(ctx, "%s", err->message);
	if (argc != 3)
		return usage_error(ctx, "%s", "need a command and a FILE");
	if (!strcmp(argv[1], "read"))
		cmd = CMD_READ;
	else if (!strcmp(argv[1], "write"))
		cmd = CMD_WRITE;
	else if (!strcmp(argv[1], "verify"))
		cmd = CMD_VERIFY;
	else if (!strcmp(argv[1], "bench"))
		cmd = CMD_BENCH;
	else
		return usage_error(ctx, "unknown command '%s'", argv[1]);
	path = argv[2];
	if (opt.size) {
		if (parse_size(opt.size, &size) || !size)
			return usage_error(ctx, "bad --size '%s'", opt.size);
		size_given = true;
	}
	if (opt.offset && parse_size(opt.offset, &offset))
		return usage_error(ctx, "bad --offset '%s'", opt.offset);
	if (opt.bs && (parse_size(opt.bs, &bs) || !bs || bs > (1ull << 30)))
		return usage_error(ctx, "bad --bs '%s'", opt.bs);
	if (opt.qd < 1 || opt.qd > 1024)
		return usage_error(ctx, "bad --qd %d (1..1024)", opt.qd);
	if (opt.ring && !strcmp(opt.ring, "defer"))
		rflags |= DMAFS_RING_SINGLE_ISSUER;
	else if (opt.ring && strcmp(opt.ring, "plain"))
		return usage_error(ctx, "bad --ring '%s'", opt.ring);
	if (opt.compat)
		rflags |= DMAFS_RING_FORCE_COMPAT;
	if (opt.dmabuf && strcmp(opt.dmabuf, "udmabuf") &&
	    strcmp(opt.dmabuf, "mem") && strcmp(opt.dmabuf, "drm") &&
	    strncmp(opt.dmabuf, "drm:", 4))
		return usage_error(ctx, "bad --dmabuf '%s'", opt.dmabuf);
	if (opt.op && strcmp(opt.op, "read") && strcmp(opt.op, "write") &&
	    strcmp(opt.op, "randread") && strcmp(opt.op, "randwrite"))
		return usage_error(ctx, "bad --op '%s'", opt.op);
	if ((opt.input && cmd != CMD_WRITE) ||
	    ((opt.output || opt.check) && cmd != CMD_READ) ||
	    ((opt.op || opt.time) && cmd != CMD_BENCH))
		return usage_error(ctx, "%s", "option not valid for this command");
	g_option_context_free(ctx);
	show_progress = opt.progress || isatty(STDERR_FILENO);

	bool writes = cmd == CMD_WRITE || cmd == CMD_VERIFY ||
		      (cmd == CMD_BENCH && opt.op && strstr(opt.op, "write"));

	oflags = writes ? O_RDWR | O_CREAT : O_RDONLY;
	if (cmd == CMD_VERIFY)
		oflags = O_RDWR | O_CREAT;
	ret = dmafs_file_open(path, oflags, 0644, &file);
	if (ret) {
		fprintf(stderr, "dmafs-io: %s: %s\n", path, g_strerror(-ret));
		return EXIT_ERROR;
	}
	if (opt.input) {
		struct stat st;

		in_fd = open(opt.input, O_RDONLY | O_CLOEXEC);
		if (in_fd < 0 || fstat(in_fd, &st) < 0) {
			fprintf(stderr, "dmafs-io: %s: %s\n", opt.input,
				g_strerror(errno));
			goto out;
		}
		if (!size_given) {
			uint32_t a = dmafs_file_offset_align(file);

			size = ((uint64_t)st.st_size + a - 1) / a * a;
		}
	}
	if (cmd == CMD_READ && !size_given) {
		int64_t fsize = dmafs_file_size(file);
		uint32_t a = dmafs_file_offset_align(file);

		if (fsize < 0) {
			fprintf(stderr, "dmafs-io: %s: %s\n", path,
				g_strerror(-fsize));
			goto out;
		}
		size = (uint64_t)fsize > offset ?
		       ((uint64_t)fsize - offset + a - 1) / a * a : 0;
	}
	if (opt.output) {
		out_fd = open(opt.output, O_WRONLY | O_CREAT | O_TRUNC |
			      O_CLOEXEC, 0644);
		if (out_fd < 0) {
			fprintf(stderr, "dmafs-io: %s: %s\n", opt.output,
				g_strerror(errno));
			goto out;
		}
	}
	if (bs > size && size)
		bs = size;
	bufsize = (size_t)bs * opt.qd;

	ret = dmafs_ring_create(opt.qd, 2, rflags, &ring);
	if (ret) {
		fprintf(stderr, "dmafs-io: io_uring: %s\n", g_strerror(-ret));
		goto out;
	}
	ret = buf_alloc(bufsize, &bufa);
	if (!ret && cmd == CMD_VERIFY)
		ret = buf_alloc(bufsize, &bufb);
	if (ret) {
		fprintf(stderr, "dmafs-io: allocating a %s buffer of %zu bytes: %s\n",
			opt.dmabuf ? opt.dmabuf : "udmabuf", bufsize,
			g_strerror(-ret));
		goto out;
	}
	ret = dmafs_ring_register(ring, 0, bufa, file);
	if (!ret && bufb)
		ret = dmafs_ring_register(ring, 1, bufb, file);
	if (ret) {
		fprintf(stderr, "dmafs-io: registering the buffer for %s: %s\n",
			path, g_strerror(-ret));
		goto out;
	}
	if (!opt.quiet) {
		const char *drv = dmafs_buf_driver(bufa);

		enum dmafs_daemon_mode dm = dmafs_file_daemon_mode(file);

		printf("file: %s%s%s\n", path,
		       dmafs_file_on_dmafs(file) ? " (dmafs" : "",
		       !dmafs_file_on_dmafs(file) ? "" :
		       dm == DMAFS_DAEMON_KEXT ? ", daemon mode kext)" :
		       dm == DMAFS_DAEMON_COMPAT ? ", daemon mode compat)" :
		       ")");
		printf("buffer: %s%s%s, %zu bytes\n",
		       dmafs_buf_kind_name(dmafs_buf_kind(bufa)),
		       drv ? " " : "", drv ? drv : "", dmafs_buf_size(bufa));
	}
	print_mode(ring, 0);
	if (writes && !opt.no_prealloc && size) {
		ret = dmafs_prealloc(file, offset, size);
		if (ret && ret != -EOPNOTSUPP) {
			fprintf(stderr, "dmafs-io: preallocating %s: %s\n",
				path, g_strerror(-ret));
			goto out;
		}
	}

	struct job w = {
		.name = "write", .ring = ring, .buf = bufa, .slot = 0,
		.write = true, .fill = true, .in_fd = in_fd, .out_fd = -1,
		.start = offset, .end = offset + size, .bs = bs, .qd = opt.qd,
	};
	struct job r = {
		.name = "read", .ring = ring, .buf = bufa, .slot = 0,
		.write = false, .check = opt.check, .in_fd = -1,
		.out_fd = out_fd, .start = offset, .end = offset + size,
		.bs = bs, .qd = opt.qd,
	};
	double t0, cpu0;

	if (cmd != CMD_BENCH) {
		ret = dmafs_buf_map(bufa, &w.map);
		if (!ret && bufb)
			ret = dmafs_buf_map(bufb, &r.map);
		if (ret) {
			fprintf(stderr, "dmafs-io: mapping the buffer: %s\n",
				g_strerror(-ret));
			goto out;
		}
		if (!bufb)
			r.map = w.map;
	}
	status = EXIT_SUCCESS;
	switch (cmd) {
	case CMD_WRITE:
		t0 = now();
		if (job_run(&w))
			status = EXIT_ERROR;
		print_result(&w, now() - t0, -1);
		break;
	case CMD_READ:
		t0 = now();
		if (job_run(&r))
			status = EXIT_ERROR;
		else if (r.mismatches)
			status = EXIT_MISMATCH;
		print_result(&r, now() - t0, -1);
		break;
	case CMD_VERIFY:
		t0 = now();
		if (job_run(&w)) {
			status = EXIT_ERROR;
			break;
		}
		print_result(&w, now() - t0, -1);
		r.buf = bufb;
		r.slot = 1;
		r.check = true;
		t0 = now();
		if (job_run(&r))
			status = EXIT_ERROR;
		print_result(&r, now() - t0, -1);
		if (status == EXIT_SUCCESS && r.bytes != size) {
			fprintf(stderr, "dmafs-io: read back %" PRIu64
				" of %" PRIu64 " bytes\n", r.bytes, size);
			r.mismatches++;
		}
		if (status == EXIT_SUCCESS && r.mismatches)
			status = EXIT_MISMATCH;
		if (!opt.quiet)
			printf("verify: %s\n", status == EXIT_SUCCESS ?
			       "ok" : "FAILED");
		break;
	case CMD_BENCH: {
		struct job *b = writes ? &w : &r;

		b->fill = false;
		b->check = false;
		b->random = opt.op && !strncmp(opt.op, "rand", 4);
		b->name = opt.op ? opt.op : "read";
		cpu0 = cpu_seconds();
		t0 = now();
		if (opt.time > 0)
			b->deadline = t0 + opt.time;
		if (job_run(b))
			status = EXIT_ERROR;
		print_result(b, now() - t0, cpu_seconds() - cpu0);
		break;
	}
	}

out:
	dmafs_ring_destroy(ring);
	dmafs_buf_free(bufa);
	dmafs_buf_free(bufb);
	dmafs_file_close(file);
	if (in_fd >= 0)
		close(in_fd);
	if (out_fd >= 0 && close(out_fd) < 0 && status == EXIT_SUCCESS) {
		fprintf(stderr, "dmafs-io: %s: %s\n", opt.output,
			g_strerror(errno));
		status = EXIT_ERROR;
	}
	return status;
}
