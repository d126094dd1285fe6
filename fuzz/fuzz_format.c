// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target: the format code and replay, without a device.
 *
 * The input is
 *
 *   byte 0      control bits:
 *                 0x01  reseal the superblock's crc before checking it
 *                 0x02  repair the chunk header (magic, UUID, lengths) and
 *                       reseal its crc, so mutations reach record parsing
 *                 0x18  size of the filesystem replay runs against when
 *                       the superblock is not valid: 16 MiB, 256 MiB,
 *                       4 GiB, 16 TiB
 *   bytes 1-2   n, little endian: the length of the superblock part
 *   n bytes     a superblock (zero padded to 4 KiB)
 *   the rest    a chunk: 64-byte header, then records
 *
 * and each run
 *
 *   1. checks the superblock (dmafs_super_check), raw and resealed;
 *   2. verifies the chunk (dmafs_chunk_verify) with its own UUID, type
 *      and sequence, so the checks up to and including the crc run;
 *   3. walks the records (dmafs_rec_next) of the verified payload, or of
 *      the raw bytes after the header when it does not verify;
 *   4. replays them as the mount does (dmafs_meta_apply, stop at the first
 *      bad one, dmafs_meta_finish_load) into a fresh in-memory filesystem;
 *      a state that loads is written as a checkpoint (the daemon's own
 *      serialiser) into memory and loaded again: it must load and be the
 *      same state; and the stored POSIX ACLs are put through what the
 *      daemon does with them (inherit, chmod);
 *   5. replays them as fsck does (skip bad records), runs fsck's
 *      namespace and space phases in check and in repair mode (they must
 *      find the same problems; if they find none, step 4 must have
 *      mounted), checks that what fsck says it moved to lost+found is
 *      there, and checks the repaired state: written as a checkpoint it
 *      must mount, be the same state, and a second fsck must find nothing,
 *      not even a note, but what -y said it could not fix.
 *
 * Any crash, leak or sanitizer report, and any violated invariant
 * (FUZZ_ASSERT, abort()), is a bug.  FUZZ_VERBOSE=1 in the environment
 * shows what the fsck runs say.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"

#define MAX_CHUNK_BLOCKS 64u

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* FUZZ_VERBOSE=1: show what the in-memory fsck runs say */
	if (getenv("FUZZ_VERBOSE") && *getenv("FUZZ_VERBOSE") == '1')
		devnull = stderr;
	else
		devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	fuzz_fsck_out = devnull;
	fuzz_fsck_err = devnull;
	fuzz_init_glib();
	return 0;
}

static void check_errno(int ret, const char *why, const char *what)
{
	FUZZ_ASSERT(ret == 0 || ret == -EUCLEAN || ret == -ENODATA ||
		    ret == -EOPNOTSUPP,
		    "%s returned %d (%s)", what, ret, why);
	fuzz_check_why(ret, why, what);
}

/* ---- step 1: superblock ---- */

static bool check_super(const uint8_t *data, size_t len, bool reseal,
			struct dmafs_disk_super *out)
{
	struct dmafs_disk_super *sb = dmafs_dev_alloc_buf(sizeof(*sb));
	char why[DMAFS_WHY_MAX] = "";
	uint64_t total;
	bool ok;
	int ret;

	FUZZ_ASSERT(sb, "out of memory");
	memcpy(sb, data, MIN(len, sizeof(*sb)));
	ret = dmafs_super_check(sb, 0, why, sizeof(why));
	check_errno(ret, why, "dmafs_super_check");
	if (reseal) {
		dmafs_super_seal(sb);
		why[0] = 0;
		ret = dmafs_super_check(sb, 0, why, sizeof(why));
		check_errno(ret, why, "dmafs_super_check (resealed)");
		FUZZ_ASSERT(ret != -EUCLEAN ||
			    !strstr(why, "checksum mismatch"),
			    "a resealed superblock fails its checksum");
	}
	ok = !ret;
	if (ok) {
		/* on a device one block too small it must be refused */
		total = le64(sb->total_blocks);
		why[0] = 0;
		ret = dmafs_super_check(sb, total - 1, why, sizeof(why));
		FUZZ_ASSERT(ret == -EUCLEAN, "superblock of %llu blocks fits %llu",
			    (unsigned long long)total,
			    (unsigned long long)total - 1);
		fuzz_check_why(ret, why, "dmafs_super_check (small device)");
		FUZZ_ASSERT(!dmafs_super_check(sb, total, why, sizeof(why)),
			    "superblock refused on a device of its own size");
		*out = *sb;
	}
	free(sb);
	return ok;
}

