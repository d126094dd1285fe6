// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: fsck.dmafs and the mount-time load on damaged images.
 *
 * A whole image is 16 MiB at least, far too big for a fuzzer input, so the
 * input is a list of edits to a template: a small filesystem built at
 * start-up by build_template() (two checkpoint chunks; four log chunks
 * after them, one wrapping around the end of the log; a stale chunk; files,
 * a directory, a hard link, a symlink, a FIFO, xattrs, written and
 * unwritten extents, lost+found, an orphan).  The image lives in a memfd,
 * which fsck opens as /proc/self/fd/N: nothing is left behind on a crash.
 *
 * Input: a sequence of edits, each starting with an op byte:
 *   op & 3 == 0  write:  u16 block, u16 offset, u8 n, n bytes
 *   op & 3 == 1  xor:    same, the bytes are XORed in
 *            with op & 0x80 the block number indexes interesting_blocks[]
 *            (superblocks, checkpoint chunks, log chunks, data) instead;
 *            with op & 0x40 the block is resealed afterwards: a superblock
 *            gets its crc, a block that starts a chunk gets the chunk crc
 *   op & 3 == 2  log:    u16 n, n bytes of records: appended as a valid log
 *                        chunk where replay expects the next one
 *   op & 3 == 3  ckpt:   u8 which, u16 n, n bytes of records: checkpoint
 *                        chunk 0 or 1 replaced by a valid chunk holding them
 * (integers little endian).  Then, on the edited image:
 *
 *   fsck -n, fsck -y, fsck -n   (tools/fsck.c's main, in-process)
 *   and the daemon's load (dmafs_log_load) wherever fsck said "clean"
 *
 * Invariants (abort() if violated, so libFuzzer saves the input):
 *   - exit codes are e2fsck's; -n never returns 1 and never writes;
 *   - fsck -n and -y agree on clean / broken / cannot check;
 *   - after -y returned 0 or 1 the next -n returns 0: never made worse;
 *     and if -y rewrote the metadata, no log chunk is replayed after it;
 *   - if -y could not repair (4, 8) and wrote nothing, -n says word for
 *     word what it said before; if it repaired only in part, it says which
 *     problems it did not fix and -n still finds problems; writing fails
 *     only for want of space;
 *   - "clean" means the daemon mounts it;
 *   - every failure is explained: a non-zero exit prints a reason, no
 *     "(null)", no errno text that says nothing ("Success", ...).
 *
 * FUZZ_VERBOSE=1 in the environment prints the three fsck outputs;
 * FUZZ_DUMP=FILE writes the edited image there (for fsck.dmafs itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define TOTAL		DMAFS_MIN_BLOCKS
#define IMG_SIZE	(TOTAL * DMAFS_BLOCK_SIZE)
#define LOG_START	1u
#define LOG_BLOCKS	256u
#define CKPT0		300u		/* checkpoint chunk 0 (2 blocks max) */
#define CKPT1		302u		/* checkpoint chunk 1 (16 blocks max) */
#define CKPT_SEQ	5u
#define LOG_HEAD	252u		/* relative to LOG_START */
#define APPEND_AT	3u		/* after the template's last log chunk */
#define APPEND_SEQ	10u

static const uint32_t interesting_blocks[] = {
	0, TOTAL - 1, CKPT0, CKPT1, LOG_START + 252, LOG_START + 253,
	LOG_START + 254, LOG_START + 255, LOG_START + 0, LOG_START + 1,
	LOG_START + 2, LOG_START + 3, 400, 410, 257, CKPT1 + 1,
};

static uint8_t *template;	/* the pristine image */
static uint8_t *img;		/* the memfd, mapped */
static int img_fd;
static char path[64];
static bool verbose;		/* FUZZ_VERBOSE=1: show what fsck said */
static const char *dump;	/* FUZZ_DUMP=FILE: write the edited image */

/* ---- building records and chunks ---- */

struct recs {
	GByteArray *b;
	uint32_t n;
};

static void *rec(struct recs *r, uint16_t type, uint64_t ino, size_t fixed,
		 const void *v1, size_t l1, const void *v2, size_t l2)
{
	uint32_t len = dmafs_rec_align(fixed + l1 + l2);
	guint at = r->b->len;
	struct dmafs_disk_rec *h;

	g_byte_array_set_size(r->b, at + len);
	h = (void *)(r->b->data + at);
	memset(h, 0, len);
	h->type = cpu16(type);
	h->len = cpu32(len);
	h->ino = cpu64(ino);
	if (l1)
		memcpy((char *)h + fixed, v1, l1);
	if (l2)
		memcpy((char *)h + fixed + l1, v2, l2);
	r->n++;
	return h;
}

static void r_inode(struct recs *r, uint64_t ino, uint32_t mode,
		    uint32_t nlink, uint64_t size)
{
	struct dmafs_disk_rec_inode *i = rec(r, DMAFS_REC_INODE, ino,
					     sizeof(*i), NULL, 0, NULL, 0);

	i->mode = cpu32(mode);
	i->nlink = cpu32(nlink);
	i->size = cpu64(size);
	i->uid = cpu32(1000);
	i->gid = cpu32(1000);
	i->generation = cpu64(ino * 7);
	i->atime.sec = i->mtime.sec = i->ctime.sec = i->btime.sec =
		cpu64(1700000000 + ino);
	i->mtime.nsec = cpu32(123456789);
}

static void r_dirent(struct recs *r, int type, uint64_t dir, const char *name,
		     uint64_t child, uint64_t cookie, uint32_t mode)
{
	size_t nl = strlen(name);
	struct dmafs_disk_rec_dirent *d = rec(r, type, dir, sizeof(*d), name,
					      nl, NULL, 0);

	d->child = cpu64(child);
	d->cookie = cpu64(cookie);
	d->name_len = cpu16(nl);
	d->dtype = (mode & S_IFMT) >> 12;
}

static void r_extent(struct recs *r, int type, uint64_t ino, uint64_t fblk,
		     uint64_t n, uint64_t phys, uint32_t flags)
{
	struct dmafs_disk_rec_extent *e = rec(r, type, ino, sizeof(*e), NULL,
					      0, NULL, 0);

	e->file_block = cpu64(fblk);
	e->nblocks = cpu64(n);
	e->phys = cpu64(phys);
	e->eflags = cpu32(flags);
}

static void r_xattr(struct recs *r, uint64_t ino, const char *name,
		    const void *value, size_t len)
{
	size_t nl = strlen(name);
	struct dmafs_disk_rec_xattr *x = rec(r, DMAFS_REC_XATTR_SET, ino,
					     sizeof(*x), name, nl, value, len);

	x->name_len = cpu16(nl);
	x->value_len = cpu32(len);
}

static void r_meta(struct recs *r, uint64_t next_ino)
{
	struct dmafs_disk_rec_meta *m = rec(r, DMAFS_REC_META, 0, sizeof(*m),
					    NULL, 0, NULL, 0);

	m->next_ino = cpu64(next_ino);
}

static uint32_t chunk_blocks(size_t nbytes)
{
	return (DMAFS_CHUNK_HDR_SIZE + nbytes + DMAFS_BLOCK_SIZE - 1) /
	       DMAFS_BLOCK_SIZE;
}

/* Write a sealed chunk of payload at block blk of image im. */
static uint32_t put_chunk(uint8_t *im, uint64_t blk, uint32_t type,
			  uint64_t seq, const void *payload, uint32_t nbytes,
			  uint32_t nrec, uint64_t next, uint32_t index)
{
	uint32_t nb = chunk_blocks(nbytes);
	void *buf = g_malloc0((size_t)nb * DMAFS_BLOCK_SIZE);

	memcpy((char *)buf + DMAFS_CHUNK_HDR_SIZE, payload, nbytes);
	dmafs_chunk_seal(buf, type, seq, nb, nbytes, nrec, next, index,
			 fuzz_uuid);
	memcpy(im + blk * DMAFS_BLOCK_SIZE, buf, (size_t)nb * DMAFS_BLOCK_SIZE);
	g_free(buf);
	return nb;
}

static uint32_t put_recs(uint8_t *im, uint64_t blk, uint32_t type,
			 uint64_t seq, struct recs *r, uint64_t next,
			 uint32_t index)
{
	uint32_t nb = put_chunk(im, blk, type, seq, r->b->data, r->b->len,
				r->n, next, index);

	g_byte_array_set_size(r->b, 0);
	r->n = 0;
	return nb;
}

static void put_supers(uint8_t *im, uint64_t ckpt_blocks)
{
	struct dmafs_disk_super sb;

	fuzz_super_init(&sb, TOTAL);
	sb.generation = cpu64(7);
	sb.ckpt_block = cpu64(CKPT0);
	sb.ckpt_seq = cpu64(CKPT_SEQ);
	sb.ckpt_blocks = cpu64(ckpt_blocks);
	sb.log_head_block = cpu64(LOG_HEAD);
	sb.log_head_seq = cpu64(CKPT_SEQ + 1);
	sb.next_ino = cpu64(9);
	sb.mkfs_time = sb.write_time = cpu64(1700000000);
	sb.mount_count = cpu32(3);
	memcpy(sb.label, "fuzz", 4);
	dmafs_super_seal(&sb);
	memcpy(im, &sb, sizeof(sb));
	memcpy(im + (TOTAL - 1) * DMAFS_BLOCK_SIZE, &sb, sizeof(sb));
}

static void build_template(uint8_t *im)
{
	struct recs r = { g_byte_array_new(), 0 };
	uint8_t pad[5000];
	uint32_t nb;

	memset(pad, 'p', sizeof(pad));
	put_supers(im, 2);

	/* checkpoint chunk 0 */
	r_meta(&r, 9);
	r_inode(&r, 1, S_IFDIR | 0755, 4, 0);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "a", 2, 3, S_IFREG);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "d", 3, 4, S_IFDIR);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "b2", 4, 5, S_IFREG);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "s", 5, 6, S_IFLNK);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "p", 6, 7, S_IFIFO);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "lost+found", 7, 8, S_IFDIR);
	r_inode(&r, 2, S_IFREG | 0644, 1, 12 * DMAFS_BLOCK_SIZE);
	r_extent(&r, DMAFS_REC_EXTENT_SET, 2, 0, 4, 400, 0);
	r_extent(&r, DMAFS_REC_EXTENT_SET, 2, 10, 2, 420,
		 DMAFS_EXTENT_UNWRITTEN);
	r_xattr(&r, 2, "user.x", "hello", 5);
	nb = put_recs(im, CKPT0, DMAFS_CHUNK_CKPT, CKPT_SEQ, &r, CKPT1, 0);
	FUZZ_ASSERT(nb == 1, "template chunk 0: %u blocks", nb);

	/* checkpoint chunk 1 */
	r_inode(&r, 3, S_IFDIR | 0755, 2, 0);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 3, "b", 4, 3, S_IFREG);
	r_xattr(&r, 3, "user.big", pad, 300);
	r_inode(&r, 4, S_IFREG | 0600, 2, 4096);
	r_extent(&r, DMAFS_REC_EXTENT_SET, 4, 0, 1, 410, 0);
	r_inode(&r, 5, S_IFLNK | 0777, 1, 1);
	rec(&r, DMAFS_REC_SYMLINK, 5, sizeof(struct dmafs_disk_rec), "a", 1,
	    NULL, 0);
	r_inode(&r, 6, S_IFIFO | 0644, 1, 0);
	r_inode(&r, 7, S_IFDIR | 0700, 2, 0);
	nb = put_recs(im, CKPT1, DMAFS_CHUNK_CKPT, CKPT_SEQ, &r, 0, 1);
	FUZZ_ASSERT(nb == 1, "template chunk 1: %u blocks", nb);

	/* log: seq 6 at 252 (2 blocks): create d/c */
	r_inode(&r, 8, S_IFREG | 0644, 1, 8192);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 3, "c", 8, 4, S_IFREG);
	r_extent(&r, DMAFS_REC_EXTENT_SET, 8, 0, 2, 430, 0);
	r_xattr(&r, 8, "user.pad", pad, sizeof(pad));
	r_inode(&r, 3, S_IFDIR | 0755, 2, 0);
	nb = put_recs(im, LOG_START + 252, DMAFS_CHUNK_LOG, 6, &r, 0, 0);
	FUZZ_ASSERT(nb == 2, "template log chunk 6: %u blocks", nb);
	/* seq 7 at 254: rename a -> a2 */
	r_dirent(&r, DMAFS_REC_DIRENT_DEL, 1, "a", 0, 0, 0);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "a2", 2, 9, S_IFREG);
	r_inode(&r, 1, S_IFDIR | 0755, 4, 0);
	put_recs(im, LOG_START + 254, DMAFS_CHUNK_LOG, 7, &r, 0, 0);
	/* seq 8 (2 blocks) does not fit at 255: wraps to 0.  An orphan. */
	r_inode(&r, 9, S_IFREG | 0600, 1, 4096);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "tmp", 9, 10, S_IFREG);
	r_extent(&r, DMAFS_REC_EXTENT_SET, 9, 0, 1, 440, 0);
	r_xattr(&r, 9, "user.pad", pad, sizeof(pad));
	r_dirent(&r, DMAFS_REC_DIRENT_DEL, 1, "tmp", 0, 0, 0);
	r_inode(&r, 9, S_IFREG | 0600, 0, 4096);
	r_extent(&r, DMAFS_REC_EXTENT_PUNCH, 2, 1, 1, 0, 0);
	nb = put_recs(im, LOG_START + 0, DMAFS_CHUNK_LOG, 8, &r, 0, 0);
	FUZZ_ASSERT(nb == 2, "template log chunk 8: %u blocks", nb);
	/* seq 9 at 2: a symlink; the FIFO goes */
	r_inode(&r, 10, S_IFLNK | 0777, 1, 3);
	rec(&r, DMAFS_REC_SYMLINK, 10, sizeof(struct dmafs_disk_rec), "d/c",
	    3, NULL, 0);
	r_dirent(&r, DMAFS_REC_DIRENT_ADD, 1, "l", 10, 11, S_IFLNK);
	r_dirent(&r, DMAFS_REC_DIRENT_DEL, 1, "p", 0, 0, 0);
	rec(&r, DMAFS_REC_INODE_DEL, 6, sizeof(struct dmafs_disk_rec), NULL,
	    0, NULL, 0);
	r_meta(&r, 11);
	put_recs(im, LOG_START + 2, DMAFS_CHUNK_LOG, 9, &r, 0, 0);
	/* a stale chunk after the end: an older sequence */
	r_inode(&r, 1, S_IFDIR | 0755, 4, 0);
	put_recs(im, LOG_START + APPEND_AT, DMAFS_CHUNK_LOG, 4, &r, 0, 0);

	/* file data */
	for (uint32_t b = 400; b < 450; b++)
		memset(im + (size_t)b * DMAFS_BLOCK_SIZE, b & 0xff,
		       DMAFS_BLOCK_SIZE);
	g_byte_array_unref(r.b);
}

