# SPDX-License-Identifier: GPL-2.0-or-later
"""Simulated power cuts (tests/crashsim.py): each workload runs once on a
traced device; every crash image a volatile write cache could leave behind
is then checked: fsck.dmafs -n finds nothing, the image mounts, every name
holds what its last durable operation (or the one in flight) gave it,
renames are all-or-nothing, and no sector shows another file's data.

The number of crash points is printed per workload; DMAFS_CRASH_VARIANTS
and DMAFS_CRASH_RANDOM scale the run."""

import contextlib
import os
import random
import subprocess
from pathlib import Path

import pytest

import crashsim as cs
import util

pytestmark = [pytest.mark.dmafs_cli, pytest.mark.slow]

VARIANTS = int(os.environ.get("DMAFS_CRASH_VARIANTS", "6"))
RANDOM_POINTS = int(os.environ.get("DMAFS_CRASH_RANDOM", "40"))
TOTAL = {"points": 0, "workloads": set()}


def fsync_path(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Run:
    """A workload's view: the mount, the model, per-sector write history,
    rename pairs."""

    def __init__(self, mnt, trace, rng):
        self.mnt = Path(mnt)
        self.rng = rng
        self.model = cs.Model(trace)
        self.sector_writes = {}     # name -> [(start, end, off, len, ver)]
        self.pairs = []             # (start, end, old, new)
        self.cids = {}              # name -> content id for stamp checks
        self.trace = trace

    def cid(self, name):
        return self.cids.setdefault(name, len(self.cids) + 1)

    def durable_write(self, name, off, data, version, datasync=True):
        """pwrite + f(data)sync, recorded per sector."""
        start = cs.trace_len(self.trace)
        fd = os.open(self.mnt / name, os.O_WRONLY | os.O_CREAT, 0o644)
        os.pwrite(fd, data, off)
        (os.fdatasync if datasync else os.fsync)(fd)
        os.close(fd)
        self.sector_writes.setdefault(name, []).append(
            (start, cs.trace_len(self.trace), off, len(data), version))

    def sector_check(self, name, data, pos):
        """Per-sector: the version of the last write that was durable at
        pos, or of one in flight then."""
        hist = self.sector_writes.get(name, [])
        cid = self.cid(name)
        for s in range(len(data) // cs.SECTOR):
            sec_lo, sec_hi = s * cs.SECTOR, (s + 1) * cs.SECTOR
            last, ok = None, set()
            for start, end, off, length, ver in hist:
                if off >= sec_hi or off + length <= sec_lo:
                    continue
                if end <= pos:
                    last = ver
                elif start <= pos:
                    ok.add(ver)
            ok.add(last)
            sec = data[sec_lo:sec_hi]
            if not any(sec):
                if None in ok or 0 in ok:
                    continue
                return f"{name} sector {s} is zeros, allowed versions {ok}"
            magic, c, v, idx = cs.STAMP.unpack_from(sec)
            if magic != b"DMAS" or c != cid or idx != s:
                return f"{name} sector {s}: foreign data ({magic}, {c}, {idx})"
            if v not in ok:
                return f"{name} sector {s} has version {v}, allowed {ok}"
        return None


# ---- workloads: each makes operations durable and records them

def w_append_fsync(r):
    name, total = "append", 0
    cid = r.cid(name)
    content = b""
    for _ in range(20):
        grow = r.rng.choice([100, 512, 3000, 4096, 9000, 70000])
        content = cs.stamped(cid, 0, total + grow)
        r.model.begin(name)
        with open(r.mnt / name, "ab") as f:
            f.write(content[total:])
            f.flush()
            os.fsync(f.fileno())
        r.model.end(name, name, cs.digest(content))
        total += grow


def w_overwrite_fdatasync(r):
    name = "overwrite"
    cid = r.cid(name)
    size = 256 * 1024
    r.durable_write(name, 0, cs.stamped(cid, 1, size), 1, datasync=False)
    for ver in range(2, 22):
        sectors = r.rng.choice([1, 8, 9, 64, 128])
        first = r.rng.randrange(size // cs.SECTOR - sectors)
        r.durable_write(name, first * cs.SECTOR,
                        cs.stamped(cid, ver, sectors * cs.SECTOR, first), ver)


def w_punch_zero(r):
    name = "punch"
    cid = r.cid(name)
    size = 512 * 1024
    r.durable_write(name, 0, cs.stamped(cid, 1, size), 1, datasync=False)
    for _ in range(12):
        first = r.rng.randrange(size // cs.SECTOR - 64)
        n = r.rng.choice([8, 16, 40, 64])
        mode = r.rng.choice([util.FALLOC_FL_PUNCH_HOLE | util.FALLOC_FL_KEEP_SIZE,
                             util.FALLOC_FL_ZERO_RANGE])
        start = cs.trace_len(r.trace)
        fd = os.open(r.mnt / name, os.O_RDWR)
        util.fallocate(fd, mode, first * cs.SECTOR, n * cs.SECTOR)
        os.fsync(fd)
        os.close(fd)
        r.sector_writes[name].append((start, cs.trace_len(r.trace),
                                      first * cs.SECTOR, n * cs.SECTOR,
                                      None))


def w_rename_over(r):
    name = "target"
    cid = r.cid(name)
    for ver in range(1, 16):
        data = cs.stamped(cid, ver, r.rng.choice([700, 4096, 20000, 150000]))
        util.write_file(r.mnt / "target.tmp", data, fsync=True)
        r.model.begin(name)
        os.rename(r.mnt / "target.tmp", r.mnt / name)
        fsync_path(r.mnt)
        r.model.end(name, name, cs.digest(data))
    r.cids["target.tmp"] = cid


def w_create_fsync_parent(r):
    os.mkdir(r.mnt / "dir")
    fsync_path(r.mnt)
    for i in range(20):
        name = f"dir/c{i}"
        data = cs.stamped(r.cid(name), 0, r.rng.choice([1, 600, 5000]))
        r.model.begin(name)
        util.write_file(r.mnt / name, data, fsync=True)
        fsync_path(r.mnt / "dir")
        r.model.end(name, name, cs.digest(data))
        if i % 4 == 3:
            # unlink an earlier one: all-or-nothing too
            old = f"dir/c{i - 2}"
            r.model.begin(old)
            os.unlink(r.mnt / old)
            fsync_path(r.mnt / "dir")
            r.model.end(old, old, None)


def w_truncate(r):
    name = "trunc"
    cid = r.cid(name)
    full = cs.stamped(cid, 0, 300000)
    r.model.begin(name)
    util.write_file(r.mnt / name, full, fsync=True)
    r.model.end(name, name, cs.digest(full))
    size = len(full)
    for _ in range(15):
        new = r.rng.randrange(0, 320000)
        cur = full[:min(size, new)] + bytes(max(0, new - size))
        r.model.begin(name)
        os.truncate(r.mnt / name, new)
        fsync_path(r.mnt / name)
        r.model.end(name, name, cs.digest(cur))
        full, size = cur, new


def w_deep_tree(r):
    path = Path("t")
    os.mkdir(r.mnt / path)
    fsync_path(r.mnt)
    for depth in range(12):
        path = path / f"d{depth}"
        os.mkdir(r.mnt / path)
        fsync_path(r.mnt / path.parent)
        name = str(path / "f")
        data = cs.stamped(r.cid(name), 0, 3000)
        r.model.begin(name)
        util.write_file(r.mnt / name, data, fsync=True)
        r.model.end(name, name, cs.digest(data))
    # Move a subtree: every name under it changes at once.
    old, new = "t/d0/d1/d2", "moved"
    moved = [n for n in list(r.model.names()) if n.startswith(old + "/")]
    start = cs.trace_len(r.trace)
    os.rename(r.mnt / old, r.mnt / new)
    fsync_path(r.mnt / "t/d0/d1")
    fsync_path(r.mnt)
    end = cs.trace_len(r.trace)
    before = {n: r.model.allowed(n, start) for n in moved}
    for n in moved:
        nn = new + n[len(old):]
        (content,) = before[n]
        r.model.events.append((start, end, n, None))
        r.model.events.append((start, end, nn, content))
        r.cids[nn] = r.cids[n]
        r.pairs.append((start, end, n, nn))


def churn(r, n=30):
    """Unsynced creates and deletes: may survive or not, must not show
    foreign data, and reuse freed blocks under the durable files."""
    for i in range(n):
        name = f"churn{i}"
        util.write_file(r.mnt / name,
                        cs.stamped(r.cid(name), 0, r.rng.choice([4096, 40000])))
        if r.rng.random() < 0.6:
            os.unlink(r.mnt / name)


WORKLOADS = {
    "append_fsync": w_append_fsync,
    "overwrite_fdatasync": w_overwrite_fdatasync,
    "punch_zero": w_punch_zero,
    "rename_over": w_rename_over,
    "create_fsync_parent": w_create_fsync_parent,
    "truncate": w_truncate,
    "deep_tree": w_deep_tree,
}


def check_image(r, pos, mnt):
    problems = []
    for name in r.model.names():
        got = cs.file_state(mnt / name)
        if got not in r.model.allowed(name, pos):
            problems.append(f"{name}: content {got and got[:12]} not among "
                            f"the allowed states")
    for start, end, old, new in r.pairs:
        # In flight, the names may each be either way, but not both or
        # neither: the rename is one step.
        o, n = (mnt / old).exists(), (mnt / new).exists()
        if start <= pos < end and o == n:
            problems.append(f"rename {old} -> {new} not atomic: old {o}, "
                            f"new {n}")
    for name in r.sector_writes:
        p = mnt / name
        if p.exists():
            bad = r.sector_check(name, p.read_bytes(), pos)
            if bad:
                problems.append(bad)
    # No file anywhere shows sectors that are not its own.
    for dirpath, _, files in os.walk(mnt):
        for fn in files:
            rel = os.path.relpath(os.path.join(dirpath, fn), mnt)
            cid = r.cids.get(rel)
            if cid is None:
                problems.append(f"unexpected file {rel}")
                continue
            bad = cs.check_stamps(Path(dirpath, fn).read_bytes(), cid)
            if bad:
                problems.append(f"{rel}: {bad}")
    return problems


@pytest.mark.image_size("64M")
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_power_cut(dmafs, tmp_path, workload):
    rng = random.Random(workload)
    dmafs.umount()
    base = tmp_path / "base.img"
    subprocess.run(["cp", "--sparse=always", str(dmafs.image), str(base)],
                   check=True)
    trace = tmp_path / "trace.bin"
    os.environ["DMAFS_DEV_TRACE"] = str(trace)
    try:
        dmafs.mount()
    finally:
        del os.environ["DMAFS_DEV_TRACE"]
    r = Run(dmafs.mnt, trace, rng)
    WORKLOADS[workload](r)
    churn(r)
    dmafs.umount()

    failures, points = [], 0
    work = tmp_path / "crash"
    work.mkdir()
    cmnt = util.make_mountpoint()
    try:
        for pos, img, desc in cs.crash_images(base, trace, work, rng,
                                              RANDOM_POINTS, VARIANTS):
            points += 1
            fsck = subprocess.run([str(util.FSCK), "-n", str(img)],
                                  capture_output=True, text=True)
            if fsck.returncode != 0:
                failures.append(f"{desc}: fsck -n exit {fsck.returncode}:\n"
                                f"{fsck.stdout}{fsck.stderr}")
                continue
            h = util.t_mount(img, cmnt, "ro", log_path=work / "ro.log",
                             allow_log=("primary superblock invalid",))
            try:
                failures += [f"{desc}: {p}" for p in
                             check_image(r, pos, Path(cmnt))]
            finally:
                h.umount()
            if len(failures) > 5:
                break
    finally:
        util.remove_mountpoint(cmnt)
    TOTAL["points"] += points
    TOTAL["workloads"].add(workload)
    print(f"\n{workload}: {points} crash images checked "
          f"({TOTAL['points']} so far)")
    assert not failures, "\n".join(failures[:6])
    assert points >= 20, "too few crash points: the trace is empty?"


def test_power_cut_total(request):
    """The whole run covers at least 1,000 crash images (when every
    workload ran in this session: with -k only some of them run)."""
    if TOTAL["workloads"] != set(WORKLOADS):
        return
    print(f"\npower cuts simulated: {TOTAL['points']}")
    assert TOTAL["points"] >= 1000
