// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libdmafs buffers: udmabuf, DRM dumb buffers exported with PRIME, imported
 * dma-buf fds, and plain memory standing in for a dma-buf in compat mode.
 * CPU access goes through one mapping per buffer, made on first use.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/dma-buf.h>
#include <linux/udmabuf.h>

#include <xf86drm.h>

#include "internal.h"

#ifndef DMA_BUF_MAGIC
#define DMA_BUF_MAGIC	0x444d4142	/* "DMAB" */
#endif

#define BUF_DRM_ROW	4096		/* dumb buffer: 1024 pixels of 32 bits */

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static struct dmafs_buf *buf_new(enum dmafs_buf_kind kind)
{
	struct dmafs_buf *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->kind = kind;
	b->fd = -1;
	b->drm_fd = -1;
	return b;
}

DMAFS_EXPORT void dmafs_buf_free(struct dmafs_buf *b)
{
	if (!b)
		return;
	if (b->map)
		munmap(b->map, b->map_len);
	if (b->fd >= 0)
		close(b->fd);
	if (b->drm_fd >= 0) {
		struct drm_gem_close gc = { .handle = b->drm_handle };

		drmIoctl(b->drm_fd, DRM_IOCTL_GEM_CLOSE, &gc);
		close(b->drm_fd);
	}
	free(b->driver);
	free(b);
}

DMAFS_EXPORT int dmafs_buf_alloc_udmabuf(size_t size, struct dmafs_buf **out)
{
	struct udmabuf_create c;
	struct dmafs_buf *b;
	int dev, memfd, ret;

	if (!size || !out)
		return -EINVAL;
	size = round_up(size, sysconf(_SC_PAGESIZE));
	b = buf_new(DMAFS_BUF_UDMABUF);
	if (!b)
		return -ENOMEM;
	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		ret = errno == ENOENT ? -ENODEV : -errno;
		goto out_free;
	}
	memfd = memfd_create("dmafs-udmabuf", MFD_ALLOW_SEALING | MFD_CLOEXEC);
	if (memfd < 0) {
		ret = -errno;
		goto out_close_dev;
	}
	/* udmabuf refuses a memfd that could shrink under it. */
	if (ftruncate(memfd, size) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		ret = -errno;
		goto out_close_memfd;
	}
	memset(&c, 0, sizeof(c));
	c.memfd = memfd;
	c.flags = UDMABUF_FLAGS_CLOEXEC;
	c.size = size;
	ret = ioctl(dev, UDMABUF_CREATE, &c);
	if (ret < 0) {
		ret = -errno;
		goto out_close_memfd;
	}
	b->fd = ret;
	b->size = size;
	ret = 0;
	/* The udmabuf holds the memfd's pages; neither fd is needed. */
out_close_memfd:
	close(memfd);
out_close_dev:
	close(dev);
out_free:
	if (ret)
		dmafs_buf_free(b);
	else
		*out = b;
	return ret;
}

