# SPDX-License-Identifier: GPL-2.0-or-later
"""mkfs.dmafs [-L label] [-f] [-s SIZE] [-n] DEVICE|IMAGE

Success: exit 0 and a summary on stdout naming the label and the size.
Failure: non-zero exit and exactly one line on stderr, "mkfs.dmafs: ...",
and nothing written.  The on-disk facts checked here come from
include/dmafs/format.h.
"""

import os
import re
import struct
import subprocess
import uuid

import pytest

import util
from util import (GiB, MiB, TiB, LoopDevice, assert_one_line_error, mkfs_ext4,
                  mounted, run_mkfs, sha256_file)

pytestmark = pytest.mark.dmafs_cli

BLOCK = 4096
MAGIC = struct.pack("<Q", 0x31534641414d44)       # "DMAAFS1\0"


def superblock(image, block=0):
    """The fields of the superblock at block (format.h struct
    dmafs_disk_super)."""
    with open(image, "rb") as f:
        f.seek(block * BLOCK)
        raw = f.read(BLOCK)
    assert len(raw) == BLOCK
    magic, version, _crc, _compat, _ro, _incompat, flags, bsize, lba = \
        struct.unpack_from("<8sIIIIIIII", raw, 0)
    return {
        "magic": magic, "version": version, "flags": flags,
        "block_size": bsize, "lba_size": lba,
        "uuid": uuid.UUID(bytes=raw[40:56]),
        "label": raw[56:120].rstrip(b"\0").decode(errors="replace"),
        "total_blocks": struct.unpack_from("<Q", raw, 120)[0],
    }


def assert_dmafs(image, size, label=None):
    sb = superblock(image)
    assert sb["magic"] == MAGIC
    assert sb["version"] == 1
    assert sb["block_size"] == BLOCK
    assert sb["lba_size"] in (512, 4096)
    assert sb["total_blocks"] == size // BLOCK
    assert sb["uuid"].int != 0
    if label is not None:
        assert sb["label"] == label
    backup = superblock(image, size // BLOCK - 1)
    assert backup["magic"] == MAGIC
    assert backup["uuid"] == sb["uuid"]
    assert backup["total_blocks"] == sb["total_blocks"]
    return sb


def blkid_type(path):
    r = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", str(path)],
                       capture_output=True, text=True)
    return r.stdout.strip()


# ---------------------------------------------------------------------------
# success


def test_format_new_image_with_label_and_size(tmp_path):
    img = tmp_path / "img"
    r = run_mkfs("-L", "mylabel", "-s", "64M", img)
    assert r.returncode == 0, r.stderr
    assert "mylabel" in r.stdout
    assert re.search(r"64(\.0+)?\s*MiB|67108864|\b16384\b", r.stdout), r.stdout
    assert os.stat(img).st_size == 64 * MiB
    assert_dmafs(img, 64 * MiB, "mylabel")


def test_fresh_filesystem_mounts_with_an_empty_root(tmp_path):
    img = tmp_path / "img"
    util.t_mkfs(img, "-s", "64M")
    with mounted(img) as mnt:
        assert os.listdir(mnt) == []
        st = os.stat(mnt)
        assert st.st_uid == 0 and st.st_nlink == 2
        sv = os.statvfs(mnt)
        assert 0 < sv.f_bfree < sv.f_blocks <= 64 * MiB // BLOCK


@pytest.mark.parametrize("arg,size", [("67108864", 64 * MiB),
                                      ("65536K", 64 * MiB),
                                      ("64M", 64 * MiB),
                                      ("3G", 3 * GiB),
                                      ("1T", 1 * TiB)])
def test_size_suffixes_are_1024_based(tmp_path, arg, size):
    img = tmp_path / "img"
    r = run_mkfs("-s", arg, img)
    assert r.returncode == 0, r.stderr
    assert os.stat(img).st_size == size
    assert_dmafs(img, size)
    assert os.stat(img).st_blocks * 512 < size, "image was not left sparse"


