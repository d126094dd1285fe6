# SPDX-License-Identifier: GPL-2.0-or-later
"""The daemon's use of the kernel extension (docs/kernel-extension.md), as
far as tier 1 can see it: on a stock kernel, on an image file and with
-o nokext the daemon runs in compat mode, says so once in its log and in
the user.dmafs.mode xattr, and O_DIRECT I/O (with fallocate, past EOF,
on created files) behaves as before.  The extension itself is exercised
by the VM tier; the map the daemon would push is checked by
tests/unit/test_kext.c."""

import errno
import mmap
import os
import re

import pytest

import util
from util import KiB, MiB, LoopDevice

pytestmark = pytest.mark.dmafs_only("the kernel extension is dmafs's")

MODE_XATTR = "user.dmafs.mode"
MODE_LINE = re.compile(r"kernel extension: (.*)")


def mode_lines(log):
    return MODE_LINE.findall(log)


def wait_mode_line(fs_log):
    """The line is logged when INIT arrives; a stat of the mount waits for
    that, the log is unbuffered."""
    assert util.wait_until(lambda: mode_lines(fs_log()), 10), fs_log()
    return mode_lines(fs_log())


def aligned(data):
    buf = mmap.mmap(-1, max(len(data), 4096))      # page aligned
    buf[:len(data)] = data
    return buf


def pread_direct(path, size, off=0):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, size)
        n = os.preadv(fd, [buf], off)
        return buf[:n]
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# the mode


def test_mount_log_says_compat_mode_on_an_image_file(dmafs):
    os.stat(dmafs.mnt)
    lines = wait_mode_line(dmafs.log)
    assert len(lines) == 1, lines
    # On a stock kernel the probe fails; on a patched one an image file
    # still cannot be a block-device backing.  Either way: compat.
    assert re.search(r"^(absent \(.*\)|present, not used: .* image file)"
                     r"; the daemon serves all I/O \(compat mode\)$",
                     lines[0]), lines[0]


def test_mode_xattr_says_compat_on_root_and_files(mnt):
    (mnt / "f").write_bytes(b"x")
    os.mkdir(mnt / "d")
    for p in (mnt, mnt / "f", mnt / "d"):
        assert os.getxattr(p, MODE_XATTR) == b"compat"


def test_mode_xattr_is_virtual_and_read_only(mnt):
    (mnt / "f").write_bytes(b"x")
    for p in (mnt, mnt / "f"):
        assert MODE_XATTR not in os.listxattr(p)
        with pytest.raises(OSError) as e:
            os.setxattr(p, MODE_XATTR, b"kext")
        assert e.value.errno == errno.EPERM
        with pytest.raises(OSError) as e:
            os.removexattr(p, MODE_XATTR)
        assert e.value.errno == errno.EPERM
        assert os.getxattr(p, MODE_XATTR) == b"compat"
    # the size query works like any xattr's
    assert util.getxattr_size(mnt, MODE_XATTR, 0) == len(b"compat")


def test_block_device_mount_probes_the_extension(tmp_path):
    # On a block device the probe decides: on a stock kernel the extension
    # is absent and the daemon says so; the xattr agrees with the log.
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    util.t_mkfs(img)
    mnt = util.make_mountpoint()
    log = tmp_path / "daemon.log"
    try:
        with LoopDevice(img) as dev:
            h = util.t_mount(dev, mnt, "allow_other", log_path=log)
            try:
                os.stat(mnt)
                lines = wait_mode_line(lambda: log.read_text())
                assert len(lines) == 1, lines
                if lines[0].startswith("active on "):
                    assert os.getxattr(mnt, MODE_XATTR) == b"kext"
                else:
                    assert re.search(r"^(absent|present, not used).*"
                                     r"\(compat mode\)$", lines[0]), lines
                    assert os.getxattr(mnt, MODE_XATTR) == b"compat"
                check_o_direct_roundtrip(mnt)
            finally:
                h.umount()
    finally:
        util.remove_mountpoint(mnt)


def test_nokext_option_is_accepted_and_logged(dmafs):
    dmafs.remount(opts=["nokext"])
    os.stat(dmafs.mnt)
    lines = wait_mode_line(dmafs.log)
    assert lines[-1] == ("disabled by -o nokext; the daemon serves all I/O "
                         "(compat mode)"), lines
    assert os.getxattr(dmafs.mnt, MODE_XATTR) == b"compat"
    # the daemon's option, not passed on to the kernel's mount
    assert "nokext" not in util.mount_entry(dmafs.mnt)[2].split(",")
    check_o_direct_roundtrip(dmafs.mnt)


# ---------------------------------------------------------------------------
# O_DIRECT I/O in compat mode, as before


