// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * dmafs-check: what this kernel, its dma-buf exporters, the IOMMU and,
 * given a PATH, the file's filesystem and device support.  See
 * docs/man/dmafs-check.1.
 *
 * Exit status: 0 dma-buf I/O is available (the kernel has the io_uring
 * extension and, with PATH, a dma-buf registered against PATH gets dma-buf
 * mode, or PATH is on dmafs and FUSE forwarding is present where no
 * exporter was available to try); 1 it is not (the report says why);
 * 2 usage error; 3 operational error (PATH cannot be examined).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib.h>
#include <xf86drm.h>

#include "dmafs/dmafs.h"
#include "dmafs/fuse_dmafs.h"
#include "dev.h"

#define EXIT_AVAILABLE		0
#define EXIT_UNAVAILABLE	1
#define EXIT_USAGE		2
#define EXIT_ERROR		3

static gboolean opt_json;
static gboolean opt_quiet;

static GOptionEntry entries[] = {
	{ "json", 'j', 0, G_OPTION_ARG_NONE, &opt_json,
	  "print one JSON object instead of text", NULL },
	{ "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet,
	  "print nothing; only the exit status", NULL },
	{ NULL }
};

/* ---- the report: sections of key/value items, printed as text or JSON -- */

enum item_type { ITEM_STR, ITEM_NUM, ITEM_BOOL };

struct item {
	char *section;
	char *key;
	char *value;
	enum item_type type;
};

static GPtrArray *report;

static void item_free(gpointer p)
{
	struct item *it = p;

	g_free(it->section);
	g_free(it->key);
	g_free(it->value);
	g_free(it);
}

static void add(const char *section, const char *key, enum item_type type,
		char *value)
{
	struct item *it = g_new0(struct item, 1);

	it->section = g_strdup(section);
	it->key = g_strdup(key);
	it->value = value;
	it->type = type;
	g_ptr_array_add(report, it);
}

static void add_str(const char *section, const char *key, const char *v)
{
	add(section, key, ITEM_STR, g_strdup(v ? v : ""));
}

static void add_num(const char *section, const char *key, uint64_t v)
{
	add(section, key, ITEM_NUM, g_strdup_printf("%" PRIu64, v));
}

static void add_bool(const char *section, const char *key, bool v)
{
	add(section, key, ITEM_BOOL, g_strdup(v ? "true" : "false"));
}

static void json_string(GString *s, const char *v)
{
	g_string_append_c(s, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_printf(s, "\\%c", *p);
		else if (*p < 0x20)
			g_string_append_printf(s, "\\u%04x", *p);
		else
			g_string_append_c(s, *p);
	}
	g_string_append_c(s, '"');
}

static void print_report(bool available, const char *verdict)
{
	GString *s = g_string_new(NULL);
	const char *cur = NULL;

	if (opt_json) {
		g_string_append(s, "{\n");
		for (guint i = 0; i < report->len; i++) {
			struct item *it = report->pdata[i];

			if (!cur || strcmp(cur, it->section)) {
				if (cur)
					g_string_append(s, "\n  },\n");
				g_string_append(s, "  ");
				json_string(s, it->section);
				g_string_append(s, ": {\n");
				cur = it->section;
			} else {
				g_string_append(s, ",\n");
			}
			g_string_append(s, "    ");
			json_string(s, it->key);
			g_string_append(s, ": ");
			if (it->type == ITEM_STR)
				json_string(s, it->value);
			else
				g_string_append(s, it->value);
		}
		if (cur)
			g_string_append(s, "\n  },\n");
		g_string_append_printf(s, "  \"dmabuf_io_available\": %s,\n",
				       available ? "true" : "false");
		g_string_append(s, "  \"verdict\": ");
		json_string(s, verdict);
		g_string_append(s, "\n}\n");
	} else {
		for (guint i = 0; i < report->len; i++) {
			struct item *it = report->pdata[i];

			if (!cur || strcmp(cur, it->section)) {
				g_string_append_printf(s, "%s[%s]\n",
						       cur ? "\n" : "",
						       it->section);
				cur = it->section;
			}
			g_string_append_printf(s, "%s: %s\n", it->key,
					       it->value);
		}
		g_string_append_printf(s, "\ndma-buf I/O: %s\n",
				       available ? "available" :
						   "not available");
		g_string_append_printf(s, "verdict: %s\n", verdict);
	}
	fputs(s->str, stdout);
	g_string_free(s, TRUE);
}

