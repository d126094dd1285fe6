# SPDX-License-Identifier: GPL-2.0-or-later
"""POSIX (and Linux) semantics of the mounted filesystem.

Every test here passes on ext4 (DMAFS_TEST_REFERENCE=1) and must pass on
dmafs.  Each test states one behaviour; errors are checked by errno.
"""

import collections
import errno
import mmap
import os
import random
import socket
import stat
import subprocess
import time

import pytest

import util
from util import (GROUP_A, GROUP_B, GROUP_OTHER, KiB, MiB, GiB, USER_A,
                  USER_B, read_file, t_as_user, write_file)

TICK = 0.05     # long enough for any timestamp clock to advance


def raises_errno(err, fn, *args, **kwargs):
    with pytest.raises(OSError) as ei:
        fn(*args, **kwargs)
    assert ei.value.errno == err, \
        f"expected {errno.errorcode[err]}, got {ei.value!r}"


def world_dir(mnt, name="shared", mode=0o777):
    """A directory every test user may create in."""
    d = mnt / name
    os.mkdir(d)
    os.chmod(d, mode)
    return d


# ===========================================================================
# regular files


def test_create_write_read_back(mnt):
    data = util.pattern("rw", 100_000)
    write_file(mnt / "f", data)
    assert read_file(mnt / "f") == data
    st = os.stat(mnt / "f")
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == len(data)
    assert st.st_nlink == 1


def test_new_file_gets_requested_mode_minus_umask(mnt):
    old = os.umask(0o027)
    try:
        fd = os.open(mnt / "f", os.O_CREAT | os.O_WRONLY, 0o777)
        os.close(fd)
        os.mkdir(mnt / "d", 0o777)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(mnt / "d").st_mode) == 0o750


def test_new_file_owned_by_creator(mnt):
    d = world_dir(mnt)

    def create():
        fd = os.open(d / "mine", os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
        os.mkdir(d / "mydir")
    assert t_as_user(USER_A, GROUP_A, create) is None
    for name in ("mine", "mydir"):
        st = os.stat(d / name)
        assert (st.st_uid, st.st_gid) == (USER_A, GROUP_A)


def test_pwrite_pread_at_offsets(mnt):
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"hello", 0)
        os.pwrite(fd, b"world", 10_000)
        os.pwrite(fd, b"X", 2)
        assert os.pread(fd, 5, 0) == b"heXlo"
        assert os.pread(fd, 5, 10_000) == b"world"
        assert os.pread(fd, 10, 5) == b"\0" * 10
        assert os.fstat(fd).st_size == 10_005
    finally:
        os.close(fd)


def test_overwrite_middle_keeps_rest(mnt):
    data = bytearray(util.pattern("a", 3 * 4096 + 77))
    write_file(mnt / "f", data)
    fd = os.open(mnt / "f", os.O_WRONLY)
    os.pwrite(fd, b"Z" * 5000, 4000)
    os.close(fd)
    data[4000:9000] = b"Z" * 5000
    assert read_file(mnt / "f") == bytes(data)


def test_read_at_and_past_eof_returns_nothing(mnt):
    write_file(mnt / "f", b"abc")
    fd = os.open(mnt / "f", os.O_RDONLY)
    try:
        assert os.pread(fd, 10, 3) == b""
        assert os.pread(fd, 10, 1 << 20) == b""
        assert os.pread(fd, 10, 1) == b"bc"
    finally:
        os.close(fd)


def test_o_excl_on_existing_file_is_eexist(mnt):
    write_file(mnt / "f", b"x")
    raises_errno(errno.EEXIST, os.open, mnt / "f",
                 os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    # also when the existing name is a dangling symlink
    os.symlink("nowhere", mnt / "dangling")
    raises_errno(errno.EEXIST, os.open, mnt / "dangling",
                 os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)


def test_o_creat_without_excl_opens_existing(mnt):
    write_file(mnt / "f", b"keep")
    fd = os.open(mnt / "f", os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    assert read_file(mnt / "f") == b"keep"
    assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == 0o644


def test_o_trunc_empties_file(mnt):
    write_file(mnt / "f", b"x" * 10_000)
    fd = os.open(mnt / "f", os.O_WRONLY | os.O_TRUNC)
    assert os.fstat(fd).st_size == 0
    os.write(fd, b"ab")
    os.close(fd)
    assert read_file(mnt / "f") == b"ab"


def test_o_append_always_writes_at_end(mnt):
    write_file(mnt / "f", b"123")
    fd = os.open(mnt / "f", os.O_WRONLY | os.O_APPEND)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"456")
        os.lseek(fd, 1, os.SEEK_SET)
        os.write(fd, b"789")
        assert os.lseek(fd, 0, os.SEEK_CUR) == 9
    finally:
        os.close(fd)
    assert read_file(mnt / "f") == b"123456789"


def test_truncate_down_then_up_reads_zeros(mnt):
    write_file(mnt / "f", b"x" * 10_000)
    os.truncate(mnt / "f", 100)
    assert os.stat(mnt / "f").st_size == 100
    os.truncate(mnt / "f", 20_000)
    assert os.stat(mnt / "f").st_size == 20_000
    assert read_file(mnt / "f") == b"x" * 100 + b"\0" * 19_900


def test_truncate_tail_of_block_is_zeroed_on_extension(mnt):
    # The bytes after the new EOF inside the last block must not come back
    # when the file grows again by a write beyond EOF.
    write_file(mnt / "f", b"y" * 8192, fsync=True)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        os.ftruncate(fd, 5)
        os.fsync(fd)
        os.pwrite(fd, b"E", 8191)
        data = os.pread(fd, 8192, 0)
    finally:
        os.close(fd)
    assert data == b"y" * 5 + b"\0" * 8186 + b"E"


def test_truncate_of_missing_file_is_enoent(mnt):
    raises_errno(errno.ENOENT, os.truncate, mnt / "missing", 10)


def test_holes_read_as_zeros(mnt):
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"end", 3 * MiB + 5)
        assert os.fstat(fd).st_size == 3 * MiB + 8
        assert os.pread(fd, 3 * MiB + 5, 0) == b"\0" * (3 * MiB + 5)
    finally:
        os.close(fd)
    assert read_file(mnt / "f")[-3:] == b"end"


def test_large_sparse_file_beyond_4gib(mnt):
    off = 5 * GiB
    fd = os.open(mnt / "big", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"!", off)
        os.fsync(fd)
        st = os.fstat(fd)
        assert st.st_size == off + 1
        assert st.st_blocks * 512 <= 1 * MiB, "a 1-byte write allocated a lot"
        assert os.pread(fd, 2, off) == b"!"
        assert os.pread(fd, 4096, 4 * GiB) == b"\0" * 4096
        assert os.pread(fd, 4096, off - 4095) == b"\0" * 4095 + b"!"
        # offsets above 4 GiB must not wrap to low offsets
        assert os.pread(fd, 4096, off - 4 * GiB) == b"\0" * 4096
    finally:
        os.close(fd)


def test_open_missing_file_is_enoent(mnt):
    raises_errno(errno.ENOENT, os.open, mnt / "missing", os.O_RDONLY)
    raises_errno(errno.ENOENT, os.open, mnt / "nodir" / "f",
                 os.O_CREAT | os.O_WRONLY, 0o644)


def test_open_directory_for_writing_is_eisdir(mnt):
    os.mkdir(mnt / "d")
    raises_errno(errno.EISDIR, os.open, mnt / "d", os.O_WRONLY)


def test_file_used_as_directory_is_enotdir(mnt):
    write_file(mnt / "f", b"")
    raises_errno(errno.ENOTDIR, os.stat, mnt / "f" / "x")
    raises_errno(errno.ENOTDIR, os.mkdir, mnt / "f" / "x")
    raises_errno(errno.ENOTDIR, os.open, mnt / "f", os.O_RDONLY | os.O_DIRECTORY)


# ===========================================================================
# directories


def test_mkdir_and_rmdir(mnt):
    os.mkdir(mnt / "d")
    st = os.stat(mnt / "d")
    assert stat.S_ISDIR(st.st_mode)
    assert os.listdir(mnt / "d") == []
    os.rmdir(mnt / "d")
    assert not os.path.lexists(mnt / "d")


def test_mkdir_existing_name_is_eexist(mnt):
    os.mkdir(mnt / "d")
    write_file(mnt / "f", b"")
    raises_errno(errno.EEXIST, os.mkdir, mnt / "d")
    raises_errno(errno.EEXIST, os.mkdir, mnt / "f")


