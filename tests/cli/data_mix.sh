#!/usr/bin/env bash
# `wattmoe data build --corpus mix` on a synthetic package tree (--root: dpkg lists and the files they name, made
# here with python3 and gzip): the summary table, --json, the per-domain split files and the training concatenation,
# and bad input -- a missing package (error naming it and the apt-get command), an unknown domain, mix-only flags
# with the default corpus -- each leaving no partial OUT/mix behind. The full corpus from real packages is not built
# here (minutes, and CI does not install the packages); see README.md's data section.
# Usage: bash data_mix.sh <path-to-wattmoe> <source-dir>. Needs python3's standard library and gzip.
set -u
BIN=${1:?usage: data_mix.sh <wattmoe> <source-dir>}
SRC=${2:?usage: data_mix.sh <wattmoe> <source-dir>}
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_data_mix.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ERR_DIR=$TMP
. "$SRC/tests/cli/lib/expect_error.sh"
W() { timeout -s KILL 120 "$BIN" "$@"; }
R=$TMP/root

# 100 man pages (gzip-compressed troff, one a .so link) and 100 C headers, each package with a dpkg list.
python3 - "$R" <<'PY'
import os, sys
root = sys.argv[1]
def put(path, text):
    os.makedirs(os.path.dirname(root + path), exist_ok=True)
    open(root + path, "w").write(text)
def package(name, files):
    put(f"/var/lib/dpkg/info/{name}.list", "/.\n/usr\n" + "".join(f + "\n" for f in files))
    put(f"/usr/share/doc/{name.split(':')[0]}/copyright", "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: BSD-3-clause\n")
pages = []
for i in range(100):
    pages.append(f"/usr/share/man/man1/tool{i}.1")
    put(pages[-1], f'.TH TOOL{i} 1\n.SH NAME\ntool{i} \\- does thing {i}\n.SH DESCRIPTION\n.B tool{i}\nruns \\fIfast\\fR.\n')
pages.append("/usr/share/man/man1/alias.1")
put(pages[-1], ".so man1/tool0.1\n")
package("manpages", [p + ".gz" for p in pages if "tool1" not in p])
package("manpages-dev", [p + ".gz" for p in pages if "tool1" in p])
headers = []
for i in range(100):
    headers.append(f"/usr/include/sys/h{i}.h")
    put(headers[-1], f"#define H{i} {i}\n")
package("libc6-dev:amd64", headers)
package("linux-libc-dev:amd64", [])
PY
gzip -n "$R"/usr/share/man/man1/*.1

OUT=$TMP/corpus
W data build --corpus mix --root "$R" --domains c,man --train man --out "$OUT" > "$TMP/mix.txt" 2> "$TMP/err" ||
  fail "data build --corpus mix: $(cat "$TMP/err")"
head -1 "$TMP/mix.txt" | grep -Eq "^wrote 2 domains to .*/corpus/mix \(manifest.json lists them\)$" ||
  fail "first line: $(head -1 "$TMP/mix.txt")"
grep -Eq "^  man +reference +100 " "$TMP/mix.txt" || fail "no man row with 100 documents: $(cat "$TMP/mix.txt")"
grep -Eq "^  c +code +100 " "$TMP/mix.txt" || fail "no c row with 100 documents: $(cat "$TMP/mix.txt")"
grep -q "data: mix \[2/2\] c:" "$TMP/err" || fail "no progress on stderr: $(cat "$TMP/err")"
for d in man c; do
  for s in train val test; do [ -s "$OUT/mix/$d/$s.txt" ] || fail "$d/$s.txt missing or empty"; done
done
cmp -s "$OUT/mix/man.train.txt" "$OUT/mix/man/train.txt" || fail "man.train.txt is not man/train.txt"
cat "$OUT"/mix/man/*.txt | grep -q "^tool3 - does thing 3$" || fail "man pages not rendered: $(head "$OUT/mix/man/train.txt")"
if cat "$OUT"/mix/man/*.txt | grep -q '\\f\|^\.'; then fail "troff left in man pages"; fi
python3 - "$OUT/mix" <<'PY' || fail "manifest"
import hashlib, json, sys
d = sys.argv[1]
m = json.load(open(d + "/manifest.json"))
assert m["schema"] == "wattmoe.mix/1" and m["train"]["domains"] == ["man"], m["train"]
man, c = m["domains"]
assert (man["name"], man["kind"], c["name"], c["kind"]) == ("man", "reference", "c", "code")
assert [p["name"] for p in man["packages"]] == ["manpages", "manpages-dev"], man["packages"]
assert man["packages"][0]["licence"] == "BSD-3-clause" and man["install"] == "apt-get install -y manpages manpages-dev"
for dom in (man, c):
    for s, f in dom["files"].items():
        b = open(d + "/" + f["path"], "rb").read()
        assert len(b) == f["bytes"] and hashlib.sha256(b).hexdigest() == f["sha256"], f
PY
W data build --corpus mix --root "$R" --domains c --train code --out "$TMP/j" --json > "$TMP/mix.json" 2> /dev/null ||
  fail "--json failed"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["schema"] == "wattmoe.data.mix/1" and j["domains"][0]["documents"] == 100, j' \
  "$TMP/mix.json" || fail "--json: $(cat "$TMP/mix.json")"

# Bad input: one error line, nothing half-written (the corpus built above stays as it was).
before=$(sha256sum < "$OUT/mix/manifest.json")
expect_error "domain gcide: the Debian package dict-gcide is not installed .*apt-get install -y dict-gcide" \
  "$BIN" data build --corpus mix --root "$R" --domains c,gcide --train code --out "$OUT"
expect_error "--domains: unknown domain 'bogus'" "$BIN" data build --corpus mix --root "$R" --domains bogus --out "$OUT"
expect_error "--train: 'prose' names no domain or kind" "$BIN" data build --corpus mix --root "$R" --domains c --out "$OUT"
expect_error "--domains, --train and --root apply to --corpus mix only" "$BIN" data build --domains c --out "$OUT"
expect_error "--cap-mb: expected a size > 0" "$BIN" data build --corpus mix --root "$R" --cap-mb 0 --out "$OUT"
expect_error "--cap-mb: expected a size > 0" "$BIN" data build --corpus mix --root "$R" --cap-mb 1e30 --out "$OUT"
expect_error "--seed applies to --corpus kjv only" "$BIN" data build --corpus mix --root "$R" --seed 3 --out "$OUT"
expect_error "--corpus: " "$BIN" data build --corpus nope --out "$OUT"
[ "$(sha256sum < "$OUT/mix/manifest.json")" = "$before" ] || fail "a failed build changed the previous corpus"
[ "$(ls "$OUT")" = "mix" ] || fail "temporary files left: $(ls "$OUT")"

finish data_mix
