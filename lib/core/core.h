/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The one implementation of the dmafs format shared by the daemon,
 * mkfs.dmafs and fsck.dmafs: checksums, superblock checks, chunk sealing and
 * verification, record walking.  Everything here is pure (no I/O) so that
 * the fuzz targets can drive it directly.
 *
 * Functions return 0 or a negative errno.  Corruption is -EUCLEAN with a
 * human-readable reason written to the caller's buffer.
 */
#ifndef DMAFS_CORE_H
#define DMAFS_CORE_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmafs/format.h"

#define DMAFS_WHY_MAX 256

uint32_t dmafs_crc32c(uint32_t crc, const void *buf, size_t len);

/* Compute and store sb->crc. */
void dmafs_super_seal(struct dmafs_disk_super *sb);
/*
 * Validate a superblock read from a device of dev_blocks 4 KiB blocks
 * (0: unknown).  -EUCLEAN with why filled on any inconsistency, -ENODATA if
 * the magic does not match at all (not a dmafs superblock), -EOPNOTSUPP for
 * an unknown version or incompat feature.
 */
int dmafs_super_check(const struct dmafs_disk_super *sb, uint64_t dev_blocks,
		      char *why, size_t whylen);

/* Layout mkfs uses for a filesystem of total_blocks: log size and data start. */
struct dmafs_layout {
	uint64_t total_blocks;
	uint64_t log_start;
	uint64_t log_blocks;
	uint64_t data_start;
	uint64_t backup_sb;		/* block of the backup superblock */
};
int dmafs_layout_compute(uint64_t total_blocks, struct dmafs_layout *l);

/* Fill the header of a chunk whose payload (nbytes) follows it in buf, and
 * seal it (crc).  buf spans nblocks whole blocks; padding is zeroed. */
void dmafs_chunk_seal(void *buf, uint32_t type, uint64_t seq, uint32_t nblocks,
		      uint32_t nbytes, uint32_t nrecords, uint64_t next,
		      uint32_t index, const uint8_t uuid[16]);
/*
 * Verify the chunk header in buf (at least one block readable); when the
 * header is sane, *nblocks says how many blocks the whole chunk spans.
 * Pass avail = the number of blocks present in buf: if the chunk is longer,
 * the header checks pass, -EAGAIN is returned, and the caller reads
 * *nblocks blocks and calls again.  -EUCLEAN: not a valid chunk (why).
 */
int dmafs_chunk_verify(const void *buf, uint32_t avail, uint32_t type,
		       uint64_t seq, const uint8_t uuid[16], uint32_t max_blocks,
		       uint32_t *nblocks, char *why, size_t whylen);

/*
 * Walk the records in a verified chunk's payload.  *off starts at 0; each
 * call returns the next record in *rec (pointing into payload), 1 when
 * there is one, 0 at the end, -EUCLEAN when a record is malformed (bad
 * length, unknown type, a variable part that overruns, a name that is empty,
 * too long or contains '/' or NUL).
 */
int dmafs_rec_next(const void *payload, uint32_t nbytes, uint32_t *off,
		   const struct dmafs_disk_rec **rec, char *why, size_t whylen);

/* Round a record's length up to 8. */
static inline uint32_t dmafs_rec_align(uint32_t len)
{
	return (len + 7u) & ~7u;
}

/* Little-endian accessors, short names for readability. */
#define le16(x) le16toh(x)
#define le32(x) le32toh(x)
#define le64(x) le64toh(x)
#define cpu16(x) htole16(x)
#define cpu32(x) htole32(x)
#define cpu64(x) htole64(x)

#endif /* DMAFS_CORE_H */
