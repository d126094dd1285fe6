#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Table and ratios for bench/vm-dmafs.sh from its results.jsonl."""
import json
import sys
from collections import defaultdict
from statistics import mean

ROWS = [("file", "dmabuf"), ("file", "regbuf"), ("raw", "dmabuf"),
        ("daemon", "regbuf")]


def main(path):
    runs = defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                runs[(r["target"], r["mode"], r["bs"], r["qd"])].append(r)
    if not runs:
        sys.exit("report-dmafs: no results")

    def val(t, m, bs, qd, key):
        rs = runs.get((t, m, bs, qd))
        return mean(r[key] for r in rs) if rs else None

    shapes = sorted({(k[2], k[3]) for k in runs})
    print(f"{'bs':>7}{'qd':>4}  {'target':<7}{'buffer':<8}{'IOPS':>10}"
          f"{'cpu us/io':>11}{'sys us/io':>11}")
    for bs, qd in shapes:
        for t, m in ROWS:
            iops = val(t, m, bs, qd, "iops")
            if iops is not None:
                print(f"{bs:>7}{qd:>4}  {t:<7}{m:<8}{iops:>10.0f}"
                      f"{val(t, m, bs, qd, 'cpu_us_per_io'):>11.2f}"
                      f"{val(t, m, bs, qd, 'sys_us_per_io'):>11.2f}")

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "-"

    print()
    print("IOPS ratios: dma-buf on a dmafs file / dma-buf on the raw "
          "namespace (forwarding overhead, aim >= 0.95) and / O_DIRECT "
          "served by the daemon; O_DIRECT through the map / by the daemon")
    print(f"{'bs':>7}{'qd':>4}{'file/raw':>10}{'file/daemon':>13}"
          f"{'map/daemon':>12}")
    for bs, qd in shapes:
        f_d = val("file", "dmabuf", bs, qd, "iops")
        print(f"{bs:>7}{qd:>4}"
              f"{ratio(f_d, val('raw', 'dmabuf', bs, qd, 'iops')):>10}"
              f"{ratio(f_d, val('daemon', 'regbuf', bs, qd, 'iops')):>13}"
              f"{ratio(val('file', 'regbuf', bs, qd, 'iops'), val('daemon', 'regbuf', bs, qd, 'iops')):>12}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results.jsonl")
