/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmafs on-disk format, version 1.
 *
 * This header is the single source of truth for the daemon, mkfs.dmafs and
 * fsck.dmafs. Every field is little-endian and fixed width; units are in the
 * comments; sizes and offsets are pinned by the static asserts at the end.
 *
 * Design in one page
 * ------------------
 * dmafs keeps all metadata (inodes, directory entries, extent maps, xattrs)
 * in memory while mounted and makes it durable with a checksummed
 * write-ahead log of *logical* records plus periodic *checkpoints* that are
 * a full dump of the same records.  There is no on-disk B-tree to keep
 * consistent; a crash at any instant is recovered by loading the newest
 * valid checkpoint and replaying the log chunks that follow it.
 *
 *   block 0                  primary superblock
 *   [log_start, +log_blocks) circular log of chunks
 *   [data_start, total-1)    file data and checkpoint chunks (allocated)
 *   block total_blocks-1     backup superblock
 *
 * Everything is addressed in 4 KiB filesystem blocks, so every device range
 * the filesystem hands out is aligned to 4 KiB and therefore to the
 * device's logical block size (512 or 4096 bytes; larger is refused).
 *
 * Chunks.  The log and the checkpoint are both sequences of *chunks*: a
 * 64-byte header followed by whole records, padded to whole blocks.  The
 * header carries the filesystem UUID, a sequence number and a crc32c over
 * header and payload, so a chunk is valid only if it was written whole, by
 * this filesystem, in the expected order.  A chunk is the unit of atomicity:
 * all records of one metadata operation land in one chunk.
 *
 * Log.  Chunks are appended at increasing sequence numbers.  A chunk that
 * does not fit before the end of the log region starts again at its first
 * block.  Replay starts at sb.log_head_block expecting sb.log_head_seq; at
 * each position it accepts the chunk there if it is valid with the expected
 * sequence, otherwise tries the start of the region once, otherwise stops.
 * Sequence numbers never repeat, so a stale chunk never matches.
 *
 * Log sessions.  A replay ends at the first chunk that is not valid, which
 * after a crash is a torn or never-written one; but chunks of the same log
 * with later sequence numbers may lie beyond it (a chunk damaged later, or
 * old chunks that a truncated log never overwrote), and must never be
 * replayed after new chunks are appended.  So every checkpoint starts a new
 * log session with a fresh random sb.log_nonce that each log chunk carries
 * (in chunk.next), and a read-write mount that replayed any chunk writes a
 * checkpoint before it appends: within one session the log is only ever
 * appended to, so its sequence numbers are unique.
 *
 * Checkpoint.  When the log runs short of space (and at unmount) the daemon
 * dumps its whole state as records into chunks written to freshly allocated
 * blocks in the data area (linked by chunk.next), flushes, then writes the
 * primary and backup superblock pointing at it, with the log head moved to
 * the current log tail.  The previous checkpoint's blocks are freed only
 * after that.  A torn superblock fails its crc and the other copy (older or
 * newer, whichever is valid and has the higher generation) is used.
 *
 * Ordering rules that make crash recovery exact:
 *  1. File data is written in place, before the log records that point at
 *     newly allocated blocks are committed: a commit flushes the device
 *     cache and then writes the chunk with FUA (RWF_DSYNC).
 *  2. Blocks freed by an operation are not reused until the chunk that
 *     frees them is durable, so no file can ever see another file's data.
 *  3. Inodes with nlink 0 at mount (unlinked while open, then crash) are
 *     deleted by the mount that replays them.
 *
 * Allocation state is not stored: free space is derived at mount from the
 * extent maps and the checkpoint's chunk list.
 */
#ifndef DMAFS_FORMAT_H
#define DMAFS_FORMAT_H

#include <linux/types.h>
#include <stddef.h>

#define DMAFS_MAGIC		0x31534641414d44ULL	/* "DMAAFS1" LE */
#define DMAFS_FORMAT_VERSION		1
#define DMAFS_BLOCK_SIZE	4096u
#define DMAFS_BLOCK_SHIFT	12
#define DMAFS_SB_SIZE		4096u
#define DMAFS_LABEL_MAX		64
#define DMAFS_NAME_MAX		255
#define DMAFS_SYMLINK_MAX	4095
#define DMAFS_XATTR_NAME_MAX	255
#define DMAFS_XATTR_VALUE_MAX	65536
#define DMAFS_ROOT_INO		1ULL
/* Inode numbers are below this; readdir cookies (positive off_t) too. */
#define DMAFS_INO_MAX		(1ULL << 62)
#define DMAFS_COOKIE_MAX	(1ULL << 62)
#define DMAFS_MAX_LBA_SIZE	4096u

