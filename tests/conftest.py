# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures for the dmafs test suite.

  dmafs   a freshly formatted image, mounted; an object with .mnt, .image,
          .remount(opts=...), .umount(), .mount(opts=...), .allow_log(re...)
  mnt     dmafs.mnt: the root directory of that filesystem (pathlib.Path)

Markers:
  @pytest.mark.slow                   stress tests (run by default;
                                      deselect with -m 'not slow')
  @pytest.mark.image_size("2G")       size of the image the fixture makes
  @pytest.mark.dmafs_cli              tests of the dmafs tools themselves
                                      (mkfs.dmafs, daemon command line):
                                      skipped in reference mode
  @pytest.mark.dmafs_only("why")      a dmafs behaviour that ext4 does not
                                      share (limits): skipped in reference mode
  @pytest.mark.daemon_log_allow(re..) lines of daemon output this test expects

With DMAFS_TEST_REFERENCE=1 the filesystem is ext4 on a loop device instead
of dmafs (see util.py).
"""

import os
import shutil

import pytest

import util

MARKERS = [
    "slow: stress test, several seconds to minutes (still run by default)",
    "image_size(size): size of the image the dmafs fixture creates, e.g. '2G'",
    "dmafs_cli: tests the dmafs tools themselves; skipped in reference mode",
    "dmafs_only(reason): dmafs-specific behaviour; skipped in reference mode",
    "daemon_log_allow(*regex): daemon output lines this test expects",
]


def pytest_configure(config):
    for m in MARKERS:
        config.addinivalue_line("markers", m)


def pytest_report_header(config):
    if util.REFERENCE:
        return "dmafs: REFERENCE mode (ext4 on a loop device)"
    return f"dmafs: daemon {util.DAEMON}, mkfs {util.MKFS}"


def pytest_collection_modifyitems(config, items):
    not_root = os.geteuid() != 0
    for item in items:
        if not_root:
            item.add_marker(pytest.mark.skip(
                reason="requires root (mounts, loop devices, chown, mknod)"))
            continue
        if not util.REFERENCE:
            continue
        if item.get_closest_marker("dmafs_cli"):
            item.add_marker(pytest.mark.skip(reason="reference mode"))
        m = item.get_closest_marker("dmafs_only")
        if m:
            why = m.args[0] if m.args else "dmafs-specific"
            item.add_marker(pytest.mark.skip(reason=f"reference mode: {why}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_sessionfinish(session, exitstatus):
    util.cleanup_all_mounts()


def _test_failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture
def image_size(request):
    m = request.node.get_closest_marker("image_size")
    return m.args[0] if m else util.DEFAULT_IMAGE_SIZE


@pytest.fixture
def dmafs(request, tmp_path, image_size):
    allow = []
    for m in request.node.iter_markers("daemon_log_allow"):
        allow.extend(m.args)
    fs = util.TestFs(tmp_path, image_size, allow_log=allow)
    try:
        fs.format()
        fs.mount()
    except BaseException:
        fs.destroy(keep_image=True)
        raise
    yield fs
    # Unmount (checking exit status and the daemon log) even when the test
    # failed; keep the image of a failed test for a post-mortem.
    fs.destroy(keep_image=_test_failed(request))


@pytest.fixture
def mnt(dmafs):
    return dmafs.mnt


@pytest.fixture
def need_tool():
    def need(*tools):
        for t in tools:
            if shutil.which(t) is None:
                pytest.skip(f"{t} not installed")
    return need
