// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * dmafs: the daemon's entry point and FUSE operation table.
 *
 * Every handler here is a thin wrapper: it decodes the request, calls a
 * worker that returns 0 or a negative errno, and replies exactly once.  The
 * workers take fs->lock for metadata; data I/O happens in data.c with the
 * inode's io_lock held.  Lock order: inode->io_lock, then fs->commit_lock,
 * then fs->lock (see dmafs.h).
 *
 * Inode numbers are FUSE node ids (the root is 1) and are never reused.
 * The kernel does permission checks (default_permissions) and caches POSIX
 * ACLs (FUSE_CAP_POSIX_ACL); this file implements what the VFS leaves to a
 * filesystem: setgid directories, ACL inheritance, timestamps, link counts.
 *
 * With the kernel extension active (kext.c, docs/kernel-extension.md),
 * O_DIRECT opens install the file's extent map in the kernel before the
 * reply, operations that change a mapped file's extents reinstall it, and
 * the virtual xattr user.dmafs.mode says which mode the daemon runs in.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "dmafs.h"

#define DMAFS_LINK_MAX 65000
/* Attribute and entry cache lifetime: every change goes through us. */
#define CACHE_TIMEOUT 1.0

static struct dmafs_fs the_fs;
static bool use_syslog;
/* For op_init's probe of the kernel extension; set before the loop runs. */
static struct fuse_session *the_se;
static bool opt_nokext;

/*
 * fi->fh of a regular file: what the handle holds.  FH_KMAP: it was opened
 * O_DIRECT with the kernel extension active and counts in kmap_opens;
 * FH_KMAP_WRITE: and for writing, so the kernel may write through the map.
 */
#define FH_KMAP		(1u << 0)
#define FH_KMAP_WRITE	(1u << 1)

static struct dmafs_fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- helpers (fs->lock held) ---- */

static int fs_writable(struct dmafs_fs *fs)
{
	if (fs->ro)
		return -EROFS;
	return dmafs_log_error(fs) ? -EIO : 0;
}

static int get_inode(struct dmafs_fs *fs, fuse_ino_t ino,
		     struct dmafs_inode **out)
{
	*out = dmafs_inode_get(fs, ino);
	return *out ? 0 : -ESTALE;
}

static int get_dir(struct dmafs_fs *fs, fuse_ino_t ino,
		   struct dmafs_inode **out)
{
	int ret = get_inode(fs, ino, out);

	if (!ret && !S_ISDIR((*out)->mode))
		ret = -ENOTDIR;
	return ret;
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (len > DMAFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (!len || strchr(name, '/'))
		return -EINVAL;
	return 0;
}

/* Can dir take one more entry?  Cookies are never reused (readdir). */
static int dir_room(struct dmafs_inode *dir)
{
	return dir->next_cookie < DMAFS_COOKIE_MAX ? 0 : -ENOSPC;
}

static void fill_entry(struct dmafs_fs *fs, struct dmafs_inode *in,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->ino;
	e->generation = in->generation;
	e->attr_timeout = CACHE_TIMEOUT;
	e->entry_timeout = CACHE_TIMEOUT;
	dmafs_inode_stat(fs, in, &e->attr);
	in->nlookup++;
}

/*
 * A directory's times and link count only need to reach the chunk that
 * holds the entry change, and the commit that seals that chunk appends
 * every dirty inode to it: marking the parent dirty is enough, and saves
 * a record per create in big directories.
 */
static void touch_dir(struct dmafs_fs *fs, struct dmafs_inode *dir)
{
	dmafs_now(&dir->mtime);
	dir->ctime = dir->mtime;
	dmafs_mark_dirty(fs, dir);
}

/* Drop an inode that has no name and no kernel reference left. */
static void maybe_evict(struct dmafs_fs *fs, struct dmafs_inode *in)
{
	if (in->nlink || in->nlookup || in->ino == DMAFS_ROOT_INO)
		return;
	dmafs_data_free_all(fs, in);
	dmafs_log_inode_del(fs, in->ino);
	if (in->dirty)
		g_hash_table_remove(fs->dirty, in);
	g_hash_table_remove(fs->inodes, &in->ino);
	fs->ninodes--;
	dmafs_inode_free(in);
}

/* relatime: update atime if it is older than mtime/ctime or a day old. */
static void touch_atime(struct dmafs_fs *fs, struct dmafs_inode *in)
{
	struct timespec now;

	if (fs->ro)
		return;
	dmafs_now(&now);
	if (in->atime.tv_sec > in->mtime.tv_sec &&
	    in->atime.tv_sec > in->ctime.tv_sec &&
	    now.tv_sec - in->atime.tv_sec < 86400)
		return;
	in->atime = now;
	dmafs_mark_dirty(fs, in);
}

/* ---- namespace operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct dmafs_fs *fs = userdata;

	conn->want |= FUSE_CAP_DONT_MASK | FUSE_CAP_POSIX_ACL;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* The mount is up and INIT has arrived: the ioctls can be used. */
	dmafs_kext_start(fs, fuse_session_fd(the_se), opt_nokext);
	if (fs->ro)
		return;
	/*
	 * The log we replayed ended at a chunk that is not valid; chunks
	 * beyond it must never be mistaken for new ones.  A checkpoint starts
	 * a new log session before anything is appended (format.h).
	 */
	if (fs->log_chunks || fs->log_stale || fs->orphans)
		dmafs_log_checkpoint(fs);
	dmafs_log_start_flusher(fs);
}

