#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Table and ratios for bench/vm-dmabuf.sh from its results.jsonl.

Repetitions of one (iommu, mode, bs, qd) are combined: IOPS is the mean,
CPU time per I/O the mean.  Ratios: IOPS higher-is-better (dmabuf/other >
1 means dma-buf is faster); CPU per I/O lower-is-better (dmabuf/other < 1
means dma-buf is cheaper).
"""
import json
import sys
from collections import defaultdict
from statistics import mean


def main(path):
    runs = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                runs[(r["iommu"], r["mode"], r["bs"], r["qd"])].append(r)
    if not runs:
        sys.exit("report-dmabuf: no results")

    def val(iommu, mode, bs, qd, key):
        rs = runs.get((iommu, mode, bs, qd))
        return mean(r[key] for r in rs) if rs else None

    shapes = sorted({(k[2], k[3]) for k in runs})
    iommus = sorted({k[0] for k in runs})
    modes = ["dmabuf", "regbuf", "pread"]

    print(f"{'iommu':<7}{'bs':>7}{'qd':>4}  {'mode':<8}{'IOPS':>10}"
          f"{'cpu us/io':>11}{'sys us/io':>11}")
    for im in iommus:
        for bs, qd in shapes:
            for m in modes:
                iops = val(im, m, bs, qd, "iops")
                if iops is None:
                    continue
                print(f"{'strict' if im else 'none':<7}{bs:>7}{qd:>4}  "
                      f"{m:<8}{iops:>10.0f}"
                      f"{val(im, m, bs, qd, 'cpu_us_per_io'):>11.2f}"
                      f"{val(im, m, bs, qd, 'sys_us_per_io'):>11.2f}")

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "-"

    print()
    print("ratios (IOPS: >1 dma-buf faster; sys us/io: <1 dma-buf cheaper)")
    print(f"{'iommu':<7}{'bs':>7}{'qd':>4}  {'IOPS/regbuf':>12}"
          f"{'IOPS/pread':>11}{'cpu/regbuf':>11}{'cpu/pread':>10}")
    for im in iommus:
        for bs, qd in shapes:
            d = {m: (val(im, m, bs, qd, "iops"),
                     val(im, m, bs, qd, "sys_us_per_io")) for m in modes}
            print(f"{'strict' if im else 'none':<7}{bs:>7}{qd:>4}  "
                  f"{ratio(d['dmabuf'][0], d['regbuf'][0]):>12}"
                  f"{ratio(d['dmabuf'][0], d['pread'][0]):>11}"
                  f"{ratio(d['dmabuf'][1], d['regbuf'][1]):>11}"
                  f"{ratio(d['dmabuf'][1], d['pread'][1]):>10}")
    if len(iommus) > 1:
        print()
        print("strict IOMMU / no IOMMU, IOPS (<1: the IOMMU costs)")
        print(f"{'bs':>7}{'qd':>4}  " + "".join(f"{m:>9}" for m in modes))
        for bs, qd in shapes:
            print(f"{bs:>7}{qd:>4}  " + "".join(
                f"{ratio(val(1, m, bs, qd, 'iops'), val(0, m, bs, qd, 'iops')):>9}"
                for m in modes))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results.jsonl")