def test_mkdir_nlink_rules(mnt):
    os.mkdir(mnt / "p")
    assert os.stat(mnt / "p").st_nlink == 2
    os.mkdir(mnt / "p" / "a")
    assert os.stat(mnt / "p" / "a").st_nlink == 2
    assert os.stat(mnt / "p").st_nlink == 3
    os.mkdir(mnt / "p" / "b")
    write_file(mnt / "p" / "file", b"")   # files do not count
    assert os.stat(mnt / "p").st_nlink == 4
    os.rmdir(mnt / "p" / "a")
    assert os.stat(mnt / "p").st_nlink == 3


def test_readdir_has_dot_and_dotdot(mnt):
    os.mkdir(mnt / "p")
    os.mkdir(mnt / "p" / "c")
    ents = {name: (ino, t) for name, ino, t in util.getdents(mnt / "p" / "c")}
    assert set(ents) == {".", ".."}
    assert ents["."] == (os.stat(mnt / "p" / "c").st_ino, util.DT_DIR)
    assert ents[".."] == (os.stat(mnt / "p").st_ino, util.DT_DIR)


def test_readdir_lists_every_type_with_its_inode(mnt):
    write_file(mnt / "reg", b"")
    os.mkdir(mnt / "dir")
    os.symlink("reg", mnt / "lnk")
    os.mkfifo(mnt / "fifo")
    os.mknod(mnt / "chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(mnt / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(mnt / "sock"))
    s.close()
    want = {"reg": util.DT_REG, "dir": util.DT_DIR, "lnk": util.DT_LNK,
            "fifo": util.DT_FIFO, "chr": util.DT_CHR, "blk": util.DT_BLK,
            "sock": util.DT_SOCK}
    ents = {n: (ino, t) for n, ino, t in util.getdents(mnt) if n not in (".", "..")}
    assert set(ents) == set(want)
    for name, (ino, t) in ents.items():
        assert t in (want[name], util.DT_UNKNOWN), name
        assert ino == os.lstat(mnt / name).st_ino, name
    assert sorted(os.listdir(mnt)) == sorted(want)


def test_rmdir_non_empty_is_enotempty(mnt):
    os.mkdir(mnt / "d")
    write_file(mnt / "d" / "f", b"")
    raises_errno(errno.ENOTEMPTY, os.rmdir, mnt / "d")
    os.unlink(mnt / "d" / "f")
    os.mkdir(mnt / "d" / "sub")
    raises_errno(errno.ENOTEMPTY, os.rmdir, mnt / "d")


def test_rmdir_on_file_is_enotdir(mnt):
    write_file(mnt / "f", b"")
    raises_errno(errno.ENOTDIR, os.rmdir, mnt / "f")
    os.symlink(".", mnt / "link_to_dir")
    raises_errno(errno.ENOTDIR, os.rmdir, mnt / "link_to_dir")


def test_rmdir_dot_is_einval(mnt):
    os.mkdir(mnt / "d")
    raises_errno(errno.EINVAL, os.rmdir, f"{mnt}/d/.")   # not Path: it drops "."
    assert os.path.isdir(mnt / "d")


def test_unlink_directory_is_eisdir(mnt):
    os.mkdir(mnt / "d")
    raises_errno(errno.EISDIR, os.unlink, mnt / "d")


def test_unlink_and_rmdir_missing_are_enoent(mnt):
    raises_errno(errno.ENOENT, os.unlink, mnt / "missing")
    raises_errno(errno.ENOENT, os.rmdir, mnt / "missing")


def test_unlink_removes_name(mnt):
    write_file(mnt / "f", b"data")
    os.unlink(mnt / "f")
    assert not os.path.lexists(mnt / "f")
    assert os.listdir(mnt) == []


def test_directory_with_10000_entries(mnt):
    d = mnt / "big"
    os.mkdir(d)
    names = [f"entry-{i:05d}-{'x' * (i % 40)}" for i in range(10_000)]
    for n in names:
        os.close(os.open(d / n, os.O_CREAT | os.O_WRONLY, 0o644))
    for n in names:
        assert stat.S_ISREG(os.stat(d / n).st_mode), n
    listed = collections.Counter(os.listdir(d))
    dups = [n for n, c in listed.items() if c > 1]
    assert dups == []
    assert set(listed) == set(names)
    assert os.stat(d).st_nlink == 2


def test_readdir_while_deleting_never_repeats_an_entry(mnt):
    d = mnt / "big"
    os.mkdir(d)
    names = [f"n{i:05d}" for i in range(10_000)]
    for n in names:
        os.close(os.open(d / n, os.O_CREAT | os.O_WRONLY, 0o644))
    rng = random.Random(1)
    seen = collections.Counter()
    removed_unseen = set()     # deleted by us before readdir returned them
    remaining = set(names)
    with os.scandir(d) as it:
        for e in it:
            seen[e.name] += 1
            if e.name in remaining:
                os.unlink(d / e.name)
                remaining.discard(e.name)
            # also delete a couple of entries readdir has not reached (maybe)
            for victim in rng.sample(sorted(remaining), min(2, len(remaining))) \
                    if rng.random() < 0.1 else ():
                os.unlink(d / victim)
                remaining.discard(victim)
                if victim not in seen:
                    removed_unseen.add(victim)
    assert [n for n, c in seen.items() if c > 1] == []
    assert set(seen) <= set(names)
    # every entry that existed for the whole iteration was returned
    assert set(names) - removed_unseen <= set(seen)
    assert sorted(os.listdir(d)) == sorted(remaining)


def test_fsync_of_a_directory(mnt):
    os.mkdir(mnt / "d")
    write_file(mnt / "d" / "f", b"x")
    fd = os.open(mnt / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ===========================================================================
# names


@pytest.mark.parametrize("kind", ["file", "dir", "symlink", "link", "rename"])
def test_255_byte_name_is_accepted(mnt, kind):
    name = "a" * 255
    assert len(os.fsencode(name)) == 255
    p = mnt / name
    if kind == "file":
        write_file(p, b"x")
    elif kind == "dir":
        os.mkdir(p)
    elif kind == "symlink":
        os.symlink("target", p)
    elif kind == "link":
        write_file(mnt / "src", b"x")
        os.link(mnt / "src", p)
    else:
        write_file(mnt / "src", b"x")
        os.rename(mnt / "src", p)
    assert os.listdir(mnt).count(name) == 1
    os.lstat(p)


def test_255_byte_multibyte_name_is_accepted(mnt):
    name = "é" * 127 + "a"      # 255 bytes in UTF-8
    assert len(os.fsencode(name)) == 255
    write_file(mnt / name, b"x")
    assert name in os.listdir(mnt)


@pytest.mark.parametrize("kind", ["create", "mkdir", "stat", "symlink",
                                  "link", "rename", "mknod"])
def test_256_byte_name_is_enametoolong(mnt, kind):
    p = mnt / ("b" * 256)
    write_file(mnt / "src", b"x")
    ops = {
        "create": lambda: os.open(p, os.O_CREAT | os.O_WRONLY, 0o644),
        "mkdir": lambda: os.mkdir(p),
        "stat": lambda: os.stat(p),
        "symlink": lambda: os.symlink("target", p),
        "link": lambda: os.link(mnt / "src", p),
        "rename": lambda: os.rename(mnt / "src", p),
        "mknod": lambda: os.mkfifo(p),
    }
    raises_errno(errno.ENAMETOOLONG, ops[kind])
    assert sorted(os.listdir(mnt)) == ["src"]


# ===========================================================================
# hard links


def test_hardlink_shares_inode_and_counts_links(mnt):
    write_file(mnt / "a", b"shared")
    os.mkdir(mnt / "d")
    os.link(mnt / "a", mnt / "b")
    os.link(mnt / "a", mnt / "d" / "c")
    sa, sb, sc = (os.stat(p) for p in (mnt / "a", mnt / "b", mnt / "d" / "c"))
    assert sa.st_ino == sb.st_ino == sc.st_ino
    assert sa.st_nlink == sb.st_nlink == sc.st_nlink == 3
    write_file(mnt / "b", b"changed via b")
    assert read_file(mnt / "d" / "c") == b"changed via b"


def test_unlinking_one_hardlink_keeps_the_data(mnt):
    write_file(mnt / "a", b"keep me")
    os.link(mnt / "a", mnt / "b")
    os.unlink(mnt / "a")
    assert read_file(mnt / "b") == b"keep me"
    assert os.stat(mnt / "b").st_nlink == 1


def test_link_to_existing_name_is_eexist(mnt):
    write_file(mnt / "a", b"")
    write_file(mnt / "b", b"")
    raises_errno(errno.EEXIST, os.link, mnt / "a", mnt / "b")


def test_link_to_a_directory_is_eperm(mnt):
    os.mkdir(mnt / "d")
    raises_errno(errno.EPERM, os.link, mnt / "d", mnt / "d2")


def test_link_of_missing_source_is_enoent(mnt):
    raises_errno(errno.ENOENT, os.link, mnt / "missing", mnt / "new")


def test_hardlink_to_symlink_links_the_symlink_itself(mnt):
    os.symlink("target", mnt / "sl")
    os.link(mnt / "sl", mnt / "sl2", follow_symlinks=False)
    assert os.readlink(mnt / "sl2") == "target"
    assert os.lstat(mnt / "sl").st_ino == os.lstat(mnt / "sl2").st_ino
    assert os.lstat(mnt / "sl").st_nlink == 2


@pytest.mark.slow
def test_too_many_hardlinks_is_emlink(mnt):
    max_links = 65000
    write_file(mnt / "f", b"")
    os.mkdir(mnt / "l")
    for i in range(1, max_links):
        os.link(mnt / "f", mnt / "l" / str(i))
    assert os.stat(mnt / "f").st_nlink == max_links
    raises_errno(errno.EMLINK, os.link, mnt / "f", mnt / "l" / "one-too-many")
    assert os.stat(mnt / "f").st_nlink == max_links


# ===========================================================================
# symlinks


def test_symlink_readlink_and_lstat(mnt):
    write_file(mnt / "target", b"0123456789")
    os.symlink("target", mnt / "sl")
    assert os.readlink(mnt / "sl") == "target"
    lst = os.lstat(mnt / "sl")
    assert stat.S_ISLNK(lst.st_mode)
    assert lst.st_size == len("target")
    st = os.stat(mnt / "sl")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 10
    assert read_file(mnt / "sl") == b"0123456789"


def test_dangling_symlink(mnt):
    os.symlink("does/not/exist", mnt / "sl")
    assert os.readlink(mnt / "sl") == "does/not/exist"
    raises_errno(errno.ENOENT, os.stat, mnt / "sl")
    assert stat.S_ISLNK(os.lstat(mnt / "sl").st_mode)


def test_symlink_with_maximum_length_target(mnt):
    target = (("x" * 99 + "/") * 41)[:4095]
    assert len(target) == 4095
    os.symlink(target, mnt / "long")
    assert os.readlink(mnt / "long") == target
    assert os.lstat(mnt / "long").st_size == 4095


def test_relative_symlink_resolves_from_its_directory(mnt):
    os.makedirs(mnt / "a" / "b")
    write_file(mnt / "a" / "file", b"up")
    os.symlink("../file", mnt / "a" / "b" / "sl")
    assert read_file(mnt / "a" / "b" / "sl") == b"up"
    os.symlink("b", mnt / "a" / "dirlink")
    assert os.listdir(mnt / "a" / "dirlink") == ["sl"]


def test_open_nofollow_on_symlink_is_eloop(mnt):
    write_file(mnt / "t", b"")
    os.symlink("t", mnt / "sl")
    raises_errno(errno.ELOOP, os.open, mnt / "sl", os.O_RDONLY | os.O_NOFOLLOW)


def test_symlink_loops_are_eloop(mnt):
    os.symlink("self", mnt / "self")
    os.symlink("b", mnt / "a")
    os.symlink("a", mnt / "b")
    raises_errno(errno.ELOOP, os.stat, mnt / "self")
    raises_errno(errno.ELOOP, os.open, mnt / "a", os.O_RDONLY)
    raises_errno(errno.ELOOP, os.stat, mnt / "b" / "x")


def test_symlink_over_existing_name_is_eexist(mnt):
    write_file(mnt / "f", b"")
    raises_errno(errno.EEXIST, os.symlink, "x", mnt / "f")


# ===========================================================================
# special files


def test_mkfifo_creates_a_working_fifo(mnt):
    os.mkfifo(mnt / "fifo", 0o640)
    st = os.stat(mnt / "fifo")
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640 & ~_umask()
    fd = os.open(mnt / "fifo", os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(fd, b"through the pipe")
        assert os.read(fd, 100) == b"through the pipe"
    finally:
        os.close(fd)


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_unix_socket_bind_in_the_filesystem(mnt):
    path = str(mnt / "sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(path)
        srv.listen(1)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.connect(path)
        conn, _ = srv.accept()
        cli.sendall(b"ping")
        assert conn.recv(4) == b"ping"
        conn.close()
        cli.close()
        # binding again to an existing name fails
        other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with pytest.raises(OSError) as ei:
            other.bind(path)
        assert ei.value.errno == errno.EADDRINUSE
        other.close()
    finally:
        srv.close()
    os.unlink(path)


def test_mknod_char_and_block_devices(mnt):
    os.mknod(mnt / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(mnt / "loop", stat.S_IFBLK | 0o660, os.makedev(7, 123))
    c = os.stat(mnt / "null")
    b = os.stat(mnt / "loop")
    assert stat.S_ISCHR(c.st_mode) and c.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(b.st_mode) and b.st_rdev == os.makedev(7, 123)
    assert (os.major(b.st_rdev), os.minor(b.st_rdev)) == (7, 123)


def test_mknod_large_device_numbers(mnt):
    dev = os.makedev(259, 1 << 19)     # beyond the old 8-bit minor
    os.mknod(mnt / "nvme", stat.S_IFBLK | 0o600, dev)
    assert os.stat(mnt / "nvme").st_rdev == dev


def test_mknod_device_as_non_root_is_eperm(mnt):
    d = world_dir(mnt)
    assert t_as_user(USER_A, GROUP_A, os.mknod, d / "null",
                     stat.S_IFCHR | 0o666, os.makedev(1, 3)) == errno.EPERM


# ===========================================================================
# rename


def test_rename_within_a_directory(mnt):
    write_file(mnt / "a", b"content")
    ino = os.stat(mnt / "a").st_ino
    os.rename(mnt / "a", mnt / "b")
    assert not os.path.lexists(mnt / "a")
    assert read_file(mnt / "b") == b"content"
    assert os.stat(mnt / "b").st_ino == ino


def test_rename_file_across_directories(mnt):
    os.mkdir(mnt / "d1")
    os.mkdir(mnt / "d2")
    write_file(mnt / "d1" / "f", b"moved")
    os.rename(mnt / "d1" / "f", mnt / "d2" / "g")
    assert os.listdir(mnt / "d1") == []
    assert os.listdir(mnt / "d2") == ["g"]
    assert read_file(mnt / "d2" / "g") == b"moved"
    assert os.stat(mnt / "d1").st_nlink == 2
    assert os.stat(mnt / "d2").st_nlink == 2


def test_rename_directory_across_directories_updates_nlink_and_dotdot(mnt):
    os.mkdir(mnt / "d1")
    os.mkdir(mnt / "d2")
    os.mkdir(mnt / "d1" / "sub")
    write_file(mnt / "d1" / "sub" / "f", b"inside")
    assert os.stat(mnt / "d1").st_nlink == 3
    os.rename(mnt / "d1" / "sub", mnt / "d2" / "sub2")
    assert os.stat(mnt / "d1").st_nlink == 2
    assert os.stat(mnt / "d2").st_nlink == 3
    assert os.stat(mnt / "d2" / "sub2" / "..").st_ino == os.stat(mnt / "d2").st_ino
    dots = {n: ino for n, ino, _ in util.getdents(mnt / "d2" / "sub2")}
    assert dots[".."] == os.stat(mnt / "d2").st_ino
    assert read_file(mnt / "d2" / "sub2" / "f") == b"inside"


def test_rename_directory_within_parent_keeps_nlink(mnt):
    os.mkdir(mnt / "p")
    os.mkdir(mnt / "p" / "a")
    os.rename(mnt / "p" / "a", mnt / "p" / "b")
    assert os.stat(mnt / "p").st_nlink == 3
    assert os.listdir(mnt / "p") == ["b"]


def test_rename_over_existing_file_replaces_it(mnt):
    write_file(mnt / "a", b"new")
    write_file(mnt / "b", b"old")
    fd = os.open(mnt / "b", os.O_RDONLY)
    try:
        os.rename(mnt / "a", mnt / "b")
        assert read_file(mnt / "b") == b"new"
        assert not os.path.lexists(mnt / "a")
        # the replaced inode lives on for its open file descriptor
        assert os.fstat(fd).st_nlink == 0
        assert os.pread(fd, 10, 0) == b"old"
    finally:
        os.close(fd)
    assert os.listdir(mnt) == ["b"]


def test_rename_directory_over_empty_directory(mnt):
    os.mkdir(mnt / "src")
    write_file(mnt / "src" / "f", b"x")
    os.mkdir(mnt / "dst")
    os.rename(mnt / "src", mnt / "dst")
    assert os.listdir(mnt) == ["dst"]
    assert os.listdir(mnt / "dst") == ["f"]
    assert os.stat(mnt).st_nlink == 3


def test_rename_directory_over_non_empty_directory_is_enotempty(mnt):
    os.mkdir(mnt / "src")
    os.mkdir(mnt / "dst")
    write_file(mnt / "dst" / "f", b"")
    raises_errno(errno.ENOTEMPTY, os.rename, mnt / "src", mnt / "dst")
    assert os.path.isdir(mnt / "src")


def test_rename_directory_onto_file_is_enotdir(mnt):
    os.mkdir(mnt / "d")
    write_file(mnt / "f", b"")
    raises_errno(errno.ENOTDIR, os.rename, mnt / "d", mnt / "f")


def test_rename_file_onto_directory_is_eisdir(mnt):
    os.mkdir(mnt / "d")
    write_file(mnt / "f", b"")
    raises_errno(errno.EISDIR, os.rename, mnt / "f", mnt / "d")


def test_rename_directory_into_its_own_subdirectory_is_einval(mnt):
    os.makedirs(mnt / "a" / "b" / "c")
    raises_errno(errno.EINVAL, os.rename, mnt / "a", mnt / "a" / "b" / "c" / "a")
    raises_errno(errno.EINVAL, os.rename, mnt / "a", mnt / "a" / "x")


def test_rename_of_missing_source_is_enoent(mnt):
    raises_errno(errno.ENOENT, os.rename, mnt / "missing", mnt / "x")


def test_rename_onto_itself_is_a_noop(mnt):
    write_file(mnt / "a", b"same")
    os.rename(mnt / "a", mnt / "a")
    assert read_file(mnt / "a") == b"same"


def test_rename_between_hardlinks_of_one_inode_is_a_noop(mnt):
    # POSIX: if old and new are links to the same file, rename does nothing.
    write_file(mnt / "a", b"x")
    os.link(mnt / "a", mnt / "b")
    os.rename(mnt / "a", mnt / "b")
    assert sorted(os.listdir(mnt)) == ["a", "b"]
    assert os.stat(mnt / "a").st_nlink == 2


def test_rename_noreplace_refuses_existing_target(mnt):
    write_file(mnt / "a", b"a")
    write_file(mnt / "b", b"b")
    raises_errno(errno.EEXIST, util.renameat2, mnt / "a", mnt / "b",
                 util.RENAME_NOREPLACE)
    assert read_file(mnt / "a") == b"a" and read_file(mnt / "b") == b"b"
    util.renameat2(mnt / "a", mnt / "c", util.RENAME_NOREPLACE)
    assert sorted(os.listdir(mnt)) == ["b", "c"]


def test_rename_exchange_swaps_two_files(mnt):
    write_file(mnt / "a", b"AAA")
    os.mkdir(mnt / "d")
    write_file(mnt / "d" / "b", b"BBBBB")
    ia, ib = os.stat(mnt / "a").st_ino, os.stat(mnt / "d" / "b").st_ino
    util.renameat2(mnt / "a", mnt / "d" / "b", util.RENAME_EXCHANGE)
    assert read_file(mnt / "a") == b"BBBBB"
    assert read_file(mnt / "d" / "b") == b"AAA"
    assert os.stat(mnt / "a").st_ino == ib
    assert os.stat(mnt / "d" / "b").st_ino == ia


def test_rename_exchange_file_and_directory(mnt):
    os.mkdir(mnt / "p1")
    os.mkdir(mnt / "p2")
    os.mkdir(mnt / "p1" / "dir")
    write_file(mnt / "p1" / "dir" / "inner", b"i")
    write_file(mnt / "p2" / "file", b"f")
    util.renameat2(mnt / "p1" / "dir", mnt / "p2" / "file", util.RENAME_EXCHANGE)
    assert read_file(mnt / "p1" / "dir") == b"f"
    assert os.listdir(mnt / "p2" / "file") == ["inner"]
    # the moved directory's '..' follows it, and the parents' link counts
    # move with the subdirectory
    p2 = os.stat(mnt / "p2").st_ino
    assert os.stat(mnt / "p2" / "file" / "..").st_ino == p2
    dots = {n: ino for n, ino, _ in util.getdents(mnt / "p2" / "file")}
    assert dots[".."] == p2
    assert os.stat(mnt / "p1").st_nlink == 2
    assert os.stat(mnt / "p2").st_nlink == 3


def test_rename_exchange_with_missing_target_is_enoent(mnt):
    write_file(mnt / "a", b"")
    raises_errno(errno.ENOENT, util.renameat2, mnt / "a", mnt / "missing",
                 util.RENAME_EXCHANGE)
    assert os.listdir(mnt) == ["a"]


def test_rename_updates_ctime_of_moved_entry(mnt):
    write_file(mnt / "f", b"")
    os.mkdir(mnt / "d")
    before_f = os.stat(mnt / "f")
    before_d = os.stat(mnt / "d")
    time.sleep(TICK)
    os.rename(mnt / "f", mnt / "g")
    os.rename(mnt / "d", mnt / "e")
    after_f = os.stat(mnt / "g")
    after_d = os.stat(mnt / "e")
    assert after_f.st_ctime_ns > before_f.st_ctime_ns
    assert after_d.st_ctime_ns > before_d.st_ctime_ns
    assert after_f.st_mtime_ns == before_f.st_mtime_ns


def test_rename_to_another_filesystem_is_exdev(mnt, tmp_path):
    write_file(mnt / "f", b"x")
    os.mkdir(mnt / "d")
    raises_errno(errno.EXDEV, os.rename, mnt / "f", tmp_path / "f")
    raises_errno(errno.EXDEV, os.rename, mnt / "d", tmp_path / "d")
    raises_errno(errno.EXDEV, os.link, mnt / "f", tmp_path / "f")
    assert read_file(mnt / "f") == b"x"


# ===========================================================================
# modes and ownership


def test_chmod_sets_all_mode_bits(mnt):
    write_file(mnt / "f", b"")
    for m in (0o000, 0o644, 0o7777, 0o1000, 0o2750, 0o4711):
        os.chmod(mnt / "f", m)
        assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == m
    os.mkdir(mnt / "d")
    os.chmod(mnt / "d", 0o3777)
    st = os.stat(mnt / "d")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o3777


def test_chown_sets_owner_and_group(mnt):
    write_file(mnt / "f", b"")
    os.chown(mnt / "f", USER_A, GROUP_OTHER)
    st = os.stat(mnt / "f")
    assert (st.st_uid, st.st_gid) == (USER_A, GROUP_OTHER)
    os.chown(mnt / "f", -1, GROUP_B)       # -1 leaves the owner alone
    st = os.stat(mnt / "f")
    assert (st.st_uid, st.st_gid) == (USER_A, GROUP_B)


def test_lchown_changes_the_symlink_not_the_target(mnt):
    write_file(mnt / "t", b"")
    os.symlink("t", mnt / "sl")
    os.chown(mnt / "sl", USER_A, GROUP_A, follow_symlinks=False)
    assert os.lstat(mnt / "sl").st_uid == USER_A
    assert os.stat(mnt / "t").st_uid == 0


def test_chown_clears_setuid_and_setgid_of_regular_file(mnt):
    write_file(mnt / "f", b"")
    os.chmod(mnt / "f", 0o6755)
    os.chown(mnt / "f", USER_A, GROUP_A)
    assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == 0o0755


def test_chown_keeps_setgid_without_group_exec(mnt):
    # S_ISGID without S_IXGRP is mandatory locking, not set-group-ID: kept
    write_file(mnt / "f", b"")
    os.chmod(mnt / "f", 0o2644)
    os.chown(mnt / "f", USER_A, GROUP_A)
    assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == 0o2644


def test_chown_keeps_setgid_of_directory(mnt):
    os.mkdir(mnt / "d")
    os.chmod(mnt / "d", 0o2775)
    os.chown(mnt / "d", USER_A, GROUP_A)
    assert stat.S_IMODE(os.stat(mnt / "d").st_mode) == 0o2775


def test_write_by_non_owner_clears_setuid_and_setgid(mnt):
    write_file(mnt / "f", b"orig")
    os.chmod(mnt / "f", 0o6777)

    def write():
        fd = os.open(mnt / "f", os.O_WRONLY)
        os.write(fd, b"new!")
        os.close(fd)
    assert t_as_user(USER_A, GROUP_A, write) is None
    st = os.stat(mnt / "f")
    assert stat.S_IMODE(st.st_mode) == 0o0777
    assert read_file(mnt / "f") == b"new!"


def test_truncate_by_non_owner_clears_setuid(mnt):
    write_file(mnt / "f", b"orig")
    os.chmod(mnt / "f", 0o4666)
    assert t_as_user(USER_A, GROUP_A, os.truncate, mnt / "f", 1) is None
    assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == 0o0666


def test_chmod_by_non_owner_is_eperm(mnt):
    write_file(mnt / "f", b"")
    os.chmod(mnt / "f", 0o666)
    assert t_as_user(USER_A, GROUP_A, os.chmod, mnt / "f", 0o777) == errno.EPERM
    assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == 0o666


def test_chown_by_non_root_is_eperm(mnt):
    d = world_dir(mnt)
    write_file(d / "f", b"")
    os.chown(d / "f", USER_A, GROUP_A)
    # not even the owner may give a file away
    assert t_as_user(USER_A, GROUP_A, os.chown, d / "f", USER_B, -1) == errno.EPERM
    # nor change its group to one it is not a member of
    assert t_as_user(USER_A, GROUP_A, os.chown, d / "f", -1, GROUP_OTHER) \
        == errno.EPERM
    # but it may change the group to one it belongs to
    assert t_as_user(USER_A, GROUP_A, os.chown, d / "f", -1, GROUP_B,
                     groups=[GROUP_B]) is None
    assert os.stat(d / "f").st_gid == GROUP_B


def test_chmod_setgid_by_non_member_owner_is_dropped(mnt):
    d = world_dir(mnt)
    write_file(d / "f", b"")
    os.chown(d / "f", USER_A, GROUP_OTHER)
    assert t_as_user(USER_A, GROUP_A, os.chmod, d / "f", 0o2755) is None
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o0755


# ===========================================================================
# permission checks as an unprivileged user


def test_reading_a_mode_000_file_is_eacces(mnt):
    write_file(mnt / "f", b"secret")
    os.chmod(mnt / "f", 0o000)
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f") == errno.EACCES
    # root is not subject to the mode bits
    assert read_file(mnt / "f") == b"secret"


def test_owner_without_read_permission_is_eacces(mnt):
    d = world_dir(mnt)
    write_file(d / "f", b"secret")
    os.chown(d / "f", USER_A, GROUP_A)
    os.chmod(d / "f", 0o077)     # group/other bits do not apply to the owner
    assert t_as_user(USER_A, GROUP_A, read_file, d / "f") == errno.EACCES
    assert t_as_user(USER_B, GROUP_A, read_file, d / "f") == b"secret"


def test_writing_a_read_only_file_is_eacces(mnt):
    write_file(mnt / "f", b"ro")
    os.chmod(mnt / "f", 0o644)
    assert t_as_user(USER_A, GROUP_A, os.open, mnt / "f", os.O_WRONLY) \
        == errno.EACCES
    assert t_as_user(USER_A, GROUP_A, os.truncate, mnt / "f", 0) == errno.EACCES


def test_creating_in_a_directory_without_write_permission_is_eacces(mnt):
    d = world_dir(mnt, mode=0o555)
    write_file(d / "existing", b"")
    assert t_as_user(USER_A, GROUP_A, write_file, d / "new", b"") == errno.EACCES
    assert t_as_user(USER_A, GROUP_A, os.mkdir, d / "newdir") == errno.EACCES
    assert t_as_user(USER_A, GROUP_A, os.unlink, d / "existing") == errno.EACCES
    assert t_as_user(USER_A, GROUP_A, os.rename, d / "existing", d / "x") \
        == errno.EACCES
    assert sorted(os.listdir(d)) == ["existing"]


def test_lookup_in_a_directory_without_search_permission_is_eacces(mnt):
    d = world_dir(mnt, mode=0o666)
    write_file(d / "f", b"x")
    assert t_as_user(USER_A, GROUP_A, os.stat, d / "f") == errno.EACCES
    assert t_as_user(USER_A, GROUP_A, read_file, d / "f") == errno.EACCES
    # listing needs r, not x
    assert t_as_user(USER_A, GROUP_A, os.listdir, d) == ["f"]


def test_listing_a_directory_without_read_permission_is_eacces(mnt):
    d = world_dir(mnt, mode=0o711)
    write_file(d / "f", b"x")
    os.chmod(d / "f", 0o644)
    assert t_as_user(USER_A, GROUP_A, os.listdir, d) == errno.EACCES
    # but a known name can still be opened
    assert t_as_user(USER_A, GROUP_A, read_file, d / "f") == b"x"


def test_executing_without_execute_permission_is_eacces(mnt):
    script = mnt / "script"
    write_file(script, b"#!/bin/sh\nexit 7\n")
    os.chmod(script, 0o644)

    def run():
        return subprocess.run([str(script)]).returncode
    assert t_as_user(USER_A, GROUP_A, run) == errno.EACCES
    os.chmod(script, 0o755)
    assert t_as_user(USER_A, GROUP_A, run) == 7


def test_group_permissions_apply_to_group_members(mnt):
    write_file(mnt / "f", b"group data")
    os.chown(mnt / "f", 0, GROUP_OTHER)
    os.chmod(mnt / "f", 0o640)
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f") == errno.EACCES
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f",
                     groups=[GROUP_OTHER]) == b"group data"


def test_sticky_directory_protects_other_users_files(mnt):
    d = world_dir(mnt, mode=0o1777)

    def create(name):
        write_file(d / name, b"mine")
    assert t_as_user(USER_A, GROUP_A, create, "a_file") is None
    assert t_as_user(USER_B, GROUP_B, create, "b_file") is None
    # B may not remove or rename A's file ...
    assert t_as_user(USER_B, GROUP_B, os.unlink, d / "a_file") == errno.EPERM
    assert t_as_user(USER_B, GROUP_B, os.rename, d / "a_file", d / "stolen") \
        == errno.EPERM
    # ... nor replace it by renaming its own file over it
    assert t_as_user(USER_B, GROUP_B, os.rename, d / "b_file", d / "a_file") \
        == errno.EPERM
    assert sorted(os.listdir(d)) == ["a_file", "b_file"]
    # the owner may
    assert t_as_user(USER_A, GROUP_A, os.rename, d / "a_file", d / "a2") is None
    assert t_as_user(USER_A, GROUP_A, os.unlink, d / "a2") is None
    assert os.listdir(d) == ["b_file"]


def test_setgid_directory_passes_group_and_bit_down(mnt):
    d = mnt / "sgid"
    os.mkdir(d)
    os.chown(d, 0, GROUP_OTHER)
    os.chmod(d, 0o2777)
    write_file(d / "root_file", b"")

    def create():
        write_file(d / "user_file", b"")
        os.mkdir(d / "user_dir", 0o755)
    assert t_as_user(USER_A, GROUP_A, create) is None
    for name in ("root_file", "user_file", "user_dir"):
        assert os.stat(d / name).st_gid == GROUP_OTHER, name
    assert os.stat(d / "user_file").st_uid == USER_A
    sub = os.stat(d / "user_dir")
    assert stat.S_ISDIR(sub.st_mode)
    assert sub.st_mode & stat.S_ISGID
    assert not os.stat(d / "user_file").st_mode & stat.S_ISGID


# ===========================================================================
# timestamps


def test_utime_with_nanoseconds(mnt):
    write_file(mnt / "f", b"")
    atime = 1_600_000_000_123_456_789
    mtime = 1_500_000_000_987_654_321
    os.utime(mnt / "f", ns=(atime, mtime))
    st = os.stat(mnt / "f")
    assert st.st_atime_ns == atime
    assert st.st_mtime_ns == mtime


def test_utime_before_epoch_and_after_2038(mnt):
    write_file(mnt / "f", b"")
    os.utime(mnt / "f", ns=(-1_000_000_000, 4_000_000_000_000_000_001))
    st = os.stat(mnt / "f")
    assert st.st_atime_ns == -1_000_000_000
    assert st.st_mtime_ns == 4_000_000_000_000_000_001


def test_utimensat_utime_now_and_omit(mnt):
    write_file(mnt / "f", b"")
    os.utime(mnt / "f", ns=(1_000_000_000_000_000_000, 1_100_000_000_000_000_000))
    t0 = time.time_ns()
    util.utimensat(mnt / "f", util.UTIME_OMIT, util.UTIME_NOW)
    t1 = time.time_ns()
    st = os.stat(mnt / "f")
    assert st.st_atime_ns == 1_000_000_000_000_000_000
    assert t0 - 20_000_000 <= st.st_mtime_ns <= t1 + 20_000_000
    util.utimensat(mnt / "f", util.UTIME_NOW, util.UTIME_OMIT)
    st2 = os.stat(mnt / "f")
    assert st2.st_mtime_ns == st.st_mtime_ns
    assert st2.st_atime_ns >= t0 - 20_000_000


def test_utimensat_on_symlink_itself(mnt):
    write_file(mnt / "t", b"")
    os.symlink("t", mnt / "sl")
    target_m = os.stat(mnt / "t").st_mtime_ns
    util.utimensat(mnt / "sl", (1_000_000, 5), (2_000_000, 7), follow=False)
    assert os.lstat(mnt / "sl").st_mtime_ns == 2_000_000 * 10**9 + 7
    assert os.stat(mnt / "t").st_mtime_ns == target_m


def test_utime_permissions_for_non_owner(mnt):
    write_file(mnt / "f", b"")
    os.chmod(mnt / "f", 0o666)
    # with write access a non-owner may set the times to "now" ...
    assert t_as_user(USER_A, GROUP_A, os.utime, mnt / "f") is None
    # ... but not to arbitrary values
    assert t_as_user(USER_A, GROUP_A, os.utime, mnt / "f", ns=(1, 1)) \
        == errno.EPERM
    os.chmod(mnt / "f", 0o644)
    assert t_as_user(USER_A, GROUP_A, os.utime, mnt / "f") == errno.EACCES


def test_write_updates_mtime_and_ctime(mnt):
    write_file(mnt / "f", b"0")
    before = os.stat(mnt / "f")
    time.sleep(TICK)
    fd = os.open(mnt / "f", os.O_WRONLY)
    os.write(fd, b"1")
    os.close(fd)
    after = os.stat(mnt / "f")
    assert after.st_mtime_ns > before.st_mtime_ns
    assert after.st_ctime_ns > before.st_ctime_ns


def test_truncate_updates_mtime_and_ctime(mnt):
    write_file(mnt / "f", b"0123")
    before = os.stat(mnt / "f")
    time.sleep(TICK)
    os.truncate(mnt / "f", 1)
    after = os.stat(mnt / "f")
    assert after.st_mtime_ns > before.st_mtime_ns
    assert after.st_ctime_ns > before.st_ctime_ns


def test_chmod_updates_ctime_only(mnt):
    write_file(mnt / "f", b"")
    before = os.stat(mnt / "f")
    time.sleep(TICK)
    os.chmod(mnt / "f", 0o600)
    after = os.stat(mnt / "f")
    assert after.st_ctime_ns > before.st_ctime_ns
    assert after.st_mtime_ns == before.st_mtime_ns
    assert after.st_atime_ns == before.st_atime_ns


def test_chown_updates_ctime_only(mnt):
    write_file(mnt / "f", b"")
    before = os.stat(mnt / "f")
    time.sleep(TICK)
    os.chown(mnt / "f", USER_A, GROUP_A)
    after = os.stat(mnt / "f")
    assert after.st_ctime_ns > before.st_ctime_ns
    assert after.st_mtime_ns == before.st_mtime_ns


def test_utime_updates_ctime(mnt):
    write_file(mnt / "f", b"")
    before = os.stat(mnt / "f")
    time.sleep(TICK)
    os.utime(mnt / "f", ns=(1, 1))
    assert os.stat(mnt / "f").st_ctime_ns > before.st_ctime_ns


def test_link_updates_ctime_of_target(mnt):
    write_file(mnt / "f", b"")
    before = os.stat(mnt / "f")
    time.sleep(TICK)
    os.link(mnt / "f", mnt / "g")
    after = os.stat(mnt / "f")
    assert after.st_ctime_ns > before.st_ctime_ns
    assert after.st_mtime_ns == before.st_mtime_ns


def test_creating_an_entry_updates_parent_mtime_and_ctime(mnt):
    os.mkdir(mnt / "d")
    makers = [
        lambda: write_file(mnt / "d" / "f", b""),
        lambda: os.mkdir(mnt / "d" / "sub"),
        lambda: os.symlink("x", mnt / "d" / "sl"),
        lambda: os.link(mnt / "d" / "f", mnt / "d" / "hl"),
        lambda: os.mkfifo(mnt / "d" / "fifo"),
    ]
    for make in makers:
        before = os.stat(mnt / "d")
        time.sleep(TICK)
        make()
        after = os.stat(mnt / "d")
        assert after.st_mtime_ns > before.st_mtime_ns
        assert after.st_ctime_ns > before.st_ctime_ns


def test_removing_an_entry_updates_parent_and_target_times(mnt):
    os.mkdir(mnt / "d")
    write_file(mnt / "d" / "f", b"")
    os.link(mnt / "d" / "f", mnt / "keep")
    os.mkdir(mnt / "d" / "sub")
    before_d = os.stat(mnt / "d")
    before_f = os.stat(mnt / "keep")
    time.sleep(TICK)
    os.unlink(mnt / "d" / "f")
    after_d = os.stat(mnt / "d")
    after_f = os.stat(mnt / "keep")
    assert after_d.st_mtime_ns > before_d.st_mtime_ns
    assert after_d.st_ctime_ns > before_d.st_ctime_ns
    assert after_f.st_ctime_ns > before_f.st_ctime_ns
    time.sleep(TICK)
    os.rmdir(mnt / "d" / "sub")
    assert os.stat(mnt / "d").st_mtime_ns > after_d.st_mtime_ns


def test_rename_updates_both_parents_times(mnt):
    os.mkdir(mnt / "a")
    os.mkdir(mnt / "b")
    write_file(mnt / "a" / "f", b"")
    before_a, before_b = os.stat(mnt / "a"), os.stat(mnt / "b")
    time.sleep(TICK)
    os.rename(mnt / "a" / "f", mnt / "b" / "f")
    after_a, after_b = os.stat(mnt / "a"), os.stat(mnt / "b")
    for b, a in ((before_a, after_a), (before_b, after_b)):
        assert a.st_mtime_ns > b.st_mtime_ns
        assert a.st_ctime_ns > b.st_ctime_ns


def test_setxattr_updates_ctime(mnt):
    write_file(mnt / "f", b"")
    before = os.stat(mnt / "f")
    time.sleep(TICK)
    os.setxattr(mnt / "f", "user.k", b"v")
    after = os.stat(mnt / "f")
    assert after.st_ctime_ns > before.st_ctime_ns
    assert after.st_mtime_ns == before.st_mtime_ns


def test_new_file_times_are_now(mnt):
    t0 = time.time_ns()
    write_file(mnt / "f", b"")
    t1 = time.time_ns()
    st = os.stat(mnt / "f")
    slack = 20_000_000      # coarse kernel clocks lag by up to a tick
    for t in (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns):
        assert t0 - slack <= t <= t1 + slack


# ===========================================================================
# preallocation, holes


def test_posix_fallocate_extends_with_zeros(mnt):
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 1 * MiB)
        st = os.fstat(fd)
        assert st.st_size == 1 * MiB
        assert st.st_blocks * 512 >= 1 * MiB
        assert os.pread(fd, 1 * MiB, 0) == b"\0" * MiB
    finally:
        os.close(fd)


def test_fallocate_keep_size_allocates_without_growing(mnt):
    write_file(mnt / "f", b"abc")
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        util.fallocate(fd, util.FALLOC_FL_KEEP_SIZE, 0, 2 * MiB)
        st = os.fstat(fd)
        assert st.st_size == 3
        assert st.st_blocks * 512 >= 2 * MiB
        assert os.pread(fd, 10, 0) == b"abc"
        # writing into the preallocated range works and extends the size
        os.pwrite(fd, b"z", MiB)
        assert os.fstat(fd).st_size == MiB + 1
        assert os.pread(fd, 10, MiB - 5) == b"\0" * 5 + b"z"
    finally:
        os.close(fd)


def test_fallocate_punch_hole_frees_and_zeros(mnt):
    data = util.pattern("punch", 4 * MiB)
    write_file(mnt / "f", data, fsync=True)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        before = os.fstat(fd).st_blocks
        util.fallocate(fd, util.FALLOC_FL_PUNCH_HOLE | util.FALLOC_FL_KEEP_SIZE,
                       1 * MiB, 2 * MiB)
        os.fsync(fd)
        st = os.fstat(fd)
        assert st.st_size == 4 * MiB
        assert (before - st.st_blocks) * 512 >= 2 * MiB - 8 * KiB
        got = os.pread(fd, 4 * MiB, 0)
    finally:
        os.close(fd)
    assert got == data[:MiB] + b"\0" * (2 * MiB) + data[3 * MiB:]


def test_fallocate_punch_hole_unaligned_zeroes_partial_blocks(mnt):
    data = util.pattern("p2", 64 * KiB)
    write_file(mnt / "f", data)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        util.fallocate(fd, util.FALLOC_FL_PUNCH_HOLE | util.FALLOC_FL_KEEP_SIZE,
                       1000, 10_000)
        got = os.pread(fd, 64 * KiB, 0)
    finally:
        os.close(fd)
    assert got == data[:1000] + b"\0" * 10_000 + data[11_000:]


def test_fallocate_punch_hole_without_keep_size_is_eopnotsupp(mnt):
    write_file(mnt / "f", b"x" * 8192)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        with pytest.raises(OSError) as ei:
            util.fallocate(fd, util.FALLOC_FL_PUNCH_HOLE, 0, 4096)
        assert ei.value.errno == errno.EOPNOTSUPP
    finally:
        os.close(fd)


def test_fallocate_zero_range(mnt):
    data = util.pattern("zr", 1 * MiB)
    write_file(mnt / "f", data)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        util.fallocate(fd, util.FALLOC_FL_ZERO_RANGE, 100_000, 300_000)
        assert os.fstat(fd).st_size == MiB
        got = os.pread(fd, MiB, 0)
        # beyond EOF it extends the file, unless KEEP_SIZE
        util.fallocate(fd, util.FALLOC_FL_ZERO_RANGE, MiB - 10, 20)
        assert os.fstat(fd).st_size == MiB + 10
        util.fallocate(fd, util.FALLOC_FL_ZERO_RANGE | util.FALLOC_FL_KEEP_SIZE,
                       MiB, 2 * MiB)
        assert os.fstat(fd).st_size == MiB + 10
    finally:
        os.close(fd)
    assert got == data[:100_000] + b"\0" * 300_000 + data[400_000:]


def test_seek_data_and_seek_hole(mnt):
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"d" * (64 * KiB), 0)
        os.pwrite(fd, b"d" * (64 * KiB), 1 * MiB)
        os.ftruncate(fd, 2 * MiB)           # trailing hole
        os.fsync(fd)
        end1, start2, end2 = 64 * KiB, 1 * MiB, 1 * MiB + 64 * KiB
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        assert os.lseek(fd, 0, os.SEEK_HOLE) == end1
        assert os.lseek(fd, 4096, os.SEEK_HOLE) == end1
        assert os.lseek(fd, end1, os.SEEK_DATA) == start2
        assert os.lseek(fd, end1 + 4096, os.SEEK_DATA) == start2
        assert os.lseek(fd, end1, os.SEEK_HOLE) == end1
        assert os.lseek(fd, start2, os.SEEK_HOLE) == end2
        assert os.lseek(fd, start2 + 4096, os.SEEK_DATA) == start2 + 4096
        for off in (end2, 2 * MiB - 1):
            assert os.lseek(fd, off, os.SEEK_HOLE) == off
            raises_errno(errno.ENXIO, os.lseek, fd, off, os.SEEK_DATA)
        for off in (2 * MiB, 3 * MiB):
            raises_errno(errno.ENXIO, os.lseek, fd, off, os.SEEK_DATA)
            raises_errno(errno.ENXIO, os.lseek, fd, off, os.SEEK_HOLE)
    finally:
        os.close(fd)
    assert util.data_map(mnt / "f") == [(0, end1), (start2, end2)]


def test_seek_hole_on_a_full_file_is_eof(mnt):
    write_file(mnt / "f", b"x" * 10_000, fsync=True)
    fd = os.open(mnt / "f", os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_HOLE) == 10_000
        assert os.lseek(fd, 5000, os.SEEK_DATA) == 5000
    finally:
        os.close(fd)


# ===========================================================================
# extended attributes


@pytest.mark.parametrize("ns", ["user", "trusted", "security"])
def test_xattr_set_get_list_remove(mnt, ns):
    write_file(mnt / "f", b"")
    name = f"{ns}.test"
    os.setxattr(mnt / "f", name, b"value\0with nul")
    assert os.getxattr(mnt / "f", name) == b"value\0with nul"
    assert name in os.listxattr(mnt / "f")
    os.setxattr(mnt / "f", name, b"")                 # empty value is valid
    assert os.getxattr(mnt / "f", name) == b""
    os.removexattr(mnt / "f", name)
    assert name not in os.listxattr(mnt / "f")
    raises_errno(errno.ENODATA, os.getxattr, mnt / "f", name)
    raises_errno(errno.ENODATA, os.removexattr, mnt / "f", name)


def test_xattr_on_directory(mnt):
    os.mkdir(mnt / "d")
    os.setxattr(mnt / "d", "user.dir", b"yes")
    assert os.getxattr(mnt / "d", "user.dir") == b"yes"


def test_xattr_many_names_are_all_listed(mnt):
    write_file(mnt / "f", b"")
    names = {f"user.attr{i:03d}": f"v{i}".encode() for i in range(50)}
    for k, v in names.items():
        os.setxattr(mnt / "f", k, v)
    listed = [n for n in os.listxattr(mnt / "f") if n.startswith("user.")]
    assert sorted(listed) == sorted(names)
    for k, v in names.items():
        assert os.getxattr(mnt / "f", k) == v


def test_xattr_create_flag_on_existing_is_eexist(mnt):
    write_file(mnt / "f", b"")
    os.setxattr(mnt / "f", "user.k", b"1", os.XATTR_CREATE)
    raises_errno(errno.EEXIST, os.setxattr, mnt / "f", "user.k", b"2",
                 os.XATTR_CREATE)
    assert os.getxattr(mnt / "f", "user.k") == b"1"


def test_xattr_replace_flag_on_missing_is_enodata(mnt):
    write_file(mnt / "f", b"")
    raises_errno(errno.ENODATA, os.setxattr, mnt / "f", "user.k", b"2",
                 os.XATTR_REPLACE)
    os.setxattr(mnt / "f", "user.k", b"1")
    os.setxattr(mnt / "f", "user.k", b"22", os.XATTR_REPLACE)
    assert os.getxattr(mnt / "f", "user.k") == b"22"


def test_xattr_small_buffer_is_erange(mnt):
    write_file(mnt / "f", b"")
    os.setxattr(mnt / "f", "user.k", b"0123456789")
    raises_errno(errno.ERANGE, util.getxattr_size, mnt / "f", "user.k", 5)
    assert util.getxattr_size(mnt / "f", "user.k", 10) == b"0123456789"
    # size 0 asks for the length
    assert util.getxattr_size(mnt / "f", "user.k", 0) == 10
    raises_errno(errno.ERANGE, util.listxattr_size, mnt / "f", 3)


def test_xattr_value_of_3000_bytes(mnt):
    write_file(mnt / "f", b"")
    v = util.pattern("xv", 3000)
    os.setxattr(mnt / "f", "user.big", v)
    assert os.getxattr(mnt / "f", "user.big") == v


@pytest.mark.dmafs_only("ext4 limits a value to one block")
@pytest.mark.parametrize("size", [4096, 16 * KiB, 64 * KiB])
def test_xattr_large_values_up_to_64k(mnt, size):
    write_file(mnt / "f", b"")
    v = util.pattern(f"xv{size}", size)
    os.setxattr(mnt / "f", "user.big", v)
    assert os.getxattr(mnt / "f", "user.big") == v
    os.setxattr(mnt / "f", "user.big2", v[::-1])
    assert os.getxattr(mnt / "f", "user.big") == v
    assert os.getxattr(mnt / "f", "user.big2") == v[::-1]


def test_xattr_value_over_64k_is_e2big(mnt):
    write_file(mnt / "f", b"")
    raises_errno(errno.E2BIG, os.setxattr, mnt / "f", "user.huge",
                 b"x" * (64 * KiB + 1))


def test_xattr_name_too_long_is_erange(mnt):
    write_file(mnt / "f", b"")
    raises_errno(errno.ERANGE, os.setxattr, mnt / "f", "user." + "n" * 251, b"")
    os.setxattr(mnt / "f", "user." + "n" * 250, b"ok")     # 255 bytes
    assert os.getxattr(mnt / "f", "user." + "n" * 250) == b"ok"


def test_user_xattr_on_symlink_is_eperm(mnt):
    os.symlink("t", mnt / "sl")
    raises_errno(errno.EPERM, os.setxattr, mnt / "sl", "user.k", b"v",
                 follow_symlinks=False)


def test_user_xattr_needs_write_permission(mnt):
    write_file(mnt / "f", b"")
    os.chmod(mnt / "f", 0o644)
    os.setxattr(mnt / "f", "user.k", b"v")
    assert t_as_user(USER_A, GROUP_A, os.getxattr, mnt / "f", "user.k") == b"v"
    assert t_as_user(USER_A, GROUP_A, os.setxattr, mnt / "f", "user.k", b"w") \
        == errno.EACCES


def test_trusted_xattr_is_invisible_to_unprivileged_users(mnt):
    write_file(mnt / "f", b"")
    os.chmod(mnt / "f", 0o666)
    os.setxattr(mnt / "f", "trusted.k", b"v")
    os.setxattr(mnt / "f", "user.k", b"v")
    listed = t_as_user(USER_A, GROUP_A, os.listxattr, mnt / "f")
    assert "user.k" in listed and "trusted.k" not in listed
    assert t_as_user(USER_A, GROUP_A, os.getxattr, mnt / "f", "trusted.k") \
        == errno.ENODATA
    assert t_as_user(USER_A, GROUP_A, os.setxattr, mnt / "f", "trusted.x",
                     b"v") == errno.EPERM


def test_unknown_xattr_namespace_is_eopnotsupp(mnt):
    write_file(mnt / "f", b"")
    raises_errno(errno.EOPNOTSUPP, os.setxattr, mnt / "f", "bogus.k", b"v")


# ===========================================================================
# POSIX ACLs


def getfacl(path):
    out = subprocess.run(["getfacl", "-n", "--omit-header", "--absolute-names",
                          str(path)], check=True, capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def setfacl(*args):
    subprocess.run(["setfacl", *map(str, args)], check=True)


def test_acl_grants_named_user_read(mnt, need_tool):
    need_tool("setfacl", "getfacl")
    write_file(mnt / "f", b"acl data")
    os.chmod(mnt / "f", 0o600)
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f") == errno.EACCES
    setfacl("-m", f"u:{USER_A}:r", mnt / "f")
    assert f"user:{USER_A}:r--" in getfacl(mnt / "f")
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f") == b"acl data"
    assert t_as_user(USER_B, GROUP_B, read_file, mnt / "f") == errno.EACCES
    # the group class bits of the mode now show the ACL mask
    assert stat.S_IMODE(os.stat(mnt / "f").st_mode) == 0o640


def test_acl_named_group(mnt, need_tool):
    need_tool("setfacl", "getfacl")
    write_file(mnt / "f", b"g")
    os.chmod(mnt / "f", 0o600)
    setfacl("-m", f"g:{GROUP_OTHER}:r", mnt / "f")
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f") == errno.EACCES
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f",
                     groups=[GROUP_OTHER]) == b"g"


def test_default_acl_is_inherited(mnt, need_tool):
    need_tool("setfacl", "getfacl")
    d = mnt / "d"
    os.mkdir(d)
    setfacl("-d", "-m", f"u:{USER_A}:rw", d)
    write_file(d / "f", b"inherited")
    os.mkdir(d / "sub")
    f_acl = getfacl(d / "f")
    assert any(line.startswith(f"user:{USER_A}:rw-") for line in f_acl), f_acl
    sub_acl = getfacl(d / "sub")
    assert f"default:user:{USER_A}:rw-" in sub_acl, sub_acl
    assert any(line.startswith(f"user:{USER_A}:rw-") for line in sub_acl)
    os.chmod(d / "f", 0o660)   # keep the mask at rw
    assert t_as_user(USER_A, GROUP_A, read_file, d / "f") == b"inherited"


def test_default_acl_replaces_umask(mnt, need_tool):
    need_tool("setfacl", "getfacl")
    d = mnt / "d"
    os.mkdir(d)
    setfacl("-d", "-m", "u::rwx,g::rwx,o::rwx", d)
    old = os.umask(0o077)
    try:
        fd = os.open(d / "f", os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(d / "f").st_mode) == 0o666


def test_chmod_updates_the_acl_mask(mnt, need_tool):
    need_tool("setfacl", "getfacl")
    write_file(mnt / "f", b"masked")
    os.chmod(mnt / "f", 0o600)
    setfacl("-m", f"u:{USER_A}:rw", mnt / "f")
    assert "mask::rw-" in getfacl(mnt / "f")
    os.chmod(mnt / "f", 0o640)
    acl = getfacl(mnt / "f")
    assert "mask::r--" in acl, acl
    assert any(line.startswith(f"user:{USER_A}:rw-") for line in acl)
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f") == b"masked"
    assert t_as_user(USER_A, GROUP_A, os.open, mnt / "f", os.O_WRONLY) \
        == errno.EACCES


def test_acl_removal_restores_plain_mode(mnt, need_tool):
    need_tool("setfacl", "getfacl")
    write_file(mnt / "f", b"")
    os.chmod(mnt / "f", 0o600)
    setfacl("-m", f"u:{USER_A}:r", mnt / "f")
    setfacl("-b", mnt / "f")
    assert getfacl(mnt / "f") == ["user::rw-", "group::---", "other::---"]
    assert t_as_user(USER_A, GROUP_A, read_file, mnt / "f") == errno.EACCES


# ===========================================================================
# whole-filesystem calls


def test_statfs_is_sane(mnt):
    sv = os.statvfs(mnt)
    assert sv.f_bsize == 4096
    assert sv.f_frsize in (0, 4096) or sv.f_frsize == sv.f_bsize
    assert sv.f_blocks > 0
    assert 0 < sv.f_bfree <= sv.f_blocks
    assert sv.f_bavail <= sv.f_bfree
    assert sv.f_files > 0 and 0 < sv.f_ffree <= sv.f_files
    assert sv.f_namemax == 255


def test_fsync_fdatasync_syncfs(mnt):
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"sync me")
        os.fsync(fd)
        os.fdatasync(fd)
        util.syncfs(fd)
    finally:
        os.close(fd)
    fd = os.open(mnt / "f", os.O_RDONLY)     # fsync on a read-only fd works
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.sync()
    assert read_file(mnt / "f") == b"sync me"


def test_unlinked_open_file_keeps_data_until_close(mnt):
    data = util.pattern("orphan", 8 * MiB)
    write_file(mnt / "base", b"")
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        free_with_file = os.statvfs(mnt).f_bfree
        os.unlink(mnt / "f")
        assert not os.path.lexists(mnt / "f")
        assert os.listdir(mnt) == ["base"]
        assert os.fstat(fd).st_nlink == 0
        assert os.pread(fd, len(data), 0) == data
        os.pwrite(fd, b"still writable", 0)
        assert os.pread(fd, 14, 0) == b"still writable"
    finally:
        os.close(fd)
    want = free_with_file + (8 * MiB) // 4096 - 16

    def freed():
        fd2 = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            util.syncfs(fd2)
        finally:
            os.close(fd2)
        return os.statvfs(mnt).f_bfree >= want
    assert util.wait_until(freed, 10), "space not returned after close"


def test_o_direct_aligned_io_matches_buffered_io(mnt):
    size = 256 * KiB
    buf = mmap.mmap(-1, size)          # page aligned
    data = util.pattern("direct", size)
    buf[:] = data
    fd = os.open(mnt / "f", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        assert os.pwrite(fd, buf, 0) == size
        assert os.pwrite(fd, memoryview(buf)[:4096], size) == 4096
        rbuf = mmap.mmap(-1, size)
        assert os.preadv(fd, [rbuf], 0) == size
        assert rbuf[:] == data
    finally:
        os.close(fd)
    assert read_file(mnt / "f") == data + data[:4096]
    # buffered write, then direct read sees it
    fd = os.open(mnt / "f", os.O_WRONLY)
    os.pwrite(fd, b"B" * 4096, 8192)
    os.close(fd)
    fd = os.open(mnt / "f", os.O_RDONLY | os.O_DIRECT)
    try:
        rbuf = mmap.mmap(-1, 3 * 4096)
        assert os.preadv(fd, [rbuf], 4096) == 3 * 4096
        assert rbuf[4096:8192] == b"B" * 4096
        assert rbuf[:4096] == data[4096:8192]
    finally:
        os.close(fd)


def test_mmap_shared_write_is_visible_to_read(mnt):
    size = 3 * 4096 + 100
    write_file(mnt / "f", b"\0" * size)
    fd = os.open(mnt / "f", os.O_RDWR)
    try:
        m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m[0:5] = b"hello"
        m[size - 5:size] = b"world"
        m.flush()         # msync(MS_SYNC)
        m.close()
    finally:
        os.close(fd)
    data = read_file(mnt / "f")
    assert data[:5] == b"hello" and data[-5:] == b"world"
    assert data[5:-5] == b"\0" * (size - 10)


def test_mmap_sees_data_from_write(mnt):
    data = util.pattern("mm", 10_000)
    write_file(mnt / "f", data)
    fd = os.open(mnt / "f", os.O_RDONLY)
    try:
        m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        assert m[:] == data
        m.close()
    finally:
        os.close(fd)


def test_copy_file_range(mnt):
    src = util.pattern("cfr", 3 * MiB + 123)
    write_file(mnt / "src", src)
    write_file(mnt / "dst", b"D" * 100)
    fi = os.open(mnt / "src", os.O_RDONLY)
    fo = os.open(mnt / "dst", os.O_WRONLY)
    try:
        done = 0
        want = 2 * MiB + 7
        while done < want:
            n = os.copy_file_range(fi, fo, want - done, 1000 + done, 50 + done)
            assert n > 0
            done += n
    finally:
        os.close(fi)
        os.close(fo)
    assert read_file(mnt / "dst") == b"D" * 50 + src[1000:1000 + 2 * MiB + 7]
    assert read_file(mnt / "src") == src


def test_sendfile_between_files(mnt):
    src = util.pattern("sf", 1 * MiB + 5)
    write_file(mnt / "src", src)
    fi = os.open(mnt / "src", os.O_RDONLY)
    fo = os.open(mnt / "dst", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        off = 10
        while off < len(src):
            n = os.sendfile(fo, fi, off, len(src) - off)
            assert n > 0
            off += n
    finally:
        os.close(fi)
        os.close(fo)
    assert read_file(mnt / "dst") == src[10:]
