# The tuned test-time training recipe of docs/results.md (router, norms, LoRA rank 8; AdamW β₁ 0, lr 1e-2 decaying
# over 45 steps, per-group rates) as `wattmoe run` flags in the array TTT, for the device scripts that measure it
# (ttt_energy.sh, ttt_time.sh source it; scripts/experiments/wattmoe_cli.py ttt_recipe reads it).
# shellcheck disable=SC2034
TTT=(--ttt --ttt-optimizer adamw --ttt-groups router,norms,lora --lora-rank 8 --ttt-lr 1e-2 --ttt-beta1 0
     --ttt-lr-decay 45 --ttt-lr-norms 4 --ttt-lr-router 0.125 --ttt-lr-lora 0.75)
