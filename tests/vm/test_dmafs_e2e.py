# SPDX-License-Identifier: GPL-2.0-or-later
"""dmafs end to end in the VM: the daemon in kext mode on the NVMe namespace,
dma-buf I/O on its files through the kernel extension (layers 1 and 2).

Every test formats $DMAFS_VM_NVME (/dev/nvme0n1) with mkfs.dmafs, mounts it
with the daemon ($DMAFS_BUILD/fs/dmafs, -f, allow_other) and requires kext
mode.  After each test the file system is unmounted (a clean unmount, the
daemon exits 0 with a clean log), fsck.dmafs -n must pass on the device, and
the kernel log records the test produced must hold no bug report (the
KLOG_BAD list of test_dmabuf_raw.py).

  test_kext_mode                  the mode line of the daemon's log and the
                                  user.dmafs.mode xattr say kext
  test_dmabuf_io_sizes            dmafs-io write --input / read --output of
                                  4 KiB, 1 MiB + 4 KiB and 8 MiB files, with
                                  udmabuf and vgem (drm) buffers, plain and
                                  defer rings: dma-buf mode, data exact;
                                  cross-checked by buffered reads after
                                  dropping caches and by raw reads of the
                                  device at the extents (dmafs_format) after
                                  unmount
  test_fragmented_files           files made by interleaved appends, proven
                                  fragmented after unmount; READ_FIXED and
                                  WRITE_FIXED across the fragments, exact;
                                  the extents unchanged by the dma-buf I/O
  test_concurrent_dmafs_io        four dmafs-io processes on four files at
                                  once (both buffer kinds, both rings)
  test_threads                    dmafs_errors threads: four rings in four
                                  threads on stripes of one file
  test_raw_program_on_file        tests/vm/dmabuf rw_exact, reg_errors and
                                  teardown with a preallocated dmafs file as
                                  the target
  test_register_not_o_direct      EINVAL
  test_io_on_other_file           EBADF
  test_hole                       ENODATA; the hole filled by O_DIRECT works
  test_beyond_eof                 reads short / 0, writes ENODATA
  test_unaligned                  EINVAL
  test_truncate_during_io         in-flight I/O completes or fails with
  test_punch_during_io            ENODATA/EAGAIN, never wrong data; then
                                  the right errno
  test_daemon_killed_during_io    ENOTCONN/EIO, nothing hangs; umount -l
  test_lazy_umount_with_registered_buffer
                                  I/O goes on after umount -l; the daemon
                                  exits when the registration goes
  test_no_write_permission        nobody: O_RDWR EACCES; O_RDONLY
                                  registration, WRITE_FIXED EBADF

The C program tests/vm/dmabuf/dmafs_errors.c does the errno-level checks.
Outside the VM (DMAFS_VM != 1) tests/vm/conftest.py skips this file: it
formats whatever /dev/nvme0n1 is.
"""

import array
import errno
import mmap
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))          # tests/: util, dmafs_format

import dmafs_format  # noqa: E402
import util  # noqa: E402
from test_dmabuf_raw import KLOG_BAD, KLOG_OK, KernelLog  # noqa: E402
import test_dmabuf_raw  # noqa: E402

BUILD = util.BUILD
DMAFS_IO = BUILD / "tools" / "dmafs-io"
PROGS = BUILD / "tests" / "vm" / "dmabuf"
ERRORS = PROGS / "dmafs_errors"

KiB, MiB = util.KiB, util.MiB
BS = 4096
MODE_XATTR = "user.dmafs.mode"
MODE_LINE = re.compile(r"kernel extension: (.*)")
# Seconds for one program or dmafs-io run: generous, for TCG and the debug
# kernel.
TIMEOUT = 1500
NOBODY = 65534

REC_EXTENT_SET = dmafs_format.REC_EXTENT_SET
EXTENT_UNWRITTEN = 1


# ---------------------------------------------------------------------------
# helpers