static void op_destroy(void *userdata)
{
	struct dmafs_fs *fs = userdata;

	dmafs_kext_stop(fs);
	dmafs_log_stop_flusher(fs);
	if (!fs->ro && !dmafs_log_error(fs)) {
		dmafs_log_commit(fs);
		dmafs_log_checkpoint(fs);
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dmafs_fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct dmafs_inode *dir, *in = NULL;
	struct dmafs_dirent *d;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_dir(fs, parent, &dir);
	if (!ret)
		ret = check_name(name);
	if (!ret) {
		d = dmafs_dir_lookup(dir, name);
		in = d ? dmafs_inode_get(fs, d->ino) : NULL;
		ret = in ? 0 : -ENOENT;
	}
	if (!ret)
		fill_entry(fs, in, &e);
	g_mutex_unlock(&fs->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, &e);
}

static void forget_one(struct dmafs_fs *fs, fuse_ino_t ino, uint64_t n)
{
	struct dmafs_inode *in = dmafs_inode_get(fs, ino);

	if (!in)
		return;
	in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
	if (!fs->ro)
		maybe_evict(fs, in);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct dmafs_fs *fs = req_fs(req);

	g_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	g_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct dmafs_fs *fs = req_fs(req);

	g_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	g_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	struct stat st;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret)
		dmafs_inode_stat(fs, in, &st);
	g_mutex_unlock(&fs->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, CACHE_TIMEOUT);
}

static int do_setattr(struct dmafs_fs *fs, fuse_ino_t ino, struct stat *attr,
		      int to_set, struct stat *out)
{
	struct dmafs_inode *in;
	struct timespec now;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret)
		ret = fs_writable(fs);
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE) && !S_ISREG(in->mode))
		ret = S_ISDIR(in->mode) ? -EISDIR : -EINVAL;
	g_mutex_unlock(&fs->lock);
	if (ret)
		return ret;

	if (to_set & FUSE_SET_ATTR_SIZE) {
		g_rw_lock_writer_lock(&in->io_lock);
		ret = dmafs_data_truncate(fs, in, attr->st_size);
		/* The kernel dropped the map of a truncate that it sent. */
		dmafs_kext_refresh(fs, in, true);
		g_rw_lock_writer_unlock(&in->io_lock);
		if (ret)
			return ret;
	}
	g_mutex_lock(&fs->lock);
	dmafs_now(&now);
	if (to_set & FUSE_SET_ATTR_MODE) {
		in->mode = (in->mode & S_IFMT) | (attr->st_mode & 07777);
		dmafs_acl_chmod(fs, in);
	}
	if (to_set & FUSE_SET_ATTR_UID)
		in->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		in->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		in->atime = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		in->atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		in->mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		in->mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_SIZE && !(to_set & FUSE_SET_ATTR_MTIME))
		in->mtime = now;
	if (to_set & FUSE_SET_ATTR_CTIME)
		in->ctime = attr->st_ctim;
	else
		in->ctime = now;
	dmafs_log_inode(fs, in);
	dmafs_inode_stat(fs, in, out);
	g_mutex_unlock(&fs->lock);
	return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct stat st;
	int ret = do_setattr(req_fs(req), ino, attr, to_set, &st);

	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, CACHE_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	char *target = NULL;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret && !S_ISLNK(in->mode))
		ret = -EINVAL;
	if (!ret) {
		target = g_strdup(in->symlink);
		touch_atime(fs, in);
	}
	g_mutex_unlock(&fs->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_readlink(req, target);
	g_free(target);
}

