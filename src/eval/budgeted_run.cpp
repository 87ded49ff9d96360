#include "eval/budgeted_run.h"

#include "eval/eval_job.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "adapt/router_objectives.h"
#include "control/controller.h"
#include "core/error.h"
#include "core/log.h"
#include "core/stop_signal.h"
#include "core/timer.h"
#include "energy/sim_params.h"
#include "eval/budget_verdict.h"
#include "eval/run_report.h"
#include "io/files.h"
#include "ops/quant.h"
#include "plant/plant.h"

namespace wattmoe {

AdapterConfig TttOptions::run_adapter_defaults() {
  AdapterConfig c;
  c.source_guard.check_every = 4;  // a run compares θ with θ₀ every 4 adapted windows (0 turns it off)
  return c;
}

std::vector<std::pair<int64_t, double>> parse_budget_schedule(const std::string& s) {
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

TriggerConfig parse_triggers(const TttOptions& a) {
  TriggerConfig t;
  std::stringstream ss(a.triggers);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "always") t.always = true;
    else if (item == "every") t.every = a.every;
    else if (item == "drift") t.on_drift = true;
    else if (item == "power") t.power_above_w = a.power_above_w;
    else if (item == "thermal") t.clock_event_mask = 0x20 | 0x40 | 0x8, t.thermal_margin_below_c = 5;
    else if (item == "complexity") t.complexity_factor = a.complexity;
    else if (item == "adaptive") t.adaptive = true;
    else fail("--ttt-trigger: unknown trigger '{}' (expected always, every, drift, power, thermal, complexity, adaptive)", item);
  }
  validate_triggers(t);
  return t;
}

AdapterConfig adapter_config(const TttOptions& a, const RoutingSetup& routing, double tokens_per_step) {
  AdapterConfig c = a.adapter;
  c.groups = parse_param_groups(a.groups);
  c.optim.kind = parse_adapt_optimizer(a.optimizer);
  if (a.entropy_gate > 0) c.objective.entropy_gate = a.entropy_gate;
  if (c.objective.energy > 0) c.expert_costs = EnergyCosts{routing.layer_costs, int64_t(tokens_per_step)};
  c.triggers = parse_triggers(a);
  c.drift.enabled = c.triggers.on_drift || c.reset_on_drift;
  const SourceGuardConfig& g = c.source_guard;
  WATTMOE_REQUIRE(g.check_every >= 0, "--ttt-source-check must be >= 1 window (0 = off), got {}", g.check_every);
  WATTMOE_REQUIRE(std::isfinite(g.margin) && g.margin >= 0,
                  "--ttt-source-margin must be a relative loss excess >= 0 (e.g. 0.002), got {}", g.margin);
  WATTMOE_REQUIRE(g.backoff >= 0, "--ttt-backoff must be >= 0 windows, got {}", g.backoff);
  c.source_guard.max_backoff = std::max(c.source_guard.max_backoff, g.backoff);
  return c;
}

