// The user options that the command line and the Python package share, declared once: for each option its flag
// name, the struct field it sets, its help text, whether --help shows its default, its old (deprecated) flag name and
// its section of `wattmoe run --help`. Each group is a visitor, `visit_X_options(fields, v)`, calling
// `v(const OptionInfo&, T& field)` once per option in --help order; the CLI registers its flags by visiting
// (cli/common_flags.h TableFlags) and the Python package maps its dict keys by visiting (python/src/options.cpp),
// so a new option is one line here plus its struct field. Keys are the flags' names as Python spells them
// (option_key): route_top_p for --route-top-p, thermal_guard for the negated switch --no-thermal-guard, lr for
// --ttt-lr inside the ttt dict.
// Groups: routing (RoutingOptions), windows (--seq, --max-tokens; eval_window adds eval's), run_output, budget
// (BudgetOptions, run's or serve's wording), plant (RunPlantOptions), run (RunConfig: windows, run_output, budget,
// plant), ttt (TttOptions, without --ttt itself). serve/engine_options.h: the serving engine's (serve, Python's
// generate). inf_ok and negative_ok feed the CLI's number check (cli/common_flags.h refuse_bad_numbers) and Python's
// (python/src/options.cpp value_of).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "eval/budgeted_run.h"
#include "eval/evaluate.h"