/* ---- probes --------------------------------------------------------------- */

static char *read_line(const char *path)
{
	char *s = NULL;

	if (!g_file_get_contents(path, &s, NULL, NULL))
		return NULL;
	g_strchomp(s);
	return s;
}

/* Layer 1: an EMPTY extended update of a sparse slot. */
static int probe_layer1(void)
{
	int ret = dmafs_kernel_has_dmabuf();

	if (ret < 0) {
		add_str("kernel", "io_uring", g_strerror(-ret));
		add_str("kernel", "dmabuf_fixed_buffers", "unknown");
		return 0;
	}
	add_str("kernel", "io_uring", "available");
	add_str("kernel", "dmabuf_fixed_buffers", ret ? "present" : "absent");
	return ret;
}

/*
 * Layer 2: FUSE_DEV_IOC_DMAFS_FEATURES on an unconnected /dev/fuse fd.  A
 * kernel without it answers ENOTTY for any unknown fuse ioctl; one with it
 * may want a connection (an error other than ENOTTY) before it reports
 * feature bits.  1 present, 0 absent, -1 unknown.
 */
static int probe_layer2(void)
{
	__u64 feat = 0;
	int fd, ret;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		char *why = g_strdup_printf("unknown (/dev/fuse: %s)",
					    g_strerror(errno));

		add("kernel", "fuse_forwarding", ITEM_STR, why);
		return -1;
	}
	ret = ioctl(fd, FUSE_DEV_IOC_DMAFS_FEATURES, &feat);
	if (ret == 0) {
		add_str("kernel", "fuse_forwarding", "present");
		add_bool("kernel", "fuse_feat_extents",
			 feat & FUSE_DMAFS_FEAT_EXTENTS);
		add_bool("kernel", "fuse_feat_dmabuf",
			 feat & FUSE_DMAFS_FEAT_DMABUF);
		ret = 1;
	} else if (errno == ENOTTY) {
		add_str("kernel", "fuse_forwarding", "absent");
		ret = 0;
	} else {
		char *why = g_strdup_printf("present (features need a mounted "
					    "connection: %s)",
					    g_strerror(errno));

		add("kernel", "fuse_forwarding", ITEM_STR, why);
		ret = 1;
	}
	close(fd);
	return ret;
}

static void probe_exporters(void)
{
	struct dirent **names;
	char *limit;
	int n, nr_drm = 0;

	add_bool("exporters", "udmabuf", access("/dev/udmabuf", F_OK) == 0);
	limit = read_line("/sys/module/udmabuf/parameters/size_limit_mb");
	if (limit)
		add("exporters", "udmabuf_size_limit_mb", ITEM_NUM, limit);
	n = scandir("/dev/dri", &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		const char *d = names[i]->d_name;
		char path[300];
		drmVersionPtr v;
		int fd;

		if (strncmp(d, "card", 4) && strncmp(d, "renderD", 7))
			goto next;
		snprintf(path, sizeof(path), "/dev/dri/%s", d);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			add("exporters", path, ITEM_STR,
			    g_strdup_printf("cannot open: %s",
					    g_strerror(errno)));
			goto next;
		}
		v = drmGetVersion(fd);
		add("exporters", path, ITEM_STR,
		    g_strdup(v ? v->name : "not a DRM device"));
		if (v)
			drmFreeVersion(v);
		close(fd);
		nr_drm++;
next:
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	add_num("exporters", "drm_nodes", nr_drm);
}

