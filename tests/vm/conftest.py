# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures and collection rules for the VM test tier (tests/vm/test_*.py).

These tests run inside the QEMU VM that tests/vm/run boots with the patched
kernel (tests/vm/suite.sh runs them all).  There, tests/vm/run sets
DMAFS_VM=1 and a missing device is a test FAILURE.  Anywhere else (the tier-1
run of `pytest-3 tests/` on the host) they are skipped as a whole.

Fixtures:
  vm            the VM's parameters: .lba, .debug, .iommu, .nvme (path),
                .nvme_size (bytes)
  nvme_dev      the NVMe namespace's block device path (/dev/nvme0n1)
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_VM = os.environ.get("DMAFS_VM") == "1"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if IN_VM:
        return
    skip = pytest.mark.skip(
        reason="VM tier: runs inside the test VM (tests/vm/suite.sh)")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@dataclass(frozen=True)
class VM:
    lba: int
    debug: bool
    iommu: bool
    nvme: str
    nvme_size: int


@pytest.fixture(scope="session")
def vm():
    env = os.environ
    return VM(lba=int(env.get("DMAFS_VM_LBA", "512")),
              debug=env.get("DMAFS_VM_DEBUG") == "1",
              iommu=env.get("DMAFS_VM_IOMMU") == "1",
              nvme=env.get("DMAFS_VM_NVME", "/dev/nvme0n1"),
              nvme_size=int(env.get("DMAFS_VM_NVME_SIZE", "0")))


@pytest.fixture(scope="session")
def nvme_dev(vm):
    return vm.nvme