namespace {

// --plant model: a step's work is the model itself on the window just scored, for the step's streams (streams ×
// batch_scale windows, in forwards of up to kBatch windows), each stream the window again (routed like it, as the
// simulated plant assumes), on the run's runner with its routing — so the controller's knob moves the measured work.
// The routing observer is off meanwhile: the expected expert energy counts the scored windows only.
struct ModelWork {
  static constexpr int64_t kBatch = 64;
  Runner* runner = nullptr;
  RoutingObserver observer;
  const int32_t* ids = nullptr;  // the window just scored: len inputs
  int len = 0;
  double streams = 1;
  std::vector<int32_t> batch;
  double operator()(double scale) {
    WATTMOE_CHECK(runner && ids && len > 0, "--plant model: no window to run");
    runner->set_routing_observer(nullptr);
    int64_t left = std::max<int64_t>(1, std::llround(streams * scale)), tokens = 0;
    while (left > 0) {
      const int64_t B = std::min(left, kBatch);
      batch.resize(size_t(B * len));
      for (int64_t b = 0; b < B; ++b) std::copy(ids, ids + len, batch.begin() + b * len);
      runner->forward_inference(batch.data(), int(B), len);
      tokens += B * len, left -= B;
    }
    runner->set_routing_observer(observer);
    return double(tokens);
  }
};

PlantOptions plant_options(const RunConfig& a, const ModelConfig& m) {
  const RunPlantOptions& p = a.plant;
  PlantOptions po;
  po.name = p.name;
  po.sim = p.sim_params.empty() ? SimGpuParams{} : load_sim_params(p.sim_params);
  if (std::isfinite(p.ambient_c)) po.sim.ambient_c = p.ambient_c;
  PlantShape& shape = po.shape;
  shape.streams = p.streams, shape.period_s = std::isnan(p.period_s) ? default_step_period(p.name) : p.period_s;
  set_plant_expert_shape(shape, a.routing.expert_shape, m.num_experts,  // the shape validated by make_routing
                         ops::expert_precision_bytes(a.runner.expert_precision));
  WATTMOE_REQUIRE(p.name != "cuda" || shape.expert.weight_bytes == 2,
                  "--plant cuda replays bf16 experts; with --expert-precision {} measure the model itself (--plant "
                  "model)", a.runner.expert_precision);
  po.num_layers = m.num_layers, po.num_experts = m.num_experts, po.window_tokens = a.stream.seq;
  po.idle_s = p.idle_s;
  return po;
}

// The least the plant can draw (W, or J/token with `energy`) for a window of the run: the ladder's cheapest rung —
// top-1 routing with every token of the window on one expert per layer, at whichever batch share the ladder may use
// draws least (the smallest for power; for energy per token usually the whole batch, as idle power is shared by
// fewer tokens in a smaller one) — on a fresh simulated GPU (at ambient temperature: it leaks least), so no budget
// below it can be held. A measured plant's floor is its idle power, known once it measured it (none for an energy
// budget). NaN when unknown.
double plant_floor(const PlantOptions& po, const Plant& plant, const ModelConfig& m, int seq,
                   const std::vector<double>& batch_scales, bool energy) {
  if (po.name != "sim") {
    const Json d = plant.describe();
    return !energy && d.contains("idle_w") && d["idle_w"].is_number() ? d["idle_w"].get<double>() : NAN;
  }
  std::vector<std::vector<int64_t>> counts(size_t(m.num_layers));
  for (int l = 0; l < m.num_layers; ++l)
    if (m.is_moe_layer(l)) counts[size_t(l)].assign(size_t(m.num_experts), 0), counts[size_t(l)][0] = seq;
  double floor = INFINITY;
  for (const double scale : batch_scales) {
    const PlantStep st = make_plant(po)->step(counts, seq, scale);
    floor = std::min(floor, energy ? st.joules_per_token() : st.power_w());
  }
  return floor;
}

// Refuses (or, with --allow-infeasible, warns about) a target below the plant's floor.
void check_feasible(const BudgetOptions& b, const std::vector<std::pair<int64_t, double>>& schedule, double floor,
                    const std::string& plant) {
  if (!std::isfinite(floor)) return;
  const bool energy = b.energy_j_per_token > 0;
  double lowest = energy ? b.energy_j_per_token : b.power_w;
  for (const auto& [w, t] : schedule) lowest = std::min(lowest, t);
  if (lowest >= floor) return;
  const std::string flag = energy ? "--energy-budget-j-per-token" : "--power-budget-w", unit = energy ? "J/token" : "W";
  const std::string msg = fmt::format(
      "{} {:.4g} {} cannot be held: the {} plant draws at least {:.4g} {} at the cheapest rung ({}); give a budget "
      "above that, or --allow-infeasible to run anyway",
      lowest == (energy ? b.energy_j_per_token : b.power_w) ? flag : "--budget-schedule target", lowest, unit, plant,
      floor, unit,
      plant == "sim" ? std::string("top-1 routing on one expert per layer")
                     : std::string("its measured idle power"));
  WATTMOE_REQUIRE(b.allow_infeasible, "{}", msg);
  log_warn("run: {}", msg);
}

}  // namespace

