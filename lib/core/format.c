// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The dmafs format: checksums, superblock validation, layout, chunks and
 * records.  Pure functions over buffers; no I/O, no global state, so the
 * daemon, mkfs, fsck and the fuzz targets share exactly this code.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

/* crc32c (Castagnoli), reflected, slice-by-8 tables built once. */
static uint32_t crc_tab[8][256];
static int crc_ready;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc_tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^
					crc_tab[0][crc_tab[t - 1][i] & 0xff];
	__atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

uint32_t dmafs_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	/* Racing initialisers compute identical tables: harmless. */
	if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
		crc_init();
	crc = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		v = le64toh(v) ^ crc;
		crc = crc_tab[7][v & 0xff] ^ crc_tab[6][(v >> 8) & 0xff] ^
		      crc_tab[5][(v >> 16) & 0xff] ^
		      crc_tab[4][(v >> 24) & 0xff] ^
		      crc_tab[3][(v >> 32) & 0xff] ^
		      crc_tab[2][(v >> 40) & 0xff] ^
		      crc_tab[1][(v >> 48) & 0xff] ^ crc_tab[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

static int why_fail(char *why, size_t whylen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int why_fail(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

static uint32_t super_crc(const struct dmafs_disk_super *sb)
{
	struct dmafs_disk_super tmp;

	memcpy(&tmp, sb, sizeof(tmp));
	tmp.crc = 0;
	return dmafs_crc32c(0, &tmp, sizeof(tmp));
}

void dmafs_super_seal(struct dmafs_disk_super *sb)
{
	sb->crc = cpu32(super_crc(sb));
}

int dmafs_layout_compute(uint64_t total_blocks, struct dmafs_layout *l)
{
	uint64_t log;

	if (total_blocks < DMAFS_MIN_BLOCKS)
		return -ENOSPC;
	/*
	 * The log absorbs metadata between checkpoints; a checkpoint is
	 * forced when it fills.  1/128 of the device, 1 MiB .. 512 MiB, keeps
	 * checkpoints rare on big devices without wasting small ones.
	 */
	log = total_blocks / 128;
	if (log < 256)
		log = 256;
	if (log > 131072)
		log = 131072;
	l->total_blocks = total_blocks;
	l->log_start = 1;
	l->log_blocks = log;
	l->data_start = l->log_start + log;
	l->backup_sb = total_blocks - 1;
	return 0;
}

int dmafs_super_check(const struct dmafs_disk_super *sb, uint64_t dev_blocks,
		      char *why, size_t whylen)
{
	struct dmafs_layout l;
	uint64_t total, ckpt;

	if (le64(sb->magic) != DMAFS_MAGIC)
		return why_fail(why, whylen, -ENODATA, "no dmafs magic");
	if (le32(sb->crc) != super_crc(sb))
		return why_fail(why, whylen, -EUCLEAN,
				"superblock checksum mismatch");
	if (le32(sb->version) != DMAFS_FORMAT_VERSION)
		return why_fail(why, whylen, -EOPNOTSUPP,
				"unsupported format version %u",
				le32(sb->version));
	if (le32(sb->incompat) & ~DMAFS_FEATURE_INCOMPAT_SUPP)
		return why_fail(why, whylen, -EOPNOTSUPP,
				"unknown incompatible features 0x%x",
				le32(sb->incompat) &
					~DMAFS_FEATURE_INCOMPAT_SUPP);
	if (le32(sb->block_size) != DMAFS_BLOCK_SIZE)
		return why_fail(why, whylen, -EUCLEAN, "block size %u",
				le32(sb->block_size));
	if (le32(sb->lba_size) < 512 ||
	    le32(sb->lba_size) > DMAFS_MAX_LBA_SIZE ||
	    (le32(sb->lba_size) & (le32(sb->lba_size) - 1)))
		return why_fail(why, whylen, -EUCLEAN, "bad LBA size %u",
				le32(sb->lba_size));
	total = le64(sb->total_blocks);
	if (dmafs_layout_compute(total, &l))
		return why_fail(why, whylen, -EUCLEAN,
				"filesystem of %llu blocks is too small",
				(unsigned long long)total);
	if (dev_blocks && total > dev_blocks)
		return why_fail(why, whylen, -EUCLEAN,
				"filesystem (%llu blocks) larger than device (%llu blocks)",
				(unsigned long long)total,
				(unsigned long long)dev_blocks);
	if (le64(sb->log_start) != l.log_start ||
	    le64(sb->log_blocks) != l.log_blocks ||
	    le64(sb->data_start) != l.data_start)
		return why_fail(why, whylen, -EUCLEAN,
				"log/data layout does not match size");
	if (le64(sb->log_head_block) >= l.log_blocks)
		return why_fail(why, whylen, -EUCLEAN,
				"log head %llu outside log",
				(unsigned long long)le64(sb->log_head_block));
	ckpt = le64(sb->ckpt_block);
	if (ckpt < l.data_start || ckpt >= l.backup_sb)
		return why_fail(why, whylen, -EUCLEAN,
				"checkpoint block %llu outside data area",
				(unsigned long long)ckpt);
	if (le64(sb->log_head_seq) != le64(sb->ckpt_seq) + 1)
		return why_fail(why, whylen, -EUCLEAN,
				"log head sequence %llu does not follow checkpoint %llu",
				(unsigned long long)le64(sb->log_head_seq),
				(unsigned long long)le64(sb->ckpt_seq));
	if (le64(sb->next_ino) <= DMAFS_ROOT_INO ||
	    le64(sb->next_ino) > DMAFS_INO_MAX)
		return why_fail(why, whylen, -EUCLEAN, "bad next inode %llu",
				(unsigned long long)le64(sb->next_ino));
	return 0;
}

void dmafs_chunk_seal(void *buf, uint32_t type, uint64_t seq, uint32_t nblocks,
		      uint32_t nbytes, uint32_t nrecords, uint64_t next,
		      uint32_t index, const uint8_t uuid[16])
{
	struct dmafs_disk_chunk *c = buf;
	size_t used = DMAFS_CHUNK_HDR_SIZE + nbytes;

	memset(c, 0, sizeof(*c));
	c->magic = cpu32(DMAFS_CHUNK_MAGIC);
	c->type = cpu32(type);
	c->nblocks = cpu32(nblocks);
	c->seq = cpu64(seq);
	c->nbytes = cpu32(nbytes);
	c->nrecords = cpu32(nrecords);
	c->next = cpu64(next);
	c->index = cpu32(index);
	memcpy(c->uuid, uuid, 16);
	memset((char *)buf + used, 0, (size_t)nblocks * DMAFS_BLOCK_SIZE - used);
	c->crc = cpu32(dmafs_crc32c(0, buf, used));
}

int dmafs_chunk_verify(const void *buf, uint32_t avail, uint32_t type,
		       uint64_t seq, const uint8_t uuid[16], uint32_t max_blocks,
		       uint32_t *nblocks, char *why, size_t whylen)
{
	const struct dmafs_disk_chunk *c = buf;
	struct dmafs_disk_chunk hdr;
	uint32_t nb, nbytes, crc;

	if (le32(c->magic) != DMAFS_CHUNK_MAGIC)
		return why_fail(why, whylen, -EUCLEAN, "no chunk magic");
	if (memcmp(c->uuid, uuid, 16))
		return why_fail(why, whylen, -EUCLEAN,
				"chunk of another filesystem");
	if (le32(c->type) != type)
		return why_fail(why, whylen, -EUCLEAN, "chunk type %u, want %u",
				le32(c->type), type);
	if (le64(c->seq) != seq)
		return why_fail(why, whylen, -EUCLEAN,
				"chunk sequence %llu, want %llu",
				(unsigned long long)le64(c->seq),
				(unsigned long long)seq);
	nb = le32(c->nblocks);
	nbytes = le32(c->nbytes);
	if (nb == 0 || nb > max_blocks)
		return why_fail(why, whylen, -EUCLEAN,
				"chunk length %u blocks out of range", nb);
	if ((uint64_t)nbytes + DMAFS_CHUNK_HDR_SIZE >
	    (uint64_t)nb * DMAFS_BLOCK_SIZE)
		return why_fail(why, whylen, -EUCLEAN,
				"chunk payload %u overruns its %u blocks",
				nbytes, nb);
	*nblocks = nb;
	if (nb > avail)
		return -EAGAIN;
	memcpy(&hdr, c, sizeof(hdr));
	hdr.crc = 0;
	crc = dmafs_crc32c(0, &hdr, sizeof(hdr));
	crc = dmafs_crc32c(crc, (const char *)buf + DMAFS_CHUNK_HDR_SIZE,
			   nbytes);
	if (crc != le32(c->crc))
		return why_fail(why, whylen, -EUCLEAN,
				"chunk %llu checksum mismatch",
				(unsigned long long)seq);
	return 0;
}

static bool name_ok(const uint8_t *name, uint32_t len, uint32_t max)
{
	if (len == 0 || len > max)
		return false;
	for (uint32_t i = 0; i < len; i++)
		if (name[i] == 0)
			return false;
	return true;
}

int dmafs_rec_next(const void *payload, uint32_t nbytes, uint32_t *off,
		   const struct dmafs_disk_rec **rec, char *why, size_t whylen)
{
	const struct dmafs_disk_rec *r;
	uint32_t len, left, type, min = sizeof(*r);
	const uint8_t *p = payload;

	if (*off == nbytes)
		return 0;
	left = nbytes - *off;
	if (*off > nbytes || left < sizeof(*r) || (*off & 7))
		return why_fail(why, whylen, -EUCLEAN,
				"truncated record at byte %u", *off);
	r = (const void *)(p + *off);
	len = le32(r->len);
	type = le16(r->type);
	if (len < sizeof(*r) || len > left || (len & 7))
		return why_fail(why, whylen, -EUCLEAN,
				"record at byte %u has bad length %u", *off,
				len);
	switch (type) {
	case DMAFS_REC_INODE:
		min = sizeof(struct dmafs_disk_rec_inode);
		break;
	case DMAFS_REC_INODE_DEL:
		break;
	case DMAFS_REC_DIRENT_ADD:
	case DMAFS_REC_DIRENT_DEL: {
		const struct dmafs_disk_rec_dirent *d = (const void *)r;
		uint32_t nl;

		min = sizeof(*d);
		if (len < min)
			break;
		nl = le16(d->name_len);
		if (sizeof(*d) + nl > len ||
		    !name_ok((const uint8_t *)(d + 1), nl, DMAFS_NAME_MAX) ||
		    memchr(d + 1, '/', nl))
			return why_fail(why, whylen, -EUCLEAN,
					"directory record at byte %u has a bad name",
					*off);
		break;
	}
	case DMAFS_REC_EXTENT_SET:
	case DMAFS_REC_EXTENT_PUNCH:
		min = sizeof(struct dmafs_disk_rec_extent);
		break;
	case DMAFS_REC_XATTR_SET:
	case DMAFS_REC_XATTR_DEL: {
		const struct dmafs_disk_rec_xattr *x = (const void *)r;
		uint64_t need;

		min = sizeof(*x);
		if (len < min)
			break;
		need = sizeof(*x) + (uint64_t)le16(x->name_len) +
		       le32(x->value_len);
		if (need > len || le32(x->value_len) > DMAFS_XATTR_VALUE_MAX ||
		    !name_ok((const uint8_t *)(x + 1), le16(x->name_len),
			     DMAFS_XATTR_NAME_MAX))
			return why_fail(why, whylen, -EUCLEAN,
					"xattr record at byte %u is malformed",
					*off);
		break;
	}
	case DMAFS_REC_SYMLINK:
		if (len - sizeof(*r) > DMAFS_SYMLINK_MAX + 8)
			return why_fail(why, whylen, -EUCLEAN,
					"symlink record at byte %u too long",
					*off);
		break;
	case DMAFS_REC_META:
		min = sizeof(struct dmafs_disk_rec_meta);
		break;
	default:
		return why_fail(why, whylen, -EUCLEAN,
				"unknown record type %u at byte %u", type,
				*off);
	}
	if (len < min)
		return why_fail(why, whylen, -EUCLEAN,
				"record type %u at byte %u too short (%u)", type,
				*off, len);
	*rec = r;
	*off += len;
	return 1;
}
