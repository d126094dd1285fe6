# SPDX-License-Identifier: GPL-2.0-or-later
"""fsck.dmafs: finds damage, says what it is in plain words, repairs it with
-y/-p, exits with e2fsck's codes (0 clean, 1 fixed, 4 errors left, 8
operational error), and never makes an image worse.  The daemon refuses to
mount what fsck must look at first.

Damage is made with tests/dmafs_format.py, an independent reading of the
format: hand-made log chunks that are valid on disk but wrong in meaning."""

import hashlib
import os
import stat
import subprocess

import pytest

import dmafs_format as fmt
import util

pytestmark = pytest.mark.dmafs_cli


def fsck(image, *args):
    return subprocess.run([str(util.FSCK), *args, str(image)],
                          capture_output=True, text=True, timeout=300)


def image_hash(image):
    return util.sha256_file(image)


def try_mount(dmafs):
    """Run the daemon in the foreground against the image; it must refuse."""
    r = subprocess.run([str(util.DAEMON), "-f", str(dmafs.image),
                        str(dmafs.mnt)], capture_output=True, text=True,
                       timeout=60)
    assert not util.is_mounted(dmafs.mnt)
    return r


def populate(dmafs):
    data = os.urandom(300000)
    util.write_file(dmafs.mnt / "a", data)
    os.mkdir(dmafs.mnt / "d")
    util.write_file(dmafs.mnt / "d" / "b", b"b" * 5000)
    dmafs.umount()
    return hashlib.sha256(data).hexdigest()


def repair_cycle(image, expect_words):
    """-n reports and changes nothing (4); -y repairs (1); -n is clean (0)."""
    before = image_hash(image)
    r = fsck(image, "-n")
    assert r.returncode == 4, r.stdout + r.stderr
    for w in expect_words:
        assert w in r.stdout + r.stderr, r.stdout + r.stderr
    assert image_hash(image) == before, "fsck -n changed the image"
    r = fsck(image, "-y")
    assert r.returncode == 1, r.stdout + r.stderr
    r = fsck(image, "-n")
    assert r.returncode == 0, r.stdout + r.stderr


