#!/usr/bin/env bash
# The project's own files agree with the code: LICENSE is the Apache-2.0 text, CHANGELOG.md has a section for the
# version in CMakeLists.txt (the one `wattmoe --version` prints), requirements-dev.txt names every third-party
# package the Python scripts under scripts/ and bench/ import, and pyproject.toml's build requirements are the
# versions python/requirements.txt pins (the package's one list of versions).
# Usage: bash project_files.sh <path-to-wattmoe> <source-dir>   (needs python3's standard library only)
set -u
BIN=${1:?usage: project_files.sh <wattmoe> <source-dir>}
SRC=${2:?usage: project_files.sh <wattmoe> <source-dir>}
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

grep -q "Apache License" "$SRC/LICENSE" 2>/dev/null && grep -q "Version 2.0, January 2004" "$SRC/LICENSE" ||
  fail "LICENSE is missing or not the Apache-2.0 text"
version=$(sed -n 's/^project(wattmoe VERSION \([0-9.]*\) .*/\1/p' "$SRC/CMakeLists.txt")
[ -n "$version" ] || fail "no version in CMakeLists.txt's project()"
grep -q "^## \[$version\]" "$SRC/CHANGELOG.md" 2>/dev/null || fail "CHANGELOG.md has no section '## [$version]'"
"$BIN" --version | grep -q "^wattmoe $version " || fail "wattmoe --version does not print $version"

python3 - "$SRC" <<'PY' || fail "requirements-dev.txt is missing packages"
import ast, pathlib, re, sys
src = pathlib.Path(sys.argv[1])
req = src / "requirements-dev.txt"
listed = set()
if req.exists():
    for line in req.read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)", line.split("#")[0])
        if m: listed.add(m.group(1).lower())
import_name = {"nvidia-ml-py": "pynvml"}  # PyPI name -> module name, where they differ
provided = {import_name.get(p, p) for p in listed}
local = {p.stem for d in ("scripts", "bench") for p in (src / d).rglob("*.py")}
missing = {}
for d in ("scripts", "bench"):
    for f in (src / d).rglob("*.py"):
        for n in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                    [n.module] if isinstance(n, ast.ImportFrom) and n.module and n.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top not in provided:
                    missing.setdefault(top, []).append(str(f.relative_to(src)))
for top, files in sorted(missing.items()):
    print(f"requirements-dev.txt lacks {top} (imported by {', '.join(sorted(set(files)))})", file=sys.stderr)
sys.exit(1 if missing else 0)
PY

python3 - "$SRC" <<'PY' || fail "pyproject.toml and python/requirements.txt disagree"
import pathlib, re, sys, tomllib
src = pathlib.Path(sys.argv[1])
pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (src / "python/requirements.txt").read_text(), re.M))
requires = tomllib.loads((src / "pyproject.toml").read_text())["build-system"]["requires"]
bad = [r for r in requires if "==" not in r or pins.get(r.split("==")[0]) != r.split("==")[1]]
for r in bad:
    print(f"pyproject.toml requires {r}, python/requirements.txt pins {r.split('==')[0]}=={pins.get(r.split('==')[0])}",
          file=sys.stderr)
sys.exit(1 if bad or not requires else 0)
PY

if [ "$failures" -ne 0 ]; then echo "project_files.sh: $failures failure(s)" >&2; exit 1; fi
echo "project_files.sh: all checks passed"
