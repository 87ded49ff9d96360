#!/usr/bin/env bash
# `wattmoe profile` end to end on the shipped model with the simulated GPU (deterministic, a few seconds): the
# cost table it writes has every expert of every layer, the attention and router blocks, per-T measurements, is
# labelled simulated, and is bitwise the same when run twice; --fit-hardware adds the fitted coefficients. Then the
# clear one-line errors: unknown device or sensor, a token count < 1, cuda in a CPU build, a corrupt config.
# Usage: bash profile.sh <path-to-wattmoe> <source-dir>. Needs bash, coreutils and python3's standard library.
set -euo pipefail
w=${1:?usage: profile.sh <wattmoe> <source-dir>}
src=${2:?usage: profile.sh <wattmoe> <source-dir>}
model="$src/models/kjv-small"
unset WATTMOE_LOG
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_profile.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

run() {  # run NAME args...: a profile that must succeed
  local name=$1; shift
  "$w" profile "$@" > "$tmp/$name.stdout" 2> "$tmp/$name.stderr" || {
    echo "FAIL: profile $name: exit $?"; sed 's/^/    /' "$tmp/$name.stderr" | tail -n 5; exit 1; }
}
common=(--model "$model" --device cpu --sensor sim --tokens-per-call 1,8 --min-window-s 0.1 --repeats 2 --idle-s 0.5)
run one "${common[@]}" --out "$tmp/one.json" --fit-hardware
run two "${common[@]}" --out "$tmp/two.json" --fit-hardware
grep -q "SIMULATED" "$tmp/one.stdout" || { echo "FAIL: stdout does not say the sensor is simulated"; exit 1; }
grep -q "profile \[.*/.*\] layer3.expert7 T=8" "$tmp/one.stderr" || { echo "FAIL: no progress lines on stderr"; exit 1; }

python3 - "$tmp/one.json" "$tmp/two.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["format"] == "wattmoe.cost_table.v1", a["format"]
assert a["num_layers"] == 4 and a["num_experts"] == 8, (a["num_layers"], a.get("num_experts"))
assert a["simulated"] is True and a["sensor"].startswith("sim:") and a["method"] == "counter", a["sensor"]
assert a["token_counts"] == [1, 8], a["token_counts"]
assert abs(a["idle_w"] - 80) < 1, a["idle_w"]
assert "--sensor sim" in a["command"], a["command"]
# The simulated GPU runs no kernels: no launch records, and the table says why.
assert a["launch_records"] == {"recorded": False, "how": "simulated: no kernels run"}, a["launch_records"]
assert "sm_limits" not in a and all("launches" not in m for m in a["layers"][0]["experts"][0]["measurements"])
names = [blk["name"] for blk in a["blocks"]]
assert names == [f"layer{l}.{k}" for l in range(4) for k in ("attention", "router")], names
for layer in a["layers"]:
    assert len(layer["experts"]) == 8
    for e in layer["experts"]:
        assert e["a_j"] > 0 and e["b_j"] > 0 and e["a_s"] > 0, e
        assert [m["tokens"] for m in e["measurements"]] == [1, 8]
        assert all(len(m["j_windows"]) == 2 for m in e["measurements"])
hw = a["hardware"]
# 4 layers x 8 experts x 2 token counts; kjv-small's experts are launch-bound, so only signs are checked here
# (tests/energy/profiler_test.cpp checks the fit recovers the simulator's coefficients on a Mixtral shape).
assert hw["points"] == 64, hw
assert all(hw[k] >= 0 for k in ("static_w", "pj_per_flop", "pj_per_byte", "launch_s")), hw
assert hw["peak_flops"] > 0 and hw["bandwidth_bytes_per_s"] > 0, hw
# The simulated profile is deterministic: only the command line (the --out path) may differ.
a.pop("command"); b.pop("command")
assert a == b, "two simulated profiles differ"
PY
echo "profile: end to end ok"