/* Map a group's type to the IOMMU DMA mode it means. */
static const char *iommu_mode(const char *type)
{
	if (!strcmp(type, "DMA"))
		return "strict";
	if (!strcmp(type, "DMA-FQ"))
		return "lazy";
	if (!strcmp(type, "identity"))
		return "passthrough";
	if (!strcmp(type, "blocked"))
		return "blocked";
	return type;
}

static void probe_iommu(void)
{
	GHashTable *types = g_hash_table_new_full(g_str_hash, g_str_equal,
						  g_free, NULL);
	GDir *dir;
	const char *name;
	unsigned int units = 0, groups = 0;

	dir = g_dir_open("/sys/class/iommu", 0, NULL);
	while (dir && (name = g_dir_read_name(dir)))
		units++;
	if (dir)
		g_dir_close(dir);
	dir = g_dir_open("/sys/kernel/iommu_groups", 0, NULL);
	while (dir && (name = g_dir_read_name(dir))) {
		g_autofree char *p = g_strdup_printf(
			"/sys/kernel/iommu_groups/%s/type", name);
		char *t = read_line(p);

		groups++;
		if (t) {
			guint c = GPOINTER_TO_UINT(g_hash_table_lookup(types, t));

			g_hash_table_replace(types, t, GUINT_TO_POINTER(c + 1));
		}
	}
	if (dir)
		g_dir_close(dir);
	add_num("iommu", "units", units);
	add_num("iommu", "groups", groups);
	if (!units && !groups) {
		add_str("iommu", "mode", "none (no IOMMU, DMA uses physical "
			"addresses)");
	} else {
		GHashTableIter it;
		gpointer k, v;
		const char *best = NULL;
		guint bestc = 0;

		g_hash_table_iter_init(&it, types);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			if (GPOINTER_TO_UINT(v) > bestc) {
				best = k;
				bestc = GPOINTER_TO_UINT(v);
			}
		}
		add_str("iommu", "mode", best ? iommu_mode(best) : "unknown");
	}
	g_hash_table_destroy(types);
}

/* The mountinfo line of device dev: mount point, fs type, source. */
static bool mount_of(dev_t dev, char **mnt, char **fstype, char **source)
{
	g_autofree char *all = NULL;
	char **lines;
	bool found = false;

	if (!g_file_get_contents("/proc/self/mountinfo", &all, NULL, NULL))
		return false;
	lines = g_strsplit(all, "\n", -1);
	for (char **l = lines; *l && !found; l++) {
		char **f = g_strsplit(*l, " ", -1);
		unsigned int maj, min, n = g_strv_length(f), sep;

		if (n < 7 || sscanf(f[2], "%u:%u", &maj, &min) != 2 ||
		    makedev(maj, min) != dev)
			goto next;
		for (sep = 6; sep < n && strcmp(f[sep], "-"); sep++)
			;
		if (sep + 2 >= n)
			goto next;
		*mnt = g_strcompress(f[4]);
		*fstype = g_strdup(f[sep + 1]);
		*source = g_strcompress(f[sep + 2]);
		found = true;
next:
		g_strfreev(f);
	}
	g_strfreev(lines);
	return found;
}

static void probe_device(const char *dev)
{
	const struct dmafs_dev_info *info;
	struct dmafs_dev *d;
	int ret;

	add_str("device", "path", dev);
	ret = dmafs_dev_open(dev, DMAFS_DEV_RDONLY, &d);
	if (ret) {
		add_str("device", "error", g_strerror(-ret));
		return;
	}
	info = dmafs_dev_info(d);
	add_bool("device", "block_device", info->is_blockdev);
	add_num("device", "size", info->size);
	add_num("device", "logical_block_size", info->lba_size);
	add_bool("device", "nvme", info->is_nvme);
	if (info->is_nvme) {
		add_str("device", "model", info->model);
		add_str("device", "firmware", info->firmware);
		add_num("device", "nsid", info->nsid);
		add("device", "lba_format", ITEM_STR,
		    g_strdup_printf("%u (%u-byte blocks, %u metadata bytes)",
				    info->lbaf_index, info->lba_size,
				    info->lbaf_ms));
		add_bool("device", "volatile_write_cache", info->vwc);
		if (info->max_transfer)
			add_num("device", "mdts_bytes", info->max_transfer);
		else
			add_str("device", "mdts_bytes", "no limit");
	}
	dmafs_dev_close(d);
}

