#!/usr/bin/env bash
# Serve on the GPU against generate: the same prompt, seed and sampling through `wattmoe serve` (bf16, fused kernels,
# decode steps as CUDA graphs) and through `wattmoe generate`, one request alone, then four at once (batched rows);
# prints one "served == generate" line per request. generate runs with --top-p 1, serve's default (generate's is 0.95).
# Read only on the GPU. Usage: scripts/device/serve_vs_generate.sh [--bin WATTMOE] [--model DIR]
# Writes the served responses (NAME.json), the generated texts and the server's log under $OUT (default /tmp/svg).
set -u
W=/tmp/wm/wattmoe MODEL=models/kjv-small
while [ $# -gt 0 ]; do
  case $1 in
    --bin) W=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    *) echo "serve_vs_generate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
T=${OUT:-/tmp/svg}
mkdir -p "$T"
nvidia-smi -L
"$W" serve --model "$MODEL" --device cuda --precision bf16 --port 0 --port-file "$T/port" --min-free-host-mb 0 \
  --max-batch 4 > "$T/server.out" 2> "$T/server.err" &
PID=$!
for _ in $(seq 300); do [ -s "$T/port" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$(cat "$T/port")
for _ in $(seq 300); do curl -sf "$URL/health" > /dev/null && break; sleep 0.1; done
req() {  # prompt max_tokens temperature seed
  curl -sS "$URL/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"model\":\"m\",\"prompt\":\"$1\",\"max_tokens\":$2,\"temperature\":$3,\"seed\":$4}"
}
req "In the beginning" 60 0.8 3 > "$T/alone.json"
pids=""
for s in 1 2 3 4; do req "And God said" 60 0.8 $s > "$T/b$s.json" & pids="$pids $!"; done
wait $pids
kill -TERM $PID; wait $PID; echo "server exit $?"
cmp_one() {  # name prompt seed
  "$W" generate --model "$MODEL" --device cuda --precision bf16 --prompt "$2" --max-new-tokens 60 \
    --temperature 0.8 --top-p 1 --seed "$3" 2> /dev/null > "$T/gen_$1.txt"
  python3 - "$T/$1.json" "$T/gen_$1.txt" "$2" "$1" <<'PY'
import json, sys
served = json.load(open(sys.argv[1]))["choices"][0]["text"]
gen = open(sys.argv[2]).read()
assert gen.startswith(sys.argv[3]), gen[:40]
gen = gen[len(sys.argv[3]):].rstrip("\n")
print(f"{sys.argv[4]}: served == generate: {served == gen} ({len(served)} chars)")
PY
}
cmp_one alone "In the beginning" 3
for s in 1 2 3 4; do cmp_one b$s "And God said" $s; done
tail -3 "$T/server.err"
