#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# dma-buf I/O benchmark in the tier-2 VM (kernel extension, layer 1): random
# reads from the emulated NVMe namespace into
#
#   dmabuf   a udmabuf registered as a dma-buf fixed buffer (READ_FIXED)
#   regbuf   an ordinary registered buffer (READ_FIXED)
#   pread    plain O_DIRECT reads (pread(2) at qd 1, IORING_OP_READ above)
#
# at 4 KiB qd 1, 4 KiB qd 32 and 128 KiB qd 8, once without an IOMMU and
# once behind an emulated Intel IOMMU in strict mode (iommu.strict=1).  It
# prints IOPS and CPU time per I/O and the ratios dmabuf/regbuf,
# dmabuf/pread and strict-IOMMU/no-IOMMU, all from this one run.  Absolute
# numbers on an emulated controller under TCG mean little; the ratios say
# what the dma-buf path costs or saves per I/O (mapping once at
# registration instead of pinning and mapping per I/O).
#
# Usage: bench/vm-dmabuf.sh [--quick] [--secs S] [--reps N] [--kernel FILE]
#                           [--out DIR]
#
#   --quick        2 s per run, one repetition (default 5 s, 2 repetitions)
#   --kernel FILE  boot FILE instead of the cached/built base kernel
#   --out DIR      keep the VM logs and results.jsonl there
#
# Needs root (QEMU with the host root over 9p, like tests/vm/run) and a
# build (scripts/build.sh).  Not a test: nothing in CI runs it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/vm/args.sh
. "$here/vm/args.sh"
: >"$out/results.jsonl"

for iommu in 0 1; do
	opts=("${kernel[@]}" --nvme-size 2G --env "DMAFS_BUILD=$build")
	[[ $iommu -eq 1 ]] && opts+=(--iommu)
	log=$out/vm-iommu$iommu.log
	echo "vm-dmabuf.sh: running the matrix (iommu=$iommu, ${secs}s x $reps)" >&2
	if ! "$repo/tests/vm/run" "${opts[@]}" -- \
		bench/vm/matrix.sh "$secs" "$reps" >"$log" 2>&1; then
		echo "vm-dmabuf.sh: the VM run failed; its log:" >&2
		tail -40 "$log" >&2
		exit 1
	fi
	sed -n 's/^.*BENCH \({.*}\)[[:space:]]*$/\1/p' "$log" >>"$out/results.jsonl"
done

python3 "$here/vm/report-dmabuf.py" "$out/results.jsonl"
