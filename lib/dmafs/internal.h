/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmafs internals shared by file.c, buf.c and ring.c.  No locking: the
 * objects belong to the caller, who serializes access (dmafs.h).
 */
#ifndef DMAFS_LIB_INTERNAL_H
#define DMAFS_LIB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dmafs/dmafs.h"

#define DMAFS_EXPORT __attribute__((visibility("default")))

struct dmafs_file {
	int fd;
	char *path;
	bool on_dmafs;
	enum dmafs_daemon_mode daemon_mode;
	uint32_t offset_align;		/* power of two */
	uint32_t mem_align;		/* power of two */
};

struct dmafs_buf {
	enum dmafs_buf_kind kind;
	int fd;				/* dma-buf; -1 for MEM */
	size_t size;			/* bytes */
	void *map;			/* CPU mapping or NULL */
	size_t map_len;
	/* DRM only: kept for the dumb-buffer mapping fallback */
	int drm_fd;
	uint32_t drm_handle;
	char *driver;
};

/* 1 when the filesystem holding fd (or path) is a dmafs mount. */
int dmafs_fd_is_dmafs(int fd);

#endif /* DMAFS_LIB_INTERNAL_H */