namespace wattmoe {

struct OptionInfo {
  std::string_view flag;          // "--route-top-p"
  std::string_view help;          // the --help line
  bool show_default = false;      // --help shows the field's default
  std::string_view alias = {};    // the old flag name, still accepted with a warning ("--top-p"); empty: none
  std::string_view group = {};    // its section of `wattmoe run --help`; empty: none
  bool negated = false;           // a switch that sets its bool field false (--no-ladder; key "ladder")
  bool inf_ok = false;            // a floating-point option whose infinity means "no limit"
  bool negative_ok = false;       // a number whose negative values mean something (°C); others refuse them
  bool bool_value = false;        // a bool option given a value (--ttt-source-probation false), not a switch
};

// A flag name as a dict key: no leading dashes, no "no-" of a negated switch, no `prefix` ("ttt-" inside the ttt
// dict; --lora-rank keeps its name), '-' written '_'.
inline std::string option_key(std::string_view flag, bool negated = false, std::string_view prefix = {}) {
  while (!flag.empty() && flag.front() == '-') flag.remove_prefix(1);
  if (negated && flag.starts_with("no-")) flag.remove_prefix(3);
  if (!prefix.empty() && flag.starts_with(prefix)) flag.remove_prefix(prefix.size());
  std::string k(flag);
  for (char& c : k)
    if (c == '-') c = '_';
  return k;
}

template <class V>
void visit_routing_options(RoutingOptions& a, V&& v) {
  const auto opt = [&](std::string_view flag, std::string_view help, bool show_default, auto& field) {
    v(OptionInfo{.flag = flag, .help = help, .show_default = show_default, .group = "Routing"}, field);
  };
  opt("--policy", "routing policy: topk, cost, top_p, skip, budget, mask", true, a.policy);
  opt("--lambda", "cost: price weight λ ≥ 0 (logit units)", true, a.lambda);
  v(OptionInfo{.flag = "--route-top-p", .help = "top_p: cumulative router probability in (0, 1]", .show_default = true,
               .alias = "--top-p", .group = "Routing"}, a.top_p);
  opt("--beta", "skip: drop experts below β × the first's probability, β in [0, 1]", true, a.beta);
  opt("--k-min", "fewest experts per token (top_p, skip, budget)", true, a.k_min);
  opt("--k-max", "most experts per token (0: the model's top-k)", true, a.k_max);
  v(OptionInfo{.flag = "--budget-j", .help = "budget: joules per layer-step (inf: no limit)", .group = "Routing",
               .inf_ok = true}, a.budget_j);
  opt("--mask", "experts pruned in every layer, comma-separated ids (e.g. 3,5)", false, a.mask);
  opt("--reuse-min-tokens", "cost: step-aware re-pricing threshold (0: off)", true, a.reuse_min_tokens);
  opt("--costs", "expert costs: 'analytic' or a cost table JSON from wattmoe profile", true, a.costs);
  opt("--expert-shape", "analytic costs as if each expert were HxI (e.g. 4096x14336); default: the model's own shape",
      false, a.expert_shape);
}

// --seq and --max-tokens: the windows a command scores (eval, run).
template <class V>
void visit_window_options(int& seq, int64_t& max_tokens, V&& v) {
  constexpr std::string_view g = "Data and model";
  v(OptionInfo{.flag = "--seq", .help = "window length (windows of seq+1 tokens)", .show_default = true, .group = g},
    seq);
  v(OptionInfo{.flag = "--max-tokens", .help = "only the text's first N tokens (0: all)", .group = g}, max_tokens);
}

// `wattmoe eval`'s windows: --seq, --max-tokens, --stride, --batch.
template <class V>
void visit_eval_window_options(EvalWindows& w, V&& v) {
  visit_window_options(w.seq, w.max_tokens, v);
  v(OptionInfo{.flag = "--stride",
               .help = "tokens between window starts, 1 … seq (0: seq, disjoint windows); below seq each window scores "
                       "only its new targets, with at least seq − stride tokens of context (a sliding window)",
               .show_default = true}, w.stride);
  v(OptionInfo{.flag = "--batch", .help = "windows per forward pass", .show_default = true}, w.batch);
}

// The budget a controller holds. `run`: `wattmoe run`'s wording and its run-only options (--budget-schedule,
// --allow-infeasible); else the server's (`wattmoe serve`, Python's generate).
template <class V>
void visit_budget_options(BudgetOptions& b, bool run, V&& v) {
  constexpr std::string_view g = "Budget";
  v(OptionInfo{.flag = "--power-budget-w",
               .help = run ? "hold the plant's mean power at W" : "hold the mean power of the serving steps at W",
               .alias = "--power-budget", .group = g}, b.power_w);
  v(OptionInfo{.flag = "--energy-budget-j-per-token",
               .help = run ? "hold the plant's energy per token at J/token"
                           : "hold the energy per processed token at J/token",
               .alias = "--energy-budget", .group = g}, b.energy_j_per_token);
  if (run)
    v(OptionInfo{.flag = "--budget-schedule", .help = "target step changes WINDOW:TARGET,... (W or J/token)",
                 .group = g},
      b.schedule);
  v(OptionInfo{.flag = "--control-policy", .help = "knob the controller moves: cost, top_p, skip, topk, budget",
               .show_default = true, .group = g}, b.control_policy);
  v(OptionInfo{.flag = "--no-thermal-guard", .help = "disable the thermal guard", .group = g, .negated = true},
    b.thermal_guard);
  v(OptionInfo{.flag = "--no-ladder", .help = "disable the degradation ladder", .group = g, .negated = true}, b.ladder);
  v(OptionInfo{.flag = "--control-gains",
               .help = "the PI loop's gains: default, or auto (from the plant gain dy/du measured on the controller's "
                       "own steps)",
               .show_default = true, .group = g}, b.control_gains);
  v(OptionInfo{.flag = "--control-deadband",
               .help = "relative error the PI loop ignores, in [0, 0.5) (smaller for a plant that routing moves by only "
                       "a few % of the target)",
               .show_default = true, .group = g}, b.control_deadband);
  v(OptionInfo{.flag = "--ladder-dwell",
               .help = "steps at full effort and above the budget before the ladder leaves knob control for top-1, "
                       "masks and smaller batches (fewer for long steps)",
               .show_default = true, .group = g}, b.ladder_dwell);
  v(OptionInfo{.flag = "--ladder-tier",
               .help = run ? "fp8 or int8: a ladder level after knob control that re-quantises the routed experts to "
                             "this precision (before top-1; with --expert-precision bf16 and the simulated plant)"
                           : "fp8 or int8: a ladder level after knob control that re-quantises the routed experts to "
                             "this precision (before top-1; with --expert-precision bf16; the GPU's decode steps read "
                             "the cheaper experts; keeps a host copy of the model's fp32 weights)",
               .group = g}, b.ladder_tier);
  if (run)
    v(OptionInfo{.flag = "--allow-infeasible",
                 .help = "run even when the budget is below the plant's floor (its cheapest rung): warn instead of "
                         "failing",
                 .group = g}, b.allow_infeasible);
}

// What `wattmoe run`'s budget is measured on.
template <class V>
void visit_plant_options(RunPlantOptions& p, V&& v) {
  constexpr std::string_view g = "Plant (what the budget is measured on)";
  v(OptionInfo{.flag = "--plant",
               .help = "what the window's work runs on: sim (simulated GPU), cuda (Mixtral-shaped expert blocks on the "
                       "real GPU, measured with NVML) or model (the model itself on the GPU, --sim-streams copies of "
                       "each window per step, measured with NVML; needs --device cuda)",
               .show_default = true, .group = g}, p.name);
  v(OptionInfo{.flag = "--sim-params", .help = "simulated GPU parameters (JSON)", .group = g}, p.sim_params);
  v(OptionInfo{.flag = "--sim-streams", .help = "concurrent streams each window stands for", .show_default = true,
               .group = g}, p.streams);
  v(OptionInfo{.flag = "--step-period-s", .help = "seconds between steps (arrival cadence; default 0.02 sim, 1 cuda)",
               .group = g}, p.period_s);
  v(OptionInfo{.flag = "--idle-s", .help = "--plant cuda: seconds of idle power measured before any work",
               .show_default = true, .group = g}, p.idle_s);
  v(OptionInfo{.flag = "--ambient-c", .help = "simulated ambient temperature (°C)", .group = g, .negative_ok = true},
    p.ambient_c);
}

// `wattmoe run`'s outputs besides the summary: the per-window log, the expert-use matrices.
template <class V>
void visit_run_output_options(RunConfig& r, V&& v) {
  v(OptionInfo{.flag = "--log", .help = "per-window JSONL log", .group = "Output"}, r.log);
  v(OptionInfo{.flag = "--compare-windows", .help = "windows in the first/last expert-use matrices",
               .show_default = true, .group = "Output"}, r.stream.compare_windows);
}

// `wattmoe run`'s own options (its routing and test-time training are their own groups): windows, outputs, budget,
// plant.
template <class V>
void visit_run_options(RunConfig& r, V&& v) {
  visit_window_options(r.stream.seq, r.stream.max_tokens, v);
  visit_run_output_options(r, v);
  visit_budget_options(r.budget, true, v);
  visit_plant_options(r.plant, v);
}

// Test-time training: the --ttt-* and --lora-* options (not --ttt itself, which turns it on; Python: the ttt dict,
// whose keys drop the "ttt-" prefix).
template <class V>
void visit_ttt_options(TttOptions& t, V&& v) {
  constexpr std::string_view g = "Test-time training (TTT)";
  AdapterConfig& c = t.adapter;
  AdaptOptimConfig& o = c.optim;
  const auto opt = [&](std::string_view flag, std::string_view help, bool show_default, auto& field) {
    v(OptionInfo{.flag = flag, .help = help, .show_default = show_default, .group = g}, field);
  };
  opt("--ttt-groups", "parameters to adapt: router, norms, lora, all, top=N", true, t.groups);
  opt("--lora-rank", "rank of the per-expert LoRA adapters (0: none)", true, c.lora_rank);
  opt("--ttt-optimizer", "sgd or adamw", true, t.optimizer);
  opt("--ttt-lr", "adaptation learning rate", true, o.lr);
  opt("--ttt-lr-router", "multiplier of --ttt-lr for the router", true, o.lr_router);
  opt("--ttt-lr-norms", "multiplier of --ttt-lr for the RMSNorm gains", true, o.lr_norms);
  opt("--ttt-lr-lora", "multiplier of --ttt-lr for the LoRA factors", true, o.lr_lora);
  opt("--ttt-lr-decay", "lr of step t = lr·max(min-ratio, (1 + t/N)^-1/2), t counted from the last reset (0: constant)",
      true, o.lr_decay_steps);
  opt("--ttt-lr-min-ratio", "floor of --ttt-lr-decay as a share of --ttt-lr", true, o.lr_min_ratio);
  opt("--ttt-beta1", "adamw beta1", true, o.beta1);
  opt("--ttt-beta2", "adamw beta2", true, o.beta2);
  opt("--ttt-clip", "clip the gradient's L2 norm over the trainable elements to this (0: off)", true, o.clip);
  opt("--lora-seed", "seed of the fresh LoRA A factors", true, c.lora_seed);
  opt("--lora-scale", "scale of the LoRA adapters' output (B·A·x·scale)", true, c.lora_scale);
  opt("--ttt-steps", "optimizer steps per adapted window", true, c.steps_per_window);
  opt("--ttt-replay", "windows per adaptation batch: the window just scored plus the last N-1 revealed ones (1: alone)",
      true, c.replay);
  opt("--ttt-nll", "weight of the next-token loss on revealed tokens", true, c.objective.nll);
  opt("--ttt-entropy", "weight of the gated next-token entropy (TENT/EATA)", true, c.objective.entropy);
  opt("--ttt-energy", "weight of the expected expert energy", true, c.objective.energy);
  opt("--ttt-entropy-gate",
      "EATA gate: tokens with entropy above this (nats) are left out (default 0.4·ln V; huge = no gating)", false,
      t.entropy_gate);
  opt("--ttt-router-entropy", "weight of the router entropy", true, c.objective.router_entropy);
  opt("--ttt-lb", "weight of the load-balancing loss", true, c.objective.load_balance);
  opt("--ttt-anchor", "weight of the L2 anchor to the source weights", true, c.objective.anchor);
  opt("--ttt-trigger", "always, every, drift, power, thermal, complexity, adaptive (any-of)", true, t.triggers);
  opt("--ttt-every", "the 'every' trigger's interval in windows", false, t.every);
  opt("--ttt-power-above", "the 'power' trigger's threshold (W)", false, t.power_above_w);
  opt("--ttt-complexity", "the 'complexity' trigger's factor over the loss EMA (≥ 1)", false, t.complexity);
  opt("--ttt-entropy-floor", "reset when the mean next-token entropy falls below (nats)", false, c.guard.entropy_floor);
  opt("--ttt-max-expert-share", "reset when one expert takes more than this share", false, c.guard.max_expert_share);
  opt("--ttt-loss-margin", "reset when the loss exceeds (1+m)× its unadapted EMA", false, c.guard.loss_margin);
  opt("--ttt-source-check",
      "every N adapted windows also score the window with the source weights; reset when worse (0: off)", true,
      c.source_guard.check_every);
  opt("--ttt-source-margin",
      "reset when the adapted loss exceeds the source's by more than this share (running comparison)", true,
      c.source_guard.margin);
  opt("--ttt-backoff", "windows without adaptation after a worse-than-source reset (doubles per consecutive failure)",
      true, c.source_guard.backoff);
  v(OptionInfo{.flag = "--ttt-source-probation",
               .help = "report the source weights' scores until the adapted ones beat them (start, after each "
                       "failure)",
               .show_default = true, .group = g, .bool_value = true}, c.source_guard.probation);
  opt("--ttt-teacher", "keep an EMA teacher", false, c.teacher);
  opt("--ttt-episodic", "reset to the source weights after every adapted window", false, c.episodic);
  opt("--ttt-reset-on-drift", "reset to the source weights on a drift alarm", false, c.reset_on_drift);
  opt("--ttt-time-phases",
      "split adapt_seconds by phase in the summary (ttt.adapt_phases_s; waits for the GPU at each phase)", false,
      c.time_phases);
}

}  // namespace wattmoe
