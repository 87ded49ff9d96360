// wattmoe run: the model reads a text stream window by window, scores it (prequential: each window before any
// adaptation on it), holds a power or energy budget by moving the routing knob (Controller), and optionally adapts
// itself online (TestTimeAdapter). Everything it decides is logged per window as JSONL; a summary JSON goes to stdout
// (or --summary). The model runs on the CPU, or with --device cuda its forward runs on the GPU (TransformerCuda, fp32
// or --precision bf16, whose MoE layers run on the fused kernels where --moe-kernels allows and the routing is plain
// top-k without a budget; routing, the controller, the plant and the logs unchanged; with --ttt the adapted model runs
// there too: gpu/adapt_model_cuda.h, host routing, the adapter's optimiser and guards on the host); power, energy and
// temperature come from the plant fed the work each window would put on a GPU (plant/plant.h): the simulated GPU (--plant sim, labelled simulated) or, in a CUDA build,
// the real GPU running that work with Mixtral-shaped experts and measured with NVML (--plant cuda, labelled measured).
#include <cmath>
#include <fstream>
#include <sstream>

#include "adapt/adapter.h"
#include "adapt/router_objectives.h"
#include "adapt/stream.h"
#include "cli/commands.h"
#include "cli/defaults.h"
#include "cli/moe_kernels_flag.h"
#include "cli/routing_flags.h"
#include "control/controller.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "energy/sim_params.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "plant/plant.h"
#if WATTMOE_WITH_CUDA
#include "gpu/adapt_model_cuda.h"
#include "gpu/stream_cuda.h"
#endif

namespace wattmoe::cli {

namespace {

struct RunArgs {
  std::string model = default_model_dir(), data = "data/kjv.val.txt", tokenizer, log, summary, device = "cpu";
  std::string precision = "fp32", moe_kernels = "auto";
  int seq = 128, compare_windows = 8;
  int64_t max_tokens = 0;
  RoutingArgs routing;
  // Budget.
  double power_budget = 0, energy_budget = 0;
  std::string budget_schedule;  // "WINDOW:TARGET,..." step changes of the target
  std::string control_policy = "skip";
  bool no_thermal = false, no_ladder = false;
  // Plant: the simulated GPU, or the real one (CUDA builds).
  std::string plant = "sim", sim_params;
  double streams = 16, period_s = NAN, ambient_c = NAN, idle_s = 2;
  // Test-time adaptation.
  bool ttt = false;
  std::string groups = "router,norms", optimizer = "sgd", triggers = "always";
  int lora_rank = 0, steps = 1, every = 0, replay = 1;
  double lr_router = 1, lr_norms = 1, lr_lora = 1, lr_min_ratio = 0, beta1 = 0.9, beta2 = 0.999, lora_scale = 1, clip = 1;
  int64_t lr_decay = 0;
  uint64_t lora_seed = 1234;
  double lr = 1e-3, w_nll = 1, w_entropy = 0, w_energy = 0, w_router_entropy = 0, w_lb = 0, w_anchor = 0;
  double entropy_gate = 0, entropy_floor = 0, max_expert_share = 0, loss_margin = 0, power_above = NAN, complexity = 0;
  bool teacher = false, episodic = false, reset_on_drift = false;
  int source_check = 4, backoff = 8;
  double source_margin = 0.002;
  bool source_probation = true;
};

// "0:400,200:300" → {(0, 400), (200, 300)}, windows ascending, targets > 0.
std::vector<std::pair<int64_t, double>> parse_schedule(const std::string& s) {
  std::vector<std::pair<int64_t, double>> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    long long w = 0;
    double t = 0;
    char extra = 0;
    WATTMOE_REQUIRE(std::sscanf(item.c_str(), "%lld:%lf%c", &w, &t, &extra) == 2 && w >= 0 && t > 0 &&
                        std::isfinite(t) && (out.empty() || w > out.back().first),
                    "--budget-schedule: '{}' is not WINDOW:TARGET with windows ascending and a target > 0", item);
    out.emplace_back(w, t);
  }
  return out;
}

TriggerConfig parse_triggers(const RunArgs& a) {
  TriggerConfig t;
  std::stringstream ss(a.triggers);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "always") t.always = true;
    else if (item == "every") t.every = a.every;
    else if (item == "drift") t.on_drift = true;
    else if (item == "power") t.power_above_w = a.power_above;
    else if (item == "thermal") t.clock_event_mask = 0x20 | 0x40 | 0x8, t.thermal_margin_below_c = 5;
    else if (item == "complexity") t.complexity_factor = a.complexity;
    else if (item == "adaptive") t.adaptive = true;
    else fail("--ttt-trigger: unknown trigger '{}' (expected always, every, drift, power, thermal, complexity, adaptive)", item);
  }
  validate_triggers(t);
  return t;
}

