# SPDX-License-Identifier: GPL-2.0-or-later
"""dma-buf I/O on the raw NVMe namespace (kernel extension, layer 1).

Runs the C programs of tests/vm/dmabuf/ (built by meson into
$DMAFS_BUILD/tests/vm/dmabuf/) against the VM's namespace, $DMAFS_VM_NVME
(/dev/nvme0n1), whose contents they destroy:

  rw_exact    READ_FIXED/WRITE_FIXED move exactly the right bytes, checked
              against O_DIRECT pread/pwrite (sizes, offsets, queue depths)
  reg_errors  invalid registrations and I/O fail with the contract's errno
  teardown    unregister / ring exit / dma-buf close with I/O in flight, and
              exporter invalidation during I/O
  release     the namespace is free (O_EXCL) as soon as a process that
              registered a dma-buf for it is reaped
  unbind      the nvme driver unbound with a dma-buf registered: mapping
              and attachment revoked, I/O fails, the driver bound again

Each program must exit 0: inside the VM a skip (77: no udmabuf, no vgem, no
namespace) is a failure too.  After each program the new kernel log records
are scanned for bug reports (BUG:, WARNING:, KASAN, Oops, lockdep, ...); any
one fails the test.  Outside the VM (DMAFS_VM != 1) tests/vm/conftest.py
skips this file: the programs would write to whatever /dev/nvme0n1 is.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DMAFS_BUILD") or REPO / "build")
PROGS = BUILD / "tests" / "vm" / "dmabuf"

# Seconds per program: generous, for the debug kernel (KASAN, lockdep)
# under TCG.
TIMEOUT = 1500

# The same reports tests/vm/run fails a whole run on, caught here per test.
KLOG_BAD = re.compile(
    r"BUG:|WARNING:|KASAN|kmemleak|Oops|general protection|UBSAN|"
    r"list_(add|del) corruption|lockdep|possible (circular|recursive) locking|"
    r"inconsistent lock state|INFO: task .* blocked|Kernel panic|kernel BUG|"
    r"Call Trace:|RIP:|refcount_t:|rcu: .*stall")
KLOG_OK = re.compile(
    r"kmemleak: Kernel memory leak detector initialized|"
    r"kmemleak: Automatic memory scanning thread|"
    r"kasan: KernelAddressSanitizer initialized|dmafs-vm: kmemleak: ")


class KernelLog:
    """The records /dev/kmsg gets from now on."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read_new(self):
        lines = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:
                # Records were overwritten before we read them.
                lines.append("<kernel log records lost>")
                continue
            if not rec:
                break
            # "prio,seq,usec,flags;message\n" then " KEY=value" lines.
            _meta, _, text = rec.decode(errors="replace").partition(";")
            lines.append(text.split("\n", 1)[0])
        return lines

    def close(self):
        os.close(self.fd)


@pytest.fixture
def klog():
    log = KernelLog()
    yield log
    log.close()


@pytest.fixture(scope="module")
def target(nvme_dev):
    assert Path(nvme_dev).is_block_device(), f"{nvme_dev}: no NVMe namespace"
    return nvme_dev


def run_prog(klog, name, *args):
    """Run PROGS/name target args...; fail on exit != 0 or kernel reports."""
    exe = PROGS / name
    assert exe.exists(), f"{exe} is not built (meson compile -C {BUILD})"
    cmd = [str(exe), *args]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=TIMEOUT)
        out, rc = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        rc = None
    kernel = klog.read_new()
    print(f"$ {' '.join(cmd)}\n{out}")
    if kernel:
        print("kernel log:\n" + "\n".join(kernel))
    bad = [ln for ln in kernel if KLOG_BAD.search(ln) and
           not KLOG_OK.search(ln)]
    what = {None: f"timed out after {TIMEOUT} s",
            77: "exit 77: SKIPPED, which is a failure in the VM"}
    assert rc == 0, (f"{name} {' '.join(args)}: "
                     f"{what.get(rc, f'exit {rc}')}\n{out}")
    assert not bad, (f"{name} {' '.join(args)}: the kernel log reports "
                     "problems:\n" + "\n".join(bad))


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
def test_rw_exact(klog, target, src):
    run_prog(klog, "rw_exact", target, "-s", src)


def test_rw_exact_selftest(klog, target):
    """The same checks with ordinary fixed buffers: no dma-buf at all.

    If this fails, the test program or the device is broken, not the
    dma-buf path."""
    run_prog(klog, "rw_exact", target, "-s", "selftest")


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
def test_reg_errors(klog, target, src):
    run_prog(klog, "reg_errors", target, "-s", src)


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
def test_teardown(klog, target, src):
    run_prog(klog, "teardown", target, "-s", src)


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
def test_release(klog, target, src):
    """The namespace opens O_EXCL right after a dma-buf program is reaped
    (issue 9, item 4): exit with everything open, close then exit, and a
    SIGKILL with I/O in flight."""
    run_prog(klog, "release", target, "-s", src)


@pytest.mark.parametrize("src", ["udmabuf", "vgem"])
def test_unbind(klog, target, src):
    """The nvme driver unbound with a dma-buf registered (issue 9, item 5):
    the driver revokes the dma-buf's mapping and attachment before it lets
    go of the device, I/O with the registration then fails, its release
    still works, and the driver bound again serves new registrations."""
    run_prog(klog, "unbind", target, "-s", src)