/* ---- step 2: chunk ---- */

static void fix_chunk(void *buf, uint32_t nblk)
{
	struct dmafs_disk_chunk *c = buf;
	uint32_t nb = le32(c->nblocks), nbytes = le32(c->nbytes), crc;

	c->magic = cpu32(DMAFS_CHUNK_MAGIC);
	memcpy(c->uuid, fuzz_uuid, 16);
	if (!nb || nb > nblk)
		nb = nblk;
	if ((uint64_t)nbytes + DMAFS_CHUNK_HDR_SIZE >
	    (uint64_t)nb * DMAFS_BLOCK_SIZE)
		nbytes = nb * DMAFS_BLOCK_SIZE - DMAFS_CHUNK_HDR_SIZE;
	c->nblocks = cpu32(nb);
	c->nbytes = cpu32(nbytes);
	c->crc = 0;
	crc = dmafs_crc32c(0, c, sizeof(*c));
	crc = dmafs_crc32c(crc, c + 1, nbytes);
	c->crc = cpu32(crc);
}

static bool verify_chunk(const void *buf, uint32_t nblk)
{
	const struct dmafs_disk_chunk *c = buf;
	char why[DMAFS_WHY_MAX] = "";
	uint32_t type = le32(c->type), nb = 0, nb1 = 0;
	uint64_t seq = le64(c->seq);
	int ret, ret1;

	/* the first block alone, as read_chunk() reads it first */
	ret1 = dmafs_chunk_verify(buf, 1, type, seq, c->uuid, 256, &nb1, why,
				  sizeof(why));
	FUZZ_ASSERT(ret1 != -EAGAIN || nb1 > 1,
		    "-EAGAIN for a chunk of %u blocks", nb1);
	if (ret1 != -EAGAIN)
		fuzz_check_why(ret1, why, "dmafs_chunk_verify (1 block)");
	why[0] = 0;
	ret = dmafs_chunk_verify(buf, nblk, type, seq, c->uuid, 256, &nb, why,
				 sizeof(why));
	if (ret == -EAGAIN)
		return false;		/* longer than the input */
	FUZZ_ASSERT(ret == 0 || ret == -EUCLEAN, "dmafs_chunk_verify: %d",
		    ret);
	fuzz_check_why(ret, why, "dmafs_chunk_verify");
	if (ret)
		return false;
	FUZZ_ASSERT(nb >= 1 && nb <= nblk && nb == le32(c->nblocks) &&
		    le32(c->nbytes) + DMAFS_CHUNK_HDR_SIZE <=
			    (uint64_t)nb * DMAFS_BLOCK_SIZE,
		    "verified chunk of %u blocks, %u bytes", nb,
		    le32(c->nbytes));
	/* the other UUID and the next sequence must not match */
	{
		uint8_t other[16];

		memcpy(other, c->uuid, 16);
		other[0] ^= 1;
		FUZZ_ASSERT(dmafs_chunk_verify(buf, nblk, type, seq, other, 256,
					       &nb, why, sizeof(why)) == -EUCLEAN,
			    "chunk accepted for another filesystem");
		FUZZ_ASSERT(dmafs_chunk_verify(buf, nblk, type, seq + 1,
					       c->uuid, 256, &nb, why,
					       sizeof(why)) == -EUCLEAN,
			    "chunk accepted with another sequence");
	}
	return true;
}