# --- errors: exit status 1 (not a signal), one line on stderr naming the problem ---
failures=0
expect_error() {  # expect_error NAME PHRASE -- args...
  local name=$1 phrase=$2; shift 3
  set +e; "$w" profile "$@" > /dev/null 2> "$tmp/err"; local rc=$?; set -e
  local lines; lines=$(awk 'END { print NR }' "$tmp/err")
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then echo "FAIL: $name: exit status $rc"; failures=$((failures + 1)); return; fi
  if [ "$lines" -ne 1 ]; then echo "FAIL: $name: $lines lines on stderr"; failures=$((failures + 1)); fi
  if grep -q "check failed" "$tmp/err"; then echo "FAIL: $name: an internal check failed"; failures=$((failures + 1)); fi
  grep -qF "wattmoe: error: " "$tmp/err" && grep -qF -- "$phrase" "$tmp/err" ||
    { echo "FAIL: $name: message lacks '$phrase': $(head -n 1 "$tmp/err")"; failures=$((failures + 1)); }
}
out=(--out "$tmp/x.json")
expect_error "unknown device" "--device tpu: expected cpu or cuda" -- --model "$model" --device tpu "${out[@]}"
expect_error "unknown sensor" "--sensor watts: expected nvml, rapl or sim" -- --model "$model" --sensor watts "${out[@]}"
expect_error "nvml on cpu" "--sensor nvml measures a GPU" -- --model "$model" --sensor nvml "${out[@]}"
expect_error "token count 0" "token count 0 < 1" -- --model "$model" --sensor sim --tokens-per-call 1,0 "${out[@]}"
expect_error "token count junk" "'x' is not an integer" -- --model "$model" --sensor sim --tokens-per-call 1,x "${out[@]}"
expect_error "token count above the cap" "exceeds the most tokens per call, 128" -- \
  --model "$model" --sensor sim --tokens-per-call 1,512 "${out[@]}"
expect_error "no model" "expected --model DIR, or --random-init SEED" -- --sensor sim "${out[@]}"
expect_error "random-init without config" "--random-init needs --config" -- --random-init 1 --sensor sim "${out[@]}"
expect_error "no out" "--out is required" -- --model "$model" --sensor sim
expect_error "repeats" "--repeats 0" -- --model "$model" --sensor sim --repeats 0 "${out[@]}"
expect_error "check-layer on cpu" "--check-layer runs the full MoE layer on the GPU" -- \
  --model "$model" --sensor sim --check-layer "$tmp/c.json" "${out[@]}"
# cuda requested in a CPU build (a CUDA build would get past this and then need a GPU, so check only CPU builds)
# (ldd's output is taken whole first: with pipefail, `ldd | grep -q` fails at random when grep exits early and ldd
# gets SIGPIPE.)
libs=$(ldd "$w" 2>/dev/null || true)
if ! grep -q -e libcudart -e libcublas <<< "$libs"; then
  expect_error "cuda in a CPU build" "--device cuda: this wattmoe was built without CUDA" -- \
    --model "$model" --device cuda "${out[@]}"
fi
printf '{"model_type": "mixtral", "hidden_size": 64,' > "$tmp/truncated.json"
expect_error "truncated config" "truncated.json" -- --random-init 1 --config "$tmp/truncated.json" --sensor sim "${out[@]}"
python3 - "$model/config.json" "$tmp/bad.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["num_experts_per_tok"] = 99  # top-k larger than the number of experts
json.dump(c, open(sys.argv[2], "w"))
PY
expect_error "inconsistent config" "bad.json" -- --random-init 1 --config "$tmp/bad.json" --sensor sim "${out[@]}"
mkdir -p "$tmp/nomodel"
expect_error "missing checkpoint config" "config.json" -- --model "$tmp/nomodel" --sensor sim "${out[@]}"
[ ! -e "$tmp/x.json" ] || { echo "FAIL: an erroring run wrote its output"; failures=$((failures + 1)); }
if [ "$failures" -gt 0 ]; then echo "profile: $failures failure(s)"; exit 1; fi
echo "profile: errors ok"
