# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Sourced by bench/vm-*.sh after they set "here": the options they share
# (--quick, --secs, --reps, --kernel, --out), the build, and the results
# directory.  Sets repo, secs, reps, kernel (tests/vm/run options), out and
# build; the caller's "$@" is parsed and consumed.
repo=$(cd "$here/.." && pwd)
secs=5
reps=2
kernel=()
out=
prog=${0##*/}

while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) secs=2; reps=1 ;;
	--secs) secs=$2; shift ;;
	--reps) reps=$2; shift ;;
	--kernel) kernel=(--kernel "$2"); shift ;;
	--out) out=$2; shift ;;
	-h | --help) sed -n '/^# Usage:/,/^# Needs/{/^# Needs/d;s/^# \{0,1\}//p}' "$0"; exit 0 ;;
	*) echo "$prog: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done

build=${DMAFS_BUILD:-$repo/build}
[[ -x $build/bench/dmabuf_bench ]] || "$repo/scripts/build.sh"
[[ -x $build/bench/dmabuf_bench ]] ||
	{ echo "$prog: no $build/bench/dmabuf_bench" >&2; exit 1; }

if [[ -z $out ]]; then
	out=$(mktemp -d "${TMPDIR:-/var/tmp}/dmafs-vm-bench.XXXXXX")
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
