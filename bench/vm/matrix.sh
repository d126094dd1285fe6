#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Inside the tier-2 VM (bench/vm-dmabuf.sh runs it through tests/vm/run):
# the dmabuf_bench matrix on $DMAFS_VM_NVME, one "BENCH {json}" line per
# run on stdout.  Arguments: SECONDS REPS.
set -euo pipefail

secs=${1:-5}
reps=${2:-1}
dev=${DMAFS_VM_NVME:?not in the VM}
prog=${DMAFS_BUILD:-$DMAFS_REPO/build}/bench/dmabuf_bench
iommu=${DMAFS_VM_IOMMU:-0}

# Give the reads real data: the first 256 MiB written once (QEMU reads
# unwritten parts of a sparse image faster than written ones).
dd if=/dev/urandom of="$dev" bs=1M count=256 oflag=direct status=none

for ((r = 0; r < reps; r++)); do
	for shape in "4096 1" "4096 32" "131072 8"; do
		read -r bs qd <<<"$shape"
		# Rotate the order per repetition so drift does not favour one.
		modes=(dmabuf regbuf pread)
		modes=("${modes[@]:r%3}" "${modes[@]:0:r%3}")
		for m in "${modes[@]}"; do
			out=$("$prog" "$dev" -m "$m" -b "$bs" -q "$qd" -t "$secs" \
				-s 256M -S $((r + 1)))
			echo "BENCH {\"iommu\": $iommu, \"rep\": $r, ${out#\{}"
		done
	done
done
