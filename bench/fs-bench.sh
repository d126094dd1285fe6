#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# fs-bench.sh: dmafs against ext4 (in the kernel) and fuse2fs (ext4 through
# FUSE), one after the other on the same backing store, in one run; prints a
# table of absolute numbers and the ratios dmafs/ext4 and dmafs/fuse2fs.
# Not a test: nothing in the test suite or CI runs it.  See bench/README.md.
#
# Usage: bench/fs-bench.sh [options] [BLOCKDEV]
#
#   BLOCKDEV      a block device (e.g. /dev/nvme1n1) to benchmark on.  It is
#                 reformatted three times: EVERYTHING ON IT IS LOST.  Needs
#                 --yes.  Without it the backing store is a fresh sparse
#                 image file on the local disk (see --dir).
#
#   --yes         allow the destruction of BLOCKDEV
#   --quick       a smoke run of 2-4 minutes (smaller sizes, 2 s jobs)
#   --dir DIR     where the image and the scratch files go (default
#                 /var/tmp); a directory dmafs-bench.XXXXXX is made there
#                 and removed at exit
#   --size SIZE   image size (default 8G, --quick 4G); ignored for BLOCKDEV
#   --image KIND  how the image is made: sparse (default: truncate, new for
#                 each filesystem), falloc (fallocate, new for each) or zero
#                 (written with zeros once, so that the host filesystem
#                 allocates nothing during the run: closest to a device)
#   --wait-idle S before each filesystem, wait up to S seconds for the
#                 machine to be idle (other processes under 15% CPU)
#   --fs LIST     comma-separated subset of ext4,fuse2fs,dmafs (default all)
#   --build DIR   dmafs build directory (default $DMAFS_BUILD or build/);
#                 built with scripts/build.sh if the binaries are missing
#   --runtime S   seconds per random-I/O job (default 10, --quick 2)
#   --nice N      run everything (fio, daemons, tools) at nice level N,
#                 e.g. -10 on a machine that other work keeps busy
#   --out DIR     also keep results.tsv, table.txt, table.md and the logs
#                 in DIR
#   --keep        keep the scratch directory (image, logs, fio JSON)
#   --note TEXT   a line for the header (e.g. which commit was built)
#   -h, --help    this text
#
# Needs root (mkfs, mount, losetup, drop_caches), /dev/fuse, fio (installed
# with apt-get if missing), fuse2fs, e2fsprogs, a C compiler and python3.
# Every exit path unmounts, stops the daemons it started, detaches its loop
# device and removes its scratch directory.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

quick=0
yes=0
basedir=/var/tmp
size=
image_kind=sparse
wait_idle=0
nice_level=
fslist=ext4,fuse2fs,dmafs
build=${DMAFS_BUILD:-$root/build}
runtime=
outdir=
keep=0
note=
device=

# Current state, for cleanup.
work=
mnt=
cur_fs=
pid=
loopdev=
mounted=0

die() {
	echo "fs-bench: $*" >&2
	exit 1
}

warn() {
	echo "fs-bench: warning: $*" >&2
}

say() {
	printf '[%s] %s\n' "$(date +%T)" "$*"
}

usage() {
	sed -n '/^# Usage:/,/^# device and removes/p' "${BASH_SOURCE[0]}" |
		sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

orig_args="$*"
while [[ $# -gt 0 ]]; do
	case $1 in
	--yes) yes=1 ;;
	--quick) quick=1 ;;
	--dir) basedir=${2:?--dir needs an argument}; shift ;;
	--size) size=${2:?--size needs an argument}; shift ;;
	--image) image_kind=${2:?--image needs an argument}; shift ;;
	--wait-idle) wait_idle=${2:?--wait-idle needs an argument}; shift ;;
	--fs) fslist=${2:?--fs needs an argument}; shift ;;
	--build) build=${2:?--build needs an argument}; shift ;;
	--runtime) runtime=${2:?--runtime needs an argument}; shift ;;
	--nice) nice_level=${2:?--nice needs an argument}; shift ;;
	--out) outdir=${2:?--out needs an argument}; shift ;;
	--keep) keep=1 ;;
	--note) note=${2:?--note needs an argument}; shift ;;
	-h|--help) usage 0 ;;
	-*) echo "fs-bench: unknown option $1" >&2; usage 2 ;;
	*)
		[[ -z $device ]] || die "only one device may be given"
		device=$1
		;;
	esac
	shift
