#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The whole dmafs test suite: what the README and .ci/run call.
#
#   1. install the packages (scripts/deps.sh; it also loads the fuse module
#      when /dev/fuse is missing)
#   2. build "build" and the ASan/UBSan build "build-asan"
#   3. C unit tests (meson suite "unit"), on both builds
#   4. the pytest suite against "build"
#   5. the pytest suite against "build-asan", without the tests marked slow
#   6. tier 2: the VM tests with the patched kernel (tests/vm/suite.sh)
#
# A failing build stops at once; a failing test step does not stop the steps
# after it.  The exit status is non-zero if any step failed.  Works from any
# directory.  Usage: scripts/test.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build="$root/build"
build_asan="$root/build-asan"
asan_env=(
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
)

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

results=()
failed=0

die() {
	echo "test.sh: $*" >&2
	exit 1
}

# record NAME RC [DETAIL]: remember how a step ended.
record() {
	local name=$1 rc=$2 detail=${3:-}

	if [[ $rc -eq 0 ]]; then
		results+=("PASS  $name${detail:+  ($detail)}")
	else
		results+=("FAIL  $name (exit $rc)${detail:+  ($detail)}")
		failed=1
	fi
}

# step NAME CMD...: run a test step and record its result; keep going.
step() {
	local name=$1 rc=0

	shift
	echo
	echo "=== $name"
	"$@" || rc=$?
	record "$name" "$rc"
}

# pytest_step NAME VAR=VALUE... -- PYTEST-ARGS...: run the pytest suite with
# the environment given, and record its closing summary line.
total_passed=0
total_failed=0
pytest_step() {
	local name=$1 rc=0 log summary n
	local -a envs=()

	shift
	while [[ $1 != -- ]]; do
		envs+=("$1")
		shift
	done
	shift
	log="$logdir/pytest-${#results[@]}.log"
	echo
	echo "=== $name"
	env "${envs[@]}" pytest-3 -ra "$@" tests/ 2>&1 | tee "$log" || rc=$?
	summary=$(grep -E '^=+ .* in [0-9.]+s' "$log" | tail -n 1 | tr -d '=' |
		  sed -E 's/^ +| +$//g' || true)
	for n in $(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+'); do
		total_passed=$((total_passed + n))
	done
	for n in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" |
		   grep -oE '[0-9]+'); do
		total_failed=$((total_failed + n))
	done
	# A pytest that did not finish has failed even without a summary.
	if [[ $rc -ne 0 && $rc -ne 5 && -z $summary ]]; then
		total_failed=$((total_failed + 1))
	fi
	# Exit 5: nothing was collected.  A suite that ran no test has not
	# passed.
	if [[ $rc -eq 5 ]]; then
		summary="no tests collected"
	fi
	record "$name" "$rc" "$summary"
}

echo "=== dependencies"
bash scripts/deps.sh
[[ -c /dev/fuse ]] ||
	die "/dev/fuse is missing and 'modprobe fuse' did not create it"

echo
echo "=== build: $build"
bash scripts/build.sh "$build" || die "build of $build failed"
echo
echo "=== build: $build_asan (ASan + UBSan)"
bash scripts/build.sh "$build_asan" -Db_sanitize=address,undefined \
	-Db_lundef=false || die "build of $build_asan failed"

# Tier 1: any Linux with /dev/fuse, stock kernel.
step "unit tests (build)" \
	meson test -C "$build" --suite unit --print-errorlogs
step "unit tests (build-asan)" \
	env "${asan_env[@]}" \
	meson test -C "$build_asan" --suite unit --print-errorlogs
pytest_step "pytest (build)" DMAFS_BUILD="$build" --
pytest_step "pytest (build-asan, not slow)" \
	DMAFS_BUILD="$build_asan" "${asan_env[@]}" -- -m "not slow"

# ---------------------------------------------------------------------------
# Tier 2: the VM tests (patched 6.12 kernel under QEMU with an emulated NVMe
# controller; ARCHITECTURE.md, "Test tiers"; tests/vm/README.md).
# tests/vm/suite.sh builds the base and debug kernels (cached in
# ${DMAFS_KCACHE:-/var/cache/dmafs-kernel}; a cold build of both takes about
# 30 minutes on 2 cores) and runs pytest-3 tests/vm inside the VM: base
# kernel, debug kernel (KASAN, kmemleak, lockdep), 4 KiB LBAs, strict IOMMU.
# The VM runs the binaries of "build".  DMAFS_VM_CONFIGS narrows the
# configurations (e.g. "base,debug"); DMAFS_TEST_VM=0 leaves the tier out
# (a machine without QEMU, a quick local run).
if [[ ${DMAFS_TEST_VM:-1} == 0 ]]; then
	results+=("OFF   vm tests (DMAFS_TEST_VM=0)")
else
	step "vm tests (tests/vm/suite.sh)" \
		env DMAFS_BUILD="$build" bash tests/vm/suite.sh
fi
# ---------------------------------------------------------------------------

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
echo "pytest: $total_passed passed, $total_failed failed"
exit "$failed"