/* Smallest filesystem mkfs accepts, in blocks (16 MiB). */
#define DMAFS_MIN_BLOCKS	4096ULL

/*
 * Feature flags.  Numbers are never reused.  A mount refuses an image with
 * an unknown incompat bit; a read-write mount refuses an unknown ro_compat
 * bit; unknown compat bits are ignored.
 */
#define DMAFS_FEATURE_COMPAT_SUPP	0u
#define DMAFS_FEATURE_RO_COMPAT_SUPP	0u
#define DMAFS_FEATURE_INCOMPAT_SUPP	0u

/* sb.flags */
#define DMAFS_SB_NEEDS_FSCK	(1u << 0)	/* corruption was found: run fsck */

struct dmafs_disk_timespec {
	__le64 sec;			/* seconds since the epoch, signed */
	__le32 nsec;			/* 0 .. 999999999 */
	__le32 pad;
};

/*
 * The superblock occupies a whole 4 KiB block; crc covers all 4096 bytes
 * with the crc field taken as zero.
 */
struct dmafs_disk_super {
	__le64 magic;			/* DMAFS_MAGIC */
	__le32 version;			/* DMAFS_FORMAT_VERSION */
	__le32 crc;			/* crc32c, see above */
	__le32 compat;
	__le32 ro_compat;
	__le32 incompat;
	__le32 flags;			/* DMAFS_SB_* */
	__le32 block_size;		/* bytes, DMAFS_BLOCK_SIZE */
	__le32 lba_size;		/* device logical block size, bytes */
	__u8 uuid[16];
	char label[DMAFS_LABEL_MAX];	/* NUL padded */
	__le64 total_blocks;		/* filesystem size, blocks */
	__le64 log_start;		/* first log block */
	__le64 log_blocks;		/* log region length, blocks */
	__le64 data_start;		/* first data block */
	__le64 generation;		/* bumped on every superblock write */
	__le64 ckpt_block;		/* first checkpoint chunk, block */
	__le64 ckpt_seq;		/* log sequence the checkpoint reflects */
	__le64 ckpt_blocks;		/* blocks held by the checkpoint */
	__le64 log_head_block;		/* replay starts here, relative to log_start */
	__le64 log_head_seq;		/* sequence expected at log_head_block */
	__le64 next_ino;		/* lower bound for new inode numbers */
	__le64 mkfs_time;		/* seconds since the epoch */
	__le64 write_time;		/* last superblock write, seconds */
	__le32 mount_count;
	__le32 error_count;		/* corruption reports recorded */
	__le64 first_error_time;	/* seconds */
	__le64 first_error_block;	/* block where it was seen, or 0 */
	char first_error_func[32];	/* reporting function, NUL padded */
	__le64 log_nonce;		/* log session: see "Log sessions" above */
	__u8 pad[3808];
};

/* Chunk types */
#define DMAFS_CHUNK_LOG		1
#define DMAFS_CHUNK_CKPT	2

#define DMAFS_CHUNK_MAGIC	0x4b4e4843u	/* "CHNK" */
#define DMAFS_CHUNK_HDR_SIZE	64u

/*
 * A chunk: this header, then nbytes of records, then zero padding to
 * nblocks * 4 KiB.  crc covers the header (crc as zero) and the nbytes of
 * payload.
 */
struct dmafs_disk_chunk {
	__le32 magic;			/* DMAFS_CHUNK_MAGIC */
	__le32 crc;
	__le32 type;			/* DMAFS_CHUNK_* */
	__le32 nblocks;			/* chunk length incl. header, blocks */
	__le64 seq;			/* log: sequence; ckpt: ckpt_seq */
	__le32 nbytes;			/* payload bytes */
	__le32 nrecords;
	__le64 next;			/* ckpt: next chunk's block, 0 ends;
					 * log: the session's sb.log_nonce */
	__le32 index;			/* ckpt: chunk index from 0; log: 0 */
	__le32 pad;
	__u8 uuid[16];			/* filesystem UUID */
};

/*
 * Records.  Each starts with this header; len is the whole record in
 * bytes, a multiple of 8.  ino names the inode the record is about (for
 * directory entries: the directory).
 */
struct dmafs_disk_rec {
	__le16 type;			/* DMAFS_REC_* */
	__le16 flags;
	__le32 len;
	__le64 ino;
};