void check_run_config(const RunConfig& a) {
  const BudgetOptions& b = a.budget;
  check_budget_options(b, a.runner.expert_precision);
  WATTMOE_REQUIRE(b.ladder_tier.empty() || b.active(), "--ladder-tier needs a budget (--power-budget-w or "
                  "--energy-budget-j-per-token): the tier is a level of the budget's ladder");
  // On the GPU the fp8/int8 codes are read by the fused decode kernels only (forwards of at most 8 tokens); run's
  // windows take the prefill path on bf16(code · scale), where a measured plant would see the tier save nothing.
  WATTMOE_REQUIRE(b.ladder_tier.empty() || a.plant.name == "sim",
                  "--ladder-tier with --plant {}: on the GPU the cheaper experts are read only by the decode kernels "
                  "(at most 8 tokens a forward), and run's windows take the prefill path, where the tier saves "
                  "nothing to measure; use it with the simulated plant (--plant sim)", a.plant.name);
  check_runner_options(a.runner);  // a GPU-less machine or CPU-only build fails here
  check_plant(a.plant.name);  // a CPU-only build or machine fails here for --plant cuda or model
  WATTMOE_REQUIRE(a.plant.name != "model" || a.runner.device == "cuda",
                  "--plant model measures the model itself on the GPU: it needs --device cuda");
  const double period_s = std::isnan(a.plant.period_s) ? default_step_period(a.plant.name) : a.plant.period_s;
  // Bounded above too: the simulated GPU refuses times beyond its range, and a real plant sleeps the period.
  WATTMOE_REQUIRE(a.plant.streams >= 1 && a.plant.streams <= RunPlantOptions::kMaxStreams,
                  "--sim-streams {:g}: expected a number of streams in [1, {:g}]", a.plant.streams, RunPlantOptions::kMaxStreams);
  WATTMOE_REQUIRE(period_s > 0 && period_s <= RunPlantOptions::kMaxStepPeriodS, "--step-period-s {:g}: expected seconds in (0, {:g}]",
                  period_s, RunPlantOptions::kMaxStepPeriodS);
  WATTMOE_REQUIRE(a.plant.idle_s >= 0 && a.plant.idle_s <= 600, "--idle-s {}: expected 0 to 600 s", a.plant.idle_s);
  WATTMOE_REQUIRE(std::isnan(a.plant.ambient_c) || (a.plant.ambient_c > -273.15 && a.plant.ambient_c < 1000),
                  "--ambient-c {}: expected a temperature in °C above absolute zero (-273.15) and below 1000",
                  a.plant.ambient_c);
  WATTMOE_REQUIRE(b.active() || b.schedule.empty(), "--budget-schedule needs --power-budget-w or --energy-budget-j-per-token");
  // The controller's knobs replace the base knobs every window; pruning's per-layer masks would pin them.
  WATTMOE_REQUIRE(!b.active() || a.routing.prune_least_used == 0,
                  "--prune-least-used {} with a budget: static pruning is a fixed routing, the controller moves the "
                  "knobs (drop the budget, or prune with --mask)", a.routing.prune_least_used);
  validate_stream_options(a.stream);
}

