#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""How fast fsck.dmafs and the mount are on a filesystem with N files.

Makes the image directly (mkfs.dmafs, then a checkpoint written with the
independent format code in tests/dmafs_format.py): N empty files spread
over directories of 100,000 entries, then times `fsck.dmafs -n` and a
mount + stat of one file + unmount.

    bench/fsck-scale.py [N] [BUILD_DIR]      (default 1000000, build)
"""
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import dmafs_format as fmt  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
BUILD = Path(sys.argv[2] if len(sys.argv) > 2 else REPO / "build").resolve()
PER_DIR = 100_000


def main():
    tmp = Path(tempfile.mkdtemp(prefix="dmafs-fsck-scale."))
    img = tmp / "scale.img"
    subprocess.run([BUILD / "tools/mkfs.dmafs", "-q", "-s", "8G", img],
                   check=True)
    sb = fmt.read_super(img)
    t0 = time.monotonic()
    recs = [fmt._rec(fmt.REC_META, 0, struct.pack("<Q", N + 1000))]
    ndirs = (N + PER_DIR - 1) // PER_DIR
    recs.append(fmt.rec_inode(1, 0o040755, nlink=2 + ndirs))
    ino = 2
    dirs = []
    for d in range(ndirs):
        recs.append(fmt.rec_inode(ino, 0o040755, nlink=2))
        recs.append(fmt.rec_dirent(fmt.REC_DIRENT_ADD, 1, f"d{d}", ino,
                                   3 + d, 4))
        dirs.append(ino)
        ino += 1
    for i in range(N):
        d = dirs[i // PER_DIR]
        recs.append(fmt.rec_inode(ino, 0o100644, nlink=1))
        recs.append(fmt.rec_dirent(fmt.REC_DIRENT_ADD, d, f"f{i:07d}", ino,
                                   3 + i % PER_DIR, 8))
        ino += 1
    # Cut into chunks of at most 1 MiB, laid out contiguously.
    blk = sb["data_start"]
    chunks, cur, size = [], [], 0
    for r in recs:
        if size + len(r) > 256 * 4096 - 64:
            chunks.append(cur)
            cur, size = [], 0
        cur.append(r)
        size += len(r)
    chunks.append(cur)
    total = 0
    with open(img, "r+b") as f:
        places = []
        for c in chunks:
            nb = (64 + sum(map(len, c)) + 4095) // 4096
            places.append((blk, nb))
            blk += nb
        for i, c in enumerate(chunks):
            nxt = places[i + 1][0] if i + 1 < len(places) else 0
            f.seek(places[i][0] * 4096)
            f.write(fmt._chunk(fmt.CHUNK_CKPT, sb["ckpt_seq"], c, sb["uuid"],
                               nxt=nxt, index=i))
            total += places[i][1]
    for backup in (False, True):
        s = fmt.read_super(img, backup)
        s["ckpt_blocks"] = total
        s["next_ino"] = ino
        fmt.write_super(img, s, backup)
    print(f"built {N} files in {ndirs} directories "
          f"({total * 4 // 1024} MiB of checkpoint) in "
          f"{time.monotonic() - t0:.1f} s")

    t0 = time.monotonic()
    r = subprocess.run([BUILD / "tools/fsck.dmafs", "-n", img],
                       capture_output=True, text=True)
    print(f"fsck.dmafs -n: exit {r.returncode} in "
          f"{time.monotonic() - t0:.2f} s: {r.stdout.strip().splitlines()[-1]}")
    mnt = tmp / "mnt"
    mnt.mkdir()
    t0 = time.monotonic()
    d = subprocess.Popen([BUILD / "fs/dmafs", "-f", img, mnt])
    while not os.path.ismount(mnt):
        time.sleep(0.01)
    t1 = time.monotonic()
    os.stat(mnt / "d0" / "f0099999")
    t2 = time.monotonic()
    subprocess.run(["fusermount3", "-u", mnt], check=True)
    d.wait()
    t3 = time.monotonic()
    print(f"mount {t1 - t0:.2f} s, lookup in a 100,000-entry directory "
          f"{(t2 - t1) * 1e3:.2f} ms, unmount (checkpoint) {t3 - t2:.2f} s")
    img.unlink()
    mnt.rmdir()
    tmp.rmdir()


if __name__ == "__main__":
    main()
