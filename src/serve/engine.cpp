#include "serve/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <fstream>
#include <new>

#include "adapt/anchor.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "eval/sample.h"
#include "serve/text_stream.h"

namespace wattmoe {

// One running sequence (scheduler thread only).
struct Engine::Seq {
  std::shared_ptr<Job> job;
  int slot = -1;
  Rng rng;
  std::vector<int32_t> pending;  // tokens the next step runs: the prompt, then the last sampled token
  std::vector<int32_t> answered;  // with TTT: the prompt and the completion so far (what adaptation may use, later)
  int64_t length = 0;            // tokens in its KV cache
  TextStream text;
  JobUsage usage;
  double arrived = 0;
  bool any_text = false;
  std::shared_ptr<const RoutingSpec> own;     // the request's own routing
  std::shared_ptr<const RoutingSpec> capped;  // the server's routing under the request's k_max cap
  const RoutingSpec* capped_from = nullptr;   // the server spec `capped` was made from
  bool in_a_step = false;
  size_t last_bill = 0;  // the last step window it ran in
  std::string reason, error;
  Seq(std::shared_ptr<Job> j, const Tokenizer& tok)
      : job(std::move(j)), rng(job->params().seed), pending(job->params().prompt), text(tok, job->params().stop) {}
};

// One step waiting for its energy.
struct Engine::Bill {
  size_t id = 0;
  double tokens = 0;
  int64_t pairs = 0, moe_token_layers = 0;
  std::vector<std::pair<Seq*, int64_t>> shares;  // each sequence and the tokens it ran in the step
  bool adaptation = false;  // a TTT step: billed to no request
};

// The budget and the server's routing (under mu_).
struct Engine::Control {
  BudgetOptions budget;
  RoutingOptions routing_options;
  RoutingSetup routing;
  std::unique_ptr<Controller> ctl;
  ControlDecision decision;
  std::shared_ptr<const RoutingSpec> spec;  // what sequences without routing of their own run with
  double period_s = 0.02;
};

const char* Engine::admit_name(Admit a) {
  switch (a) {
    case Admit::Ok: return "ok";
    case Admit::QueueFull: return "queue_full";
    case Admit::Memory: return "memory";
    case Admit::Draining: return "draining";
  }
  return "?";
}

void check_engine_config(const EngineConfig& c) {
  const EngineLimits& l = c.limits;
  WATTMOE_REQUIRE(l.max_batch >= 1 && l.max_batch <= 4096, "--max-batch {}: expected 1 to 4096 sequences", l.max_batch);
  WATTMOE_REQUIRE(l.max_queue >= 0 && l.max_queue <= 1 << 20, "--max-queue {}: expected 0 to 1048576 requests",
                  l.max_queue);
  WATTMOE_REQUIRE(l.context >= 0, "--context {}: expected >= 0 (0: the model's)", l.context);
  WATTMOE_REQUIRE(l.min_free_host_mb >= 0 && std::isfinite(l.min_free_host_mb),
                  "--min-free-host-mb must be >= 0, got {}", l.min_free_host_mb);
  WATTMOE_REQUIRE(l.min_step_s >= 0 && l.min_step_s <= 60, "--min-step-s {}: expected 0 to 60 seconds", l.min_step_s);
  WATTMOE_REQUIRE(l.ttt_max_share > 0 && l.ttt_max_share <= 1, "--ttt-max-share {}: expected a share in (0, 1]",
                  l.ttt_max_share);
  WATTMOE_REQUIRE(c.ttt.enabled || l.ttt_max_share == 1, "--ttt-max-share caps online adaptation: it needs --ttt");
  WATTMOE_REQUIRE(l.max_gpu_memory_fraction > 0 && l.max_gpu_memory_fraction <= 1,
                  "--max-gpu-memory-fraction must be in (0, 1], got {}", l.max_gpu_memory_fraction);
  check_budget_options(c.budget, c.runner.expert_precision);
  WATTMOE_REQUIRE(c.budget.schedule.empty(), "serve: --budget-schedule is for wattmoe run; change the budget live with "
                                             "PUT /v1/budget");
  check_runner_options(c.runner);
  check_serve_energy_options(c.energy);
  if (c.ttt.enabled) {  // the rest (ranges, groups against the model) when the adapter is made
    WATTMOE_REQUIRE(!c.ttt.adapter.time_phases,
                    "serve: --ttt-time-phases splits wattmoe run's summary; the server reports adaptation time in "
                    "/metrics (wattmoe_ttt_adaptation_seconds_total)");
    parse_triggers(c.ttt);
    parse_param_groups(c.ttt.groups);
    parse_adapt_optimizer(c.ttt.optimizer);
  }
  resolve_serve_plant(c.energy, c.runner.device);
}

namespace {

// MemAvailable of /proc/meminfo in bytes; NaN when it cannot be read (not Linux).
double meminfo_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return NAN;
}

// The server's routing with at most `cap` experts per token in every layer.
RoutingSpec cap_experts(const RoutingSpec& s, int cap, int model_k) {
  RoutingSpec c = s;
  auto apply = [&](PolicyKnobs& k) {
    k.k_max = std::min(resolved_k_max(k, model_k), cap);
    k.k_min = std::min(k.k_min, k.k_max);
  };
  apply(c.knobs);
  for (PolicyKnobs& k : c.layer_knobs) apply(k);
  return c;
}

}  // namespace