/*
 * Register a real dma-buf (udmabuf, else DRM) against the file: the mode
 * libdmafs would use.  1 dma-buf mode, 0 compat, -1 could not try.
 */
static int probe_registration(const char *path)
{
	struct dmafs_file *f = NULL;
	struct dmafs_ring *r = NULL;
	struct dmafs_buf *b = NULL;
	enum dmafs_reason why;
	int ret;

	ret = dmafs_file_open(path, O_RDONLY, 0, &f);
	if (ret) {
		add("file", "dmabuf_registration", ITEM_STR,
		    g_strdup_printf("cannot open O_DIRECT: %s",
				    g_strerror(-ret)));
		return -1;
	}
	ret = dmafs_buf_alloc_udmabuf(1 << 16, &b);
	if (ret)
		ret = dmafs_buf_alloc_drm(NULL, 1 << 16, &b);
	if (ret) {
		add_str("file", "dmabuf_registration",
			"not tried (no dma-buf exporter)");
		ret = -1;
		goto out;
	}
	ret = dmafs_ring_create(1, 1, 0, &r);
	if (!ret)
		ret = dmafs_ring_register(r, 0, b, f);
	if (ret) {
		add("file", "dmabuf_registration", ITEM_STR,
		    g_strdup_printf("failed: %s", g_strerror(-ret)));
		ret = 0;
		goto out;
	}
	if (dmafs_ring_slot_mode(r, 0, &why) == DMAFS_MODE_DMABUF) {
		add_str("file", "dmabuf_registration", "dmabuf mode");
		ret = 1;
	} else {
		add("file", "dmabuf_registration", ITEM_STR,
		    g_strdup_printf("compat mode: %s", dmafs_reason_str(why)));
		ret = 0;
	}
out:
	dmafs_ring_destroy(r);
	dmafs_buf_free(b);
	dmafs_file_close(f);
	return ret;
}

