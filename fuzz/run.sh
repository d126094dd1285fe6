#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the libFuzzer targets (if needed) and run each for a bounded time
# on a copy of its seed corpus.  Any crash, leak, sanitizer report, violated
# invariant or hang (an input running over 10 s) fails the run.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#        fuzz/run.sh --build
#   SECONDS  per target, default 60
#   TARGET   fuzz_format, fuzz_image (default: both)
#   --build  only configure and build; print the directory of the targets
# Environment:
#   DMAFS_FUZZ_BUILD  build directory (default: build-fuzz in the repository)
#   FUZZ_CC           the compiler (default: clang, else clang-14 ...; $CC is
#                     not used, as it may well name gcc for the rest)
#   FUZZ_ARGS         extra libFuzzer arguments (e.g. -jobs=2, -seed=1)
#
# Prints, for each target, "fuzz: <target> <n> executions, 0 crashes" and
# exits 0, or says what failed, where the input that did it was saved, and
# exits 1.  Setup problems (no clang, no libFuzzer) exit 2.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_only=false
if [[ ${1:-} == --build ]]; then
	build_only=true
	set -- 1
fi
seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_format fuzz_image)
builddir=${DMAFS_FUZZ_BUILD:-$root/build-fuzz}
[[ $builddir == /* ]] || builddir="$PWD/$builddir"

die() {
	printf 'fuzz/run.sh: %s\n' "$*" >&2
	exit 2
}

[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] ||
	die "SECONDS must be a positive integer, not '$seconds'"
for t in "${targets[@]}"; do
	[[ $t == fuzz_format || $t == fuzz_image ]] || die "unknown target '$t'"
done

# clang and its libFuzzer runtime (Debian 12: clang-14, libclang-rt-14-dev;
# scripts/deps.sh installs them).
cc=${FUZZ_CC:-}
if [[ -z $cc ]]; then
	for c in clang clang-14 clang-15 clang-16; do
		if command -v "$c" >/dev/null 2>&1; then
			cc=$c
			break
		fi
	done
fi
[[ -n $cc ]] && command -v "$cc" >/dev/null 2>&1 ||
	die "${cc:-clang} not found: the fuzz targets need clang (apt-get install clang-14 libclang-rt-14-dev, or scripts/deps.sh)"
"$cc" --version 2>/dev/null | grep -q clang ||
	die "$cc is not clang (FUZZ_CC): libFuzzer needs clang"
rt=$("$cc" -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
if [[ $rt != /* || ! -f $rt ]]; then
	rt=$("$cc" -print-resource-dir 2>/dev/null || true)
	rt=$rt/lib/linux/libclang_rt.fuzzer-x86_64.a
	[[ -f $rt ]] ||
		die "the libFuzzer runtime of $cc is missing (apt-get install libclang-rt-14-dev, or scripts/deps.sh)"
fi

# Run a build step quietly; show its output if it fails.
quiet() {
	local out

	if ! out=$("$@" 2>&1); then
		printf '%s\n' "$out" | tail -n 40 >&2
		die "'$*' failed"
	fi
}

# Configure once; later runs only rebuild what changed.
if [[ ! -f $builddir/build.ninja ]]; then
	quiet env CC="$cc" meson setup "$builddir" "$root" -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false
elif ! grep -q 'fuzz_format' "$builddir/build.ninja"; then
	quiet meson configure "$builddir" -Dfuzz=true
fi
quiet ninja -C "$builddir" "${targets[@]/#/fuzz/}"
if $build_only; then
	echo "$builddir/fuzz"
	exit 0
fi

# Every ASan/UBSan report is fatal (-fno-sanitize-recover); leaks are
# checked after each input.  Stack traces are symbolized when
# llvm-symbolizer is installed (Debian: llvm-14).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

work=$(mktemp -d "${TMPDIR:-/tmp}/dmafs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=$builddir/fuzz-artifacts
status=0
summary=()

for t in "${targets[@]}"; do
	case $t in
	fuzz_format) max_len=69632 ;;	# a superblock and a 16-block chunk
	fuzz_image) max_len=16384 ;;
	esac
	mkdir -p "$work/$t" "$artifacts/$t"
	cp -r "$root/fuzz/corpus/$t" "$work/$t/corpus"
	log=$work/$t/log
	rc=0
	# shellcheck disable=SC2086
	"$builddir/fuzz/$t" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
		-artifact_prefix="$artifacts/$t/" ${FUZZ_ARGS:-} \
		"$work/$t/corpus" >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
		awk '{ n += $1 } END { print n + 0 }')
	if [[ $rc -ne 0 ]] || grep -q '^SUMMARY: \|^==[0-9]*== ERROR' "$log"; then
		status=1
		echo "fuzz: $t FAILED after $execs executions (exit $rc):" >&2
		grep -E 'fuzz invariant|ERROR|SUMMARY|runtime error|Test unit written|timeout' \
			"$log" | head -20 >&2
		cp "$log" "$artifacts/$t/last.log"
		echo "fuzz: $t: full log in $artifacts/$t/last.log" >&2
		summary+=("fuzz: $t $execs executions, FAILED")
	else
		summary+=("fuzz: $t $execs executions, 0 crashes")
	fi
done
printf '%s\n' "${summary[@]}"
exit $status