def t_pattern(seed, pos, length):
    """helpers.c's t_pattern_fill(): 64-bit words (seed << 48) ^ pos ^
    (0x5a5a << 32), little endian.  For pos < 2^32 the xor is a sum."""
    assert pos % 8 == 0 and length % 8 == 0 and pos + length < 1 << 32
    base = (seed << 48) ^ (0x5a5a << 32)
    a = array.array("Q", range(base + pos, base + pos + length, 8))
    assert sys.byteorder == "little"
    return a.tobytes()


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def buffered_read(path):
    """The file through the mount, from the daemon: caches dropped first."""
    drop_caches()
    with open(path, "rb") as f:
        return f.read()


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, min(i + 4096, n)):
                if a[j] != b[j]:
                    return j
    return n if len(a) != len(b) else -1


def assert_same(got, want, what):
    d = first_diff(got, want)
    assert d < 0, (f"{what}: {len(got)} bytes, expected {len(want)}; first "
                   f"difference at byte {d}: got {got[d:d + 16].hex()} "
                   f"expected {want[d:d + 16].hex()}")


def run(cmd, timeout=TIMEOUT, **kw):
    cmd = [str(c) for c in cmd]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        print(f"$ {' '.join(cmd)}\n{out}")
        raise AssertionError(f"{cmd[0]} timed out after {timeout} s "
                             f"(hangs?):\n{out}")
    print(f"$ {' '.join(cmd)}\n{r.stdout}")
    return r


def run_errors(case, path, *args):
    """dmafs_errors CASE PATH ARGS...: must exit 0 (77, a skip, fails)."""
    assert ERRORS.exists(), f"{ERRORS} is not built (ninja -C {BUILD})"
    r = run([ERRORS, case, path, *args])
    what = {77: "exit 77: SKIPPED, which is a failure in the VM"}
    assert r.returncode == 0, (f"dmafs_errors {case}: "
                               f"{what.get(r.returncode, r.returncode)}\n"
                               f"{r.stdout}")
    return r.stdout


def dmafs_io(*args):
    """dmafs-io ARGS: must succeed in dma-buf mode on a kext dmafs file."""
    assert DMAFS_IO.exists(), f"{DMAFS_IO} is not built"
    r = run([DMAFS_IO, *args])
    assert r.returncode == 0, f"dmafs-io {' '.join(map(str, args))}: exit " \
                              f"{r.returncode}\n{r.stdout}"
    check_dmafs_io_mode(r.stdout)
    return r.stdout


def check_dmafs_io_mode(out):
    lines = out.splitlines()
    modes = [ln for ln in lines if ln.startswith("mode: ")]
    assert modes == ["mode: dmabuf"], \
        f"dmafs-io did not use dma-buf mode (compat is the bounce " \
        f"fallback, not the kernel extension): {modes}\n{out}"
    files = [ln for ln in lines if ln.startswith("file: ")]
    assert files and files[0].endswith("(dmafs, daemon mode kext)"), out