/* Is the caller a member of group gid? */
static bool in_group(fuse_req_t req, gid_t gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[64];
	int n;

	if (ctx->gid == gid)
		return true;
	n = fuse_req_getgroups(req, 64, groups);
	for (int i = 0; i < n && i < 64; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

static int do_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		     uint32_t mode, dev_t rdev, const char *link,
		     struct fuse_entry_param *e)
{
	struct dmafs_fs *fs = req_fs(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct dmafs_inode *dir, *in;
	struct timespec now;
	int ret;

	ret = check_name(name);
	if (!ret && link && strlen(link) > DMAFS_SYMLINK_MAX)
		ret = -ENAMETOOLONG;
	if (ret)
		return ret;
	g_mutex_lock(&fs->lock);
	ret = get_dir(fs, parent, &dir);
	if (!ret)
		ret = fs_writable(fs);
	if (!ret && dmafs_dir_lookup(dir, name))
		ret = -EEXIST;
	if (!ret && S_ISDIR(mode) && dir->nlink >= DMAFS_LINK_MAX)
		ret = -EMLINK;
	if (!ret)
		ret = dir_room(dir);
	if (!ret && fs->next_ino >= DMAFS_INO_MAX)
		ret = -ENOSPC;
	if (ret)
		goto out_unlock;

	in = dmafs_inode_new(fs, fs->next_ino, mode);
	in->uid = ctx->uid;
	in->gid = ctx->gid;
	in->rdev = rdev;
	if (dir->mode & S_ISGID) {
		/* setgid directories pass on their group, and to subdirectories the bit */
		in->gid = dir->gid;
		if (S_ISDIR(mode))
			mode |= S_ISGID;
	} else if ((mode & S_ISGID) && !S_ISDIR(mode) && ctx->uid != 0 &&
		   !in_group(req, in->gid)) {
		mode &= ~S_ISGID;
	}
	dmafs_acl_inherit(fs, dir, in, &mode, ctx->umask);
	in->mode = mode;
	in->nlink = S_ISDIR(mode) ? 2 : 1;
	dmafs_now(&now);
	in->atime = in->mtime = in->ctime = in->btime = now;
	if (link) {
		in->symlink = g_strdup(link);
		in->size = strlen(link);
	}
	if (S_ISDIR(mode))
		in->parent = dir->ino;

	dmafs_log_inode(fs, in);
	if (link)
		dmafs_log_symlink(fs, in->ino, link);
	if (in->xattrs) {
		GHashTableIter it;
		gpointer k, v;

		g_hash_table_iter_init(&it, in->xattrs);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			gsize len;
			const void *d = g_bytes_get_data(v, &len);

			dmafs_log_xattr(fs, DMAFS_REC_XATTR_SET, in->ino, k, d,
					len);
		}
	}
	dmafs_dir_add(dir, name, in->ino, dmafs_dtype(mode), 0);
	dmafs_log_dirent(fs, DMAFS_REC_DIRENT_ADD, dir->ino, name, in->ino,
			 dmafs_dir_lookup(dir, name)->cookie, dmafs_dtype(mode));
	if (S_ISDIR(mode))
		dir->nlink++;
	touch_dir(fs, dir);
	fill_entry(fs, in, e);
out_unlock:
	g_mutex_unlock(&fs->lock);
	if (!ret)
		dmafs_log_maybe_commit(fs);
	return ret;
}

static void reply_entry_or_err(fuse_req_t req, int ret,
			       struct fuse_entry_param *e)
{
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_entry(req, e);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct fuse_entry_param e;
	int ret = -EINVAL;

	switch (mode & S_IFMT) {
	case S_IFREG: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK:
		ret = do_create(req, parent, name, mode, rdev, NULL, &e);
		break;
	}
	reply_entry_or_err(req, ret, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fuse_entry_param e;
	int ret = do_create(req, parent, name, S_IFDIR | (mode & 07777), 0,
			    NULL, &e);

	reply_entry_or_err(req, ret, &e);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct fuse_entry_param e;
	int ret = do_create(req, parent, name, S_IFLNK | 0777, 0, link, &e);

	reply_entry_or_err(req, ret, &e);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct dmafs_inode *in = NULL;
	int ret = do_create(req, parent, name, S_IFREG | (mode & 07777), 0,
			    NULL, &e);

	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = 0;
	if ((fi->flags & O_DIRECT) && fs->kext.active) {
		g_mutex_lock(&fs->lock);
		in = dmafs_inode_get(fs, e.ino);
		g_mutex_unlock(&fs->lock);
		/* Cannot fail: an empty new file has nothing to convert. */
		g_rw_lock_writer_lock(&in->io_lock);
		dmafs_kext_open(fs, in, true);
		g_rw_lock_writer_unlock(&in->io_lock);
		fi->fh = FH_KMAP | ((fi->flags & O_ACCMODE) != O_RDONLY ?
				    FH_KMAP_WRITE : 0);
	}
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		/* The opener was interrupted: drop the reference we gave. */
		if (in) {
			g_rw_lock_writer_lock(&in->io_lock);
			dmafs_kext_close(fs, in, false, true);
			g_rw_lock_writer_unlock(&in->io_lock);
		}
		g_mutex_lock(&fs->lock);
		forget_one(fs, e.ino, 1);
		g_mutex_unlock(&fs->lock);
	}
}

static int do_unlink(struct dmafs_fs *fs, fuse_ino_t parent, const char *name,
		     bool rmdir)
{
	struct dmafs_inode *dir, *in = NULL;
	struct dmafs_dirent *d;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_dir(fs, parent, &dir);
	if (!ret)
		ret = fs_writable(fs);
	if (!ret)
		ret = check_name(name);
	if (!ret) {
		d = dmafs_dir_lookup(dir, name);
		in = d ? dmafs_inode_get(fs, d->ino) : NULL;
		ret = in ? 0 : -ENOENT;
	}
	if (!ret && rmdir && !S_ISDIR(in->mode))
		ret = -ENOTDIR;
	if (!ret && !rmdir && S_ISDIR(in->mode))
		ret = -EISDIR;
	if (!ret && rmdir && g_hash_table_size(in->dents))
		ret = -ENOTEMPTY;
	if (ret)
		goto out_unlock;

	dmafs_dir_remove(dir, name);
	dmafs_log_dirent(fs, DMAFS_REC_DIRENT_DEL, dir->ino, name, 0, 0, 0);
	if (rmdir) {
		in->nlink = 0;
		dir->nlink--;
	} else {
		in->nlink--;
	}
	dmafs_now(&in->ctime);
	dmafs_log_inode(fs, in);
	touch_dir(fs, dir);
	maybe_evict(fs, in);
out_unlock:
	g_mutex_unlock(&fs->lock);
	if (!ret)
		dmafs_log_maybe_commit(fs);
	return ret;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -do_unlink(req_fs(req), parent, name, false));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -do_unlink(req_fs(req), parent, name, true));
}

/* Is dir equal to or below anc?  Walks ".." up to the root. */
static bool is_ancestor(struct dmafs_fs *fs, uint64_t anc, uint64_t dir)
{
	while (dir != DMAFS_ROOT_INO) {
		struct dmafs_inode *in = dmafs_inode_get(fs, dir);

		if (dir == anc)
			return true;
		if (!in || !in->parent)
			return false;
		dir = in->parent;
	}
	return anc == DMAFS_ROOT_INO;
}

static void move_dir(struct dmafs_fs *fs, struct dmafs_inode *in,
		     struct dmafs_inode *from, struct dmafs_inode *to)
{
	if (!S_ISDIR(in->mode) || from == to)
		return;
	from->nlink--;
	to->nlink++;
	in->parent = to->ino;
}