def test_fresh_filesystem_is_clean(dmafs):
    dmafs.umount()
    r = fsck(dmafs.image, "-n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clean" in r.stdout


def test_fsck_refuses_a_mounted_filesystem(dmafs):
    r = fsck(dmafs.image, "-n")
    assert r.returncode == 8
    assert "in use" in r.stderr


def test_not_dmafs_is_an_operational_error(tmp_path):
    img = tmp_path / "zero.img"
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    r = fsck(img, "-y")
    assert r.returncode == 8
    assert "not a dmafs filesystem" in r.stderr
    assert r.stderr.count("\n") == 1
    assert image_hash(img) == hashlib.sha256(bytes(64 << 20)).hexdigest()


def test_damaged_primary_superblock_is_restored_from_backup(dmafs):
    digest = populate(dmafs)
    fmt.write_block(dmafs.image, 0, os.urandom(4096))
    repair_cycle(dmafs.image, ["primary superblock is damaged"])
    assert fmt.read_super(dmafs.image).valid()
    dmafs.mount()
    assert util.sha256_file(dmafs.mnt / "a") == digest


def test_damaged_backup_superblock_is_rewritten(dmafs):
    populate(dmafs)
    sb = fmt.read_super(dmafs.image)
    fmt.write_block(dmafs.image, sb["total_blocks"] - 1, bytes(4096))
    repair_cycle(dmafs.image, ["backup superblock"])
    assert fmt.read_super(dmafs.image, backup=True).valid()
    dmafs.mount()


def test_both_superblocks_gone_is_reported_not_touched(dmafs):
    populate(dmafs)
    sb = fmt.read_super(dmafs.image)
    fmt.write_block(dmafs.image, 0, b"\xff" * 4096)
    fmt.write_block(dmafs.image, sb["total_blocks"] - 1, b"\xff" * 4096)
    before = image_hash(dmafs.image)
    r = fsck(dmafs.image, "-y")
    assert r.returncode in (4, 8), r.stdout + r.stderr
    assert "superblock" in r.stderr
    assert image_hash(dmafs.image) == before
    # Put the superblocks back so the fixture's final check is meaningful.
    fmt.write_block(dmafs.image, 0, sb.seal())
    fmt.write_block(dmafs.image, sb["total_blocks"] - 1, sb.seal())


def test_entry_pointing_nowhere_refuses_mount_and_is_dropped(dmafs):
    digest = populate(dmafs)
    fmt.append_log_chunk(dmafs.image, [
        fmt.rec_dirent(fmt.REC_DIRENT_ADD, 1, "ghost", child=999999,
                       cookie=999, dtype=8)])
    r = try_mount(dmafs)
    assert r.returncode != 0
    assert "run fsck.dmafs" in r.stderr
    repair_cycle(dmafs.image, ["ghost", "missing inode 999999"])
    dmafs.mount()
    assert not (dmafs.mnt / "ghost").exists()
    assert util.sha256_file(dmafs.mnt / "a") == digest
    assert (dmafs.mnt / "d" / "b").read_bytes() == b"b" * 5000


def test_wrong_link_count_is_fixed(dmafs):
    populate(dmafs)
    ino = fmt.inode_of(dmafs.image, "a")
    fmt.append_log_chunk(dmafs.image, [
        fmt.rec_inode(ino, stat.S_IFREG | 0o644, nlink=7, size=300000)])
    repair_cycle(dmafs.image, [f"inode {ino} has link count 7, should be 1"])
    dmafs.mount()
    assert os.stat(dmafs.mnt / "a").st_nlink == 1


def test_unreachable_inode_goes_to_lost_and_found(dmafs):
    populate(dmafs)
    fmt.append_log_chunk(dmafs.image, [
        fmt.rec_inode(777, stat.S_IFREG | 0o600, nlink=1, size=0)])
    repair_cycle(dmafs.image, ["inode 777 is not reachable"])
    dmafs.mount()
    assert (dmafs.mnt / "lost+found" / "#777").exists()


def test_directory_cycle_is_broken(dmafs):
    populate(dmafs)
    # Two directories naming each other, reachable from nowhere.
    fmt.append_log_chunk(dmafs.image, [
        fmt.rec_inode(801, stat.S_IFDIR | 0o755, nlink=3),
        fmt.rec_inode(802, stat.S_IFDIR | 0o755, nlink=3),
        fmt.rec_dirent(fmt.REC_DIRENT_ADD, 801, "x", child=802, cookie=3,
                       dtype=4),
        fmt.rec_dirent(fmt.REC_DIRENT_ADD, 802, "y", child=801, cookie=3,
                       dtype=4)])
    repair_cycle(dmafs.image, ["not reachable"])
    dmafs.mount()
    found = sorted(os.listdir(dmafs.mnt / "lost+found"))
    assert found, "nothing reattached"


def test_blocks_claimed_twice_refuse_mount_and_become_a_hole(dmafs):
    digest = populate(dmafs)
    a = fmt.inode_of(dmafs.image, "a")
    b = fmt.inode_of(dmafs.image, "d/b")
    (fblk, n, phys), = fmt.extents_of(dmafs.image, a)[:1]
    # b's first block now points into a's data.
    fmt.append_log_chunk(dmafs.image, [fmt.rec_extent(b, 0, 1, phys)])
    r = try_mount(dmafs)
    assert r.returncode != 0 and "run fsck.dmafs" in r.stderr
    repair_cycle(dmafs.image, ["also used by another file"])
    dmafs.mount()
    assert util.sha256_file(dmafs.mnt / "a") == digest
    # One of the two claimants lost the block: whoever it was reads a hole
    # or its own data, never the other's.
    got_b = (dmafs.mnt / "d" / "b").read_bytes()
    assert got_b in (b"b" * 5000, bytes(4096) + b"b" * 904)


def test_unknown_record_type_is_dropped(dmafs):
    populate(dmafs)
    fmt.append_log_chunk(dmafs.image, [fmt.rec_raw(77, 1, bytes(8))])
    r = try_mount(dmafs)
    assert r.returncode != 0 and "run fsck.dmafs" in r.stderr
    repair_cycle(dmafs.image, ["unknown record type 77"])
    dmafs.mount()


def test_needs_fsck_flag_refuses_mount_until_repaired(dmafs):
    populate(dmafs)
    for backup in (False, True):
        sb = fmt.read_super(dmafs.image, backup=backup)
        sb["flags"] = sb["flags"] | fmt.SB_NEEDS_FSCK
        fmt.write_super(dmafs.image, sb, backup=backup)
    r = try_mount(dmafs)
    assert r.returncode != 0 and "run fsck.dmafs" in r.stderr
    r = fsck(dmafs.image, "-p")
    assert r.returncode == 1, r.stdout + r.stderr
    dmafs.mount()


def test_damaged_checkpoint_is_reported_and_left_alone(dmafs):
    populate(dmafs)
    sb = fmt.read_super(dmafs.image)
    blk = sb["ckpt_block"]
    saved = fmt.read_block(dmafs.image, blk)
    fmt.write_block(dmafs.image, blk, saved[:100] + b"\0" * 8 + saved[108:])
    before = image_hash(dmafs.image)
    r = fsck(dmafs.image, "-y")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "cannot" in r.stderr and "checksum" in r.stderr
    assert image_hash(dmafs.image) == before
    r = try_mount(dmafs)
    assert r.returncode != 0 and "corrupt" in r.stderr
    fmt.write_block(dmafs.image, blk, saved)


def test_crash_leftovers_are_not_errors(dmafs):
    """An orphan (unlinked while open) and an unreplayed log are what a
    crash leaves: fsck -n exits 0 and notes them; the mount cleans up."""
    fd = os.open(dmafs.mnt / "o", os.O_CREAT | os.O_RDWR)
    os.write(fd, b"x" * 10000)
    os.unlink(dmafs.mnt / "o")
    os.fsync(fd)
    h = dmafs.handle
    h.proc.kill()
    h.proc.wait()
    util.unmount_path(dmafs.mnt)
    h.proc = None
    h._log.close()
    util._live_mounts.discard(h)
    dmafs.handle = None
    try:
        os.close(fd)
    except OSError:
        pass
    r = fsck(dmafs.image, "-n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "orphan" in r.stdout
    dmafs.mount()
