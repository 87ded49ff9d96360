#!/usr/bin/env bash
# wattmoe explain on the shipped model: the JSON's shape (every MoE layer, every token, every expert once, by
# descending probability), each policy's reasons matching its rule (skip: dropped "beta" experts are below β × the
# first's probability; top_p: the kept mass reaches p only at the last kept expert; budget 0: only each token's
# k_min floor; mask: the masked expert never selected; topk: the rest "k_max"), the table's rows, and clean errors.
# Usage: bash explain.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: explain.sh <wattmoe> <source-dir>}
SRC=${2:?usage: explain.sh <wattmoe> <source-dir>}
ERR_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_explain.XXXXXX")
trap 'rm -rf "$ERR_DIR"' EXIT
source "$SRC/tests/cli/lib/expect_error.sh"
MODEL="$SRC/models/kjv-small"
TEXT='In the beginning God created the heaven'
head -c 600 /dev/zero | tr '\0' 'a' > "$ERR_DIR/long.txt"
X=("$BIN" explain --model "$MODEL" --text "$TEXT" --max-tokens 24)

# check POLICY_ARGS... : runs explain --json with them and checks the reasons against the rule (python below).
check() {
  local name=$1; shift
  "${X[@]}" --json "$@" > "$ERR_DIR/$name.json" 2> "$ERR_DIR/err" || { fail "$name: explain failed: $(cat "$ERR_DIR/err")"; return; }
  python3 - "$ERR_DIR/$name.json" "$name" <<'PY' || fail "$name: reasons do not match the rule"
import json, sys
x, name = json.load(open(sys.argv[1])), sys.argv[2]
assert x["schema"] == "wattmoe.explain/1", x.get("schema")
kn, E = x["routing"]["knobs"], x["experts"]
K = kn["k_max"] or x["model_k"]
valid = {"selected", "k_min floor", "mask", "k_max", "beta", "top_p", "budget", "cost"}
assert len(x["tokens"]) == 24 and len(x["layers"]) == 4, (len(x["tokens"]), len(x["layers"]))
seen = set()
for layer in x["layers"]:
    assert len(layer["tokens"]) == 24
    for row in layer["tokens"]:
        assert sorted(e["expert"] for e in row) == list(range(E)), row
        probs = [e["prob"] for e in row]
        assert probs == sorted(probs, reverse=True), probs
        sel = [e for e in row if e["selected"]]
        assert 1 <= len(sel) <= K, (name, sel)
        for e in row:
            assert e["reason"] in valid and e["selected"] == (e["reason"] in ("selected", "k_min floor")), e
            assert e["cost_j"] > 0, e
            seen.add(e["reason"])
        top = row[0]["prob"]
        if name == "skip":
            for e in row:
                if e["reason"] == "beta": assert e["prob"] < kn["beta"] * top + 1e-7, (e, top)
                if e["selected"]: assert e["prob"] >= kn["beta"] * top - 1e-7, (e, top)
        if name == "top_p":
            mass = sum(e["prob"] for e in sel)
            assert mass >= kn["p"] - 1e-6 or len(sel) == K, (mass, sel)
            assert mass - sel[-1]["prob"] < kn["p"] + 1e-6, (mass, sel)
            assert all(e["reason"] in ("selected", "top_p", "k_max") for e in row), row
        if name == "budget0":
            assert [e["reason"] for e in sel] == ["k_min floor"] and sel[0] is row[0], sel
            assert all(e["reason"] in ("k_min floor", "budget", "k_max") for e in row), row
        if name == "mask":
            assert all(e["reason"] == "mask" for e in row if e["expert"] == 3), row
            assert [e["reason"] for e in row if e["expert"] != 3][:2] == ["selected", "selected"], row
        if name == "topk":
            assert [e["reason"] for e in row] == ["selected"] * 2 + ["k_max"] * (E - 2), row
need = {"skip": "beta", "top_p": "top_p", "budget0": "budget", "mask": "mask", "topk": "k_max"}[name]
assert need in seen, (name, need, seen)
PY
}
check topk
check skip --policy skip --beta 0.5
check top_p --policy top_p --route-top-p 0.6 --k-max 4
check budget0 --policy budget --budget-j 0
check mask --policy mask --mask 3

# Static pruning by calibration use: eval's expert counts of a text, then each layer's 2 least-used experts are
# "mask" for every token, and they are the ones the routing JSON reports as pruned.
printf '%s\n' "$TEXT and the earth. And the earth was without form, and void; and darkness was upon the face of the deep." \
  > "$ERR_DIR/cal.txt"