static int do_rename(struct dmafs_fs *fs, fuse_ino_t parent, const char *name,
		     fuse_ino_t newparent, const char *newname,
		     unsigned int flags)
{
	struct dmafs_inode *dir, *ndir, *src = NULL, *dst = NULL;
	struct dmafs_dirent *sd, *dd;
	uint64_t scookie, dcookie;
	int ret;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)))
		return -EINVAL;
	ret = check_name(name);
	if (!ret)
		ret = check_name(newname);
	if (ret)
		return ret;
	g_mutex_lock(&fs->lock);
	ret = get_dir(fs, parent, &dir);
	if (!ret)
		ret = get_dir(fs, newparent, &ndir);
	if (!ret)
		ret = fs_writable(fs);
	if (ret)
		goto out_unlock;
	sd = dmafs_dir_lookup(dir, name);
	dd = dmafs_dir_lookup(ndir, newname);
	src = sd ? dmafs_inode_get(fs, sd->ino) : NULL;
	dst = dd ? dmafs_inode_get(fs, dd->ino) : NULL;
	ret = -ENOENT;
	if (!src || ((flags & RENAME_EXCHANGE) && !dst))
		goto out_unlock;
	ret = -EEXIST;
	if ((flags & RENAME_NOREPLACE) && dst)
		goto out_unlock;
	ret = 0;
	if (src == dst)
		goto out_unlock;	/* POSIX: links to one file, nothing to do */
	ret = -EINVAL;
	if (S_ISDIR(src->mode) && is_ancestor(fs, src->ino, ndir->ino))
		goto out_unlock;
	if (dst && (flags & RENAME_EXCHANGE) && S_ISDIR(dst->mode) &&
	    is_ancestor(fs, dst->ino, dir->ino))
		goto out_unlock;
	if (dst && !(flags & RENAME_EXCHANGE)) {
		ret = -ENOTDIR;
		if (S_ISDIR(src->mode) && !S_ISDIR(dst->mode))
			goto out_unlock;
		ret = -EISDIR;
		if (!S_ISDIR(src->mode) && S_ISDIR(dst->mode))
			goto out_unlock;
		ret = -ENOTEMPTY;
		if (S_ISDIR(dst->mode) && g_hash_table_size(dst->dents))
			goto out_unlock;
	}
	ret = -EMLINK;
	if (S_ISDIR(src->mode) && dir != ndir && !dst &&
	    ndir->nlink >= DMAFS_LINK_MAX)
		goto out_unlock;
	ret = flags & RENAME_EXCHANGE ? 0 : dir_room(ndir);
	if (ret)
		goto out_unlock;

	/* Every record of the rename goes into one chunk: all or nothing. */
	scookie = sd->cookie;
	dcookie = dst ? dd->cookie : 0;
	if (dst) {
		dmafs_dir_remove(ndir, newname);
		dmafs_log_dirent(fs, DMAFS_REC_DIRENT_DEL, ndir->ino, newname,
				 0, 0, 0);
	}
	dmafs_dir_remove(dir, name);
	dmafs_log_dirent(fs, DMAFS_REC_DIRENT_DEL, dir->ino, name, 0, 0, 0);
	if (flags & RENAME_EXCHANGE) {
		/* Both names keep their readdir positions. */
		dmafs_dir_add(dir, name, dst->ino, dmafs_dtype(dst->mode),
			      scookie);
		dmafs_dir_add(ndir, newname, src->ino, dmafs_dtype(src->mode),
			      dcookie);
		dmafs_log_dirent(fs, DMAFS_REC_DIRENT_ADD, dir->ino, name,
				 dst->ino, scookie, dmafs_dtype(dst->mode));
		dmafs_log_dirent(fs, DMAFS_REC_DIRENT_ADD, ndir->ino, newname,
				 src->ino, dcookie, dmafs_dtype(src->mode));
		move_dir(fs, src, dir, ndir);
		move_dir(fs, dst, ndir, dir);
	} else {
		dmafs_dir_add(ndir, newname, src->ino, dmafs_dtype(src->mode),
			      0);
		dmafs_log_dirent(fs, DMAFS_REC_DIRENT_ADD, ndir->ino, newname,
				 src->ino, dmafs_dir_lookup(ndir, newname)->cookie,
				 dmafs_dtype(src->mode));
		move_dir(fs, src, dir, ndir);
		if (dst) {
			if (S_ISDIR(dst->mode)) {
				dst->nlink = 0;
				ndir->nlink--;
			} else {
				dst->nlink--;
			}
		}
	}
	dmafs_now(&src->ctime);
	dmafs_log_inode(fs, src);
	if (dst) {
		dst->ctime = src->ctime;
		dmafs_log_inode(fs, dst);
	}
	touch_dir(fs, dir);
	if (ndir != dir) {
		touch_dir(fs, ndir);
	}
	if (dst && !(flags & RENAME_EXCHANGE))
		maybe_evict(fs, dst);
out_unlock:
	g_mutex_unlock(&fs->lock);
	if (!ret)
		dmafs_log_maybe_commit(fs);
	return ret;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, -do_rename(req_fs(req), parent, name, newparent,
				       newname, flags));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in, *dir;
	struct fuse_entry_param e;
	int ret;

	ret = check_name(newname);
	if (ret)
		goto out;
	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret)
		ret = get_dir(fs, newparent, &dir);
	if (!ret)
		ret = fs_writable(fs);
	if (!ret && S_ISDIR(in->mode))
		ret = -EPERM;
	if (!ret && dmafs_dir_lookup(dir, newname))
		ret = -EEXIST;
	if (!ret && in->nlink >= DMAFS_LINK_MAX)
		ret = -EMLINK;
	if (!ret)
		ret = dir_room(dir);
	if (!ret && !in->nlink)
		ret = -ENOENT;
	if (!ret) {
		dmafs_dir_add(dir, newname, in->ino, dmafs_dtype(in->mode), 0);
		dmafs_log_dirent(fs, DMAFS_REC_DIRENT_ADD, dir->ino, newname,
				 in->ino,
				 dmafs_dir_lookup(dir, newname)->cookie,
				 dmafs_dtype(in->mode));
		in->nlink++;
		dmafs_now(&in->ctime);
		dmafs_log_inode(fs, in);
		touch_dir(fs, dir);
		fill_entry(fs, in, &e);
	}
	g_mutex_unlock(&fs->lock);