/* 0 ok, -errno when path cannot be examined; *verdict about the path. */
static int probe_path(const char *path, int layer1, int layer2,
		      bool *available, const char **verdict)
{
	g_autofree char *mnt = NULL, *fstype = NULL, *source = NULL;
	struct stat st, sst;
	bool daemon_compat = false;
	int on;

	if (stat(path, &st) < 0)
		return -errno;
	add_str("file", "path", path);
	on = dmafs_path_is_dmafs(path);
	add_bool("file", "on_dmafs", on == 1);
	if (S_ISBLK(st.st_mode)) {
		add_str("file", "type", "block device");
		probe_device(path);
	} else {
		add_str("file", "type", S_ISREG(st.st_mode) ? "regular file" :
			S_ISDIR(st.st_mode) ? "directory" : "other");
		if (mount_of(st.st_dev, &mnt, &fstype, &source)) {
			add_str("file", "mount_point", mnt);
			add_str("file", "fs_type", fstype);
			add_str("file", "source", source);
		}
	}
	if (on == 1) {
		/* docs/kernel-extension.md: "kext" or "compat". */
		char mode[16];
		ssize_t n = getxattr(path, "user.dmafs.mode", mode,
				     sizeof(mode) - 1);

		if (n >= 0) {
			mode[n] = 0;
			add_str("file", "daemon_mode", mode);
			daemon_compat = !strcmp(mode, "compat");
		} else {
			add("file", "daemon_mode", ITEM_STR,
			    g_strdup_printf("unknown (user.dmafs.mode: %s)",
					    g_strerror(errno)));
		}
		if (source && stat(source, &sst) == 0)
			probe_device(source);
	} else if (!S_ISBLK(st.st_mode)) {
		char sys[64];
		g_autofree char *devname = NULL;
		g_autofree char *link = NULL;

		snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u",
			 major(st.st_dev), minor(st.st_dev));
		link = g_file_read_link(sys, NULL);
		if (link) {
			devname = g_strconcat("/dev/", strrchr(link, '/') + 1,
					      NULL);
			probe_device(devname);
		}
	}

	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		int reg = layer1 == 1 ? probe_registration(path) : 0;

		if (reg == 1) {
			*available = true;
			*verdict = "dma-buf I/O works on this file";
		} else if (reg == -1 && on == 1 && layer2 == 1 &&
			   !daemon_compat) {
			*available = true;
			*verdict = "the kernel has both layers (no exporter to "
				   "try a registration)";
		} else {
			*available = false;
			*verdict = layer1 != 1 ?
				"the kernel lacks the io_uring dma-buf "
				"extension: libdmafs uses compat mode" :
				on != 1 ? "the file is not on dmafs: libdmafs "
					  "uses compat mode" :
				"dma-buf registration against this file does "
				"not give dma-buf mode: libdmafs uses compat "
				"mode";
		}
	} else {
		*available = layer1 == 1 && on == 1 && layer2 != 0 &&
			     !daemon_compat;
		*verdict = *available ? "the kernel has the extension and the "
					"path is on dmafs" :
			   layer1 != 1 ? "the kernel lacks the io_uring dma-buf "
					 "extension: libdmafs uses compat mode" :
			   on != 1 ? "the path is not on dmafs" :
			   daemon_compat ? "the dmafs daemon runs in compat "
					   "mode" :
				     "the kernel lacks FUSE forwarding";
	}
	return 0;
}

int main(int argc, char **argv)
{
	g_autoptr(GError) err = NULL;
	GOptionContext *ctx;
	const char *verdict;
	struct utsname u;
	bool available;
	int layer1, layer2, ret;

	ctx = g_option_context_new("[PATH]");
	g_option_context_set_summary(ctx,
		"Report what this kernel and device support for dma-buf I/O:\n"
		"the io_uring dma-buf extension, FUSE forwarding, dma-buf\n"
		"exporters, the IOMMU and, for PATH, its filesystem and "
		"device.");
	g_option_context_set_description(ctx,
		"Exit status: 0 dma-buf I/O available, 1 not available, "
		"2 usage error, 3 PATH cannot be examined.");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc > 2) {
		fprintf(stderr, "dmafs-check: %s\n",
			err ? err->message : "at most one PATH");
		g_option_context_free(ctx);
		return EXIT_USAGE;
	}
	g_option_context_free(ctx);

	report = g_ptr_array_new_with_free_func(item_free);
	uname(&u);
	add_str("kernel", "release", u.release);
	add_str("kernel", "libdmafs", dmafs_version());
	layer1 = probe_layer1();
	layer2 = probe_layer2();
	probe_exporters();
	probe_iommu();

	available = layer1 == 1;
	verdict = available ? "the kernel has the io_uring dma-buf extension" :
			      "the kernel lacks the io_uring dma-buf "
			      "extension: libdmafs uses compat mode";
	if (argc == 2) {
		ret = probe_path(argv[1], layer1, layer2, &available,
				 &verdict);
		if (ret) {
			fprintf(stderr, "dmafs-check: %s: %s\n", argv[1],
				g_strerror(-ret));
			g_ptr_array_free(report, TRUE);
			return EXIT_ERROR;
		}
	}
	if (!opt_quiet)
		print_report(available, verdict);
	g_ptr_array_free(report, TRUE);
	return available ? EXIT_AVAILABLE : EXIT_UNAVAILABLE;
}