Engine::Engine(const EngineConfig& c, const ModelWeights<float>& m, std::shared_ptr<const Tokenizer> tok)
    : cfg_(c), model_(m.config), tok_(std::move(tok)) {
  check_engine_config(cfg_);
  context_ = cfg_.limits.context > 0 ? cfg_.limits.context : model_.max_position_embeddings;
  WATTMOE_REQUIRE(context_ >= 2 && context_ <= model_.max_position_embeddings,
                  "--context {}: expected 2 to the model's max_position_embeddings {}", context_,
                  model_.max_position_embeddings);
  for (int l = 0; l < model_.num_layers; ++l) moe_layers_ += model_.is_moe_layer(l) ? 1 : 0;
  const std::string plant = resolve_serve_plant(cfg_.energy, cfg_.runner.device);
  energy_ = std::make_unique<StepEnergy>(cfg_.energy, plant, model_, cfg_.routing.expert_shape,
                                         cfg_.runner.expert_precision);
  idle_carry_ = IdleCarry(cfg_.energy.bill_idle_s);
  ttt_share_ = AdaptationShare(cfg_.limits.ttt_max_share);

  control_ = std::make_unique<Control>();
  control_->period_s = std::isnan(cfg_.energy.control_period_s) ? default_step_period(plant)
                                                                 : cfg_.energy.control_period_s;
  control_->budget = cfg_.budget;
  control_->routing_options = cfg_.routing;
  control_->routing = make_routing(cfg_.routing, model_, double(cfg_.limits.max_batch), cfg_.runner.expert_precision);
  admit_limit_ = control_admit_ = cfg_.limits.max_batch;
  if (cfg_.budget.active()) {
    control_->ctl = std::make_unique<Controller>(budget_controller_config(cfg_.budget, plant, model_, control_->routing,
                                                                                 cfg_.limits.max_batch));
    control_->decision = control_->ctl->initial();
    control_->spec = std::make_shared<RoutingSpec>(decision_spec(control_->decision, control_->routing));
  } else {
    control_->spec = std::make_shared<RoutingSpec>(control_->routing.spec());
  }

  stats_.model = cfg_.model_id, stats_.source = energy_->source();
  stats_.max_batch = cfg_.limits.max_batch, stats_.max_queue = cfg_.limits.max_queue;
  stats_.ttt = cfg_.ttt.enabled;
  stats_.expert_tier = cfg_.runner.expert_precision;
  stats_.expert_tokens.assign(size_t(model_.num_layers), {});
  for (int l = 0; l < model_.num_layers; ++l)
    if (model_.is_moe_layer(l)) stats_.expert_tokens[size_t(l)].assign(size_t(model_.num_experts), 0);

  // The runner is made, filled and given its slots on the scheduler thread, which alone uses it (a CUDA runner's
  // device and stream then belong to that thread).
  std::exception_ptr init_error;
  bool ready = false;
  thread_ = std::thread([&, weights = &m] {
    bool ok = true;  // a copy: init_error and ready belong to the constructor, which returns once ready is set
    try {
      if (cfg_.ttt.enabled) {  // the adapter owns the runner served with (weights θ₀ to start)
        adapter_ = std::make_unique<TestTimeAdapter>(
            model_, weights->params.data(),
            adapter_config(cfg_.ttt, control_->routing, double(cfg_.limits.max_batch)), runner_factory(cfg_.runner));
        net_ = &adapter_->runner();
      } else {
        runner_ = make_runner(model_, cfg_.runner);
        runner_->set_params(weights->params.data());
        net_ = runner_.get();
        if (!cfg_.budget.ladder_tier.empty()) full_weights_ = weights->params;
      }
      try {
        net_->reset_slots(cfg_.limits.max_batch, context_);
      } catch (const std::bad_alloc&) {
        fail("--max-batch {} KV-cache slots of {} positions do not fit in memory: lower --max-batch or --context",
             cfg_.limits.max_batch, context_);
      }
      net_->set_routing(*control_->spec);
      applied_ = control_->spec.get(), applied_hold_ = control_->spec;
      for (int s = cfg_.limits.max_batch - 1; s >= 0; --s) free_slots_.push_back(s);
    } catch (...) {
      init_error = std::current_exception();
      ok = false;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      ready = true;
    }
    cv_.notify_all();
    if (ok) loop();
  });
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return ready; });
  }
  if (init_error) {
    thread_.join();
    std::rethrow_exception(init_error);
  }
  log_info("serve: {} on {} ({}), {} KV-cache slots of {} positions, queue {}, energy {} ({})", cfg_.model_id,
           net_->info().device, net_->info().moe_kernels, cfg_.limits.max_batch, context_, cfg_.limits.max_queue,
           energy_->source(), energy_->describe().value("label", ""));
}

Engine::~Engine() {
  if (thread_.joinable()) stop();
}

RoutingSpec Engine::request_routing(const RoutingOptions& o) const {
  try {
    return make_routing(o, model_, double(cfg_.limits.max_batch), cfg_.runner.expert_precision).spec();
  } catch (const Error& e) {
    fail("routing: {}", e.what());
  }
}

