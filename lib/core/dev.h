/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device I/O for dmafs: a block device (NVMe namespace or any other) or an
 * image file, opened O_DIRECT, driven through io_uring.
 *
 * Threading: a struct dmafs_dev may be used from any number of threads at
 * once.  Each thread gets its own io_uring (created on first use, torn down
 * at thread exit or dmafs_dev_close()), so no submission path takes a lock.
 *
 * All offsets and lengths passed to the I/O calls must be multiples of the
 * device's logical block size and buffers aligned to DMAFS_DEV_BUF_ALIGN;
 * dmafs_dev_alloc_buf() returns such buffers.  Calls return 0 or a negative
 * errno; a short transfer is -EIO.
 */
#ifndef DMAFS_DEV_H
#define DMAFS_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DMAFS_DEV_BUF_ALIGN 4096

/* dmafs_dev_open() flags */
#define DMAFS_DEV_RDONLY	(1u << 0)	/* open read-only, never write */
#define DMAFS_DEV_EXCL		(1u << 1)	/* exclusive: O_EXCL / flock */

/* struct dmafs_io.flags */
#define DMAFS_IO_WRITE		(1u << 0)
#define DMAFS_IO_FUA		(1u << 1)	/* write through (RWF_DSYNC) */

struct dmafs_dev_info {
	char path[4096];
	uint64_t size;			/* bytes */
	uint32_t lba_size;		/* logical block size, bytes */
	bool is_blockdev;
	bool direct;			/* O_DIRECT in use */
	/* from libnvme, when the device is an NVMe namespace */
	bool is_nvme;
	char model[41];			/* trimmed */
	char serial[21];		/* trimmed */
	char firmware[9];
	uint32_t nsid;
	uint64_t nsze;			/* namespace size, LBAs */
	uint32_t lbaf_index;		/* in-use LBA format */
	uint32_t lbaf_ms;		/* metadata bytes per LBA */
	bool vwc;			/* volatile write cache present */
	uint32_t max_transfer;		/* bytes (MDTS), 0 = no limit known */
};

struct dmafs_io {
	void *buf;
	size_t len;			/* bytes */
	uint64_t off;			/* bytes */
	unsigned int flags;		/* DMAFS_IO_* */
	int res;			/* out: 0 or -errno */
};

struct dmafs_dev;

int dmafs_dev_open(const char *path, unsigned int flags, struct dmafs_dev **out);
void dmafs_dev_close(struct dmafs_dev *dev);
const struct dmafs_dev_info *dmafs_dev_info(const struct dmafs_dev *dev);
int dmafs_dev_fd(const struct dmafs_dev *dev);

/* Submit n requests as one batch and wait for all; 0 or the first error. */
int dmafs_dev_submit(struct dmafs_dev *dev, struct dmafs_io *ios, unsigned int n);
int dmafs_dev_read(struct dmafs_dev *dev, void *buf, size_t len, uint64_t off);
int dmafs_dev_write(struct dmafs_dev *dev, const void *buf, size_t len,
		    uint64_t off, unsigned int flags);
/* Flush the device's volatile write cache (fsync of the device fd). */
int dmafs_dev_flush(struct dmafs_dev *dev);
/* Discard / punch a range; best effort, -EOPNOTSUPP if not supported. */
int dmafs_dev_discard(struct dmafs_dev *dev, uint64_t off, uint64_t len);

/* Aligned zeroed buffer; free with free(). NULL on ENOMEM. */
void *dmafs_dev_alloc_buf(size_t len);

/*
 * Helpers for tools.  dmafs_dev_signature() reports an existing filesystem
 * signature (libblkid) in type (e.g. "ext4", "dmafs"), returning 1 if one
 * was found, 0 if none, -errno on error.  dmafs_dev_mounted() returns 1 if
 * the device (or image file) is mounted or held by a mounted filesystem.
 */
int dmafs_dev_signature(const char *path, char *type, size_t typelen);
int dmafs_dev_mounted(const char *path);

#endif /* DMAFS_DEV_H */
