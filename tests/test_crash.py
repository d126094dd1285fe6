# SPDX-License-Identifier: GPL-2.0-or-later
"""Crash recovery: the daemon killed with SIGKILL in the middle of a mixed
workload comes back by itself on the next mount, with everything that was
fsync'd before the kill intact, and the namespace consistent.

This exercises log replay (a clean unmount only ever loads a checkpoint)."""

import contextlib
import os
import random
import signal
import threading
import time

import pytest

import util

pytestmark = pytest.mark.dmafs_cli


def kill_daemon(fs):
    """SIGKILL the daemon and tear down the dead mount."""
    h = fs.handle
    h.proc.send_signal(signal.SIGKILL)
    h.proc.wait()
    util.unmount_path(fs.mnt)
    h.proc = None
    h._log.close()
    util._live_mounts.discard(h)
    fs.handle = None


class Model:
    """What each fsync'd name may hold after a crash: the contents it had
    at its last completed fsync, or that of an operation in flight."""

    def __init__(self):
        self.allowed = {}        # name -> set of sha256 digests
        self.may_vanish = set()  # names whose unlink was in flight

    def begin(self, name, digest):
        self.allowed.setdefault(name, set()).add(digest)

    def done(self, name, digest):
        self.allowed[name] = {digest}

    def begin_unlink(self, name):
        self.may_vanish.add(name)

    def done_unlink(self, name):
        self.allowed.pop(name, None)
        self.may_vanish.discard(name)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def workload(root, rng, model, names, stop):
    """Random creates, overwrites, atomic replaces, unsynced churn and
    unlinks, each durable operation ending in fsync."""
    while not stop.is_set():
        op = rng.random()
        if op < 0.35 or not names:
            name = f"f{rng.randrange(10**9)}"
            data = os.urandom(rng.choice([100, 4096, 70000, 300000]))
            model.begin(name, util.sha256(data))
            model.begin_unlink(name)        # not there yet is fine too
            util.write_file(root / name, data, fsync=True)
            fsync_dir(root)
            model.done(name, util.sha256(data))
            model.may_vanish.discard(name)
            names.append(name)
        elif op < 0.55:
            name = rng.choice(names)
            data = os.urandom(rng.randrange(1, 200000))
            model.begin(name, util.sha256(b""))   # truncated, not rewritten
            model.begin(name, util.sha256(data))
            fd = os.open(root / name, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            model.done(name, util.sha256(data))
        elif op < 0.7:
            name = rng.choice(names)
            data = os.urandom(rng.randrange(1, 50000))
            util.write_file(root / (name + ".tmp"), data, fsync=True)
            model.begin(name, util.sha256(data))
            os.rename(root / (name + ".tmp"), root / name)
            fsync_dir(root)
            model.done(name, util.sha256(data))
        elif op < 0.85:
            name = f"u{rng.randrange(10**9)}"
            util.write_file(root / name, os.urandom(5000))
            if rng.random() < 0.5:
                os.unlink(root / name)
        else:
            name = names.pop(rng.randrange(len(names)))
            model.begin_unlink(name)
            os.unlink(root / name)
            fsync_dir(root)
            model.done_unlink(name)


@pytest.mark.slow
@pytest.mark.image_size("512M")
def test_sigkill_during_mixed_workload_recovers(dmafs):
    rng = random.Random(1234)
    model = Model()
    names = []
    root = dmafs.mnt / "w"
    root.mkdir()
    fsync_dir(dmafs.mnt)
    for rnd in range(10):
        stop = threading.Event()

        def run():
            try:
                workload(root, rng, model, names, stop)
            except OSError:
                pass          # the daemon died under us: expected

        t = threading.Thread(target=run)
        t.start()
        time.sleep(rng.uniform(0.2, 1.5))
        kill_daemon(dmafs)
        stop.set()
        t.join()
        dmafs.mount()
        for name, digests in model.allowed.items():
            path = root / name
            if not path.exists():
                assert name in model.may_vanish, \
                    f"round {rnd}: fsync'd {name} is gone"
                continue
            assert util.sha256_file(path) in digests, \
                f"round {rnd}: {name} holds neither its fsync'd content " \
                f"nor that of the operation in flight"
        # Resynchronise the model with what survived.
        names[:] = [n for n in model.allowed if (root / n).exists()]
        for n in list(model.allowed):
            if (root / n).exists():
                model.done(n, util.sha256_file(root / n))
            else:
                model.done_unlink(n)
        model.may_vanish.clear()
        for p in root.iterdir():
            p.stat()


def test_sigkill_right_after_fsync_keeps_file(dmafs):
    data = os.urandom(1 << 20)
    util.write_file(dmafs.mnt / "a", data, fsync=True)
    os.mkdir(dmafs.mnt / "d")
    util.write_file(dmafs.mnt / "d" / "b", b"x" * 5000, fsync=True)
    kill_daemon(dmafs)
    dmafs.mount()
    assert util.sha256_file(dmafs.mnt / "a") == util.sha256(data)
    assert (dmafs.mnt / "d" / "b").read_bytes() == b"x" * 5000


def test_sigkill_while_unlinked_file_open_reclaims_space(dmafs):
    before = os.statvfs(dmafs.mnt).f_bfree
    fd = os.open(dmafs.mnt / "big", os.O_CREAT | os.O_RDWR)
    os.write(fd, os.urandom(8 << 20))
    os.fsync(fd)
    os.unlink(dmafs.mnt / "big")
    dfd = os.open(dmafs.mnt, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    kill_daemon(dmafs)
    with contextlib.suppress(OSError):
        os.close(fd)      # the release goes to a dead connection
    dmafs.allow_log("orphan")
    dmafs.mount()
    assert not (dmafs.mnt / "big").exists()
    # The orphan was deleted at mount: its blocks are free again.
    assert os.statvfs(dmafs.mnt).f_bfree >= before - 16


def test_sigkill_after_unsynced_truncate_keeps_fsynced_bytes(dmafs):
    """A truncate that never became durable must not have destroyed the
    bytes it would have cut: after the crash the file is either the whole
    fsync'd content or its truncated prefix, nothing in between."""
    data = os.urandom(10000)
    util.write_file(dmafs.mnt / "f", data, fsync=True)
    os.truncate(dmafs.mnt / "f", 5000)
    kill_daemon(dmafs)
    dmafs.mount()
    got = (dmafs.mnt / "f").read_bytes()
    assert got in (data, data[:5000])


def test_truncate_then_extend_reads_zeros_after_remount(dmafs):
    data = os.urandom(10000)
    util.write_file(dmafs.mnt / "f", data, fsync=True)
    os.truncate(dmafs.mnt / "f", 5000)
    with open(dmafs.mnt / "f", "r+b") as f:
        f.seek(9000)
        f.write(b"z")
        f.flush()
        os.fsync(f.fileno())
    kill_daemon(dmafs)
    dmafs.mount()
    got = (dmafs.mnt / "f").read_bytes()
    assert got == data[:5000] + bytes(4000) + b"z"
