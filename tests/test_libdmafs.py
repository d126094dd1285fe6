# SPDX-License-Identifier: GPL-2.0-or-later
"""libdmafs and its tools (dmafs-io, dmafs-check) on a stock kernel.

Without the kernel extension, udmabuf or vgem, everything runs in compat
mode: --dmabuf mem (plain memory standing in for a dma-buf), data through
the library's bounce buffers with O_DIRECT.  The dma-buf mode is the VM
tier's (tests/vm/).
"""

import errno
import json
import os
import subprocess

import pytest

import util

pytestmark = pytest.mark.dmafs_cli

DMAFS_IO = util.BUILD / "tools" / "dmafs-io"
DMAFS_CHECK = util.BUILD / "tools" / "dmafs-check"
UNIT = util.BUILD / "tests" / "test_libdmafs"

MiB = util.MiB
KiB = util.KiB


def run(*args, check=None, timeout=120):
    r = subprocess.run([str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    if check is not None:
        assert r.returncode == check, (
            f"{args}: exit {r.returncode}, expected {check}\n"
            f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def dmafs_io(*args, check=0, **kw):
    return run(DMAFS_IO, *args, check=check, **kw)


@pytest.fixture(params=["dmafs", "tmpfs", "host"])
def where(request, tmp_path):
    """A directory on dmafs, on tmpfs, and on the host's own /tmp."""
    if request.param == "dmafs":
        fs = request.getfixturevalue("dmafs")
        yield fs.mnt
    elif request.param == "tmpfs":
        d = tmp_path / "tmpfs"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs",
                        str(d)], check=True)
        try:
            yield d
        finally:
            subprocess.run(["umount", str(d)], check=True)
    else:
        yield tmp_path


def test_c_api_in_compat_mode(where):
    r = run(UNIT, where)
    if r.returncode == 77:
        pytest.skip(r.stderr.strip())
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("size,offset,bs,qd,ring", [
    ("4K", "0", "4K", 1, "plain"),
    ("1M", "4K", "64K", 4, "plain"),
    ("3M", "1M", "1M", 2, "defer"),
    ("5M", "12K", "3M", 3, "defer"),     # requests over the bounce size
    ("2M", "0", "8K", 32, "plain"),
])
def test_verify_mem(where, size, offset, bs, qd, ring):
    f = where / "v.bin"
    r = dmafs_io("verify", f, "--dmabuf", "mem", "--size", size,
                 "--offset", offset, "--bs", bs, "--qd", qd, "--ring", ring,
                 "--seed", "7")
    assert "verify: ok" in r.stdout
    assert "mode: compat (the buffer is plain memory" in r.stdout
    assert os.path.getsize(f) == (util.parse_size(offset) +
                                  util.parse_size(size))
    # The file holds the pattern at the right place: read --check agrees,
    # and with another seed disagrees (exit 1).
    dmafs_io("read", f, "--dmabuf", "mem", "--offset", offset, "--size",
             size, "--check", "--seed", "7")
    r = dmafs_io("read", f, "--dmabuf", "mem", "--offset", offset,
                 "--size", size, "--check", "--seed", "8", check=1)
    assert "mismatch at file offset" in r.stderr


@pytest.mark.parametrize("size,offset", [(4 * KiB, 0), (300 * KiB, 8 * KiB),
                                         (2 * MiB + 4 * KiB, 1 * MiB)])
def test_data_exact_both_ways(where, tmp_path, size, offset):
    data = os.urandom(size)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    f = where / "x.bin"
    util.write_file(f, b"\xab" * (offset + size + 8 * KiB))
    # Write from an input file through the buffer into the file ...
    dmafs_io("write", f, "--dmabuf", "mem", "--input", src, "--offset",
             str(offset), "--bs", "64K", "--qd", "4")
    whole = util.read_file(f)
    assert whole[:offset] == b"\xab" * offset
    assert whole[offset:offset + size] == data
    assert whole[offset + size:] == b"\xab" * (8 * KiB)
    # ... and read it back out through another buffer.
    out = tmp_path / "out.bin"
    dmafs_io("read", f, "--dmabuf", "mem", "--output", out, "--offset",
             str(offset), "--size", str(size), "--bs", "128K", "--qd", "3",
             "--ring", "defer")
    assert out.read_bytes() == data


def test_read_to_eof(where, tmp_path):
    f = where / "eof.bin"
    data = os.urandom(100 * KiB + 123)
    util.write_file(f, data)
    out = tmp_path / "out.bin"
    r = dmafs_io("read", f, "--dmabuf", "mem", "--output", out, "--bs",
                 "16K")
    assert out.read_bytes() == data
    assert "end of file" in r.stdout


def test_bad_arguments(where):
    # (No "error" in a test name: it ends up in the daemon log's paths.)
    f = where / "e.bin"
    util.write_file(f, b"\0" * MiB)
    r = dmafs_io("write", f, "--dmabuf", "mem", "--offset", "100",
                 "--size", "4K", check=3)
    assert "Invalid argument" in r.stderr
    r = dmafs_io("read", f, "--dmabuf", "mem", "--size", "1000", check=3)
    assert "Invalid argument" in r.stderr
    r = dmafs_io("read", where / "nope" / "x", "--dmabuf", "mem", check=3)
    assert "No such file or directory" in r.stderr
    r = dmafs_io("read", where, "--dmabuf", "mem", check=3)
    assert "Is a directory" in r.stderr


def test_usage_errors(tmp_path):
    f = tmp_path / "u.bin"
    dmafs_io("frobnicate", f, check=2)
    dmafs_io("read", f, "--dmabuf", "floppy", check=2)
    dmafs_io("read", f, "--size", "12Q", check=2)
    dmafs_io("read", f, "--input", f, check=2)
    dmafs_io("read", check=2)


def test_no_exporter_is_a_clear_error(tmp_path):
    if os.path.exists("/dev/udmabuf"):
        pytest.skip("this machine has udmabuf")
    r = dmafs_io("verify", tmp_path / "f", "--size", "64K", check=3)
    assert "udmabuf" in r.stderr and "No such device" in r.stderr


def test_bench_and_progress(mnt):
    f = mnt / "b.bin"
    r = dmafs_io("bench", f, "--dmabuf", "mem", "--op", "write", "--size",
                 "4M", "--bs", "64K", "--qd", "4", "--progress")
    assert "bench: iops" in r.stdout and "cpu_us_per_io" in r.stdout
    assert "write: 4194304 bytes" in r.stdout
    assert "MiB" in r.stderr        # --progress off a terminal: lines
    for op in ("read", "randread", "randwrite"):
        r = dmafs_io("bench", f, "--dmabuf", "mem", "--op", op, "--size",
                     "4M", "--bs", "16K", "--qd", "8", "--ring", "defer")
        assert "bench: iops" in r.stdout
    r = dmafs_io("bench", f, "--dmabuf", "mem", "--op", "randread",
                 "--size", "4M", "--bs", "4K", "--time", "0.5")
    assert "bench: iops" in r.stdout
    assert r.stderr == ""           # no progress off a terminal


def test_check_reports_extension_absent():
    r = run(DMAFS_CHECK, check=1)
    assert "dmabuf_fixed_buffers: absent" in r.stdout
    assert "fuse_forwarding: absent" in r.stdout
    assert "dma-buf I/O: not available" in r.stdout
    j = json.loads(run(DMAFS_CHECK, "--json", check=1).stdout)
    assert j["kernel"]["dmabuf_fixed_buffers"] == "absent"
    assert j["dmabuf_io_available"] is False
    assert "udmabuf" in j["exporters"]
    assert "mode" in j["iommu"]
    assert run(DMAFS_CHECK, "-q", check=1).stdout == ""


def test_check_on_dmafs_and_elsewhere(mnt, tmp_path):
    f = mnt / "c.bin"
    util.write_file(f, b"\0" * 8192)
    j = json.loads(run(DMAFS_CHECK, "--json", f, check=1).stdout)
    assert j["file"]["on_dmafs"] is True
    assert j["file"]["fs_type"] == "fuse.dmafs"
    # An image file: the daemon cannot use the kernel extension.
    assert j["file"]["daemon_mode"] == "compat"
    r = dmafs_io("read", f, "--dmabuf", "mem")
    assert "(dmafs, daemon mode compat)" in r.stdout
    assert "device" in j
    j = json.loads(run(DMAFS_CHECK, "--json", mnt, check=1).stdout)
    assert j["file"]["on_dmafs"] is True
    j = json.loads(run(DMAFS_CHECK, "--json", tmp_path, check=1).stdout)
    assert j["file"]["on_dmafs"] is False
    r = run(DMAFS_CHECK, tmp_path / "missing", check=3)
    assert "No such file" in r.stderr
    run(DMAFS_CHECK, "a", "b", check=2)
