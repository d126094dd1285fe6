/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared pieces of the dmafs fuzz targets (fuzz_format.c, fuzz_image.c).
 *
 *   embed_fsck.c  tools/fsck.c compiled in, main() renamed fsck_main(), its
 *                 output sent to FILEs the harness picks; plus entry points
 *                 that run fsck's phases 3 and 4 on an in-memory state
 *   embed_log.c   fs/log.c compiled in (fuzz_format only), to reach the
 *                 checkpoint serialiser without a device
 *   common.c      invariants of an in-memory state, state comparison, a
 *                 sane superblock
 *
 * A violated invariant prints "fuzz invariant: ..." and abort()s, which
 * libFuzzer reports as a crash and saves the input.
 */
#ifndef DMAFS_FUZZ_H
#define DMAFS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#include "dmafs.h"

#define FUZZ_ASSERT(cond, ...)                                              \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "fuzz invariant violated (%s:%d): ",  \
				__FILE__, __LINE__);                        \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
			abort();                                            \
		}                                                           \
	} while (0)

/* The UUID every fuzz image and chunk carries. */
extern const uint8_t fuzz_uuid[16];

/* ---- embed_fsck.c ---- */
extern FILE *fuzz_fsck_out;	/* fsck's stdout (printf) */
extern FILE *fuzz_fsck_err;	/* fsck's stderr */
int fsck_main(int argc, char **argv);

struct fsck;
/* An fsck over an in-memory state (no device): check or repair (-y) mode. */
struct fsck *fuzz_fsck_new(bool repair);
struct dmafs_fs *fuzz_fsck_fs(struct fsck *f);
/* Make f the fsck that fs->report reports to (fsck.c keeps one global). */
void fuzz_fsck_select(struct fsck *f);
/* Phases 3 (namespace) and 4 (space); problems and notes found so far. */
void fuzz_fsck_phases(struct fsck *f);
unsigned int fuzz_fsck_errors(const struct fsck *f);
unsigned int fuzz_fsck_notes(const struct fsck *f);
void fuzz_fsck_free(struct fsck *f);

/* ---- embed_log.c ---- */
/* Give fs a log (what dmafs_log_open does, without a device). */
void fuzz_log_attach(struct dmafs_fs *fs);
/* The state as a checkpoint: sealed CKPT chunks (free()), in order. */
GPtrArray *fuzz_checkpoint(struct dmafs_fs *fs, uint64_t seq);

/* ---- common.c ---- */
/* Quiet glib's messages and warnings; make glib criticals fatal. */
void fuzz_init_glib(void);
/* A valid superblock for a filesystem of total_blocks (>= 4096). */
void fuzz_super_init(struct dmafs_disk_super *sb, uint64_t total_blocks);
/* fs->sb, next_ino and an empty allocator, as dmafs_log_open leaves them. */
void fuzz_fs_setup(struct dmafs_fs *fs, const struct dmafs_disk_super *sb);
/* Structural invariants of a loaded state; abort() on violation. */
void fuzz_check_state(struct dmafs_fs *fs, const char *what);
/* a and b hold the same filesystem; abort() with the difference if not. */
void fuzz_compare_state(struct dmafs_fs *a, struct dmafs_fs *b,
			const char *what);
/* A returned failure carries a readable reason. */
void fuzz_check_why(int ret, const char *why, const char *what);

#endif /* DMAFS_FUZZ_H */
