#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# dmafs in a few minutes, on an image file (no NVMe device needed): install
# the packages, build, make a fresh 1 GiB sparse image, mount it, use it,
# unmount, mount it again and check that everything is still there.
#
# Usage: scripts/demo.sh [DIR]
#   The image is DIR/demo.img (DIR is created if needed; default: a new
#   temporary directory).  An image already there is replaced.  The daemon's
#   log is DIR/dmafs.log.  Exits non-zero on any failure, and always
#   unmounts.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build"
dmafs="$build/fs/dmafs"
mkfs="$build/tools/mkfs.dmafs"
fsck="$build/tools/fsck.dmafs"

mnt=
pid=
ref=

die() {
	echo "demo.sh: $*" >&2
	exit 1
}

say() {
	printf '\n==> %s\n' "$*"
}

# Print a command (quoted as a shell would need it), then run it.
show() {
	printf '$'
	printf ' %q' "$@"
	printf '\n'
	"$@"
}

cleanup() {
	local rc=$?

	set +e
	if [[ -n $mnt ]] && mountpoint -q "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" ||
			umount -l "$mnt"
	fi
	if [[ -n $pid ]]; then
		# Give the daemon time to write its unmount checkpoint.
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	[[ -n $mnt ]] && rmdir "$mnt" 2>/dev/null
	[[ -n $ref ]] && rm -f "$ref"
	if [[ $rc -ne 0 ]]; then
		if [[ -s ${log:-} ]]; then
			echo "--- last lines of $log:" >&2
			tail -n 30 "$log" >&2
		fi
		echo "demo.sh: FAILED" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start the daemon in the foreground (in the background of this script, so
# that we know its pid and exit status) and wait until the mount is up.
mount_fs() {
	say "Mount: dmafs $img $mnt"
	echo "--- mount $(date -Is)" >>"$log"
	"$dmafs" -f "$img" "$mnt" >>"$log" 2>&1 </dev/null &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		if mountpoint -q "$mnt"; then
			show findmnt "$mnt"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			local rc=0

			wait "$pid" || rc=$?
			pid=
			die "dmafs exited (status $rc) before mounting; see $log"
		fi
		sleep 0.1
	done
	die "dmafs did not mount $mnt within 10 s; see $log"
}

# Unmount, then wait for the daemon: a FUSE unmount returns before the daemon
# has written its checkpoint and exited.  It must exit with status 0.
umount_fs() {
	local rc=0

	say "Unmount"
	show fusermount3 -u "$mnt"
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null &&
		die "dmafs still running 30 s after unmount; see $log"
	wait "$pid" || rc=$?
	pid=
	[[ $rc -eq 0 ]] || die "dmafs exited with status $rc; see $log"
}

# sha256 of every regular file under DIR, by relative path, sorted.
tree_sums() {
	(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z |
		xargs -0 -r sha256sum)
}

# Check everything written before: contents, xattr, symlink, hard link.
verify() {
	local f="$mnt/demo/random.bin" got

	say "Verify"
	show sha256sum "$f" "$mnt/demo/random.hard" "$mnt/demo/random.link"
	got=$(sha256sum <"$f" | cut -d' ' -f1)
	[[ $got == "$want" ]] || die "random.bin: sha256 $got, want $want"
	got=$(sha256sum <"$mnt/demo/random.hard" | cut -d' ' -f1)
	[[ $got == "$want" ]] || die "random.hard: sha256 $got, want $want"
	got=$(sha256sum <"$mnt/demo/random.link" | cut -d' ' -f1)
	[[ $got == "$want" ]] || die "random.link: sha256 $got, want $want"
	diff <(echo "$want_licenses") \
		<(tree_sums "$mnt/demo/common-licenses") ||
		die "common-licenses differ from /usr/share/common-licenses"
	echo "common-licenses: $(echo "$want_licenses" | wc -l) files match"
	got=$(getfattr --absolute-names --only-values -n user.demo "$f")
	[[ $got == "hello dmafs" ]] || die "xattr user.demo is '$got'"
	got=$(readlink "$mnt/demo/random.link")
	[[ $got == random.bin ]] || die "symlink points at '$got'"
	got=$(stat -c %h "$f")
	[[ $got == 2 ]] || die "random.bin has $got links, want 2"
	echo "OK: data, checksums, xattr, symlink and hard link as written"
}

say "Dependencies and build"
bash "$root/scripts/deps.sh"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing ('modprobe fuse' failed)"
bash "$root/scripts/build.sh" "$build"

if [[ $# -gt 0 ]]; then
	mkdir -p "$1"
	dir=$(cd "$1" && pwd)
else
	dir=$(mktemp -d -t dmafs-demo.XXXXXX)
fi
img="$dir/demo.img"
log="$dir/dmafs.log"
mnt=$(mktemp -d -t dmafs-mnt.XXXXXX)
ref=$(mktemp -t dmafs-ref.XXXXXX)
: >"$log"

say "A fresh 1 GiB sparse image: $img"
rm -f "$img"
show truncate -s 1G "$img"
show "$mkfs" -L demo -s 1G "$img"
show ls -lsh "$img"

mount_fs
show df -h "$mnt"

say "Use it"
dd if=/dev/urandom of="$ref" bs=1M count=64 status=none
want=$(sha256sum <"$ref" | cut -d' ' -f1)
want_licenses=$(tree_sums /usr/share/common-licenses)
show mkdir "$mnt/demo"
show dd if="$ref" of="$mnt/demo/random.bin" bs=1M conv=fsync
show cp -a /usr/share/common-licenses "$mnt/demo/"
show setfattr -n user.demo -v "hello dmafs" "$mnt/demo/random.bin"
show getfattr --absolute-names -d "$mnt/demo/random.bin"
show ln -s random.bin "$mnt/demo/random.link"
show ln "$mnt/demo/random.bin" "$mnt/demo/random.hard"
show sync
show ls -l "$mnt/demo"
show df -h "$mnt"
verify

umount_fs
if [[ -x $fsck ]]; then
	say "Check the image"
	show "$fsck" -n "$img"
fi

mount_fs
show ls -l "$mnt/demo"
verify
umount_fs

say "Done"
echo "The image is $img"
echo "The daemon's log is $log"
echo "Mount it again with: $dmafs $img MOUNTPOINT"
