# SPDX-License-Identifier: GPL-2.0-or-later
"""The C unit tests (tests/unit/, built by meson into $DMAFS_BUILD/tests/)."""

import subprocess

import pytest

import util

pytestmark = pytest.mark.dmafs_cli

UNIT_TESTS = ["test_alloc", "test_format", "test_kext"]


@pytest.mark.parametrize("name", UNIT_TESTS)
def test_c_unit_test_passes(name):
    exe = util.BUILD / "tests" / name
    assert exe.exists(), f"{exe} not built"
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{name} failed ({r.returncode}):\n{r.stdout}{r.stderr}"
