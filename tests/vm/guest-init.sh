#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# PID 1 of the dmafs test VM (booted by tests/vm/run; not for the host).
#
# The root file system is the host's, read-only over 9p.  This script gives
# the guest its own /proc, /sys and /dev, then (guest-fstab) debugfs, fusectl,
# tmpfs on /tmp, /run, /var/tmp, /root and /dev/shm, and the host's results
# directory (9p tag "out") on /run/out; runs the command in /run/out/cmd with
# the environment in /run/out/env, its stdin /dev/null, and leaves there:
#
#   status     the command's exit status
#   kmemleak   kmemleak's report after two scans (when DMAFS_VM_KMEMLEAK=1)
#   dmesg      the kernel log
#
# then powers the VM off.  No `set -e`: PID 1 must reach the power-off.
set -u

# The script is one compound command, which bash reads in full before running
# it: editing the file while it runs (a checkout, a colleague) cannot derail
# it.
{

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1

log() {
	echo "guest-init: $*"
	echo "dmafs-vm: $*" >/dev/kmsg 2>/dev/null
}

poweroff_now() {
	sync
	poweroff -f >/dev/null 2>&1
	echo o >/proc/sysrq-trigger
	sleep 30
	# Still here (no ACPI?): let the kernel panic; QEMU runs with
	# -no-reboot and panic=-1, so it exits.
	exit 1
}

# The host's /proc, /sys and /dev show through the 9p root as directories on
# other devices, so `mountpoint` would take them for mounts: decide from
# /proc/mounts once the guest's own /proc is there.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mounted() {
	local mp

	while read -r _ mp _; do
		[[ $mp == "$1" ]] && return 0
	done </proc/mounts
	return 1
}
mounted /dev || mount -t devtmpfs devtmpfs /dev
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
# The rest in one process: every program started costs here (9p, TCG).
mount -a -T "${0%/*}/guest-fstab" ||
	echo "guest-init: warning: not everything in guest-fstab mounted" >&2
if ! mounted /run/out; then
	echo "guest-init: cannot mount the results share (9p tag 'out')" >&2
	poweroff_now
fi
echo dmafs-vm >/proc/sys/kernel/hostname
ip link set lo up 2>/dev/null

# shellcheck source=/dev/null
. /run/out/env
cd "${DMAFS_VM_CWD:-/}" || echo "guest-init: cannot cd to ${DMAFS_VM_CWD:-}" >&2

read -r up _ </proc/uptime
log "up after $up s; running: $(</run/out/cmd.txt)"
start=$SECONDS
bash /run/out/cmd </dev/null
rc=$?
echo "$rc" >/run/out/status
log "command exited with status $rc after $((SECONDS - start)) s"

if [[ ${DMAFS_VM_KMEMLEAK:-0} == 1 ]]; then
	if [[ -w /sys/kernel/debug/kmemleak ]]; then
		# An object is reported only once it is older than 5 s and was
		# found unreferenced by a scan; scan twice, some seconds apart.
		log "kmemleak: scanning"
		echo scan >/sys/kernel/debug/kmemleak
		sleep 6
		echo scan >/sys/kernel/debug/kmemleak
		cat /sys/kernel/debug/kmemleak >/run/out/kmemleak
		log "kmemleak: done"
	else
		echo "kmemleak is not available in this kernel" >/run/out/kmemleak-missing
	fi
fi

dmesg >/run/out/dmesg
poweroff_now
}