AdapterConfig adapter_config(const RunArgs& a, const RoutingSetup& routing, double tokens_per_step) {
  AdapterConfig c;
  c.groups = parse_param_groups(a.groups);
  c.lora_rank = a.lora_rank;
  c.optim.kind = parse_adapt_optimizer(a.optimizer);
  c.optim.lr = a.lr;
  c.optim.lr_router = a.lr_router, c.optim.lr_norms = a.lr_norms, c.optim.lr_lora = a.lr_lora;
  c.optim.lr_decay_steps = a.lr_decay, c.optim.lr_min_ratio = a.lr_min_ratio;
  c.optim.beta1 = a.beta1, c.optim.beta2 = a.beta2, c.optim.clip = a.clip;
  c.lora_scale = float(a.lora_scale), c.lora_seed = a.lora_seed;
  c.steps_per_window = a.steps;
  c.replay = a.replay;
  c.objective.nll = a.w_nll, c.objective.entropy = a.w_entropy, c.objective.energy = a.w_energy;
  c.objective.router_entropy = a.w_router_entropy, c.objective.load_balance = a.w_lb, c.objective.anchor = a.w_anchor;
  if (a.entropy_gate > 0) c.objective.entropy_gate = a.entropy_gate;
  if (a.w_energy > 0) c.expert_costs = EnergyCosts{routing.layer_costs, int64_t(tokens_per_step)};
  c.triggers = parse_triggers(a);
  c.drift.enabled = c.triggers.on_drift || a.reset_on_drift;
  c.reset_on_drift = a.reset_on_drift;
  c.guard.entropy_floor = a.entropy_floor, c.guard.max_expert_share = a.max_expert_share;
  c.guard.loss_margin = a.loss_margin;
  WATTMOE_REQUIRE(a.source_check >= 0, "--ttt-source-check must be >= 1 window (0 = off), got {}", a.source_check);
  WATTMOE_REQUIRE(std::isfinite(a.source_margin) && a.source_margin >= 0,
                  "--ttt-source-margin must be a relative loss excess >= 0 (e.g. 0.002), got {}", a.source_margin);
  WATTMOE_REQUIRE(a.backoff >= 0, "--ttt-backoff must be >= 0 windows, got {}", a.backoff);
  c.source_guard.check_every = a.source_check, c.source_guard.margin = a.source_margin;
  c.source_guard.backoff = a.backoff, c.source_guard.max_backoff = std::max(c.source_guard.max_backoff, a.backoff);
  c.source_guard.probation = a.source_probation;
  c.teacher = a.teacher, c.episodic = a.episodic;
  return c;
}