/* ---- step 3: records ---- */

/* All records up to the first bad one; *bad says whether there was one. */
static GPtrArray *walk(const void *payload, uint32_t nbytes, bool *bad)
{
	GPtrArray *recs = g_ptr_array_new();
	const struct dmafs_disk_rec *rec;
	char why[DMAFS_WHY_MAX] = "";
	uint32_t off = 0, prev = 0;
	int ret;

	while ((ret = dmafs_rec_next(payload, nbytes, &off, &rec, why,
				     sizeof(why))) > 0) {
		uint32_t len = le32(rec->len);

		FUZZ_ASSERT((const char *)rec == (const char *)payload + prev &&
			    len >= sizeof(*rec) && !(len & 7) &&
			    off == prev + len && off <= nbytes,
			    "record walk at %u: len %u, next %u of %u", prev,
			    len, off, nbytes);
		g_ptr_array_add(recs, (gpointer)rec);
		prev = off;
	}
	FUZZ_ASSERT(ret == 0 || ret == -EUCLEAN, "dmafs_rec_next: %d", ret);
	fuzz_check_why(ret, why, "dmafs_rec_next");
	FUZZ_ASSERT(ret || off == nbytes, "walk ended at %u of %u", off,
		    nbytes);
	*bad = ret < 0;
	return recs;
}

/* ---- steps 4 and 5: replay ---- */

static void setup(struct dmafs_fs *fs, const struct dmafs_disk_super *sb)
{
	uint64_t pair[2] = { le64(sb->ckpt_block), 1 };

	fuzz_fs_setup(fs, sb);
	fuzz_log_attach(fs);
	/* the checkpoint this state came from holds one block */
	g_array_append_vals(fs->ckpt_ext, pair, 2);
	fs->sb.ckpt_blocks = cpu64(1);
}

/* Apply as the mount does: stop at the first bad record. */
static int apply_strict(struct dmafs_fs *fs, GPtrArray *recs, char *why,
			size_t whylen)
{
	for (guint i = 0; i < recs->len; i++) {
		int ret;

		why[0] = 0;
		ret = dmafs_meta_apply(fs, recs->pdata[i], why, whylen);
		FUZZ_ASSERT(ret == 0 || ret == -EUCLEAN,
			    "dmafs_meta_apply: %d", ret);
		fuzz_check_why(ret, why, "dmafs_meta_apply");
		if (ret)
			return ret;
	}
	return 0;
}

/* Apply as fsck does: report bad records and go on. */
static void apply_report(struct dmafs_fs *fs, GPtrArray *recs, bool bad)
{
	char why[DMAFS_WHY_MAX];

	for (guint i = 0; i < recs->len; i++) {
		int ret;

		why[0] = 0;
		ret = dmafs_meta_apply(fs, recs->pdata[i], why, sizeof(why));
		fuzz_check_why(ret, why, "dmafs_meta_apply");
		if (ret)
			fs->report(fs, why);
	}
	if (bad)
		fs->report(fs, "malformed record");
}

/* Load a checkpoint made by fuzz_checkpoint(); every step must succeed. */
static void load_checkpoint(struct dmafs_fs *fs, GPtrArray *chunks,
			    bool report, const char *what)
{
	char why[DMAFS_WHY_MAX] = "";

	for (guint i = 0; i < chunks->len; i++) {
		const struct dmafs_disk_chunk *c = chunks->pdata[i];
		uint32_t nb = 0;
		GPtrArray *recs;
		bool bad;
		int ret;

		ret = dmafs_chunk_verify(c, le32(c->nblocks), DMAFS_CHUNK_CKPT, 1,
					 fs->sb.uuid, 256, &nb, why,
					 sizeof(why));
		FUZZ_ASSERT(!ret, "%s: checkpoint chunk %u: %s", what, i, why);
		recs = walk(c + 1, le32(c->nbytes), &bad);
		FUZZ_ASSERT(!bad && recs->len == le32(c->nrecords),
			    "%s: checkpoint chunk %u: %u records, header says %u",
			    what, i, recs->len, le32(c->nrecords));
		if (report) {
			apply_report(fs, recs, false);
		} else {
			for (guint r = 0; r < recs->len; r++) {
				why[0] = 0;
				ret = dmafs_meta_apply(fs, recs->pdata[r], why,
						       sizeof(why));
				FUZZ_ASSERT(!ret,
					    "%s: checkpoint record %u refused: %s",
					    what, r, why);
			}
		}
		g_ptr_array_free(recs, TRUE);
	}
}