Json run_budgeted(const RunConfig& a, const ModelWeights<float>& m, const TokenStream& stream,
                  const WindowRecordFn& on_record) {
  check_run_config(a);
  const bool budget = a.budget.active();
  const double tokens_per_step = double(a.stream.seq) * a.plant.streams;
  RoutingSetup routing = make_routing(a.routing, m.config, tokens_per_step, a.runner.expert_precision);
  routing.tally_fixed_share = 1.0 / a.plant.streams;
  const auto schedule = parse_budget_schedule(a.budget.schedule);

  std::unique_ptr<Controller> ctl;
  ControlDecision decision;
  auto tally = std::make_shared<RoutingEnergyTally>();
  StreamControl control;
  if (budget) {
    ctl = std::make_unique<Controller>(budget_controller_config(a.budget, a.plant.name, m.config, routing, a.stream.seq));
    decision = ctl->initial();
    control.routing = decision_spec(decision, routing);
  } else {
    control.routing = routing.spec();
  }

  // The model: with --ttt inside the adapter, else a runner on the device asked for.
  const RunnerOptions& where = a.runner;
  std::unique_ptr<TestTimeAdapter> adapter;
  std::unique_ptr<Runner> fixed;
  if (a.ttt.enabled) {
    adapter = std::make_unique<TestTimeAdapter>(m.config, m.params.data(),
                                                adapter_config(a.ttt, routing, tokens_per_step), runner_factory(where));
  } else {
    fixed = make_runner(m.config, where);
    fixed->set_params(m.params.data());
  }
  Runner& model = adapter ? adapter->runner() : *fixed;
  // The experts' full-precision weights in the runner's layout (the adapter's adds LoRA tensors): a tier switch's
  // source.
  const float* full_weights = adapter ? adapter->source().data() : m.params.data();
  model.set_routing_observer(routing.observer(tally));
  auto work = std::make_shared<ModelWork>();
  work->runner = &model, work->observer = routing.observer(tally), work->streams = a.plant.streams;
  PlantOptions po = plant_options(a, m.config);
  if (a.plant.name == "model") po.work = [work](double scale) { return (*work)(scale); };
  const std::unique_ptr<Plant> plant = make_plant(po);
  const std::string P = plant->prefix();  // "sim" or "measured": the JSONL keys
  const bool energy_budget = a.budget.energy_j_per_token > 0;
  double floor = NAN;
  if (ctl) {
    const LadderConfig& lc = ctl->config().ladder;
    std::vector<double> scales{1.0};  // the batch shares the ladder may use
    if (lc.enabled) scales.insert(scales.end(), lc.batch_scales.begin(), lc.batch_scales.end());
    PlantOptions cheapest = po;  // the ladder's cheapest levels run the experts at its tier, where it has one
    if (!lc.expert_tier.empty()) cheapest.shape.expert.weight_bytes = ops::expert_precision_bytes(lc.expert_tier);
    floor = plant_floor(cheapest, *plant, m.config, a.stream.seq, scales, energy_budget);
    check_feasible(a.budget, schedule, floor, a.plant.name);
  }
  std::vector<BudgetWindow> budget_windows;  // the full windows, for the verdict (eval/budget_verdict.h)

  std::ofstream log;
  if (!a.log.empty()) {
    log.open(output_path(a.log));
    WATTMOE_REQUIRE(log.good(), "--log {}: cannot open for writing", a.log);
  }
  const StreamOptions& opt = a.stream;
  double sim_j = 0, sim_s = 0, adapt_j = 0, sim_tokens = 0, expert_j_prev = 0, max_temp = -1e9;
  int64_t overrun_windows = 0;
  size_t next_target = 0;
  int64_t throttled_windows = 0, windows_total = 0;
  const int64_t n_tok = opt.max_tokens > 0 ? std::min<int64_t>(int64_t(stream.tokens.size()), opt.max_tokens + 1)
                                         : int64_t(stream.tokens.size());
  const int64_t n_windows = (n_tok - 2) / opt.seq + 1;
  Timer progress;
  double last_line_s = -1e9, nats_sum = 0;
  int64_t tokens_sum = 0;
  const double bytes_per_token = double(stream.bytes) / double(std::max<size_t>(1, stream.tokens.size()));
  const StopOnSignal stop;  // SIGINT/SIGTERM: this window completes (its log line too), then the summary
  std::string plant_fault;  // a plant that fails (a sensor dying mid-run) ends the run after the windows it measured
  std::string tier_now;     // the ladder's expert tier in force ("": the run's own)
  const auto tier_name = [&](const std::string& t) { return t.empty() ? a.runner.expert_precision : t; };
  double tier_switch_s = 0;  // host time spent re-quantising between windows (outside every plant step)
  int64_t tier_switches = 0;
  auto on_window = [&](const WindowInfo& w, const WindowOutcome& r, StreamControl& next) {
    work->ids = stream.tokens.data() + w.start, work->len = w.len;
    PlantStep st;
    if (adapter && plant->prices_adaptation())
      plant->charge_adaptation(r.counts, double(r.tokens), r.extra_forwards, r.backwards);
    try {
      st = plant->step(r.counts, r.tokens, decision.batch_scale);
    } catch (const Error& e) {
      plant_fault = e.what();
      log_warn("run: stopping after window {}: {}", w.index, plant_fault);
      next.stop = true;
      return;
    }
    const Sample& sample = st.sample;
    sim_j += st.joules, sim_s += st.seconds, adapt_j += st.adapt_joules, sim_tokens += st.tokens, overrun_windows += st.overrun;
    max_temp = std::max(max_temp, sample.gpu_temp_c);
    const uint64_t reasons = sample.clock_event_reasons.value_or(0);
    if (reasons & (0x8 | 0x20 | 0x40)) ++throttled_windows;
    ++windows_total;
    const double expert_j = tally->total_joules() - expert_j_prev;
    expert_j_prev = tally->total_joules();
    bool consumer_stop = false;
    if (log.is_open() || on_record) {
      Json j{{"window", w.index}, {"start", w.start}, {"tokens", r.tokens}, {"nats", r.nats},
             {"bits_per_token", r.nats_per_token() / std::log(2.0)}, {"entropy", r.entropy},
             {"experts_per_token", r.experts_per_token}, {"expert_counts", expert_counts_json(r.counts)},
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
                            {"expert_tier", tier_name(decision.expert_tier)},
                            {"thermal_active", decision.thermal_active}, {"target", ctl->budget().config().target},
                            {"reason", decision.reason}};
      if (log.is_open()) log << j.dump() << '\n';
      if (on_record) consumer_stop = !on_record(j);
    }
    next.sensor = sample;
    next.stop = stop.requested() || consumer_stop;
    nats_sum += r.nats, tokens_sum += r.tokens;
    // The live line (stderr): the first window, then at most one a second, and the last.
    if (w.index == 0 || w.index + 1 == n_windows || progress.seconds() - last_line_s >= 1.0) {
      last_line_s = progress.seconds();
      const double rate = double(w.index + 1) / std::max(progress.seconds(), 1e-9);
      std::string power = fmt::format("{:.1f} W", st.power_w());
      if (ctl) {
        const double target = ctl->budget().config().target, y = energy_budget ? st.joules_per_token() : st.power_w();
        power = fmt::format("{} (target {:.4g} {}, {:+.1f}%)",
                            energy_budget ? fmt::format("{:.4g} J/token", y) : power, target,
                            energy_budget ? "J/token" : "W", 100 * (y - target) / target);
      }
      std::string rung;
      if (ctl && decision.rung > 0)
        rung = decision.batch_scale < 1 ? fmt::format(" (rung {}, batch x{:.2f})", decision.rung, decision.batch_scale)
                                        : fmt::format(" (rung {})", decision.rung);
      if (ctl && !decision.expert_tier.empty()) rung += fmt::format(" [{} experts]", decision.expert_tier);
      log_info("run: window {}/{}  {} {}  {}  {:.2f} experts/token  bits/byte {:.4f}  ETA {:.0f} s", w.index + 1,
               n_windows, P, power,
               ctl ? policy_text(decision.policy, decision.knobs, m.config.top_k) + rung : routing.policy->name(),
               r.experts_per_token, nats_sum / std::log(2.0) / std::max(1.0, double(tokens_sum) * bytes_per_token),
               double(n_windows - w.index - 1) / rate);
    }
    if (ctl) {
      if (w.len == opt.seq)
        budget_windows.push_back({st.joules, st.seconds, st.tokens, ctl->budget().config().target});
      while (next_target < schedule.size() && schedule[next_target].first <= w.index + 1)
        ctl->set_target(schedule[next_target++].second);
      ControlInput in;
      in.step = w.index + 1, in.dt_s = st.seconds, in.power_w = st.power_w();
      in.joules_per_token = st.joules_per_token(), in.sample = sample;
      decision = ctl->update(in);
      next.routing = decision_spec(decision, routing);
      if (decision.expert_tier != tier_now) {  // the ladder entered or left its tier level: re-quantise the experts
        const std::string to = tier_name(decision.expert_tier);
        Timer t;
        model.set_expert_precision(ops::parse_expert_precision(to), full_weights);
        plant->set_expert_weight_bytes(ops::expert_precision_bytes(to));
        tier_now = decision.expert_tier, tier_switch_s += t.seconds(), ++tier_switches;
        log_info("run: window {}: routed experts now {} (switched in {:.3f} s)", w.index + 1, to, t.seconds());
      }
    }
  };
  const StreamResult res = adapter ? run_stream(*adapter, stream, opt, control, on_window)
                                   : run_stream(*fixed, stream, opt, control, on_window);
  const std::string kernels = model.info().moe_kernels;  // what ran the MoE layers
  if (log.is_open()) {
    log.close();
    WATTMOE_REQUIRE(log.good(), "--log {}: write failed", a.log);
  }

  Json s{{"schema", kRunSchema}, {"model", a.model}, {"data", a.data}, {"seq", opt.seq}, {"windows", res.windows}, {"tokens", res.tokens},
         {"bytes", res.bytes}, {"device", a.runner.device}, {"precision", a.runner.precision},
         {"moe_kernels", kernels}, {"expert_precision", a.runner.expert_precision},
         {"bits_per_byte", res.bits_per_byte()},
         {"nats_per_token", res.nats_per_token()},
         {"experts_per_token", res.experts_per_token}, {"expert_j_per_token", tally->joules_per_token()},
         {"routing", routing.describe()}, {"infer_seconds", res.infer_seconds}, {"adapt_seconds", res.adapt_seconds},
         {"adapt_infer_ratio", res.adapt_infer_ratio()}, {"adapted_windows", res.adapted_windows},
         {"resets", res.resets}, {"reset_reasons", res.reset_reasons}, {"drift_alarms", res.drift_alarms},
         {"source_checks", res.source_checks}, {"suspended_windows", res.suspended_windows},
         {"probation_windows", res.probation_windows}, {"expert_counts", expert_counts_json(res.counts)},
         {"expert_counts_first", expert_counts_json(res.counts_first)}, {"expert_counts_last", expert_counts_json(res.counts_last)}};
  Json pj = plant->describe();
  pj.update(Json{{"joules", sim_j}, {"seconds", sim_s}, {"mean_power_w", sim_s > 0 ? sim_j / sim_s : 0},
                 {"joules_per_token", sim_tokens > 0 ? sim_j / sim_tokens : 0}, {"max_temp_c", max_temp},
                 {"throttled_windows", throttled_windows}, {"windows", windows_total},
                 {"overrun_windows", overrun_windows}});
  // The adaptation's joules, inside "joules", where the plant prices them (the simulated GPU).
  if (plant->prices_adaptation()) pj["adapt_joules"] = adapt_j;
  // The same keys for every plant: "plant" and "measured" (false: the simulated GPU).
  pj["measured"] = P != "sim";
  s["plant"] = pj;
  s["measured"] = P != "sim";
  if (stop.requested()) s["interrupted"] = stop_signal_name(stop_signal_received());
  if (!plant_fault.empty()) s["stopped"] = plant_fault;
  if (ctl) {
    const BudgetVerdict verdict = judge_budget(budget_windows, energy_budget);
    s["budget"] = verdict.json();
    s["budget"]["floor"] = std::isfinite(floor) ? Json(floor) : Json();
  }
  if (ctl)
    s["control"] = Json{{"measure", measure_name(ctl->config().budget.measure)},
                        {"final_target", ctl->budget().config().target}, {"policy", a.budget.control_policy},
                        {"gains", a.budget.control_gains}, {"deadband", a.budget.control_deadband},
                        {"ladder_dwell", a.budget.ladder_dwell},
                        {"ladder_tier", a.budget.ladder_tier}, {"tier_switches", tier_switches},
                        {"tier_switch_s", tier_switch_s},
                        {"final_kp", ctl->budget().config().kp},
                        {"final_ki", ctl->budget().config().ki}};
  if (adapter)
  {
    const TttOptions& t = a.ttt;
    const AdaptOptimConfig& o = t.adapter.optim;
    s["ttt"] = Json{{"groups", t.groups}, {"lora_rank", t.adapter.lora_rank}, {"lr", o.lr}, {"optimizer", t.optimizer},
                    {"triggers", t.triggers}, {"steps", t.adapter.steps_per_window},
                    {"replay", t.adapter.replay}, {"lr_router", o.lr_router}, {"lr_norms", o.lr_norms},
                    {"lr_lora", o.lr_lora}, {"lr_decay", o.lr_decay_steps}, {"lr_min_ratio", o.lr_min_ratio},
                    {"beta1", o.beta1}, {"beta2", o.beta2}, {"lora_scale", double(t.adapter.lora_scale)},
                    {"clip", o.clip}};
    if (t.adapter.time_phases) {
      const AdaptPhases& p = res.adapt_phases;
      s["ttt"]["adapt_phases_s"] = Json{{"weights", p.weights}, {"forward", p.forward}, {"loss", p.loss},
                                        {"backward", p.backward}, {"grads", p.grads}, {"optimizer", p.optimizer},
                                        {"guard", p.guard}, {"other", p.other}};
    }
  }
  s["verdict"] = run_verdict(s);
  return s;
}

}  // namespace wattmoe
