# SPDX-License-Identifier: GPL-2.0-or-later
"""Everything the filesystem was told survives an unmount and a mount.

In reference mode the ext4 loop mount is unmounted and mounted again the
same way.
"""

import os
import random
import stat
import subprocess

import pytest

import util
from util import (GROUP_A, GROUP_OTHER, MiB, USER_A, data_map, read_file,
                  sha256, sha256_file, write_file)


def test_fsynced_data_reads_back_after_remount(dmafs):
    data = os.urandom(10 * MiB)
    write_file(dmafs.mnt / "random", data, fsync=True)
    dmafs.remount()
    assert sha256_file(dmafs.mnt / "random") == sha256(data)
    assert os.stat(dmafs.mnt / "random").st_size == len(data)


def test_data_written_without_fsync_survives_clean_unmount(dmafs):
    data = util.pattern("nofsync", 3 * MiB + 17)
    write_file(dmafs.mnt / "f", data)
    dmafs.remount()
    assert read_file(dmafs.mnt / "f") == data


def test_overwrites_and_truncates_survive_remount(dmafs):
    data = bytearray(util.pattern("ow", 2 * MiB))
    write_file(dmafs.mnt / "f", data)
    dmafs.remount()
    fd = os.open(dmafs.mnt / "f", os.O_RDWR)
    os.pwrite(fd, b"Q" * 10_000, 500_000)
    os.ftruncate(fd, 1 * MiB + 3)
    os.close(fd)
    data[500_000:510_000] = b"Q" * 10_000
    del data[MiB + 3:]
    dmafs.remount()
    assert read_file(dmafs.mnt / "f") == bytes(data)


# ---------------------------------------------------------------------------
# a tree with every kind of metadata