/* A state that loaded: checkpoint it, load that, compare. */
static void round_trip(struct dmafs_fs *fs, const struct dmafs_disk_super *sb,
		       const char *what)
{
	GPtrArray *chunks = fuzz_checkpoint(fs, 1);
	struct dmafs_fs again;
	char why[DMAFS_WHY_MAX] = "";
	int ret;

	dmafs_fs_init(&again, "(memory)", true);
	setup(&again, sb);
	load_checkpoint(&again, chunks, false, what);
	ret = dmafs_meta_finish_load(&again, why, sizeof(why));
	FUZZ_ASSERT(!ret, "%s: the checkpoint of a loaded state does not load: %s",
		    what, why);
	fuzz_check_state(&again, what);
	fuzz_compare_state(fs, &again, what);
	dmafs_fs_destroy(&again);
	g_ptr_array_free(chunks, TRUE);
}

/* What the daemon does with stored POSIX ACLs: inherit, chmod, parse. */
static void exercise_acls(struct dmafs_fs *fs)
{
	static const uint32_t modes[] = { S_IFREG | 0666, S_IFDIR | 0777 };
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *in = v;
		GBytes *acl = dmafs_xattr_get(in, dmafs_acl_access);
		bool store;

		if (acl) {
			gsize len;
			const void *d = g_bytes_get_data(acl, &len);

			dmafs_acl_access_set(fs, in, d, len, &store);
			dmafs_acl_chmod(fs, in);
		}
		if (!S_ISDIR(in->mode) || !dmafs_xattr_get(in, dmafs_acl_default))
			continue;
		for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
			struct dmafs_inode *child = g_new0(struct dmafs_inode, 1);
			uint32_t mode = modes[i];

			g_rw_lock_init(&child->io_lock);
			child->mode = mode;
			dmafs_acl_inherit(fs, in, child, &mode, 022);
			FUZZ_ASSERT((mode & S_IFMT) == (modes[i] & S_IFMT) &&
				    !(mode & ~modes[i]),
				    "inherited mode 0%o from 0%o", mode, modes[i]);
			dmafs_inode_free(child);
		}
	}
}

/* The mount's replay; returns 0 if it mounts, or why not. */
static int replay_strict(GPtrArray *recs, bool bad,
			 const struct dmafs_disk_super *sb, char *why,
			 size_t whylen)
{
	struct dmafs_fs fs;
	int ret;

	dmafs_fs_init(&fs, "(memory)", true);
	setup(&fs, sb);
	why[0] = 0;
	ret = apply_strict(&fs, recs, why, whylen);
	fuzz_check_state(&fs, "replay");
	if (!ret && bad) {
		snprintf(why, whylen, "malformed record");
		ret = -EUCLEAN;
	}
	if (!ret) {
		ret = dmafs_meta_finish_load(&fs, why, whylen);
		FUZZ_ASSERT(ret == 0 || ret == -EUCLEAN,
			    "dmafs_meta_finish_load: %d", ret);
		fuzz_check_why(ret, why, "dmafs_meta_finish_load");
		fuzz_check_state(&fs, "finish_load");
		if (!ret) {
			FUZZ_ASSERT(!dmafs_alloc_check(fs.alloc),
				    "allocator inconsistent after load");
			round_trip(&fs, sb, "mount round trip");
			exercise_acls(&fs);
		}
	}
	dmafs_fs_destroy(&fs);
	return ret;
}