bool Engine::budget_active() const {
  std::lock_guard<std::mutex> lk(mu_);
  return control_->budget.active();
}

RoutingOptions Engine::routing_options() const {
  std::lock_guard<std::mutex> lk(mu_);
  return control_->routing_options;
}

MemoryLevel Engine::memory_level_locked() {
  const double avail = cfg_.host_available_bytes ? cfg_.host_available_bytes() : meminfo_available_bytes();
  stats_.host_available_bytes = avail;
  memory_judged_s_ = now_seconds();
  const EngineLimits& l = cfg_.limits;
  MemoryLevel level = MemoryLevel::None;
  std::string why;
  const auto at_least = [&](MemoryLevel x, std::string reason) {
    if (int(x) > int(level)) level = x, why = std::move(reason);
  };
  if (l.min_free_host_mb > 0 && std::isfinite(avail)) {
    const double mb = avail / 1048576.0;
    if (mb < l.min_free_host_mb)
      at_least(MemoryLevel::Full, fmt::format("host memory available {:.0f} MB < --min-free-host-mb {}", mb,
                                              l.min_free_host_mb));
    else if (mb < 2 * l.min_free_host_mb)
      at_least(MemoryLevel::Near, fmt::format("host memory available {:.0f} MB < 2 × --min-free-host-mb {}", mb,
                                              l.min_free_host_mb));
  }
  const Sample& s = stats_.sample;
  if (s.mem_used_bytes && s.mem_total_bytes && *s.mem_total_bytes > 0) {
    const double used = double(*s.mem_used_bytes) / double(*s.mem_total_bytes);
    if (used > l.max_gpu_memory_fraction)
      at_least(MemoryLevel::Full, fmt::format("GPU memory {:.1f}% used > --max-gpu-memory-fraction {}", 100.0 * used,
                                              l.max_gpu_memory_fraction));
    else if (used > l.max_gpu_memory_fraction - 0.05)
      at_least(MemoryLevel::Near, fmt::format("GPU memory {:.1f}% used > --max-gpu-memory-fraction {} - 0.05",
                                              100.0 * used, l.max_gpu_memory_fraction));
  }
  if (level != memory_) {
    if (level == MemoryLevel::Full) log_warn("serve: memory pressure, refusing new requests (429): {}", why);
    else if (level == MemoryLevel::Near)
      log_warn("serve: memory near capacity, at most {} sequences run (the rest wait){}: {}",
               std::max(1, l.max_batch / 2), memory_ == MemoryLevel::Full ? "; accepting requests again" : "", why);
    else log_info("serve: memory pressure over, accepting requests again at the full batch");
    memory_ = level;
    stats_.memory_pressure = int(level);
    apply_admit_limit_locked();
  }
  return level;
}

void Engine::apply_admit_limit_locked() {
  const int cap = memory_ == MemoryLevel::None ? cfg_.limits.max_batch : std::max(1, cfg_.limits.max_batch / 2);
  admit_limit_ = std::min(control_admit_, cap);
}

Engine::Admit Engine::submit(const std::shared_ptr<Job>& job) {
  Admit a = Admit::Ok;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (draining_ || stop_) a = Admit::Draining;
    else if (int(queue_.size()) >= cfg_.limits.max_queue + std::max(0, admit_limit_ - running_count_))
      a = Admit::QueueFull;  // the queue holds max_queue requests beyond those the free slots take at the next step
    else if (memory_level_locked() == MemoryLevel::Full) a = Admit::Memory;
    if (a == Admit::Ok) queue_.emplace_back(job, now_seconds());
    else ++stats_.rejected[admit_name(a)];
    if (a == Admit::QueueFull) {  // said in the log at most every 5 s (the metric counts each one)
      ++overload_refused_;
      const double now = now_seconds();
      if (now - overload_logged_s_ >= 5) {
        log_warn("serve: overloaded: {} running, {} queued (--max-queue {}): {} new request(s) refused with 429 "
                 "since the last message", running_count_, queue_.size(), cfg_.limits.max_queue, overload_refused_);
        overload_logged_s_ = now, overload_refused_ = 0;
      }
    }
  }
  if (a == Admit::Ok) cv_.notify_all();
  return a;
}

void Engine::note_rejected(const std::string& reason) {
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.rejected[reason];
}

void Engine::drain() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    draining_ = true, stats_.draining = true;
  }
  cv_.notify_all();
}

bool Engine::wait_idle(double timeout_s) {
  std::unique_lock<std::mutex> lk(mu_);
  return cv_.wait_for(lk, std::chrono::duration<double>(timeout_s),
                      [&] { return queue_.empty() && running_count_ == 0 && awaiting_bills_ == 0; });
}

void Engine::cancel_all() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    draining_ = true, stats_.draining = true, cancel_all_ = true;
  }
  cv_.notify_all();
}

