/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Free-space allocator: extents of 4 KiB blocks over [start, end).
 *
 * Free space is not stored on disk; at mount it starts all free and the
 * caller marks every block that the checkpoint and the extent maps use.
 *
 * Frees are deferred: a block freed by the metadata operation that will be
 * logged in chunk S becomes allocatable only after dmafs_alloc_release(S'),
 * S' >= S, i.e. once that chunk is durable.  Until then a crash could bring
 * the old owner back, and it must find its data untouched.
 *
 * Locking: an internal mutex; every call is thread-safe.
 */
#ifndef DMAFS_ALLOC_H
#define DMAFS_ALLOC_H

#include <stdint.h>

struct dmafs_alloc;

struct dmafs_alloc *dmafs_alloc_new(uint64_t start, uint64_t end);
void dmafs_alloc_destroy(struct dmafs_alloc *a);

/* Mark [blk, blk+n) in use at mount; -EUCLEAN if any of it already is,
 * -ERANGE if outside [start, end). */
int dmafs_alloc_mark_used(struct dmafs_alloc *a, uint64_t blk, uint64_t n);

/*
 * Allocate one contiguous extent of at least min and at most want blocks,
 * preferring one that starts at goal (to extend a file contiguously), then
 * the best fit for want, then the largest available.  Returns 0 and sets
 * *blk and *got, or -ENOSPC.
 */
int dmafs_alloc_get(struct dmafs_alloc *a, uint64_t want, uint64_t min,
		    uint64_t goal, uint64_t *blk, uint64_t *got);

/* Give back blocks never made durable (allocation undone): free now. */
void dmafs_alloc_put(struct dmafs_alloc *a, uint64_t blk, uint64_t n);

/* Free [blk, blk+n), reusable once chunk seq is durable. */
void dmafs_alloc_free_deferred(struct dmafs_alloc *a, uint64_t blk, uint64_t n,
			       uint64_t seq);
/* Chunks up to and including seq are durable: release their frees. */
void dmafs_alloc_release(struct dmafs_alloc *a, uint64_t seq);

/* Free blocks, counting deferred frees (they will be free shortly). */
uint64_t dmafs_alloc_free_blocks(struct dmafs_alloc *a);
/* Free blocks allocatable right now. */
uint64_t dmafs_alloc_avail_blocks(struct dmafs_alloc *a);

/* For tests and fsck: verify the internal structures (the free extents are
 * disjoint, merged and indexed alike; pending frees overlap nothing; the
 * counters agree).  0, or -EUCLEAN with the reason logged.  O(n log n). */
int dmafs_alloc_check(struct dmafs_alloc *a);

#endif /* DMAFS_ALLOC_H */