static struct fsck *fsck_load(bool repair, GPtrArray *recs, bool bad,
			      GPtrArray *chunks,
			      const struct dmafs_disk_super *sb)
{
	struct fsck *f = fuzz_fsck_new(repair);
	struct dmafs_fs *fs = fuzz_fsck_fs(f);

	setup(fs, sb);
	if (recs)
		apply_report(fs, recs, bad);
	else
		load_checkpoint(fs, chunks, true, "fsck reload");
	fuzz_check_state(fs, "fsck load");
	fuzz_fsck_phases(f);
	fuzz_check_state(fs, repair ? "fsck -y" : "fsck -n");
	return f;
}

/* Does a directory of fs name inode ino? */
static bool linked(struct dmafs_fs *fs, uint64_t ino)
{
	GHashTableIter it, di;
	gpointer v, dv;

	g_hash_table_iter_init(&it, fs->inodes);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct dmafs_inode *dir = v;

		if (!dir->dents)
			continue;
		g_hash_table_iter_init(&di, dir->dents);
		while (g_hash_table_iter_next(&di, NULL, &dv))
			if (((struct dmafs_dirent *)dv)->ino == ino)
				return true;
	}
	return false;
}

/* What fsck said it moved (to lost+found) is there, with a name. */
static void check_moved(struct fsck *f, const char *said)
{
	static const char moved[] = " is not reachable from the root; moved to ";
	struct dmafs_fs *fs = fuzz_fsck_fs(f);
	const char *p;

	for (p = strstr(said, moved); p; p = strstr(p + 1, moved)) {
		const char *q = p;
		unsigned long long ino;

		while (q > said && q[-1] != ' ')
			q--;
		FUZZ_ASSERT(sscanf(q, "%llu", &ino) == 1,
			    "cannot parse fsck's words: %.80s", q);
		FUZZ_ASSERT(dmafs_inode_get(fs, ino) && linked(fs, ino),
			    "fsck said inode %llu was moved, it is not there:\n%s",
			    ino, said);
	}
}

/*
 * Problems fsck -y said it could not fix; an inode such a problem names
 * ("  inode N ...") must still be there: not fixed is not deleted.
 */
static unsigned int not_fixed(struct fsck *f, const char *said)
{
	unsigned int n = 0;

	for (const char *p = strstr(said, " (not fixed)\n"); p;
	     p = strstr(p + 1, " (not fixed)\n")) {
		const char *line = p;
		unsigned long long ino;

		while (line > said && line[-1] != '\n')
			line--;
		if (sscanf(line, "  inode %llu ", &ino) == 1)
			FUZZ_ASSERT(dmafs_inode_get(fuzz_fsck_fs(f), ino),
				    "fsck said it could not fix inode %llu, and deleted it:\n%s",
				    ino, said);
		n++;
	}
	return n;
}

