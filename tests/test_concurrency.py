# SPDX-License-Identifier: GPL-2.0-or-later
"""Several processes at once on one filesystem.

Processes are forked (multiprocessing 'fork' context); each reports what it
did over a queue and the parent checks the filesystem against the reports.
"""

import hashlib
import multiprocessing
import os
import random
import struct
import time
import traceback

import util
from util import KiB, MiB, read_file

ctx = multiprocessing.get_context("fork")

SHARED = "shared"          # the name every worker renames over
HDR = struct.Struct("<4sIIQ32s")   # magic, worker, seq, length, sha256


def make_version(worker, seq, rng):
    """A self-checking file body: header + payload.  Any mix of two versions
    fails the check."""
    payload = util.pattern((worker, seq), rng.randrange(1, 300 * KiB))
    return HDR.pack(b"VERS", worker, seq, len(payload),
                    hashlib.sha256(payload).digest()) + payload


def check_version(data):
    """(worker, seq) of a complete version, or raise ValueError."""
    if len(data) < HDR.size:
        raise ValueError(f"short file: {len(data)} bytes")
    magic, worker, seq, length, digest = HDR.unpack_from(data)
    payload = data[HDR.size:]
    if magic != b"VERS" or len(payload) != length \
            or hashlib.sha256(payload).digest() != digest:
        raise ValueError(f"torn or mixed version (claims {worker}/{seq}, "
                         f"{len(payload)} of {length} bytes)")
    return worker, seq


def _run(q, fn, *args):
    try:
        q.put(("ok", fn(*args)))
    except BaseException:
        q.put(("error", traceback.format_exc()))