ControllerConfig controller_config(const RunArgs& a, const ModelConfig& m, const RoutingSetup& routing) {
  ControllerConfig c;
  c.budget.measure = a.power_budget > 0 ? Measure::Power : Measure::JoulesPerToken;
  c.budget.target = a.power_budget > 0 ? a.power_budget : a.energy_budget;
  c.knobs.policy = a.control_policy;
  c.knobs.num_experts = m.num_experts, c.knobs.model_k = m.top_k;
  c.thermal.enabled = !a.no_thermal;
  // A real GPU's temperature is noisy at sub-second steps: fit the slope over a full window before extrapolating.
  if (a.plant == "cuda") c.thermal.min_fit_span_s = 0.8 * c.thermal.slope_window_s;
  c.ladder.enabled = !a.no_ladder;
  // The mask rung prunes the most expensive experts, ranked by a_e + b_e (tokens_per_step 1: a whole step's fixed
  // cost plus one pair); when every expert costs the same there is nothing to gain from it but lost quality, so the
  // ladder goes from top-1 straight to smaller batches.
  c.ladder.layer_costs = routing.layer_costs;
  c.ladder.tokens_per_step = 1;
  bool uniform = true;
  for (const ExpertCosts& layer : c.ladder.layer_costs) {
    const std::vector<double> costs = per_token_cost(layer, c.ladder.tokens_per_step);
    for (double x : costs) uniform = uniform && x == costs.front();
  }
  if (uniform) c.ladder.layer_costs.clear();
  validate(c);
  return c;
}

// The selection a decision asks for: per-layer masks make one callback per layer.
RouterSelect<float> decision_select(const ControlDecision& d, const RoutingSetup& routing,
                                    std::shared_ptr<RoutingEnergyTally> tally) {
  if (d.layer_masks.empty()) return routing.select_with(d.knobs, d.policy, tally);
  std::vector<PolicySelectFn<float>> per_layer;
  for (size_t l = 0; l < d.layer_masks.size(); ++l)
    per_layer.push_back(routing.select_with(d.knobs_for_layer(int(l)), d.policy, tally));
  return [per_layer](int layer, const float* logits, const float* probs, int64_t n, Routing& out) {
    per_layer.at(size_t(layer))(layer, logits, probs, n, out);
  };
}

Json sample_json(const Sample& s) {
  Json j{{"power_w", s.power_w}, {"gpu_temp_c", s.gpu_temp_c}, {"sm_clock_mhz", s.sm_clock_mhz},
         {"thermal_margin_c", s.thermal_margin_c}};
  j["clock_event_reasons"] = s.clock_event_reasons ? Json(*s.clock_event_reasons) : Json(nullptr);
  std::vector<std::string> names;
  if (s.clock_event_reasons) names = clock_event_reason_names(*s.clock_event_reasons);
  j["reasons"] = names;
  return j;
}

Json counts_json(const std::vector<std::vector<int64_t>>& counts) {
  Json j = Json::object();
  for (size_t l = 0; l < counts.size(); ++l)
    if (!counts[l].empty()) j[std::to_string(l)] = counts[l];
  return j;
}

