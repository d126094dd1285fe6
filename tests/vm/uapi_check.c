// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * include/dmafs/io_uring_dmabuf.h compiled against the patched kernel's own
 * <linux/io_uring.h> (make headers_install), which declares the dma-buf
 * registration API as the upstream proposal does, with enum constants the
 * preprocessor cannot see: with DMAFS_HAVE_KERNEL_REGBUF_DESC the header
 * must take the kernel's definitions and check their layout, not define
 * its own.  The same for include/dmafs/fuse_dmafs.h against the kernel's
 * <linux/fuse.h>, which has the extent-map ioctls.  Built by
 * tests/vm/suite.sh; never run.
 */
#include <linux/fuse.h>
#include <linux/io_uring.h>

#include "dmafs/fuse_dmafs.h"
#include "dmafs/io_uring_dmabuf.h"

_Static_assert(FUSE_DEV_IOC_DMAFS_SET_WINDOW ==
	       _IOW(229, 0x83, struct fuse_dmafs_window), "SET_WINDOW");
_Static_assert(sizeof(struct fuse_dmafs_window) == 40, "fuse_dmafs_window");
_Static_assert(FUSE_DMAFS_FEAT_WINDOW == 8, "FUSE_DMAFS_FEAT_WINDOW");

int main(void)
{
	struct io_uring_regbuf_desc d = { .type = IO_REGBUF_TYPE_DMABUF };
	struct io_uring_rsrc_update2 up = {
		.flags = IORING_RSRC_UPDATE_EXTENDED,
		.data = (__u64)(unsigned long)&d,
		.nr = 1,
	};

	return dmafs_register_dmabuf(-1, 0, -1, -1) == -EBADF &&
	       up.nr == 1 ? 0 : 1;
}
