// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libdmafs files: open O_DIRECT, tell whether a file is on dmafs, learn
 * its direct-I/O alignments, preallocate.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/magic.h>

#include "internal.h"

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC	0x65735546
#endif

#define FILE_DEFAULT_OFFSET_ALIGN	4096
#define FILE_DEFAULT_MEM_ALIGN		512

/*
 * Whether the mount with device number dev has filesystem type
 * "fuse.dmafs" (the daemon mounts with subtype=dmafs).  mountinfo line:
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPER
 */
static bool mountinfo_dev_is_dmafs(dev_t dev)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		unsigned int maj, min;
		char *sep, fstype[64];

		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2 ||
		    makedev(maj, min) != dev)
			continue;
		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		found = !strcmp(fstype, "fuse.dmafs");
	}
	free(line);
	fclose(f);
	return found;
}

static int fs_is_dmafs(const struct statfs *sfs, const struct stat *st)
{
	if ((unsigned long)sfs->f_type != FUSE_SUPER_MAGIC)
		return 0;
	return mountinfo_dev_is_dmafs(st->st_dev);
}

int dmafs_fd_is_dmafs(int fd)
{
	struct statfs sfs;
	struct stat st;

	if (fstatfs(fd, &sfs) < 0 || fstat(fd, &st) < 0)
		return -errno;
	return fs_is_dmafs(&sfs, &st);
}

DMAFS_EXPORT int dmafs_path_is_dmafs(const char *path)
{
	struct statfs sfs;
	struct stat st;

	if (!path)
		return -EINVAL;
	if (statfs(path, &sfs) < 0 || stat(path, &st) < 0)
		return -errno;
	return fs_is_dmafs(&sfs, &st);
}

/* docs/kernel-extension.md, "Telling which mode is in use". */
#define DMAFS_MODE_XATTR	"user.dmafs.mode"

static enum dmafs_daemon_mode file_daemon_mode(int fd)
{
	char v[16];
	ssize_t n = fgetxattr(fd, DMAFS_MODE_XATTR, v, sizeof(v) - 1);

	if (n < 0)
		return DMAFS_DAEMON_UNKNOWN;
	v[n] = 0;
	if (!strcmp(v, "kext"))
		return DMAFS_DAEMON_KEXT;
	if (!strcmp(v, "compat"))
		return DMAFS_DAEMON_COMPAT;
	return DMAFS_DAEMON_UNKNOWN;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static void file_learn_align(struct dmafs_file *f, const struct stat *st)
{
	struct statx stx;

	f->offset_align = FILE_DEFAULT_OFFSET_ALIGN;
	f->mem_align = FILE_DEFAULT_MEM_ALIGN;
	if (S_ISBLK(st->st_mode)) {
		int lba;

		/* STATX_DIOALIGN on a block device node only since 6.11. */
		if (ioctl(f->fd, BLKSSZGET, &lba) == 0 && is_pow2(lba))
			f->offset_align = lba;
	}
	if (statx(f->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		if (is_pow2(stx.stx_dio_offset_align))
			f->offset_align = stx.stx_dio_offset_align;
		if (is_pow2(stx.stx_dio_mem_align))
			f->mem_align = stx.stx_dio_mem_align;
	}
}

DMAFS_EXPORT int dmafs_file_open(const char *path, int flags, mode_t mode,
				 struct dmafs_file **out)
{
	struct dmafs_file *f;
	struct stat st;
	int ret;

	if (!path || !out)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->path = strdup(path);
	if (!f->path) {
		ret = -ENOMEM;
		goto out_free;
	}
	f->fd = open(path, flags | O_DIRECT | O_CLOEXEC, mode);
	if (f->fd < 0) {
		ret = -errno;
		/* FUSE refuses O_DIRECT on a directory with EINVAL. */
		if (ret == -EINVAL && stat(path, &st) == 0 &&
		    S_ISDIR(st.st_mode))
			ret = -EISDIR;
		goto out_free;
	}
	if (fstat(f->fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		ret = -EINVAL;
		goto out_close;
	}
	if (S_ISBLK(st.st_mode)) {
		f->on_dmafs = false;
	} else {
		ret = dmafs_fd_is_dmafs(f->fd);
		if (ret < 0)
			goto out_close;
		f->on_dmafs = ret;
		if (f->on_dmafs)
			f->daemon_mode = file_daemon_mode(f->fd);
	}
	file_learn_align(f, &st);
	*out = f;
	return 0;

out_close:
	close(f->fd);
out_free:
	free(f->path);
	free(f);
	return ret;
}

DMAFS_EXPORT void dmafs_file_close(struct dmafs_file *f)
{
	if (!f)
		return;
	close(f->fd);
	free(f->path);
	free(f);
}

DMAFS_EXPORT int dmafs_file_fd(const struct dmafs_file *f)
{
	return f->fd;
}

DMAFS_EXPORT const char *dmafs_file_path(const struct dmafs_file *f)
{
	return f->path;
}

DMAFS_EXPORT bool dmafs_file_on_dmafs(const struct dmafs_file *f)
{
	return f->on_dmafs;
}

DMAFS_EXPORT enum dmafs_daemon_mode
dmafs_file_daemon_mode(const struct dmafs_file *f)
{
	return f->daemon_mode;
}

DMAFS_EXPORT uint32_t dmafs_file_offset_align(const struct dmafs_file *f)
{
	return f->offset_align;
}

DMAFS_EXPORT uint32_t dmafs_file_mem_align(const struct dmafs_file *f)
{
	return f->mem_align;
}

DMAFS_EXPORT int64_t dmafs_file_size(const struct dmafs_file *f)
{
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(f->fd, 0, SEEK_END);

		return end < 0 ? -errno : end;
	}
	return st.st_size;
}

DMAFS_EXPORT int dmafs_prealloc(struct dmafs_file *f, uint64_t off,
				uint64_t len)
{
	if (!len || off > INT64_MAX || len > INT64_MAX - off)
		return -EINVAL;
	while (fallocate(f->fd, 0, off, len) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}
