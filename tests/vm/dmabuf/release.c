// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * release: a process that registered a dma-buf for I/O on a file releases
 * the file by the time it is gone.
 *
 *   release TARGET [-s udmabuf|vgem] [-n N]
 *   release --child TARGET [-s udmabuf|vgem] [-m MODE]
 *
 * The parent runs N rounds (default 20) per source and per way of leaving:
 * it forks a child that opens TARGET (O_EXCL for a block device, as
 * t_target_open() does), registers a dma-buf for it, reads and writes one
 * block through it, and then
 *   exit     exits with the ring, the registration and the target open;
 *   close    closes the target fd, then the ring (io_uring_queue_exit()),
 *            then exits;
 *   kill     is killed with SIGKILL with I/O in flight.
 * As soon as waitpid() has reaped the child the parent opens TARGET again
 * with O_EXCL: after exit and close the device must be free at once (no
 * EBUSY).  The ring's teardown may finish in the background, but the target
 * is the user's, and mkfs or a mount right after such a program must not
 * find it claimed.
 *
 * After kill the requests still in flight hold the file (as any io_uring
 * request does, with or without a dma-buf) until they complete, which the
 * exiting task does not wait for; the device must be free within
 * KILL_BOUND seconds, polled every millisecond, and the time is printed.
 *
 * With --child, just the child's part once (for a caller that checks
 * something else afterwards, a dmafs file's umount).
 *
 * Destroys the contents of TARGET's first 64 KiB.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define BUF_SIZE	(64 * T_KiB)
#define IO_LEN		4096
#define NR_INFLIGHT	16
/* s for in-flight requests of a killed child to complete and let go */
#define KILL_BOUND	5.0
#define STR_(x)		#x
#define STR(x)		STR_(x)

enum mode { MODE_EXIT, MODE_CLOSE, MODE_KILL, NR_MODES };
static const char *const mode_names[NR_MODES] = { "exit", "close", "kill" };

static void usage(void)
{
	fprintf(stderr,
		"usage: release TARGET [-s udmabuf|vgem] [-n ROUNDS]\n"
		"       release --child TARGET [-s udmabuf|vgem] [-m exit|close|kill]\n");
}

/*
 * The child: register, do I/O, leave as mode says.  With MODE_KILL it
 * writes one byte to ready_fd once requests are in flight and waits to be
 * killed.  Returns the exit status for the modes that exit.
 */
static int child(const char *path, enum t_src src, enum mode mode,
		 int ready_fd)
{
	struct t_req reqs[NR_INFLIGHT];
	struct io_uring ring;
	struct t_target t;
	struct t_dmabuf b;
	int ret, i;

	ret = t_target_open_arg(path, &t);
	if (ret)
		return ret;
	ret = t_dmabuf_create(src, BUF_SIZE, false, &b);
	if (ret) {
		t_fail("creating a %s buffer: %s", t_src_name(src),
		       strerror(-ret));
		return T_EXIT_FAIL;
	}
	ret = t_ring_init(&ring, 2 * NR_INFLIGHT, 0, 1);
	if (ret) {
		t_fail("ring setup: %s", strerror(-ret));
		return T_EXIT_FAIL;
	}
	ret = t_buf_register(&ring, 0, &b, t.fd);
	if (ret) {
		t_fail("registering the %s buffer for %s: %s", t_src_name(src),
		       path, strerror(-ret));
		return T_EXIT_FAIL;
	}
	for (i = 0; i < 2; i++) {
		struct t_req r = {
			.opcode = i ? IORING_OP_READ_FIXED :
				      IORING_OP_WRITE_FIXED,
			.fd = t.fd, .len = IO_LEN,
		};

		ret = t_req_run(&ring, &b, &r);
		if (ret != IO_LEN) {
			t_fail("%s of %d bytes: %d", i ? "READ_FIXED" :
			       "WRITE_FIXED", IO_LEN, ret);
			return T_EXIT_FAIL;
		}
	}

	switch (mode) {
	case MODE_EXIT:
		/* everything still open: the kernel closes it */
		return T_EXIT_PASS;
	case MODE_CLOSE:
		t_target_close(&t);
		io_uring_queue_exit(&ring);
		t_dmabuf_destroy(&b);
		return T_EXIT_PASS;
	case MODE_KILL:
		for (i = 0; i < NR_INFLIGHT; i++) {
			reqs[i] = (struct t_req){
				.opcode = i & 1 ? IORING_OP_READ_FIXED :
						  IORING_OP_WRITE_FIXED,
				.fd = t.fd, .len = IO_LEN,
				.boff = (uint64_t)i * IO_LEN,
				.doff = (uint64_t)i * IO_LEN,
			};
		}
		ret = t_reqs_submit(&ring, &b, reqs, NR_INFLIGHT);
		if (ret) {
			t_fail("submitting: %s", strerror(-ret));
			return T_EXIT_FAIL;
		}
		if (write(ready_fd, "r", 1) != 1)
			return T_EXIT_FAIL;
		for (;;)
			pause();
	case NR_MODES:
		break;
	}
	return T_EXIT_FAIL;
}

