# SPDX-License-Identifier: GPL-2.0-or-later
"""The libFuzzer targets in fuzz/ (see fuzz/README.md): every seed of the
corpus and every reproducer in fuzz/crashes/ runs clean, and a short bounded
fuzz run finds nothing.

The targets need clang and its libFuzzer runtime (scripts/deps.sh installs
them); without them these tests fail, they are not skipped.  The build goes
to $DMAFS_FUZZ_BUILD (default: build-fuzz in the repository)."""

import os
import re
import subprocess

import pytest

import util

pytestmark = pytest.mark.dmafs_cli

FUZZ = util.REPO / "fuzz"
RUN = FUZZ / "run.sh"
TARGETS = ["fuzz_format", "fuzz_image"]
CRASHES = sorted(p for p in (FUZZ / "crashes").glob("*")
                 if p.is_file() and p.name.split("-")[0] in TARGETS)


def tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="module")
def fuzz_bin():
    """Configure and build the targets (fuzz/run.sh --build)."""
    r = subprocess.run([str(RUN), "--build"], capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, (
        "cannot build the fuzz targets (clang and libclang-rt-14-dev are "
        "needed; scripts/deps.sh installs them):\n" + r.stdout + r.stderr)
    d = r.stdout.strip().splitlines()[-1]
    for t in TARGETS:
        assert os.access(os.path.join(d, t), os.X_OK), f"{d}/{t} not built"
    return d


def replay(fuzz_bin, target, files):
    """libFuzzer given files runs each once and stops at the first crash."""
    r = subprocess.run([os.path.join(fuzz_bin, target), "-timeout=30",
                        "-rss_limit_mb=2048", *map(str, files)],
                       capture_output=True, text=True, timeout=900)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_clean(fuzz_bin, target):
    files = sorted((FUZZ / "corpus" / target).glob("*"))
    assert files, f"fuzz/corpus/{target} is empty: run fuzz/make-corpus.py"
    rc, out = replay(fuzz_bin, target, files)
    assert rc == 0, f"{target} fails on its corpus:\n{tail(out)}"
    assert out.count("Executed ") == len(files), tail(out)


@pytest.mark.parametrize("crash", CRASHES, ids=[p.name for p in CRASHES])
def test_crash_reproducer_is_fixed(fuzz_bin, crash):
    target = crash.name.split("-")[0]
    rc, out = replay(fuzz_bin, target, [crash])
    assert rc == 0, (f"{crash.name} still reproduces (see fuzz/README.md):\n"
                     f"{tail(out)}")


@pytest.mark.slow
def test_bounded_fuzz_run_finds_nothing(fuzz_bin):
    r = subprocess.run([str(RUN), "30"], capture_output=True, text=True,
                       timeout=1800)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"fuzz/run.sh 30 failed:\n{tail(out)}"
    for t in TARGETS:
        m = re.search(rf"^fuzz: {t} (\d+) executions, 0 crashes$", r.stdout,
                      re.M)
        assert m and int(m.group(1)) > 0, out
