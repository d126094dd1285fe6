// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * mkfs.dmafs: create a dmafs filesystem on an NVMe namespace, another block
 * device or an image file.
 *
 * Three phases, in the manner of mkfs.xfs:
 *
 *   validate   look at the target and refuse anything doubtful (mounted,
 *              carrying another filesystem, too small, odd LBA size); the
 *              only change allowed here is creating or extending an image
 *              file, and that is undone if anything later fails
 *   calculate  layout, UUID, timestamps: pure arithmetic
 *   write      wipe the head and tail, write the initial checkpoint, then
 *              the backup and primary superblocks, flushing between steps
 *
 * -n stops after calculate and prints what would have been written.
 *
 * Every failure prints exactly one line, "mkfs.dmafs: <reason>", on stderr
 * at the place it is detected and returns a negative errno upwards; main()
 * turns that into exit status 1.  Nothing above the detecting function
 * prints again.
 *
 * Single-threaded; no locking.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "config.h"
#include "core.h"
#include "dev.h"

#define PROG "mkfs.dmafs"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)

/*
 * How much is zeroed at each end of the filesystem.  1 MiB at the head
 * covers every signature blkid looks for near the start (btrfs sits at
 * 64 KiB, the deepest common one) and the first log block, so no stale log
 * chunk can be replayed; 1 MiB at the tail covers a GPT backup header and
 * the md/dm metadata that lives there.
 */
#define WIPE_BYTES	(1 * MiB)
/* Zeroes go out in pieces this big, all in one batch. */
#define WIPE_PIECE	(256 * KiB)
#define WIPE_IOS	(2 * (WIPE_BYTES / WIPE_PIECE))

struct mkfs_opts {
	const char *path;
	const char *label;		/* NULL, or up to DMAFS_LABEL_MAX - 1 */
	uint64_t size;			/* -s in bytes, 0 if not given */
	bool force;
	bool dry_run;
	bool quiet;
	bool have_uuid;
	uint8_t uuid[16];
};

enum mkfs_target {
	TARGET_BLOCKDEV,
	TARGET_FILE,			/* existing regular file */
	TARGET_NEW_FILE,		/* image file that did not exist */
};

struct mkfs_plan {
	enum mkfs_target target;
	struct dmafs_dev *dev;		/* NULL: dry run on a new file */
	struct dmafs_dev_info info;	/* copied: printed after the close */
	bool created;			/* we created the image file */
	bool extended;			/* we grew the image file ... */
	off_t orig_size;		/* ... from this size */
	uint64_t fs_bytes;		/* filesystem size, bytes */
	struct dmafs_layout layout;
	uint8_t uuid[16];
	uint64_t log_nonce;
	struct timespec now;
	uint32_t uid, gid;
};

/*
 * The first warning the device layer logged through GLib (e.g. "O_DIRECT
 * not supported, using buffered I/O").  Held back so that a failure still
 * prints exactly one line; printed after a successful run.
 */
static char dev_warning[256];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The one way this program reports an error: one line, program name first. */
static void fail(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void hold_dev_warning(const gchar *domain, GLogLevelFlags level,
			     const gchar *msg, gpointer unused)
{
	if (!dev_warning[0])
		snprintf(dev_warning, sizeof(dev_warning), "%s", msg);
}

/* "64 MiB", "1.5 GiB": exact values print without a fraction. */
static const char *human(char *buf, size_t len, uint64_t bytes)
{
	static const char *const unit[] = {
		"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB",
	};
	uint64_t div = 1;
	int u = 0;

	while (u < 6 && bytes >= div * 1024) {
		div *= 1024;
		u++;
	}
	/* Below 1024 units (16 for EiB): the casts lose nothing. */
	if (bytes % div == 0)
		snprintf(buf, len, "%u %s", (unsigned int)(bytes / div),
			 unit[u]);
	else	/* truncated, never rounded up past what is there */
		snprintf(buf, len, "%u.%u %s", (unsigned int)(bytes / div),
			 (unsigned int)(bytes % div * 10 / div), unit[u]);
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [-L label] [-f] [-s SIZE] [-n] [-q] [-U uuid] DEVICE|IMAGE\n"
		"\n"
		"Create a dmafs filesystem on an NVMe namespace, block device or image file.\n"
		"\n"
		"  -L label    filesystem label, at most %d bytes\n"
		"  -f          overwrite an existing filesystem or partition table\n"
		"  -s SIZE     filesystem size, bytes with optional K, M, G or T suffix\n"
		"              (1024-based), a multiple of 4 KiB; creates or extends an\n"
		"              image file\n"
		"  -n          dry run: check and print what would be created, write nothing\n"
		"  -q          quiet: print nothing on success\n"
		"  -U uuid     use this UUID instead of a random one\n"
		"  --help      print this help\n"
		"  --version   print the version\n",
		DMAFS_LABEL_MAX - 1);
}

