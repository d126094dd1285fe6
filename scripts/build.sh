#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Configure (or reconfigure) and compile dmafs.
#
# Usage: scripts/build.sh [BUILDDIR] [meson setup args...]
#   BUILDDIR defaults to "build" in the repository root; a relative BUILDDIR
#   is taken relative to the current directory.  Arguments after it go to
#   `meson setup`, e.g. an ASan/UBSan build:
#     scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

builddir="$root/build"
if [[ $# -gt 0 && $1 != -* ]]; then
	builddir=$1
	shift
fi
[[ $builddir == /* ]] || builddir="$PWD/$builddir"

cd "$root"
if [[ -f $builddir/meson-private/coredata.dat ]]; then
	meson setup --reconfigure "$builddir" "$@"
else
	meson setup "$builddir" "$@"
fi
meson compile -C "$builddir"
