#!/usr/bin/env python3
"""Expert use per layer on natural domain shifts, before and after test-time training (CPU, models/mix-small).

    python3 scripts/experiments/natural_shift_use.py [--bin build/wattmoe] [--model models/mix-small]
        [--data-dir data/mix] [--shift-records results/cpu-mix-small-shift] [--out results/cpu-mix-small-shift-use]

The streams and the adaptation of scripts/experiments/natural_shift.py's test step, with the expert counts that its
records leave out: for each held-out domain (natural_shift.HELD_OUT), the first TEST_TOKENS tokens of its test split
as one stream in 128-token windows, without adaptation ("static") and with the full setting that natural_shift.py
chose on the val splits (read from --shift-records/meta.json, never re-chosen here); and, as the in-domain reference,
prose test (prose.test.txt) without adaptation. Each run's summary keeps its per-layer expert counts over the whole
run and over its first and last COMPARE windows (`wattmoe run --compare-windows`), the matrices that
scripts/experiments/fig_natural_shift_use.py draws (natural_shift_use.png). The full runs' bits/byte are the test
runs of --shift-records again (the same command on another machine may differ in the last digits: BLAS order); the
records say which of them match.

Records in --out: runs.jsonl (domain, setting, command, the summary with its expert counts) and meta.json (commit,
date, command, the setting's flags and where they came from). Nothing here is energy.
"""
import os, sys

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import natural_shift  # noqa: E402  (the held-out domains, the test length, the records' layout)
from wattmoe_cli import experiment_args, require_inputs, wattmoe_json, write_records  # noqa: E402

COMPARE = 64  # windows at each end of a run whose expert counts are kept (half of the 128 windows of a test stream)
PROSE = "prose"  # the in-domain reference stream: data-dir/prose.test.txt


def chosen_full(shift_records):
    """The full setting's flags and name as natural_shift.py chose them on val (its meta.json), and its test runs'
    bits/byte per domain (runs.jsonl)."""
    meta, _, runs, _ = natural_shift.load(shift_records)
    bpb = {r["domain"]: r["summary"]["bits_per_byte"] for r in runs if r["split"] == "test" and r["setting"] == "full"}
    return meta["settings"]["full"], meta["chosen"]["full"], bpb


def main():
    ap = experiment_args(__doc__, os.path.join("results", "cpu-mix-small-shift-use"))
    ap.set_defaults(model=os.path.join("models", "mix-small"), data_dir=os.path.join("data", "mix"))
    ap.add_argument("--shift-records", default=os.path.join("results", "cpu-mix-small-shift"), metavar="DIR",
                    help="natural_shift.py's records, whose chosen full setting is run here")
    a = ap.parse_args()
    os.chdir(SRC)
    full, full_name, shift_bpb = chosen_full(a.shift_records)
    streams = {d: os.path.join(a.data_dir, d, "test.txt") for d in natural_shift.HELD_OUT}
    streams[PROSE] = os.path.join(a.data_dir, "prose.test.txt")
    require_inputs([a.bin] + list(streams.values()), a.data_dir, "natural_shift_use.py")
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for d, path in streams.items():
        for setting, flags in (("static", []), ("full", full)):
            if d == PROSE and setting == "full":
                continue  # in-domain: only the unadapted reference
            args = ["run", "--model", a.model, "--data", path, "--max-tokens", str(natural_shift.TEST_TOKENS),
                    "--compare-windows", str(COMPARE)] + flags
            out, cmd = wattmoe_json(a.bin, args, "natural_shift_use.py")
            row = {"domain": d, "setting": setting, "command": cmd, "summary": out}
            if setting == "full":
                row["natural_shift_bits_per_byte"] = shift_bpb.get(d)
            rows.append(row)
            print(f"natural_shift_use.py: {d} {setting}: bits/byte {out['bits_per_byte']:.4f}", file=sys.stderr)
    write_records(a.out, "natural_shift_use.py", {"runs.jsonl": rows}, device="cpu",
                  label="computed on the CPU (no energy)", model=a.model, data_dir=a.data_dir,
                  test_tokens=natural_shift.TEST_TOKENS, compare_windows=COMPARE,
                  full_setting={"name": full_name, "flags": full, "from": os.path.join(a.shift_records, "meta.json")})


if __name__ == "__main__":
    main()
