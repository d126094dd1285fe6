// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * include/dmafs/io_uring_dmabuf.h compiled against the patched kernel's own
 * <linux/io_uring.h> (make headers_install), which declares the dma-buf
 * registration API as the upstream proposal does, with enum constants the
 * preprocessor cannot see: with DMAFS_HAVE_KERNEL_REGBUF_DESC the header
 * must take the kernel's definitions and check their layout, not define
 * its own.  Built by tests/vm/suite.sh; never run.
 */
#include <linux/io_uring.h>

#include "dmafs/io_uring_dmabuf.h"

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
