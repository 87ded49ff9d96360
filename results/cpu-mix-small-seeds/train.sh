#!/bin/sh
# Two more seeds of models/mix-small (seed 1234, results/cpu-mix-small/): the same command but for --seed and --out,
# the tokenizer being the shipped models/mix-small/tokenizer.json (the one `wattmoe data tokenizer` made for it).
# Data: `wattmoe data build --corpus mix --out /work/data-mix` (its manifest identical to results/cpu-mix-corpus/).
# Validation: every 16th line of prose.val.txt (awk 'NR%16==1').
for s in 1235 1236; do
  build-cpu/wattmoe train --preset small --tokenizer models/mix-small/tokenizer.json \
    --train /work/data-mix/mix/prose.train.txt --val /work/ms/prose.val16.txt --out /work/ms/mix-small-s$s \
    --steps 1000 --eval-every 100 --ckpt-every 100 --seed $s --no-resume \
    --summary results/cpu-mix-small-seeds/s$s/train-summary.json > results/cpu-mix-small-seeds/s$s/train.log 2>&1
done