out:
	reply_entry_or_err(req, ret, &e);
}

/* ---- files ---- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret && S_ISDIR(in->mode))
		ret = -EISDIR;
	if (!ret && (fi->flags & O_ACCMODE) != O_RDONLY && fs->ro)
		ret = -EROFS;
	if (!ret && (fi->flags & O_TRUNC) && S_ISREG(in->mode))
		ret = fs_writable(fs);
	if (!ret)
		in->nopen++;
	g_mutex_unlock(&fs->lock);
	/* libfuse asks for FUSE_ATOMIC_O_TRUNC: truncation is ours. */
	if (!ret && (fi->flags & O_TRUNC) && S_ISREG(in->mode)) {
		struct stat attr = { .st_size = 0 }, st;

		ret = do_setattr(fs, ino, &attr, FUSE_SET_ATTR_SIZE, &st);
	}
	fi->fh = 0;
	if (!ret && (fi->flags & O_DIRECT) && S_ISREG(in->mode) &&
	    fs->kext.active) {
		/* The map is in the kernel before the opener can use it. */
		g_rw_lock_writer_lock(&in->io_lock);
		ret = dmafs_kext_open(fs, in, false);
		g_rw_lock_writer_unlock(&in->io_lock);
		if (!ret)
			fi->fh = FH_KMAP | ((fi->flags & O_ACCMODE) != O_RDONLY ?
					    FH_KMAP_WRITE : 0);
	}
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	/*
	 * All writes come through us, so the page cache stays valid; unless
	 * the kernel may have written to the device through a map.
	 */
	g_mutex_lock(&fs->lock);
	fi->keep_cache = !in->kmap_used;
	g_mutex_unlock(&fs->lock);
	if (fuse_reply_open(req, fi) == -ENOENT && (fi->fh & FH_KMAP)) {
		/* The opener was interrupted: no release will come. */
		g_rw_lock_writer_lock(&in->io_lock);
		dmafs_kext_close(fs, in, false, true);
		g_rw_lock_writer_unlock(&in->io_lock);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret && in->nopen)
		in->nopen--;
	g_mutex_unlock(&fs->lock);
	if (!ret && (fi->fh & FH_KMAP)) {
		g_rw_lock_writer_lock(&in->io_lock);
		dmafs_kext_close(fs, in, fi->fh & FH_KMAP_WRITE, true);
		g_rw_lock_writer_unlock(&in->io_lock);
	}
	fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	size_t start, len;
	void *buf;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret && !S_ISREG(in->mode))
		ret = -EINVAL;
	g_mutex_unlock(&fs->lock);
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	g_rw_lock_reader_lock(&in->io_lock);
	ret = dmafs_data_read(fs, in, off, size, &buf, &start, &len);
	g_rw_lock_reader_unlock(&in->io_lock);
	if (ret) {
		fuse_reply_err(req, -ret);
		return;
	}
	g_mutex_lock(&fs->lock);
	touch_atime(fs, in);
	g_mutex_unlock(&fs->lock);
	fuse_reply_buf(req, buf ? (char *)buf + start : NULL, len);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *data,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret)
		ret = fs_writable(fs);
	if (!ret && !S_ISREG(in->mode))
		ret = -EINVAL;
	g_mutex_unlock(&fs->lock);
	if (!ret) {
		g_rw_lock_writer_lock(&in->io_lock);
		ret = dmafs_data_write(fs, in, data, size, off);
		/* New blocks or a new size: the kernel's map is short of them. */
		if (!ret)
			dmafs_kext_refresh(fs, in, false);
		g_rw_lock_writer_unlock(&in->io_lock);
	}
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	bool flush = false;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret)
		flush = in->kmap_used;
	g_mutex_unlock(&fs->lock);
	if (!ret && fi && (fi->fh & FH_KMAP_WRITE)) {
		g_rw_lock_writer_lock(&in->io_lock);
		dmafs_kext_close(fs, in, true, false);
		g_rw_lock_writer_unlock(&in->io_lock);
	}
	/*
	 * One log for everything: committing it covers this file.  What the
	 * kernel wrote through a map is in the device's cache, which the
	 * commit flushes only when it has something to log: flush anyway.
	 */
	ret = flush ? dmafs_log_commit_flush(fs) : dmafs_log_commit(fs);
	fuse_reply_err(req, -ret);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret)
		ret = fs_writable(fs);
	if (!ret && !S_ISREG(in->mode))
		ret = S_ISDIR(in->mode) ? -EISDIR : -ENODEV;
	g_mutex_unlock(&fs->lock);
	if (!ret && (off < 0 || len <= 0))
		ret = -EINVAL;
	if (!ret) {
		g_rw_lock_writer_lock(&in->io_lock);
		ret = dmafs_data_fallocate(fs, in, mode, off, len);
		/* The kernel dropped the map of a fallocate that it sent. */
		dmafs_kext_refresh(fs, in, true);
		g_rw_lock_writer_unlock(&in->io_lock);
		dmafs_log_maybe_commit(fs);
	}
	fuse_reply_err(req, -ret);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	uint64_t res = 0;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret && !S_ISREG(in->mode))
		ret = -EINVAL;
	g_mutex_unlock(&fs->lock);
	if (!ret && whence != SEEK_DATA && whence != SEEK_HOLE)
		ret = -EINVAL;
	if (!ret && off < 0)
		ret = -ENXIO;
	if (!ret)
		ret = dmafs_data_seek(fs, in, off, whence, &res);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_lseek(req, res);
}