Json Engine::stop() {
  cancel_all();
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  const std::optional<WindowResult> outer = energy_->close();
  const ServeStats s = stats();
  Json j{{"schema", "wattmoe.serve/1"}, {"model", s.model}, {"energy_source", s.source}, {"requests", s.requests},
         {"rejected", s.rejected},
         {"prompt_tokens", s.prompt_tokens}, {"completion_tokens", s.completion_tokens}, {"steps", s.steps},
         {"step_seconds", s.step_seconds}, {"energy_j", s.energy_j}, {"billed_j", s.billed_j},
         {"energy", energy_->describe()}};
  j["meter_outer_window_j"] = outer ? Json(outer->joules) : Json(nullptr);
  j["meter_outer_window_s"] = outer ? Json(outer->seconds) : Json(nullptr);
  return j;
}

ServeStats Engine::stats() const {
  // A real GPU's sensor is sampled all the time, idle or not: /metrics shows its latest reading (power, counter,
  // temperature). The simulated GPU's clock moves only inside steps, so there it is the last step's sample.
  std::optional<Sample> now;
  if (energy_->plant() == "model") now = energy_->latest();
  std::lock_guard<std::mutex> lk(mu_);
  ServeStats s = stats_;
  if (now) s.sample = *now;
  s.running = running_count_, s.queued = int(queue_.size()), s.admit_limit = admit_limit_;
  s.slots_free = cfg_.limits.max_batch - running_count_;
  const Control& c = *control_;
  s.budget_active = c.budget.active();
  s.measure = c.budget.power_w > 0 ? "power" : c.budget.energy_j_per_token > 0 ? "joules_per_token" : "";
  s.target = c.budget.power_w > 0 ? c.budget.power_w : c.budget.energy_j_per_token > 0 ? c.budget.energy_j_per_token
                                                                                       : NAN;
  s.control_policy = c.budget.control_policy, s.routing_policy = c.spec->policy;
  if (c.ctl) {
    s.effort_u = c.decision.u, s.rung = c.decision.rung, s.batch_scale = c.decision.batch_scale;
    s.thermal_active = c.decision.thermal_active;
  }
  return s;
}

Json Engine::budget_json() const {
  std::lock_guard<std::mutex> lk(mu_);
  const Control& c = *control_;
  const BudgetOptions& b = c.budget;
  Json j{{"active", b.active()}, {"power_w", b.power_w > 0 ? Json(b.power_w) : Json(nullptr)},
         {"energy_j_per_token", b.energy_j_per_token > 0 ? Json(b.energy_j_per_token) : Json(nullptr)},
         {"control_policy", b.control_policy}, {"control_gains", b.control_gains},
         {"control_deadband", b.control_deadband}, {"ladder_dwell", b.ladder_dwell},
         {"thermal_guard", b.thermal_guard}, {"ladder", b.ladder},
         {"ladder_tier", b.ladder_tier.empty() ? Json(nullptr) : Json(b.ladder_tier)},
         {"control_period_s", c.period_s}, {"energy_source", energy_->source()},
         {"routing", c.routing.describe()}, {"admit_limit", admit_limit_}};
  if (c.ctl) {
    const ControlDecision& d = c.decision;
    j["decision"] = Json{{"policy", d.policy}, {"knobs", knobs_json(d.knobs)}, {"u", d.u}, {"floor", d.floor},
                         {"rung", d.rung}, {"batch_scale", d.batch_scale}, {"thermal_active", d.thermal_active},
                         {"expert_tier", d.expert_tier.empty() ? cfg_.runner.expert_precision : d.expert_tier},
                         {"measured", std::isfinite(d.measured) ? Json(d.measured) : Json(nullptr)},
                         {"kp", c.ctl->budget().config().kp}, {"ki", c.ctl->budget().config().ki},
                         {"reason", d.reason}};
  } else {
    j["decision"] = nullptr;
  }
  return j;
}