def prealloc(path, size, data=None, mode=0o644):
    """Create path with size bytes allocated (fallocate mode 0) and, if
    data, written through the daemon (buffered) and fsync'd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)
    try:
        util.fallocate(fd, 0, 0, size)
        if data is not None:
            assert len(data) <= size
            os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def file_extents(dev, ino):
    """[(file_block, nblocks, phys, flags)] of ino in the checkpoint of an
    unmounted dmafs, sorted."""
    out = []
    for t, i, body in dmafs_format.checkpoint(dev):
        if t == REC_EXTENT_SET and i == ino:
            out.append(struct.unpack_from("<QQQI", body))
    return sorted(out)


def pread_direct(fd, off, length):
    buf = mmap.mmap(-1, max(length, BS))
    try:
        n = os.preadv(fd, [memoryview(buf)[:length]], off)
        assert n == length, f"short O_DIRECT read of the device at {off}"
        return bytes(buf[:length])
    finally:
        buf.close()


def raw_content(dev, relpath, size):
    """File relpath (relative to the root) of the unmounted dmafs on dev, as
    raw O_DIRECT reads of the device at its extents' byte offsets; holes
    and unwritten extents read as zeros.  Returns (data, extents)."""
    drop_caches()
    ino = dmafs_format.inode_of(dev, relpath)
    exts = file_extents(dev, ino)
    data = bytearray(size)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        for fblk, n, phys, flags in exts:
            start = fblk * BS
            if start >= size:
                continue
            length = min(n * BS, size - start)
            if flags & EXTENT_UNWRITTEN:
                continue
            whole = -(-length // BS) * BS
            data[start:start + length] = \
                pread_direct(fd, phys * BS, whole)[:length]
    finally:
        os.close(fd)
    return bytes(data), exts


def assert_raw(fs, name, want):
    got, exts = raw_content(fs.dev, name, len(want))
    assert_same(got, want, f"{name}: raw reads of {fs.dev} at the extents "
                           f"{exts}")
    return exts


def discontinuities(exts):
    """How many times the next extent does not follow the previous one on
    the device."""
    n = 0
    for a, b in zip(exts, exts[1:]):
        if a[2] + a[1] != b[2]:
            n += 1
    return n


# ---------------------------------------------------------------------------
# the file system under test


class E2EFs:
    """dmafs on the VM's namespace: .dev, .mnt, .mount(), .umount(),
    .pid (the daemon's), .mode_line."""

    def __init__(self, dev, workdir):
        self.dev = dev
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "dmafs.log"
        self.mnt = util.make_mountpoint()
        self.handle = None
        self.mode_line = None

    def mkfs(self):
        r = util.run_mkfs("-f", "-q", self.dev)
        assert r.returncode == 0, f"mkfs.dmafs -f {self.dev}:\n" \
                                  f"{r.stdout}{r.stderr}"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mount(self):
        assert self.handle is None
        start = len(MODE_LINE.findall(self.log()))
        self.handle = util.t_mount(self.dev, self.mnt, "allow_other",
                                   log_path=self.log_path)
        os.stat(self.mnt)      # waits for INIT
        assert util.wait_until(
            lambda: len(MODE_LINE.findall(self.log())) > start, 30), \
            f"no 'kernel extension:' line in the daemon log:\n{self.log()}"
        lines = MODE_LINE.findall(self.log())[start:]
        assert len(lines) == 1, f"more than one mode line: {lines}"
        self.mode_line = lines[0]
        want = f"active on {self.dev} (extent maps, dma-buf)"
        assert self.mode_line == want, \
            f"the daemon is not in kext mode: 'kernel extension: " \
            f"{self.mode_line}', expected '{want}'\n{self.log()}"

    @property
    def pid(self):
        return self.handle.proc.pid

    def umount(self):
        """A clean unmount; the daemon must exit 0 with a clean log."""
        h, self.handle = self.handle, None
        if h is not None:
            h.umount(check=True)

    def path(self, name):
        return self.mnt / name

    def fsck(self):
        r = subprocess.run([str(util.FSCK), "-n", self.dev],
                           capture_output=True, text=True, timeout=TIMEOUT)
        return r


@pytest.fixture
def fs(nvme_dev, tmp_path):
    assert Path(nvme_dev).is_block_device(), f"{nvme_dev}: no NVMe namespace"
    klog = KernelLog()
    f = E2EFs(nvme_dev, tmp_path)
    try:
        f.mkfs()
        f.mount()
    except BaseException:
        if f.handle is not None:
            f.handle.umount(check=False)
        util.remove_mountpoint(f.mnt)
        klog.close()
        raise
    yield f

    problems = []
    try:
        f.umount()
    except Exception as e:     # noqa: BLE001 -- collected, reported below
        problems.append(f"unmount: {e}")
        if f.handle is not None:
            f.handle.umount(check=False)
            f.handle = None
    if util.is_mounted(f.mnt):
        subprocess.run(["umount", "-l", str(f.mnt)])
    r = f.fsck()
    print(f"$ fsck.dmafs -n {f.dev}\n{r.stdout}{r.stderr}")
    if r.returncode != 0:
        problems.append(f"fsck.dmafs -n {f.dev} after the unmount: exit "
                        f"{r.returncode}\n{r.stdout}{r.stderr}")
    kernel = klog.read_new()
    klog.close()
    if kernel:
        print("kernel log:\n" + "\n".join(kernel))
    bad = [ln for ln in kernel if KLOG_BAD.search(ln) and
           not KLOG_OK.search(ln)]
    if bad:
        problems.append("the kernel log reports problems:\n" +
                        "\n".join(bad))
    util.remove_mountpoint(f.mnt)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# the mode


def test_kext_mode(fs):
    # The fixture already required the mode line; the xattr must agree on
    # the root, a directory and a file.
    assert fs.mode_line == f"active on {fs.dev} (extent maps, dma-buf)"
    os.mkdir(fs.path("d"))
    fs.path("f").write_bytes(b"x" * 100)
    for p in (fs.mnt, fs.path("d"), fs.path("f")):
        assert os.getxattr(p, MODE_XATTR) == b"kext", p
    assert MODE_XATTR not in os.listxattr(fs.path("f"))
    out = dmafs_io("write", fs.path("g"), "--size", "64K")
    assert "(dmafs, daemon mode kext)" in out


# ---------------------------------------------------------------------------
# data: sizes, kinds of dma-buf, rings

SIZES = [4 * KiB, MiB + 4 * KiB, 8 * MiB]
KINDS = ["udmabuf", "drm"]
RINGS = ["plain", "defer"]


def check_buffer_line(out, kind):
    line = next(ln for ln in out.splitlines() if ln.startswith("buffer: "))
    if kind == "drm":
        assert line.startswith("buffer: drm vgem"), line
    else:
        assert line.startswith("buffer: udmabuf"), line


@pytest.mark.parametrize("ring", RINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_dmabuf_io_sizes(fs, kind, ring):
    io = ["--dmabuf", kind, "--ring", ring, "--bs", "256K", "--qd", "4"]
    want = {}
    for size in SIZES:
        # WRITE_FIXED: dmafs-io writes a file of random bytes ...
        src = fs.workdir / f"in-{size}"
        data = os.urandom(size)
        src.write_bytes(data)
        name = f"w-{size}"
        out = dmafs_io("write", fs.path(name), "--input", src, *io)
        check_buffer_line(out, kind)
        assert f"write: {size} bytes" in out, out
        want[name] = data
        # ... and READ_FIXED reads it back.
        dst = fs.workdir / f"out-{size}"
        out = dmafs_io("read", fs.path(name), "--output", dst, *io)
        assert f"read: {size} bytes" in out, out
        assert_same(dst.read_bytes(), data, f"{name}: READ_FIXED after "
                                            f"WRITE_FIXED")
        # READ_FIXED of data the daemon wrote (buffered writes).
        name = f"r-{size}"
        data = os.urandom(size)
        util.write_file(fs.path(name), data, fsync=True)
        out = dmafs_io("read", fs.path(name), "--output", dst, *io)
        assert_same(dst.read_bytes(), data, f"{name}: READ_FIXED of "
                                            f"buffered writes")
        want[name] = data
    # (a) buffered reads through the daemon, caches dropped.
    for name, data in want.items():
        assert os.stat(fs.path(name)).st_size == len(data), name
        assert_same(buffered_read(fs.path(name)), data,
                    f"{name}: buffered read after dropping caches")
    # (b) raw reads of the device at the extents, after unmount.
    fs.umount()
    for name, data in want.items():
        assert_raw(fs, name, data)


# ---------------------------------------------------------------------------
# fragmented files

FRAG_FILES = 3
FRAG_ROUNDS = 6
FRAG_PIECE = 64 * KiB


@pytest.mark.parametrize("kind", KINDS)
def test_fragmented_files(fs, kind):
    names = [f"frag{i}" for i in range(FRAG_FILES)]
    content = {n: bytearray() for n in names}
    fds = {n: os.open(fs.path(n), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                      0o644) for n in names}
    try:
        for _ in range(FRAG_ROUNDS):
            for n in names:
                piece = os.urandom(FRAG_PIECE)
                assert os.write(fds[n], piece) == len(piece)
                os.fsync(fds[n])
                content[n] += piece
    finally:
        for fd in fds.values():
            os.close(fd)

    fs.umount()
    before = {}
    for n in names:
        exts = assert_raw(fs, n, bytes(content[n]))
        assert len(exts) >= 3 and discontinuities(exts) >= 2, \
            f"{n} is not fragmented: extents {exts}"
        assert not any(e[3] & EXTENT_UNWRITTEN for e in exts), exts
        before[n] = exts
    fs.mount()

    new = {}
    for i, n in enumerate(names):
        ring = RINGS[i % 2]
        io = ["--dmabuf", kind, "--ring", ring, "--bs", "128K", "--qd", "4"]
        dst = fs.workdir / f"{n}.out"
        dmafs_io("read", fs.path(n), "--output", dst, *io)
        assert_same(dst.read_bytes(), bytes(content[n]),
                    f"{n}: READ_FIXED across the fragments")
        new[n] = os.urandom(len(content[n]))
        src = fs.workdir / f"{n}.in"
        src.write_bytes(new[n])
        dmafs_io("write", fs.path(n), "--input", src, *io)
        dmafs_io("read", fs.path(n), "--output", dst, *io)
        assert_same(dst.read_bytes(), new[n],
                    f"{n}: READ_FIXED after WRITE_FIXED across the "
                    f"fragments")
    for n in names:
        assert_same(buffered_read(fs.path(n)), new[n],
                    f"{n}: buffered read after the WRITE_FIXED")
    fs.umount()
    for n in names:
        exts = assert_raw(fs, n, new[n])
        assert exts == before[n], \
            f"{n}: the extents changed: {before[n]} -> {exts}"


# ---------------------------------------------------------------------------
# several rings and processes at once


def test_concurrent_dmafs_io(fs):
    n = 4
    size = 2 * MiB
    data = {}
    procs = []

    def start(cmd, i):
        kind, ring = KINDS[i % 2], RINGS[(i // 2) % 2]
        cmd = [str(DMAFS_IO), *map(str, cmd), "--dmabuf", kind, "--ring",
               ring, "--bs", "128K", "--qd", "8"]
        return cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def wait_all(procs):
        for cmd, p in procs:
            try:
                out, _ = p.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
                raise AssertionError(f"{' '.join(cmd)} hangs:\n{out}")
            print(f"$ {' '.join(cmd)}\n{out}")
            assert p.returncode == 0, f"{' '.join(cmd)}: exit " \
                                      f"{p.returncode}\n{out}"
            check_dmafs_io_mode(out)

    for i in range(n):
        data[i] = os.urandom(size)
        (fs.workdir / f"c{i}.in").write_bytes(data[i])
    for i in range(n):
        procs.append(start(["write", fs.path(f"c{i}"), "--input",
                            fs.workdir / f"c{i}.in"], i))
    wait_all(procs)
    procs = [start(["read", fs.path(f"c{i}"), "--output",
                    fs.workdir / f"c{i}.out"], i + 1) for i in range(n)]
    # and, at the same time, self-checking passes on other files
    procs += [start(["verify", fs.path(f"v{i}"), "--size", "2M",
                     "--seed", str(i + 7)], i) for i in range(n)]
    wait_all(procs)
    for i in range(n):
        assert_same((fs.workdir / f"c{i}.out").read_bytes(), data[i],
                    f"c{i}: concurrent READ_FIXED")
        assert_same(buffered_read(fs.path(f"c{i}")), data[i],
                    f"c{i}: buffered read")
    fs.umount()
    for i in range(n):
        assert_raw(fs, f"c{i}", data[i])


def test_threads(fs):
    size = 8 * MiB
    prealloc(fs.path("t"), size)
    out = run_errors("threads", fs.path("t"), "-n", "4")
    stripes = [tuple(map(int, m)) for m in re.findall(
        r"^stripe \d+ (\d+) (\d+) seed (\d+)$", out, re.M)]
    assert len(stripes) == 4, out
    want = bytearray(size)
    for off, length, seed in stripes:
        want[off:off + length] = t_pattern(seed, off, length)
    assert_same(buffered_read(fs.path("t")), bytes(want),
                "t: buffered read after the threads")
    fs.umount()
    assert_raw(fs, "t", bytes(want))


# ---------------------------------------------------------------------------
# the proposal's raw-device programs with a dmafs file as the target

RAW_TARGET_SIZE = 64 * MiB     # rw_exact's MIN_TARGET


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
@pytest.mark.parametrize("prog", ["rw_exact", "reg_errors", "teardown"])
def test_raw_program_on_file(fs, prog, src):
    target = fs.path("target")
    prealloc(target, RAW_TARGET_SIZE)
    log = KernelLog()
    try:
        test_dmabuf_raw.run_prog(log, prog, str(target), "-s", src)
    finally:
        log.close()
    assert os.stat(target).st_size == RAW_TARGET_SIZE


# ---------------------------------------------------------------------------
# errors


def test_register_not_o_direct(fs):
    prealloc(fs.path("f"), 64 * KiB)
    run_errors("notdirect", fs.path("f"))


def test_io_on_other_file(fs):
    prealloc(fs.path("f"), 64 * KiB)
    prealloc(fs.path("other"), 64 * KiB)
    run_errors("otherfile", fs.path("f"), fs.path("other"))


def test_hole(fs):
    size, hoff, hlen = 256 * KiB, 64 * KiB, 64 * KiB
    data = t_pattern(1, 0, size)
    prealloc(fs.path("h"), size, data)
    fd = os.open(fs.path("h"), os.O_RDWR)
    try:
        util.fallocate(fd, util.FALLOC_FL_PUNCH_HOLE |
                       util.FALLOC_FL_KEEP_SIZE, hoff, hlen)
        os.fsync(fd)
    finally:
        os.close(fd)
    got = buffered_read(fs.path("h"))
    assert got[hoff:hoff + hlen] == bytes(hlen), "the punched range is " \
                                                 "not zeros"
    run_errors("hole", fs.path("h"), hoff, hlen)
    # The program filled the hole and punched it again, once per source.
    want = bytearray(data)
    want[hoff:hoff + hlen] = bytes(hlen)
    want = bytes(want)
    assert os.stat(fs.path("h")).st_size == size
    assert_same(buffered_read(fs.path("h")), want, "h: buffered read")
    fs.umount()
    exts = assert_raw(fs, "h", want)
    for fblk, n, _phys, _fl in exts:
        assert fblk * BS + n * BS <= hoff or fblk * BS >= hoff + hlen, \
            f"an extent maps the hole: {exts}"


def test_beyond_eof(fs):
    size = 16 * KiB + 2148
    data = t_pattern(1, 0, size + 4)[:size]
    prealloc(fs.path("e"), size, data)
    assert os.stat(fs.path("e")).st_size == size
    run_errors("eof", fs.path("e"))
    assert os.stat(fs.path("e")).st_size == size
    assert_same(buffered_read(fs.path("e")), data, "e: buffered read")
    fs.umount()
    assert_raw(fs, "e", data)


def test_unaligned(fs):
    prealloc(fs.path("u"), 64 * KiB)
    run_errors("unaligned", fs.path("u"))


def test_truncate_during_io(fs):
    size, new = 8 * MiB, 3 * MiB + 12 * KiB
    prealloc(fs.path("tr"), size)
    run_errors("truncate", fs.path("tr"), new, "-s", "udmabuf")
    assert os.stat(fs.path("tr")).st_size == new
    want = t_pattern(1, 0, new)
    assert_same(buffered_read(fs.path("tr")), want, "tr: buffered read")
    fs.umount()
    exts = assert_raw(fs, "tr", want)
    assert all((e[0] + e[1]) * BS <= -(-new // BS) * BS for e in exts), \
        f"extents past the truncated size: {exts}"


def test_punch_during_io(fs):
    size, off, length = 8 * MiB, 2 * MiB + 8 * KiB, MiB + 4 * KiB
    prealloc(fs.path("p"), size)
    run_errors("punch", fs.path("p"), off, length, "-s", "vgem")
    assert os.stat(fs.path("p")).st_size == size
    want = bytearray(t_pattern(1, 0, size))
    want[off:off + length] = bytes(length)
    want = bytes(want)
    assert_same(buffered_read(fs.path("p")), want, "p: buffered read")
    fs.umount()
    exts = assert_raw(fs, "p", want)
    for fblk, n, _phys, _fl in exts:
        assert fblk * BS + n * BS <= off or fblk * BS >= off + length, \
            f"an extent still maps the punched range: {exts}"


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
def test_daemon_killed_during_io(fs, src):
    prealloc(fs.path("k"), 8 * MiB)
    h = fs.handle
    run_errors("kill", fs.path("k"), "-p", fs.pid, "-s", src)
    rc = h.proc.wait(timeout=60)
    assert rc == -9, f"the daemon exited with {rc}, expected SIGKILL"
    # A dead FUSE mount: lazy unmount; nothing may hang.
    r = run(["umount", "-l", fs.mnt], timeout=60)
    assert r.returncode == 0, r.stdout
    assert util.wait_until(lambda: not util.is_mounted(fs.mnt), 30)
    fs.handle = None
    h.umount(check=False)     # bookkeeping: not mounted, already reaped
    # The fixture runs fsck -n: what the daemon made durable before the
    # kill must be consistent.


def test_lazy_umount_with_registered_buffer(fs):
    prealloc(fs.path("l"), MiB)
    cmd = [str(ERRORS), "umount", str(fs.path("l")), "-s", "udmabuf"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            line = p.stdout.readline()
            assert line, f"dmafs_errors umount ended early:\n{''.join(out)}"
            out.append(line)
            if line.strip() == "READY":
                break
            assert time.monotonic() < deadline
        r = subprocess.run(["umount", "-l", str(fs.mnt)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, f"umount -l: {r.stderr}"
        assert not util.is_mounted(fs.mnt)
        p.stdin.write("GO\n")
        p.stdin.flush()
        rest, _ = p.communicate(timeout=TIMEOUT)
        out.append(rest)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(f"$ {' '.join(cmd)}\n{''.join(out)}")
    assert p.returncode == 0, f"dmafs_errors umount: exit {p.returncode}\n" \
                              f"{''.join(out)}"
    # The last reference is gone: the daemon must finish by itself.
    try:
        rc = fs.handle.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the daemon did not exit within 60 s after "
                             "the lazily unmounted file system's last "
                             "registration and file were released")
    assert rc == 0, f"daemon exit status {rc}\n{fs.log()}"
    fs.umount()       # checks the daemon log; nothing left to unmount


def test_no_write_permission(fs):
    prealloc(fs.path("ro"), 64 * KiB, mode=0o644)
    os.chmod(fs.path("ro"), 0o644)
    assert os.stat(fs.path("ro")).st_uid == 0
    assert util.t_as_user(NOBODY, NOBODY, os.open, str(fs.path("ro")),
                          os.O_RDWR) == errno.EACCES
    run_errors("nobody", fs.path("ro"), "-s", "udmabuf")
    assert os.stat(fs.path("ro")).st_size == 64 * KiB