/* ---- directories ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_dir(fs, ino, &in);
	g_mutex_unlock(&fs->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dmafs_fs *fs = req_fs(req);
	char *buf = g_malloc(size);
	struct dmafs_inode *dir;
	size_t pos = 0;
	struct stat st;
	GTreeNode *n;
	uint64_t cookie = off;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_dir(fs, ino, &dir);
	if (ret)
		goto out_unlock;
	memset(&st, 0, sizeof(st));
	/* Offsets 1 and 2 are "." and ".."; entries use their cookies. */
	if (off < 1) {
		st.st_ino = dir->ino;
		st.st_mode = S_IFDIR;
		pos += fuse_add_direntry(req, buf + pos, size - pos, ".", &st, 1);
	}
	if (off < 2 && pos <= size) {
		size_t l;

		st.st_ino = dir->parent ? dir->parent : dir->ino;
		st.st_mode = S_IFDIR;
		l = fuse_add_direntry(req, buf + pos, size - pos, "..", &st, 2);
		if (pos + l > size)
			goto out_unlock;
		pos += l;
	}
	for (n = g_tree_upper_bound(dir->dents_by_cookie, &cookie); n;
	     n = g_tree_node_next(n)) {
		struct dmafs_dirent *d = g_tree_node_value(n);
		size_t l;

		st.st_ino = d->ino;
		st.st_mode = (mode_t)d->dtype << 12;
		l = fuse_add_direntry(req, buf + pos, size - pos, d->name, &st,
				      d->cookie);
		if (pos + l > size)
			break;
		pos += l;
	}
	touch_atime(fs, dir);
out_unlock:
	g_mutex_unlock(&fs->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_buf(req, buf, pos);
	g_free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	fuse_reply_err(req, -dmafs_log_commit(req_fs(req)));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct dmafs_fs *fs = req_fs(req);
	uint64_t total = le64(fs->sb.total_blocks) - le64(fs->sb.data_start) - 1;
	uint64_t free = dmafs_alloc_free_blocks(fs->alloc);
	struct statvfs sv = { 0 };

	sv.f_bsize = DMAFS_BLOCK_SIZE;
	sv.f_frsize = DMAFS_BLOCK_SIZE;
	sv.f_blocks = total;
	sv.f_bfree = free;
	sv.f_bavail = free;
	g_mutex_lock(&fs->lock);
	/* Inodes cost only checkpoint space: about 16 fit in a block. */
	sv.f_ffree = MIN(free * 16, (uint64_t)UINT32_MAX);
	sv.f_files = fs->ninodes + sv.f_ffree;
	sv.f_favail = sv.f_ffree;
	g_mutex_unlock(&fs->lock);
	sv.f_namemax = DMAFS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

static int xattr_name_ok(const char *name)
{
	static const char *const prefixes[] = { "user.", "trusted.",
						"security." };

	if (strlen(name) > DMAFS_XATTR_NAME_MAX)
		return -ERANGE;
	if (!strcmp(name, dmafs_acl_access) || !strcmp(name, dmafs_acl_default))
		return 0;
	for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++)
		if (g_str_has_prefix(name, prefixes[i]) &&
		    name[strlen(prefixes[i])])
			return 0;
	return -EOPNOTSUPP;
}

static int do_setxattr(struct dmafs_fs *fs, fuse_ino_t ino, const char *name,
		       const char *value, size_t size, int flags)
{
	struct dmafs_inode *in;
	bool store = true, is_access = !strcmp(name, dmafs_acl_access);
	int ret = xattr_name_ok(name);

	if (!ret && !strcmp(name, DMAFS_KEXT_MODE_XATTR))
		ret = -EPERM;		/* virtual, read-only */

	if (!ret && size > DMAFS_XATTR_VALUE_MAX)
		ret = -E2BIG;
	if (ret)
		return ret;
	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret)
		ret = fs_writable(fs);
	if (ret)
		goto out_unlock;
	if ((flags & XATTR_CREATE) && dmafs_xattr_get(in, name))
		ret = -EEXIST;
	else if ((flags & XATTR_REPLACE) && !dmafs_xattr_get(in, name))
		ret = -ENODATA;
	if (!ret && is_access)
		ret = dmafs_acl_access_set(fs, in, value, size, &store);
	if (ret)
		goto out_unlock;
	if (store) {
		dmafs_xattr_set(in, name, value, size);
		dmafs_log_xattr(fs, DMAFS_REC_XATTR_SET, in->ino, name, value,
				size);
	} else if (!dmafs_xattr_del(in, name)) {
		/* An ACL that says no more than the mode is not kept. */
		dmafs_log_xattr(fs, DMAFS_REC_XATTR_DEL, in->ino, name, NULL,
				0);
	}
	dmafs_now(&in->ctime);
	dmafs_log_inode(fs, in);
out_unlock:
	g_mutex_unlock(&fs->lock);
	if (!ret)
		dmafs_log_maybe_commit(fs);
	return ret;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	fuse_reply_err(req, -do_setxattr(req_fs(req), ino, name, value, size,
					 flags));
}

