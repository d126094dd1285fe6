// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * metabench: the metadata workloads of bench/fs-bench.sh.
 *
 * Each command runs one tight loop of system calls on a directory of the
 * filesystem under test and prints one line:
 *
 *     ops=N secs=S bytes=B
 *
 * where secs is the wall time of the loop alone (CLOCK_MONOTONIC), not the
 * program's start-up.  Names are relative to a directory fd (the *at()
 * calls), as a real program working in one directory would use them, so
 * the loop measures the filesystem and not the path walk from /.
 *
 * Usage:
 *   metabench create DIR N SIZE [fsync]  create PREFIX f0000000..N-1 with
 *                                        SIZE bytes each (0: empty), and
 *                                        fsync each file before close
 *   metabench stat DIR N [PREFIX]        fstatat() every file
 *   metabench readdir DIR [PASSES]       read every entry PASSES times
 *   metabench rename DIR N               f* -> r* in the same directory
 *   metabench unlink DIR N [PREFIX]      unlinkat() every file
 *   metabench sync DIR                   syncfs(), then fsync() of DIR and
 *                                        of DIR/.bench-sync (created if
 *                                        needed): the ways each filesystem
 *                                        under test can be made to flush
 *
 * Exit status 0 on success; on the first failing call it prints the call,
 * the file and the error on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *name)
{
	fprintf(stderr, "metabench: %s %s: %s\n", what, name ? name : "",
		strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: metabench create DIR N SIZE [fsync]\n"
		"       metabench stat DIR N [PREFIX]\n"
		"       metabench readdir DIR [PASSES]\n"
		"       metabench rename DIR N\n"
		"       metabench unlink DIR N [PREFIX]\n"
		"       metabench sync DIR\n");
	exit(2);
}

static long num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < 0)
		usage();
	return v;
}

static void name_of(char *buf, size_t len, const char *prefix, long i)
{
	snprintf(buf, len, "%s%07ld", prefix, i);
}

static void report(long ops, double secs, long long bytes)
{
	printf("ops=%ld secs=%.6f bytes=%lld\n", ops, secs, bytes);
}

static int cmd_create(int dfd, long n, long size, int do_fsync)
{
	char name[64], *buf = NULL;
	double t0;

	if (size) {
		buf = malloc(size);
		if (!buf)
			die("malloc", NULL);
		/* Not all zeros, so that nothing can treat it as a hole. */
		for (long i = 0; i < size; i++)
			buf[i] = (char)(i * 131 + 7);
	}
	t0 = now();
	for (long i = 0; i < n; i++) {
		int fd;

		name_of(name, sizeof(name), "f", i);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			die("open", name);
		for (long done = 0; done < size;) {
			ssize_t w = write(fd, buf + done, size - done);

			if (w <= 0)
				die("write", name);
			done += w;
		}
		if (do_fsync && fsync(fd))
			die("fsync", name);
		if (close(fd))
			die("close", name);
	}
	report(n, now() - t0, (long long)n * size);
	free(buf);
	return 0;
}

static int cmd_stat(int dfd, long n, const char *prefix)
{
	char name[64];
	struct stat st;
	double t0 = now();

	for (long i = 0; i < n; i++) {
		name_of(name, sizeof(name), prefix, i);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
			die("stat", name);
	}
	report(n, now() - t0, 0);
	return 0;
}

static int cmd_readdir(int dfd, long passes)
{
	long entries = 0;
	double t0 = now();

	for (long p = 0; p < passes; p++) {
		int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
		DIR *d;
		struct dirent *de;

		if (fd < 0)
			die("open", ".");
		d = fdopendir(fd);
		if (!d)
			die("fdopendir", ".");
		errno = 0;
		while ((de = readdir(d)))
			entries++;
		if (errno)
			die("readdir", ".");
		closedir(d);
	}
	report(entries, now() - t0, 0);
	return 0;
}

static int cmd_rename(int dfd, long n)
{
	char from[64], to[64];
	double t0 = now();

	for (long i = 0; i < n; i++) {
		name_of(from, sizeof(from), "f", i);
		name_of(to, sizeof(to), "r", i);
		if (renameat(dfd, from, dfd, to))
			die("rename", from);
	}
	report(n, now() - t0, 0);
	return 0;
}

static int cmd_unlink(int dfd, long n, const char *prefix)
{
	char name[64];
	double t0 = now();

	for (long i = 0; i < n; i++) {
		name_of(name, sizeof(name), prefix, i);
		if (unlinkat(dfd, name, 0))
			die("unlink", name);
	}
	report(n, now() - t0, 0);
	return 0;
}

static int cmd_sync(int dfd)
{
	double t0 = now();
	int fd = openat(dfd, ".bench-sync", O_RDWR | O_CREAT, 0644);

	if (fd < 0)
		die("open", ".bench-sync");
	if (syncfs(dfd))
		die("syncfs", ".");
	/* FUSE passes neither syncfs nor, in some daemons, fsyncdir on. */
	if (fsync(dfd) && errno != EINVAL && errno != ENOSYS)
		die("fsync", ".");
	if (fsync(fd))
		die("fsync", ".bench-sync");
	close(fd);
	report(1, now() - t0, 0);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd;
	int dfd;

	if (argc < 3)
		usage();
	cmd = argv[1];
	dfd = open(argv[2], O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		die("open", argv[2]);
	if (!strcmp(cmd, "create") && (argc == 5 || argc == 6))
		return cmd_create(dfd, num(argv[3]), num(argv[4]),
				  argc == 6 && !strcmp(argv[5], "fsync"));
	if (!strcmp(cmd, "stat") && (argc == 4 || argc == 5))
		return cmd_stat(dfd, num(argv[3]), argc == 5 ? argv[4] : "f");
	if (!strcmp(cmd, "readdir") && (argc == 3 || argc == 4))
		return cmd_readdir(dfd, argc == 4 ? num(argv[3]) : 1);
	if (!strcmp(cmd, "rename") && argc == 4)
		return cmd_rename(dfd, num(argv[3]));
	if (!strcmp(cmd, "unlink") && (argc == 4 || argc == 5))
		return cmd_unlink(dfd, num(argv[3]), argc == 5 ? argv[4] : "f");
	if (!strcmp(cmd, "sync") && argc == 3)
		return cmd_sync(dfd);
	usage();
	return 2;
}