void Engine::set_budget(const BudgetUpdate& u) {
  BudgetOptions b;
  RoutingOptions ro;
  std::string plant = energy_->plant();
  {
    std::lock_guard<std::mutex> lk(mu_);
    b = control_->budget, ro = control_->routing_options;
  }
  auto check_target = [](const char* name, double v) {
    WATTMOE_REQUIRE(std::isfinite(v) && v >= 0, "{}: expected a number >= 0 (0 turns the budget off), got {}", name, v);
  };
  if (u.power_w) check_target("power_w", *u.power_w);
  if (u.energy_j_per_token) check_target("energy_j_per_token", *u.energy_j_per_token);
  WATTMOE_REQUIRE(!(u.power_w.value_or(0) > 0 && u.energy_j_per_token.value_or(0) > 0),
                  "power_w and energy_j_per_token are exclusive: give one budget");
  if (u.power_w) b.power_w = *u.power_w, b.energy_j_per_token = *u.power_w > 0 ? 0 : b.energy_j_per_token;
  if (u.energy_j_per_token) b.energy_j_per_token = *u.energy_j_per_token, b.power_w = *u.energy_j_per_token > 0 ? 0 : b.power_w;
  if (u.control_policy) b.control_policy = *u.control_policy;
  if (u.thermal_guard) b.thermal_guard = *u.thermal_guard;
  if (u.ladder) b.ladder = *u.ladder;
  if (u.routing) ro = *u.routing;
  // Everything built (and so validated) before anything changes.
  RoutingSetup routing;
  try {
    routing = make_routing(ro, model_, double(cfg_.limits.max_batch), cfg_.runner.expert_precision);
  } catch (const Error& e) {
    fail("routing: {}", e.what());
  }
  std::unique_ptr<Controller> ctl;
  ControllerConfig cc;
  if (b.active()) {
    try {
      cc = budget_controller_config(b, plant, model_, routing, cfg_.limits.max_batch);
    } catch (const Error& e) {
      fail("control_policy: {}", e.what());
    }
  }
  std::lock_guard<std::mutex> lk(mu_);
  Control& c = *control_;
  const BudgetOptions& was = c.budget;
  const bool same_loop = c.ctl && b.active() && !u.routing && (was.power_w > 0) == (b.power_w > 0) &&
                         was.control_policy == b.control_policy && was.thermal_guard == b.thermal_guard &&
                         was.ladder == b.ladder;
  c.routing = std::move(routing), c.routing_options = ro;
  if (same_loop) {
    c.ctl->set_target(b.power_w > 0 ? b.power_w : b.energy_j_per_token);  // keeps the loop's state: a step change
  } else if (b.active()) {
    c.ctl = std::make_unique<Controller>(cc);
    c.decision = c.ctl->initial();
  } else {
    c.ctl.reset();
    c.decision = ControlDecision{};
  }
  c.budget = b;
  c.spec = std::make_shared<RoutingSpec>(c.ctl ? decision_spec(c.decision, c.routing) : c.routing.spec());
  control_admit_ = c.ctl ? std::max(1, int(std::floor(cfg_.limits.max_batch * c.decision.batch_scale)))
                         : cfg_.limits.max_batch;
  apply_admit_limit_locked();
  log_info("serve: budget now {}", b.active() ? fmt::format("{} {} (control policy {})",
                                                            b.power_w > 0 ? b.power_w : b.energy_j_per_token,
                                                            b.power_w > 0 ? "W" : "J/token", b.control_policy)
                                              : std::string("off"));
}

std::shared_ptr<const RoutingSpec> Engine::spec_for(Seq& s, const std::shared_ptr<const RoutingSpec>& server) {
  if (s.own) return s.own;
  const int cap = s.job->params().k_max_cap;
  if (cap <= 0) return server;
  if (s.capped_from != server.get() || !s.capped) {
    s.capped = std::make_shared<RoutingSpec>(cap_experts(*server, cap, model_.top_k));
    s.capped_from = server.get();
  }
  return s.capped;
}

void Engine::admit_locked(std::vector<std::pair<std::shared_ptr<Job>, double>>& out) {
  while (!queue_.empty() &&
         ((running_count_ + int(out.size()) < admit_limit_ && out.size() < free_slots_.size()) || cancel_all_)) {
    auto [job, arrived] = queue_.front();
    queue_.pop_front();
    if (job->cancelled() || cancel_all_) {
      JobUsage u;
      u.prompt_tokens = int64_t(job->params().prompt.size());
      u.latency_s = now_seconds() - arrived;
      ++stats_.requests["cancelled"];
      job->finish("cancelled", u, cancel_all_ ? "the server is shutting down" : "");
      continue;
    }
    stats_.queue_wait.observe(now_seconds() - arrived);
    out.emplace_back(std::move(job), arrived);
  }
  running_count_ += int(out.size());
}

void Engine::loop() {
  for (;;) {
    std::vector<std::pair<std::shared_ptr<Job>, double>> admitted;
    bool cancel_running = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      const auto work = [&] {
        return stop_ || !running_.empty() || !billing_.empty() || !bills_.empty() ||
               (!ttt_queue_.empty() && memory_ != MemoryLevel::Full) ||
               (!queue_.empty() && (running_count_ < admit_limit_ || cancel_all_));
      };
      if (const auto until = idle_carry_.deadline()) cv_.wait_until(lk, *until, work);  // then the idle window ends
      else cv_.wait(lk, work);
      // The memory rung moves at step boundaries too (so it ends when pressure ends), judged at most every 50 ms
      // there: reading /proc/meminfo costs tens of microseconds, a decode step on a GPU a few milliseconds.
      if (now_seconds() - memory_judged_s_ >= 0.05) memory_level_locked();
      if (stop_ && queue_.empty() && running_.empty() && billing_.empty() && bills_.empty()) break;
      admit_locked(admitted);
      cancel_running = cancel_all_;
    }
    for (auto& [job, arrived] : admitted) {
      auto s = std::make_unique<Seq>(job, *tok_);
      s->slot = free_slots_.back();
      free_slots_.pop_back();
      net_->clear_slot(s->slot);
      s->arrived = arrived;
      s->usage.queue_s = now_seconds() - arrived;
      s->usage.prompt_tokens = int64_t(s->pending.size());
      if (job->params().routing) s->own = std::make_shared<RoutingSpec>(*job->params().routing);
      if (adapter_) s->answered = s->pending;
      running_.push_back(std::move(s));
    }
    // Sequences whose client went away (or all, when shutting down) leave at this step boundary.
    for (auto& s : running_)
      if (s->job->cancelled() || cancel_running)
        s->reason = "cancelled", s->error = cancel_running ? "the server is shutting down" : "";
    retire_finished();
    const bool stepped = !running_.empty();
    if (stepped) step();
    carry_window(stepped);
    resolve_bills();
    complete_ready_jobs();
    if (adapter_ && !ttt_queue_.empty() && ttt_share_.allow(!running_.empty(), now_seconds())) {
      bool memory_full = false;
      {
        std::lock_guard<std::mutex> lk(mu_);
        memory_full = memory_ == MemoryLevel::Full;
      }
      if (!memory_full) adapt_one(), carry_window(true);  // at capacity it waits (its activations are memory too)
    }
    if (running_.empty() && (!billing_.empty() || !bills_.empty())) {
      // Finished requests wait for their last step's energy (a real sensor's next sample): poll shortly.
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_for(lk, std::chrono::milliseconds(2));
    }
  }
}

