#!/usr/bin/env bash
# Carries the mix corpus to the GPU machine (which cannot build it: no Debian packages there): the training domains'
# train and val text, every domain's val and test split (the natural shifts) and the tokenizer, as one file,
# .devcarry/mix.tar.xz (ignored by git), which scripts/device/session.sh's `mix` phase unpacks.
#   scripts/device/pack_mix.sh MIXDIR TOKENIZER_JSON [LABEL]
#     MIXDIR: `wattmoe data build --corpus mix`'s OUT/mix; LABEL: the training set (default prose: MIXDIR/prose.*.txt)
#     TOKENIZER_JSON: `wattmoe data tokenizer`'s output trained on MIXDIR/LABEL.train.txt
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MIX=${1:?usage: pack_mix.sh MIXDIR TOKENIZER_JSON [LABEL]} TOK=${2:?usage: pack_mix.sh MIXDIR TOKENIZER_JSON [LABEL]}
LABEL=${3:-prose}
[ -f "$MIX/manifest.json" ] && [ -f "$MIX/$LABEL.train.txt" ] ||
  { echo "pack_mix.sh: $MIX has no manifest.json or $LABEL.train.txt (wattmoe data build --corpus mix)" >&2; exit 2; }
[ -f "$TOK" ] || { echo "pack_mix.sh: no tokenizer $TOK" >&2; exit 2; }
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp "$MIX/manifest.json" "$MIX/$LABEL.train.txt" "$MIX/$LABEL.val.txt" "$STAGE/"
cp "$TOK" "$STAGE/tokenizer.json"
for d in "$MIX"/*/; do
  d=$(basename "$d")
  mkdir -p "$STAGE/$d" && cp "$MIX/$d/val.txt" "$MIX/$d/test.txt" "$STAGE/$d/"
done
mkdir -p "$SRC/.devcarry"
tar -C "$STAGE" -cf - . | xz -T0 -6 > "$SRC/.devcarry/mix.tar.xz"
echo "pack_mix.sh: $(du -h "$SRC/.devcarry/mix.tar.xz" | cut -f1) in .devcarry/mix.tar.xz (label $LABEL)"