/* SIZE: decimal integer, optional K/M/G/T (1024-based), multiple of 4 KiB. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	/* strtoull accepts "-1" and leading blanks; a size must not. */
	if (*s < '0' || *s > '9')
		goto out_invalid;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		goto out_invalid;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		goto out_invalid;
	}
	if (shift && end[1] != '\0')
		goto out_invalid;
	if (v > (UINT64_MAX >> shift))
		goto out_invalid;
	v <<= shift;
	if (v == 0) {
		fail("size '%s' must not be zero", s);
		return -EINVAL;
	}
	if (v % DMAFS_BLOCK_SIZE) {
		fail("size '%s' is not a multiple of 4 KiB", s);
		return -EINVAL;
	}
	*out = v;
	return 0;

out_invalid:
	fail("invalid size '%s' (an integer with an optional K, M, G or T suffix)",
	     s);
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The standard 36-character form, 8-4-4-4-12 hex digits. */
static int parse_uuid(const char *s, uint8_t uuid[16])
{
	static const uint8_t nil[16];
	int n = 0;

	if (strlen(s) != 36)
		goto out_invalid;
	for (int i = 0; i < 36;) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i++] != '-')
				goto out_invalid;
			continue;
		}
		hi = hexval(s[i]);
		lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			goto out_invalid;
		uuid[n++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	/* blkid and the mount tools treat the nil UUID as "no UUID". */
	if (!memcmp(uuid, nil, 16)) {
		fail("the nil UUID cannot identify a filesystem");
		return -EINVAL;
	}
	return 0;

out_invalid:
	fail("invalid UUID '%s' (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
	     s);
	return -EINVAL;
}

static void format_uuid(char out[37], const uint8_t u[16])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
}

/*
 * 0: options in o.  1: --help or --version was answered, exit 0.
 * Negative errno: bad command line, already reported.
 */
