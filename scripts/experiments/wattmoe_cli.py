"""The one place the experiment scripts (static_pruning.py, ttt_expert_use.py) call the wattmoe CLI.

wattmoe_json(binary, args) runs `binary args... --json` from the current directory (the commands print a human
summary by default, their JSON with --json) and returns (the JSON it printed, the command as one shell-quoted string
for the records); a failure or non-JSON output ends the script (exit 2) with the command and its stderr.
"""
import json, shlex, subprocess, sys


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
