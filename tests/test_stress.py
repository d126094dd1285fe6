# SPDX-License-Identifier: GPL-2.0-or-later
"""Stress: many files, and a big file under random writes, checked against
a model and again after a remount."""

import functools
import hashlib
import os
import random

import pytest

import util
from util import GiB, KiB, MiB

pytestmark = pytest.mark.slow


@functools.lru_cache(maxsize=None)
def _content(i):
    # unique per file, sizes from 0 to ~20 KiB, not block aligned
    return f"file {i}\n".encode() + util.pattern(("many", i), (i * 7919) % 20_000)


def _verify_files(d, present, absent=()):
    listing = os.listdir(d)
    assert len(listing) == len(set(listing))
    assert set(listing) == {f"f{i:05d}" for i in present}
    for i in present:
        assert util.read_file(d / f"f{i:05d}") == _content(i), i
    for i in absent:
        assert not os.path.lexists(d / f"f{i:05d}")


def test_5000_files_create_verify_delete_half_remount(dmafs):
    d = dmafs.mnt / "many"
    os.mkdir(d)
    n = 5000
    for i in range(n):
        util.write_file(d / f"f{i:05d}", _content(i))
    _verify_files(d, range(n))
    for i in range(0, n, 2):
        os.unlink(d / f"f{i:05d}")
    kept = range(1, n, 2)
    _verify_files(d, kept, absent=range(0, n, 2))
    dmafs.remount()
    _verify_files(d, kept, absent=range(0, n, 2))
    # the freed names can be used again
    for i in range(0, 200, 2):
        util.write_file(d / f"f{i:05d}", _content(i))
    _verify_files(d, sorted(set(kept) | set(range(0, 200, 2))))


def _compare_chunks(a, b, size, chunk=MiB):
    """sha256 of a and b in chunk-sized pieces; return mismatching offsets."""
    bad = []
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for off in range(0, size, chunk):
            ha = hashlib.sha256(fa.read(chunk)).digest()
            hb = hashlib.sha256(fb.read(chunk)).digest()
            if ha != hb:
                bad.append(off)
    return bad


@pytest.mark.image_size("2G")
def test_1gib_file_random_writes_against_a_model(dmafs, tmp_path):
    size = 1 * GiB
    path = dmafs.mnt / "big"
    model = tmp_path / "model"        # on the host filesystem
    rng = random.Random(20240601)
    fds = [os.open(path, os.O_RDWR | os.O_CREAT, 0o644),
           os.open(model, os.O_RDWR | os.O_CREAT, 0o644)]
    try:
        for fd in fds:
            os.ftruncate(fd, size)
        written = 0
        for i in range(400):
            length = rng.choice([4 * KiB, 64 * KiB, 1 * MiB,
                                 rng.randrange(4 * KiB, MiB + 1)])
            if rng.random() < 0.5:
                off = rng.randrange(0, size - length) & ~4095    # aligned
            else:
                off = rng.randrange(0, size - length)            # unaligned
            buf = util.pattern(("big", i), length)
            for fd in fds:
                assert os.pwrite(fd, buf, off) == length
            written += length
            if i % 100 == 99:
                # read back a recently touched range through the page cache
                assert os.pread(fds[0], length, off) == buf
        os.fsync(fds[0])
        assert written > 100 * MiB
    finally:
        for fd in fds:
            os.close(fd)
    assert os.stat(path).st_size == size
    assert _compare_chunks(path, model, size) == []
    dmafs.remount()
    assert os.stat(path).st_size == size
    assert _compare_chunks(path, model, size) == []
