#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the dmafs VM test kernel: Debian's linux-source-6.12 plus the patches
# in kpatch/series, configured from tinyconfig + kpatch/config/base.config
# (+ kpatch/config/debug.config with --debug).  Prints the bzImage's path as
# the last line of stdout; everything else goes to stderr.
#
# Usage: tests/vm/kernel-build.sh [--debug] [--force] [--headers] [-j N]
#                                 [--kpatch DIR]
#
#   --debug        the debug variant: KASAN, kmemleak, lockdep, ... (debug.config)
#   --headers      print the directory of the kernel's installed user API
#                  headers (make headers_install) instead of the bzImage
#   --force        rebuild even when the cache has this kernel
#   -j N           parallel make jobs (default: $DMAFS_KJOBS or 3)
#   --kpatch DIR   take series, patches and config/ from DIR, not kpatch/
#
# Cache: ${DMAFS_KCACHE:-/var/cache/dmafs-kernel}/<key>/bzImage and
# <key>/usr/include (the user API headers), where <key>
# is the sha256 of everything that goes into the kernel: the linux-source
# package version, kpatch/series, every listed patch, the config fragments,
# the --debug flag, the compiler version and this script.  A cache hit does
# nothing else.  Next to bzImage: config (the final .config),
# build.log and info (the key's inputs and the build time).  The 10 most
# recently used kernels are kept.
#
# Source trees: the tarball is extracted once per package version into
# <cache>/src/<version>/ (read-only by convention).  Each build hard-link
# copies it (cp -al, seconds) into a private directory, applies the series
# there (patch(1) replaces the files it changes, so the shared tree is never
# written), builds out of tree (O=) next to it and deletes both at the end.
# Builds of the same key are serialised with a lock; different keys build in
# parallel.
set -euo pipefail

# The script is one compound command, which bash reads in full before running
# it: editing the file while it runs (a checkout, a colleague) cannot derail
# it.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"

tarball=/usr/src/linux-source-6.12.tar.xz
kpatch="$vm_repo/kpatch"
keep_entries=10

debug=0
force=0
result=bzImage
jobs=${DMAFS_KJOBS:-3}

