#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Inside the tier-2 VM (bench/vm-dmafs.sh runs it through tests/vm/run):
# dma-buf reads from a file on dmafs against the same on the raw namespace,
# and against O_DIRECT reads that the daemon serves.  One "BENCH {json}"
# line per run on stdout.  Arguments: SECONDS REPS.
set -euo pipefail

secs=${1:-5}
reps=${2:-1}
dev=${DMAFS_VM_NVME:?not in the VM}
build=${DMAFS_BUILD:-$DMAFS_REPO/build}
prog=$build/bench/dmabuf_bench
mnt=/run/dmafs-bench
span=256M

mkdir -p "$mnt"
"$build/tools/mkfs.dmafs" -q -f "$dev"

mount_fs() {
	"$build/fs/dmafs" "$@" "$dev" "$mnt"
	for _ in $(seq 100); do
		mountpoint -q "$mnt" && return 0
		sleep 0.1
	done
	echo "dmafs-matrix: the mount did not appear" >&2
	exit 1
}

mount_fs
mode=$(getfattr --only-values -n user.dmafs.mode "$mnt")
[[ $mode == kext ]] || { echo "dmafs-matrix: daemon in $mode mode" >&2; exit 1; }
# One preallocated file with real data; the O_DIRECT open that follows
# installs its map.
dd if=/dev/urandom of="$mnt/data" bs=1M count=256 status=none
sync "$mnt/data"

# run TARGET-LABEL TARGET MODE BS QD
run() {
	local label=$1 target=$2 m=$3 bs=$4 qd=$5 out

	out=$("$prog" "$target" -m "$m" -b "$bs" -q "$qd" -t "$secs" -s "$span" \
		-S $((r + 1)))
	echo "BENCH {\"target\": \"$label\", \"rep\": $r, ${out#\{}"
}

for ((r = 0; r < reps; r++)); do
	for shape in "4096 1" "4096 32" "131072 8"; do
		read -r bs qd <<<"$shape"
		run file "$mnt/data" dmabuf "$bs" "$qd"
		run file "$mnt/data" regbuf "$bs" "$qd"
	done
done
fusermount3 -u "$mnt"

# The raw namespace (the file's extents are there too; reads only).
for ((r = 0; r < reps; r++)); do
	for shape in "4096 1" "4096 32" "131072 8"; do
		read -r bs qd <<<"$shape"
		run raw "$dev" dmabuf "$bs" "$qd"
	done
done

# The daemon serving O_DIRECT (compat mode).
mount_fs -o nokext
for ((r = 0; r < reps; r++)); do
	for shape in "4096 1" "4096 32" "131072 8"; do
		read -r bs qd <<<"$shape"
		run daemon "$mnt/data" regbuf "$bs" "$qd"
	done
done
fusermount3 -u "$mnt"