void run_run(const RunArgs& a) {
  WATTMOE_REQUIRE(!(a.power_budget > 0 && a.energy_budget > 0),
                  "--power-budget and --energy-budget are exclusive: give one budget");
  WATTMOE_REQUIRE(a.power_budget >= 0 && a.energy_budget >= 0 && std::isfinite(a.power_budget) &&
                      std::isfinite(a.energy_budget),
                  "--power-budget/--energy-budget must be > 0 (got {} W, {} J/token)", a.power_budget, a.energy_budget);
  const bool cuda = use_cuda_device(a.device);  // before any work: a GPU-less machine or CPU-only build fails here
  check_device_flags(a.moe_kernels, a.precision, cuda);
  // Adapting needs backward, which the fused MoE kernels (inference only, no LoRA) do not have: host routing.
  WATTMOE_REQUIRE(!(a.ttt && a.moe_kernels == "fused"),
                  "--ttt with --moe-kernels fused: the fused MoE kernels are inference-only (no backward, no LoRA); "
                  "use --moe-kernels host or auto (auto picks host routing with --ttt)");
  check_plant(a.plant);  // before any work: a CPU-only build or machine fails here for --plant cuda
  const double period_s = std::isnan(a.period_s) ? default_step_period(a.plant) : a.period_s;
  WATTMOE_REQUIRE(a.streams >= 1 && period_s > 0 && std::isfinite(period_s),
                  "--sim-streams must be ≥ 1 and --step-period-s > 0");
  WATTMOE_REQUIRE(a.idle_s >= 0 && a.idle_s <= 600, "--idle-s {}: expected 0 to 600 s", a.idle_s);
  const bool budget = a.power_budget > 0 || a.energy_budget > 0;
  WATTMOE_REQUIRE(budget || a.budget_schedule.empty(), "--budget-schedule needs --power-budget or --energy-budget");

  ModelWeights<float> m = load_model<float>(a.model);
  std::unique_ptr<Tokenizer> tok = model_tokenizer(a.model, a.tokenizer, m.config.vocab_size);
  const TokenStream stream = load_token_stream(a.data, *tok, 2);
  const double tokens_per_step = double(a.seq) * a.streams;
  RoutingSetup routing = make_routing(a.routing, m.config, tokens_per_step);
  routing.tally_fixed_share = 1.0 / a.streams;
  const auto schedule = parse_schedule(a.budget_schedule);

  PlantOptions po;
  po.name = a.plant;
  po.sim = a.sim_params.empty() ? SimGpuParams{} : load_sim_params(a.sim_params);
  if (std::isfinite(a.ambient_c)) po.sim.ambient_c = a.ambient_c;
  PlantShape& shape = po.shape;
  shape.streams = a.streams, shape.period_s = period_s;
  if (!a.routing.expert_shape.empty()) {
    long long h = 0, i = 0;
    std::sscanf(a.routing.expert_shape.c_str(), "%lldx%lld", &h, &i);  // validated by make_routing
    shape.expert.hidden = h, shape.expert.ffn = i;
    shape.dense_params = double(h) * (2.5 * double(h)) + double(m.config.num_experts) * double(h);
  }
  po.num_layers = m.config.num_layers, po.num_experts = m.config.num_experts, po.window_tokens = a.seq;
  po.idle_s = a.idle_s;
  const std::unique_ptr<Plant> plant = make_plant(po);
  const std::string P = plant->prefix();  // "sim" or "measured": the JSONL/summary keys

  std::unique_ptr<Controller> ctl;
  ControlDecision decision;
  auto tally = std::make_shared<RoutingEnergyTally>();
  StreamControl control;
  if (budget) {
    ctl = std::make_unique<Controller>(controller_config(a, m.config, routing));
    decision = ctl->initial();
    control.select = decision_select(decision, routing, tally);
  } else {
    control.select = routing.select(tally);
  }

  std::unique_ptr<TestTimeAdapter> adapter;
  if (a.ttt) {
    AdaptModelFactory where;  // null: the CPU model
#if WATTMOE_WITH_CUDA
    if (cuda) where = gpu::cuda_adapt_model_factory(a.precision);  // the adapted model on GPU 0 (fp32 or bf16)
#endif
    adapter = std::make_unique<TestTimeAdapter>(m.config, m.params.data(), adapter_config(a, routing, tokens_per_step),
                                                where);
  }

  std::ofstream log;
  if (!a.log.empty()) {
    log.open(a.log);
    WATTMOE_REQUIRE(log.good(), "--log {}: cannot open for writing", a.log);
  }
  StreamOptions opt;
  opt.seq = a.seq, opt.max_tokens = a.max_tokens, opt.compare_windows = a.compare_windows;
  validate_stream_options(opt);

  double sim_j = 0, sim_s = 0, sim_tokens = 0, expert_j_prev = 0, max_temp = -1e9;
  int64_t overrun_windows = 0;
  size_t next_target = 0;
  int64_t throttled_windows = 0, windows_total = 0;
  const int64_t n_tok = a.max_tokens > 0 ? std::min<int64_t>(int64_t(stream.tokens.size()), a.max_tokens + 1)
                                         : int64_t(stream.tokens.size());
  const int64_t n_windows = (n_tok - 2) / a.seq + 1;
  Timer progress;
  auto on_window = [&](const WindowInfo& w, const WindowOutcome& r, StreamControl& next) {
    const PlantStep st = plant->step(r.counts, r.tokens, decision.batch_scale);
    const Sample& sample = st.sample;
    sim_j += st.joules, sim_s += st.seconds, sim_tokens += st.tokens, overrun_windows += st.overrun;
    max_temp = std::max(max_temp, sample.gpu_temp_c);
    const uint64_t reasons = sample.clock_event_reasons.value_or(0);
    if (reasons & (0x8 | 0x20 | 0x40)) ++throttled_windows;
    ++windows_total;
    const double expert_j = tally->total_joules() - expert_j_prev;
    expert_j_prev = tally->total_joules();
    if (log.is_open()) {
      Json j{{"window", w.index}, {"start", w.start}, {"tokens", r.tokens}, {"nats", r.nats},
             {"bits_per_token", r.nats_per_token() / std::log(2.0)}, {"entropy", r.entropy},
             {"experts_per_token", r.experts_per_token}, {"expert_counts", counts_json(r.counts)},
             {"expert_j", expert_j}, {P, sample_json(sample)}, {P + "_step_j", st.joules},
             {P + "_step_s", st.seconds}, {P + "_power_w", st.power_w()}, {P + "_j_per_token", st.joules_per_token()},
             {"infer_s", r.infer_seconds}, {"adapt_s", r.adapt_seconds}, {"adapted", r.adapted},
             {"trigger", r.trigger}, {"reset", r.reset}, {"drift", r.drift}, {"suspended", r.suspended},
             {"probation", r.probation}};
      if (r.adapted)
        j["loss"] = Json{{"nll", r.loss.nll}, {"entropy", r.loss.entropy}, {"energy", r.loss.energy},
                         {"router_entropy", r.loss.router_entropy}, {"anchor", r.loss.anchor}, {"total", r.loss.total}};
      j.update(plant->step_extras(st));
      if (ctl)
        j["control"] = Json{{"policy", decision.policy}, {"knobs", knobs_json(decision.knobs)}, {"u", decision.u},
                            {"floor", decision.floor}, {"rung", decision.rung}, {"batch_scale", decision.batch_scale},
                            {"thermal_active", decision.thermal_active}, {"target", ctl->budget().config().target},
                            {"reason", decision.reason}};
      log << j.dump() << '\n';
    }
    next.sensor = sample;
    if (ctl) {
      while (next_target < schedule.size() && schedule[next_target].first <= w.index + 1)
        ctl->set_target(schedule[next_target++].second);
      ControlInput in;
      in.step = w.index + 1, in.dt_s = st.seconds, in.power_w = st.power_w();
      in.joules_per_token = st.joules_per_token(), in.sample = sample;
      decision = ctl->update(in);
      next.select = decision_select(decision, routing, tally);
    }
    if ((w.index + 1) % 64 == 0 || w.index + 1 == n_windows) {
      const double rate = double(w.index + 1) / std::max(progress.seconds(), 1e-9);
      log_info("run: window {}/{} ({:.1f} windows/s, ETA {:.0f} s)", w.index + 1, n_windows, rate,
               double(n_windows - w.index - 1) / rate);
    }
  };
  StreamResult res;
  std::string kernels = "host";  // what ran the MoE layers
#if WATTMOE_WITH_CUDA
  // The forward on the GPU (fp32 or bf16). Host routing: every policy and controller decision applies. Fused kernels
  // (plain top-k, no controller): the device routes, and the observer prices each window's routing into the tally.
  const auto run_gpu = [&](auto& model) {
    model.upload_params(m.params.data());
    std::string why = model.fused_moe_unsupported();
    if (why.empty()) why = fused_routing_unsupported(a.routing, m.config);
    if (why.empty() && ctl) why = "a power/energy budget (the controller changes the routing window by window)";
    if (choose_fused_moe(a.moe_kernels, why)) {
      model.set_moe_kernels(gpu::MoeKernels::Fused);
      kernels = "fused";
      StreamControl plain = control;
      plain.select = nullptr;
      res = gpu::run_stream_cuda(model, stream, opt, plain, on_window,
                                 gpu::tally_observer(routing.layer_costs, routing.tally_fixed_share, tally));
    } else {
      res = gpu::run_stream_cuda(model, stream, opt, control, on_window);
    }
  };
  if (cuda && !adapter) gpu::with_gpu_model(m.config, a.precision, run_gpu);
#endif
  if (!cuda || adapter)
    res = adapter ? run_stream(*adapter, stream, opt, control, on_window)
                  : run_stream(Transformer<float>(m.config), m.params.data(), stream, opt, control, on_window);
  if (log.is_open()) {
    log.close();
    WATTMOE_REQUIRE(log.good(), "--log {}: write failed", a.log);
  }

  Json s{{"model", a.model}, {"data", a.data}, {"seq", a.seq}, {"windows", res.windows}, {"tokens", res.tokens},
         {"bytes", res.bytes}, {"device", a.device}, {"precision", a.precision},
         {"moe_kernels", kernels}, {"bits_per_byte", res.bits_per_byte()},
         {"nats_per_token", res.nats_per_token()},
         {"experts_per_token", res.experts_per_token}, {"expert_j_per_token", tally->joules_per_token()},
         {"routing", routing.describe()}, {"infer_seconds", res.infer_seconds}, {"adapt_seconds", res.adapt_seconds},
         {"adapt_infer_ratio", res.adapt_infer_ratio()}, {"adapted_windows", res.adapted_windows},
         {"resets", res.resets}, {"reset_reasons", res.reset_reasons}, {"drift_alarms", res.drift_alarms},
         {"source_checks", res.source_checks}, {"suspended_windows", res.suspended_windows},
         {"probation_windows", res.probation_windows}, {"expert_counts", counts_json(res.counts)},
         {"expert_counts_first", counts_json(res.counts_first)}, {"expert_counts_last", counts_json(res.counts_last)}};
  Json pj = plant->describe();
  pj.update(Json{{"joules", sim_j}, {"seconds", sim_s}, {"mean_power_w", sim_s > 0 ? sim_j / sim_s : 0},
                 {"joules_per_token", sim_tokens > 0 ? sim_j / sim_tokens : 0}, {"max_temp_c", max_temp},
                 {"throttled_windows", throttled_windows}, {"windows", windows_total},
                 {"overrun_windows", overrun_windows}});
  s[P] = pj;
  if (ctl)
    s["control"] = Json{{"measure", measure_name(ctl->config().budget.measure)},
                        {"final_target", ctl->budget().config().target}, {"policy", a.control_policy}};
  if (adapter)
    s["ttt"] = Json{{"groups", a.groups}, {"lora_rank", a.lora_rank}, {"lr", a.lr}, {"optimizer", a.optimizer},
                    {"triggers", a.triggers}, {"steps", a.steps},
                    {"replay", a.replay}, {"lr_router", a.lr_router}, {"lr_norms", a.lr_norms},
                    {"lr_lora", a.lr_lora}, {"lr_decay", a.lr_decay}, {"lr_min_ratio", a.lr_min_ratio},
                    {"beta1", a.beta1}, {"beta2", a.beta2}, {"lora_scale", a.lora_scale}, {"clip", a.clip}};
  const std::string out = s.dump(2);
  if (a.summary.empty()) fmt::print("{}\n", out);
  else {
    AtomicFile f(a.summary);
    f.write(out.data(), out.size());
    f.write("\n", 1);
    f.commit();
  }
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Score a text stream under a power/energy budget, optionally adapting the model online (JSONL log)");
  cmd->add_option("--model", a->model, "checkpoint directory")->capture_default_str();
  cmd->add_option("--data", a->data, "text stream")->capture_default_str();
  cmd->add_option("--tokenizer", a->tokenizer, "bytes, or a tokenizer.json (default: the model's, else bytes)");
  cmd->add_option("--seq", a->seq, "window length (windows of seq+1 tokens, stride seq)")->capture_default_str();
  cmd->add_option("--max-tokens", a->max_tokens, "read only the first N tokens (0: all)");
  cmd->add_option("--log", a->log, "per-window JSONL log");
  cmd->add_option("--summary", a->summary, "write the summary JSON here instead of stdout");
  cmd->add_option("--device", a->device,
                  "cpu (default) or cuda (each window's forward, and with --ttt the adaptation, on GPU 0)")
      ->capture_default_str();
  add_precision_flag(cmd, a->precision);
  add_moe_kernels_flag(cmd, a->moe_kernels);
  cmd->add_option("--compare-windows", a->compare_windows, "windows in the first/last expert-use matrices")
      ->capture_default_str();
  add_routing_flags(cmd, a->routing);
  cmd->add_option("--power-budget", a->power_budget, "hold the plant's mean power at W");
  cmd->add_option("--energy-budget", a->energy_budget, "hold the plant's energy per token at J/token");
  cmd->add_option("--budget-schedule", a->budget_schedule, "target step changes WINDOW:TARGET,... (W or J/token)");
  cmd->add_option("--control-policy", a->control_policy, "knob the controller moves: cost, top_p, skip, topk, budget")
      ->capture_default_str();
  cmd->add_flag("--no-thermal-guard", a->no_thermal, "disable the thermal guard");
  cmd->add_flag("--no-ladder", a->no_ladder, "disable the degradation ladder");
  cmd->add_option("--plant", a->plant,
                  "what the window's work runs on: sim (simulated GPU) or cuda (the real GPU, measured with NVML; "
                  "CUDA builds)")->capture_default_str();
  cmd->add_option("--sim-params", a->sim_params, "simulated GPU parameters (JSON)");
  cmd->add_option("--sim-streams", a->streams, "concurrent streams each window stands for")->capture_default_str();
  cmd->add_option("--step-period-s", a->period_s, "seconds between steps (arrival cadence; default 0.02 sim, 1 cuda)");
  cmd->add_option("--idle-s", a->idle_s, "--plant cuda: seconds of idle power measured before any work")
      ->capture_default_str();
  cmd->add_option("--ambient-c", a->ambient_c, "simulated ambient temperature (°C)");
  cmd->add_flag("--ttt", a->ttt, "adapt the model online (test-time training)");
  cmd->add_option("--ttt-groups", a->groups, "parameters to adapt: router, norms, lora, all, top=N")
      ->capture_default_str();
  cmd->add_option("--lora-rank", a->lora_rank, "rank of the per-expert LoRA adapters (0: none)")->capture_default_str();
  cmd->add_option("--ttt-optimizer", a->optimizer, "sgd or adamw")->capture_default_str();
  cmd->add_option("--ttt-lr", a->lr, "adaptation learning rate")->capture_default_str();
  cmd->add_option("--ttt-lr-router", a->lr_router, "multiplier of --ttt-lr for the router")->capture_default_str();
  cmd->add_option("--ttt-lr-norms", a->lr_norms, "multiplier of --ttt-lr for the RMSNorm gains")->capture_default_str();
  cmd->add_option("--ttt-lr-lora", a->lr_lora, "multiplier of --ttt-lr for the LoRA factors")->capture_default_str();
  cmd->add_option("--ttt-lr-decay", a->lr_decay,
                  "lr of step t = lr·max(min-ratio, (1 + t/N)^-1/2), t counted from the last reset (0: constant)")
      ->capture_default_str();
  cmd->add_option("--ttt-lr-min-ratio", a->lr_min_ratio, "floor of --ttt-lr-decay as a share of --ttt-lr")
      ->capture_default_str();
  cmd->add_option("--ttt-beta1", a->beta1, "adamw beta1")->capture_default_str();
  cmd->add_option("--ttt-beta2", a->beta2, "adamw beta2")->capture_default_str();
  cmd->add_option("--ttt-clip", a->clip, "clip the gradient's L2 norm over the trainable elements to this (0: off)")
      ->capture_default_str();
  cmd->add_option("--lora-seed", a->lora_seed, "seed of the fresh LoRA A factors")->capture_default_str();
  cmd->add_option("--lora-scale", a->lora_scale, "scale of the LoRA adapters' output (B·A·x·scale)")
      ->capture_default_str();
  cmd->add_option("--ttt-steps", a->steps, "optimizer steps per adapted window")->capture_default_str();
  cmd->add_option("--ttt-replay", a->replay,
                  "windows per adaptation batch: the window just scored plus the last N-1 revealed ones (1: alone)")
      ->capture_default_str();
  cmd->add_option("--ttt-nll", a->w_nll, "weight of the next-token loss on revealed tokens")->capture_default_str();
  cmd->add_option("--ttt-entropy", a->w_entropy, "weight of the gated next-token entropy (TENT/EATA)")
      ->capture_default_str();
  cmd->add_option("--ttt-energy", a->w_energy, "weight of the expected expert energy")->capture_default_str();
  cmd->add_option("--ttt-entropy-gate", a->entropy_gate,
                  "EATA gate: tokens with entropy above this (nats) are left out (default 0.4·ln V; huge = no gating)");
  cmd->add_option("--ttt-router-entropy", a->w_router_entropy, "weight of the router entropy")->capture_default_str();
  cmd->add_option("--ttt-lb", a->w_lb, "weight of the load-balancing loss")->capture_default_str();
  cmd->add_option("--ttt-anchor", a->w_anchor, "weight of the L2 anchor to the source weights")->capture_default_str();
  cmd->add_option("--ttt-trigger", a->triggers, "always, every, drift, power, thermal, complexity, adaptive (any-of)")
      ->capture_default_str();
  cmd->add_option("--ttt-every", a->every, "the 'every' trigger's interval in windows");
  cmd->add_option("--ttt-power-above", a->power_above, "the 'power' trigger's threshold (W)");
  cmd->add_option("--ttt-complexity", a->complexity, "the 'complexity' trigger's factor over the loss EMA (≥ 1)");
  cmd->add_option("--ttt-entropy-floor", a->entropy_floor, "reset when the mean next-token entropy falls below (nats)");
  cmd->add_option("--ttt-max-expert-share", a->max_expert_share, "reset when one expert takes more than this share");
  cmd->add_option("--ttt-loss-margin", a->loss_margin, "reset when the loss exceeds (1+m)× its unadapted EMA");
  cmd->add_option("--ttt-source-check", a->source_check,
                  "every N adapted windows also score the window with the source weights; reset when worse (0: off)")
      ->capture_default_str();
  cmd->add_option("--ttt-source-margin", a->source_margin,
                  "reset when the adapted loss exceeds the source's by more than this share (running comparison)")
      ->capture_default_str();
  cmd->add_option("--ttt-backoff", a->backoff,
                  "windows without adaptation after a worse-than-source reset (doubles per consecutive failure)")
      ->capture_default_str();
  cmd->add_option("--ttt-source-probation", a->source_probation,
                  "report the source weights' scores until the adapted ones beat them (start, after each failure)")
      ->capture_default_str();
  cmd->add_flag("--ttt-teacher", a->teacher, "keep an EMA teacher");
  cmd->add_flag("--ttt-episodic", a->episodic, "reset to the source weights after every adapted window");
  cmd->add_flag("--ttt-reset-on-drift", a->reset_on_drift, "reset to the source weights on a drift alarm");
  cmd->callback([a] { run_run(*a); });
}

}  // namespace wattmoe::cli
