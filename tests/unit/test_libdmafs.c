// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libdmafs API tests in compat mode with a plain-memory buffer: argument
 * errors, data exactness across offsets and sizes, asynchronous requests
 * with cookies, end of file, both ring setups.
 *
 * Usage: test_libdmafs [DIR]   (a scratch file is made in DIR, default
 * $TMPDIR or /tmp).  Exit 0 pass, 1 fail, 77 skip (no O_DIRECT in DIR).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmafs/dmafs.h"

static int failures;

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			failures++;					\
			fprintf(stderr, "FAIL %s:%d: %s: ", __func__,	\
				__LINE__, #cond);			\
			fprintf(stderr, __VA_ARGS__);			\
			fputc('\n', stderr);				\
		}							\
	} while (0)

static void fill(unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 12)) ^ seed);
}

static void t_errors(struct dmafs_ring *r, struct dmafs_file *f,
		     struct dmafs_buf *b)
{
	uint32_t a = dmafs_file_offset_align(f);
	size_t bsz = dmafs_buf_size(b);

	CHECK(dmafs_write(r, 0, 0, 1, a) == -EINVAL, "unaligned file offset");
	CHECK(dmafs_write(r, 0, 0, 0, a + 1) == -EINVAL, "unaligned length");
	CHECK(dmafs_read(r, 0, 0, 0, 0) == -EINVAL, "zero length");
	CHECK(dmafs_read(r, 0, 1, 0, a) == -EINVAL, "unaligned buffer offset");
	CHECK(dmafs_read(r, 0, bsz - a + a, 0, a) == -EFAULT,
	      "past the buffer");
	CHECK(dmafs_read(r, 0, 0, 0, bsz + a) == -EFAULT, "longer than buffer");
	CHECK(dmafs_read(r, 1, 0, 0, a) == -EFAULT, "empty slot");
	CHECK(dmafs_read(r, 99, 0, 0, a) == -EFAULT, "slot out of range");
	CHECK(dmafs_ring_register(r, 99, b, f) == -EINVAL, "register slot 99");
	CHECK(dmafs_ring_unregister(r, 1) == 0, "unregister empty slot");
}

/* Write and read back at many (offset, size) pairs, data-exact. */
static void t_exact(struct dmafs_ring *r, struct dmafs_file *f,
		    struct dmafs_buf *b)
{
	uint32_t a = dmafs_file_offset_align(f);
	size_t bsz = dmafs_buf_size(b);
	unsigned char *p, *want = malloc(bsz);
	static const uint64_t offs[] = { 0, 1, 3, 256, 1000 };
	static const size_t lens[] = { 1, 2, 7, 256, 300, 512 };
	unsigned int seed = 1;

	dmafs_buf_map(b, (void **)&p);
	for (unsigned int i = 0; i < sizeof(offs) / sizeof(*offs); i++) {
		for (unsigned int j = 0; j < sizeof(lens) / sizeof(*lens);
		     j++, seed++) {
			uint64_t off = offs[i] * a;
			size_t len = lens[j] * a;
			int64_t ret;

			if (len > bsz / 2)
				continue;
			fill(p, len, seed);
			memcpy(want, p, len);
			ret = dmafs_write(r, 0, 0, off, len);
			CHECK(ret == (int64_t)len, "write %zu at %llu: %lld",
			      len, (unsigned long long)off, (long long)ret);
			memset(p + bsz / 2, 0xee, len);
			ret = dmafs_read(r, 0, bsz / 2, off, len);
			CHECK(ret == (int64_t)len, "read %zu at %llu: %lld",
			      len, (unsigned long long)off, (long long)ret);
			CHECK(!memcmp(p + bsz / 2, want, len),
			      "data at %llu+%zu differs",
			      (unsigned long long)off, len);
		}
	}
	free(want);
}

/* Queue depth requests with cookies, check each comes back once. */
static void t_async(struct dmafs_ring *r, struct dmafs_file *f,
		    struct dmafs_buf *b, unsigned int depth)
{
	uint32_t a = dmafs_file_offset_align(f);
	size_t chunk = 4 * (size_t)a;
	unsigned int seen[64] = { 0 };
	struct dmafs_completion c[64];
	unsigned char *p;
	unsigned int got = 0;

