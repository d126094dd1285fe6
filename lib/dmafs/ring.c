// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libdmafs rings: an io_uring with a sparse table of buffer slots, dma-buf
 * registration with the choice between dma-buf and compat mode, and the
 * request engine that hides spurious -EAGAIN and short transfers.
 *
 * Each request has at most one SQE outstanding, and at most depth requests
 * exist, so an SQ of depth entries never runs out.  A request's SQE carries
 * the request as user_data.  In compat mode a request moves its bytes in
 * pieces of DMAFS_BOUNCE_SIZE through its own bounce buffer, one piece at a
 * time; in dma-buf mode one SQE covers the whole request unless the kernel
 * returns a short count.
 *
 * No locking: a ring is used by one thread at a time (dmafs.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include "dmafs/io_uring_dmabuf.h"
#include "internal.h"

#define RING_MAX_DEPTH		4096
#define RING_MAX_SLOTS		16384
#define RING_MAX_EAGAIN		1000
#define RING_BOUNCE_ALIGN	4096

struct ring_slot {
	struct dmafs_buf *buf;		/* NULL: empty */
	struct dmafs_file *file;
	enum dmafs_mode mode;
	enum dmafs_reason reason;
	unsigned int busy;		/* requests not yet reaped */
};

struct ring_req {
	struct ring_req *next_free;
	void *cookie;
	struct ring_slot *slot;
	unsigned int slot_index;
	bool write;
	uint64_t buf_off;
	uint64_t file_off;
	size_t len;
	size_t done;			/* bytes transferred so far */
	size_t piece;			/* bytes asked by the SQE in flight */
	unsigned int eagain;		/* spurious -EAGAIN in a row */
	void *bounce;			/* compat: DMAFS_BOUNCE_SIZE bytes */
};

struct dmafs_ring {
	struct io_uring ring;
	unsigned int depth;
	unsigned int nr_slots;
	unsigned int flags;		/* DMAFS_RING_* */
	bool has_ext;			/* kernel has dma-buf fixed buffers */
	unsigned int inflight;		/* requests not yet reaped */
	struct ring_slot *slots;
	struct ring_req *reqs;
	struct ring_req *free_reqs;
};

/* ---- mode names ---------------------------------------------------------- */

DMAFS_EXPORT const char *dmafs_mode_name(enum dmafs_mode mode)
{
	switch (mode) {
	case DMAFS_MODE_NONE:
		return "none";
	case DMAFS_MODE_DMABUF:
		return "dmabuf";
	case DMAFS_MODE_COMPAT:
		return "compat";
	}
	return "?";
}

DMAFS_EXPORT const char *dmafs_reason_str(enum dmafs_reason reason)
{
	switch (reason) {
	case DMAFS_REASON_NONE:
		return "dma-buf I/O";
	case DMAFS_REASON_FORCED:
		return "compat mode requested";
	case DMAFS_REASON_NOT_DMABUF:
		return "the buffer is plain memory, not a dma-buf";
	case DMAFS_REASON_NO_KERNEL_EXT:
		return "the kernel has no io_uring dma-buf buffers "
		       "(IORING_RSRC_UPDATE_EXTENDED refused)";
	case DMAFS_REASON_NOT_DMAFS:
		return "the file cannot do dma-buf I/O (not on dmafs)";
	case DMAFS_REASON_NO_FORWARDING:
		return "the dmafs file cannot do dma-buf I/O (no kernel "
		       "forwarding to the block device)";
	case DMAFS_REASON_DAEMON_COMPAT:
		return "the dmafs daemon runs in compat mode "
		       "(user.dmafs.mode: image file, read-only mount, "
		       "-o nokext or no kernel support; see its log)";
	}
	return "?";
}

DMAFS_EXPORT const char *dmafs_version(void)
{
	return DMAFS_LIB_VERSION;
}

/* ---- ring ---------------------------------------------------------------- */

static bool ring_probe_ext(struct dmafs_ring *r)
{
	return dmafs_unregister_slot(r->ring.ring_fd, 0) == 1;
}

DMAFS_EXPORT int dmafs_kernel_has_dmabuf(void)
{
	struct io_uring ring;
	int ret;

	ret = io_uring_queue_init(1, &ring, 0);
	if (ret)
		return ret;
	ret = io_uring_register_buffers_sparse(&ring, 1);
	if (!ret)
		ret = dmafs_unregister_slot(ring.ring_fd, 0) == 1;
	io_uring_queue_exit(&ring);
	return ret;
}

DMAFS_EXPORT int dmafs_ring_create(unsigned int depth, unsigned int nr_slots,
				   unsigned int flags,
				   struct dmafs_ring **out)
{
	struct dmafs_ring *r;
	unsigned int uflags = 0;
	int ret;

	if (!out || !depth || depth > RING_MAX_DEPTH || !nr_slots ||
	    nr_slots > RING_MAX_SLOTS ||
	    (flags & ~(DMAFS_RING_SINGLE_ISSUER | DMAFS_RING_FORCE_COMPAT)))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->depth = depth;
	r->nr_slots = nr_slots;
	r->flags = flags;
	r->slots = calloc(nr_slots, sizeof(*r->slots));
	r->reqs = calloc(depth, sizeof(*r->reqs));
	if (!r->slots || !r->reqs) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (unsigned int i = 0; i < depth; i++) {
		r->reqs[i].next_free = r->free_reqs;
		r->free_reqs = &r->reqs[i];
	}
	if (flags & DMAFS_RING_SINGLE_ISSUER)
		uflags |= IORING_SETUP_SINGLE_ISSUER |
			  IORING_SETUP_DEFER_TASKRUN;
	ret = io_uring_queue_init(depth, &r->ring, uflags);
	if (ret)
		goto out_free;
	ret = io_uring_register_buffers_sparse(&r->ring, nr_slots);
	if (ret)
		goto out_exit;
	r->has_ext = ring_probe_ext(r);
	*out = r;
	return 0;

out_exit:
	io_uring_queue_exit(&r->ring);
out_free:
	free(r->reqs);
	free(r->slots);
	free(r);
	return ret;
}

DMAFS_EXPORT int dmafs_ring_fd(const struct dmafs_ring *r)
{
	return r->ring.ring_fd;
}

DMAFS_EXPORT bool dmafs_ring_kernel_has_dmabuf(const struct dmafs_ring *r)
{
	return r->has_ext;
}

DMAFS_EXPORT unsigned int dmafs_ring_inflight(const struct dmafs_ring *r)
{
	return r->inflight;
}

DMAFS_EXPORT void dmafs_ring_destroy(struct dmafs_ring *r)
{
	struct dmafs_completion c[16];

	if (!r)
		return;
	/* Nothing may still DMA into a bounce buffer or dma-buf we drop. */
	while (r->inflight) {
		if (dmafs_ring_reap(r, c, 16, 1) < 0)
			break;
	}
	io_uring_queue_exit(&r->ring);
	for (unsigned int i = 0; i < r->depth; i++)
		free(r->reqs[i].bounce);
	free(r->reqs);
	free(r->slots);
	free(r);
}

/* ---- registration -------------------------------------------------------- */

/*
 * A block device open O_DIRECT: -EINVAL from the registration then means
 * what it means in the upstream proposal, a driver without dma-buf
 * support (a loop device, SATA), which is compat mode's case.
 */
static bool is_direct_blkdev(int fd)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && (fl & O_DIRECT) && fstat(fd, &st) == 0 &&
	       S_ISBLK(st.st_mode);
}

