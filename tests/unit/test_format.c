// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit test of lib/core/format.c: checksums, superblock and chunk checks,
 * record walking.  Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static int failures;

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,       \
				__LINE__, #cond);                           \
			failures++;                                         \
		}                                                           \
	} while (0)

static const uint8_t uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

static void make_super(struct dmafs_disk_super *sb, uint64_t blocks)
{
	struct dmafs_layout l;

	memset(sb, 0, sizeof(*sb));
	dmafs_layout_compute(blocks, &l);
	sb->magic = cpu64(DMAFS_MAGIC);
	sb->version = cpu32(DMAFS_FORMAT_VERSION);
	sb->block_size = cpu32(DMAFS_BLOCK_SIZE);
	sb->lba_size = cpu32(512);
	memcpy(sb->uuid, uuid, 16);
	sb->total_blocks = cpu64(blocks);
	sb->log_start = cpu64(l.log_start);
	sb->log_blocks = cpu64(l.log_blocks);
	sb->data_start = cpu64(l.data_start);
	sb->ckpt_block = cpu64(l.data_start);
	sb->log_head_seq = cpu64(1);
	sb->next_ino = cpu64(2);
	dmafs_super_seal(sb);
}

static void test_crc(void)
{
	/* The standard crc32c check value. */
	CHECK(dmafs_crc32c(0, "123456789", 9) == 0xe3069283u);
	/* Unaligned starts and chained calls agree with one call. */
	char buf[100];

	for (int i = 0; i < 100; i++)
		buf[i] = (char)(i * 7);
	CHECK(dmafs_crc32c(dmafs_crc32c(0, buf, 13), buf + 13, 87) ==
	      dmafs_crc32c(0, buf, 100));
}

static void test_super(void)
{
	struct dmafs_disk_super sb;
	char why[DMAFS_WHY_MAX];

	make_super(&sb, 8192);
	CHECK(dmafs_super_check(&sb, 8192, why, sizeof(why)) == 0);
	CHECK(dmafs_super_check(&sb, 4096, why, sizeof(why)) == -EUCLEAN);
	sb.label[3] = 'x';	/* any flipped byte breaks the crc */
	CHECK(dmafs_super_check(&sb, 8192, why, sizeof(why)) == -EUCLEAN);
	make_super(&sb, 8192);
	sb.magic = 0;
	CHECK(dmafs_super_check(&sb, 8192, why, sizeof(why)) == -ENODATA);
	make_super(&sb, 8192);
	sb.incompat = cpu32(1u << 31);
	dmafs_super_seal(&sb);
	CHECK(dmafs_super_check(&sb, 8192, why, sizeof(why)) == -EOPNOTSUPP);
	make_super(&sb, 8192);
	sb.log_head_block = sb.log_blocks;
	dmafs_super_seal(&sb);
	CHECK(dmafs_super_check(&sb, 8192, why, sizeof(why)) == -EUCLEAN);
	make_super(&sb, 8192);
	sb.ckpt_block = cpu64(8191);	/* the backup superblock */
	dmafs_super_seal(&sb);
	CHECK(dmafs_super_check(&sb, 8192, why, sizeof(why)) == -EUCLEAN);
}

