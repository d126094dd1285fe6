#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Sanity checks of the dmafs test VM, run INSIDE it:
#
#   tests/vm/run -- tests/vm/smoke.sh          # all checks
#   tests/vm/run -- tests/vm/smoke.sh nvme dio # some
#   tests/vm/smoke.sh --list                   # the check names
#
# Checks: the patched kernel is running (kernel), the NVMe namespace with the
# expected logical block size (nvme), O_DIRECT dd round trip on it (dio),
# io_uring fixed-buffer I/O on it (uring), /dev/fuse (fuse), udmabuf
# (udmabuf), vgem as /dev/dri/card0 (vgem), the system dma-buf heap (heap),
# and with --iommu the Intel IOMMU in strict mode in front of the NVMe
# controller (iommu).  Expectations come from the variables tests/vm/run sets
# (DMAFS_VM_LBA, DMAFS_VM_IOMMU, DMAFS_VM_DEBUG, DMAFS_VM_NVME_SIZE).  A
# missing device is a failure, never a skip.  Exit status 1 if any check
# failed.
#
# shellcheck disable=SC2317 # the check_* functions are called by name
set -euo pipefail

# The script is one compound command, which bash reads in full before running
# it: editing the file while it runs (a checkout, a colleague) cannot derail
# it.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dev=${DMAFS_VM_NVME:-/dev/nvme0n1}
lba=${DMAFS_VM_LBA:-512}
all=(kernel nvme dio uring fuse udmabuf vgem heap)
[[ ${DMAFS_VM_IOMMU:-0} == 1 ]] && all+=(iommu)

fail() {
	echo "$*" >&2
	return 1
}

# The probe program, compiled in the guest (the host's compiler and liburing
# headers are visible through the read-only root) into the guest's /tmp.
probe() {
	local bin="${TMPDIR:-/tmp}/dmafs-vm-probe"

	if [[ ! -x $bin || $here/vm_probe.c -nt $bin ]]; then
		cc -O2 -Wall -o "$bin.$$" "$here/vm_probe.c" -luring ||
			fail "cannot compile vm_probe.c" || return
		mv "$bin.$$" "$bin"
	fi
	"$bin" "$@"
}

check_kernel() {
	local cfg opt

	[[ $(uname -r) == 6.12.* ]] || fail "kernel $(uname -r), not 6.12" || return
	[[ -f /proc/config.gz ]] || fail "no /proc/config.gz" || return
	cfg=$(zcat /proc/config.gz)
	for opt in IO_URING FUSE_FS BLK_DEV_NVME UDMABUF DRM_VGEM; do
		grep -qx "CONFIG_$opt=y" <<<"$cfg" || fail "CONFIG_$opt is not y" || return
	done
	if [[ ${DMAFS_VM_DEBUG:-0} == 1 ]]; then
		for opt in KASAN DEBUG_KMEMLEAK PROVE_LOCKING; do
			grep -qx "CONFIG_$opt=y" <<<"$cfg" ||
				fail "debug kernel without CONFIG_$opt" || return
		done
	fi
	echo "kernel $(uname -r) ($(uname -v))"
}

check_nvme() {
	local name=${dev#/dev/} ss size

	[[ -b $dev ]] || fail "$dev is not a block device" || return
	ss=$(<"/sys/block/$name/queue/logical_block_size")
	[[ $ss == "$lba" ]] || fail "$dev has $ss-byte logical blocks, expected $lba" || return
	[[ $(blockdev --getss "$dev") == "$lba" ]] ||
		fail "blockdev --getss $dev is not $lba" || return
	size=$(blockdev --getsize64 "$dev")
	if [[ -n ${DMAFS_VM_NVME_SIZE:-} && $size != "$DMAFS_VM_NVME_SIZE" ]]; then
		fail "$dev has $size bytes, expected $DMAFS_VM_NVME_SIZE" || return
	fi
	[[ $(<"/sys/block/$name/device/serial") == dmafs0* ]] ||
		fail "$dev is not the dmafs0 controller" || return
	echo "$dev: $size bytes, $ss-byte logical blocks, serial dmafs0"
}

check_dio() {
	local t mib=16

	t=$(mktemp -d)
	head -c $((mib << 20)) /dev/urandom >"$t/pattern"
	if ! dd if="$t/pattern" of="$dev" bs=1M count="$mib" seek=1 \
		oflag=direct status=none; then
		rm -rf "$t"
		fail "O_DIRECT write to $dev failed"
		return
	fi
	if ! dd if="$dev" of="$t/back" bs=1M count="$mib" skip=1 \
		iflag=direct status=none; then
		rm -rf "$t"
		fail "O_DIRECT read from $dev failed"
		return
	fi
	if ! cmp -s "$t/pattern" "$t/back"; then
		rm -rf "$t"
		fail "O_DIRECT read-back of $dev differs from what was written"
		return
	fi
	rm -rf "$t"
	echo "O_DIRECT dd: $mib MiB written to $dev and read back identical"
}

check_uring() {
	probe uring "$dev" "$lba"
}

check_fuse() {
	[[ -c /dev/fuse ]] || fail "/dev/fuse is missing" || return
	exec 3<>/dev/fuse || fail "cannot open /dev/fuse" || return
	exec 3>&-
	echo "/dev/fuse opens"
}

check_udmabuf() {
	[[ -c /dev/udmabuf ]] || fail "/dev/udmabuf is missing" || return
	probe udmabuf
}

check_vgem() {
	[[ -c /dev/dri/card0 ]] || fail "/dev/dri/card0 is missing" || return
	probe vgem /dev/dri/card0
}

check_heap() {
	[[ -c /dev/dma_heap/system ]] || fail "/dev/dma_heap/system is missing" || return
	probe heap /dev/dma_heap/system
}

check_iommu() {
	local name=${dev#/dev/} grp

	compgen -G '/sys/class/iommu/dmar*' >/dev/null ||
		fail "no Intel IOMMU (/sys/class/iommu/dmar*)" || return
	grp=$(readlink -f "/sys/block/$name/device/device/iommu_group" 2>/dev/null) ||
		true
	[[ -n $grp && -d $grp ]] || fail "the NVMe controller is in no IOMMU group" || return
	# Strict mode: type DMA; lazy invalidation would be DMA-FQ.
	[[ $(<"$grp/type") == DMA ]] ||
		fail "the NVMe controller's IOMMU domain is $(<"$grp/type"), not DMA (strict)" || return
	[[ $(dmesg) == *"TLB invalidation policy: strict mode"* ]] ||
		fail "the IOMMU is not in strict mode" || return
	echo "IOMMU: NVMe controller in group ${grp##*/}, domain $(<"$grp/type"), strict"
}

if [[ ${1:-} == --list ]]; then
	printf '%s\n' "${all[@]}"
	exit 0
fi
checks=("$@")
[[ ${#checks[@]} -gt 0 ]] || checks=("${all[@]}")

failed=0
for c in "${checks[@]}"; do
	if ! declare -F "check_$c" >/dev/null; then
		echo "FAIL $c: no such check (have: ${all[*]})"
		failed=1
		continue
	fi
	if out=$("check_$c" 2>&1); then
		echo "ok   $c: $out"
	else
		echo "FAIL $c: $out"
		failed=1
	fi
done
exit "$failed"
}