static void replay_fsck(GPtrArray *recs, bool bad,
			const struct dmafs_disk_super *sb, int mount_ret,
			const char *mount_why)
{
	struct fsck *check, *fix, *again;
	struct dmafs_fs *fixed, mounted;
	char why[DMAFS_WHY_MAX] = "";
	GPtrArray *chunks;
	char *said = NULL;
	size_t saidlen = 0;
	unsigned int unfixed;
	int ret;

	check = fsck_load(false, recs, bad, NULL, sb);
	FUZZ_ASSERT(fuzz_fsck_errors(check) || !mount_ret,
		    "fsck -n finds nothing, the mount refuses: %s", mount_why);
	fuzz_fsck_out = open_memstream(&said, &saidlen);
	FUZZ_ASSERT(fuzz_fsck_out, "open_memstream");
	fix = fsck_load(true, recs, bad, NULL, sb);
	fclose(fuzz_fsck_out);
	fuzz_fsck_out = devnull;
	check_moved(fix, said);
	unfixed = not_fixed(fix, said);
	fputs(said, devnull);
	free(said);
	FUZZ_ASSERT(fuzz_fsck_errors(check) == fuzz_fsck_errors(fix),
		    "fsck -n found %u problems, -y %u", fuzz_fsck_errors(check),
		    fuzz_fsck_errors(fix));
	fuzz_fsck_free(check);

	/* the repaired state, as fsck -y writes it */
	fixed = fuzz_fsck_fs(fix);
	FUZZ_ASSERT(!dmafs_alloc_check(fixed->alloc),
		    "allocator inconsistent after fsck");
	chunks = fuzz_checkpoint(fixed, 1);

	/* ... must mount ... */
	dmafs_fs_init(&mounted, "(memory)", true);
	setup(&mounted, sb);
	load_checkpoint(&mounted, chunks, false, "mount after fsck -y");
	ret = dmafs_meta_finish_load(&mounted, why, sizeof(why));
	FUZZ_ASSERT(!ret, "fsck -y left a filesystem that does not mount: %s",
		    why);
	fuzz_check_state(&mounted, "mount after fsck -y");
	fuzz_compare_state(fixed, &mounted, "mount after fsck -y");
	dmafs_fs_destroy(&mounted);

	/* ... and be clean, but for what -y said it could not fix */
	again = fsck_load(false, NULL, false, chunks, sb);
	FUZZ_ASSERT((unfixed || !fuzz_fsck_errors(again)) &&
		    !fuzz_fsck_notes(again),
		    "fsck -n after fsck -y: %u problems (%u left unfixed), %u notes",
		    fuzz_fsck_errors(again), unfixed, fuzz_fsck_notes(again));
	fuzz_fsck_free(again);
	g_ptr_array_free(chunks, TRUE);
	fuzz_fsck_free(fix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t sizes[4] = {
		DMAFS_MIN_BLOCKS, 65536, 1ull << 20, 1ull << 32
	};
	char why[DMAFS_WHY_MAX];
	struct dmafs_disk_super sb;
	size_t sblen, clen;
	int mount_ret;
	uint32_t nblk, nbytes;
	GPtrArray *recs;
	uint8_t ctl;
	void *chunk;
	bool bad;

	if (size < 3)
		return 0;
	ctl = data[0];
	sblen = MIN((size_t)(data[1] | data[2] << 8), size - 3);
	sblen = MIN(sblen, (size_t)DMAFS_SB_SIZE);
	data += 3;
	size -= 3;

	/* 1 */
	if (!check_super(data, sblen, ctl & 1, &sb))
		fuzz_super_init(&sb, sizes[(ctl >> 3) & 3]);
	data += sblen;
	size -= sblen;

	/* 2 */
	clen = MIN(size, (size_t)MAX_CHUNK_BLOCKS * DMAFS_BLOCK_SIZE);
	nblk = MAX(1u, (uint32_t)((clen + DMAFS_BLOCK_SIZE - 1) /
				  DMAFS_BLOCK_SIZE));
	chunk = dmafs_dev_alloc_buf((size_t)nblk * DMAFS_BLOCK_SIZE);
	FUZZ_ASSERT(chunk, "out of memory");
	memcpy(chunk, data, clen);
	if (ctl & 2)
		fix_chunk(chunk, nblk);
	if (verify_chunk(chunk, nblk))
		nbytes = le32(((struct dmafs_disk_chunk *)chunk)->nbytes);
	else
		nbytes = clen > DMAFS_CHUNK_HDR_SIZE ?
			 clen - DMAFS_CHUNK_HDR_SIZE : 0;

	/* 3 */
	recs = walk((char *)chunk + DMAFS_CHUNK_HDR_SIZE, nbytes, &bad);

	/* 4, 5 */
	mount_ret = replay_strict(recs, bad, &sb, why, sizeof(why));
	replay_fsck(recs, bad, &sb, mount_ret, why);

	g_ptr_array_free(recs, TRUE);
	free(chunk);
	return 0;
}
