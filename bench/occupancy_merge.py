#!/usr/bin/env python3
"""Merge Nsight Compute's achieved occupancy into a wattmoe cost table (scripts/device/profile_occupancy.sh).

Each CSV is one token count's ncu run over the profile's launch-records pass, kernels renamed after their innermost
NVTX range (the block: "layer0.expert3"). Per block, the achieved occupancy is the mean of
sm__warps_active.avg.pct_of_peak_sustained_active over its kernels weighted by gpu__time_duration; it is written as
"occupancy_achieved" (a fraction) in that measurement's "launches", beside the theoretical one. The table is
rewritten in place; a summary (block, T, theoretical, resident, achieved) goes to stdout.

Usage: occupancy_merge.py --table COSTS.json T=ncu_T.csv [T=ncu_T.csv ...]
"""
import argparse
import collections
import csv
import json
import sys

ACHIEVED = "sm__warps_active.avg.pct_of_peak_sustained_active"
DURATION = "gpu__time_duration.sum"


def read_ncu(path):
    """{block: (time-weighted achieved fraction, kernels)} from one ncu --csv run."""
    lines = [l for l in open(path) if l.startswith('"')]
    per = collections.defaultdict(dict)  # (ID, block) -> {metric: value}
    for r in csv.DictReader(lines):
        name, metric = r.get("Kernel Name"), r.get("Metric Name")
        if name is None or metric not in (ACHIEVED, DURATION):
            continue
        per[(r["ID"], name)][metric] = float(r["Metric Value"].replace(",", ""))
    acc = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for (_, block), m in per.items():
        if ACHIEVED not in m or DURATION not in m:
            continue
        a = acc[block]
        a[0] += m[ACHIEVED] / 100 * m[DURATION]
        a[1] += m[DURATION]
        a[2] += 1
    return {b: (a[0] / a[1] if a[1] > 0 else float("nan"), a[2]) for b, a in acc.items()}


def measurements(table):
    for layer in table["layers"]:
        for e in layer["experts"]:
            yield e["name"], e["measurements"]
    for b in table.get("blocks", []):
        yield b["name"], b["measurements"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("runs", nargs="+", help="T=ncu.csv")
    a = ap.parse_args()
    table = json.load(open(a.table))
    found = {}
    for run in a.runs:
        t, _, path = run.partition("=")
        if not path or not t.isdigit():
            sys.exit(f"occupancy_merge.py: {run}: expected T=FILE")
        found[int(t)] = read_ncu(path)
        if not found[int(t)]:
            sys.exit(f"occupancy_merge.py: {path}: no kernels with both metrics (did ncu profile the launch records?)")
    merged = 0
    print(f"{'block':22} {'T':>6} {'theoretical':>12} {'resident':>9} {'achieved':>9} {'kernels':>8}")
    for name, ms in measurements(table):
        for m in ms:
            got = found.get(m["tokens"], {}).get(name)
            if got is None or "launches" not in m:
                continue
            m["launches"]["occupancy_achieved"] = got[0]
            merged += 1
            print(f"{name:22} {m['tokens']:6d} {m['launches']['occupancy_theoretical']:12.1%} "
                  f"{m['launches']['occupancy_resident']:9.1%} {got[0]:9.1%} {got[1]:8d}")
    if merged == 0:
        names = sorted({b for r in found.values() for b in r})[:5]
        sys.exit(f"occupancy_merge.py: no ncu block matched the table's blocks (ncu named them {names})")
    table.setdefault("launch_records", {})["achieved"] = "Nsight Compute, " + ACHIEVED
    json.dump(table, open(a.table, "w"), indent=1)
    print(f"merged {merged} measurements into {a.table}")


if __name__ == "__main__":
    main()
