# SPDX-License-Identifier: GPL-2.0-or-later
"""The dmafs daemon's command line: dmafs [options] DEVICE|IMAGE MOUNTPOINT.

Bad input makes it exit non-zero with one line "dmafs: ..." on stderr and
write nothing; -o ro writes nothing at all; unmounting (fusermount3 -u or
umount) makes it exit 0 leaving a consistent image.
"""

import errno
import os
import subprocess

import pytest

import util
from util import (DAEMON, MiB, LoopDevice, assert_one_line_error, is_mounted,
                  mkfs_ext4, mounted, read_file, sha256_file, write_file)

pytestmark = pytest.mark.dmafs_cli

BLOCK = 4096


def make_image(tmp_path, name="img", size="64M"):
    img = tmp_path / name
    util.t_mkfs(img, "-s", size)
    return img


def daemon_pids(mnt):
    """Pids of dmafs daemons whose command line names mnt."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        # argv[0], or argv[1] when the daemon is run by an interpreter
        if any(os.path.basename(a) == b"dmafs" for a in argv[:2]) \
                and os.fsencode(str(mnt)) in argv:
            pids.append(int(d))
    return pids


def run_daemon_expect_failure(image, mnt, *opts, timeout=30):
    """Start the daemon in the foreground; it must exit on its own.  If it
    mounts instead, clean up and fail."""
    cmd = [str(DAEMON), "-f"] + (["-o", ",".join(opts)] if opts else []) \
        + [str(image), str(mnt)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if is_mounted(mnt):
            util.unmount_path(mnt)
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"dmafs did not exit on bad input {image}:\n{err}")
    if is_mounted(mnt):
        util.unmount_path(mnt)
        pytest.fail("dmafs mounted bad input")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture
def mountpoint():
    mnt = util.make_mountpoint()
    yield mnt
    if is_mounted(mnt):
        util.unmount_path(mnt)
    util.remove_mountpoint(mnt)


# ---------------------------------------------------------------------------
# mounting and unmounting


def test_mount_umount_cycle_leaves_a_mountable_filesystem(dmafs):
    write_file(dmafs.mnt / "f", b"first mount")
    os.mkdir(dmafs.mnt / "d")
    dmafs.umount()            # checks: clean unmount, exit status 0, log
    assert not is_mounted(dmafs.mnt)
    dmafs.mount()
    assert read_file(dmafs.mnt / "f") == b"first mount"
    assert os.path.isdir(dmafs.mnt / "d")


def test_unmount_with_umount_also_ends_the_daemon(tmp_path, mountpoint):
    img = make_image(tmp_path)
    h = util.t_mount(img, mountpoint, "allow_other")
    try:
        write_file(mountpoint / "f", b"x")
        r = subprocess.run(["umount", str(mountpoint)], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
    finally:
        h.umount()       # waits for exit 0 and checks the log
    with mounted(img) as mnt:
        assert read_file(mnt / "f") == b"x"


def test_daemonizes_once_mounted_without_f(tmp_path, mountpoint):
    img = make_image(tmp_path)
    # output to a file, not a pipe: the test must not depend on when the
    # daemon closes its inherited stdout/stderr
    with open(tmp_path / "out", "w+") as out:
        r = subprocess.run([str(DAEMON), "-o", "allow_other", str(img),
                            str(mountpoint)], stdout=out, stderr=out,
                           timeout=60)
        out.seek(0)
        output = out.read()
    try:
        assert r.returncode == 0, output
        assert is_mounted(mountpoint), "returned before the mount was up"
        pids = daemon_pids(mountpoint)
        assert len(pids) == 1
        write_file(mountpoint / "f", b"daemonized")
    finally:
        util.unmount_path(mountpoint)
    assert util.wait_until(lambda: not daemon_pids(mountpoint), 30), \
        "daemon did not exit after the unmount"
    with mounted(img) as mnt:
        assert read_file(mnt / "f") == b"daemonized"


def _mount_helper_roundtrip(tmp_path, mountpoint, cmd, env=None):
    img = make_image(tmp_path)
    with open(tmp_path / "out", "w+") as out:
        r = subprocess.run(cmd(img, mountpoint), env=env, stdout=out,
                           stderr=out, timeout=60)
        out.seek(0)
        output = out.read()
    u = None
    try:
        assert r.returncode == 0, output
        assert util.mount_entry(mountpoint)[0] == "fuse.dmafs"
        write_file(mountpoint / "f", b"via the mount helper")
    finally:
        if is_mounted(mountpoint):
            u = subprocess.run(["umount", str(mountpoint)], capture_output=True,
                               text=True)
            util.unmount_path(mountpoint)
    assert u is not None and u.returncode == 0, u and u.stderr
    assert util.wait_until(lambda: not daemon_pids(mountpoint), 30), \
        "daemon did not exit after umount"
    with mounted(img) as mnt:
        assert read_file(mnt / "f") == b"via the mount helper"


def test_mount_fuse3_helper_finds_dmafs_on_path(tmp_path, mountpoint,
                                               need_tool):
    # What mount(8) runs for "mount -t fuse.dmafs IMAGE MNT".
    need_tool("mount.fuse3")
    env = dict(os.environ, PATH=f"{DAEMON.parent}:{os.environ['PATH']}")
    _mount_helper_roundtrip(
        tmp_path, mountpoint, lambda img, mnt: [
            "mount.fuse3", str(img), str(mnt), "-t", "dmafs",
            "-o", "allow_other"], env=env)


@pytest.fixture
def dmafs_on_mount_path():
    """mount(8) runs helpers with its own fixed PATH, not the caller's, so
    'dmafs on PATH' means in one of its directories: link the built daemon
    into /usr/local/sbin for the duration of the test."""
    link = "/usr/local/sbin/dmafs"
    if os.path.lexists(link):
        pytest.skip(f"{link} already exists (an installed dmafs?)")
    os.makedirs("/usr/local/sbin", exist_ok=True)
    os.symlink(DAEMON, link)
    try:
        yield
    finally:
        os.unlink(link)


def test_mount_t_fuse_dmafs(tmp_path, mountpoint, need_tool,
                            dmafs_on_mount_path):
    need_tool("mount.fuse3")
    _mount_helper_roundtrip(
        tmp_path, mountpoint, lambda img, mnt: [
            "mount", "-t", "fuse.dmafs", "-o", "allow_other", str(img),
            str(mnt)])


def test_mount_a_block_device(tmp_path, mountpoint):
    img = make_image(tmp_path)
    with LoopDevice(img) as dev:
        h = util.t_mount(dev, mountpoint, "allow_other")
        try:
            write_file(mountpoint / "f", util.pattern("blk", MiB), fsync=True)
        finally:
            h.umount()
        h = util.t_mount(dev, mountpoint, "allow_other")
        try:
            assert read_file(mountpoint / "f") == util.pattern("blk", MiB)
        finally:
            h.umount()


def test_daemon_exits_cleanly_while_files_were_used(dmafs):
    # open, write and close many files, then unmount: exit status 0
    for i in range(200):
        write_file(dmafs.mnt / f"f{i}", util.pattern(i, i * 100))
    dmafs.remount()
    for i in range(200):
        assert read_file(dmafs.mnt / f"f{i}") == util.pattern(i, i * 100)


# ---------------------------------------------------------------------------
# bad input


def _bad_ext4(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    mkfs_ext4(img)
    return img


def _bad_garbage(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.write(os.urandom(MiB))
        f.truncate(64 * MiB)
        f.seek(64 * MiB - MiB)
        f.write(os.urandom(MiB))
    return img


def _bad_zeros(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    return img


def _bad_zeroed_superblocks(tmp_path):
    img = make_image(tmp_path)
    with open(img, "r+b") as f:
        f.write(b"\0" * BLOCK)                  # primary
        f.seek(64 * MiB - BLOCK)
        f.write(b"\0" * BLOCK)                  # backup
    return img


def _bad_corrupt_superblocks(tmp_path):
    img = make_image(tmp_path)
    with open(img, "r+b") as f:
        for off in (0, 64 * MiB - BLOCK):       # both copies fail their crc
            f.seek(off + 120)                   # total_blocks
            f.write(b"\xff\xff\xff\x7f")
    return img


def _bad_too_small(tmp_path):
    img = tmp_path / "img"
    with open(img, "wb") as f:
        f.truncate(4 * MiB)
    return img


def _bad_truncated(tmp_path):
    img = make_image(tmp_path)                  # superblock says 64 MiB
    with open(img, "r+b") as f:
        f.truncate(32 * MiB)
    return img


def _bad_nonexistent(tmp_path):
    return tmp_path / "does-not-exist"


def _bad_directory(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    return d


BAD_INPUT = {
    "ext4": _bad_ext4,
    "garbage": _bad_garbage,
    "all-zeros": _bad_zeros,
    "zeroed-superblocks": _bad_zeroed_superblocks,
    "corrupt-superblocks": _bad_corrupt_superblocks,
    "too-small": _bad_too_small,
    "truncated-image": _bad_truncated,
    "nonexistent": _bad_nonexistent,
    "directory": _bad_directory,
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_without_writing(tmp_path, mountpoint, case):
    img = BAD_INPUT[case](tmp_path)
    before = sha256_file(img) if img.is_file() else None
    r = run_daemon_expect_failure(img, mountpoint)
    assert_one_line_error(r, "dmafs")
    assert not is_mounted(mountpoint)
    if before is not None:
        assert sha256_file(img) == before, "the daemon wrote to bad input"
    else:
        assert not img.exists() or img.is_dir()


def test_missing_mountpoint_is_refused(tmp_path):
    img = make_image(tmp_path)
    before = sha256_file(img)
    r = run_daemon_expect_failure(img, tmp_path / "no-such-dir")
    assert r.returncode != 0
    assert sha256_file(img) == before


def test_backup_superblock_is_used_when_the_primary_is_torn(tmp_path):
    img = make_image(tmp_path)
    with mounted(img) as mnt:
        write_file(mnt / "f", b"survives", fsync=True)
    with open(img, "r+b") as f:
        f.seek(200)
        f.write(b"\xa5" * 64)       # primary fails its crc, magic intact
    with mounted(img, allow_log=[r"superblock"]) as mnt:
        assert read_file(mnt / "f") == b"survives"


def test_second_mount_of_the_same_image_is_refused(dmafs, mountpoint):
    write_file(dmafs.mnt / "f", b"first")
    r = run_daemon_expect_failure(dmafs.image, mountpoint)
    assert_one_line_error(r, "dmafs")
    assert not is_mounted(mountpoint)
    # the first mount is unharmed
    write_file(dmafs.mnt / "g", b"second file")
    assert read_file(dmafs.mnt / "f") == b"first"
    dmafs.remount()
    assert read_file(dmafs.mnt / "g") == b"second file"


# ---------------------------------------------------------------------------
# read-only


def _populate(m):
    os.mkdir(m / "d")
    write_file(m / "d" / "f", util.pattern("ro", 300_000))
    os.symlink("d/f", m / "sl")
    os.setxattr(m / "d" / "f", "user.k", b"v")


def test_read_only_mount_writes_nothing(dmafs):
    _populate(dmafs.mnt)
    dmafs.umount()
    before = sha256_file(dmafs.image)
    dmafs.mount(opts=["ro"])
    m = dmafs.mnt
    assert read_file(m / "d" / "f") == util.pattern("ro", 300_000)
    assert read_file(m / "sl") == util.pattern("ro", 300_000)
    assert os.getxattr(m / "d" / "f", "user.k") == b"v"
    assert sorted(os.listdir(m)) == ["d", "sl"]
    os.statvfs(m)
    dmafs.umount()
    assert sha256_file(dmafs.image) == before


@pytest.mark.parametrize("op", ["create", "open-write", "truncate", "mkdir",
                                "rmdir", "unlink", "rename", "link", "symlink",
                                "chmod", "chown", "utime", "setxattr",
                                "removexattr", "mknod"])
def test_read_only_mount_refuses_changes_with_erofs(dmafs, op):
    _populate(dmafs.mnt)
    os.mkdir(dmafs.mnt / "empty")
    dmafs.remount(opts=["ro"])
    m = dmafs.mnt
    ops = {
        "create": lambda: os.open(m / "new", os.O_CREAT | os.O_WRONLY, 0o644),
        "open-write": lambda: os.open(m / "d" / "f", os.O_WRONLY),
        "truncate": lambda: os.truncate(m / "d" / "f", 0),
        "mkdir": lambda: os.mkdir(m / "newdir"),
        "rmdir": lambda: os.rmdir(m / "empty"),
        "unlink": lambda: os.unlink(m / "sl"),
        "rename": lambda: os.rename(m / "d" / "f", m / "g"),
        "link": lambda: os.link(m / "d" / "f", m / "hl"),
        "symlink": lambda: os.symlink("x", m / "sl2"),
        "chmod": lambda: os.chmod(m / "d" / "f", 0o600),
        "chown": lambda: os.chown(m / "d" / "f", 1, 1),
        "utime": lambda: os.utime(m / "d" / "f", ns=(1, 1)),
        "setxattr": lambda: os.setxattr(m / "d" / "f", "user.x", b"y"),
        "removexattr": lambda: os.removexattr(m / "d" / "f", "user.k"),
        "mknod": lambda: os.mkfifo(m / "fifo"),
    }
    with pytest.raises(OSError) as ei:
        ops[op]()
    assert ei.value.errno == errno.EROFS


# ---------------------------------------------------------------------------
# statfs


def _free_after_sync(m):
    fd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
    try:
        util.syncfs(fd)
    finally:
        os.close(fd)
    return os.statvfs(m).f_bfree


def test_statfs_reports_the_filesystem(dmafs):
    sv = os.statvfs(dmafs.mnt)
    total = util.parse_size(util.DEFAULT_IMAGE_SIZE) // BLOCK
    assert sv.f_bsize == BLOCK
    assert sv.f_frsize == BLOCK
    assert total * 0.8 <= sv.f_blocks <= total
    assert 0.8 * sv.f_blocks <= sv.f_bfree <= sv.f_blocks
    assert sv.f_bavail <= sv.f_bfree
    assert 0 < sv.f_ffree <= sv.f_files
    assert sv.f_namemax == 255


def test_statfs_free_space_follows_writes_and_deletes(dmafs):
    m = dmafs.mnt
    blocks = 10 * MiB // BLOCK
    free0 = _free_after_sync(m)
    write_file(m / "f", util.pattern("statfs", 10 * MiB), fsync=True)
    free1 = _free_after_sync(m)
    assert free0 - free1 >= blocks, (free0, free1)
    assert free0 - free1 <= blocks + blocks // 10, "far more than written"
    os.unlink(m / "f")
    assert util.wait_until(lambda: _free_after_sync(m) >= free0 - blocks // 100,
                           10), "space of a deleted file did not come back"


def test_statfs_inode_counts_follow_creates(dmafs):
    m = dmafs.mnt
    before = os.statvfs(m)
    for i in range(100):
        write_file(m / f"f{i}", b"")
    after = os.statvfs(m)
    assert after.f_files - after.f_ffree >= before.f_files - before.f_ffree + 100


def test_writing_until_full_is_enospc_and_recoverable(tmp_path, mountpoint):
    img = make_image(tmp_path, size="32M")
    h = util.t_mount(img, mountpoint, "allow_other")
    try:
        fd = os.open(mountpoint / "fill", os.O_WRONLY | os.O_CREAT, 0o644)
        chunk = b"F" * MiB
        with pytest.raises(OSError) as ei:
            for _ in range(64):
                os.write(fd, chunk)
            os.fsync(fd)
        assert ei.value.errno == errno.ENOSPC
        os.close(fd)
        os.unlink(mountpoint / "fill")
        # space is usable again
        write_file(mountpoint / "after", b"A" * (8 * MiB), fsync=True)
    finally:
        h.umount()
    with mounted(img) as mnt:
        assert read_file(mnt / "after") == b"A" * (8 * MiB)
