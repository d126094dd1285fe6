# SPDX-License-Identifier: GPL-2.0-or-later
"""Sanity of the test VM itself: the kernel, the NVMe namespace, O_DIRECT
and io_uring on it, /dev/fuse, udmabuf, vgem, the dma-buf heap and (with
--iommu) the strict IOMMU.  One test per check of tests/vm/smoke.sh; a
missing device fails.
"""

import os
import subprocess
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parent / "smoke.sh"

CHECKS = ["kernel", "nvme", "dio", "uring", "fuse", "udmabuf", "vgem", "heap"]
if os.environ.get("DMAFS_VM_IOMMU") == "1":
    CHECKS.append("iommu")


@pytest.mark.parametrize("check", CHECKS)
def test_smoke(check):
    r = subprocess.run([str(SMOKE), check], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    print(r.stdout)
    assert r.returncode == 0, r.stdout


def test_smoke_checks_listed():
    """The parametrisation above covers every check smoke.sh has."""
    r = subprocess.run([str(SMOKE), "--list"], stdout=subprocess.PIPE,
                       text=True, check=True)
    assert r.stdout.split() == CHECKS