// The next step's window opens as one ends (StepEnergy::carry_on), so the scheduler's work between steps is metered
// and billed with the next step (or the adaptation step that follows), and so is a gap with no request in flight up
// to bill_idle_s (clients turning around); the loop's wait ends at that deadline and the window is dropped then.
void Engine::carry_window(bool stepped) {
  if (idle_carry_.keep(stepped, !running_.empty(), IdleCarry::Clock::now())) energy_->carry_on();
  else energy_->drop_carried();
}

void Engine::retire_finished() {
  for (size_t i = 0; i < running_.size();) {
    Seq& s = *running_[i];
    if (s.reason.empty()) {
      ++i;
      continue;
    }
    free_slots_.push_back(s.slot);
    billing_.push_back(std::move(running_[i]));
    running_.erase(running_.begin() + std::ptrdiff_t(i));
    std::lock_guard<std::mutex> lk(mu_);
    --running_count_, ++awaiting_bills_;
  }
}

void Engine::apply_expert_tier(const std::string& tier) {
  if (tier == tier_now_) return;
  const std::string to = tier.empty() ? cfg_.runner.expert_precision : tier;
  tier_now_ = tier;  // tried once per decision: a switch that fails is not retried every step
  Timer t;
  try {
    net_->set_expert_precision(ops::parse_expert_precision(to),
                               adapter_ ? adapter_->source().data() : full_weights_.data());
  } catch (const std::exception& e) {  // the scheduler thread must not end: serve on, and say so
    log_warn("serve: the routed experts could not switch to {}: {}", to, e.what());
    return;
  }
  energy_->set_expert_precision(to);
  const double s = t.seconds();
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.tier_switches, stats_.tier_switch_seconds += s, stats_.expert_tier = to;
  }
  log_info("serve: routed experts now {} (switched in {:.3f} s)", to, s);
}

