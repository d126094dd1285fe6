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
# shellcheck source=bench/vm/args.sh
. "$here/vm/args.sh"
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
