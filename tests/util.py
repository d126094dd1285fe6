# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers for the dmafs test suite: mounting, formatting, running as other
users, and thin ctypes wrappers for the system calls the os module lacks.

Two modes:

* dmafs mode (default): the filesystem under test is the dmafs FUSE daemon
  ($DMAFS_BUILD/fs/dmafs) on an image made by $DMAFS_BUILD/tools/mkfs.dmafs.
* reference mode (DMAFS_TEST_REFERENCE=1): the same tests run against a
  freshly made ext4 image mounted through a loop device.  This proves that the
  expectations the tests encode are those of a real POSIX filesystem.
"""

import ctypes
import ctypes.util
import errno
import hashlib
import os
import pickle
import re
import signal
import stat
import struct
import subprocess
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("DMAFS_BUILD") or REPO / "build")
MKFS = BUILD / "tools" / "mkfs.dmafs"
DAEMON = BUILD / "fs" / "dmafs"
FSCK = BUILD / "tools" / "fsck.dmafs"
REFERENCE = os.environ.get("DMAFS_TEST_REFERENCE", "") not in ("", "0")

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

DEFAULT_IMAGE_SIZE = "256M"
MOUNT_TIMEOUT = 30.0       # seconds for a mount to appear
EXIT_TIMEOUT = 30.0        # seconds for the daemon to exit after unmount

# Unprivileged identities used by permission tests (need not exist in
# /etc/passwd).
USER_A = 1234
USER_B = 1235
GROUP_A = 1234
GROUP_B = 1235
GROUP_OTHER = 4321

# ---------------------------------------------------------------------------
# small utilities


def parse_size(s):
    """'256M' -> 268435456.  Suffixes K/M/G/T are 1024-based."""
    if isinstance(s, int):
        return s
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", str(s), re.I)
    if not m:
        raise ValueError(f"bad size {s!r}")
    mult = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB}[m.group(2).upper()]
    return int(m.group(1)) * mult


def sha256_file(path, chunk=MiB):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data, mode=0o644, fsync=False):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def pattern(seed, n):
    """n deterministic pseudo-random bytes (fast, position independent of
    chunking: pattern(s, n)[a:b] == pattern(s, b)[a:b])."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha512(f"{seed}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# ---------------------------------------------------------------------------
# mount table


def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mount_entry(path):
    """(fstype, source, super_options) of the topmost mount at path, or None.
    Reads /proc/self/mountinfo and never touches the path itself, so it does
    not hang on a dead FUSE mount."""
    path = os.path.abspath(str(path))
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if _unescape_mountinfo(fields[4]) == path:
                found = (fields[sep + 1], _unescape_mountinfo(fields[sep + 2]),
                         fields[sep + 3] if len(fields) > sep + 3 else "")
    return found


def is_mounted(path):
    return mount_entry(path) is not None