/* Open node if it is a DRM device: its fd, or -errno. */
static int drm_open(const char *node, char **driver)
{
	drmVersionPtr v;
	int fd = open(node, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	v = drmGetVersion(fd);
	if (!v) {
		close(fd);
		return -ENODEV;
	}
	*driver = strndup(v->name, v->name_len);
	drmFreeVersion(v);
	if (!*driver) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

/* A dumb buffer on the DRM device drm_fd, exported as a dma-buf into b. */
static int drm_create(int drm_fd, size_t size, struct dmafs_buf *b)
{
	struct drm_mode_create_dumb c;
	struct drm_gem_close gc;
	int ret;

	memset(&c, 0, sizeof(c));
	c.width = BUF_DRM_ROW / 4;
	c.bpp = 32;
	c.height = size / BUF_DRM_ROW;
	if (drmIoctl(drm_fd, DRM_IOCTL_MODE_CREATE_DUMB, &c) < 0)
		return errno == EOPNOTSUPP || errno == ENOSYS ||
		       errno == EACCES ? -ENODEV : -errno;
	if (c.size < size) {
		ret = -ENOSPC;
		goto out_close_handle;
	}
	ret = drmPrimeHandleToFD(drm_fd, c.handle, DRM_CLOEXEC | DRM_RDWR,
				 &b->fd);
	if (ret) {
		ret = errno == EOPNOTSUPP || errno == ENOSYS ? -ENODEV : -errno;
		goto out_close_handle;
	}
	b->size = size;
	b->drm_handle = c.handle;
	return 0;

out_close_handle:
	memset(&gc, 0, sizeof(gc));
	gc.handle = c.handle;
	drmIoctl(drm_fd, DRM_IOCTL_GEM_CLOSE, &gc);
	return ret;
}

static int drm_try_node(const char *node, size_t size, struct dmafs_buf *b)
{
	char *driver = NULL;
	int fd, ret;

	fd = drm_open(node, &driver);
	if (fd < 0)
		return fd;
	ret = drm_create(fd, size, b);
	if (ret) {
		close(fd);
		free(driver);
		return ret;
	}
	b->drm_fd = fd;
	b->driver = driver;
	return 0;
}

/*
 * The first card node that makes a buffer: vgem first (it is what the
 * tests and a machine without a GPU have), then the others in name order.
 */
static int drm_scan(size_t size, struct dmafs_buf *b)
{
	struct dirent **names;
	int n, ret = -ENODEV;

	n = scandir("/dev/dri", &names, NULL, alphasort);
	if (n < 0)
		return -ENODEV;
	for (int pass = 0; pass < 2 && ret; pass++) {
		for (int i = 0; i < n && ret; i++) {
			char path[300];
			char *driver = NULL;
			bool vgem;
			int fd;

			if (strncmp(names[i]->d_name, "card", 4))
				continue;
			snprintf(path, sizeof(path), "/dev/dri/%s",
				 names[i]->d_name);
			fd = drm_open(path, &driver);
			if (fd < 0)
				continue;
			vgem = !strcmp(driver, "vgem");
			close(fd);
			free(driver);
			if (vgem != (pass == 0))
				continue;
			if (drm_try_node(path, size, b) == 0)
				ret = 0;
		}
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

DMAFS_EXPORT int dmafs_buf_alloc_drm(const char *node, size_t size,
				     struct dmafs_buf **out)
{
	struct dmafs_buf *b;
	int ret;

	if (!size || !out || size > (size_t)UINT32_MAX * BUF_DRM_ROW)
		return -EINVAL;
	size = round_up(size, BUF_DRM_ROW);
	b = buf_new(DMAFS_BUF_DRM);
	if (!b)
		return -ENOMEM;
	ret = node ? drm_try_node(node, size, b) : drm_scan(size, b);
	if (ret) {
		dmafs_buf_free(b);
		return ret;
	}
	*out = b;
	return 0;
}

DMAFS_EXPORT int dmafs_buf_import(int dmabuf_fd, struct dmafs_buf **out)
{
	struct dmafs_buf *b;
	struct statfs sfs;
	off_t end;
	int ret;

	if (!out)
		return -EINVAL;
	if (fstatfs(dmabuf_fd, &sfs) < 0)
		return -errno;
	if ((unsigned long)sfs.f_type != DMA_BUF_MAGIC)
		return -EINVAL;
	b = buf_new(DMAFS_BUF_IMPORTED);
	if (!b)
		return -ENOMEM;
	b->fd = fcntl(dmabuf_fd, F_DUPFD_CLOEXEC, 3);
	if (b->fd < 0) {
		ret = -errno;
		goto out_free;
	}
	end = lseek(b->fd, 0, SEEK_END);
	if (end <= 0) {
		ret = end < 0 ? -errno : -EINVAL;
		goto out_free;
	}
	b->size = end;
	*out = b;
	return 0;

out_free:
	dmafs_buf_free(b);
	return ret;
}

DMAFS_EXPORT int dmafs_buf_alloc_mem(size_t size, struct dmafs_buf **out)
{
	struct dmafs_buf *b;
	void *p;

	if (!size || !out)
		return -EINVAL;
	b = buf_new(DMAFS_BUF_MEM);
	if (!b)
		return -ENOMEM;
	size = round_up(size, sysconf(_SC_PAGESIZE));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(b);
		return -ENOMEM;
	}
	b->map = p;
	b->map_len = size;
	b->size = size;
	*out = b;
	return 0;
}

DMAFS_EXPORT int dmafs_buf_fd(const struct dmafs_buf *b)
{
	return b->fd;
}

DMAFS_EXPORT size_t dmafs_buf_size(const struct dmafs_buf *b)
{
	return b->size;
}

DMAFS_EXPORT enum dmafs_buf_kind dmafs_buf_kind(const struct dmafs_buf *b)
{
	return b->kind;
}

DMAFS_EXPORT const char *dmafs_buf_kind_name(enum dmafs_buf_kind kind)
{
	switch (kind) {
	case DMAFS_BUF_UDMABUF:
		return "udmabuf";
	case DMAFS_BUF_DRM:
		return "drm";
	case DMAFS_BUF_IMPORTED:
		return "imported";
	case DMAFS_BUF_MEM:
		return "mem";
	}
	return "?";
}

DMAFS_EXPORT const char *dmafs_buf_driver(const struct dmafs_buf *b)
{
	return b->driver;
}

DMAFS_EXPORT int dmafs_buf_map(struct dmafs_buf *b, void **addr)
{
	struct drm_mode_map_dumb md;
	void *p;
	int ret;

	if (b->map)
		goto out;
	p = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
	if (p != MAP_FAILED)
		goto out_set;
	ret = -errno;
	if (b->kind != DMAFS_BUF_DRM)
		return ret;
	/* Exporters without dma-buf mmap: map the dumb buffer instead. */
	memset(&md, 0, sizeof(md));
	md.handle = b->drm_handle;
	if (drmIoctl(b->drm_fd, DRM_IOCTL_MODE_MAP_DUMB, &md) < 0)
		return ret;
	p = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, b->drm_fd,
		 md.offset);
	if (p == MAP_FAILED)
		return ret;
out_set:
	b->map = p;
	b->map_len = b->size;
out:
	if (addr)
		*addr = b->map;
	return 0;
}

static int buf_sync(struct dmafs_buf *b, unsigned int dirs, __u64 when)
{
	struct dma_buf_sync s = { .flags = when };

	if (!dirs || (dirs & ~(DMAFS_SYNC_READ | DMAFS_SYNC_WRITE)))
		return -EINVAL;
	if (b->kind == DMAFS_BUF_MEM)
		return 0;
	if (dirs & DMAFS_SYNC_READ)
		s.flags |= DMA_BUF_SYNC_READ;
	if (dirs & DMAFS_SYNC_WRITE)
		s.flags |= DMA_BUF_SYNC_WRITE;
	while (ioctl(b->fd, DMA_BUF_IOCTL_SYNC, &s) < 0) {
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

DMAFS_EXPORT int dmafs_buf_cpu_begin(struct dmafs_buf *b, unsigned int dirs)
{
	return buf_sync(b, dirs, DMA_BUF_SYNC_START);
}

DMAFS_EXPORT int dmafs_buf_cpu_end(struct dmafs_buf *b, unsigned int dirs)
{
	return buf_sync(b, dirs, DMA_BUF_SYNC_END);
}