done

# ---- parameters -------------------------------------------------------------

if ((quick)); then
	: "${size:=4G}" "${runtime:=2}"
	data_size=256M		# the file of the data workloads
	nfiles=2000		# metadata: files per directory
	nfsync=200		# create + write + fsync
	readdir_passes=5
	seq_cap=10		# seconds at most per sequential job
	tar_src=(/usr/include linux x86_64-linux-gnu)
	tar_desc="/usr/include/{linux,x86_64-linux-gnu}"
else
	: "${size:=8G}" "${runtime:=10}"
	data_size=1G
	nfiles=10000
	nfsync=1000
	readdir_passes=10
	seq_cap=20
	tar_src=(/usr include)
	tar_desc=/usr/include
fi
[[ $runtime =~ ^[0-9]+$ && $runtime -gt 0 ]] || die "bad --runtime $runtime"
[[ $wait_idle =~ ^[0-9]+$ ]] || die "bad --wait-idle $wait_idle"
case $image_kind in
sparse|falloc|zero) ;;
*) die "bad --image $image_kind (sparse, falloc or zero)" ;;
esac
fio_limit=$((seq_cap > runtime ? seq_cap : runtime))
fio_limit=$((fio_limit + 60))	# watchdog: a job that hangs is killed
meta_limit=600

IFS=, read -r -a fss <<<"$fslist"
for f in "${fss[@]}"; do
	case $f in
	ext4|fuse2fs|dmafs) ;;
	*) die "unknown filesystem '$f' in --fs (ext4, fuse2fs, dmafs)" ;;
	esac
done

# ---- checks -----------------------------------------------------------------

[[ $EUID -eq 0 ]] || die "must run as root (mkfs, mount, losetup, drop_caches)"
if [[ -n $nice_level ]]; then
	[[ $nice_level =~ ^-?[0-9]+$ ]] || die "bad --nice $nice_level"
	# Inherited by every process started from here on.
	renice -n "$nice_level" -p $$ >/dev/null || die "renice failed"
fi

if [[ -n $device ]]; then
	[[ -b $device ]] || die "$device is not a block device (an image goes in --dir)"
	((yes)) || die "$device would be reformatted and everything on it lost; add --yes"
	device=$(readlink -f "$device")
	if [[ -n $(lsblk -nro MOUNTPOINTS "$device" 2>/dev/null | tr -d '[:space:]') ]] ||
		findmnt -rn -S "$device" >/dev/null 2>&1; then
		die "$device (or a partition of it) is mounted"
	fi
	# O_EXCL on a block device fails while anything holds it (a mount,
	# swap, LVM, RAID, another filesystem daemon).
	python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL))' \
		"$device" 2>/dev/null || die "$device is in use (cannot open it exclusively)"
	mode=blockdev
else
	mode=image
fi

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	local opts=(-q -y -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)

	say "installing $*"
	apt-get "${opts[@]}" install --no-install-recommends "$@" >/dev/null 2>&1 ||
		{ apt-get "${opts[@]}" update >/dev/null 2>&1 &&
		  apt-get "${opts[@]}" install --no-install-recommends "$@" >/dev/null; } ||
		die "apt-get install $* failed"
}

need=()
command -v fio >/dev/null || need+=(fio)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
[[ " ${fss[*]} " == *" fuse2fs "* ]] && ! command -v fuse2fs >/dev/null &&
	need+=(fuse2fs)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v python3 >/dev/null || need+=(python3)