void Engine::step() {
  const int V = model_.vocab_size;
  std::shared_ptr<const RoutingSpec> server;
  std::string tier;
  {
    std::lock_guard<std::mutex> lk(mu_);
    server = control_->spec, tier = control_->decision.expert_tier;
  }
  std::vector<std::vector<int64_t>> counts(size_t(model_.num_layers));
  for (int l = 0; l < model_.num_layers; ++l)
    if (model_.is_moe_layer(l)) counts[size_t(l)].assign(size_t(model_.num_experts), 0);
  Bill bill;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  energy_->begin();
  Timer wall;
  apply_expert_tier(tier);  // inside the step: the switch's time and energy are the step's
  // What one sequence's forward gave: its next-token logits row and its (token, expert) pairs per layer; then its
  // next token, exactly as wattmoe generate draws it.
  auto advance = [&](Seq& s, int n, const float* last, const std::vector<std::vector<int64_t>>& pairs_of) {
    const GenParams& p = s.job->params();
    int64_t pairs = 0;
    for (size_t l = 0; l < pairs_of.size(); ++l)
      for (size_t e = 0; e < pairs_of[l].size(); ++e) counts[l][e] += pairs_of[l][e], pairs += pairs_of[l][e];
    s.usage.expert_pairs += pairs, s.usage.moe_token_layers += int64_t(n) * moe_layers_;
    bill.shares.emplace_back(&s, n);
    bill.tokens += n, bill.pairs += pairs, bill.moe_token_layers += int64_t(n) * moe_layers_;
    s.in_a_step = true;
    if (s.length == 0) prompt_tokens += n;
    s.length += n;
    int32_t next = sample_token(last, V, p.temperature, p.top_p, s.rng);
    if (next >= tok_->vocab_size()) next = 0;  // a byte model never emits these; guard larger model vocabularies
    if (tok_->eos_id() && next == *tok_->eos_id()) {
      s.reason = "stop";
      return;
    }
    ++s.usage.completion_tokens, ++completion_tokens;
    if (adapter_) s.answered.push_back(next);
    const std::string piece = s.text.push(next);
    if (!piece.empty() && !s.any_text) s.any_text = true, s.usage.first_token_s = now_seconds() - s.arrived;
    s.job->emit(piece);
    if (s.text.stopped()) s.reason = "stop";
    else if (s.usage.completion_tokens >= p.max_tokens ||
             s.usage.prompt_tokens + s.usage.completion_tokens >= context_)
      s.reason = "length";
    else s.pending.assign(1, next);
  };
  auto use_routing = [&](const std::shared_ptr<const RoutingSpec>& spec) {
    if (spec.get() != applied_) net_->set_routing(*spec), applied_ = spec.get(), applied_hold_ = spec;
  };
  auto fail = [&](Seq& s, const std::exception& e) {
    log_warn("serve: a request failed in step {}: {}", stats_.steps, e.what());
    s.reason = "error", s.error = e.what();
  };
  // The (token, expert) pairs of rows [r0, r1) of the last forward, per MoE layer.
  auto pairs_of_rows = [&](int64_t r0, int64_t r1) {
    std::vector<std::vector<int64_t>> out(size_t(model_.num_layers));
    for (int l = 0; l < model_.num_layers; ++l) {
      if (!model_.is_moe_layer(l)) continue;
      const Routing& rt = net_->routing(l);
      out[size_t(l)].assign(size_t(model_.num_experts), 0);
      for (int64_t i = r0 * rt.k; i < r1 * rt.k; ++i)
        if (const int32_t e = rt.expert[size_t(i)]; e >= 0) ++out[size_t(l)][size_t(e)];
    }
    return out;
  };
  // Prompts run one sequence a forward; every sequence with one pending token joins one batched forward per routing
  // spec (Runner::forward_slots: one row per sequence).
  std::vector<std::pair<std::shared_ptr<const RoutingSpec>, std::vector<Seq*>>> groups;
  for (auto& up : running_) {
    Seq& s = *up;
    try {
      const std::shared_ptr<const RoutingSpec> spec = spec_for(s, server);
      const int n = int(s.pending.size());
      if (n == 1) {
        auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == spec; });
        if (g == groups.end()) g = groups.insert(groups.end(), {spec, {}});
        g->second.push_back(&s);
        continue;
      }
      use_routing(spec);
      net_->forward_slot(s.slot, s.pending.data(), n);
      advance(s, n, net_->logits() + size_t(n - 1) * size_t(V), pairs_of_rows(0, n));
    } catch (const std::exception& e) {
      fail(s, e);
    }
  }
  for (auto& [spec, seqs] : groups) {
    std::vector<int32_t> slots, ids;
    for (Seq* s : seqs) slots.push_back(s->slot), ids.push_back(s->pending[0]);
    const float* logits = nullptr;
    try {
      use_routing(spec);
      net_->forward_slots(slots.data(), ids.data(), int(seqs.size()));
      logits = net_->logits();
    } catch (const std::exception& e) {  // the forward failed: every row of it
      for (Seq* s : seqs) fail(*s, e);
      continue;
    }
    for (size_t r = 0; r < seqs.size(); ++r) {
      try {
        advance(*seqs[r], 1, logits + r * size_t(V), pairs_of_rows(int64_t(r), int64_t(r) + 1));
      } catch (const std::exception& e) {
        fail(*seqs[r], e);
      }
    }
  }
  if (cfg_.limits.min_step_s > wall.seconds())
    std::this_thread::sleep_for(std::chrono::duration<double>(cfg_.limits.min_step_s - wall.seconds()));
  ttt_share_.serving(wall.seconds(), now_seconds());
  bill.id = energy_->end(counts, bill.tokens);
  for (auto& [s, n] : bill.shares) s->last_bill = bill.id;
  bills_.push_back(std::move(bill));
  const RunnerInfo info = net_->info();
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.steps;
    stats_.decode_graphs = info.decode_graphs;
    stats_.graph_captures = info.graph_captures, stats_.graph_replays = info.graph_replays;
    stats_.forward_tokens += uint64_t(bills_.back().tokens);
    stats_.prompt_tokens += uint64_t(prompt_tokens), stats_.completion_tokens += uint64_t(completion_tokens);
    for (size_t l = 0; l < counts.size(); ++l)
      for (size_t e = 0; e < counts[l].size(); ++e) stats_.expert_tokens[l][e] += uint64_t(counts[l][e]);
  }
  retire_finished();
}

void Engine::adapt_one() {
  std::vector<int32_t> ids = std::move(ttt_queue_.front());
  ttt_queue_.pop_front();
  std::optional<Sample> sensor;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.ttt_queued = int(ttt_queue_.size());
    sensor = stats_.sample;
  }
  energy_->begin();
  Timer wall;
  WindowOutcome r;
  try {
    r = adapter_->process(ids.data(), int(ids.size()) - 1, sensor);
  } catch (const std::exception& e) {  // the served weights go back to the source's; serving goes on
    log_warn("serve: test-time adaptation failed, back to the source weights: {}", e.what());
    adapter_->reset();
    r.reset = "error";
  }
  adapter_->use_predicting_weights();
  const double seconds = wall.seconds();
  ttt_share_.adaptation(seconds, now_seconds());
  Bill bill;
  bill.adaptation = true;
  bill.id = energy_->end_adaptation(r.counts, double(r.tokens), 1 + r.extra_forwards, r.backwards);
  bills_.push_back(std::move(bill));
  // ‖θ − θ₀‖ over the trainable ranges (l2_anchor's value is half its square), at most once a second and after a
  // reset: on a GPU that steps θ in place, reading θ is a copy of every trainable element.
  std::optional<double> distance;
  if (!r.reset.empty() || now_seconds() - distance_judged_s_ >= 1.0) {
    distance = std::sqrt(2 * l2_anchor(adapter_->params().data(), adapter_->source().data(), adapter_->trainable(),
                                       0.0, static_cast<float*>(nullptr)));
    distance_judged_s_ = now_seconds();
  }
  if (!r.reset.empty()) log_info("serve: test-time adaptation reset to the source weights ({})", r.reset);
  std::lock_guard<std::mutex> lk(mu_);
  ++stats_.ttt_windows, stats_.ttt_adapted += r.adapted ? 1 : 0, stats_.ttt_steps += uint64_t(r.steps);
  stats_.ttt_resets += r.reset.empty() ? 0 : 1, stats_.ttt_seconds += seconds;
  if (distance) stats_.ttt_distance = *distance;
}