static void test_chunk(void)
{
	static uint8_t buf[3 * DMAFS_BLOCK_SIZE];
	struct dmafs_disk_rec_meta *m = (void *)(buf + DMAFS_CHUNK_HDR_SIZE);
	char why[DMAFS_WHY_MAX];
	uint32_t nb = 0, off = 0;
	const struct dmafs_disk_rec *r;
	uint32_t payload = 4120;	/* crosses into the second block */

	memset(buf, 0, sizeof(buf));
	m->h.type = cpu16(DMAFS_REC_META);
	m->h.len = cpu32(sizeof(*m));
	m->next_ino = cpu64(5);
	/* pad the payload with a symlink record to cross a block */
	{
		struct dmafs_disk_rec *s = (void *)(buf + DMAFS_CHUNK_HDR_SIZE +
						    sizeof(*m));

		s->type = cpu16(DMAFS_REC_SYMLINK);
		s->len = cpu32(payload - sizeof(*m));
		s->ino = cpu64(3);
		memset(s + 1, 'a', 100);
	}
	dmafs_chunk_seal(buf, DMAFS_CHUNK_LOG, 7, 2, payload, 2, 0, 0, uuid);
	CHECK(dmafs_chunk_verify(buf, 1, DMAFS_CHUNK_LOG, 7, uuid, 16, &nb, why,
				 sizeof(why)) == -EAGAIN);
	CHECK(nb == 2);
	CHECK(dmafs_chunk_verify(buf, 2, DMAFS_CHUNK_LOG, 7, uuid, 16, &nb, why,
				 sizeof(why)) == 0);
	CHECK(dmafs_chunk_verify(buf, 2, DMAFS_CHUNK_LOG, 8, uuid, 16, &nb, why,
				 sizeof(why)) == -EUCLEAN);
	CHECK(dmafs_chunk_verify(buf, 2, DMAFS_CHUNK_CKPT, 7, uuid, 16, &nb,
				 why, sizeof(why)) == -EUCLEAN);
	CHECK(dmafs_chunk_verify(buf, 2, DMAFS_CHUNK_LOG, 7, uuid, 1, &nb, why,
				 sizeof(why)) == -EUCLEAN);
	CHECK(dmafs_rec_next(buf + DMAFS_CHUNK_HDR_SIZE, payload, &off, &r, why,
			     sizeof(why)) == 1);
	CHECK(le16(r->type) == DMAFS_REC_META);
	CHECK(dmafs_rec_next(buf + DMAFS_CHUNK_HDR_SIZE, payload, &off, &r, why,
			     sizeof(why)) == 1);
	CHECK(dmafs_rec_next(buf + DMAFS_CHUNK_HDR_SIZE, payload, &off, &r, why,
			     sizeof(why)) == 0);
	/* A torn second block: the crc catches it. */
	buf[DMAFS_BLOCK_SIZE + 10] ^= 1;
	CHECK(dmafs_chunk_verify(buf, 2, DMAFS_CHUNK_LOG, 7, uuid, 16, &nb, why,
				 sizeof(why)) == -EUCLEAN);
}

static void test_records(void)
{
	uint8_t p[256];
	struct dmafs_disk_rec_dirent *d = (void *)p;
	const struct dmafs_disk_rec *r;
	char why[DMAFS_WHY_MAX];
	uint32_t off;

	memset(p, 0, sizeof(p));
	d->h.type = cpu16(DMAFS_REC_DIRENT_ADD);
	d->h.len = cpu32(48);
	d->name_len = cpu16(3);
	memcpy(d + 1, "abc", 3);
	off = 0;
	CHECK(dmafs_rec_next(p, 48, &off, &r, why, sizeof(why)) == 1);
	memcpy(d + 1, "a/c", 3);
	off = 0;
	CHECK(dmafs_rec_next(p, 48, &off, &r, why, sizeof(why)) == -EUCLEAN);
	memcpy(d + 1, "abc", 3);
	d->name_len = cpu16(9);	/* overruns the record */
	off = 0;
	CHECK(dmafs_rec_next(p, 48, &off, &r, why, sizeof(why)) == -EUCLEAN);
	d->name_len = cpu16(3);
	d->h.len = cpu32(44);	/* not a multiple of 8 */
	off = 0;
	CHECK(dmafs_rec_next(p, 48, &off, &r, why, sizeof(why)) == -EUCLEAN);
	d->h.len = cpu32(48);
	d->h.type = cpu16(999);
	off = 0;
	CHECK(dmafs_rec_next(p, 48, &off, &r, why, sizeof(why)) == -EUCLEAN);
	d->h.type = cpu16(DMAFS_REC_INODE);	/* shorter than an inode */
	off = 0;
	CHECK(dmafs_rec_next(p, 48, &off, &r, why, sizeof(why)) == -EUCLEAN);
}

int main(void)
{
	test_crc();
	test_super();
	test_chunk();
	test_records();
	if (failures) {
		fprintf(stderr, "test_format: %d failures\n", failures);
		return 1;
	}
	printf("test_format: ok\n");
	return 0;
}