def run_workers(fn, argsets, timeout=120):
    """Run fn(*args) in one forked process per argset; return the results in
    order, failing with the worker's traceback if one raised."""
    q = ctx.Queue()
    procs = []
    for i, args in enumerate(argsets):
        p = ctx.Process(target=lambda i=i, args=args: _run(q, lambda: (i, fn(*args))))
        p.start()
        procs.append(p)
    results, errors = {}, []
    deadline = time.monotonic() + timeout
    try:
        for _ in procs:
            kind, val = q.get(timeout=max(1, deadline - time.monotonic()))
            if kind == "ok":
                results[val[0]] = val[1]
            else:
                errors.append(val)
    finally:
        for p in procs:
            p.join(timeout=max(1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
    assert not errors, "worker failed:\n" + "\n".join(errors)
    assert all(p.exitcode == 0 for p in procs)
    return [results[i] for i in range(len(argsets))]


# ---------------------------------------------------------------------------
# many processes, one directory


def churn_worker(d, me, seed, duration):
    """Random create/write/rename/link/unlink on names with prefix p<me>_,
    plus rename-over of the shared name.  Returns what it left behind."""
    rng = random.Random(seed)
    pre = f"p{me}_"
    names = {}        # name -> inode key
    content = {}      # inode key -> bytes
    published = []
    nkey = 0
    n = 0
    deadline = time.monotonic() + duration
    ops = 0

    def path(name):
        return os.path.join(d, name)

    def drop(name):
        key = names.pop(name)
        if key not in names.values():
            del content[key]

    while time.monotonic() < deadline:
        ops += 1
        op = rng.choice(["create", "create", "write", "rename", "rename",
                         "link", "unlink", "publish", "check"])
        mine = sorted(names)
        if op == "create" or not mine:
            n += 1
            name = f"{pre}{n}"
            data = util.pattern((me, n), rng.randrange(0, 64 * KiB))
            fd = os.open(path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
            nkey += 1
            names[name] = nkey
            content[nkey] = data
        elif op == "write":
            name = rng.choice(mine)
            data = util.pattern((me, "w", ops), rng.randrange(0, 64 * KiB))
            fd = os.open(path(name), os.O_WRONLY | os.O_TRUNC)
            os.write(fd, data)
            os.close(fd)
            content[names[name]] = data
        elif op == "rename":
            src = rng.choice(mine)
            if rng.random() < 0.5 and len(mine) > 1:
                dst = rng.choice([x for x in mine if x != src])
            else:
                n += 1
                dst = f"{pre}{n}"
            os.rename(path(src), path(dst))
            if names.get(dst) != names[src]:     # same inode: a no-op
                if dst in names:
                    drop(dst)
                names[dst] = names.pop(src)
        elif op == "link":
            src = rng.choice(mine)
            n += 1
            dst = f"{pre}{n}"
            os.link(path(src), path(dst))
            names[dst] = names[src]
        elif op == "unlink":
            name = rng.choice(mine)
            os.unlink(path(name))
            drop(name)
        elif op == "publish":
            body = make_version(me, len(published), rng)
            tmp = path(f"{pre}tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, body)
            os.close(fd)
            os.rename(tmp, path(SHARED))
            published.append(len(published))
        elif op == "check":
            listed = {x for x in os.listdir(d) if x.startswith(pre)}
            assert listed == set(names), (sorted(listed ^ set(names)))
    return {
        "names": {k: hashlib.sha256(content[v]).hexdigest()
                  for k, v in names.items()},
        "groups": [sorted(k for k, v in names.items() if v == key)
                   for key in set(names.values())],
        "published": published,
        "ops": ops,
    }


def test_many_processes_churning_one_directory(mnt):
    d = mnt / "dir"
    os.mkdir(d)
    nproc = 6
    reports = run_workers(churn_worker,
                          [(str(d), i, 1000 + i, 10.0) for i in range(nproc)])
    assert sum(r["ops"] for r in reports) > 500, "workers made no progress"
    want = set()
    for r in reports:
        want |= set(r["names"])
    published = {(i, s) for i, r in enumerate(reports) for s in r["published"]}
    if published:
        want.add(SHARED)
    listing = os.listdir(d)
    assert len(listing) == len(set(listing)), "a name is listed twice"
    assert set(listing) == want
    for r in reports:
        for name, digest in r["names"].items():
            assert util.sha256_file(d / name) == digest, name
        for group in r["groups"]:
            inos = {os.stat(d / name).st_ino for name in group}
            assert len(inos) == 1, group
            assert os.stat(d / group[0]).st_nlink == len(group), group
    if published:
        # the shared name holds one complete version that someone wrote
        assert check_version(read_file(d / SHARED)) in published


# ---------------------------------------------------------------------------
# parallel writers, one file

REGION = 1 * MiB + 1234        # deliberately not block aligned


def region_writer(path, me, seed):
    rng = random.Random(seed)
    start = me * REGION
    want = util.pattern(("region", me), REGION)
    # cut the region into random pieces and write them in random order
    cuts = sorted({0, REGION} | {rng.randrange(REGION) for _ in range(60)})
    pieces = list(zip(cuts, cuts[1:]))
    rng.shuffle(pieces)
    fd = os.open(path, os.O_WRONLY)
    try:
        for a, b in pieces:
            assert os.pwrite(fd, want[a:b], start + a) == b - a
    finally:
        os.close(fd)
    return len(pieces)


def test_parallel_writers_to_distinct_regions_of_one_file(mnt):
    path = mnt / "shared_file"
    util.write_file(path, b"")
    nproc = 6
    run_workers(region_writer, [(str(path), i, i) for i in range(nproc)])
    assert os.stat(path).st_size == nproc * REGION
    with open(path, "rb") as f:
        for i in range(nproc):
            got = f.read(REGION)
            assert got == util.pattern(("region", i), REGION), f"region {i}"


def appender(path, me, count):
    rec = f"<{me:02d}:{'x' * (37 + me)}>\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        for _ in range(count):
            assert os.write(fd, rec) == len(rec)
    finally:
        os.close(fd)
    return rec


def test_parallel_o_append_writers_never_overwrite_each_other(mnt):
    path = mnt / "log"
    util.write_file(path, b"")
    recs = run_workers(appender, [(str(path), i, 2000) for i in range(4)])
    data = read_file(path)
    assert len(data) == sum(len(r) * 2000 for r in recs)
    lines = data.splitlines(keepends=True)
    for r in recs:
        assert lines.count(r) == 2000


# ---------------------------------------------------------------------------
# readers while a writer renames over the file they read


def rename_over_writer(d, seed, duration):
    rng = random.Random(seed)
    deadline = time.monotonic() + duration
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        tmp = os.path.join(d, "tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, make_version(0, seq, rng))
        os.close(fd)
        os.rename(tmp, os.path.join(d, "target"))
    return seq


def reader(d, duration):
    deadline = time.monotonic() + duration
    reads = 0
    seen = set()
    while time.monotonic() < deadline:
        with open(os.path.join(d, "target"), "rb") as f:   # never ENOENT
            data = f.read()
        seen.add(check_version(data)[1])
        reads += 1
    return reads, len(seen)


def test_readers_see_old_or_new_content_during_rename_over(mnt):
    d = mnt / "d"
    os.mkdir(d)
    rng = random.Random(0)
    util.write_file(d / "target", make_version(0, 0, rng))
    duration = 5.0
    res = run_workers(lambda kind, *a: (rename_over_writer if kind == "w"
                                        else reader)(*a),
                      [("w", str(d), 1, duration)] +
                      [("r", str(d), duration) for _ in range(3)])
    writes = res[0]
    assert writes >= 5, "writer made no progress"
    assert all(reads > 20 for reads, _ in res[1:]), res
    assert any(versions > 1 for _, versions in res[1:]), \
        "readers never saw a rename land"
    assert check_version(read_file(d / "target")) == (0, writes)