/* One round: a child leaves as mode says, then TARGET must open O_EXCL. */
static void round_once(const char *path, bool is_blkdev, enum t_src src,
		       enum mode mode, int round, double *worst)
{
	int pfd[2], status, fd;
	double t0, dt;
	pid_t pid;
	char c;

	if (pipe(pfd) < 0) {
		t_fail("pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		t_fail("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		_exit(child(path, src, mode, pfd[1]));
	}
	close(pfd[1]);
	if (mode == MODE_KILL) {
		if (read(pfd[0], &c, 1) == 1)
			kill(pid, SIGKILL);
	}
	close(pfd[0]);
	if (waitpid(pid, &status, 0) != pid) {
		t_fail("waitpid: %s", strerror(errno));
		return;
	}
	if (mode == MODE_KILL ? !(WIFSIGNALED(status) &&
				  WTERMSIG(status) == SIGKILL) :
				!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		t_fail("%s %s round %d: the child failed (status %#x)",
		       t_src_name(src), mode_names[mode], round, status);
		return;
	}

	/* at once: no sleeping, no retrying, but for the bound after kill */
	t0 = t_now();
	for (;;) {
		fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC |
			  (is_blkdev ? O_EXCL : 0));
		if (fd >= 0 || errno != EBUSY || mode != MODE_KILL ||
		    t_now() - t0 > KILL_BOUND)
			break;
		usleep(1000);
	}
	if (fd < 0) {
		t_fail("%s %s round %d: open %s%s %s the child was reaped: %s",
		       t_src_name(src), mode_names[mode], round, path,
		       is_blkdev ? " O_EXCL" : "",
		       mode == MODE_KILL ? "within " STR(KILL_BOUND) " s after" :
					   "right after",
		       strerror(errno));
		return;
	}
	close(fd);
	dt = t_now() - t0;
	if (dt > *worst)
		*worst = dt;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "child", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum t_src srcs[2] = { T_SRC_UDMABUF, T_SRC_VGEM };
	int nr_srcs = 2, rounds = 20, opt, m, s, r;
	enum mode mode = MODE_EXIT;
	bool as_child = false, src_given = false;
	struct stat st;

	t_prog = "release";
	while ((opt = getopt_long(argc, argv, "s:n:m:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			as_child = true;
			continue;
		case 's':
			if (!src_given)
				nr_srcs = 0;
			src_given = true;
			if (nr_srcs < 2 && !t_src_parse(optarg, &srcs[nr_srcs]) &&
			    srcs[nr_srcs] != T_SRC_SELFTEST) {
				nr_srcs++;
				continue;
			}
			break;
		case 'n':
			rounds = atoi(optarg);
			if (rounds > 0)
				continue;
			break;
		case 'm':
			for (m = 0; m < NR_MODES; m++)
				if (!strcmp(optarg, mode_names[m]))
					break;
			if (m < MODE_KILL) {
				mode = m;
				continue;
			}
			break;
		}
		usage();
		return opt == 'h' ? T_EXIT_PASS : T_EXIT_FAIL;
	}
	if (optind >= argc) {
		t_skip("no target given");
		usage();
		return T_EXIT_SKIP;
	}
	if (stat(argv[optind], &st) < 0) {
		t_skip("%s: %s", argv[optind], strerror(errno));
		return T_EXIT_SKIP;
	}
	if (as_child) {
		r = child(argv[optind], srcs[0], mode, -1);
		return r ? r : t_exit_status(false);
	}

	for (s = 0; s < nr_srcs; s++) {
		struct t_dmabuf probe;
		int ret = t_dmabuf_create(srcs[s], 4096, false, &probe);

		if (ret) {
			t_fail("creating a %s buffer: %s", t_src_name(srcs[s]),
			       strerror(-ret));
			continue;
		}
		t_dmabuf_destroy(&probe);
		for (m = 0; m < NR_MODES; m++) {
			int before = t_failures;
			double worst = 0;

			for (r = 0; r < rounds && t_failures == before; r++)
				round_once(argv[optind], S_ISBLK(st.st_mode),
					   srcs[s], m, r, &worst);
			if (t_failures == before)
				t_info("%s %s: %d rounds, the target was free "
				       "after at most %.3f s", t_src_name(srcs[s]),
				       mode_names[m], rounds, worst);
		}
	}
	return t_exit_status(false);
}
