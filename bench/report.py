#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers of bench/fs-bench.sh (standard library only).

  report.py fio JSON DIRECTION     print "IOPS BYTES_PER_S" of the (single,
                                   group-reported) job in fio's JSON output;
                                   DIRECTION is read or write
  report.py table RESULTS [--md]   print the results table: one row per
                                   test, the value for each filesystem and
                                   the ratios dmafs/ext4 and dmafs/fuse2fs

RESULTS is a TSV file written by fs-bench.sh, one measurement a line:

  FS <TAB> TEST <TAB> UNIT <TAB> VALUE

VALUE is a number (every unit is "higher is better": ops/s, MB/s, IOPS) or a
word such as FAIL or TIMEOUT.  Rows keep the order in which tests first
appear.
"""

import json
import sys

FS_ORDER = ["ext4", "fuse2fs", "dmafs"]


def cmd_fio(path, direction):
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON document.
    j = json.loads(text[text.index("{"):])
    job = j["jobs"][0][direction]
    print(f"{job['iops']:.3f} {job['bw_bytes']:.0f}")


def fmt(v):
    if isinstance(v, str):
        return v
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if isinstance(a, str) or isinstance(b, str) or not b:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def cmd_table(path, md):
    rows = {}     # (test, unit) -> {fs: value}
    order = []
    seen_fs = set()
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            fs, test, unit, value = line.split("\t")
            try:
                value = float(value)
            except ValueError:
                pass
            key = (test, unit)
            if key not in rows:
                rows[key] = {}
                order.append(key)
            rows[key][fs] = value
            seen_fs.add(fs)
    fss = [f for f in FS_ORDER if f in seen_fs]
    head = ["test", "unit"] + fss
    if "dmafs" in fss:
        head += [f"dmafs/{f}" for f in fss if f != "dmafs"]
    table = []
    for key in order:
        vals = rows[key]
        row = [key[0], key[1]] + [fmt(vals.get(f, "-")) for f in fss]
        if "dmafs" in fss:
            row += [ratio(vals.get("dmafs", "-"), vals.get(f, "-"))
                    for f in fss if f != "dmafs"]
        table.append(row)
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2))
              + "|")
        for row in table:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
    for n, row in enumerate([head] + table):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv):
    if len(argv) == 4 and argv[1] == "fio":
        cmd_fio(argv[2], argv[3])
    elif len(argv) in (3, 4) and argv[1] == "table":
        cmd_table(argv[2], len(argv) == 4 and argv[3] == "--md")
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