	dmafs_buf_map(b, (void **)&p);
	fill(p, chunk * depth, 99);
	for (unsigned int i = 0; i < depth; i++)
		CHECK(dmafs_queue_write(r, 0, i * chunk, i * chunk, chunk,
					&seen[i]) == 0, "queue write %u", i);
	CHECK(dmafs_queue_write(r, 0, 0, 0, chunk, NULL) == -EBUSY,
	      "queue beyond depth");
	CHECK(dmafs_read(r, 0, 0, 0, a) == -EBUSY, "sync while async");
	CHECK(dmafs_ring_unregister(r, 0) == -EBUSY, "unregister busy slot");
	CHECK(dmafs_ring_inflight(r) == depth, "inflight %u",
	      dmafs_ring_inflight(r));
	while (got < depth) {
		int n = dmafs_ring_reap(r, c, 64, 1);

		CHECK(n > 0, "reap: %d", n);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			unsigned int *s = c[i].cookie;

			CHECK(c[i].res == (int64_t)chunk, "res %lld",
			      (long long)c[i].res);
			(*s)++;
		}
		got += n;
	}
	for (unsigned int i = 0; i < depth; i++)
		CHECK(seen[i] == 1, "cookie %u seen %u times", i, seen[i]);
	CHECK(dmafs_ring_reap(r, c, 64, 0) == 0, "nothing left");
	/* Read back into the second half of the buffer, reverse order. */
	for (unsigned int i = depth; i-- > 0;)
		CHECK(dmafs_queue_read(r, 0, chunk * depth + i * chunk,
				       i * chunk, chunk, NULL) == 0,
		      "queue read %u", i);
	for (got = 0; got < depth;) {
		int n = dmafs_ring_reap(r, c, 64, depth - got);

		CHECK(n > 0, "reap: %d", n);
		if (n <= 0)
			break;
		got += n;
	}
	CHECK(!memcmp(p, p + chunk * depth, chunk * depth),
	      "async read back differs");
}

/* A read across EOF returns what is there; at EOF 0. */
static void t_eof(struct dmafs_ring *r, struct dmafs_file *f,
		  struct dmafs_buf *b)
{
	uint32_t a = dmafs_file_offset_align(f);
	int fd = dmafs_file_fd(f);
	int64_t ret;

	CHECK(ftruncate(fd, 3 * (off_t)a + 100) == 0, "truncate");
	ret = dmafs_read(r, 0, 0, 2 * a, 4 * a);
	CHECK(ret == a + 100, "read across EOF: %lld", (long long)ret);
	ret = dmafs_read(r, 0, 0, 8 * a, a);
	CHECK(ret == 0, "read past EOF: %lld", (long long)ret);
}

static int run(const char *dir, unsigned int rflags)
{
	char path[4096];
	struct dmafs_file *f;
	struct dmafs_ring *r;
	struct dmafs_buf *b;
	enum dmafs_reason why;
	int ret;

	snprintf(path, sizeof(path), "%s/libdmafs-test.%d", dir, getpid());
	ret = dmafs_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644, &f);
	if (ret == -EINVAL) {
		fprintf(stderr, "SKIP: %s: no O_DIRECT\n", dir);
		return 77;
	}
	CHECK(ret == 0, "open %s: %s", path, strerror(-ret));
	if (ret)
		return 1;
	CHECK(dmafs_ring_create(8, 4, rflags, &r) == 0, "ring");
	CHECK(dmafs_buf_alloc_mem(4 << 20, &b) == 0, "buffer");
	CHECK(dmafs_ring_slot_mode(r, 0, &why) == DMAFS_MODE_NONE, "empty");
	CHECK(dmafs_ring_register(r, 0, b, f) == 0, "register");
	CHECK(dmafs_ring_slot_mode(r, 0, &why) == DMAFS_MODE_COMPAT &&
	      why == DMAFS_REASON_NOT_DMABUF, "mode %d reason %d",
	      dmafs_ring_slot_mode(r, 0, NULL), why);
	CHECK(dmafs_buf_fd(b) == -1 && dmafs_buf_kind(b) == DMAFS_BUF_MEM,
	      "mem buffer");
	CHECK(dmafs_file_on_dmafs(f) ||
	      dmafs_file_daemon_mode(f) == DMAFS_DAEMON_UNKNOWN, "daemon mode");
	printf("%s (ring flags %#x): daemon mode %d, on_dmafs %d, align %u/%u, kernel ext %d\n",
	       dir, rflags, dmafs_file_daemon_mode(f), dmafs_file_on_dmafs(f), dmafs_file_offset_align(f),
	       dmafs_file_mem_align(f), dmafs_ring_kernel_has_dmabuf(r));
	t_errors(r, f, b);
	t_exact(r, f, b);
	t_async(r, f, b, 8);
	t_eof(r, f, b);
	dmafs_ring_destroy(r);
	dmafs_buf_free(b);
	dmafs_file_close(f);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR");
	struct dmafs_file *f;
	int ret;

	if (!dir)
		dir = "/tmp";
	CHECK(dmafs_file_open("/nonexistent/x", O_RDONLY, 0, &f) == -ENOENT,
	      "open nonexistent");
	CHECK(dmafs_file_open(dir, O_RDONLY, 0, &f) == -EISDIR ||
	      dmafs_file_open(dir, O_RDONLY, 0, &f) == -EINVAL, "open dir");
	CHECK(dmafs_path_is_dmafs("/nonexistent") == -ENOENT, "is_dmafs");
	CHECK(dmafs_path_is_dmafs("/proc") == 0, "/proc is not dmafs");
	CHECK(dmafs_buf_import(0, NULL) == -EINVAL, "import NULL");
	{
		struct dmafs_buf *b;
		int fd = open("/dev/null", O_RDONLY);

		CHECK(dmafs_buf_import(fd, &b) == -EINVAL, "import /dev/null");
		close(fd);
	}
	ret = run(dir, 0);
	if (ret == 0)
		ret = run(dir, DMAFS_RING_SINGLE_ISSUER);
	if (ret == 77 && !failures)
		return 77;
	if (failures) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	return 0;
}
