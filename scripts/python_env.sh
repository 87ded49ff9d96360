#!/usr/bin/env bash
# Makes (or reuses) the virtualenv the Python package is built and tested with: python3 -m venv DIR, then
# python/requirements.txt's pinned nanobind, scikit-build-core, numpy and pytest from PyPI. Prints DIR/bin/python,
# which scripts/test.sh hands to CMake (-DPython_EXECUTABLE), so the build makes the module and ctest runs pytest.
#   scripts/python_env.sh DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:?usage: python_env.sh DIR}
req="$root/python/requirements.txt"
stamp="$venv/.requirements.txt"  # what the virtualenv holds: reinstalled when the requirements change
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"; } >&2 ||
    { echo "python_env: could not make $venv with $req (python3 -m venv, PyPI)" >&2; exit 1; }
  cp "$req" "$stamp"
fi
echo "$venv/bin/python"