static void slot_clear(struct ring_slot *s)
{
	memset(s, 0, sizeof(*s));
}

DMAFS_EXPORT int dmafs_ring_unregister(struct dmafs_ring *r, unsigned int slot)
{
	struct ring_slot *s;
	int ret;

	if (slot >= r->nr_slots)
		return -EINVAL;
	s = &r->slots[slot];
	if (s->busy)
		return -EBUSY;
	if (s->mode == DMAFS_MODE_DMABUF) {
		ret = dmafs_unregister_slot(r->ring.ring_fd, slot);
		if (ret < 0)
			return ret;
	}
	slot_clear(s);
	return 0;
}

DMAFS_EXPORT int dmafs_ring_register(struct dmafs_ring *r, unsigned int slot,
				     struct dmafs_buf *b, struct dmafs_file *f)
{
	enum dmafs_reason reason = DMAFS_REASON_NONE;
	struct ring_slot *s;
	int ret;

	if (!b || !f || slot >= r->nr_slots)
		return -EINVAL;
	s = &r->slots[slot];
	ret = dmafs_ring_unregister(r, slot);
	if (ret)
		return ret;

	if (b->kind == DMAFS_BUF_MEM)
		reason = DMAFS_REASON_NOT_DMABUF;
	else if (r->flags & DMAFS_RING_FORCE_COMPAT)
		reason = DMAFS_REASON_FORCED;
	else if (!r->has_ext)
		reason = DMAFS_REASON_NO_KERNEL_EXT;
	if (reason == DMAFS_REASON_NONE) {
		ret = dmafs_register_dmabuf(r->ring.ring_fd, slot, b->fd, f->fd);
		if (ret == -EINVAL && !f->on_dmafs && is_direct_blkdev(f->fd))
			ret = -EOPNOTSUPP;
		if (ret == -EOPNOTSUPP)
			reason = !f->on_dmafs ? DMAFS_REASON_NOT_DMAFS :
				 f->daemon_mode == DMAFS_DAEMON_COMPAT ?
				 DMAFS_REASON_DAEMON_COMPAT :
				 DMAFS_REASON_NO_FORWARDING;
		else if (ret < 0)
			return ret;
		else if (ret != 1)
			return -EPROTO;
	}
	if (reason != DMAFS_REASON_NONE) {
		ret = dmafs_buf_map(b, NULL);
		if (ret)
			return ret;
	}
	s->buf = b;
	s->file = f;
	s->mode = reason == DMAFS_REASON_NONE ? DMAFS_MODE_DMABUF :
						DMAFS_MODE_COMPAT;
	s->reason = reason;
	return 0;
}