/* ---- running fsck and the mount ---- */

struct run {
	int status;
	char *out, *err;
	size_t outlen, errlen;
};

static void run_fsck(const char *opt, struct run *r)
{
	char *argv[] = { "fsck.dmafs", (char *)opt, path, NULL };

	memset(r, 0, sizeof(*r));
	fuzz_fsck_out = open_memstream(&r->out, &r->outlen);
	fuzz_fsck_err = open_memstream(&r->err, &r->errlen);
	FUZZ_ASSERT(fuzz_fsck_out && fuzz_fsck_err, "open_memstream");
	optind = 0;		/* a fresh getopt for every run */
	r->status = fsck_main(3, argv);
	fclose(fuzz_fsck_out);
	fclose(fuzz_fsck_err);
	fuzz_fsck_out = fuzz_fsck_err = NULL;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

#define SHOW(r) (r)->status, (r)->out, (r)->err

/* Every exit is explained in words. */
static void check_messages(const char *opt, const struct run *r)
{
	static const char *const vague[] = {
		"(null)", "Success", "Unknown error",
		"Resource temporarily unavailable",
	};

	FUZZ_ASSERT(r->status == 0 || r->status == 1 || r->status == 4 ||
		    r->status == 8,
		    "fsck %s: exit %d\n%s%s", opt, SHOW(r));
	for (size_t i = 0; i < G_N_ELEMENTS(vague); i++)
		FUZZ_ASSERT(!strstr(r->out, vague[i]) &&
			    !strstr(r->err, vague[i]),
			    "fsck %s: unclear message ('%s'):\n%s%s", opt,
			    vague[i], r->out, r->err);
	switch (r->status) {
	case 0:
		FUZZ_ASSERT(!r->errlen && strstr(r->out, ": clean\n"),
			    "fsck %s: exit 0 but:\n%s%s", opt, r->out, r->err);
		break;
	case 1:
		FUZZ_ASSERT(strstr(r->out, " (fixed)\n"),
			    "fsck %s: exit 1 without a fixed problem:\n%s%s",
			    opt, r->out, r->err);
		break;
	default:
		/* a reason on stderr, or the problems found on stdout */
		FUZZ_ASSERT((r->errlen && strstr(r->err, "fsck.dmafs: ")) ||
			    (r->status == 4 && strstr(r->out, "\n  ") &&
			     (strstr(r->out, "run fsck.dmafs -y") ||
			      strstr(r->out, " (not fixed)\n"))),
			    "fsck %s: exit %d without a reason:\n%s%s", opt,
			    SHOW(r));
		break;
	}
}

/* The daemon's load, read-only (it never writes here). */
static int mount_load(char *why, size_t whylen)
{
	struct dmafs_fs fs;
	int ret;

	dmafs_fs_init(&fs, path, true);
	ret = dmafs_dev_open(path, DMAFS_DEV_RDONLY | DMAFS_DEV_EXCL, &fs.dev);
	FUZZ_ASSERT(!ret, "cannot open %s: %d", path, ret);
	why[0] = 0;
	ret = dmafs_log_load(&fs, why, whylen);
	if (ret)
		fuzz_check_why(ret, why, "dmafs_log_load");
	else
		fuzz_check_state(&fs, "mount");
	dmafs_fs_destroy(&fs);
	return ret;
}

static void expect_mount(const char *after, const struct run *r)
{
	char why[DMAFS_WHY_MAX];
	int ret = mount_load(why, sizeof(why));

	FUZZ_ASSERT(!ret, "fsck %s said clean but the mount refuses: %s\n%s%s",
		    after, why, r->out, r->err);
}

/* ---- edits ---- */

static void reseal(uint32_t blk)
{
	uint8_t *p = img + (size_t)blk * DMAFS_BLOCK_SIZE;
	struct dmafs_disk_chunk *c = (void *)p;

	if (blk == 0 || blk == TOTAL - 1) {
		dmafs_super_seal((struct dmafs_disk_super *)p);
	} else if (le32(c->magic) == DMAFS_CHUNK_MAGIC) {
		uint64_t room = TOTAL - 1 - blk;
		uint32_t nb = le32(c->nblocks);
		uint64_t nbytes = le32(c->nbytes), crc;

		if (!nb || nb > room)
			nb = room;
		if (nbytes + DMAFS_CHUNK_HDR_SIZE > nb * DMAFS_BLOCK_SIZE)
			nbytes = nb * DMAFS_BLOCK_SIZE - DMAFS_CHUNK_HDR_SIZE;
		c->crc = 0;
		crc = dmafs_crc32c(0, c, sizeof(*c));
		crc = dmafs_crc32c(crc, c + 1, nbytes);
		c->crc = cpu32(crc);
	}
}

/* Records in p (up to the first bad one), for a chunk's nrecords. */
static uint32_t count_recs(const void *p, uint32_t n)
{
	const struct dmafs_disk_rec *rec;
	uint32_t off = 0, count = 0;
	char why[DMAFS_WHY_MAX];
	void *copy = g_malloc(n + 1);	/* aligned, unlike the input */

	memcpy(copy, p, n);
	while (dmafs_rec_next(copy, n, &off, &rec, why, sizeof(why)) > 0)
		count++;
	g_free(copy);
	return count;
}

/* Apply the edits; the input is consumed entirely (or the rest ignored). */
static void apply_edits(const uint8_t *d, size_t n)
{
	uint64_t log_pos = APPEND_AT, log_seq = APPEND_SEQ;

	while (n) {
		uint8_t op = *d++;

		n--;
		if ((op & 3) <= 1) {
			uint32_t blk, off, len;
			uint8_t *p;

			if (n < 5)
				return;
			blk = d[0] | d[1] << 8;
			off = (d[2] | d[3] << 8) % DMAFS_BLOCK_SIZE;
			len = MIN((uint32_t)d[4], (uint32_t)(n - 5));
			d += 5;
			n -= 5;
			blk = op & 0x80 ?
				interesting_blocks[blk %
					G_N_ELEMENTS(interesting_blocks)] :
				blk % TOTAL;
			len = MIN(len, DMAFS_BLOCK_SIZE - off);
			p = img + (size_t)blk * DMAFS_BLOCK_SIZE + off;
			for (uint32_t i = 0; i < len; i++)
				p[i] = (op & 3) ? p[i] ^ d[i] : d[i];
			d += len;
			n -= len;
			if (op & 0x40)
				reseal(blk);
		} else if ((op & 3) == 2) {
			uint32_t len, nb;

			if (n < 2)
				return;
			len = MIN((uint32_t)(d[0] | d[1] << 8),
				  (uint32_t)(n - 2));
			d += 2;
			n -= 2;
			nb = chunk_blocks(len);
			if (log_pos + nb > LOG_BLOCKS)
				log_pos = 0;
			if (nb > LOG_BLOCKS)
				return;
			put_chunk(img, LOG_START + log_pos, DMAFS_CHUNK_LOG,
				  log_seq++, d, len, count_recs(d, len), 0, 0);
			log_pos += nb;
			d += len;
			n -= len;
		} else {
			uint32_t len, which, nb0, nb1;
			struct dmafs_disk_chunk *c0 = (void *)(img +
				(size_t)CKPT0 * DMAFS_BLOCK_SIZE);
			struct dmafs_disk_chunk *c1 = (void *)(img +
				(size_t)CKPT1 * DMAFS_BLOCK_SIZE);

			if (n < 3)
				return;
			which = d[0] & 1;
			len = MIN((uint32_t)(d[1] | d[2] << 8),
				  (uint32_t)(n - 3));
			d += 3;
			n -= 3;
			/* chunk 0 must end before chunk 1 */
			len = MIN(len, (which ? 16u : 2u) * DMAFS_BLOCK_SIZE -
					       DMAFS_CHUNK_HDR_SIZE);
			put_chunk(img, which ? CKPT1 : CKPT0, DMAFS_CHUNK_CKPT,
				  CKPT_SEQ, d, len, count_recs(d, len),
				  which ? 0 : CKPT1, which);
			nb0 = le32(c0->nblocks);
			nb1 = le32(c1->nblocks);
			/* keep the superblocks' count right */
			put_supers(img, (uint64_t)nb0 + nb1);
			d += len;
			n -= len;
		}
	}
}

/* ---- libFuzzer ---- */

static bool is_zero(const uint8_t *p, size_t n)
{
	return !p[0] && !memcmp(p, p + 1, n - 1);
}

/*
 * Back to the template.  The image file is sparse: the template's zero
 * blocks are holes, so only the blocks that hold data (the template's, the
 * edited ones and whatever fsck wrote) need looking at.
 */
static void restore(void)
{
	off_t off = 0, data, hole;

	while ((data = lseek(img_fd, off, SEEK_DATA)) >= 0) {
		hole = lseek(img_fd, data, SEEK_HOLE);
		FUZZ_ASSERT(hole > data, "SEEK_HOLE: %s", strerror(errno));
		for (off_t o = data & ~(off_t)(DMAFS_BLOCK_SIZE - 1); o < hole;
		     o += DMAFS_BLOCK_SIZE) {
			if (is_zero(template + o, DMAFS_BLOCK_SIZE))
				FUZZ_ASSERT(!fallocate(img_fd,
						       FALLOC_FL_PUNCH_HOLE |
						       FALLOC_FL_KEEP_SIZE, o,
						       DMAFS_BLOCK_SIZE),
					    "punching a hole: %s", strerror(errno));
			else if (memcmp(img + o, template + o, DMAFS_BLOCK_SIZE))
				memcpy(img + o, template + o, DMAFS_BLOCK_SIZE);
		}
		off = hole;
	}
}

/* A write to the image sets its mtime to now: set it to 1 s and look. */
static void mtime_reset(void)
{
	const struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1, 0 } };

	FUZZ_ASSERT(!futimens(img_fd, ts), "futimens: %s", strerror(errno));
}

