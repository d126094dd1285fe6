#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The whole VM test tier: build the test kernels (cached) and run the VM
# pytest suite, `pytest-3 tests/vm`, inside QEMU in each configuration:
#
#   base      the base kernel, 512-byte LBAs
#   debug     the debug kernel (KASAN, kmemleak, lockdep, ...), 512-byte LBAs
#   lba4096   the base kernel, 4096-byte LBAs
#   iommu     the base kernel behind an emulated Intel IOMMU in strict mode
#
# Between the builds and the runs, include/dmafs/io_uring_dmabuf.h is
# compiled against the base kernel's installed uapi headers
# (tests/vm/uapi_check.c).
#
# Usage: tests/vm/suite.sh [--debug] [--configs LIST] [--kvm] [--timeout S]
#                          [-- PYTEST-ARGS...]
#
#   --debug          only the debug configuration (same as --configs debug)
#   --configs LIST   comma-separated configurations to run, in that order
#                    (default: $DMAFS_VM_CONFIGS or base,debug,lba4096,iommu)
#   --kvm            pass --kvm to tests/vm/run
#   --timeout S      limit for each VM run (default 2400 s)
#
# A configuration fails when pytest fails or collects nothing, or when the
# kernel log reports a bug or a leak (tests/vm/run).  Exit status 1 if any
# configuration failed.  Works from any directory.
set -euo pipefail

# The script is one compound command, which bash reads in full before running
# it: editing the file while it runs (a checkout, a colleague) cannot derail
# it.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"

configs=${DMAFS_VM_CONFIGS:-base,debug,lba4096,iommu}
timeout=2400
run_opts=()

usage() {
	sed -n '/^# Usage:/,/^#   --timeout/s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--debug) configs=debug ;;
	--configs) [[ $# -ge 2 ]] || usage 2 >&2; configs=$2; shift ;;
	--kvm) run_opts+=(--kvm) ;;
	--timeout) [[ $# -ge 2 ]] || usage 2 >&2; timeout=$2; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) vm_note "unknown argument '$1'"; usage 2 >&2 ;;
	esac
	shift
done
pytest_args=("$@")

IFS=, read -r -a list <<<"$configs"
[[ ${#list[@]} -gt 0 ]] || vm_die "no configuration to run"
need_base=0
need_debug=0
for c in "${list[@]}"; do
	case $c in
	base | lba4096 | iommu) need_base=1 ;;
	debug) need_debug=1 ;;
	*) vm_die "unknown configuration '$c' (base, debug, lba4096, iommu)" ;;
	esac
done

results=()
failed=0
t_start=$(date +%s)

# Build first: a kernel that does not build fails every configuration using
# it, and the build times show apart from the test times.
kernel_base=
kernel_debug=
for v in base debug; do
	[[ $v == base && $need_base -eq 0 ]] && continue
	[[ $v == debug && $need_debug -eq 0 ]] && continue
	echo "=== vm suite: $v kernel"
	t0=$(date +%s)
	flag=()
	[[ $v == debug ]] && flag=(--debug)
	if k=$("$here/kernel-build.sh" "${flag[@]}" </dev/null | tail -n 1); then
		results+=("PASS  build $v kernel ($(vm_fmt_secs $(($(date +%s) - t0))))")
		printf -v "kernel_$v" '%s' "$k"
	else
		results+=("FAIL  build $v kernel")
		failed=1
	fi
done

# The user API headers against the patched kernel's own uapi headers, which
# declare the API the way the upstream proposal does (enum constants), and
# the extent-map ioctls.
if [[ -n $kernel_base ]]; then
	echo "=== vm suite: include/dmafs/ uapi headers with the kernel's headers"
	if hdrs=$("$here/kernel-build.sh" --headers </dev/null | tail -n 1) &&
		cc -fsyntax-only -Wall -Werror -D_GNU_SOURCE \
			-DDMAFS_HAVE_KERNEL_REGBUF_DESC -I "$hdrs" \
			-I "$vm_repo/include" "$here/uapi_check.c"; then
		results+=("PASS  uapi header against the kernel's headers")
	else
		results+=("FAIL  uapi header against the kernel's headers")
		failed=1
	fi
fi

for c in "${list[@]}"; do
	opts=("${run_opts[@]}" --timeout "$timeout")
	case $c in
	base) k=$kernel_base ;;
	debug) k=$kernel_debug; opts+=(--debug) ;;
	lba4096) k=$kernel_base; opts+=(--lba 4096) ;;
	iommu) k=$kernel_base; opts+=(--iommu) ;;
	esac
	if [[ -z $k ]]; then
		results+=("FAIL  $c (no kernel)")
		continue
	fi
	echo
	echo "=== vm suite: $c"
	t0=$(date +%s)
	rc=0
	"$here/run" "${opts[@]}" --kernel "$k" -- \
		pytest-3 -ra -p no:cacheprovider "${pytest_args[@]}" tests/vm \
		</dev/null || rc=$?
	dt=$(vm_fmt_secs $(($(date +%s) - t0)))
	if [[ $rc -eq 0 ]]; then
		results+=("PASS  $c ($dt)")
	else
		case $rc in
		5) why="pytest collected no test" ;;
		124) why="timeout" ;;
		*) why="exit $rc" ;;
		esac
		results+=("FAIL  $c ($why, $dt)")
		failed=1
	fi
done

echo
echo "=== vm suite summary ($(vm_fmt_secs $(($(date +%s) - t_start))))"
printf '%s\n' "${results[@]}"
exit "$failed"
}
