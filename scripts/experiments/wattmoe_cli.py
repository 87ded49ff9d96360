"""The one place the experiment scripts (static_pruning.py, ttt_expert_use.py) call the wattmoe CLI.

wattmoe_json(binary, args) runs `binary args... --json` from the current directory (the commands print a human
summary by default, their JSON with --json) and returns (the JSON it printed, the command as one shell-quoted string
for the records); a failure or non-JSON output ends the script (exit 2) with the command and its stderr.
ttt_recipe(src) returns the tuned TTT flags, read from their one home, scripts/device/ttt_recipe.sh.
"""
import json, os, re, shlex, subprocess, sys


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
