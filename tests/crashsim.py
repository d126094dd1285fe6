# SPDX-License-Identifier: GPL-2.0-or-later
"""Power-cut simulation.

The daemon runs with DMAFS_DEV_TRACE set: its device layer appends every
completed write and flush to a trace (lib/core/dev.c, dev_trace()).  From
the image before the run and the trace, this module builds the images a
device with a volatile write cache may hold after a power cut at any point:

  - everything written before the last completed flush is there;
  - a FUA write is there once it completed;
  - of the other writes since that flush, any subset, each torn at 512-byte
    sector granularity; a sector holds the newest data of the writes that
    reached it (a device does not reorder two writes of one sector).

A workload records, around each operation it makes durable, the trace
length when the operation started and when its fsync returned, so a check
knows for each crash point what each name must hold.

File data is stamped per 512-byte sector with (content id, version,
sector index), so a crash image that shows a sector of any other file, or
of another place in the same file, is caught whatever the workload."""

import hashlib
import os
import random
import shutil
import struct
from pathlib import Path

SECTOR = 512
TRACE_MAGIC = 0x43525444
T_WRITE, T_FUA, T_FLUSH = 1, 2, 3
STAMP = struct.Struct("<4sQQQ")      # b"DMAS", content id, version, sector


def stamped(cid, version, nbytes, first_sector=0):
    """Data of content cid, version, whose first sector is first_sector."""
    out = bytearray()
    n = (nbytes + SECTOR - 1) // SECTOR
    for i in range(n):
        s = first_sector + i
        head = STAMP.pack(b"DMAS", cid, version, s)
        fill = hashlib.blake2b(head, digest_size=32).digest()
        out += (head + fill * (SECTOR // 32))[:SECTOR]
    return bytes(out[:nbytes])


def check_stamps(data, cid, versions=None):
    """Every whole sector of data is zeros or a stamp of cid at its own
    index (and, when given, of one of the allowed versions).  Returns a
    description of the first offence, or None."""
    for s in range(len(data) // SECTOR):
        sec = data[s * SECTOR:(s + 1) * SECTOR]
        if not any(sec):
            continue
        magic, c, v, idx = STAMP.unpack_from(sec)
        if magic != b"DMAS":
            return f"sector {s} holds foreign data"
        if c != cid:
            return f"sector {s} holds data of content {c} (this is {cid})"
        if idx != s:
            return f"sector {s} holds sector {idx} of the file"
        if versions is not None and v not in versions:
            return f"sector {s} holds version {v}, allowed {sorted(versions)}"
    return None


def read_trace(path):
    """[(type, offset, data, end_position_in_trace)]"""
    ops = []
    with open(path, "rb") as f:
        raw = f.read()
    pos = 0
    hdr = struct.Struct("<IIQQ")
    while pos + hdr.size <= len(raw):
        magic, typ, off, length = hdr.unpack_from(raw, pos)
        assert magic == TRACE_MAGIC, f"bad trace record at {pos}"
        data = raw[pos + hdr.size:pos + hdr.size + length]
        pos += hdr.size + length
        ops.append((typ, off, data, pos))
    return ops


def trace_len(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _apply(f, off, data):
    f.seek(off)
    f.write(data)


def crash_images(base, trace, workdir, rng, random_points=10, variants=2):
    """Yield (trace_position, image_path, description) for crash points:
    right after every flush and every FUA write, and at random_points
    random places, each with `variants` random choices of what the write
    cache lost.  The image at image_path is rebuilt for every yield."""
    ops = read_trace(trace)
    workdir = Path(workdir)
    durable = workdir / "durable.img"
    crash = workdir / "crash.img"
    shutil.copyfile(base, durable)
    points = {i for i, op in enumerate(ops) if op[0] in (T_FLUSH, T_FUA)}
    if ops:
        points |= {rng.randrange(len(ops)) for _ in range(random_points)}
    points = sorted(points)
    applied = 0          # ops[:applied] are in durable.img
    last_flush = -1
    with open(durable, "r+b") as df:
        for p in points:
            # Advance the durable image to the last flush at or before p.
            for i in range(applied, p + 1):
                if ops[i][0] == T_FLUSH:
                    for j in range(max(applied, last_flush + 1), i):
                        if ops[j][0] in (T_WRITE, T_FUA):
                            _apply(df, ops[j][1], ops[j][2])
                    applied = i + 1
                    last_flush = i
            df.flush()
            since = [ops[j] for j in range(applied, p + 1)
                     if ops[j][0] in (T_WRITE, T_FUA)]
            nvar = variants if any(o[0] == T_WRITE for o in since) else 1
            for v in range(nvar):
                shutil.copyfile(durable, crash)
                with open(crash, "r+b") as cf:
                    lost = 0
                    for typ, off, data, _ in since:
                        if typ == T_FUA:
                            _apply(cf, off, data)
                            continue
                        mode = rng.random()
                        if mode < 0.3:
                            lost += 1
                            continue            # never reached the media
                        if mode < 0.7:
                            _apply(cf, off, data)
                            continue
                        for s in range(len(data) // SECTOR):
                            if rng.random() < 0.5:   # torn: some sectors
                                _apply(cf, off + s * SECTOR,
                                       data[s * SECTOR:(s + 1) * SECTOR])
                yield (ops[p][3], crash,
                       f"op {p}/{len(ops)} ({len(since)} unflushed writes, "
                       f"{lost} lost, variant {v})")


class Model:
    """What each name may hold at a crash point: a timeline of operations
    (start, end, name, value) where value is a content digest or None
    (absent), end the trace length when the operation became durable."""

    def __init__(self, trace):
        self.trace = trace
        self.events = []
        self._open = {}

    def begin(self, key):
        self._open[key] = trace_len(self.trace)

    def end(self, key, name, value):
        self.events.append((self._open.pop(key), trace_len(self.trace),
                            name, value))

    def allowed(self, name, pos):
        """Values name may have at trace position pos."""
        last, ok = None, set()
        for start, end, n, value in self.events:
            if n != name:
                continue
            if end <= pos:
                last = value
            elif start <= pos:
                ok.add(value)
        ok.add(last)
        return ok

    def names(self):
        return {e[2] for e in self.events}


def digest(data):
    return hashlib.sha256(data).hexdigest()


def file_state(path):
    try:
        return digest(Path(path).read_bytes())
    except FileNotFoundError:
        return None