static bool mtime_untouched(void)
{
	struct stat st;

	FUZZ_ASSERT(!fstat(img_fd, &st), "fstat: %s", strerror(errno));
	return st.st_mtim.tv_sec == 1 && st.st_mtim.tv_nsec == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct run r;
	char why[DMAFS_WHY_MAX];
	int fd;

	fuzz_init_glib();
	verbose = getenv("FUZZ_VERBOSE") && *getenv("FUZZ_VERBOSE") == '1';
	dump = getenv("FUZZ_DUMP");
	fd = memfd_create("dmafs-fuzz-image", 0);
	FUZZ_ASSERT(fd >= 0, "memfd_create: %s", strerror(errno));
	FUZZ_ASSERT(!ftruncate(fd, IMG_SIZE), "ftruncate: %s", strerror(errno));
	img = mmap(NULL, IMG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	FUZZ_ASSERT(img != MAP_FAILED, "mmap: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	img_fd = fd;
	template = g_malloc0(IMG_SIZE);
	build_template(template);
	restore();	/* the template's data blocks go in, the rest are holes */
	for (size_t o = 0; o < IMG_SIZE; o += DMAFS_BLOCK_SIZE)
		if (!is_zero(template + o, DMAFS_BLOCK_SIZE))
			memcpy(img + o, template + o, DMAFS_BLOCK_SIZE);

	/* the template itself: clean (an orphan note only), and it mounts */
	run_fsck("-n", &r);
	FUZZ_ASSERT(r.status == 0 && strstr(r.out, "orphan inode 9"),
		    "template: fsck -n %d\n%s%s", SHOW(&r));
	FUZZ_ASSERT(strstr(r.out, "checkpoint 2 chunks, 4 log chunks replayed"),
		    "template does not load as designed:\n%s", r.out);
	run_free(&r);
	FUZZ_ASSERT(!mount_load(why, sizeof(why)), "template: mount: %s", why);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned long execs;
	struct run n1, y, n2;
	struct dmafs_disk_super *sb = (void *)img;
	bool ro_compat;

	apply_edits(data, size);
	if (dump) {
		/* FUZZ_DUMP=FILE: the edited image, for the real fsck.dmafs */
		FILE *f = fopen(dump, "w");

		FUZZ_ASSERT(f && fwrite(img, IMG_SIZE, 1, f) == 1 && !fclose(f),
			    "cannot write %s", dump);
	}
	/* unknown ro_compat features: -n checks, -y must not write */
	ro_compat = le32(sb->ro_compat) ||
		    le32(((struct dmafs_disk_super *)(img + (TOTAL - 1) *
			DMAFS_BLOCK_SIZE))->ro_compat);

	mtime_reset();
	run_fsck("-n", &n1);
	check_messages("-n", &n1);
	FUZZ_ASSERT(n1.status != 1, "fsck -n returned 1");
	FUZZ_ASSERT(mtime_untouched(), "fsck -n wrote to the image");
	if (n1.status == 0)
		expect_mount("-n", &n1);

	run_fsck("-y", &y);
	check_messages("-y", &y);
	if (y.status >= 4)
		FUZZ_ASSERT(n1.status != 0 || (y.status == 8 && ro_compat),
			    "fsck -n said clean, fsck -y failed:\n-n: %s%s\n-y: %d\n%s%s",
			    n1.out, n1.err, SHOW(&y));
	else
		FUZZ_ASSERT((n1.status == 0) == (y.status == 0),
			    "fsck -n returned %d, fsck -y %d\n-n: %s%s\n-y: %s%s",
			    n1.status, y.status, n1.out, n1.err, y.out, y.err);
	FUZZ_ASSERT(n1.status != 8 || y.status == 8,
		    "fsck -n: operational error, -y: %d\n%s%s", SHOW(&y));

	run_fsck("-n", &n2);
	check_messages("-n (again)", &n2);
	if (y.status <= 1) {
		FUZZ_ASSERT(n2.status == 0,
			    "fsck -y returned %d, then fsck -n %d\n-y: %s%s\n-n: %s%s",
			    y.status, n2.status, y.out, y.err, n2.out, n2.err);
		/* what -y wrote is the whole state: no log comes back */
		FUZZ_ASSERT(!strstr(y.out, "Phase 5") ||
			    strstr(n2.out, ", 0 log chunks replayed\n"),
			    "log chunks replayed after fsck -y rewrote the metadata\n-y: %s%s\n-n: %s%s",
			    y.out, y.err, n2.out, n2.err);
		expect_mount("-y", &n2);
	} else if (strstr(y.out, "Phase 5") && !strstr(y.err, "failed")) {
		/* a partial repair: some problems "(not fixed)" */
		FUZZ_ASSERT(strstr(y.out, " (not fixed)\n") && n2.status == 4,
			    "fsck -y returned %d after writing, then fsck -n %d\n-y: %s%s\n-n: %s%s",
			    y.status, n2.status, y.out, y.err, n2.out, n2.err);
	} else {
		/*
		 * -y failed, or wrote nothing: it may have written free
		 * blocks, nothing else.  A memfd has no I/O errors: only
		 * ENOSPC may stop the writing.
		 */
		FUZZ_ASSERT(!strstr(y.err, "writing the repaired metadata failed") ||
			    strstr(y.err, "No space left on device"),
			    "fsck -y could not write:\n%s%s", y.out, y.err);
		FUZZ_ASSERT(n2.status == n1.status && !strcmp(n2.out, n1.out) &&
			    !strcmp(n2.err, n1.err),
			    "fsck -y failed (%d) and changed the filesystem:\n-n: %d\n%s%s-y: %s%s\n-n: %d\n%s%s",
			    y.status, n1.status, n1.out, n1.err, y.out, y.err,
			    n2.status, n2.out, n2.err);
	}

	if (verbose)
		fprintf(stderr, "== fsck -n: %d\n%s%s== fsck -y: %d\n%s%s== fsck -n: %d\n%s%s",
			SHOW(&n1), SHOW(&y), SHOW(&n2));
	run_free(&n1);
	run_free(&y);
	run_free(&n2);
	restore();
	/* now and then, make sure restore() missed nothing */
	if (!(++execs % 1000))
		FUZZ_ASSERT(!memcmp(img, template, IMG_SIZE),
			    "the image was not restored");
	return 0;
}