void Engine::resolve_bills() {
  while (!bills_.empty() && energy_->ready(bills_.front().id)) {
    const Bill b = std::move(bills_.front());
    bills_.pop_front();
    const StepReading r = energy_->take(b.id);
    double billed = 0;
    for (const auto& [s, n] : b.shares) {
      const double share = b.tokens > 0 ? r.joules * double(n) / b.tokens : 0;
      s->usage.energy_j += share, billed += share;
    }
    if (!r.complete) log_warn("serve: step {}: the sensor failed, its energy is incomplete", b.id);
    {
      std::lock_guard<std::mutex> lk(mu_);
      stats_.energy_j += r.joules, stats_.billed_j += billed, stats_.step_seconds += r.seconds;
      if (b.adaptation) stats_.ttt_energy_j += r.joules;
      stats_.sample = r.sample;
    }
    control_update(r.joules, r.seconds, b.tokens, b.pairs, b.moe_token_layers, r.sample);
  }
}

void Engine::control_update(double joules, double seconds, double tokens, int64_t pairs, int64_t moe_token_layers,
                            const Sample& sample) {
  ctl_j_ += joules, ctl_s_ += seconds, ctl_tokens_ += tokens, ctl_pairs_ += pairs, ctl_moe_ += moe_token_layers;
  std::lock_guard<std::mutex> lk(mu_);
  if (ctl_s_ < control_->period_s || ctl_s_ <= 0) return;
  const double power = ctl_j_ / ctl_s_, jpt = ctl_tokens_ > 0 ? ctl_j_ / ctl_tokens_ : NAN;
  stats_.power_w = power, stats_.joules_per_token = jpt, stats_.tokens_per_s = ctl_tokens_ / ctl_s_;
  stats_.experts_per_token = ctl_moe_ ? double(ctl_pairs_) / double(ctl_moe_) : NAN;
  Control& c = *control_;
  if (c.ctl && ctl_tokens_ > 0) {
    ControlInput in;
    in.step = ++ctl_step_, in.dt_s = ctl_s_, in.power_w = power, in.joules_per_token = jpt, in.sample = sample;
    const int rung = c.decision.rung;
    c.decision = c.ctl->update(in);
    c.spec = std::make_shared<RoutingSpec>(decision_spec(c.decision, c.routing));
    control_admit_ = std::max(1, int(std::floor(cfg_.limits.max_batch * c.decision.batch_scale)));
    apply_admit_limit_locked();
    if (c.decision.rung != rung)
      log_info("serve: control rung {} -> {} (u {:.2f}, batch scale {:.2f}: at most {} sequences): {}", rung,
               c.decision.rung, c.decision.u, c.decision.batch_scale, admit_limit_, c.decision.reason);
    log_debug("serve: control {} {:.3f} -> u {:.3f} policy {}", c.budget.power_w > 0 ? "W" : "J/token",
              c.budget.power_w > 0 ? power : jpt, c.decision.u, c.decision.policy);
  }
  ctl_j_ = ctl_s_ = ctl_tokens_ = 0, ctl_pairs_ = ctl_moe_ = 0;
}

void Engine::complete_ready_jobs() {
  for (size_t i = 0; i < billing_.size();) {
    Seq& s = *billing_[i];
    if (s.in_a_step && !bills_.empty() && s.last_bill >= bills_.front().id) {
      ++i;  // its last step's energy is not final yet
      continue;
    }
    s.job->emit(s.text.finish());
    s.usage.latency_s = now_seconds() - s.arrived;
    const std::string outcome = !s.error.empty() && s.reason != "cancelled" ? "error"
                                : s.reason == "cancelled"                   ? "cancelled"
                                                                            : "ok";
    {  // counted before the client hears of it, so a client that reads /metrics next sees its request there
      std::lock_guard<std::mutex> lk(mu_);
      ++stats_.requests[outcome], --awaiting_bills_;
      if (outcome == "ok") {
        stats_.latency.observe(s.usage.latency_s);
        if (s.any_text) stats_.first_token.observe(s.usage.first_token_s);
      }
    }
    s.job->finish(s.reason, s.usage, s.error);
    // Answered: only now may its text adapt the model. The queue keeps the newest max_batch texts.
    if (adapter_ && outcome == "ok" && s.answered.size() >= 2) {
      ttt_queue_.push_back(std::move(s.answered));
      std::lock_guard<std::mutex> lk(mu_);
      if (int(ttt_queue_.size()) > cfg_.limits.max_batch) ttt_queue_.pop_front(), ++stats_.ttt_dropped;
      stats_.ttt_queued = int(ttt_queue_.size());
    }
    billing_.erase(billing_.begin() + std::ptrdiff_t(i));
  }
  cv_.notify_all();  // wait_idle
}

}  // namespace wattmoe
