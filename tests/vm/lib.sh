# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Shared helpers of the VM test tier scripts (sourced, not run).
#
#   vm_repo          the repository root (absolute)
#   vm_kcache        the kernel cache directory (${DMAFS_KCACHE:-/var/cache/dmafs-kernel})
#   vm_die MSG       print "<script>: MSG" to stderr and exit 1
#   vm_note MSG      print "<script>: MSG" to stderr
#   vm_deps          install the packages the VM tier needs, if any is missing
#   vm_fmt_secs N    "4m49s"

vm_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
{
	vm_repo=$(cd "$vm_lib_dir/../.." && pwd)
	vm_kcache=${DMAFS_KCACHE:-/var/cache/dmafs-kernel}
}
vm_prog=$(basename "$0")

vm_note() {
	printf '%s: %s\n' "$vm_prog" "$*" >&2
}

vm_die() {
	vm_note "$*"
	exit 1
}

vm_fmt_secs() {
	printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# The Debian packages the VM tier needs: the kernel source, what building it
# takes (rsync for make headers_install), QEMU, and pytest for the tests
# inside the guest.
vm_packages=(
	linux-source-6.12
	build-essential
	bc
	bison
	flex
	libelf-dev
	libssl-dev
	cpio
	kmod
	xz-utils
	rsync
	qemu-system-x86
	python3-pytest
	liburing-dev
	util-linux
)

# vm_deps: install whatever of vm_packages is missing (apt-get update first,
# noninteractive); do nothing, and touch no network, when all are there.
vm_deps() {
	local pkg status log rc=0
	local -a missing=()
	local -a apt_opts=(-q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)

	for pkg in "${vm_packages[@]}"; do
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		[[ $status == "install ok installed" ]] || missing+=("$pkg")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	[[ $EUID -eq 0 ]] ||
		vm_die "missing packages ${missing[*]}; run as root to install them"
	vm_note "installing ${missing[*]}"
	log=$(mktemp)
	{
		DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update &&
			DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
				install --no-install-recommends "${missing[@]}"
	} >"$log" 2>&1 </dev/null || rc=$?
	if [[ $rc -ne 0 ]]; then
		cat "$log" >&2
		rm -f "$log"
		vm_die "installing ${missing[*]} failed (exit $rc)"
	fi
	rm -f "$log"
}
