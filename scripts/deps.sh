#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install the Debian 12 packages that dmafs needs to build and test, and make
# sure /dev/fuse exists.  Idempotent and fast when nothing is missing: apt is
# only touched (update + install) if dpkg-query reports a package absent.
#
# Runs as root, or through sudo when it is available.  Never asks questions.
# Usage: scripts/deps.sh
set -euo pipefail

packages=(
	# build
	build-essential
	meson
	ninja-build
	pkg-config
	libfuse3-dev
	liburing-dev
	libnvme-dev
	# libnvme.pc lists json-c and openssl in Requires.private, and Debian
	# 12's libnvme-dev does not depend on their -dev packages: without
	# them pkg-config, and so meson, cannot find libnvme.
	libjson-c-dev
	libssl-dev
	libglib2.0-dev
	libblkid-dev
	libdrm-dev
	# tests
	python3-pytest
	fuse3
	attr
	acl
	e2fsprogs
	fuse2fs
	util-linux
	kmod
	xxd
	# fuzz/: libFuzzer with ASan/UBSan (llvm-14 symbolizes reports)
	clang-14
	libclang-rt-14-dev
	llvm-14
)

export DEBIAN_FRONTEND=noninteractive

die() {
	printf 'deps.sh: %s\n' "$*" >&2
	exit 1
}

# Run a command as root: directly, or through sudo when we are not root.
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo env DEBIAN_FRONTEND=noninteractive "$@"
	else
		die "must run as root to run '$*' (sudo is not available)"
	fi
}

# Run a command as root quietly, showing its output only if it fails.
quiet() {
	local log rc=0

	log=$(mktemp)
	as_root "$@" >"$log" 2>&1 </dev/null || rc=$?
	if [[ $rc -ne 0 ]]; then
		cat "$log" >&2
		rm -f "$log"
		die "'$*' failed (exit $rc)"
	fi
	rm -f "$log"
}

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -gt 0 ]]; then
	echo "deps.sh: installing ${missing[*]}"
	apt_opts=(-q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
	quiet apt-get "${apt_opts[@]}" update
	quiet apt-get "${apt_opts[@]}" install --no-install-recommends \
		"${missing[@]}"
fi

# The FUSE tests and the demo need /dev/fuse.  Load the module if the node is
# missing; where the kernel has FUSE but no devtmpfs made the node (some
# containers), create it (misc major 10, minor 229).
if [[ ! -c /dev/fuse ]]; then
	as_root modprobe fuse >/dev/null 2>&1 || true
	if [[ ! -c /dev/fuse ]] && grep -qw fuse /proc/filesystems; then
		as_root mknod -m 0666 /dev/fuse c 10 229 || true
	fi
	[[ -c /dev/fuse ]] ||
		echo "deps.sh: warning: /dev/fuse is missing and 'modprobe fuse' did not create it" >&2
fi
exit 0