/* Reply with data, or its size when the caller asked for size 0. */
static void reply_sized(fuse_req_t req, int ret, const void *data, size_t len,
			size_t size)
{
	if (ret)
		fuse_reply_err(req, -ret);
	else if (!size)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	GBytes *v = NULL;
	gsize len = 0;
	const void *data = NULL;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret && !strcmp(name, DMAFS_KEXT_MODE_XATTR)) {
		/* Virtual: which mode the daemon runs in, on every inode. */
		const char *mode = dmafs_kext_mode(fs);

		g_mutex_unlock(&fs->lock);
		reply_sized(req, 0, mode, strlen(mode), size);
		return;
	}
	if (!ret) {
		v = dmafs_xattr_get(in, name);
		ret = v ? 0 : -ENODATA;
	}
	if (v) {
		v = g_bytes_ref(v);
		data = g_bytes_get_data(v, &len);
	}
	g_mutex_unlock(&fs->lock);
	reply_sized(req, ret, data, len, size);
	if (v)
		g_bytes_unref(v);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct dmafs_fs *fs = req_fs(req);
	GString *names = g_string_new(NULL);
	struct dmafs_inode *in;
	int ret;

	g_mutex_lock(&fs->lock);
	ret = get_inode(fs, ino, &in);
	if (!ret && in->xattrs) {
		GHashTableIter it;
		gpointer k;

		/* As on local filesystems, trusted.* is for CAP_SYS_ADMIN only. */
		bool admin = fuse_req_ctx(req)->uid == 0;

		g_hash_table_iter_init(&it, in->xattrs);
		while (g_hash_table_iter_next(&it, &k, NULL))
			if (admin || !g_str_has_prefix(k, "trusted."))
				g_string_append_len(names, k, strlen(k) + 1);
	}
	g_mutex_unlock(&fs->lock);
	reply_sized(req, ret, names->str, names->len, size);
	g_string_free(names, TRUE);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct dmafs_fs *fs = req_fs(req);
	struct dmafs_inode *in;
	int ret = xattr_name_ok(name);

	if (!ret && !strcmp(name, DMAFS_KEXT_MODE_XATTR))
		ret = -EPERM;		/* virtual, read-only */
	g_mutex_lock(&fs->lock);
	if (!ret)
		ret = get_inode(fs, ino, &in);
	if (!ret)
		ret = fs_writable(fs);
	if (!ret)
		ret = dmafs_xattr_del(in, name);
	if (!ret) {
		dmafs_log_xattr(fs, DMAFS_REC_XATTR_DEL, in->ino, name, NULL, 0);
		dmafs_now(&in->ctime);
		dmafs_log_inode(fs, in);
	}
	g_mutex_unlock(&fs->lock);
	fuse_reply_err(req, -ret);
}

static const struct fuse_lowlevel_ops dmafs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
};

/* ---- main ---- */

struct dmafs_opts {
	char *device;
	char *mountpoint;
	bool ro;
	int nonopts;
};

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct dmafs_opts *o = data;

	if (key == FUSE_OPT_KEY_NONOPT) {
		if (o->nonopts++ == 0) {
			o->device = g_strdup(arg);
			return 0;
		}
		return 1;
	}
	if (key == FUSE_OPT_KEY_OPT && !strcmp(arg, "ro"))
		o->ro = true;
	if (key == FUSE_OPT_KEY_OPT && !strcmp(arg, "nokext")) {
		opt_nokext = true;
		return 0;	/* ours, not a FUSE option */
	}
	return 1;
}

static void log_handler(const gchar *domain, GLogLevelFlags level,
			const gchar *msg, gpointer data)
{
	static const struct {
		GLogLevelFlags level;
		int prio;
		const char *name;
	} map[] = {
		{ G_LOG_LEVEL_ERROR, LOG_ERR, "error" },
		{ G_LOG_LEVEL_CRITICAL, LOG_CRIT, "critical" },
		{ G_LOG_LEVEL_WARNING, LOG_WARNING, "warning" },
		{ G_LOG_LEVEL_MESSAGE, LOG_NOTICE, "notice" },
		{ G_LOG_LEVEL_INFO, LOG_INFO, "info" },
		{ G_LOG_LEVEL_DEBUG, LOG_DEBUG, "debug" },
	};
	bool debug = GPOINTER_TO_INT(data);

	for (size_t i = 0; i < G_N_ELEMENTS(map); i++) {
		if (!(level & map[i].level))
			continue;
		if (map[i].level == G_LOG_LEVEL_DEBUG && !debug)
			return;
		if (use_syslog)
			syslog(map[i].prio, "%s", msg);
		else
			fprintf(stderr, "dmafs: %s: %s\n", map[i].name, msg);
		return;
	}
}

/* libfuse's messages go where ours go, less one known-bogus one. */
static void fuse_log_to_glib(enum fuse_log_level level, const char *fmt,
			     va_list ap)
{
	char *msg = g_strdup_vprintf(fmt, ap);

	g_strchomp(msg);
	/* libfuse 3.14 complains about its own default max_threads */
	if (!g_str_has_prefix(msg, "Ignoring invalid max threads"))
		g_log(NULL, level <= FUSE_LOG_ERR ? G_LOG_LEVEL_CRITICAL :
			    level == FUSE_LOG_WARNING ? G_LOG_LEVEL_WARNING :
			    level <= FUSE_LOG_INFO ? G_LOG_LEVEL_MESSAGE :
			    G_LOG_LEVEL_DEBUG, "%s", msg);
	g_free(msg);
}

static void usage(const char *prog)
{
	printf("usage: %s [options] DEVICE|IMAGE MOUNTPOINT\n\n"
	       "dmafs %s: a filesystem for NVMe namespaces\n\n"
	       "options:\n"
	       "    -h, --help         print this help\n"
	       "    -V, --version      print the version\n"
	       "    -f                 stay in the foreground\n"
	       "    -d                 debug output (implies -f)\n"
	       "    -s                 single-threaded\n"
	       "    -o ro              mount read-only: nothing is written\n"
	       "    -o nokext          do not use the kernel extension: the\n"
	       "                       daemon serves all I/O (compat mode)\n"
	       "    -o allow_other     allow access by other users\n"
	       "    -o OPT[,OPT...]    other FUSE mount options\n",
	       prog, DMAFS_VERSION);
	fuse_lowlevel_help();
}

/*
 * Without -f we fork before touching the device, so that the process that
 * owns the io_uring rings is the one that serves the mount; the parent
 * waits for a status byte and exits with it, after errors went to the
 * terminal.
 */
