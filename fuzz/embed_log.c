// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fs/log.c compiled into fuzz_format (instead of linked), so the harness
 * can use the checkpoint serialiser and chunk cutter, which are static,
 * and write a "checkpoint" to memory instead of a device.
 */
#include "../fs/log.c"

#include "fuzz.h"

void fuzz_log_attach(struct dmafs_fs *fs)
{
	struct dmafs_log *log = g_new0(struct dmafs_log, 1);

	log->buf = g_byte_array_new();
	g_mutex_init(&log->flusher_lock);
	g_cond_init(&log->flusher_cond);
	log->nblocks = le64(fs->sb.log_blocks);
	fs->log = log;
}

GPtrArray *fuzz_checkpoint(struct dmafs_fs *fs, uint64_t seq)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(free);
	GByteArray *s = ckpt_serialise(fs);
	GArray *chunks = ckpt_cut(s);

	for (guint i = 0; i < chunks->len; i++) {
		struct ckpt_chunk *c = &g_array_index(chunks, struct ckpt_chunk,
						      i);
		void *buf = dmafs_dev_alloc_buf((size_t)c->nb *
						DMAFS_BLOCK_SIZE);

		FUZZ_ASSERT(buf, "out of memory");
		FUZZ_ASSERT(c->nb <= CHUNK_MAX_BLOCKS,
			    "checkpoint chunk of %u blocks", c->nb);
		memcpy((char *)buf + DMAFS_CHUNK_HDR_SIZE, s->data + c->off,
		       c->nbytes);
		dmafs_chunk_seal(buf, DMAFS_CHUNK_CKPT, seq, c->nb, c->nbytes,
				 c->nrec, i + 1 < chunks->len ? i + 1 : 0, i,
				 fs->sb.uuid);
		g_ptr_array_add(out, buf);
	}
	g_array_unref(chunks);
	g_byte_array_unref(s);
	return out;
}