command -v fusermount3 >/dev/null || need+=(fuse3)
((${#need[@]})) && apt_install "${need[@]}"
[[ -c /dev/fuse ]] || modprobe fuse 2>/dev/null || true
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"

dmafs=$build/fs/dmafs
mkfs_dmafs=$build/tools/mkfs.dmafs
if [[ " ${fss[*]} " == *" dmafs "* && ! ( -x $dmafs && -x $mkfs_dmafs ) ]]; then
	say "building dmafs in $build"
	bash "$root/scripts/deps.sh" || die "scripts/deps.sh failed"
	bash "$root/scripts/build.sh" "$build" >/dev/null || die "build failed"
fi

# ---- cleanup ----------------------------------------------------------------

# Unmount whatever is mounted and wait for (or, past 60 s, kill) the daemon.
# Returns the daemon's exit status (0 for ext4).
teardown_mount() {
	local rc=0 i

	if ((mounted)) && [[ -n $mnt ]]; then
		if ! timeout 120 umount "$mnt" 2>>"${log:-/dev/null}"; then
			warn "umount $mnt failed; detaching it lazily"
			umount -l "$mnt" 2>/dev/null
			rc=1
		fi
		mounted=0
	fi
	if [[ -n $pid ]]; then
		# A FUSE unmount returns before the daemon has flushed and exited.
		for ((i = 0; i < 600; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			warn "$cur_fs daemon (pid $pid) still running 60 s after unmount; killing it"
			kill -9 "$pid" 2>/dev/null
			rc=1
		fi
		wait "$pid" 2>/dev/null || rc=$?
		pid=
	fi
	return "$rc"
}

detach_loop() {
	if [[ -n $loopdev ]]; then
		losetup -d "$loopdev" 2>/dev/null || warn "losetup -d $loopdev failed"
		loopdev=
	fi
}

cleanup() {
	local rc=$?

	trap - EXIT INT TERM HUP
	set +e
	teardown_mount
	detach_loop
	[[ -n $mnt ]] && rmdir "$mnt" 2>/dev/null
	if [[ -n $work ]]; then
		if ((keep)); then
			echo "fs-bench: scratch directory kept: $work" >&2
		else
			rm -rf "$work"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "fs-bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- scratch space ----------------------------------------------------------

mkdir -p "$basedir" || die "cannot create $basedir"
work=$(mktemp -d "$basedir/dmafs-bench.XXXXXX") || die "mktemp in $basedir failed"
mnt=$(mktemp -d /tmp/dmafs-bench-mnt.XXXXXX) || die "mktemp failed"
results=$work/results.tsv
log=$work/bench.log
: >"$results"
: >"$log"

if [[ $mode == image ]]; then
	img=$work/backing.img
	target=$img
	avail=$(df --output=avail -B1 "$work" | tail -n1)
	# 2 x the data file plus metadata and the tar tree, with room to spare;
	# a zero-filled image takes its full size.
	need_bytes=$((4 << 30))
	[[ $image_kind == zero ]] &&
		need_bytes=$(($(numfmt --from=iec "$size") + (1 << 30)))
	[[ $avail -gt $need_bytes ]] ||
		die "less than $((need_bytes >> 30)) GiB free in $basedir"
else
	target=$device
fi

cc -O2 -Wall -o "$work/metabench" "$here/metabench.c" ||
	die "cannot compile bench/metabench.c"
metabench=$work/metabench

tarball=$work/tree.tar
tar cf "$tarball" -C "${tar_src[@]}" 2>>"$log" || die "cannot make the tarball"
tar_files=$(tar tf "$tarball" | wc -l)
tar_bytes=$(stat -c %s "$tarball")

# io_uring for the asynchronous jobs, libaio where fio or the kernel lacks it.
engine=io_uring
if ! fio --name=probe --filename="$work/probe" --size=1M --bs=4k \
	--rw=read --direct=1 --ioengine=io_uring --output=/dev/null \
	>/dev/null 2>&1; then
	engine=libaio
fi
rm -f "$work/probe"

# ---- helpers ----------------------------------------------------------------

calc() {
	awk "BEGIN { printf \"%.3f\", $* }"
}

record() {		# TEST UNIT VALUE
	printf '%s\t%s\t%s\t%s\n' "$cur_fs" "$1" "$2" "$3" >>"$results"
}

# Percentage of all CPU time spent busy over one second (by anything).
cpu_busy() {
	local a b c d e f g h t1 i1 t2 i2

	read -r _ a b c d e f g h _ </proc/stat
	t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
	sleep 1
	read -r _ a b c d e f g h _ </proc/stat
	t2=$((a + b + c + d + e + f + g + h)) i2=$((d + e))
	echo $((t2 > t1 ? 100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1) : 0))
}

# Before a filesystem's turn: how busy the machine is without us, waiting
# up to --wait-idle seconds for it to calm down.
check_idle() {
	local busy deadline=$((SECONDS + wait_idle))

	busy=$(cpu_busy)
	while ((busy > 15 && SECONDS < deadline)); do
		say "machine busy (${busy}% CPU), waiting"
		sleep 4
		busy=$(cpu_busy)
	done
	busy_before[$cur_fs]=$busy
	((busy > 15)) && warn "other processes use ${busy}% of the CPUs; $cur_fs numbers will suffer"
	return 0
}

# Drop clean caches after making our own dirty data clean: only the
# filesystem under test and the image are synced, not the whole machine
# (a global sync would wait for whatever else the machine is writing).
drop_caches() {
	((mounted)) && sync -f "$mnt"
	[[ $mode == image && -f $img ]] && sync "$img"
	echo 3 >/proc/sys/vm/drop_caches
}

wait_mounted() {
	local i rc

	for ((i = 0; i < 300; i++)); do
		if mountpoint -q "$mnt"; then
			mounted=1
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			rc=0
			wait "$pid" || rc=$?
			pid=
			warn "$cur_fs daemon exited (status $rc) before mounting"
			return 1
		fi
		sleep 0.1
	done
	warn "$cur_fs did not mount within 30 s"
	return 1
}

mount_fs() {
	echo "--- $cur_fs mount $(date -Is)" >>"$log"
	case $cur_fs in
	ext4)
		mount -t ext4 "$ext4_dev" "$mnt" 2>>"$log" || return 1
		mounted=1
		;;
	fuse2fs)
		fuse2fs -f "$target" "$mnt" >>"$log" 2>&1 </dev/null &
		pid=$!
		wait_mounted
		;;
	dmafs)
		"$dmafs" -f "$target" "$mnt" >>"$log" 2>&1 </dev/null &
		pid=$!
		wait_mounted
		;;
	esac
}

umount_fs() {
	local rc=0

	echo "--- $cur_fs unmount $(date -Is)" >>"$log"
	teardown_mount || rc=$?
	((rc == 0)) || warn "$cur_fs: unmount or daemon exit failed (status $rc)"
	return "$rc"
}

remount() {
	umount_fs || return 1
	drop_caches
	mount_fs
}

# run_fio TEST UNIT read|write iops|mbs FIO-ARGS...
run_fio() {
	local test=$1 unit=$2 dir=$3 metric=$4 json rc=0 iops bw
	shift 4
	json=$work/fio-$cur_fs-$(echo "$test" | tr -c 'A-Za-z0-9\n' '_').json
	echo "--- fio: $test" >>"$log"
	timeout -k 10 "$fio_limit" fio --name=job --ioengine="$engine" \
		--fallocate=none --group_reporting --output-format=json \
		--output="$json" "$@" >>"$log" 2>&1 || rc=$?
	if ((rc)); then
		((rc == 124 || rc == 137)) && record "$test" "$unit" TIMEOUT ||
			record "$test" "$unit" FAIL
		warn "$cur_fs: fio '$test' failed (status $rc)"
		[[ -s $json ]] && tail -n 5 "$json" >>"$log"
		return 1
	fi
	read -r iops bw < <(python3 "$here/report.py" fio "$json" "$dir")
	if [[ $metric == iops ]]; then
		record "$test" "$unit" "$iops"
	else
		record "$test" "$unit" "$(calc "$bw / 1e6")"
	fi
	say "  $cur_fs: $test: $(tail -n1 "$results" | cut -f4) $unit"
}

# run_meta TEST METABENCH-ARGS...: records ops/s of the loop.
run_meta() {
	local test=$1 out rc=0 ops secs
	shift
	out=$(timeout -k 10 "$meta_limit" "$metabench" "$@" 2>>"$log") || rc=$?
	if ((rc)); then
		((rc == 124 || rc == 137)) && record "$test" ops/s TIMEOUT ||
			record "$test" ops/s FAIL
		warn "$cur_fs: metabench $* failed (status $rc)"
		return 1
	fi
	ops=$(sed -n 's/.*ops=\([0-9]*\).*/\1/p' <<<"$out")
	secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")
	record "$test" ops/s "$(calc "$ops / ($secs > 0 ? $secs : 1e-9)")"
	say "  $cur_fs: $test: $(tail -n1 "$results" | cut -f4) ops/s"
}

# ---- workloads --------------------------------------------------------------

data_tests() {
	local f=$mnt/data/file f2=$mnt/data/file-direct rw qd d name extra

	mkdir -p "$mnt/data" || return 1
	# Sequential: the whole file once, or seq_cap seconds if that is less.
	run_fio "seq write 1M buffered +fsync" MB/s write mbs \
		--filename="$f" --rw=write --bs=1M --size="$data_size" \
		--direct=0 --end_fsync=1 --runtime="$seq_cap"
	run_fio "seq write 1M O_DIRECT QD1" MB/s write mbs \
		--filename="$f2" --rw=write --bs=1M --size="$data_size" \
		--direct=1 --iodepth=1 --runtime="$seq_cap"
	rm -f "$f2"
	remount || return 1
	run_fio "seq read 1M buffered (cold)" MB/s read mbs \
		--filename="$f" --rw=read --bs=1M --size="$data_size" \
		--direct=0 --runtime="$seq_cap"
	drop_caches
	run_fio "seq read 1M O_DIRECT QD1" MB/s read mbs \
		--filename="$f" --rw=read --bs=1M --size="$data_size" \
		--direct=1 --iodepth=1 --runtime="$seq_cap"
	# Random 4 KiB over the whole file, cold cache: one pass at most (fio's
	# random map touches every block once), or runtime seconds if less, so
	# that no buffered read can be served by what an earlier one cached.
	for rw in randread randwrite; do
		for qd in 1 16; do
			for d in 1 0; do
				name="$rw 4K QD$qd"
				extra=()
				if ((d)); then
					name+=" O_DIRECT"
				else
					name+=" buffered"
					# Written back inside the measurement.
					[[ $rw == randwrite ]] &&
						name+=" +fsync" extra=(--end_fsync=1)
				fi
				drop_caches
				run_fio "$name" IOPS "${rw#rand}" iops \
					--filename="$f" --rw="$rw" --bs=4k \
					--size="$data_size" --iodepth="$qd" \
					--direct="$d" --runtime="$runtime" \
					"${extra[@]}"
			done
		done
	done
	run_fio "randwrite 4K QD1 fdatasync each" IOPS write iops \
		--filename="$f" --rw=randwrite --bs=4k --size="$data_size" \
		--iodepth=1 --direct=0 --fdatasync=1 --runtime="$runtime"
	rm -f "$f"
	return 0
}

meta_tests() {
	local m=$mnt/meta t0 t1 t2 secs

	mkdir -p "$m/empty" "$m/4k" "$m/fsync" "$m/tar" || return 1
	run_meta "create empty file" create "$m/empty" "$nfiles" 0
	run_meta "create + write 4K" create "$m/4k" "$nfiles" 4096
	remount || return 1
	run_meta "stat (cold, after remount)" stat "$m/4k" "$nfiles"
	run_meta "stat (warm)" stat "$m/4k" "$nfiles"
	remount || return 1
	run_meta "readdir entries (cold)" readdir "$m/4k" 1
	run_meta "readdir entries (warm)" readdir "$m/4k" "$readdir_passes"
	run_meta "rename" rename "$m/4k" "$nfiles"
	run_meta "unlink 4K file" unlink "$m/4k" "$nfiles" r
	run_meta "unlink empty file" unlink "$m/empty" "$nfiles"
	run_meta "create + write 4K + fsync" create "$m/fsync" "$nfsync" 4096 fsync

	echo "--- tar x" >>"$log"
	t0=$EPOCHREALTIME
	if timeout -k 10 "$meta_limit" tar xf "$tarball" -C "$m/tar" 2>>"$log"; then
		t1=$EPOCHREALTIME
		if timeout -k 10 "$meta_limit" "$metabench" sync "$m/tar" >/dev/null 2>>"$log"; then
			t2=$EPOCHREALTIME
			secs=$(calc "$t1 - $t0")
			record "tar x" files/s "$(calc "$tar_files / $secs")"
			record "tar x" MB/s "$(calc "$tar_bytes / $secs / 1e6")"
			record "tar x + sync" files/s \
				"$(calc "$tar_files / ($t2 - $t0)")"
			say "  $cur_fs: tar x: $secs s, + sync: $(calc "$t2 - $t0") s"
		else
			record "tar x + sync" files/s FAIL
			warn "$cur_fs: sync after tar x failed"
		fi
	else
		record "tar x" files/s FAIL
		warn "$cur_fs: tar x failed"
	fi
	remount || return 1
	t0=$EPOCHREALTIME
	if timeout -k 10 "$meta_limit" rm -rf "$m/tar" 2>>"$log"; then
		t1=$EPOCHREALTIME
		record "rm -rf tree (cold)" files/s "$(calc "$tar_files / ($t1 - $t0)")"
		say "  $cur_fs: rm -rf: $(calc "$t1 - $t0") s"
	else
		record "rm -rf tree (cold)" files/s FAIL
	fi
	return 0
}

# ---- one filesystem ---------------------------------------------------------

prepare_store() {
	if [[ $mode == image ]]; then
		case $image_kind in
		sparse)
			rm -f "$img"
			truncate -s "$size" "$img"
			;;
		falloc)
			rm -f "$img"
			fallocate -l "$size" "$img"
			;;
		zero)
			# Once: the blocks stay allocated (nothing discards).
			[[ -f $img ]] && return 0
			say "writing $size of zeros to the image"
			dd if=/dev/zero of="$img" bs=1M oflag=direct status=none \
				count=$(($(numfmt --from=iec "$size") >> 20))
			;;
		esac
	else
		# Every filesystem starts on a device with nothing mapped, as
		# every one starts on a fresh sparse image.
		blkdiscard -f "$device" >/dev/null 2>&1 ||
			blkdiscard "$device" >/dev/null 2>&1 || true
	fi
}