static int daemonize_early(int *pipefd)
{
	pid_t pid;
	char status = 1;

	if (pipe(pipefd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pipefd[1]);
		if (read(pipefd[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(pipefd[0]);
	setsid();
	return 0;
}

static void daemon_ready(int fd, char status)
{
	int null;

	if (fd < 0)
		return;
	if (!status) {
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
		if (chdir("/"))
			g_debug("chdir /: %s", g_strerror(errno));
		use_syslog = true;
	}
	if (write(fd, &status, 1) != 1)
		g_debug("status pipe: %s", g_strerror(errno));
	close(fd);
}

static int mount_fs(struct dmafs_fs *fs, const char *device, bool ro)
{
	char why[DMAFS_WHY_MAX] = "";
	unsigned int flags = DMAFS_DEV_EXCL | (ro ? DMAFS_DEV_RDONLY : 0);
	int ret;

	dmafs_fs_init(fs, device, ro);

	ret = dmafs_dev_open(device, flags, &fs->dev);
	if (ret) {
		fprintf(stderr, "dmafs: %s: %s\n", device,
			ret == -EBUSY ? "device is busy (mounted or in use)" :
					g_strerror(-ret));
		return ret;
	}
	ret = dmafs_log_load(fs, why, sizeof(why));
	if (ret) {
		if (ret == -EUCLEAN)
			fprintf(stderr,
				"dmafs: %s: filesystem is corrupt: %s; run fsck.dmafs\n",
				device, why);
		else
			fprintf(stderr, "dmafs: %s: %s\n", device,
				why[0] ? why : g_strerror(-ret));
		return ret;
	}
	return 0;
}

/*
 * The device number ("major:minor") of the newest FUSE mount on @mnt in
 * /proc/self/mountinfo, or "" when there is none.  Read there, not with
 * stat(), which would wait for this daemon before it serves requests.
 */
static void fuse_mount_dev(const char *mnt, char *dev, size_t n)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;

	dev[0] = '\0';
	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return;
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		g_auto(GStrv) f = g_strsplit(*l, " ", -1);
		g_autofree char *where = NULL;
		const char *sep = strstr(*l, " - ");

		if (g_strv_length(f) < 5 || !sep || strncmp(sep + 3, "fuse", 4))
			continue;
		where = g_strcompress(f[4]);	/* mountinfo escapes as \040 */
		if (!strcmp(where, mnt))
			g_strlcpy(dev, f[2], n);
	}
}

/* Whether any mount in /proc/self/mountinfo has device number @dev. */
static bool mount_dev_present(const char *dev)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;

	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
		return true;	/* cannot tell: assume the worst */
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		g_auto(GStrv) f = g_strsplit(*l, " ", 4);

		if (g_strv_length(f) >= 3 && !strcmp(f[2], dev))
			return true;
	}
	return false;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct dmafs_opts o = { 0 };
	struct fuse_session *se = NULL;
	struct fuse_loop_config *loop;
	char mnt_dev[32] = "";
	int ret = 1, ready_fd = -1, pipefd[2];
	char *extra;

	fuse_set_log_func(fuse_log_to_glib);
	if (fuse_opt_parse(&args, &o, NULL, opt_proc))
		goto out_args;
	if (fuse_parse_cmdline(&args, &cmd))
		goto out_args;
	if (cmd.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (cmd.show_version) {
		printf("dmafs %s\n", DMAFS_VERSION);
		fuse_lowlevel_version();
		ret = 0;
		goto out_args;
	}
	if (!o.device || !cmd.mountpoint) {
		fprintf(stderr, "dmafs: usage: %s [options] DEVICE MOUNTPOINT\n",
			argv[0]);
		goto out_args;
	}
	g_log_set_default_handler(log_handler, GINT_TO_POINTER(cmd.debug));

	extra = g_strdup_printf("-odefault_permissions,fsname=%s,subtype=dmafs",
				o.device);
	fuse_opt_add_arg(&args, extra);
	g_free(extra);

	if (!cmd.foreground) {
		if (daemonize_early(pipefd)) {
			fprintf(stderr, "dmafs: cannot fork: %s\n",
				g_strerror(errno));
			goto out_args;
		}
		ready_fd = pipefd[1];
	}
	if (mount_fs(&the_fs, o.device, o.ro))
		goto out_fs;

	se = fuse_session_new(&args, &dmafs_ops, sizeof(dmafs_ops), &the_fs);
	if (!se)
		goto out_fs;
	the_se = se;
	if (fuse_set_signal_handlers(se))
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint))
		goto out_signals;
	fuse_mount_dev(cmd.mountpoint, mnt_dev, sizeof(mnt_dev));
	daemon_ready(ready_fd, 0);
	ready_fd = -1;

	if (cmd.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		loop = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(loop, cmd.clone_fd);
		/* libfuse 3.14 leaves max_threads at -1 unless given */
		fuse_loop_cfg_set_max_threads(loop, cmd.max_threads &&
					      cmd.max_threads <= 100000 ?
					      cmd.max_threads : 10);
		fuse_loop_cfg_set_idle_threads(loop, cmd.max_idle_threads);
		ret = fuse_session_loop_mt(se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	/*
	 * The kernel tears the connection down when the file system goes
	 * away; a request it queued just before (the RELEASE of the last
	 * file of a lazily unmounted file system) makes the read fail with
	 * ECONNABORTED rather than ENODEV.  That is an unmount like any
	 * other; an abort through fusectl leaves the mount in place.
	 */
	if (ret == -ECONNABORTED && mnt_dev[0] &&
	    !mount_dev_present(mnt_dev)) {
		g_message("the kernel ended the connection at unmount with a "
			  "request pending; shutting down normally");
		ret = 0;
	}
	ret = ret ? 1 : 0;
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_fs:
	dmafs_fs_destroy(&the_fs);
	daemon_ready(ready_fd, 1);
out_args:
	free(cmd.mountpoint);
	g_free(o.device);
	fuse_opt_free_args(&args);
	return ret;
}
