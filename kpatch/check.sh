#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Check the kernel patch series the way a maintainer would: apply
# kpatch/series one patch at a time to a freshly extracted Debian
# linux-source-6.12 tree, run checkpatch on each patch, and build after each.
#
# Usage: kpatch/check.sh [--full|--quick] [--no-build] [-j N] [--workdir DIR] [--keep]
#
#   --full       build bzImage after every patch (the strict check; on a
#                2-core machine each header change rebuilds most of the tree,
#                count an hour or more)
#   --quick      objects only, also after the last patch: no bzImage link
#   --no-build   only apply and checkpatch
#   -j N         parallel make jobs (default: $DMAFS_KJOBS or nproc)
#   --workdir D  where to extract and build (default: a fresh directory under
#                ${TMPDIR:-/var/tmp}); it is deleted at the end unless --keep
#   --keep       keep the work directory
#
# Without --full, each patch is followed by a build of the objects of every
# .c file the series has touched so far (objects that the configuration
# does not build are skipped), which compiles every user of the interfaces
# the series adds or changes, and the last patch by a full bzImage build
# and link.
#
# Config: tinyconfig + kpatch/config/base.config (the VM tier's fragment),
# then olddefconfig; CONFIG_DMABUF_IO must come out =y.
#
# Exit status: 0 if every patch applies, is checkpatch clean (no errors,
# warnings or checks with --strict) and builds; 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tarball=/usr/src/linux-source-6.12.tar.xz
series=$here/series
fragment=$here/config/base.config

full=0
quick=0
build=1
keep=0
jobs=${DMAFS_KJOBS:-$(nproc)}
workdir=

usage() {
	sed -n '/^# Usage:/,/^#   --keep/s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--full) full=1 ;;
	--quick) quick=1 ;;
	--no-build) build=0 ;;
	--keep) keep=1 ;;
	-j) [[ $# -ge 2 ]] || usage 2; jobs=$2; shift ;;
	-j*) jobs=${1#-j} ;;
	--workdir) [[ $# -ge 2 ]] || usage 2; workdir=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "check.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
	esac
	shift
done

die() {
	echo "check.sh: $*" >&2
	exit 1
}

[[ -r $tarball ]] || die "$tarball is missing (apt-get install linux-source-6.12)"
[[ -r $series ]] || die "$series is missing"
[[ -r $fragment ]] || die "$fragment is missing"

# The patches, in order: non-blank lines of the series that are not comments.
mapfile -t patches < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$series" | grep -v '^$')
[[ ${#patches[@]} -gt 0 ]] || die "the series lists no patches"
for p in "${patches[@]}"; do
	[[ -r $here/$p ]] || die "patch $p is listed but missing"
done

if [[ -z $workdir ]]; then
	workdir=$(mktemp -d "${TMPDIR:-/var/tmp}/dmafs-kpatch-check.XXXXXX")
else
	mkdir -p "$workdir"
fi
cleanup() {
	if [[ $keep -eq 0 ]]; then
		rm -rf "$workdir"
	else
		echo "work directory kept: $workdir"
	fi
}
trap cleanup EXIT

src=$workdir/src
out=$workdir/build
rm -rf "$src" "$out"
mkdir -p "$src" "$out"
echo "extracting $tarball"
tar xf "$tarball" -C "$src" --strip-components=1

kmake() {
	make -s -C "$src" O="$out" "$@"
}

if [[ $build -eq 1 ]]; then
	echo "configuring: tinyconfig + ${fragment#"$here"/}"
	kmake tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" \
		"$fragment" >/dev/null
	kmake olddefconfig
fi

# The objects of the .c files a patch touches.
patch_objects() {
	sed -n 's|^+++ b/\(.*\)\.c$|\1.o|p' "$1"
}

# Whether the configuration builds dir/name.o, judged from the lines of
# dir/Makefile that name it: built if one of them names no CONFIG_ symbol
# (obj-y, or a continuation line) or names one that is set.  Single-object
# targets compile even when the configuration does not build them, so the
# others must not be asked for.
obj_enabled() {
	local mk=$src/${1%/*}/Makefile name=${1##*/} line sym
	[[ -r $mk ]] || return 0
	while read -r line; do
		sym=$(grep -o 'CONFIG_[A-Za-z0-9_]*' <<<"$line" | head -n 1) || true
		[[ -z $sym ]] && return 0
		grep -q "^$sym=[ym]" "$out/.config" && return 0
	done < <(grep -E "(^|[[:space:]=])${name//./\\.}([[:space:]]|\\\\|\$)" "$mk")
	return 1
}

fail=0
summary=()
objects=()
n=0
for p in "${patches[@]}"; do
	n=$((n + 1))
	echo "=== [$n/${#patches[@]}] $p"
	status=

	if ! patch -d "$src" -p1 --quiet --forward --no-backup-if-mismatch \
		<"$here/$p"; then
		summary+=("$p: DOES NOT APPLY")
		fail=1
		break
	fi

	# checkpatch from the tree being patched: the 6.12 rules
	cp_out=$(cd "$src" && perl scripts/checkpatch.pl --strict --no-tree \
		-q "$here/$p" 2>&1) || true
	if [[ -n $cp_out ]]; then
		echo "$cp_out"
		status="checkpatch: $(echo "$cp_out" | grep -c '^\(ERROR\|WARNING\|CHECK\)') issue(s)"
		fail=1
	else
		status="checkpatch clean"
	fi

	if [[ $build -eq 1 ]]; then
		log=$workdir/build-$n.log
		mapfile -t -O "${#objects[@]}" objects < <(patch_objects "$here/$p")
		mapfile -t objects < <(printf '%s\n' "${objects[@]}" | sort -u)
		start=$SECONDS
		if [[ $full -eq 1 ]] ||
			[[ $quick -eq 0 && $n -eq ${#patches[@]} ]]; then
			what="bzImage"
			kmake -j"$jobs" bzImage >"$log" 2>&1 && ok=1 || ok=0
		else
			targets=()
			for o in "${objects[@]}"; do
				obj_enabled "$o" && targets+=("$o")
			done
			what="${#targets[@]} objects"
			if kmake -j"$jobs" "${targets[@]}" >"$log" 2>&1; then
				ok=1
			else
				ok=0
			fi
		fi
		if [[ $ok -eq 1 ]]; then
			status+=", builds ($what, $((SECONDS - start)) s)"
		else
			grep -v 'No rule to make target' "$log" | tail -n 40
			status+=", BUILD FAILED ($what)"
			summary+=("$p: $status")
			fail=1
			break
		fi
		if grep -q 'warning:' "$log"; then
			grep 'warning:' "$log" | head -n 20
			status+=", compiler warnings"
			fail=1
		fi
		if [[ $n -eq 1 ]] && ! grep -q '^CONFIG_DMABUF_IO=y' "$out/.config"; then
			status+=", CONFIG_DMABUF_IO not set"
			fail=1
		fi
	fi
	summary+=("$p: $status")
done

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
if [[ $fail -eq 0 ]]; then
	echo "PASS"
else
	echo "FAIL"
fi
exit "$fail"
