#!/usr/bin/env bash
# `wattmoe --version`: one line "wattmoe X.Y.Z (commit C)" on stdout, exit 0; C is `git describe --always --dirty` of
# the source tree at configure time — a commit of this repository when built from a git checkout, else "unknown".
# Usage: bash version.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: version.sh <wattmoe> <source-dir>}
SRC=${2:?usage: version.sh <wattmoe> <source-dir>}
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

out=$("$BIN" --version 2>&1); rc=$?
[ $rc -eq 0 ] || fail "--version exited $rc: $out"
[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "expected one line, got: $out"
re='^wattmoe [0-9]+\.[0-9]+\.[0-9]+ \(commit ([^ )]+)\)$'
if [[ $out =~ $re ]]; then
  commit=${BASH_REMATCH[1]}
  if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1 && command -v git >/dev/null; then
    # Built from this checkout: the commit (without -dirty) names a commit object of it (maybe not HEAD any more).
    git -C "$SRC" cat-file -e "${commit%-dirty}^{commit}" 2>/dev/null || fail "'$commit' is not a commit of $SRC"
  else
    [ "$commit" = unknown ] || fail "outside a git checkout the commit should be 'unknown', got '$commit'"
  fi
else
  fail "unexpected --version output: $out"
fi

# The version is the project's (CMakeLists.txt project(... VERSION X.Y.Z ...)), not a second copy.
want=$(sed -n 's/^project(wattmoe VERSION \([0-9.]*\) .*/\1/p' "$SRC/CMakeLists.txt")
[[ $out == "wattmoe $want "* ]] || fail "version should be CMakeLists.txt's '$want': $out"

# It sits beside --help, and a subcommand is still required otherwise.
"$BIN" --help | grep -q -- "--version" || fail "--help does not list --version"
"$BIN" >/dev/null 2>&1 && fail "wattmoe without a subcommand should fail"

if [ "$failures" -ne 0 ]; then echo "version.sh: $failures failure(s)" >&2; exit 1; fi
echo "version.sh: all checks passed"