usage() {
	sed -n '/^# Usage:/,/^#   --kpatch/s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--debug) debug=1 ;;
	--force) force=1 ;;
	--headers) result=usr/include ;;
	-j) [[ $# -ge 2 ]] || usage 2; jobs=$2; shift ;;
	-j*) jobs=${1#-j} ;;
	--kpatch)
		[[ $# -ge 2 ]] || usage 2
		kpatch=$(cd "$2" && pwd) || vm_die "no directory '$2'"
		shift
		;;
	-h | --help) usage 0 ;;
	*) vm_note "unknown argument '$1'"; usage 2 >&2 ;;
	esac
	shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || vm_die "-j wants a positive number, not '$jobs'"
series="$kpatch/series"
# show PATH: PATH relative to the repository when inside it
show() {
	printf '%s' "${1#"$vm_repo"/}"
}
frag_base="$kpatch/config/base.config"
frag_debug="$kpatch/config/debug.config"

variant=base
frags=("$frag_base")
if [[ $debug -eq 1 ]]; then
	variant=debug
	frags+=("$frag_debug")
fi

vm_deps
[[ -r $tarball ]] || vm_die "$tarball is missing (package linux-source-6.12)"
for f in "${frags[@]}"; do
	[[ -r $f ]] || vm_die "config fragment $f is missing"
done

# --- the series ------------------------------------------------------------
# patches[i]: path of the i-th patch; pstrip[i]: its -pN (default 1).
patches=()
pstrip=()
if [[ -e $series ]]; then
	series_name=$(show "$series")
	lineno=0
	while IFS= read -r line || [[ -n $line ]]; do
		lineno=$((lineno + 1))
		line=${line%%#*}
		read -r -a words <<<"$line"
		[[ ${#words[@]} -eq 0 ]] && continue
		strip=1
		for w in "${words[@]:1}"; do
			case $w in
			-p[0-9]) strip=${w#-p} ;;
			*) vm_die "$series_name line $lineno: unknown option '$w'" ;;
			esac
		done
		p="$kpatch/${words[0]}"
		[[ -f $p ]] ||
			vm_die "$series_name line $lineno: patch '${words[0]}' not found in $(show "$kpatch")/"
		patches+=("$p")
		pstrip+=("$strip")
	done <"$series"
fi

# --- the cache key -----------------------------------------------------------
pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || echo unknown)
srcver="$pkgver $(stat -c '%s %Y' "$tarball")"
ccver=$(gcc --version)
ccver=${ccver%%$'\n'*}
key_inputs() {
	local i f

	echo "dmafs-vm-kernel 1"
	echo "source: $srcver"
	echo "compiler: $ccver"
	echo "debug: $debug"
	echo "series: $(if [[ -e $series ]]; then sha256sum <"$series"; else echo none; fi)"
	for i in "${!patches[@]}"; do
		echo "patch ${patches[i]#"$vm_repo"/} -p${pstrip[i]}: $(sha256sum <"${patches[i]}")"
	done
	for f in "${frags[@]}"; do
		echo "fragment ${f#"$vm_repo"/}: $(sha256sum <"$f")"
	done
	echo "script: $(sha256sum <"$here/kernel-build.sh")"
}
key=$(key_inputs | sha256sum | cut -c1-64)
entry="$vm_kcache/$key"

if [[ $force -eq 0 && -f $entry/bzImage ]]; then
	touch "$entry" 2>/dev/null || true
	vm_note "cached $variant kernel $key"
	echo "$entry/$result"
	exit 0
fi

mkdir -p "$vm_kcache/src" "$vm_kcache/locks"

# Serialise builds of the same kernel; wait for a concurrent one to finish.
exec 8>"$vm_kcache/locks/$key"
if ! flock -n 8; then
	vm_note "waiting for another build of this kernel ($key)"
	flock 8
fi
if [[ $force -eq 0 && -f $entry/bzImage ]]; then
	vm_note "cached $variant kernel $key (built meanwhile)"
	echo "$entry/$result"
	exit 0
fi

# Remove what builds killed without cleanup left behind.
for d in "$vm_kcache"/build.*; do
	[[ -d $d ]] || continue
	pid=${d##*.}
	[[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null && rm -rf "$d"
done

work="$vm_kcache/build.$key.$$"
# shellcheck disable=SC2317 # called from the trap
cleanup() {
	rm -rf "$work" "$entry.new.$$"
}
trap cleanup EXIT
trap 'vm_note interrupted; exit 130' INT
trap 'vm_note terminated; exit 143' TERM
mkdir -p "$work"
log="$work/build.log"
t0=$(date +%s)

# fail MSG: show the end of the build log, keep it, and stop.
fail() {
	if [[ -s $log ]]; then
		echo "--- last lines of the build log:" >&2
		tail -n 40 "$log" >&2
		cp "$log" "$vm_kcache/last-failure.log" 2>/dev/null &&
			vm_note "full log: $vm_kcache/last-failure.log"
	fi
	vm_die "$*"
}

# --- pristine source, extracted once per package version ----------------------
pristine="$vm_kcache/src/$(printf '%s' "$srcver" | tr -c 'A-Za-z0-9.+~-' '_')"
(
	flock 7
	if [[ ! -f $pristine/.complete ]]; then
		vm_note "extracting $tarball ($pkgver)"
		rm -rf "$pristine" "$pristine.tmp"
		mkdir -p "$pristine.tmp"
		tar -xf "$tarball" -C "$pristine.tmp" --strip-components=1
		touch "$pristine.tmp/.complete"
		mv "$pristine.tmp" "$pristine"
	fi
) 7>"$vm_kcache/locks/src"
[[ -f $pristine/Makefile ]] || vm_die "$pristine does not look like a kernel tree"
kver=$(make -s -C "$pristine" kernelversion 2>/dev/null || echo "?")

vm_note "building the $variant kernel $kver + ${#patches[@]} patch(es), key $key"
src="$work/src"
obj="$work/obj"
cp -al "$pristine" "$src"
rm -f "$src/.complete"
mkdir -p "$obj"

# --- patches ---------------------------------------------------------------------
for i in "${!patches[@]}"; do
	p=${patches[i]}
	vm_note "applying $(show "$p")"
	if ! out=$(patch -d "$src" -p"${pstrip[i]}" --batch --forward --fuzz=0 \
			--no-backup-if-mismatch -i "$p" 2>&1); then
		printf '%s\n' "$out" >&2
		vm_die "patch $(show "$p") (number $((i + 1)) in $(show "$series")) does not apply to $kver"
	fi
	printf '%s\n' "$out" >>"$log"
	# patch(1) writes a new file for each one it changes, which breaks the
	# hard link to the shared tree.  Make sure of it.
	while IFS= read -r f; do
		[[ -e $src/$f ]] || continue
		if [[ $(stat -c %h "$src/$f") -ne 1 ]]; then
			rm -rf "$pristine"
			vm_die "patching $f wrote through a hard link into the shared source tree; removed it, run again"
		fi
	done < <(sed -n "s/^patching file '\{0,1\}\([^']*\)'\{0,1\}$/\1/p" <<<"$out")
done

# --- configuration ------------------------------------------------------------------
kmake() {
	make -C "$src" O="$obj" KBUILD_BUILD_USER=dmafs KBUILD_BUILD_HOST=vm \
		"$@"
}

vm_note "configuring: tinyconfig + ${frags[*]#"$vm_repo"/}"
{
	kmake tinyconfig &&
		(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m .config "${frags[@]}") &&
		kmake olddefconfig
} >>"$log" 2>&1 </dev/null || fail "configuring the kernel failed"

# Every option the fragments ask for must be in the final .config: Kconfig
# drops, without an error, any option whose dependencies are not met.
declare -A want=()
declare -A want_from=()
for f in "${frags[@]}"; do
	while IFS= read -r line; do
		if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
			want[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
		elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set ]]; then
			want[${BASH_REMATCH[1]}]=n
		else
			continue
		fi
		want_from[${BASH_REMATCH[1]}]=${f#"$vm_repo"/}
	done <"$f"
done
declare -A have=()
while IFS= read -r line; do
	if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
		have[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
	fi
done <"$obj/.config"
bad=0
for opt in $(printf '%s\n' "${!want[@]}" | sort); do
	w=${want[$opt]}
	h=${have[$opt]:-n}
	[[ $w == "$h" ]] && continue
	# "is not set" is also met by an option that does not exist.
	[[ $w == n && -z ${have[$opt]:-} ]] && continue
	if [[ $bad -eq 0 ]]; then
		vm_note "options the fragments request but the final .config lacks:"
	fi
	bad=$((bad + 1))
	printf '  %s=%s requested by %s, but the .config has %s\n' \
		"$opt" "$w" "${want_from[$opt]}" \
		"$([[ -n ${have[$opt]:-} ]] && echo "$opt=${have[$opt]}" || echo "it unset")" >&2
done
if [[ $bad -ne 0 ]]; then
	cp "$obj/.config" "$vm_kcache/last-failure.config" 2>/dev/null || true
	vm_die "$bad requested option(s) missing (unmet dependencies?); the .config: $vm_kcache/last-failure.config"
fi

# --- build -------------------------------------------------------------------------
vm_note "make -j$jobs bzImage (log: $log)"
t1=$(date +%s)
if ! kmake -s -j"$jobs" bzImage >>"$log" 2>&1 </dev/null; then
	fail "building the kernel failed"
fi
t2=$(date +%s)
[[ -f $obj/arch/x86/boot/bzImage ]] || fail "make succeeded but produced no bzImage"

times >"$work/times"
new="$entry.new.$$"
mkdir -p "$new"
cp "$obj/arch/x86/boot/bzImage" "$new/bzImage"
# The patched kernel's user API headers (linux/io_uring.h with
# io_uring_regbuf_desc, linux/fuse.h with the extent-map ioctls), for
# programs written against them rather than against include/dmafs/:
# cc -I "$(tests/vm/kernel-build.sh --headers)" ...
kmake -s headers_install INSTALL_HDR_PATH="$new/usr" >>"$log" 2>&1 </dev/null ||
	fail "make headers_install failed"
cp "$obj/.config" "$new/config"
cp "$log" "$new/build.log"
{
	key_inputs
	echo "kernel: $kver"
	echo "variant: $variant"
	echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((t2 - t0)) s (make: $((t2 - t1)) s, -j$jobs)"
	# CPU time of the build (user, system), less sensitive to other load
	# on the machine than the wall time.
	echo "cpu (user, system): $(tail -n 1 "$work/times")"
} >"$new/info"
rm -rf "$entry"
mv "$new" "$entry"

# Keep the most recently used kernels only.
mapfile -t old < <(find "$vm_kcache" -mindepth 1 -maxdepth 1 -type d \
	-regextype posix-extended -regex '.*/[0-9a-f]{64}' -printf '%T@ %p\n' |
	sort -rn | tail -n +$((keep_entries + 1)) | cut -d' ' -f2-)
for d in "${old[@]}"; do
	[[ $d == "$entry" ]] || rm -rf "$d" "$vm_kcache/locks/${d##*/}"
done
# ... and the locks of kernels that failed to build, after a day.
find "$vm_kcache/locks" -maxdepth 1 -type f -mtime +0 -regextype posix-extended \
	-regex '.*/[0-9a-f]{64}' -printf '%f\n' | while IFS= read -r k; do
	[[ -d $vm_kcache/$k ]] || rm -f "$vm_kcache/locks/$k"
done

vm_note "built the $variant kernel in $(vm_fmt_secs $((t2 - t0))) (make $(vm_fmt_secs $((t2 - t1))))"
echo "$entry/$result"
exit
}