def check_o_direct_roundtrip(mnt):
    data = util.pattern("kext-direct", 512 * KiB)
    fd = os.open(mnt / "direct", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        assert os.pwrite(fd, aligned(data), 0) == len(data)
        os.fsync(fd)
        buf = mmap.mmap(-1, len(data))
        assert os.preadv(fd, [buf], 0) == len(data)
        assert buf[:] == data
    finally:
        os.close(fd)
    assert read_file(mnt / "direct") == data
    assert pread_direct(mnt / "direct", len(data)) == data


def test_o_direct_open_read_write(mnt):
    check_o_direct_roundtrip(mnt)
    # reopened O_DIRECT for writing: overwrite the middle in place
    fd = os.open(mnt / "direct", os.O_WRONLY | os.O_DIRECT)
    try:
        assert os.pwrite(fd, aligned(b"\xab" * 8192), 64 * KiB) == 8192
    finally:
        os.close(fd)
    want = bytearray(util.pattern("kext-direct", 512 * KiB))
    want[64 * KiB:72 * KiB] = b"\xab" * 8192
    assert read_file(mnt / "direct") == want
    assert os.stat(mnt / "direct").st_size == 512 * KiB


def test_o_direct_open_with_o_trunc(mnt):
    (mnt / "f").write_bytes(util.pattern("t", 100 * KiB))
    fd = os.open(mnt / "f", os.O_RDWR | os.O_TRUNC | os.O_DIRECT)
    try:
        assert os.fstat(fd).st_size == 0
        assert os.pwrite(fd, aligned(b"z" * 4096), 0) == 4096
    finally:
        os.close(fd)
    assert read_file(mnt / "f") == b"z" * 4096


def test_fallocate_then_o_direct(mnt):
    size = 4 * MiB
    fd = os.open(mnt / "pre", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        util.fallocate(fd, 0, 0, size)
    finally:
        os.close(fd)
    st = os.stat(mnt / "pre")
    assert st.st_size == size
    assert st.st_blocks * 512 >= size
    # preallocated blocks read as zeros, O_DIRECT too
    assert pread_direct(mnt / "pre", size) == bytes(size)
    data = util.pattern("pre", MiB)
    fd = os.open(mnt / "pre", os.O_RDWR | os.O_DIRECT)
    try:
        assert os.pwrite(fd, aligned(data), MiB) == MiB
        os.fsync(fd)
        assert os.fstat(fd).st_size == size        # a write inside: no growth
        buf = mmap.mmap(-1, size)
        assert os.preadv(fd, [buf], 0) == size
    finally:
        os.close(fd)
    want = bytes(MiB) + data + bytes(2 * MiB)
    assert buf[:] == want
    assert read_file(mnt / "pre") == want
    assert os.stat(mnt / "pre").st_blocks * 512 == size   # no new blocks


def test_fallocate_keep_size_then_o_direct_write_past_eof(mnt):
    fd = os.open(mnt / "k", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        util.fallocate(fd, util.FALLOC_FL_KEEP_SIZE, 0, MiB)
        assert os.fstat(fd).st_size == 0
        data = util.pattern("k", 256 * KiB)
        assert os.pwrite(fd, aligned(data), 0) == len(data)
        assert os.fstat(fd).st_size == len(data)
        # and a write that leaves a preallocated gap below EOF
        assert os.pwrite(fd, aligned(data[:4096]), 512 * KiB) == 4096
        assert os.fstat(fd).st_size == 516 * KiB
    finally:
        os.close(fd)
    want = data + bytes(256 * KiB) + data[:4096]
    assert read_file(mnt / "k") == want
    assert pread_direct(mnt / "k", len(want)) == want


def test_o_direct_file_truncate_and_punch_while_open(mnt):
    data = util.pattern("tp", MiB)
    fd = os.open(mnt / "tp", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        assert os.pwrite(fd, aligned(data), 0) == MiB
        util.fallocate(fd, util.FALLOC_FL_PUNCH_HOLE |
                       util.FALLOC_FL_KEEP_SIZE, 128 * KiB, 64 * KiB)
        os.ftruncate(fd, 512 * KiB)
        os.ftruncate(fd, 768 * KiB)
        buf = mmap.mmap(-1, MiB)
        assert os.preadv(fd, [buf], 0) == 768 * KiB
    finally:
        os.close(fd)
    want = (data[:128 * KiB] + bytes(64 * KiB) + data[192 * KiB:512 * KiB]
            + bytes(256 * KiB))
    assert buf[:768 * KiB] == want
    assert read_file(mnt / "tp") == want


def test_o_direct_files_survive_remount(dmafs):
    data = util.pattern("rm", 256 * KiB)
    fd = os.open(dmafs.mnt / "f", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        util.fallocate(fd, 0, 0, 512 * KiB)
        assert os.pwrite(fd, aligned(data), 0) == len(data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dmafs.remount()
    assert read_file(dmafs.mnt / "f") == data + bytes(256 * KiB)
