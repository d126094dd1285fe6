// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * unbind: the NVMe controller's driver goes away (unbind, as on PCI removal
 * or hot-unplug) while a dma-buf is registered for I/O on its namespace.
 *
 *   unbind TARGET [-s udmabuf|vgem]
 *
 * TARGET must be a namespace of an NVMe PCI controller.  The program
 * registers a dma-buf for it, writes and reads one block through it (so a
 * mapping of the dma-buf for the device exists) and unbinds the controller's
 * PCI device from the nvme driver (/sys/bus/pci/drivers/nvme/unbind).  With
 * the registration still held by the ring:
 *   - the dma-buf has no attachment left (dma_buf/bufinfo) and the kernel no
 *     live mapping (dma_buf_io/stats): the driver revoked them, and no
 *     mapping for the device outlives the driver's binding;
 *   - WRITE_FIXED with the registration fails with an errno and READ_FIXED
 *     with an errno or at EOF (the dead disk's size is 0);
 *   - closing the target and the ring releases the registration.
 * Then it binds the driver again, waits up to REBIND_S seconds for TARGET to
 * come back and checks I/O on it with a new registration, so that the tests
 * after this one find the device as it was.
 *
 * Destroys the contents of TARGET's first 64 KiB.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

#define BUF_SIZE	(64 * T_KiB)
#define IO_LEN		4096
#define REBIND_S	30.0
#define NVME_DRIVER	"/sys/bus/pci/drivers/nvme/"

#define CHECK(cond, ...) do {						\
	if (!(cond))							\
		t_fail(__VA_ARGS__);					\
} while (0)

/* The PCI address ("0000:00:04.0") of the controller of namespace @path. */
static int pci_address(const char *path, char *bdf, size_t n)
{
	char link[PATH_MAX], real[PATH_MAX], *name;

	name = basename(strdupa(path));
	snprintf(link, sizeof(link), "/sys/class/block/%s/device/device",
		 name);
	if (!realpath(link, real))
		return -errno;
	if (strncmp(real, "/sys/devices/pci", 16))
		return -ENODEV;
	snprintf(bdf, n, "%s", basename(real));
	return 0;
}

/* Write and read one block with the registration in slot 0. */
static int io_both(struct io_uring *ring, struct t_dmabuf *b, int fd,
		   int *res)
{
	for (int i = 0; i < 2; i++) {
		struct t_req r = {
			.opcode = i ? IORING_OP_READ_FIXED :
				      IORING_OP_WRITE_FIXED,
			.fd = fd, .len = IO_LEN,
		};

		res[i] = t_req_run(ring, b, &r);
	}
	return res[0] == IO_LEN && res[1] == IO_LEN ? 0 : -EIO;
}

/* Register a dma-buf for t and do I/O with it: 0 or T_EXIT_FAIL. */
static int setup(struct t_target *t, enum t_src src, struct t_dmabuf *b,
		 struct io_uring *ring)
{
	int ret, res[2];

