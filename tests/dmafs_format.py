# SPDX-License-Identifier: GPL-2.0-or-later
"""A second, independent reading of the dmafs on-disk format
(include/dmafs/format.h), for tests that damage images on purpose: read and
reseal superblocks, walk the checkpoint, append hand-made log chunks."""

import struct
import uuid as uuidlib

BS = 4096
MAGIC = 0x31534641414D44
CHUNK_MAGIC = 0x4B4E4843
CHUNK_LOG, CHUNK_CKPT = 1, 2
SB_NEEDS_FSCK = 1

REC_INODE, REC_INODE_DEL, REC_DIRENT_ADD, REC_DIRENT_DEL = 1, 2, 3, 4
REC_EXTENT_SET, REC_EXTENT_PUNCH, REC_XATTR_SET, REC_XATTR_DEL = 5, 6, 7, 8
REC_SYMLINK, REC_META = 9, 10

# name: (offset, struct format) of struct dmafs_disk_super
SB_FIELDS = {
    "magic": (0, "<Q"), "version": (8, "<I"), "crc": (12, "<I"),
    "compat": (16, "<I"), "ro_compat": (20, "<I"), "incompat": (24, "<I"),
    "flags": (28, "<I"), "block_size": (32, "<I"), "lba_size": (36, "<I"),
    "uuid": (40, "16s"), "label": (56, "64s"),
    "total_blocks": (120, "<Q"), "log_start": (128, "<Q"),
    "log_blocks": (136, "<Q"), "data_start": (144, "<Q"),
    "generation": (152, "<Q"), "ckpt_block": (160, "<Q"),
    "ckpt_seq": (168, "<Q"), "ckpt_blocks": (176, "<Q"),
    "log_head_block": (184, "<Q"), "log_head_seq": (192, "<Q"),
    "next_ino": (200, "<Q"), "log_nonce": (280, "<Q"),
}


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_TAB = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ _TAB[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def read_block(img, blk, n=1):
    with open(img, "rb") as f:
        f.seek(blk * BS)
        return f.read(n * BS)


def write_block(img, blk, data):
    with open(img, "r+b") as f:
        f.seek(blk * BS)
        f.write(data)


class Super:
    def __init__(self, raw):
        self.raw = bytearray(raw[:BS])

    def __getitem__(self, name):
        off, fmt = SB_FIELDS[name]
        return struct.unpack_from(fmt, self.raw, off)[0]

    def __setitem__(self, name, value):
        off, fmt = SB_FIELDS[name]
        struct.pack_into(fmt, self.raw, off, value)

    def seal(self):
        self["crc"] = 0
        self["crc"] = crc32c(bytes(self.raw))
        return bytes(self.raw)

    def valid(self):
        crc = self["crc"]
        self["crc"] = 0
        ok = crc32c(bytes(self.raw)) == crc
        self["crc"] = crc
        return ok and self["magic"] == MAGIC


def read_super(img, backup=False):
    sb = Super(read_block(img, 0))
    if backup:
        sb = Super(read_block(img, sb["total_blocks"] - 1))
    return sb


def write_super(img, sb, backup=False):
    blk = sb["total_blocks"] - 1 if backup else 0
    write_block(img, blk, sb.seal())


# ---- records

def _rec(rtype, ino, body):
    length = 16 + len(body)
    pad = (-length) % 8
    return struct.pack("<HHIQ", rtype, 0, length + pad, ino) + body + \
        bytes(pad)


def rec_inode(ino, mode, nlink=1, uid=0, gid=0, size=0, t=1700000000):
    ts = struct.pack("<QII", t, 0, 0)
    body = struct.pack("<IIIIQQIIQ", mode, uid, gid, nlink, 0, size, 0, 0,
                       0) + ts * 4
    return _rec(REC_INODE, ino, body)


def rec_dirent(rtype, dir_ino, name, child=0, cookie=0, dtype=0):
    name = name.encode() if isinstance(name, str) else name
    body = struct.pack("<QQHB5x", child, cookie, len(name), dtype) + name
    return _rec(rtype, dir_ino, body)


def rec_extent(ino, fblk, n, phys, flags=0, rtype=REC_EXTENT_SET):
    return _rec(rtype, ino, struct.pack("<QQQII", fblk, n, phys, flags, 0))


def rec_raw(rtype, ino, body=b""):
    return _rec(rtype, ino, body)


def parse_records(payload):
    out = []
    off = 0
    while off < len(payload):
        rtype, _, length, ino = struct.unpack_from("<HHIQ", payload, off)
        out.append((rtype, ino, payload[off + 16:off + length]))
        off += length
    return out


def _chunk(ctype, seq, records, uid, nxt=0, index=0):
    payload = b"".join(records)
    nblocks = (64 + len(payload) + BS - 1) // BS
    hdr = struct.pack("<IIIIQIIQII16s", CHUNK_MAGIC, 0, ctype, nblocks, seq,
                      len(payload), len(records), nxt, index, 0, uid)
    crc = crc32c(hdr + payload)
    hdr = hdr[:4] + struct.pack("<I", crc) + hdr[8:]
    body = hdr + payload
    return body + bytes(nblocks * BS - len(body))


def append_log_chunk(img, records):
    """Append a valid log chunk where the next one is expected.  Only for
    an image whose log is empty (cleanly unmounted): the chunk goes at the
    replay head with the head's sequence number."""
    sb = read_super(img)
    blk = sb["log_start"] + sb["log_head_block"]
    # A log chunk carries its session's nonce where a checkpoint chunk has
    # the next chunk's block.
    write_block(img, blk, _chunk(CHUNK_LOG, sb["log_head_seq"], records,
                                 sb["uuid"], nxt=sb["log_nonce"]))


def checkpoint(img):
    """[(type, ino, body)] of the current checkpoint, following the chain."""
    sb = read_super(img)
    blk, recs = sb["ckpt_block"], []
    while blk:
        head = read_block(img, blk)
        (magic, _, _, nblocks, _, nbytes, _, nxt, _, _, _) = \
            struct.unpack_from("<IIIIQIIQII16s", head)
        assert magic == CHUNK_MAGIC
        data = read_block(img, blk, nblocks)
        recs += parse_records(data[64:64 + nbytes])
        blk = nxt
    return recs


def extents_of(img, ino):
    """[(file_block, nblocks, phys)] of inode ino in the checkpoint."""
    return [struct.unpack_from("<QQQ", body) for t, i, body
            in checkpoint(img) if t == REC_EXTENT_SET and i == ino]


def inode_of(img, name_path):
    """Inode number of a path (relative to the root) in the checkpoint."""
    recs = checkpoint(img)
    ino = 1
    for part in name_path.strip("/").split("/"):
        for t, i, body in recs:
            if t != REC_DIRENT_ADD or i != ino:
                continue
            child, _, nlen, _ = struct.unpack_from("<QQHB", body)
            if body[24:24 + nlen].decode() == part:
                ino = child
                break
        else:
            raise KeyError(name_path)
    return ino


def fs_uuid(img):
    return str(uuidlib.UUID(bytes=read_super(img)["uuid"]))
