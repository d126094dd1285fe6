#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The forwarding overhead of kernel layer 2, in the tier-2 VM: random
# dma-buf READ_FIXED from a 256 MiB file on dmafs (kext mode: the kernel
# goes through the file's extent map to the namespace) against the same
# reads from the raw namespace, and against O_DIRECT reads into registered
# buffers that the daemon serves (-o nokext).  Shapes: 4 KiB qd 1, 4 KiB
# qd 32, 128 KiB qd 8.  Prints IOPS and CPU time per I/O and the ratios
# file/raw (the forwarding overhead; the aim is >= 0.95) and
# file/daemon, from this one run.
#
# Usage: bench/vm-dmafs.sh [--quick] [--secs S] [--reps N] [--kernel FILE]
#                          [--out DIR]
#
# Needs root and a build (scripts/build.sh).  Not a test: CI does not run it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
secs=5
reps=2
kernel=()
out=

while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) secs=2; reps=1 ;;
	--secs) secs=$2; shift ;;
	--reps) reps=$2; shift ;;
	--kernel) kernel=(--kernel "$2"); shift ;;
	--out) out=$2; shift ;;
	-h | --help) sed -n '/^# Usage:/,/^#  *\[--out/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "vm-dmafs.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done

build=${DMAFS_BUILD:-$repo/build}
[[ -x $build/bench/dmabuf_bench ]] || "$repo/scripts/build.sh"

if [[ -z $out ]]; then
	out=$(mktemp -d "${TMPDIR:-/var/tmp}/dmafs-vm-bench.XXXXXX")
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
log=$out/vm.log
echo "vm-dmafs.sh: running the matrix (${secs}s x $reps)" >&2
if ! "$repo/tests/vm/run" "${kernel[@]}" --nvme-size 2G \
	--env "DMAFS_BUILD=$build" -- bench/vm/dmafs-matrix.sh "$secs" "$reps" \
	>"$log" 2>&1; then
	echo "vm-dmafs.sh: the VM run failed; its log:" >&2
	tail -40 "$log" >&2
	exit 1
fi
sed -n 's/^.*BENCH \({.*}\)[[:space:]]*$/\1/p' "$log" >"$out/results.jsonl"
python3 "$here/vm/report-dmafs.py" "$out/results.jsonl"