run_fs() {
	local t0=$SECONDS rc=0

	cur_fs=$1
	say "=== $cur_fs"
	prepare_store || { warn "cannot prepare $target"; return 1; }
	check_idle
	t0=$SECONDS
	case $cur_fs in
	ext4|fuse2fs)
		ext4_dev=$target
		if [[ $cur_fs == ext4 && $mode == image ]]; then
			# Direct I/O on the image, as dmafs does; not all
			# backing filesystems allow it.
			loopdev=$(losetup --direct-io=on --show -f "$img" 2>>"$log") ||
				loopdev=$(losetup --show -f "$img") ||
				{ warn "losetup failed"; return 1; }
			ext4_dev=$loopdev
			loop_dio=$(cat "/sys/block/${loopdev#/dev/}/loop/dio" 2>/dev/null)
		fi
		# No lazy init: no kernel thread zeroing tables mid-benchmark.
		# No discard: it would punch the image full of holes again.
		mkfs.ext4 -F -q -L bench \
			-E lazy_itable_init=0,lazy_journal_init=0,nodiscard \
			"$ext4_dev" >>"$log" 2>&1 ||
			{ warn "mkfs.ext4 failed"; return 1; }
		;;
	dmafs)
		"$mkfs_dmafs" -f -q -L bench "$target" >>"$log" 2>&1 ||
			{ warn "mkfs.dmafs failed"; return 1; }
		;;
	esac
	if ! mount_fs; then
		record "mount" - FAIL
		detach_loop
		return 1
	fi
	data_tests || rc=1
	if mountpoint -q "$mnt"; then
		meta_tests || rc=1
	fi
	umount_fs || rc=1
	detach_loop
	phase_secs[$cur_fs]=$((SECONDS - t0))
	say "=== $cur_fs done in $((SECONDS - t0)) s"
	echo "--- $cur_fs took $((SECONDS - t0)) s" >>"$log"
	return "$rc"
}