static int parse_args(int argc, char **argv, struct mkfs_opts *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, ret;

	memset(o, 0, sizeof(*o));
	/* getopt's own messages would make a second line after ours. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":L:fs:nqU:", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'L':
			if (strlen(optarg) > DMAFS_LABEL_MAX - 1) {
				fail("label '%s' is too long (%zu bytes; at most %d)",
				     optarg, strlen(optarg),
				     DMAFS_LABEL_MAX - 1);
				return -EINVAL;
			}
			o->label = optarg;
			break;
		case 'f':
			o->force = true;
			break;
		case 's':
			ret = parse_size(optarg, &o->size);
			if (ret)
				return ret;
			break;
		case 'n':
			o->dry_run = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'U':
			ret = parse_uuid(optarg, o->uuid);
			if (ret)
				return ret;
			o->have_uuid = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf(PROG " %s\n", DMAFS_VERSION);
			return 1;
		case ':':
			fail("option '%s' needs an argument; see --help",
			     argv[optind - 1]);
			return -EINVAL;
		default:
			if (optopt)
				fail("unknown option '-%c'; see --help",
				     optopt);
			else
				fail("unknown option '%s'; see --help",
				     argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind >= argc) {
		fail("no device or image given; see --help");
		return -EINVAL;
	}
	if (optind + 1 < argc) {
		fail("one device or image at a time, not '%s' as well",
		     argv[optind + 1]);
		return -EINVAL;
	}
	o->path = argv[optind];
	return 0;
}

/*
 * Phrase dmafs_dev_signature()'s type: blkid's TYPE (a filesystem, swap,
 * RAID or LVM member) or its PTTYPE (a partition table), or the probe's
 * own "unknown" / "ambivalent".
 */
static const char *describe_signature(const char *type, char *buf,
				      size_t len)
{
	static const char *const pttypes[] = {
		"gpt", "dos", "PMBR", "mac", "sun", "sgi", "bsd", "atari",
		"aix", "solaris", "unixware", "ultrix", "minix",
	};

	if (!strcmp(type, "unknown"))
		return "an unrecognised signature";
	if (!strcmp(type, "ambivalent"))
		return "several conflicting signatures";
	for (size_t i = 0; i < sizeof(pttypes) / sizeof(pttypes[0]); i++) {
		if (!strcmp(type, pttypes[i])) {
			snprintf(buf, len, "a %s partition table", type);
			return buf;
		}
	}
	snprintf(buf, len, "a %s filesystem", type);
	return buf;
}

/* Smallest size check, phrased for where the size came from. */
static int check_min_size(const struct mkfs_opts *o, uint64_t bytes)
{
	char h[32], m[32];

	if (bytes / DMAFS_BLOCK_SIZE >= DMAFS_MIN_BLOCKS)
		return 0;
	human(m, sizeof(m), DMAFS_MIN_BLOCKS * DMAFS_BLOCK_SIZE);
	if (o->size)
		fail("filesystem size %s is too small (dmafs needs at least %s)",
		     human(h, sizeof(h), bytes), m);
	else
		fail("%s is too small (%s; dmafs needs at least %s)", o->path,
		     human(h, sizeof(h), bytes), m);
	return -ENOSPC;
}

/*
 * Create (mode 0644, sparse) or grow the image file to o->size.  Done
 * before the open so that dmafs_dev_open() sees the final size.
 */
static int prepare_image(const struct mkfs_opts *o, struct mkfs_plan *p,
			 const struct stat *st)
{
	int fd, ret;

	if (p->target == TARGET_FILE && (uint64_t)st->st_size >= o->size)
		return 0;
	if (p->target == TARGET_NEW_FILE)
		fd = open(o->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			  0644);
	else
		fd = open(o->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		fail("cannot %s %s: %s",
		     p->target == TARGET_NEW_FILE ? "create" : "open", o->path,
		     strerror(-ret));
		return ret;
	}
	if (p->target == TARGET_NEW_FILE) {
		p->created = true;
		/* The umask is no business of an image's permissions. */
		if (fchmod(fd, 0644)) {
			ret = -errno;
			fail("cannot set the mode of %s: %s", o->path,
			     strerror(-ret));
			goto out_close_fd;
		}
	} else {
		p->extended = true;
		p->orig_size = st->st_size;
	}
	if (ftruncate(fd, (off_t)o->size)) {
		ret = -errno;
		fail("cannot %s %s to %" PRIu64 " bytes: %s",
		     p->created ? "size" : "extend", o->path, o->size,
		     strerror(-ret));
		goto out_close_fd;
	}
	if (close(fd)) {
		ret = -errno;
		fail("cannot write %s: %s", o->path, strerror(-ret));
		return ret;
	}
	return 0;

out_close_fd:
	close(fd);
	return ret;
}

/* Take back what prepare_image() did; best effort, we are failing anyway. */
static void undo_image(const char *path, struct mkfs_plan *p)
{
	bool extended = p->extended;

	/* Errors here go unreported: the one line already printed wins. */
	if (p->created)
		unlink(path);
	p->created = false;
	p->extended = false;
	if (extended && truncate(path, p->orig_size) < 0)
		return;
}

/* Checks that need the open device: LBA size and the real size. */
static int check_opened(const struct mkfs_opts *o, struct mkfs_plan *p)
{
	const struct dmafs_dev_info *info = &p->info;
	char h1[32], h2[32];

	if (info->lba_size > DMAFS_MAX_LBA_SIZE) {
		fail("%s has %u-byte logical blocks; dmafs supports at most %u",
		     o->path, info->lba_size, DMAFS_MAX_LBA_SIZE);
		return -EINVAL;
	}
	/*
	 * A file has been grown to -s by now, or is described from -s in a
	 * dry run: only a block device can be smaller than asked for.
	 */
	if (p->target == TARGET_BLOCKDEV && o->size > info->size) {
		fail("size %s exceeds %s (%s)", human(h1, sizeof(h1), o->size),
		     o->path, human(h2, sizeof(h2), info->size));
		return -ENOSPC;
	}
	p->fs_bytes = o->size ? o->size : info->size;
	return check_min_size(o, p->fs_bytes);
}

/*
 * Decide whether the target may be formatted and open it.  On success
 * p->dev is open (except in a dry run on a missing image) and p->fs_bytes
 * is set; on failure nothing of the target has changed.
 */
static int validate(const struct mkfs_opts *o, struct mkfs_plan *p)
{
	char sig[64], what[96];
	struct stat st;
	int ret;

	memset(p, 0, sizeof(*p));
	if (stat(o->path, &st)) {
		ret = -errno;
		if (ret != -ENOENT) {
			fail("cannot access %s: %s", o->path, strerror(-ret));
			return ret;
		}
		if (!o->size) {
			fail("%s does not exist (use -s SIZE to create an image file)",
			     o->path);
			return ret;
		}
		p->target = TARGET_NEW_FILE;
	} else if (S_ISBLK(st.st_mode)) {
		p->target = TARGET_BLOCKDEV;
	} else if (S_ISREG(st.st_mode)) {
		p->target = TARGET_FILE;
	} else {
		fail("%s is neither a block device nor a regular file",
		     o->path);
		return -EINVAL;
	}

	if (p->target != TARGET_NEW_FILE) {
		/* Not even with -f: it would corrupt a live filesystem. */
		ret = dmafs_dev_mounted(o->path);
		if (ret < 0) {
			fail("cannot tell whether %s is mounted: %s", o->path,
			     strerror(-ret));
			return ret;
		}
		if (ret > 0) {
			fail("%s is mounted or in use by a mounted filesystem; refusing to format it",
			     o->path);
			return -EBUSY;
		}
		ret = dmafs_dev_signature(o->path, sig, sizeof(sig));
		if (ret < 0) {
			fail("cannot probe %s for an existing filesystem: %s",
			     o->path, strerror(-ret));
			return ret;
		}
		if (ret > 0 && !o->force) {
			fail("%s contains %s; use -f to overwrite", o->path,
			     describe_signature(sig, what, sizeof(what)));
			return -EEXIST;
		}
	}

	/* A file's size is known now: refuse before creating or growing it. */
	if (p->target != TARGET_BLOCKDEV) {
		ret = check_min_size(o, o->size ? o->size :
						  (uint64_t)st.st_size);
		if (ret)
			return ret;
	}

	if (p->target == TARGET_NEW_FILE && o->dry_run) {
		/* Nothing to open: describe the file that would be made. */
		snprintf(p->info.path, sizeof(p->info.path), "%s", o->path);
		p->info.size = o->size;
		p->info.lba_size = 512;
		p->fs_bytes = o->size;
		return 0;
	}

	if (!o->dry_run && p->target != TARGET_BLOCKDEV && o->size) {
		ret = prepare_image(o, p, &st);
		if (ret)
			goto out_undo_image;
	}

	ret = dmafs_dev_open(o->path,
			     o->dry_run ? DMAFS_DEV_RDONLY : DMAFS_DEV_EXCL,
			     &p->dev);
	if (ret) {
		fail("cannot open %s: %s", o->path, strerror(-ret));
		goto out_undo_image;
	}
	p->info = *dmafs_dev_info(p->dev);
	ret = check_opened(o, p);
	if (ret)
		goto out_close_dev;
	return 0;

out_close_dev:
	dmafs_dev_close(p->dev);
	p->dev = NULL;
out_undo_image:
	undo_image(o->path, p);
	return ret;
}

/* Layout, identity and time: no I/O except the random source. */
static int calculate(const struct mkfs_opts *o, struct mkfs_plan *p)
{
	ssize_t n;
	int ret;

	ret = dmafs_layout_compute(p->fs_bytes / DMAFS_BLOCK_SIZE, &p->layout);
	if (ret) {
		/* validate() checked the size: this is a bug, not bad input. */
		fail("internal error: no layout for %" PRIu64 " blocks: %s",
		     p->fs_bytes / DMAFS_BLOCK_SIZE, strerror(-ret));
		return ret;
	}
	if (o->have_uuid) {
		memcpy(p->uuid, o->uuid, 16);
	} else {
		n = getrandom(p->uuid, sizeof(p->uuid), 0);
		if (n != (ssize_t)sizeof(p->uuid)) {
			ret = n < 0 ? -errno : -EIO;
			fail("cannot get random bytes for the UUID: %s",
			     strerror(-ret));
			return ret;
		}
		/* RFC 4122 version 4 (random), variant 1. */
		p->uuid[6] = (p->uuid[6] & 0x0f) | 0x40;
		p->uuid[8] = (p->uuid[8] & 0x3f) | 0x80;
	}
	/* The first log session (format.h, "Log sessions"). */
	if (getrandom(&p->log_nonce, sizeof(p->log_nonce), 0) !=
	    (ssize_t)sizeof(p->log_nonce)) {
		ret = -errno;
		fail("cannot get random bytes: %s", strerror(-ret));
		return ret;
	}
	clock_gettime(CLOCK_REALTIME, &p->now);
	/* The creator owns the root, so an unprivileged image is usable. */
	p->uid = getuid();
	p->gid = getgid();
	return 0;
}

static void put_time(struct dmafs_disk_timespec *t, const struct timespec *ts)
{
	t->sec = cpu64((uint64_t)(int64_t)ts->tv_sec);
	t->nsec = cpu32((uint32_t)ts->tv_nsec);
	t->pad = 0;
}

/*
 * The initial checkpoint: one chunk holding the allocator's next inode
 * number and the root directory.  buf is one zeroed block.
 */
static int build_checkpoint(const struct mkfs_plan *p, void *buf)
{
	struct dmafs_disk_rec_meta *meta;
	struct dmafs_disk_rec_inode *root;
	const struct dmafs_disk_rec *rec;
	char *payload = (char *)buf + DMAFS_CHUNK_HDR_SIZE;
	char why[DMAFS_WHY_MAX];
	uint32_t nbytes = 0, off = 0, nblocks, seen = 0;
	int ret;

	meta = (void *)(payload + nbytes);
	meta->h.type = cpu16(DMAFS_REC_META);
	meta->h.len = cpu32(dmafs_rec_align(sizeof(*meta)));
	meta->h.ino = cpu64(0);
	meta->next_ino = cpu64(DMAFS_ROOT_INO + 1);
	nbytes += dmafs_rec_align(sizeof(*meta));

	root = (void *)(payload + nbytes);
	root->h.type = cpu16(DMAFS_REC_INODE);
	root->h.len = cpu32(dmafs_rec_align(sizeof(*root)));
	root->h.ino = cpu64(DMAFS_ROOT_INO);
	root->mode = cpu32(S_IFDIR | 0755);
	root->uid = cpu32(p->uid);
	root->gid = cpu32(p->gid);
	root->nlink = cpu32(2);		/* "." and the parent's entry */
	root->size = cpu64(0);
	root->generation = cpu64(0);
	put_time(&root->atime, &p->now);
	put_time(&root->mtime, &p->now);
	put_time(&root->ctime, &p->now);
	put_time(&root->btime, &p->now);
	nbytes += dmafs_rec_align(sizeof(*root));

	dmafs_chunk_seal(buf, DMAFS_CHUNK_CKPT, 0, 1, nbytes, 2, 0, 0,
			 p->uuid);

	/* Read it back the way mount will; a failure here is our bug. */
	ret = dmafs_chunk_verify(buf, 1, DMAFS_CHUNK_CKPT, 0, p->uuid, 1,
				 &nblocks, why, sizeof(why));
	if (!ret) {
		while ((ret = dmafs_rec_next(payload, nbytes, &off, &rec, why,
					     sizeof(why))) == 1)
			seen++;
	}
	if (ret || seen != 2) {
		fail("internal error: initial checkpoint does not verify: %s",
		     ret ? why : "record count");
		return -EUCLEAN;
	}
	return 0;
}

static int build_super(const struct mkfs_opts *o, const struct mkfs_plan *p,
		       struct dmafs_disk_super *sb)
{
	const struct dmafs_layout *l = &p->layout;
	char why[DMAFS_WHY_MAX];
	int ret;

	memset(sb, 0, sizeof(*sb));
	sb->magic = cpu64(DMAFS_MAGIC);
	sb->version = cpu32(DMAFS_FORMAT_VERSION);
	sb->compat = cpu32(0);
	sb->ro_compat = cpu32(0);
	sb->incompat = cpu32(0);
	sb->flags = cpu32(0);
	sb->block_size = cpu32(DMAFS_BLOCK_SIZE);
	sb->lba_size = cpu32(p->info.lba_size);
	memcpy(sb->uuid, p->uuid, 16);
	if (o->label)
		memcpy(sb->label, o->label, strlen(o->label));
	sb->total_blocks = cpu64(l->total_blocks);
	sb->log_start = cpu64(l->log_start);
	sb->log_blocks = cpu64(l->log_blocks);
	sb->data_start = cpu64(l->data_start);
	sb->generation = cpu64(1);
	sb->ckpt_block = cpu64(l->data_start);
	sb->ckpt_seq = cpu64(0);
	sb->ckpt_blocks = cpu64(1);
	sb->log_head_block = cpu64(0);
	sb->log_head_seq = cpu64(1);
	sb->next_ino = cpu64(DMAFS_ROOT_INO + 1);
	sb->log_nonce = cpu64(p->log_nonce);
	sb->mkfs_time = cpu64((uint64_t)(int64_t)p->now.tv_sec);
	sb->write_time = sb->mkfs_time;
	dmafs_super_seal(sb);

	ret = dmafs_super_check(sb, p->info.size / DMAFS_BLOCK_SIZE, why,
				sizeof(why));
	if (ret) {
		fail("internal error: new superblock fails its check: %s", why);
		return -EUCLEAN;
	}
	return 0;
}

/*
 * Zero the first and last WIPE_BYTES of the filesystem range in one batch,
 * so that blkid sees no foreign signature afterwards and no stale dmafs
 * superblock or log chunk survives.  The head wipe takes out the old
 * primary superblock, so until the new primary lands below, a crash
 * leaves no valid primary rather than a stale one.
 */
static int wipe_ends(const struct mkfs_plan *p, void *zero)
{
	struct dmafs_io ios[WIPE_IOS];
	uint64_t head, tail, fs_end;
	unsigned int n = 0;

	fs_end = p->layout.total_blocks * DMAFS_BLOCK_SIZE;
	head = p->layout.data_start * DMAFS_BLOCK_SIZE;
	if (head > WIPE_BYTES)
		head = WIPE_BYTES;
	/* DMAFS_MIN_BLOCKS keeps head and tail apart; the min() is cheap. */
	tail = fs_end - WIPE_BYTES;
	if (tail < head)
		tail = head;
	memset(ios, 0, sizeof(ios));
	for (uint64_t off = 0; off < head; off += WIPE_PIECE, n++) {
		ios[n].buf = zero;
		ios[n].len = head - off < WIPE_PIECE ? head - off : WIPE_PIECE;
		ios[n].off = off;
		ios[n].flags = DMAFS_IO_WRITE;
	}
	for (uint64_t off = tail; off < fs_end; off += WIPE_PIECE, n++) {
		ios[n].buf = zero;
		ios[n].len = fs_end - off < WIPE_PIECE ? fs_end - off :
							 WIPE_PIECE;
		ios[n].off = off;
		ios[n].flags = DMAFS_IO_WRITE;
	}
	return dmafs_dev_submit(p->dev, ios, n);
}

/*
 * Order matters for a crash at any point: checkpoint before any
 * superblock points at it; backup before primary, each flushed, so that at
 * every instant either no valid superblock exists (mkfs did not finish) or
 * a valid one points at a durable checkpoint.
 */
static int write_fs(const struct mkfs_opts *o, const struct mkfs_plan *p)
{
	const struct dmafs_layout *l = &p->layout;
	void *zero, *ckpt, *sb;
	const char *step;
	int ret;

	zero = dmafs_dev_alloc_buf(WIPE_PIECE);
	ckpt = dmafs_dev_alloc_buf(DMAFS_BLOCK_SIZE);
	sb = dmafs_dev_alloc_buf(DMAFS_SB_SIZE);
	if (!zero || !ckpt || !sb) {
		fail("out of memory");
		ret = -ENOMEM;
		goto out_free_bufs;
	}

	/* Build everything before the first write: a bug stops us early. */
	ret = build_checkpoint(p, ckpt);
	if (ret)
		goto out_free_bufs;
	ret = build_super(o, p, sb);
	if (ret)
		goto out_free_bufs;

	step = "wipe old signatures on";
	ret = wipe_ends(p, zero);
	if (ret)
		goto out_io_error;
	step = "write the checkpoint to";
	ret = dmafs_dev_write(p->dev, ckpt, DMAFS_BLOCK_SIZE,
			      l->data_start * DMAFS_BLOCK_SIZE, 0);
	if (ret)
		goto out_io_error;
	step = "flush";
	ret = dmafs_dev_flush(p->dev);
	if (ret)
		goto out_io_error;
	step = "write the backup superblock to";
	ret = dmafs_dev_write(p->dev, sb, DMAFS_SB_SIZE,
			      l->backup_sb * DMAFS_BLOCK_SIZE, 0);
	if (ret)
		goto out_io_error;
	step = "flush";
	ret = dmafs_dev_flush(p->dev);
	if (ret)
		goto out_io_error;
	step = "write the superblock to";
	ret = dmafs_dev_write(p->dev, sb, DMAFS_SB_SIZE, 0, DMAFS_IO_FUA);
	if (ret)
		goto out_io_error;
	step = "flush";
	ret = dmafs_dev_flush(p->dev);
	if (ret)
		goto out_io_error;
	goto out_free_bufs;

out_io_error:
	fail("cannot %s %s: %s", step, o->path, strerror(-ret));
out_free_bufs:
	free(sb);
	free(ckpt);
	free(zero);
	return ret;
}

static void print_summary(const struct mkfs_opts *o,
			  const struct mkfs_plan *p)
{
	const struct dmafs_dev_info *d = &p->info;
	const struct dmafs_layout *l = &p->layout;
	uint64_t data_blocks = l->backup_sb - l->data_start;
	char uuid[37], h[32];

	if (o->dry_run)
		printf("dry run: would create a dmafs filesystem on %s\n",
		       o->path);
	else
		printf("created a dmafs filesystem on %s\n", o->path);

	if (d->is_nvme) {
		printf("  device type:  NVMe namespace\n");
		printf("  model:        %s\n", d->model);
		printf("  serial:       %s\n", d->serial);
		printf("  firmware:     %s\n", d->firmware);
		printf("  namespace:    %u\n", d->nsid);
		printf("  LBA format:   %u (%u-byte LBAs, %u bytes metadata)\n",
		       d->lbaf_index, d->lba_size, d->lbaf_ms);
		printf("  capacity:     %" PRIu64 " LBAs (%s)\n", d->nsze,
		       human(h, sizeof(h), d->nsze * d->lba_size));
		printf("  write cache:  %s\n",
		       d->vwc ? "volatile write cache present" :
				"no volatile write cache");
		if (d->max_transfer)
			printf("  max transfer: %s\n",
			       human(h, sizeof(h), d->max_transfer));
		else
			printf("  max transfer: no limit reported\n");
	} else if (p->target == TARGET_BLOCKDEV) {
		printf("  device type:  block device, %u-byte logical blocks, %s\n",
		       d->lba_size, human(h, sizeof(h), d->size));
	} else if (p->target == TARGET_NEW_FILE && !p->dev) {
		printf("  device type:  image file (would be created)\n");
	} else {
		printf("  device type:  image file%s\n",
		       p->created ? " (created)" :
		       p->extended ? " (extended)" : "");
	}

	format_uuid(uuid, p->uuid);
	printf("  label:        %s\n", o->label && *o->label ? o->label :
								 "(none)");
	printf("  UUID:         %s%s\n", uuid,
	       o->dry_run && !o->have_uuid ?
		       " (random; another on a real run)" : "");
	printf("  block size:   %u bytes\n", DMAFS_BLOCK_SIZE);
	printf("  size:         %" PRIu64 " blocks (%s)\n", l->total_blocks,
	       human(h, sizeof(h), l->total_blocks * DMAFS_BLOCK_SIZE));
	printf("  log:          %" PRIu64 " blocks (%s) at block %" PRIu64 "\n",
	       l->log_blocks,
	       human(h, sizeof(h), l->log_blocks * DMAFS_BLOCK_SIZE),
	       l->log_start);
	printf("  data area:    %" PRIu64 " blocks (%s) at block %" PRIu64 "\n",
	       data_blocks, human(h, sizeof(h), data_blocks * DMAFS_BLOCK_SIZE),
	       l->data_start);
	printf("  superblocks:  block 0 and block %" PRIu64 "\n", l->backup_sb);
}

int main(int argc, char **argv)
{
	struct mkfs_opts opts;
	struct mkfs_plan plan;
	int ret;

	ret = parse_args(argc, argv, &opts);
	if (ret)
		return ret > 0 ? 0 : 1;
	/* Debug messages stay with GLib: G_MESSAGES_DEBUG asked for them. */
	g_log_set_handler("dmafs-dev", G_LOG_LEVEL_WARNING |
			  G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_MESSAGE |
			  G_LOG_LEVEL_INFO, hold_dev_warning, NULL);
	ret = validate(&opts, &plan);
	if (ret)
		return 1;
	ret = calculate(&opts, &plan);
	if (ret)
		goto out_undo_target;
	if (!opts.dry_run) {
		ret = write_fs(&opts, &plan);
		if (ret)
			goto out_undo_target;
	}
	if (plan.dev)
		dmafs_dev_close(plan.dev);
	if (dev_warning[0])
		fprintf(stderr, PROG ": warning: %s\n", dev_warning);
	if (!opts.quiet) {
		print_summary(&opts, &plan);
		if (fflush(stdout) == EOF) {
			fail("cannot write the summary: %s", strerror(errno));
			return 1;
		}
	}
	return 0;

out_undo_target:
	if (plan.dev)
		dmafs_dev_close(plan.dev);
	undo_image(opts.path, &plan);
	return 1;
}
