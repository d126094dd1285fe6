// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * POSIX ACLs.  With FUSE_CAP_POSIX_ACL the kernel caches ACLs and enforces
 * them; the filesystem stores them as the system.posix_acl_* xattrs and is
 * responsible for what the kernel's generic code does for local
 * filesystems: inheriting default ACLs at create time (umask applies only
 * when the parent has no default ACL), keeping the access ACL and the mode's
 * permission bits in step on chmod and on setxattr.
 *
 * All functions run under fs->lock and edit in-memory state only; callers
 * log what changed.
 */
#include <errno.h>
#include <string.h>

#include "dmafs.h"

#define ACL_XATTR_VERSION 2

enum {
	ACL_USER_OBJ = 0x01,
	ACL_USER = 0x02,
	ACL_GROUP_OBJ = 0x04,
	ACL_GROUP = 0x08,
	ACL_MASK = 0x10,
	ACL_OTHER = 0x20,
};

struct acl_entry {
	uint16_t tag;
	uint16_t perm;
	uint32_t id;
};

struct acl_hdr {
	uint32_t version;
};

const char dmafs_acl_access[] = "system.posix_acl_access";
const char dmafs_acl_default[] = "system.posix_acl_default";

/* Entries of a stored ACL (little-endian on disk), or NULL if malformed. */
static struct acl_entry *acl_parse(GBytes *b, size_t *n)
{
	gsize len;
	const uint8_t *p = g_bytes_get_data(b, &len);
	struct acl_entry *e;
	uint32_t ver;

	if (len < 4 || (len - 4) % 8)
		return NULL;
	memcpy(&ver, p, 4);
	if (le32(ver) != ACL_XATTR_VERSION)
		return NULL;
	*n = (len - 4) / 8;
	e = g_new(struct acl_entry, *n ? *n : 1);
	memcpy(e, p + 4, *n * 8);
	for (size_t i = 0; i < *n; i++) {
		e[i].tag = le16(e[i].tag);
		e[i].perm = le16(e[i].perm);
		e[i].id = le32(e[i].id);
	}
	return e;
}

static GBytes *acl_pack(const struct acl_entry *e, size_t n)
{
	uint8_t *p = g_malloc(4 + n * 8);
	uint32_t ver = cpu32(ACL_XATTR_VERSION);

	memcpy(p, &ver, 4);
	for (size_t i = 0; i < n; i++) {
		struct acl_entry d = { cpu16(e[i].tag), cpu16(e[i].perm),
				       cpu32(e[i].id) };

		memcpy(p + 4 + i * 8, &d, 8);
	}
	return g_bytes_new_take(p, 4 + n * 8);
}

/* The kernel's posix_acl_create_masq(): returns true if ACL is extended. */
static bool acl_create_masq(struct acl_entry *e, size_t n, uint32_t *mode)
{
	struct acl_entry *group_obj = NULL, *mask = NULL;
	uint32_t m = *mode;
	bool extended = false;

	for (size_t i = 0; i < n; i++) {
		switch (e[i].tag) {
		case ACL_USER_OBJ:
			e[i].perm &= (m >> 6) | ~7u;
			m &= (e[i].perm << 6) | ~0700u;
			break;
		case ACL_USER:
		case ACL_GROUP:
			extended = true;
			break;
		case ACL_GROUP_OBJ:
			group_obj = &e[i];
			break;
		case ACL_OTHER:
			e[i].perm &= m | ~7u;
			m &= e[i].perm | ~7u;
			break;
		case ACL_MASK:
			mask = &e[i];
			extended = true;
			break;
		}
	}
	if (mask) {
		mask->perm &= (m >> 3) | ~7u;
		m &= (mask->perm << 3) | ~070u;
	} else if (group_obj) {
		group_obj->perm &= (m >> 3) | ~7u;
		m &= (group_obj->perm << 3) | ~070u;
	}
	*mode = m;
	return extended;
}

int dmafs_acl_inherit(struct dmafs_fs *fs, struct dmafs_inode *dir,
		      struct dmafs_inode *in, uint32_t *mode, uint32_t umask)
{
	GBytes *def = dmafs_xattr_get(dir, dmafs_acl_default);
	struct acl_entry *e;
	size_t n;

	if (S_ISLNK(*mode))
		return 0;
	if (!def) {
		*mode &= ~umask | S_IFMT;
		return 0;
	}
	e = acl_parse(def, &n);
	if (!e) {
		*mode &= ~umask | S_IFMT;
		return 0;
	}
	if (S_ISDIR(*mode)) {
		gsize len;
		const void *d = g_bytes_get_data(def, &len);

		dmafs_xattr_set(in, dmafs_acl_default, d, len);
	}
	if (acl_create_masq(e, n, mode)) {
		GBytes *b = acl_pack(e, n);
		gsize len;
		const void *d = g_bytes_get_data(b, &len);

		dmafs_xattr_set(in, dmafs_acl_access, d, len);
		g_bytes_unref(b);
	}
	g_free(e);
	return 0;
}

void dmafs_acl_chmod(struct dmafs_fs *fs, struct dmafs_inode *in)
{
	GBytes *cur = dmafs_xattr_get(in, dmafs_acl_access), *b;
	struct acl_entry *e, *group_obj = NULL, *mask = NULL;
	const void *d;
	gsize len;
	size_t n;

	if (!cur || !(e = acl_parse(cur, &n)))
		return;
	for (size_t i = 0; i < n; i++) {
		switch (e[i].tag) {
		case ACL_USER_OBJ:
			e[i].perm = (in->mode >> 6) & 7;
			break;
		case ACL_GROUP_OBJ:
			group_obj = &e[i];
			break;
		case ACL_MASK:
			mask = &e[i];
			break;
		case ACL_OTHER:
			e[i].perm = in->mode & 7;
			break;
		}
	}
	if (mask)
		mask->perm = (in->mode >> 3) & 7;
	else if (group_obj)
		group_obj->perm = (in->mode >> 3) & 7;
	b = acl_pack(e, n);
	d = g_bytes_get_data(b, &len);
	dmafs_xattr_set(in, dmafs_acl_access, d, len);
	dmafs_log_xattr(fs, DMAFS_REC_XATTR_SET, in->ino, dmafs_acl_access, d,
			len);
	g_bytes_unref(b);
	g_free(e);
}

int dmafs_acl_access_set(struct dmafs_fs *fs, struct dmafs_inode *in,
			 const void *value, size_t size, bool *store)
{
	GBytes *b = g_bytes_new(value, size);
	size_t n = 0;
	struct acl_entry *e = acl_parse(b, &n);
	uint32_t mode = 0;
	bool extended = false;

	g_bytes_unref(b);
	if (!e)
		return -EINVAL;
	/* The kernel's posix_acl_equiv_mode(). */
	for (size_t i = 0; i < n; i++) {
		switch (e[i].tag) {
		case ACL_USER_OBJ:
			mode |= (e[i].perm & 7) << 6;
			break;
		case ACL_GROUP_OBJ:
			mode |= (e[i].perm & 7) << 3;
			break;
		case ACL_OTHER:
			mode |= e[i].perm & 7;
			break;
		case ACL_MASK:
			mode = (mode & ~070u) | ((e[i].perm & 7) << 3);
			extended = true;
			break;
		case ACL_USER:
		case ACL_GROUP:
			extended = true;
			break;
		default:
			g_free(e);
			return -EINVAL;
		}
	}
	g_free(e);
	in->mode = (in->mode & ~0777u) | mode;
	*store = extended;
	return 0;
}
