# SPDX-License-Identifier: GPL-2.0-or-later
"""FUSE forwarding to the NVMe namespace (kernel extension, layer 2).

Runs tests/vm/fuse/fuse_forward (built by meson into
$DMAFS_BUILD/tests/vm/fuse/) against the VM's namespace, $DMAFS_VM_NVME
(/dev/nvme0n1), whose contents it destroys.  The program is its own FUSE
daemon: two files at fixed extents of the namespace (one contiguous, one
fragmented with a hole and a partial last block), the namespace registered
on the /dev/fuse connection, maps pushed at open.  It checks (see the
program's header for the details):

  - FUSE_DEV_IOC_DMAFS_FEATURES, FUSE_DEV_IOC_BACKING_OPEN errors, dma-buf
    registration errors, SET_EXTENTS validation errors;
  - O_DIRECT pread/pwrite through the maps, data-exact against raw reads at
    the extents and without a daemon request; holes, unaligned I/O and
    writes past EOF go to the daemon;
  - READ_FIXED/WRITE_FIXED with a dma-buf registered against the FUSE file,
    data-exact, short at EOF, ENODATA for holes and writes past EOF;
  - INVAL_EXTENTS (partial and under I/O), truncate and fallocate dropping
    the map, a daemon killed during I/O (ENOTCONN/EIO, no leaked
    registrations).

The program must exit 0 (a skip is a failure in the VM), and the kernel
log records it produced must hold no bug report.  Outside the VM
tests/vm/conftest.py skips this file.
"""

import pytest

from test_dmabuf_raw import klog, run_prog, target  # noqa: F401 (fixtures)
import test_dmabuf_raw

SUBDIR = "fuse"


@pytest.fixture
def fuse_progs(monkeypatch):
    monkeypatch.setattr(test_dmabuf_raw, "PROGS",
                        test_dmabuf_raw.BUILD / "tests" / "vm" / SUBDIR)


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
def test_fuse_forward(klog, target, fuse_progs, src):  # noqa: F811
    run_prog(klog, "fuse_forward", target, "-s", src)