	ret = t_dmabuf_create(src, BUF_SIZE, false, b);
	if (ret) {
		t_fail("creating a %s buffer: %s", t_src_name(src),
		       strerror(-ret));
		return T_EXIT_FAIL;
	}
	ret = t_ring_init(ring, 8, 0, 1);
	if (ret) {
		t_fail("ring setup: %s", strerror(-ret));
		return T_EXIT_FAIL;
	}
	ret = t_buf_register(ring, 0, b, t->fd);
	if (ret) {
		t_fail("registering the %s buffer for %s: %s", t_src_name(src),
		       t->path, strerror(-ret));
		return T_EXIT_FAIL;
	}
	if (io_both(ring, b, t->fd, res)) {
		t_fail("WRITE_FIXED and READ_FIXED of %d bytes: %d, %d",
		       IO_LEN, res[0], res[1]);
		return T_EXIT_FAIL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum t_src src = T_SRC_UDMABUF;
	struct t_io_stats st;
	struct io_uring ring;
	struct t_target t;
	struct t_dmabuf b;
	int opt, ret, attached, res[2];
	char bdf[64];
	long count;
	double t0;

	t_prog = "unbind";
	while ((opt = getopt(argc, argv, "s:")) != -1) {
		if (opt != 's' || t_src_parse(optarg, &src) ||
		    src == T_SRC_SELFTEST) {
			fprintf(stderr,
				"usage: unbind TARGET [-s udmabuf|vgem]\n");
			return T_EXIT_FAIL;
		}
	}
	if (optind >= argc) {
		t_skip("no target argument");
		return T_EXIT_SKIP;
	}
	ret = t_target_open_arg(argv[optind], &t);
	if (ret)
		return ret;
	if (!t.is_blkdev) {
		t_fail("%s: not a block device", t.path);
		return T_EXIT_FAIL;
	}
	ret = pci_address(t.path, bdf, sizeof(bdf));
	if (ret) {
		t_fail("%s: no NVMe PCI controller found: %s", t.path,
		       strerror(-ret));
		return T_EXIT_FAIL;
	}
	ret = t_debugfs_mount();
	if (ret) {
		t_fail("debugfs: %s", strerror(-ret));
		return T_EXIT_FAIL;
	}
	if (setup(&t, src, &b, &ring))
		return T_EXIT_FAIL;

	t_info("unbinding %s (%s) from the nvme driver", bdf, t.path);
	ret = t_write_str(NVME_DRIVER "unbind", bdf);
	if (ret) {
		t_fail(NVME_DRIVER "unbind %s: %s", bdf, strerror(-ret));
		return T_EXIT_FAIL;
	}

	ret = t_dmabuf_debug_info(b.ino, &count, &attached);
	if (ret)
		t_fail("dma_buf/bufinfo: %s", strerror(-ret));
	else
		CHECK(attached == 0, "the dma-buf is still attached to %d "
		      "device(s) after the driver was unbound", attached);
	ret = t_dmabuf_io_stats(&st);
	if (ret)
		t_fail("dma_buf_io/stats: %s", strerror(-ret));
	else
		CHECK(st.maps == 0, "%ld dma-buf mapping(s) left after the "
		      "driver was unbound", st.maps);
	/* the disk is dead: its size is 0, nothing moves */
	io_both(&ring, &b, t.fd, res);
	CHECK(res[0] < 0 && res[1] <= 0, "WRITE_FIXED, READ_FIXED after the "
	      "driver was unbound: %d, %d, want an error and an error or EOF",
	      res[0], res[1]);
	t_info("after the unbind: WRITE_FIXED %d, READ_FIXED %d", res[0],
	       res[1]);
	t_target_close(&t);
	io_uring_queue_exit(&ring);
	t_dmabuf_destroy(&b);
	ret = t_dmabuf_io_stats(&st);
	CHECK(!ret && st.tokens == 0, "%ld registration(s) left after the "
	      "ring was closed (%s)", st.tokens, strerror(-ret));

	/* put the device back for whatever runs next */
	ret = t_write_str(NVME_DRIVER "bind", bdf);
	if (ret) {
		t_fail(NVME_DRIVER "bind %s: %s", bdf, strerror(-ret));
		return T_EXIT_FAIL;
	}
	t0 = t_now();
	while (((ret = t_target_open(argv[optind], &t)) == -ENOENT ||
		ret == -ENXIO) && t_now() - t0 < REBIND_S)
		usleep(20000);
	if (ret) {
		t_fail("%s after binding the driver again: %s", argv[optind],
		       strerror(-ret));
		return T_EXIT_FAIL;
	}
	t_info("%s back after %.2f s", t.path, t_now() - t0);
	if (setup(&t, src, &b, &ring))
		return T_EXIT_FAIL;
	io_uring_queue_exit(&ring);
	t_dmabuf_destroy(&b);
	t_target_close(&t);
	return t_exit_status(false);
}