def _snapshot(root, ctime=True):
    """Everything observable about a tree, keyed by relative path."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames) + ([] if dirpath != str(root)
                                                    else ["."]):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(os.path.normpath(p), root)
            st = os.lstat(p)
            # atime is left out: reading the tree may update it
            # (relatime); _times() checks it.
            e = {
                "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid,
                "nlink": st.st_nlink, "ino": st.st_ino,
                "mtime": st.st_mtime_ns,
            }
            if ctime:
                e["ctime"] = st.st_ctime_ns
            if stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                e["sha"] = sha256_file(p)
                e["map"] = data_map(p)
            elif stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = st.st_rdev
            elif stat.S_ISDIR(st.st_mode):
                e["entries"] = sorted(os.listdir(p))
            if not stat.S_ISLNK(st.st_mode):
                e["xattrs"] = {k: os.getxattr(p, k, follow_symlinks=False)
                               for k in os.listxattr(p, follow_symlinks=False)}
            snap[rel] = e
    return snap


def _paths(root):
    out = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root):
        out += [os.path.join(dirpath, n) for n in dirnames + filenames]
    return sorted(out)


def _set_atimes_and_record_times(paths):
    """Give every entry its own nanosecond atime (mtime untouched), then
    return all three times, read by lstat only (no reads that could move
    atime again)."""
    for i, p in enumerate(paths):
        util.utimensat(p, (1_000_000_000 + i, 100 + i), util.UTIME_OMIT,
                       follow=False)
    return _times(paths)


def _times(paths):
    return {p: (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
            for p in paths for st in [os.lstat(p)]}


def _build_tree(m):
    os.makedirs(m / "a" / "b" / "c")
    write_file(m / "a" / "file", util.pattern("file", 100_000))
    write_file(m / "a" / "b" / "empty", b"")
    os.link(m / "a" / "file", m / "a" / "b" / "c" / "hardlink")
    os.symlink("../file", m / "a" / "b" / "symlink")
    os.symlink("/" + "long" * 500, m / "a" / "longlink")
    os.mkfifo(m / "a" / "fifo", 0o620)
    os.mknod(m / "a" / "chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(m / "a" / "blk", stat.S_IFBLK | 0o640, os.makedev(259, 65536))
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(m / "a" / "sock"))
    s.close()
    # modes and owners
    os.chmod(m / "a" / "file", 0o4751)
    os.chmod(m / "a" / "b", 0o2770)
    os.chmod(m / "a" / "b" / "c", 0o1777)
    os.chown(m / "a" / "b" / "empty", USER_A, GROUP_OTHER)
    os.chown(m / "a" / "b" / "symlink", USER_A, GROUP_A, follow_symlinks=False)
    # sparse layout: data, hole, data, trailing hole
    fd = os.open(m / "a" / "sparse", os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"s" * 8192, 0)
    os.pwrite(fd, b"t" * 12288, 1 * MiB)
    os.pwrite(fd, b"u", 3 * MiB + 1)
    os.ftruncate(fd, 5 * MiB)
    os.fsync(fd)
    os.close(fd)
    # xattrs
    os.setxattr(m / "a" / "file", "user.one", b"1")
    os.setxattr(m / "a" / "file", "user.bin", bytes(range(256)) * 8)
    os.setxattr(m / "a" / "file", "trusted.t", b"trusted value")
    os.setxattr(m / "a" / "file", "security.s", b"sec")
    os.setxattr(m / "a" / "b", "user.dir", b"on a dir")
    os.setxattr(m / "a" / "b" / "empty", "user.empty", b"")
    # times last (everything above changes ctime/mtime)
    os.utime(m / "a" / "b" / "empty", ns=(1_234_567_890_123_456_789,
                                         987_654_321_987_654_321))
    os.utime(m / "a" / "b" / "symlink", ns=(5, 1_000_000_007),
             follow_symlinks=False)
    os.utime(m / "a" / "b" / "c", ns=(42, 4_000_000_000_000_000_001))


def test_metadata_of_a_whole_tree_survives_remount(dmafs):
    _build_tree(dmafs.mnt)
    before = _snapshot(dmafs.mnt, ctime=False)  # setting atimes moves ctime
    paths = _paths(dmafs.mnt)
    times_before = _set_atimes_and_record_times(paths)
    dmafs.remount()
    assert _times(paths) == times_before     # before anything reads the tree
    after = _snapshot(dmafs.mnt, ctime=False)
    assert sorted(after) == sorted(before)
    for path in before:
        assert after[path] == before[path], path


def test_acls_survive_remount(dmafs, need_tool):
    need_tool("setfacl", "getfacl")
    m = dmafs.mnt
    write_file(m / "f", b"acl")
    os.mkdir(m / "d")
    subprocess.run(["setfacl", "-m", f"u:{USER_A}:rw,g:{GROUP_OTHER}:r,m::rw",
                    str(m / "f")], check=True)
    subprocess.run(["setfacl", "-d", "-m", f"u:{USER_A}:rx", str(m / "d")],
                   check=True)

    def acls():
        return subprocess.run(["getfacl", "-n", "-R", "--absolute-names",
                               str(m / "f"), str(m / "d")], check=True,
                              capture_output=True, text=True).stdout
    before = acls()
    assert f"user:{USER_A}:rw-" in before
    assert f"default:user:{USER_A}:r-x" in before
    dmafs.remount()
    assert acls() == before
    assert util.t_as_user(USER_A, GROUP_A, read_file, m / "f") == b"acl"


def test_file_unlinked_while_open_is_gone_after_remount(dmafs):
    m = dmafs.mnt
    write_file(m / "keep", b"k", fsync=True)
    os.sync()
    free_before = os.statvfs(m).f_bfree
    fd = os.open(m / "orphan", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, util.pattern("orphan", 8 * MiB))
    os.fsync(fd)
    os.unlink(m / "orphan")
    os.close(fd)
    dmafs.remount()
    assert os.listdir(m) == ["keep"]
    # its space was given back (allow a little metadata noise)
    assert os.statvfs(m).f_bfree >= free_before - 64


def test_mount_cycle_with_no_changes_changes_nothing(dmafs):
    _build_tree(dmafs.mnt)
    before = _snapshot(dmafs.mnt)
    for _ in range(3):
        dmafs.remount()
    assert _snapshot(dmafs.mnt) == before


def test_read_only_remount_shows_the_same_tree(dmafs):
    _build_tree(dmafs.mnt)
    before = _snapshot(dmafs.mnt)
    dmafs.remount(opts=["ro"])
    assert _snapshot(dmafs.mnt) == before
    with pytest.raises(OSError) as ei:
        write_file(dmafs.mnt / "new", b"")
    assert ei.value.errno == 30   # EROFS
    dmafs.remount()
    write_file(dmafs.mnt / "new", b"rw again")


# ---------------------------------------------------------------------------
# random mutations against a model, with remounts in between


class Model:
    """Paths -> inode ids; inode ids -> (kind, payload, mode)."""

    def __init__(self, rng):
        self.rng = rng
        self.paths = {"": 0}            # "" is the root
        self.nodes = {0: ["dir", None, 0o755]}
        self.next = 1

    def dirs(self):
        return [p for p, n in self.paths.items() if self.nodes[n][0] == "dir"]

    def files(self):
        return [p for p, n in self.paths.items() if self.nodes[n][0] == "file"]

    def children(self, d):
        pre = d + "/" if d else ""
        return [p for p in self.paths if p and p.startswith(pre)
                and "/" not in p[len(pre):]]

    def subtree(self, d):
        return [p for p in self.paths if p == d or p.startswith(d + "/")]

    def new_name(self, d):
        self.next += 1
        name = f"n{self.next}"
        return f"{d}/{name}" if d else name

    def links(self, node):
        return sorted(p for p, n in self.paths.items() if n == node)


def _mutate(m, model, rng):
    root = str(m)

    def P(rel):
        return os.path.join(root, rel) if rel else root
    op = rng.choice(["create", "create", "mkdir", "write", "append", "truncate",
                     "unlink", "rmdir", "rename", "link", "symlink", "chmod",
                     "rename_dir", "setxattr"])
    files, dirs = model.files(), model.dirs()
    if op == "create":
        d = rng.choice(dirs)
        p = model.new_name(d)
        data = util.pattern(p, rng.choice([0, 1, 4095, 4096, 5000, 70_000]))
        write_file(P(p), data)
        model.next += 1
        model.nodes[model.next] = ["file", data, 0o644]
        model.paths[p] = model.next
    elif op == "mkdir":
        d = rng.choice(dirs)
        p = model.new_name(d)
        os.mkdir(P(p))
        os.chmod(P(p), 0o755)
        model.next += 1
        model.nodes[model.next] = ["dir", None, 0o755]
        model.paths[p] = model.next
    elif op == "symlink":
        d = rng.choice(dirs)
        p = model.new_name(d)
        target = rng.choice(["x", "../y", "/abs/" + "z" * rng.randrange(300)])
        os.symlink(target, P(p))
        model.next += 1
        model.nodes[model.next] = ["symlink", target, 0o777]
        model.paths[p] = model.next
    elif op in ("write", "append", "truncate") and files:
        p = rng.choice(files)
        node = model.nodes[model.paths[p]]
        data = bytearray(node[1])
        fd = os.open(P(p), os.O_WRONLY | (os.O_APPEND if op == "append" else 0))
        try:
            if op == "write":
                off = rng.randrange(len(data) + 10_000)
                chunk = util.pattern((p, off), rng.randrange(1, 20_000))
                os.pwrite(fd, chunk, off)
                if off > len(data):
                    data += b"\0" * (off - len(data))
                data[off:off + len(chunk)] = chunk
            elif op == "append":
                chunk = util.pattern((p, "app", len(data)), rng.randrange(1, 9000))
                os.write(fd, chunk)
                data += chunk
            else:
                size = rng.randrange(len(data) + 20_000)
                os.ftruncate(fd, size)
                data = data[:size] + b"\0" * max(0, size - len(data))
        finally:
            os.close(fd)
        node[1] = bytes(data)
    elif op == "unlink":
        cands = [p for p in model.paths if p and model.nodes[model.paths[p]][0] != "dir"]
        if cands:
            p = rng.choice(cands)
            os.unlink(P(p))
            del model.paths[p]
    elif op == "rmdir":
        cands = [d for d in dirs if d and not model.children(d)]
        if cands:
            d = rng.choice(cands)
            os.rmdir(P(d))
            del model.paths[d]
    elif op == "rename":
        cands = [p for p in model.paths if p and model.nodes[model.paths[p]][0] != "dir"]
        if cands:
            src = rng.choice(cands)
            # over an existing non-directory, or to a new name
            targets = [p for p in cands if p != src]
            if targets and rng.random() < 0.4:
                dst = rng.choice(targets)
            else:
                dst = model.new_name(rng.choice(dirs))
            os.rename(P(src), P(dst))
            if model.paths.get(dst) != model.paths[src]:
                model.paths[dst] = model.paths.pop(src)
    elif op == "rename_dir":
        cands = [d for d in dirs if d]
        if cands:
            src = rng.choice(cands)
            dests = [d for d in dirs if d != src and not d.startswith(src + "/")]
            dst = model.new_name(rng.choice(dests))
            os.rename(P(src), P(dst))
            for p in model.subtree(src):
                model.paths[dst + p[len(src):]] = model.paths.pop(p)
    elif op == "link" and files:
        src = rng.choice(files)
        dst = model.new_name(rng.choice(dirs))
        os.link(P(src), P(dst))
        model.paths[dst] = model.paths[src]
    elif op == "chmod":
        cands = [p for p in model.paths if p and model.nodes[model.paths[p]][0] != "symlink"]
        if cands:
            p = rng.choice(cands)
            mode = rng.choice([0o600, 0o644, 0o755, 0o700, 0o4755, 0o1777])
            os.chmod(P(p), mode)
            model.nodes[model.paths[p]][2] = mode
    elif op == "setxattr":
        cands = [p for p in model.paths if p and model.nodes[model.paths[p]][0] != "symlink"]
        if cands:
            p = rng.choice(cands)
            os.setxattr(P(p), "user.model", p.encode())
            model.nodes[model.paths[p]].append(("user.model", p.encode()))


def _check_model(m, model):
    root = str(m)
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            seen.add(os.path.relpath(os.path.join(dirpath, name), root))
    want = {p for p in model.paths if p}
    assert seen == want, (sorted(seen - want), sorted(want - seen))
    for p, n in model.paths.items():
        if not p:
            continue
        full = os.path.join(root, p)
        kind, payload, mode = model.nodes[n][:3]
        xattrs = dict(model.nodes[n][3:])
        st = os.lstat(full)
        if kind == "file":
            assert stat.S_ISREG(st.st_mode), p
            assert read_file(full) == payload, p
            links = model.links(n)
            assert st.st_nlink == len(links), p
            assert {os.lstat(os.path.join(root, q)).st_ino for q in links} \
                == {st.st_ino}, p
        elif kind == "dir":
            assert stat.S_ISDIR(st.st_mode), p
            sub = sum(1 for c in model.children(p)
                      if model.nodes[model.paths[c]][0] == "dir")
            assert st.st_nlink == 2 + sub, p
        else:
            assert stat.S_ISLNK(st.st_mode), p
            assert os.readlink(full) == payload, p
        if kind != "symlink":
            assert stat.S_IMODE(st.st_mode) == mode, p
            for k, v in xattrs.items():
                assert os.getxattr(full, k) == v, p


@pytest.mark.parametrize("seed", [1, 2])
def test_random_mutations_across_many_remounts(dmafs, seed):
    rng = random.Random(seed)
    model = Model(rng)
    for cycle in range(12):
        for _ in range(60):
            _mutate(dmafs.mnt, model, rng)
        _check_model(dmafs.mnt, model)
        dmafs.remount()
        _check_model(dmafs.mnt, model)