def test_minimum_size_16mib_is_accepted(tmp_path):
    img = tmp_path / "img"
    r = run_mkfs("-s", "16M", img)
    assert r.returncode == 0, r.stderr
    assert_dmafs(img, 16 * MiB)


def test_existing_file_is_formatted_at_its_size(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(48 * MiB)
    r = run_mkfs(img)
    assert r.returncode == 0, r.stderr
    assert os.stat(img).st_size == 48 * MiB
    assert_dmafs(img, 48 * MiB)


def test_size_option_extends_an_existing_smaller_file(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(20 * MiB)
    r = run_mkfs("-s", "64M", img)
    assert r.returncode == 0, r.stderr
    assert os.stat(img).st_size == 64 * MiB
    assert_dmafs(img, 64 * MiB)


def test_dry_run_writes_nothing(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    before = sha256_file(img)
    r = run_mkfs("-n", "-L", "dry", img)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), "dry run should say what it would do"
    assert sha256_file(img) == before
    assert os.stat(img).st_size == 64 * MiB


def test_dry_run_does_not_create_or_extend_a_file(tmp_path):
    img = tmp_path / "new"
    r = run_mkfs("-n", "-s", "64M", img)
    assert r.returncode == 0, r.stderr
    assert not img.exists()
    small = tmp_path / "small"
    with open(small, "wb") as f:
        f.truncate(20 * MiB)
    r = run_mkfs("-n", "-s", "64M", small)
    assert r.returncode == 0, r.stderr
    assert os.stat(small).st_size == 20 * MiB


def test_format_a_block_device(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    with LoopDevice(img) as dev:
        r = run_mkfs("-L", "blockdev", dev)
        assert r.returncode == 0, r.stderr
        assert superblock(dev)["label"] == "blockdev"
    assert_dmafs(img, 64 * MiB, "blockdev")


# ---------------------------------------------------------------------------
# existing signatures


def test_refuses_existing_ext4_without_force(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    mkfs_ext4(img)
    before = sha256_file(img)
    msg = assert_one_line_error(run_mkfs(img), "mkfs.dmafs")
    assert "ext4" in msg, "the message should name what was found"
    assert sha256_file(img) == before


def test_force_overwrites_ext4(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    mkfs_ext4(img)
    r = run_mkfs("-f", "-L", "was-ext4", img)
    assert r.returncode == 0, r.stderr
    assert_dmafs(img, 64 * MiB, "was-ext4")
    assert blkid_type(img) != "ext4", "the old signature must be gone"
    with mounted(img) as mnt:
        assert os.listdir(mnt) == []


def test_refuses_existing_dmafs_without_force(tmp_path):
    img = tmp_path / "img"
    util.t_mkfs(img, "-s", "64M")
    before = sha256_file(img)
    msg = assert_one_line_error(run_mkfs(img), "mkfs.dmafs")
    assert "dmafs" in msg.split(":", 1)[1]
    assert sha256_file(img) == before


def test_force_reformats_dmafs_with_a_new_uuid(tmp_path):
    img = tmp_path / "img"
    util.t_mkfs(img, "-s", "64M")
    with mounted(img) as mnt:
        util.write_file(mnt / "old", b"old data")
    old = superblock(img)["uuid"]
    r = run_mkfs("-f", img)
    assert r.returncode == 0, r.stderr
    assert superblock(img)["uuid"] != old
    with mounted(img) as mnt:
        assert os.listdir(mnt) == []


# ---------------------------------------------------------------------------
# devices in use


@pytest.fixture
def ext4_loop_mount(tmp_path):
    """An ext4 image loop-mounted; yields (image, loop device, mountpoint)."""
    img = tmp_path / "ext4.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    mkfs_ext4(img)
    mnt = util.make_mountpoint()
    try:
        subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
        try:
            dev = util.mount_entry(mnt)[1]
            assert dev.startswith("/dev/loop"), dev
            yield img, dev, mnt
        finally:
            util.unmount_path(mnt, fuse=False)
    finally:
        util.remove_mountpoint(mnt)


def _still_fine(img, mnt):
    util.write_file(mnt / "after", b"still here", fsync=True)
    assert util.read_file(mnt / "after") == b"still here"


def test_refuses_a_mounted_block_device_even_with_force(ext4_loop_mount):
    img, dev, mnt = ext4_loop_mount
    assert_one_line_error(run_mkfs("-f", dev), "mkfs.dmafs")
    _still_fine(img, mnt)
    assert blkid_type(dev) == "ext4"


def test_refuses_an_image_held_by_a_mounted_loop_device(ext4_loop_mount):
    img, dev, mnt = ext4_loop_mount
    assert_one_line_error(run_mkfs("-f", img), "mkfs.dmafs")
    _still_fine(img, mnt)
    assert blkid_type(dev) == "ext4"


def test_refuses_an_image_mounted_by_dmafs_even_with_force(tmp_path):
    img = tmp_path / "img"
    util.t_mkfs(img, "-s", "64M")
    with mounted(img) as mnt:
        util.write_file(mnt / "f", b"precious", fsync=True)
        assert_one_line_error(run_mkfs("-f", img), "mkfs.dmafs")
        assert util.read_file(mnt / "f") == b"precious"
    with mounted(img) as mnt:
        assert util.read_file(mnt / "f") == b"precious"


# ---------------------------------------------------------------------------
# bad arguments: one line on stderr, nothing written


def test_too_small_is_refused(tmp_path):
    img = tmp_path / "img"
    assert_one_line_error(run_mkfs("-s", "8M", img), "mkfs.dmafs")
    small = tmp_path / "small"
    with open(small, "wb") as f:
        f.truncate(16 * MiB - BLOCK)
    before = sha256_file(small)
    assert_one_line_error(run_mkfs(small), "mkfs.dmafs")
    assert sha256_file(small) == before
    assert os.stat(small).st_size == 16 * MiB - BLOCK


def test_missing_file_without_size_is_an_error(tmp_path):
    img = tmp_path / "missing"
    assert_one_line_error(run_mkfs(img), "mkfs.dmafs")
    assert not img.exists()
    assert_one_line_error(run_mkfs(tmp_path / "nodir" / "img"), "mkfs.dmafs")


def _ext4_image(tmp_path):
    img = tmp_path / "ext4.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    mkfs_ext4(img)
    return img


ERROR_CASES = {
    "missing-file": lambda t: [t / "missing"],
    "missing-dir": lambda t: ["-s", "64M", t / "no" / "such" / "dir"],
    "too-small": lambda t: ["-s", "1M", t / "img"],
    "too-small-16m-minus-1": lambda t: ["-s", str(16 * MiB - 1), t / "img"],
    "bad-size": lambda t: ["-s", "12X", t / "img"],
    "negative-size": lambda t: ["-s", "-64M", t / "img"],
    "empty-size": lambda t: ["-s", "", t / "img"],
    "ext4-no-force": lambda t: [_ext4_image(t)],
    "a-directory": lambda t: [t],
    "char-device": lambda t: ["-f", "/dev/null"],
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_every_error_is_exactly_one_line_on_stderr(tmp_path, case):
    args = ERROR_CASES[case](tmp_path)
    before = {p: sha256_file(p) for p in tmp_path.iterdir() if p.is_file()}
    assert_one_line_error(run_mkfs(*args), "mkfs.dmafs")
    after = {p: sha256_file(p) for p in tmp_path.iterdir() if p.is_file()
             and p in before}
    assert after == before, "a failed mkfs wrote something"


def test_no_device_argument_is_a_usage_error():
    r = run_mkfs()
    assert r.returncode != 0
    assert r.stderr.strip()
