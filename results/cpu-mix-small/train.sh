#!/bin/sh
# models/mix-small: the small preset on the mixed corpus's prose train split, BPE 8192, 1000 steps on the CPU.
# Validation during training on every 16th line of prose.val.txt (awk 'NR%16==1'), ~128 KB, to keep evals short.
exec build/wattmoe train --preset small --tokenizer /work/data-mix/tokenizer-prose-8192.json \
  --train /work/data-mix/mix/prose.train.txt --val /work/ms/prose.val16.txt \
  --out /work/ms/mix-small --steps 1000 --eval-every 100 --ckpt-every 100 --seed 1234 --no-resume \
  --summary /work/ms/train-summary.json