# ---- header -----------------------------------------------------------------

describe_store() {
	if [[ $mode == image ]]; then
		local fstype src

		fstype=$(findmnt -n -o FSTYPE -T "$work")
		src=$(findmnt -n -o SOURCE -T "$work")
		echo "backing: $image_kind image file of $size in $basedir ($fstype on $src)"
		echo "  ext4: kernel ext4 on a loop device over the image (loop direct I/O: ${loop_dio:-see log})"
		echo "  fuse2fs, dmafs: open the image file directly (dmafs with O_DIRECT, fuse2fs buffered)"
	else
		local model

		model=$(lsblk -dno MODEL "$device" 2>/dev/null | sed 's/ *$//')
		echo "backing: block device $device ($(lsblk -dno SIZE "$device" | tr -d ' '), ${model:-unknown model}); all three directly on it"
	fi
}

header() {
	local cpu mem src=

	cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
	mem=$(free -g | awk '/^Mem:/ { print $2 " GiB" }')
	[[ -r $build/meson-info/meson-info.json ]] &&
		src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
			"$build/meson-info/meson-info.json" 2>/dev/null)
	echo "date: $(date -Is)"
	echo "machine: $(nproc) CPUs ($cpu), $mem RAM, kernel $(uname -r)"
	echo "run: $0 $orig_args (nice $(ps -o ni= -p $$ | tr -d ' '))"
	describe_store
	echo "dmafs: $("$dmafs" -V 2>/dev/null | grep -m1 '^dmafs') built in $build${src:+ from $src}${src:+ ($(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))}"
	[[ -n $note ]] && echo "note: $note"
	echo "tools: $(fio --version), fuse2fs $(dpkg-query -W -f='${Version}' fuse2fs 2>/dev/null), fio engine $engine"
	echo "sizes: data file $data_size, $nfiles files per metadata dir, $nfsync fsync'd files, random jobs ${runtime}s, tar of $tar_desc ($tar_files entries, $((tar_bytes >> 20)) MiB)"
	local f line=

	for f in "${fss[@]}"; do
		line+=" $f ${phase_secs[$f]:-?} s (CPU busy before: ${busy_before[$f]:-?}%),"
	done
	echo "phases:${line%,}"
	echo "all numbers: higher is better; ratio > 1 means dmafs is faster"
}

# ---- main -------------------------------------------------------------------

declare -A busy_before=() phase_secs=()
say "scratch directory $work, mount point $mnt"
status=0
for f in "${fss[@]}"; do
	run_fs "$f" || status=1
done
cur_fs=

hdr=$(header)
table=$(python3 "$here/report.py" table "$results")
echo
echo "$hdr"
echo
echo "$table"
if [[ -n $outdir ]]; then
	mkdir -p "$outdir"
	{ echo "$hdr" | sed 's/^/# /'; cat "$results"; } >"$outdir/results.tsv"
	{ echo "$hdr"; echo; echo "$table"; } >"$outdir/table.txt"
	{ echo "$hdr" | sed 's/^/    /'; echo; python3 "$here/report.py" table "$results" --md; } \
		>"$outdir/table.md"
	cp "$log" "$outdir/bench.log"
	cp "$work"/fio-*.json "$outdir/" 2>/dev/null
	echo
	echo "results in $outdir"
fi
if grep -qiE 'error|warning|critical' "$log"; then
	echo
	echo "daemon and tool messages (from the log):"
	grep -iE 'error|warning|critical' "$log" | sort | uniq -c | sort -rn | head -n 20
fi
((status == 0)) || warn "some workloads failed; see above"
exit "$status"