DMAFS_EXPORT enum dmafs_mode dmafs_ring_slot_mode(const struct dmafs_ring *r,
						  unsigned int slot,
						  enum dmafs_reason *reason)
{
	const struct ring_slot *s;

	if (slot >= r->nr_slots) {
		if (reason)
			*reason = DMAFS_REASON_NONE;
		return DMAFS_MODE_NONE;
	}
	s = &r->slots[slot];
	if (reason)
		*reason = s->reason;
	return s->mode;
}

/* ---- requests ------------------------------------------------------------ */

static struct io_uring_sqe *ring_get_sqe(struct dmafs_ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	/* Cannot happen (one SQE per request, depth SQEs); be safe anyway. */
	if (!sqe) {
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

/*
 * Prepare the SQE for the next piece of req: 0, or -errno when it cannot
 * be issued (the request then completes with that error).
 */
static int req_issue(struct dmafs_ring *r, struct ring_req *req)
{
	struct ring_slot *s = req->slot;
	struct dmafs_buf *b = s->buf;
	size_t left = req->len - req->done;
	uint64_t boff = req->buf_off + req->done;
	uint64_t foff = req->file_off + req->done;
	int fd = s->file->fd;
	struct io_uring_sqe *sqe;
	int ret;

	if (s->mode == DMAFS_MODE_DMABUF) {
		sqe = ring_get_sqe(r);
		if (!sqe)
			return -EBUSY;
		req->piece = left;
		/* addr is a byte offset inside the dma-buf, not a pointer. */
		if (req->write)
			io_uring_prep_write_fixed(sqe, fd,
						  (void *)(uintptr_t)boff,
						  left, foff, req->slot_index);
		else
			io_uring_prep_read_fixed(sqe, fd,
						 (void *)(uintptr_t)boff,
						 left, foff, req->slot_index);
		io_uring_sqe_set_data(sqe, req);
		return 0;
	}

	req->piece = left < DMAFS_BOUNCE_SIZE ? left : DMAFS_BOUNCE_SIZE;
	if (!req->bounce) {
		size_t align = s->file->mem_align > RING_BOUNCE_ALIGN ?
			       s->file->mem_align : RING_BOUNCE_ALIGN;

		if (posix_memalign(&req->bounce, align, DMAFS_BOUNCE_SIZE)) {
			req->bounce = NULL;
			return -ENOMEM;
		}
	}
	if (req->write) {
		ret = dmafs_buf_cpu_begin(b, DMAFS_SYNC_READ);
		if (ret)
			return ret;
		memcpy(req->bounce, (char *)b->map + boff, req->piece);
		ret = dmafs_buf_cpu_end(b, DMAFS_SYNC_READ);
		if (ret)
			return ret;
	}
	sqe = ring_get_sqe(r);
	if (!sqe)
		return -EBUSY;
	if (req->write)
		io_uring_prep_write(sqe, fd, req->bounce, req->piece, foff);
	else
		io_uring_prep_read(sqe, fd, req->bounce, req->piece, foff);
	io_uring_sqe_set_data(sqe, req);
	return 0;
}

static void req_put(struct dmafs_ring *r, struct ring_req *req)
{
	req->slot->busy--;
	r->inflight--;
	req->slot = NULL;
	req->next_free = r->free_reqs;
	r->free_reqs = req;
}

static int ring_queue(struct dmafs_ring *r, bool write, unsigned int slot,
		      uint64_t buf_off, uint64_t file_off, size_t len,
		      void *cookie)
{
	struct ring_req *req;
	struct ring_slot *s;
	int ret;

	if (slot >= r->nr_slots || !r->slots[slot].buf)
		return -EFAULT;
	s = &r->slots[slot];
	if (!len || len > INT32_MAX || file_off > INT64_MAX - len ||
	    (file_off | len) & (s->file->offset_align - 1) ||
	    buf_off & (s->file->mem_align - 1))
		return -EINVAL;
	if (buf_off > s->buf->size || len > s->buf->size - buf_off)
		return -EFAULT;
	req = r->free_reqs;
	if (!req)
		return -EBUSY;
	r->free_reqs = req->next_free;
	req->cookie = cookie;
	req->slot = s;
	req->slot_index = slot;
	req->write = write;
	req->buf_off = buf_off;
	req->file_off = file_off;
	req->len = len;
	req->done = 0;
	req->eagain = 0;
	s->busy++;
	r->inflight++;
	ret = req_issue(r, req);
	if (ret)
		req_put(r, req);
	return ret;
}

DMAFS_EXPORT int dmafs_queue_read(struct dmafs_ring *r, unsigned int slot,
				  uint64_t buf_off, uint64_t file_off,
				  size_t len, void *cookie)
{
	return ring_queue(r, false, slot, buf_off, file_off, len, cookie);
}

DMAFS_EXPORT int dmafs_queue_write(struct dmafs_ring *r, unsigned int slot,
				   uint64_t buf_off, uint64_t file_off,
				   size_t len, void *cookie)
{
	return ring_queue(r, true, slot, buf_off, file_off, len, cookie);
}

DMAFS_EXPORT int dmafs_ring_submit(struct dmafs_ring *r)
{
	int ret;

	do {
		ret = io_uring_submit(&r->ring);
	} while (ret == -EINTR);
	return ret;
}

/*
 * Account for one CQE of req.  Returns true when the request is finished,
 * with its result in *res; false when it was reissued.
 */
static bool req_complete(struct dmafs_ring *r, struct ring_req *req, int cres,
			 int64_t *res)
{
	struct ring_slot *s = req->slot;
	uint32_t align = s->file->offset_align;
	int ret;

	if (cres == -EAGAIN && ++req->eagain <= RING_MAX_EAGAIN)
		goto reissue;
	if (cres < 0) {
		*res = cres;
		return true;
	}
	req->eagain = 0;
	if ((size_t)cres > req->piece) {
		*res = -EIO;
		return true;
	}
	if (cres && s->mode == DMAFS_MODE_COMPAT && !req->write) {
		struct dmafs_buf *b = s->buf;

		ret = dmafs_buf_cpu_begin(b, DMAFS_SYNC_WRITE);
		if (ret) {
			*res = ret;
			return true;
		}
		memcpy((char *)b->map + req->buf_off + req->done, req->bounce,
		       cres);
		ret = dmafs_buf_cpu_end(b, DMAFS_SYNC_WRITE);
		if (ret) {
			*res = ret;
			return true;
		}
	}
	req->done += cres;
	if (req->done == req->len) {
		*res = req->done;
		return true;
	}
	if ((size_t)cres < req->piece) {
		/*
		 * A short read that is not block aligned, or an empty one,
		 * ended at EOF.  A short write cannot continue unaligned, and
		 * one that wrote nothing would loop.
		 */
		if (!req->write && (!cres || (cres & (align - 1)))) {
			*res = req->done;
			return true;
		}
		if (req->write && (!cres || (cres & (align - 1)))) {
			*res = -EIO;
			return true;
		}
	}
reissue:
	ret = req_issue(r, req);
	if (ret) {
		*res = ret;
		return true;
	}
	return false;
}

DMAFS_EXPORT int dmafs_ring_reap(struct dmafs_ring *r,
				 struct dmafs_completion *comps,
				 unsigned int max, unsigned int min_complete)
{
	bool polled = false;
	unsigned int n = 0;
	int ret;

	if (!comps && max)
		return -EINVAL;
	if (min_complete > r->inflight)
		min_complete = r->inflight;
	if (min_complete > max)
		min_complete = max;
	for (;;) {
		struct io_uring_cqe *cqe;

		while (n < max && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
			struct ring_req *req = io_uring_cqe_get_data(cqe);
			int cres = cqe->res;
			int64_t res;

			io_uring_cqe_seen(&r->ring, cqe);
			if (!req || !req_complete(r, req, cres, &res))
				continue;
			comps[n].cookie = req->cookie;
			comps[n].res = res;
			n++;
			req_put(r, req);
		}
		if (n >= min_complete) {
			/* Hand over what is queued, reissues included. */
			if (io_uring_sq_ready(&r->ring)) {
				ret = dmafs_ring_submit(r);
				if (ret < 0)
					return n ? (int)n : ret;
			}
			/*
			 * A DEFER_TASKRUN ring posts completions only when
			 * asked to: ask once before reporting nothing.
			 */
			if (n || polled || !r->inflight ||
			    !(r->flags & DMAFS_RING_SINGLE_ISSUER))
				return n;
			io_uring_enter(r->ring.ring_fd, 0, 0,
				       IORING_ENTER_GETEVENTS, NULL);
			polled = true;
			continue;
		}
		ret = io_uring_submit_and_wait(&r->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -ETIME)
			return n ? (int)n : ret;
	}
}

static int64_t ring_sync(struct dmafs_ring *r, bool write, unsigned int slot,
			 uint64_t buf_off, uint64_t file_off, size_t len)
{
	struct dmafs_completion c;
	int ret;

	if (r->inflight)
		return -EBUSY;
	ret = ring_queue(r, write, slot, buf_off, file_off, len, NULL);
	if (ret)
		return ret;
	do {
		ret = dmafs_ring_reap(r, &c, 1, 1);
	} while (ret == 0);
	return ret < 0 ? ret : c.res;
}

DMAFS_EXPORT int64_t dmafs_read(struct dmafs_ring *r, unsigned int slot,
				uint64_t buf_off, uint64_t file_off, size_t len)
{
	return ring_sync(r, false, slot, buf_off, file_off, len);
}

DMAFS_EXPORT int64_t dmafs_write(struct dmafs_ring *r, unsigned int slot,
				 uint64_t buf_off, uint64_t file_off,
				 size_t len)
{
	return ring_sync(r, true, slot, buf_off, file_off, len);
}
