"""The one place the experiment scripts (static_pruning.py, ttt_expert_use.py, sim_edge.py) call the wattmoe CLI.

wattmoe_json(binary, args) runs `binary args... --json` from the current directory (the commands print a human
summary by default, their JSON with --json) and returns (the JSON it printed, the command as one shell-quoted string
for the records); a failure or non-JSON output ends the script (exit 2) with the command and its stderr.
read_jsonl(path, who) reads a records file (a line that is not JSON ends the script naming it); write_jsonl(path,
rows) writes one; write_records(out, script, files, **meta) writes an experiment's records files and its
meta.json (the command, commit and date first, then meta); require_inputs(paths, data_dir, who) ends the script
naming a missing input.
ttt_recipe(src) returns the tuned TTT flags, read from their one home, scripts/device/ttt_recipe.sh.
calibration(binary, model, data_dir, path, who) makes static pruning's calibration (`wattmoe eval` of top-2 on the
first CAL_TOKENS tokens of kjv train: per-layer expert counts) at path unless it exists, and returns its command.
experiment_args(doc, out) is the parser of the shared flags (--bin, --model, --data-dir, --out with its default);
write_table(out, text) writes OUT/table.md and prints it.
"""
import argparse, datetime, json, os, re, shlex, subprocess, sys

CAL_TOKENS = 65536  # static pruning's calibration: the first 64 Ki tokens of kjv train (val and test stay unseen)


def wattmoe_json(binary, args, who="experiments"):
    cmd = [binary] + list(args) + ["--json"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"{who}: error: {shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()}", file=sys.stderr)
        sys.exit(2)
    try:
        return json.loads(p.stdout), shlex.join(cmd)
    except ValueError:
        print(f"{who}: error: {shlex.join(cmd)}: output is not JSON", file=sys.stderr)
        sys.exit(2)


def read_jsonl(path, who="experiments"):
    """The JSON lines of path (blank lines skipped); a line that is not JSON ends the script (exit 2) naming it."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    print(f"{who}: error: {path}:{n}: not JSON ({e})", file=sys.stderr)
                    sys.exit(2)
    return out


def write_jsonl(path, rows):
    """rows as JSON lines at path (overwritten)."""
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_records(out, script, files, **meta):
    """files ({name: rows}) as JSON lines in out, and out/meta.json: the command that made them (scripts/experiments/
    script with this process's arguments), the commit, today's date, then meta's keys in order."""
    for name, rows in files.items():
        write_jsonl(os.path.join(out, name), rows)
    src = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"command": f"python3 scripts/experiments/{script} " + shlex.join(sys.argv[1:]),
                   "commit": git_commit(src), "date": datetime.date.today().isoformat(), **meta}, f, indent=1)
        f.write("\n")


def require_inputs(paths, data_dir, who="experiments"):
    """Ends the script (exit 2) naming the first of paths that is missing (the binary or a data file)."""
    for p in paths:
        if not os.path.exists(p):
            print(f"{who}: error: {p} is missing (build wattmoe; `wattmoe data build --out {data_dir}`)", file=sys.stderr)
            sys.exit(2)


def git_commit(src):
    p = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() or "unknown"


def ttt_recipe(src):
    path = os.path.join(src, "scripts", "device", "ttt_recipe.sh")
    with open(path) as f:
        m = re.search(r"^TTT=\((.*?)\)", f.read(), re.S | re.M)
    if not m:
        print(f"experiments: error: {path}: no TTT=( ... ) array", file=sys.stderr)
        sys.exit(2)
    return shlex.split(m.group(1))


def calibration(binary, model, data_dir, path, who="experiments"):
    """Static pruning's calibration JSON at path (made unless it exists); the command that makes it."""
    args = ["eval", "--model", model, "--data", os.path.join(data_dir, "kjv.train.txt"), "--max-tokens", str(CAL_TOKENS),
            "--expert-shape", "4096x14336"]
    if os.path.isfile(path):
        return shlex.join([binary] + args + ["--json"])
    cal, cmd = wattmoe_json(binary, args, who)
    with open(path, "w") as f:
        json.dump(cal, f, indent=1)
        f.write("\n")
    return cmd


def experiment_args(doc, out):
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join("build", "wattmoe"))
    ap.add_argument("--model", default=os.path.join("models", "kjv-small"))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default=out)
    return ap


def write_table(out, text):
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