/* Record types.  Numbers are never reused. */
enum {
	DMAFS_REC_INODE = 1,		/* dmafs_disk_rec_inode: create or update */
	DMAFS_REC_INODE_DEL = 2,	/* header only: inode and all it owns freed */
	DMAFS_REC_DIRENT_ADD = 3,	/* dmafs_disk_rec_dirent */
	DMAFS_REC_DIRENT_DEL = 4,	/* dmafs_disk_rec_dirent, child/cookie 0 */
	DMAFS_REC_EXTENT_SET = 5,	/* dmafs_disk_rec_extent: map a range */
	DMAFS_REC_EXTENT_PUNCH = 6,	/* dmafs_disk_rec_extent, phys 0: unmap */
	DMAFS_REC_XATTR_SET = 7,	/* dmafs_disk_rec_xattr */
	DMAFS_REC_XATTR_DEL = 8,	/* dmafs_disk_rec_xattr, value_len 0 */
	DMAFS_REC_SYMLINK = 9,		/* header + target bytes */
	DMAFS_REC_META = 10,		/* dmafs_disk_rec_meta, ino 0 */
	DMAFS_REC_MAX
};

/* In DMAFS_REC_INODE, flags: */
#define DMAFS_INODE_F_APPEND	(1u << 0)
#define DMAFS_INODE_F_IMMUTABLE	(1u << 1)

struct dmafs_disk_rec_inode {
	struct dmafs_disk_rec h;
	__le32 mode;			/* S_IFMT | permission bits */
	__le32 uid;
	__le32 gid;
	__le32 nlink;
	__le64 rdev;			/* device number, Linux encoding */
	__le64 size;			/* bytes */
	__le32 iflags;			/* DMAFS_INODE_F_* */
	__le32 pad;
	__le64 generation;
	struct dmafs_disk_timespec atime;
	struct dmafs_disk_timespec mtime;
	struct dmafs_disk_timespec ctime;
	struct dmafs_disk_timespec btime;
};

struct dmafs_disk_rec_dirent {
	struct dmafs_disk_rec h;	/* h.ino: the directory */
	__le64 child;			/* inode the name points at */
	__le64 cookie;			/* readdir position, unique in the dir */
	__le16 name_len;		/* 1 .. DMAFS_NAME_MAX */
	__u8 dtype;			/* DT_* */
	__u8 pad[5];
	/* name_len bytes of name follow, then zero padding to 8 */
};

/* extent flags */
#define DMAFS_EXTENT_UNWRITTEN	(1u << 0)	/* allocated, reads as zeros */

struct dmafs_disk_rec_extent {
	struct dmafs_disk_rec h;
	__le64 file_block;		/* first file block (4 KiB units) */
	__le64 nblocks;			/* length, blocks */
	__le64 phys;			/* first device block; 0 for PUNCH */
	__le32 eflags;			/* DMAFS_EXTENT_* */
	__le32 pad;
};

struct dmafs_disk_rec_xattr {
	struct dmafs_disk_rec h;
	__le32 value_len;		/* bytes */
	__le16 name_len;		/* bytes, full name with namespace prefix */
	__le16 pad;
	/* name_len bytes of name, then value_len bytes, then padding to 8 */
};

struct dmafs_disk_rec_meta {
	struct dmafs_disk_rec h;
	__le64 next_ino;		/* next inode number to hand out */
};

_Static_assert(sizeof(struct dmafs_disk_timespec) == 16, "timespec");
_Static_assert(sizeof(struct dmafs_disk_super) == DMAFS_SB_SIZE, "super");
_Static_assert(offsetof(struct dmafs_disk_super, crc) == 12, "super crc");
_Static_assert(offsetof(struct dmafs_disk_super, uuid) == 40, "super uuid");
_Static_assert(offsetof(struct dmafs_disk_super, total_blocks) == 120, "super");
_Static_assert(offsetof(struct dmafs_disk_super, log_nonce) == 280, "nonce");
_Static_assert(offsetof(struct dmafs_disk_super, pad) == 288, "super pad");
_Static_assert(sizeof(struct dmafs_disk_chunk) == DMAFS_CHUNK_HDR_SIZE, "chunk");
_Static_assert(offsetof(struct dmafs_disk_chunk, uuid) == 48, "chunk uuid");
_Static_assert(sizeof(struct dmafs_disk_rec) == 16, "rec");
_Static_assert(sizeof(struct dmafs_disk_rec_inode) == 128, "rec_inode");
_Static_assert(sizeof(struct dmafs_disk_rec_dirent) == 40, "rec_dirent");
_Static_assert(sizeof(struct dmafs_disk_rec_extent) == 48, "rec_extent");
_Static_assert(sizeof(struct dmafs_disk_rec_xattr) == 24, "rec_xattr");
_Static_assert(sizeof(struct dmafs_disk_rec_meta) == 24, "rec_meta");

#endif /* DMAFS_FORMAT_H */
