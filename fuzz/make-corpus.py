#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the seed corpus of the dmafs fuzz targets (fuzz/corpus/<target>/).

The seeds are built with tests/dmafs_format.py, the independent Python
reading of the format, so they do not share bugs with the C code they feed.
The output is deterministic: running this again rewrites the same files.

  fuzz_format  byte 0 control bits, u16 superblock length, the superblock,
               then one chunk (see fuzz/fuzz_format.c)
  fuzz_image   edits to the template image that fuzz/fuzz_image.c builds
               (block numbers below mirror its constants)

It also writes fuzz/crashes/: hand-made reproducers of the bugs the fuzzers
found, named <target>-<issue> (a reproducer found by the fuzzer itself may
sit beside them; this script leaves other files there alone).

Usage: fuzz/make-corpus.py [OUTDIR]   (default: fuzz/, next to this file)
"""

import shutil
import stat
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import dmafs_format as fmt  # noqa: E402

UUID = b"dmafs-fuzz-uuid!"          # fuzz_uuid in fuzz/common.c
REG, DIR, LNK = stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK


# ---- records (dmafs_format.py has the fixed-size ones) ----

def inode(ino, mode, nlink=1, size=0):
    return fmt.rec_inode(ino, mode, nlink=nlink, size=size)


def add(dir_ino, name, child, cookie, mode=REG):
    return fmt.rec_dirent(fmt.REC_DIRENT_ADD, dir_ino, name, child=child,
                          cookie=cookie, dtype=(mode >> 12) & 0xF)


def rm(dir_ino, name):
    return fmt.rec_dirent(fmt.REC_DIRENT_DEL, dir_ino, name)


def extent(ino, fblk, n, phys, flags=0):
    return fmt.rec_extent(ino, fblk, n, phys, flags)


def punch(ino, fblk, n):
    return fmt.rec_extent(ino, fblk, n, 0, rtype=fmt.REC_EXTENT_PUNCH)


def xattr(ino, name, value, rtype=fmt.REC_XATTR_SET):
    name = name.encode()
    return fmt.rec_raw(rtype, ino, struct.pack("<IHH", len(value), len(name),
                                               0) + name + value)


def symlink(ino, target):
    return fmt.rec_raw(fmt.REC_SYMLINK, ino, target.encode())


def delete(ino):
    return fmt.rec_raw(fmt.REC_INODE_DEL, ino)


def meta(next_ino):
    return fmt.rec_raw(fmt.REC_META, 0, struct.pack("<Q", next_ino))


def root(nlink=2):
    return inode(1, DIR | 0o755, nlink=nlink)


# A small, consistent filesystem: every record type, hard link, symlink.
HEALTHY = [
    meta(20), root(nlink=3),
    add(1, "a", 2, 3), inode(2, REG | 0o644, size=20000),
    extent(2, 0, 3, 400), extent(2, 3, 2, 500, flags=1),
    xattr(2, "user.k", b"v" * 40),
    add(1, "d", 3, 4, DIR), inode(3, DIR | 0o755, nlink=2),
    add(3, "b", 4, 3), add(1, "b2", 4, 5), inode(4, REG | 0o600, nlink=2),
    add(1, "s", 5, 6, LNK), inode(5, LNK | 0o777, size=1), symlink(5, "a"),
    add(1, "p", 6, 7, stat.S_IFIFO), inode(6, stat.S_IFIFO | 0o644),
]
# Operations on top of it, as the log records them.
OPERATIONS = [
    add(3, "new", 7, 4), inode(7, REG | 0o644, size=4096),
    extent(7, 0, 1, 600), punch(2, 1, 1), extent(2, 1, 1, 601),
    rm(1, "p"), delete(6), xattr(2, "user.k", b"", fmt.REC_XATTR_DEL),
    rm(1, "a"), add(1, "a-renamed", 2, 8), meta(21),
]

# name: records that are well formed but wrong, as fsck must repair them.
BROKEN = {
    "dangling-entry": HEALTHY + [add(1, "ghost", 999, 99)],
    "entry-to-root": HEALTHY + [add(3, "up", 1, 9, DIR)],
    "dir-two-parents": HEALTHY + [add(1, "d2", 3, 9, DIR)],
    "dir-cycle": HEALTHY + [inode(8, DIR | 0o755, nlink=2),
                            inode(9, DIR | 0o755, nlink=2),
                            add(8, "x", 9, 3, DIR), add(9, "y", 8, 3, DIR)],
    "unreachable": HEALTHY + [inode(8, REG | 0o644), inode(9, REG | 0o644),
                              inode(10, DIR | 0o755, nlink=2)],
    "link-count": HEALTHY + [inode(4, REG | 0o600, nlink=7)],
    "blocks-twice": HEALTHY + [extent(4, 0, 2, 401)],
    "blocks-twice-same-file": HEALTHY + [extent(2, 10, 1, 400)],
    "symlink-no-target": HEALTHY + [add(1, "s2", 8, 9, LNK),
                                    inode(8, LNK | 0o777)],
    "orphan-symlink-no-target": HEALTHY + [inode(8, LNK | 0o777, nlink=0)],
    "orphan": HEALTHY + [inode(8, REG | 0o644, nlink=0),
                         extent(8, 0, 1, 700)],
    "lost-found-is-a-file": HEALTHY + [add(1, "lost+found", 8, 9),
                                       inode(8, REG | 0o644),
                                       inode(9, REG | 0o644)],
    "lost-found-name-taken": HEALTHY + [
        add(1, "lost+found", 8, 9, DIR), inode(8, DIR | 0o700, nlink=2),
        add(8, "#10", 4, 3), inode(10, REG | 0o644)],
    "next-ino-max": HEALTHY + [meta(2**64 - 1), inode(8, REG | 0o644)],
    "dot-cookies": HEALTHY + [add(1, "c1", 8, 1), add(1, "c2", 9, 2),
                              inode(8, REG | 0o644), inode(9, REG | 0o644)],
    "no-root": HEALTHY[2:],
    "root-deleted": HEALTHY + [delete(1)],
    "type-change": HEALTHY + [inode(2, DIR | 0o755)],
    "extent-on-dir": HEALTHY + [extent(3, 0, 1, 800)],
    "extent-outside": HEALTHY + [extent(2, 50, 1, 2**40)],
    "extent-huge": HEALTHY + [extent(2, 2**50, 2**51, 900)],
    "deleted-dir-with-entries": HEALTHY + [delete(3)],
}

MALFORMED = {
    "bad-length": struct.pack("<HHIQ", fmt.REC_INODE, 0, 12, 1),
    "unknown-type": fmt.rec_raw(77, 1, bytes(8)),
    "name-with-slash": add(1, "a/b", 2, 3),
    "name-with-nul": fmt.rec_raw(fmt.REC_DIRENT_ADD, 1, struct.pack(
        "<QQHB5x", 2, 3, 3, 8) + b"a\0b"),
    "xattr-overrun": fmt.rec_raw(fmt.REC_XATTR_SET, 2, struct.pack(
        "<IHH", 1000, 4, 0) + b"user"),
    "symlink-too-long": symlink(5, "x" * 4200),
    "truncated": fmt.rec_inode(1, DIR | 0o755)[:40],
}


def chunk(records, ctype=fmt.CHUNK_LOG, seq=6):
    return fmt._chunk(ctype, seq, records, UUID)


def super_block(**fields):
    total = 4096
    sb = fmt.Super(bytes(fmt.BS))
    sb["magic"] = fmt.MAGIC
    sb["version"] = 1
    sb["block_size"] = fmt.BS
    sb["lba_size"] = 512
    sb["uuid"] = UUID
    sb["total_blocks"] = total
    sb["log_start"] = 1
    sb["log_blocks"] = 256
    sb["data_start"] = 257
    sb["generation"] = 3
    sb["ckpt_block"] = 257
    sb["ckpt_seq"] = 5
    sb["ckpt_blocks"] = 1
    sb["log_head_block"] = 0
    sb["log_head_seq"] = 6
    sb["next_ino"] = 2
    for k, v in fields.items():
        sb[k] = v
    return sb.seal()


def format_input(ctl=0, sb=b"", payload=b""):
    # The harness pads both parts with zeros: trailing zeros need not be
    # stored, as long as the chunk still spans its nblocks blocks.
    sb = sb.rstrip(b"\0")
    if payload:
        nblocks = struct.unpack_from("<I", payload, 12)[0]
        keep = max(len(payload.rstrip(b"\0")), (nblocks - 1) * fmt.BS + 1)
        payload = payload[:keep]
    return bytes([ctl]) + struct.pack("<H", len(sb)) + sb + payload


def format_seeds():
    s = {}
    s["super-valid"] = format_input(sb=super_block())
    s["super-bad-crc"] = format_input(sb=super_block()[:12] + b"\1\2\3\4" +
                                      super_block()[16:])
    s["super-reseal"] = format_input(1, super_block(version=2))
    for name, fields in {
        "super-huge": {"total_blocks": 2**40, "log_blocks": 131072,
                       "data_start": 131073},
        "super-head-outside": {"log_head_block": 256},
        "super-ckpt-outside": {"ckpt_block": 4095},
        "super-seq": {"log_head_seq": 9},
        "super-incompat": {"incompat": 1},
        "super-lba": {"lba_size": 1000},
        "super-next-ino": {"next_ino": 1},
    }.items():
        s[name] = format_input(sb=super_block(**fields))
    s["healthy"] = format_input(payload=chunk(HEALTHY, fmt.CHUNK_CKPT, 5))
    s["healthy-then-ops"] = format_input(payload=chunk(HEALTHY + OPERATIONS))
    s["healthy-big-sb"] = format_input(
        sb=super_block(total_blocks=65536, log_blocks=512, data_start=513,
                       ckpt_block=513),
        payload=chunk(HEALTHY + OPERATIONS))
    acl = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in
        [(1, 7, 0), (2, 6, 1000), (4, 5, 0), (0x10, 7, 0), (0x20, 4, 0)])
    s["acls"] = format_input(payload=chunk(HEALTHY + [
        xattr(3, "system.posix_acl_default", acl),
        xattr(3, "system.posix_acl_access", acl),
        xattr(2, "system.posix_acl_access", acl[:-3]),
        xattr(1, "system.posix_acl_default", struct.pack("<I", 2))]))
    s["big-xattr"] = format_input(payload=chunk(
        HEALTHY + [xattr(2, "user.big", b"x" * 9000)]))
    for name, recs in BROKEN.items():
        s["broken-" + name] = format_input(payload=chunk(recs))
    for name, rec in MALFORMED.items():
        s["malformed-" + name] = format_input(payload=chunk(HEALTHY + [rec]))
    raw = chunk(HEALTHY)
    s["chunk-bad-crc"] = format_input(payload=raw[:4] + b"\0\0\0\0" +
                                      raw[8:])
    s["chunk-fixup"] = format_input(2, payload=raw[:4] + b"\0\0\0\0" +
                                    raw[8:])
    s["chunk-long-header"] = format_input(payload=raw[:12] +
                                          struct.pack("<I", 9) + raw[16:])
    return s


# ---- fuzz_image: edits to the template (mirrors fuzz/fuzz_image.c) ----

TOTAL = 4096
CKPT0, CKPT1 = 300, 302
# indexes into interesting_blocks[]
I_SB, I_BACKUP, I_CKPT0, I_CKPT1 = 0, 1, 2, 3
I_LOG6, I_LOG7, I_LOG8 = 4, 6, 8
OP_WRITE, OP_XOR, OP_LOG, OP_CKPT = 0, 1, 2, 3
INTERESTING, RESEAL = 0x80, 0x40


def ed_write(blk, off, data, reseal=False, interesting=True, xor=False):
    assert len(data) < 256
    op = (OP_XOR if xor else OP_WRITE) | (INTERESTING if interesting else 0)
    op |= RESEAL if reseal else 0
    return bytes([op]) + struct.pack("<HHB", blk, off, len(data)) + data


def ed_log(records):
    payload = b"".join(records)
    return bytes([OP_LOG]) + struct.pack("<H", len(payload)) + payload


def ed_ckpt(which, records):
    payload = b"".join(records)
    return bytes([OP_CKPT, which]) + struct.pack("<H", len(payload)) + \
        payload


def sb_field(name, value, reseal=True, backup=True):
    off, f = fmt.SB_FIELDS[name]
    data = struct.pack(f, value)
    out = ed_write(I_SB, off, data, reseal)
    if backup:
        out += ed_write(I_BACKUP, off, data, reseal)
    return out


# Template inodes: 1 root, 2 "a2", 3 "d", 4 "d/b" = "b2", 5 "s" -> a,
# 7 lost+found, 8 "d/c", 9 orphan, 10 "l" -> d/c; next inode 11.
def image_seeds():
    s = {}
    s["pristine"] = b""
    s["primary-zeroed"] = ed_write(I_SB, 0, bytes(8))
    s["primary-random"] = ed_write(I_SB, 100, b"\xa5" * 200)
    s["backup-zeroed"] = ed_write(I_BACKUP, 0, bytes(8))
    s["both-gone"] = ed_write(I_SB, 0, bytes(8)) + \
        ed_write(I_BACKUP, 0, bytes(8))
    s["needs-fsck"] = sb_field("flags", 1)
    s["generation-differs"] = sb_field("generation", 9, backup=False)
    s["generation-backup-newer"] = sb_field("generation", 4, backup=False)
    s["head-seq"] = sb_field("log_head_seq", 7) + sb_field("ckpt_seq", 6)
    s["head-block"] = sb_field("log_head_block", 0)
    s["ckpt-blocks"] = sb_field("ckpt_blocks", 5)
    s["ro-compat"] = sb_field("ro_compat", 4)
    s["incompat"] = sb_field("incompat", 4)
    s["next-ino"] = sb_field("next_ino", 2**64 - 2)
    s["ckpt0-crc"] = ed_write(I_CKPT0, 200, b"\x01", xor=True)
    s["ckpt1-crc"] = ed_write(I_CKPT1, 100, b"\x01", xor=True)
    s["ckpt1-resealed"] = ed_write(I_CKPT1, 64 + 16, b"\x00\x40", True)
    # chunk header: magic 0, crc 4, type 8, nblocks 12, seq 16, nbytes 24,
    # nrecords 28, next 32, index 40, uuid 48
    s["ckpt0-nbytes"] = ed_write(I_CKPT0, 24, struct.pack("<I", 300), True)
    s["ckpt0-next-loop"] = ed_write(I_CKPT0, 32, struct.pack("<Q", CKPT0),
                                    True)
    s["ckpt1-next-loop"] = ed_write(I_CKPT1, 32, struct.pack("<Q", CKPT0),
                                    True)
    s["ckpt1-next-log"] = ed_write(I_CKPT1, 32, struct.pack("<Q", 5), True)
    s["ckpt1-index"] = ed_write(I_CKPT1, 40, struct.pack("<I", 5), True)
    s["ckpt1-nrecords"] = ed_write(I_CKPT1, 28, struct.pack("<I", 1), True)
    s["ckpt1-nblocks"] = ed_write(I_CKPT1, 12, struct.pack("<I", 200), True)
    s["log7-broken"] = ed_write(I_LOG7, 70, b"\xff", xor=True)
    s["log6-resealed-bad-record"] = ed_write(I_LOG6, 64 + 2, b"\xff\x7f",
                                             True)
    s["log8-wrong-uuid"] = ed_write(I_LOG8, 48, b"x", True)
    s["ckpt0-empty"] = ed_ckpt(0, [])
    s["ckpt1-replaced"] = ed_ckpt(1, [inode(3, DIR | 0o755, nlink=2),
                                      inode(4, REG | 0o600, nlink=2),
                                      inode(5, LNK | 0o777),
                                      symlink(5, "a"),
                                      inode(7, DIR | 0o700, nlink=2)])
    log = {
        "dangling-entry": [add(1, "ghost", 999999, 999)],
        "link-count": [inode(2, REG | 0o644, nlink=7)],
        "unreachable": [inode(20, REG | 0o644), inode(21, DIR | 0o755,
                                                      nlink=2)],
        "dir-cycle": [rm(1, "d"), add(3, "loop", 7, 9, DIR),
                      rm(1, "lost+found"), add(7, "back", 3, 3, DIR)],
        "blocks-twice": [extent(8, 5, 2, 400)],
        "blocks-on-checkpoint": [extent(8, 5, 1, CKPT1)],
        "unknown-record": [fmt.rec_raw(77, 1, bytes(8))],
        "symlink-no-target": [inode(20, LNK | 0o777), add(1, "x", 20, 30,
                                                          LNK)],
        "lost-found-name-taken": [add(7, "#20", 4, 3), inode(20, REG |
                                                             0o644)],
        "next-ino-max": [meta(2**64 - 1), inode(20, REG | 0o644)],
        "delete-dir-with-entries": [delete(3)],
        "operations": [
            xattr(2, "user.x", b"", fmt.REC_XATTR_DEL),
            xattr(3, "user.big", b"", fmt.REC_XATTR_DEL),
            punch(8, 0, 1), extent(8, 0, 1, 460), extent(8, 1, 1, 461),
            inode(20, REG | 0o644), add(3, "n", 20, 9), rm(3, "b"),
            inode(4, REG | 0o600, nlink=1), rm(1, "s"), delete(5),
            inode(21, LNK | 0o777), symlink(21, "n"), add(1, "s", 21, 30,
                                                          LNK),
            meta(30)],
        "rmdir": [rm(1, "lost+found"), delete(7),
                  inode(1, DIR | 0o755, nlink=3)],
    }
    for name, recs in log.items():
        s["log-" + name] = ed_log(recs)
    s["log-two-chunks"] = ed_log([add(1, "n1", 20, 40),
                                  inode(20, REG | 0o644)]) + \
        ed_log([rm(1, "n1"), delete(20)])
    return s


# ---- reproducers of the bugs the fuzzers found (fuzz/crashes/) ----
#
# <target>-<issue>: each one failed (the target aborted) until its bug was
# fixed; tests/test_fuzz.py runs them all, so they stay fixed.  The comment
# above each says what the bug is.

def crash_inputs():
    c = {}
    two_lost = [inode(8, REG | 0o644), inode(9, REG | 0o644)]
    # fsck: a second inode reattached to /lost+found is never marked
    # reachable, then freed as an orphan; its entry is left dangling.
    c["fuzz_format-fsck-reattach-frees-inode"] = format_input(
        payload=chunk(HEALTHY + [add(1, "lost+found", 7, 20, DIR),
                                 inode(7, DIR | 0o700, nlink=2)] + two_lost))
    c["fuzz_image-fsck-reattach-frees-inode"] = ed_log(
        [inode(20, REG | 0o644)])
    # fsck: "#<ino>" already taken in /lost+found: the inode is not linked.
    c["fuzz_format-fsck-lost-found-name-taken"] = \
        format_seeds()["broken-lost-found-name-taken"]
    # fsck: a file called lost+found loses its name and is left orphaned.
    c["fuzz_format-fsck-lost-found-is-a-file"] = \
        format_seeds()["broken-lost-found-is-a-file"]
    # fsck: next_ino exhausted: the new lost+found gets inode 2^64-1,
    # which replay refuses.
    c["fuzz_format-fsck-lost-found-ino-max"] = \
        format_seeds()["broken-next-ino-max"]
    # replay: a bad SYMLINK record replaces the target with "" before it is
    # refused; fsck goes on and writes the empty target, the mount refuses.
    c["fuzz_format-meta-empty-symlink-kept"] = format_input(
        payload=chunk(HEALTHY + [symlink(5, "")]))
    c["fuzz_image-meta-empty-symlink-kept"] = ed_log([symlink(5, "")])
    # log: fsck -y after a damaged log chunk (7): its new head expects the
    # next sequence number (8) where 7 lies, falls back to the log start,
    # and finds the stale but valid chunk 8 there.
    # log: both superblocks valid, the backup newer: pick_super() returns
    # 0 without setting fs->sb; fsck -y then "repairs" an empty filesystem
    # and overwrites the primary superblock.
    c["fuzz_image-log-backup-newer-zero-sb"] = sb_field("generation", 4,
                                                        backup=False)
    # replay accepts a cookie of 2^62-1, the next entry made in that
    # directory (here by fsck in /lost+found) gets 2^62, which replay
    # refuses: fsck -y (or the daemon) writes an unmountable filesystem.
    # Since fixed as said below (fuzz_image-fsck-unplaced-inode-freed),
    # which is what this one finds now.
    c["fuzz_format-fsck-unplaced-inode-freed"] = format_input(payload=chunk(
        HEALTHY + [add(1, "big", 8, 2**62 - 1), inode(8, REG | 0o644),
                   inode(9, REG | 0o644)]))
    # ... and one left where it is must still be mountable: a symlink
    # without a target gets one even if it cannot be reattached.
    c["fuzz_format-fsck-unplaced-symlink-no-target"] = format_input(
        payload=chunk(HEALTHY + [add(1, "big", 8, 2**62 - 1),
                                 inode(8, REG | 0o644),
                                 inode(9, LNK | 0o777)]))
    # ... nor a directory with no links that the mount drops as an orphan
    # (here no inode number is left for a lost+found).
    c["fuzz_format-fsck-unplaced-dir-no-links"] = format_input(
        payload=chunk(HEALTHY + [meta(2**62), inode(8, DIR | 0o755,
                                                    nlink=0)]))
    c["fuzz_format-super-next-ino-out-of-range"] = format_input(
        sb=super_block(next_ino=2**64 - 2), payload=chunk(HEALTHY))
    # Since fixed by refusing cookies >= 2^62 and making lost+found only
    # where a cookie is left; then fsck says "(not fixed)" for the inode it
    # cannot place, but drop_orphans() frees it with the orphans.
    c["fuzz_image-fsck-unplaced-inode-freed"] = ed_log([
        rm(1, "lost+found"), delete(7), inode(1, DIR | 0o755, nlink=3),
        add(1, "big", 20, 2**62 - 1), inode(20, REG | 0o644),
        inode(21, REG | 0o644)])
    # sb.next_ino beyond DMAFS_INO_MAX passes dmafs_super_check(); the next
    # checkpoint (fsck -y, or the daemon's) writes it in a META record,
    # which replay refuses.
    c["fuzz_image-super-next-ino-out-of-range"] = sb_field("next_ino",
                                                           2**64 - 2)
    # fsck: an orphan (nlink 0, unreachable) is only a note, and dropped
    # before the space check, but the mount's dmafs_meta_finish_load()
    # checks it like any inode: -n says clean, the mount refuses.
    c["fuzz_format-fsck-orphan-symlink-no-target"] = format_input(
        payload=chunk(HEALTHY + [inode(8, LNK | 0o777, nlink=0)]))
    c["fuzz_format-fsck-orphan-blocks-used-twice"] = format_input(
        payload=chunk(HEALTHY + [inode(8, REG | 0o644, nlink=0),
                                 extent(8, 0, 1, 401)]))
    c["fuzz_image-fsck-orphan-symlink-no-target"] = ed_log([
        inode(20, LNK | 0o777, nlink=0)])
    c["fuzz_image-fsck-orphan-blocks-used-twice"] = ed_log([
        inode(20, REG | 0o644, nlink=0), extent(20, 0, 1, 400)])
    c["fuzz_image-log-stale-chunk-replayed"] = sb_field("flags", 1) + \
        ed_write(I_LOG7, 70, b"\xff", xor=True)
    return c


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for target, seeds in (("fuzz_format", format_seeds()),
                          ("fuzz_image", image_seeds())):
        d = out / "corpus" / target
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for name, data in sorted(seeds.items()):
            (d / name).write_bytes(data)
        print(f"{d}: {len(seeds)} seeds")
    d = out / "crashes"
    d.mkdir(exist_ok=True)
    crashes = crash_inputs()
    for name, data in sorted(crashes.items()):
        (d / name).write_bytes(data)
    print(f"{d}: {len(crashes)} reproducers")


if __name__ == "__main__":
    main()
