// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tools/fsck.c, compiled into the fuzz targets unchanged: main() becomes
 * fsck_main(), printf/vprintf go to fuzz_fsck_out and stderr to
 * fuzz_fsck_err, so the harness can run fsck in-process many times a second
 * and read what it said.  The wrappers at the end run the namespace and
 * space phases on a state built in memory.
 */
#include <stdarg.h>
#include <stdio.h>

#include "fuzz.h"

FILE *fuzz_fsck_out;
FILE *fuzz_fsck_err;

#undef stderr
#define stderr fuzz_fsck_err
#define printf(...) fprintf(fuzz_fsck_out, __VA_ARGS__)
#define vprintf(fmt, ap) vfprintf(fuzz_fsck_out, fmt, ap)
#define main fsck_main
#include "../tools/fsck.c"
#undef main
#undef printf
#undef vprintf
#undef stderr

struct fsck *fuzz_fsck_new(bool repair)
{
	struct fsck *f = g_new0(struct fsck, 1);

	f->mode = repair ? MODE_YES : MODE_CHECK;
	f->device = "(memory)";
	dmafs_fs_init(&f->fs, f->device, !repair);
	f->fs.report = report_hook;
	the_fsck = f;
	return f;
}

struct dmafs_fs *fuzz_fsck_fs(struct fsck *f)
{
	return &f->fs;
}

void fuzz_fsck_select(struct fsck *f)
{
	the_fsck = f;
}

void fuzz_fsck_phases(struct fsck *f)
{
	the_fsck = f;
	check_namespace(f);
	check_space(f);
}

unsigned int fuzz_fsck_errors(const struct fsck *f)
{
	return f->errors;
}

unsigned int fuzz_fsck_notes(const struct fsck *f)
{
	return f->notes;
}

void fuzz_fsck_free(struct fsck *f)
{
	dmafs_fs_destroy(&f->fs);
	if (the_fsck == f)
		the_fsck = NULL;
	g_free(f);
}