"$BIN" eval --model "$MODEL" --data "$ERR_DIR/cal.txt" --seq 32 --json > "$ERR_DIR/cal.json" 2> "$ERR_DIR/err" ||
  fail "calibration eval: $(cat "$ERR_DIR/err")"
"${X[@]}" --json --prune-least-used 2 --calibration "$ERR_DIR/cal.json" > "$ERR_DIR/pruned.json" 2> "$ERR_DIR/err" ||
  fail "pruned explain: $(cat "$ERR_DIR/err")"
python3 - "$ERR_DIR/pruned.json" "$ERR_DIR/cal.json" <<'PY' || fail "pruned experts are not the calibration's least used"
import json, sys
x, cal = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
pruned = x["routing"]["pruned"]
assert pruned["least_used"] == 2, pruned
for layer in x["layers"]:
    l = str(layer["layer"])
    counts = cal["expert_counts"][l]
    ids = sorted(pruned["layers"][l])
    assert len(ids) == 2 and max(counts[e] for e in ids) <= min(c for e, c in enumerate(counts) if e not in ids), (l, ids, counts)
    for row in layer["tokens"]:
        assert sorted(e["expert"] for e in row if e["reason"] == "mask") == ids, (l, row)
PY
expect_error "needs --calibration" "$BIN" explain --model "$MODEL" --text a --prune-least-used 1

# The table: a header per MoE layer, one row per token, the dropped experts with their rule.
"${X[@]}" --policy skip --beta 0.5 > "$ERR_DIR/table" 2> "$ERR_DIR/err" || fail "table: $(cat "$ERR_DIR/err")"
[ "$(grep -c '^layer [0-3] ' "$ERR_DIR/table")" = 4 ] || fail "table: expected 4 layer headers: $(head -5 "$ERR_DIR/table")"
[ "$(grep -cE '^ +[0-9]+  ' "$ERR_DIR/table")" = 96 ] || fail "table: expected 24 rows per layer"
grep -q "beta" "$ERR_DIR/table" || fail "table: no expert dropped by beta"
grep -q "^routing: .*skip" "$ERR_DIR/table" || fail "table: no routing line"

# The experts' tier prices every expert (fp8: 1 byte a weight, so each cost falls) and drops none: the same rules.
"${X[@]}" --json --expert-precision fp8 > "$ERR_DIR/fp8.json" 2> "$ERR_DIR/err" || fail "fp8: $(cat "$ERR_DIR/err")"
python3 - "$ERR_DIR/topk.json" "$ERR_DIR/fp8.json" <<'PY' || fail "fp8: costs not below bf16's, or experts dropped"
import json, sys
b, f = (json.load(open(p)) for p in sys.argv[1:3])
assert b["expert_precision"] == "bf16" and f["expert_precision"] == "fp8", (b["expert_precision"], f["expert_precision"])
for lb, lf in zip(b["layers"], f["layers"]):
    cost = lambda row: {e["expert"]: e["cost_j"] for e in row}
    cb, cf = cost(lb["tokens"][0]), cost(lf["tokens"][0])
    assert all(0 < cf[e] < cb[e] for e in cb), (cb, cf)
    for row in lf["tokens"]:
        assert [e["reason"] for e in row] == ["selected"] * 2 + ["k_max"] * (len(row) - 2), row
PY
"${X[@]}" > "$ERR_DIR/table_bf16" 2> "$ERR_DIR/err" || fail "table: $(cat "$ERR_DIR/err")"
grep -q "^routed experts: bf16" "$ERR_DIR/table_bf16" || fail "table: no routed-experts line"
expect_error "--expert-precision" "$BIN" explain --model "$MODEL" --text a --expert-precision fp4

"$BIN" explain --help | grep -q "CPU" || fail "explain --help does not say it runs on the CPU"
expect_error "exactly one of --text and --data" "$BIN" explain --model "$MODEL"
expect_error "exactly one of --text and --data" "$BIN" explain --model "$MODEL" --text a --data "$ERR_DIR/long.txt"
expect_error "max-tokens" "$BIN" explain --model "$MODEL" --text a --max-tokens 0
expect_error "context" "$BIN" explain --model "$MODEL" --data "$ERR_DIR/long.txt" --max-tokens 500
expect_error "beta" "$BIN" explain --model "$MODEL" --text a --policy skip --beta 2
expect_error "unknown routing policy" "$BIN" explain --model "$MODEL" --text a --policy nope
finish explain.sh