def unmount_path(mnt, fuse=True):
    """Unmount mnt, trying fusermount3 -u (FUSE), umount, then, only as a last
    resort, umount -l.  Returns 'clean' or 'lazy'; raises if nothing worked."""
    mnt = str(mnt)
    attempts = []
    if fuse:
        attempts.append(["fusermount3", "-u", mnt])
    attempts.append(["umount", mnt])
    # A process of the test that still holds a file open may need a moment
    # to go away: retry the clean unmount a few times before going lazy.
    deadline = time.monotonic() + 10
    while True:
        for cmd in attempts:
            if not is_mounted(mnt):
                return "clean"
            subprocess.run(cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if not is_mounted(mnt):
            return "clean"
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    subprocess.run(["umount", "-l", mnt], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    if is_mounted(mnt):
        raise RuntimeError(f"could not unmount {mnt}")
    return "lazy"


# Every mount made through this module, so that a session finalizer can
# clean up whatever a crashed test left behind.
_live_mounts = set()


def cleanup_all_mounts():
    for h in list(_live_mounts):
        try:
            h.umount(check=False)
        except Exception:
            pass


# ---------------------------------------------------------------------------
# daemon output checking (in the spirit of libfuse's test/util.py)

LOG_BAD = re.compile(r"error|warning|critical|AddressSanitizer|runtime error",
                     re.I)


def check_daemon_log(text, allow=()):
    """Return the lines of the daemon's output that look like trouble and are
    not matched by one of the allow regexes."""
    allow = [re.compile(a, re.I) for a in allow]
    bad = []
    for line in text.splitlines():
        if LOG_BAD.search(line) and not any(a.search(line) for a in allow):
            bad.append(line)
    return bad


# ---------------------------------------------------------------------------
# mkfs


def run_mkfs(*args, timeout=120):
    """Run mkfs.dmafs with args; returns the CompletedProcess (text)."""
    if not MKFS.exists():
        raise AssertionError(f"{MKFS} does not exist: build dmafs first "
                             f"(or point DMAFS_BUILD at the build directory)")
    return subprocess.run([str(MKFS), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def mkfs_ext4(image, label=None):
    cmd = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-I", "256"]
    if label:
        cmd += ["-L", label]
    subprocess.run(cmd + [str(image)], check=True, capture_output=True)


def t_mkfs(image, *args, check=True):
    """Format image.  dmafs mode: mkfs.dmafs *args image.  Reference mode:
    mkfs.ext4 (understands -L LABEL and -s SIZE; -f is implied).
    Returns the CompletedProcess; raises if check and it failed."""
    image = Path(image)
    if REFERENCE:
        label = None
        a = list(args)
        while a:
            o = a.pop(0)
            if o == "-L":
                label = a.pop(0)
            elif o == "-s":
                size = parse_size(a.pop(0))
                with open(image, "ab") as f:
                    if f.tell() < size:
                        f.truncate(size)
            elif o == "-f":
                pass
            else:
                raise ValueError(f"t_mkfs: option {o} not supported in "
                                 f"reference mode")
        mkfs_ext4(image, label)
        return subprocess.CompletedProcess(["mkfs.ext4"], 0, "", "")
    res = run_mkfs(*args, image)
    if check and res.returncode != 0:
        raise AssertionError(f"mkfs.dmafs {' '.join(args)} {image} failed "
                             f"({res.returncode}):\n{res.stdout}{res.stderr}")
    return res


# ---------------------------------------------------------------------------
# mounting

FUSE_ONLY_OPTS = {"allow_other", "default_permissions", "allow_root"}


class DaemonMount:
    """The dmafs daemon running in the foreground (-f), output to a log."""

    fuse = True

    def __init__(self, image, mnt, opts, log_path, allow_log=()):
        self.image = Path(image)
        self.mnt = Path(mnt)
        self.opts = list(opts)
        self.log_path = Path(log_path)
        self.allow_log = list(allow_log)
        self.proc = None
        self.returncode = None
        if not DAEMON.exists():
            raise AssertionError(f"{DAEMON} does not exist: build dmafs "
                                 f"first (or set DMAFS_BUILD)")
        cmd = [str(DAEMON), "-f"]
        if self.opts:
            cmd += ["-o", ",".join(self.opts)]
        cmd += [str(self.image), str(self.mnt)]
        self.cmd = cmd
        self._log = open(self.log_path, "ab")
        self._log.write(f"### {' '.join(cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        _live_mounts.add(self)
        try:
            self._wait_mounted()
        except BaseException:
            self.umount(check=False)
            raise

    def _wait_mounted(self):
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while True:
            if is_mounted(self.mnt):
                return
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"dmafs exited with {rc} before the mount appeared:\n"
                    f"{self.log()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"mount did not appear within "
                                     f"{MOUNT_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.02)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def mounted(self):
        return self.proc is not None

    def umount(self, check=True):
        """Unmount, wait for the daemon to exit; with check, require exit
        status 0, a clean (not lazy) unmount and a clean log."""
        if self.proc is None:
            return
        problems = []
        try:
            try:
                how = unmount_path(self.mnt, fuse=True)
                if how != "clean":
                    problems.append("mount was busy: needed umount -l")
            except RuntimeError as e:
                problems.append(str(e))
            try:
                self.returncode = self.proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"daemon did not exit within {EXIT_TIMEOUT}s "
                                f"of the unmount")
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.returncode = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.returncode = self.proc.wait()
            if self.returncode != 0:
                problems.append(f"daemon exited with status {self.returncode}")
            bad = check_daemon_log(self.log(), self.allow_log)
            if bad:
                problems.append("unexpected lines in the daemon output:\n  "
                                + "\n  ".join(bad))
        finally:
            self.proc = None
            self._log.close()
            _live_mounts.discard(self)
        if check and problems:
            raise AssertionError("; ".join(problems) + "\n--- daemon log ---\n"
                                 + self.log())


class LoopMount:
    """Reference mode: the image (ext4) mounted through a loop device."""

    fuse = False

    def __init__(self, image, mnt, opts, log_path=None, allow_log=()):
        self.image = Path(image)
        self.mnt = Path(mnt)
        self.opts = [o for o in opts if o not in FUSE_ONLY_OPTS]
        o = ",".join(["loop"] + self.opts)
        res = subprocess.run(["mount", "-t", "ext4", "-o", o, str(self.image),
                              str(self.mnt)], capture_output=True, text=True)
        if res.returncode != 0:
            raise AssertionError(f"mount -o {o} {image} {mnt} failed: "
                                 f"{res.stderr}")
        self._mounted = True
        _live_mounts.add(self)

    def log(self):
        return ""

    @property
    def mounted(self):
        return self._mounted

    def umount(self, check=True):
        if not self._mounted:
            return
        try:
            how = unmount_path(self.mnt, fuse=False)
        finally:
            self._mounted = False
            _live_mounts.discard(self)
        if check and how != "clean":
            raise AssertionError("mount was busy: needed umount -l")


def t_mount(image, mnt, *opts, log_path=None, allow_log=()):
    """Mount image at mnt with the -o options opts; returns a handle with
    .umount().  dmafs mode: the daemon in the foreground, its output in
    log_path (default: next to the image)."""
    if REFERENCE:
        return LoopMount(image, mnt, opts)
    if log_path is None:
        log_path = Path(str(image) + ".log")
    return DaemonMount(image, mnt, opts, log_path, allow_log)


def make_mountpoint():
    """A fresh empty directory to mount on, reachable by every user (pytest's
    tmp_path is below a 0700 directory, so mount points live elsewhere)."""
    base = tempfile.mkdtemp(prefix="dmafs-", dir="/tmp")
    os.chmod(base, 0o755)
    mnt = os.path.join(base, "mnt")
    os.mkdir(mnt, 0o755)
    return Path(mnt)


def remove_mountpoint(mnt):
    mnt = Path(mnt)
    if is_mounted(mnt):
        return
    try:
        mnt.rmdir()
        mnt.parent.rmdir()
    except OSError:
        pass


class TestFs:
    """A formatted image and its mount: what the `dmafs` fixture yields.

    .image, .mnt (pathlib.Path), .mount(opts), .umount(), .remount(opts),
    .allow_log(regex...) to accept expected lines in the daemon output,
    .log() the daemon output so far."""

    __test__ = False    # not a test class for pytest

    def __init__(self, workdir, size=DEFAULT_IMAGE_SIZE, allow_log=()):
        self.workdir = Path(workdir)
        self.size = parse_size(size)
        self.image = self.workdir / ("ext4.img" if REFERENCE else "dmafs.img")
        self.log_path = self.workdir / "dmafs.log"
        self.mnt = make_mountpoint()
        self.handle = None
        self._allow = list(allow_log)
        self.mounts = 0

    # -- lifecycle
    def format(self, *args):
        with open(self.image, "wb") as f:
            f.truncate(self.size)
        return t_mkfs(self.image, *args)

    def mount(self, opts=()):
        assert self.handle is None, "already mounted"
        if isinstance(opts, str):
            opts = [o for o in opts.split(",") if o]
        self.handle = t_mount(self.image, self.mnt, "allow_other", *opts,
                              log_path=self.log_path, allow_log=self._allow)
        self.mounts += 1
        if REFERENCE and self.mounts == 1 and "ro" not in opts:
            # Make the root look like a fresh filesystem's: empty.
            lf = self.mnt / "lost+found"
            if lf.exists():
                lf.rmdir()
        return self

    def umount(self, check=True):
        h, self.handle = self.handle, None
        if h is not None:
            h.umount(check=check)

    def remount(self, opts=()):
        self.umount()
        self.mount(opts)

    @property
    def mounted(self):
        return self.handle is not None

    def allow_log(self, *patterns):
        self._allow.extend(patterns)
        if self.handle is not None and hasattr(self.handle, "allow_log"):
            self.handle.allow_log.extend(patterns)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fsck(self):
        """After every test that mounted: the checker must find the image
        clean (fsck.dmafs -n; e2fsck -fn in reference mode)."""
        if not self.image.exists():
            return
        cmd = (["e2fsck", "-fn"] if REFERENCE else [str(FSCK), "-n"])
        r = subprocess.run(cmd + [str(self.image)], capture_output=True,
                           text=True)
        assert r.returncode == 0, f"{cmd[0]}:\n{r.stdout}{r.stderr}"

    def destroy(self, keep_image=False):
        try:
            self.umount(check=True)
            self.fsck()
        finally:
            try:
                self.umount(check=False)
            finally:
                remove_mountpoint(self.mnt)
                if not keep_image:
                    try:
                        self.image.unlink()
                    except FileNotFoundError:
                        pass


# ---------------------------------------------------------------------------
# running as another user


class Errno(int):
    """What t_as_user returns when fn raised OSError: compares equal to the
    errno value."""

    def __repr__(self):
        return f"Errno({errno.errorcode.get(int(self), int(self))})"


def t_as_user(uid, gid, fn, *args, groups=(), **kwargs):
    """Run fn(*args, **kwargs) in a forked child with real, effective and
    saved uid/gid set to uid/gid and the supplementary groups set to groups
    (none by default).  Returns fn's result (which must be picklable), or an
    Errno if fn raised OSError.  Any other exception is re-raised here."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # child
        try:
            os.close(r)
            try:
                os.setgroups(list(groups))
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                res = ("ok", fn(*args, **kwargs))
            except OSError as e:
                res = ("errno", e.errno, str(e))
            except BaseException:
                res = ("exc", traceback.format_exc())
            try:
                data = pickle.dumps(res)
            except Exception:
                data = pickle.dumps(("exc", traceback.format_exc()))
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        raise AssertionError(f"t_as_user child died (status {status:#x})")
    res = pickle.loads(b"".join(chunks))
    if res[0] == "ok":
        return res[1]
    if res[0] == "errno":
        return Errno(res[1])
    raise AssertionError("t_as_user child raised:\n" + res[1])


# ---------------------------------------------------------------------------
# system calls via ctypes

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
SYS_renameat2 = 316     # x86_64
SYS_getdents64 = 217    # x86_64


def _errcheck(ret, what):
    if ret == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def _b(path):
    return os.fsencode(path)


def renameat2(old, new, flags=0):
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(SYS_renameat2), ctypes.c_int(AT_FDCWD),
                       ctypes.c_char_p(_b(old)), ctypes.c_int(AT_FDCWD),
                       ctypes.c_char_p(_b(new)), ctypes.c_uint(flags))
    _errcheck(ret, f"renameat2({old}, {new}, {flags})")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, atime, mtime, follow=True):
    """atime/mtime: (sec, nsec) tuples, UTIME_NOW or UTIME_OMIT."""
    def ts(t):
        if t in (UTIME_NOW, UTIME_OMIT):
            return _Timespec(0, t)
        return _Timespec(t[0], t[1])
    times = (_Timespec * 2)(ts(atime), ts(mtime))
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    ret = libc.utimensat(ctypes.c_int(AT_FDCWD), ctypes.c_char_p(_b(path)),
                         times, ctypes.c_int(flags))
    _errcheck(ret, f"utimensat({path})")


def fallocate(fd, mode, offset, length):
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                               ctypes.c_int64]
    ret = libc.fallocate(fd, mode, offset, length)
    _errcheck(ret, f"fallocate(mode={mode:#x})")


def syncfs(fd):
    _errcheck(libc.syncfs(ctypes.c_int(fd)), "syncfs")


def getxattr_size(path, name, size):
    """getxattr with a caller-chosen buffer size (to provoke ERANGE).
    Size 0 returns the value's length, as the system call does."""
    buf = ctypes.create_string_buffer(max(size, 1))
    ret = libc.getxattr(ctypes.c_char_p(_b(path)), ctypes.c_char_p(_b(name)),
                        buf if size else None, ctypes.c_size_t(size))
    _errcheck(ret, f"getxattr({name})")
    return buf.raw[:ret] if size else ret


def listxattr_size(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    ret = libc.listxattr(ctypes.c_char_p(_b(path)), buf, ctypes.c_size_t(size))
    _errcheck(ret, "listxattr")
    return buf.raw[:ret]


DT_NAMES = {0: "unknown", 1: "fifo", 2: "chr", 4: "dir", 6: "blk", 8: "reg",
            10: "lnk", 12: "sock"}
DT_UNKNOWN, DT_FIFO, DT_CHR, DT_DIR, DT_BLK, DT_REG, DT_LNK, DT_SOCK = \
    0, 1, 2, 4, 6, 8, 10, 12


def getdents(path):
    """Every raw directory entry of path, '.' and '..' included, as a list of
    (name, d_ino, d_type)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    out = []
    try:
        buf = ctypes.create_string_buffer(32768)
        libc.syscall.restype = ctypes.c_long
        while True:
            n = libc.syscall(ctypes.c_long(SYS_getdents64), ctypes.c_int(fd),
                             buf, ctypes.c_uint(len(buf)))
            _errcheck(n, "getdents64")
            if n == 0:
                break
            raw = buf.raw[:n]
            off = 0
            while off < n:
                ino, _doff, reclen, dtype = struct.unpack_from("<QqHB", raw,
                                                               off)
                name = raw[off + 19:off + reclen].split(b"\0", 1)[0]
                out.append((os.fsdecode(name), ino, dtype))
                off += reclen
    finally:
        os.close(fd)
    return out


def data_map(path):
    """The list of (start, end) data segments of a file by SEEK_DATA/HOLE."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        segs = []
        off = 0
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            h = os.lseek(fd, d, os.SEEK_HOLE)
            segs.append((d, h))
            off = h
        return segs
    finally:
        os.close(fd)


def mode_str(m):
    return f"{stat.filemode(m)} ({m:o})"


class mounted:
    """with mounted(image, "ro") as mnt: ... -- a throwaway mount point, the
    image mounted there (allow_other), always unmounted and removed after;
    the unmount checks the daemon's exit status and output."""

    def __init__(self, image, *opts, allow_log=()):
        self.image, self.opts, self.allow_log = image, opts, allow_log

    def __enter__(self):
        self.mnt = make_mountpoint()
        try:
            self.handle = t_mount(self.image, self.mnt, "allow_other",
                                  *self.opts, allow_log=self.allow_log)
        except BaseException:
            remove_mountpoint(self.mnt)
            raise
        return self.mnt

    def __exit__(self, *exc):
        try:
            self.handle.umount(check=exc[0] is None)
        finally:
            self.handle.umount(check=False)
            remove_mountpoint(self.mnt)
        return False


def assert_one_line_error(res, prog):
    """A failed run of a dmafs tool: non-zero exit and exactly one line on
    stderr, starting with 'prog: '."""
    assert res.returncode != 0, \
        f"{prog} succeeded but should have failed:\n{res.stdout}{res.stderr}"
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"want one line on stderr, got:\n{res.stderr}"
    assert lines[0].startswith(f"{prog}: "), lines[0]
    return lines[0]


class LoopDevice:
    """with LoopDevice(image) as dev: -- losetup, always detached after."""

    def __init__(self, image):
        self.image = image

    def __enter__(self):
        self.dev = subprocess.run(["losetup", "-f", "--show", str(self.image)],
                                  check=True, capture_output=True,
                                  text=True).stdout.strip()
        return self.dev

    def __exit__(self, *exc):
        subprocess.run(["losetup", "-d", self.dev], capture_output=True)
        return False
