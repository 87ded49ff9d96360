#include "cli/ttt_flags.h"

namespace wattmoe::cli {

void add_ttt_flags(CLI::App* cmd, TttOptions& t) {
  AdapterConfig& c = t.adapter;
  CLI::Option* ttt = cmd->add_flag("--ttt", t.enabled, "adapt the model online (test-time training)");
  cmd->add_option("--ttt-groups", t.groups, "parameters to adapt: router, norms, lora, all, top=N")
      ->capture_default_str();
  cmd->add_option("--lora-rank", c.lora_rank, "rank of the per-expert LoRA adapters (0: none)")->capture_default_str();
  cmd->add_option("--ttt-optimizer", t.optimizer, "sgd or adamw")->capture_default_str();
  cmd->add_option("--ttt-lr", c.optim.lr, "adaptation learning rate")->capture_default_str();
  cmd->add_option("--ttt-lr-router", c.optim.lr_router, "multiplier of --ttt-lr for the router")->capture_default_str();
  cmd->add_option("--ttt-lr-norms", c.optim.lr_norms, "multiplier of --ttt-lr for the RMSNorm gains")->capture_default_str();
  cmd->add_option("--ttt-lr-lora", c.optim.lr_lora, "multiplier of --ttt-lr for the LoRA factors")->capture_default_str();
  cmd->add_option("--ttt-lr-decay", c.optim.lr_decay_steps,
                  "lr of step t = lr·max(min-ratio, (1 + t/N)^-1/2), t counted from the last reset (0: constant)")
      ->capture_default_str();
  cmd->add_option("--ttt-lr-min-ratio", c.optim.lr_min_ratio, "floor of --ttt-lr-decay as a share of --ttt-lr")
      ->capture_default_str();
  cmd->add_option("--ttt-beta1", c.optim.beta1, "adamw beta1")->capture_default_str();
  cmd->add_option("--ttt-beta2", c.optim.beta2, "adamw beta2")->capture_default_str();
  cmd->add_option("--ttt-clip", c.optim.clip, "clip the gradient's L2 norm over the trainable elements to this (0: off)")
      ->capture_default_str();
  cmd->add_option("--lora-seed", c.lora_seed, "seed of the fresh LoRA A factors")->capture_default_str();
  cmd->add_option("--lora-scale", c.lora_scale, "scale of the LoRA adapters' output (B·A·x·scale)")
      ->capture_default_str();
  cmd->add_option("--ttt-steps", c.steps_per_window, "optimizer steps per adapted window")->capture_default_str();
  cmd->add_option("--ttt-replay", c.replay,
                  "windows per adaptation batch: the window just scored plus the last N-1 revealed ones (1: alone)")
      ->capture_default_str();
  cmd->add_option("--ttt-nll", c.objective.nll, "weight of the next-token loss on revealed tokens")->capture_default_str();
  cmd->add_option("--ttt-entropy", c.objective.entropy, "weight of the gated next-token entropy (TENT/EATA)")
      ->capture_default_str();
  cmd->add_option("--ttt-energy", c.objective.energy, "weight of the expected expert energy")->capture_default_str();
  cmd->add_option("--ttt-entropy-gate", t.entropy_gate,
                  "EATA gate: tokens with entropy above this (nats) are left out (default 0.4·ln V; huge = no gating)");
  cmd->add_option("--ttt-router-entropy", c.objective.router_entropy, "weight of the router entropy")->capture_default_str();
  cmd->add_option("--ttt-lb", c.objective.load_balance, "weight of the load-balancing loss")->capture_default_str();
  cmd->add_option("--ttt-anchor", c.objective.anchor, "weight of the L2 anchor to the source weights")->capture_default_str();
  cmd->add_option("--ttt-trigger", t.triggers, "always, every, drift, power, thermal, complexity, adaptive (any-of)")
      ->capture_default_str();
  cmd->add_option("--ttt-every", t.every, "the 'every' trigger's interval in windows");
  cmd->add_option("--ttt-power-above", t.power_above_w, "the 'power' trigger's threshold (W)");
  cmd->add_option("--ttt-complexity", t.complexity, "the 'complexity' trigger's factor over the loss EMA (≥ 1)");
  cmd->add_option("--ttt-entropy-floor", c.guard.entropy_floor, "reset when the mean next-token entropy falls below (nats)");
  cmd->add_option("--ttt-max-expert-share", c.guard.max_expert_share, "reset when one expert takes more than this share");
  cmd->add_option("--ttt-loss-margin", c.guard.loss_margin, "reset when the loss exceeds (1+m)× its unadapted EMA");
  cmd->add_option("--ttt-source-check", c.source_guard.check_every,
                  "every N adapted windows also score the window with the source weights; reset when worse (0: off)")
      ->capture_default_str();
  cmd->add_option("--ttt-source-margin", c.source_guard.margin,
                  "reset when the adapted loss exceeds the source's by more than this share (running comparison)")
      ->capture_default_str();
  cmd->add_option("--ttt-backoff", c.source_guard.backoff,
                  "windows without adaptation after a worse-than-source reset (doubles per consecutive failure)")
      ->capture_default_str();
  cmd->add_option("--ttt-source-probation", c.source_guard.probation,
                  "report the source weights' scores until the adapted ones beat them (start, after each failure)")
      ->capture_default_str();
  cmd->add_flag("--ttt-teacher", c.teacher, "keep an EMA teacher");
  cmd->add_flag("--ttt-episodic", c.episodic, "reset to the source weights after every adapted window");
  cmd->add_flag("--ttt-reset-on-drift", c.reset_on_drift, "reset to the source weights on a drift alarm");
  cmd->add_flag("--ttt-time-phases", c.time_phases,
                "split adapt_seconds by phase in the summary (ttt.adapt_phases_s; waits for the GPU at each phase)");
  // Every --ttt-* and --lora-* flag does nothing without --ttt: refused rather than ignored ("--ttt-lr requires --ttt").
  for (CLI::Option* o : cmd->get_options([](CLI::Option* o) {
         const std::string& n = o->get_name();
         return n.rfind("--ttt-", 0) == 0 || n.rfind("--lora-", 0) == 0;
       }))
    o->needs(ttt);
}

}  // namespace wattmoe::cli
