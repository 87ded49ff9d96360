#include "adapt/adapter.h"

#include <algorithm>

#include "adapt/anchor.h"
#include "ops/token_objectives.h"
#include "core/error.h"
#include "core/timer.h"
#include "model/lora.h"

namespace wattmoe {

DriftSignal parse_drift_signal(const std::string& s) {
  if (s == "loss") return DriftSignal::Loss;
  if (s == "entropy") return DriftSignal::Entropy;
  fail("unknown drift signal \"{}\" (expected loss or entropy)", s);
}

namespace {

ModelConfig adapted_config(const ModelConfig& base, const AdapterConfig& c) {
  ModelConfig m = base;
  if (c.lora_rank > 0) m.lora_rank = c.lora_rank, m.lora_scale = c.lora_scale;
  return m;
}

}  // namespace

void validate_adapter_config(const AdapterConfig& c, const ModelConfig& base) {
  WATTMOE_REQUIRE(c.lora_rank >= 0, "lora_rank must be >= 0 (0 = no adapters), got {}", c.lora_rank);
  WATTMOE_REQUIRE(c.lora_rank == 0 || base.lora_rank == 0,
                  "lora_rank {}: the model already has rank-{} adapters (use lora_rank 0 to adapt them)", c.lora_rank,
                  base.lora_rank);
  WATTMOE_REQUIRE(std::isfinite(c.lora_scale), "lora_scale must be finite, got {}", c.lora_scale);
  validate_param_groups(c.groups, adapted_config(base, c));
  validate_adapt_optim(c.optim);
  WATTMOE_REQUIRE(c.steps_per_window >= 1, "steps_per_window must be >= 1, got {}", c.steps_per_window);
  WATTMOE_REQUIRE(c.replay >= 1, "replay must be >= 1 window (1 = the current window alone), got {}", c.replay);
  validate_objective_weights(c.objective);
  if (c.objective.energy > 0) {
    WATTMOE_REQUIRE(!c.expert_costs.empty(), "the energy objective (weight {}) needs expert costs",
                    c.objective.energy);
    validate_energy_costs(c.expert_costs, base.num_layers, base.num_experts);
  } else if (!c.expert_costs.empty()) {
    validate_energy_costs(c.expert_costs, base.num_layers, base.num_experts);
  }
  validate_triggers(c.triggers);
  validate_page_hinkley(c.drift.test);
  WATTMOE_REQUIRE(c.drift.enabled || !(c.triggers.on_drift || c.reset_on_drift),
                  "the drift trigger and reset_on_drift need drift detection (drift.enabled)");
  validate_collapse_guard(c.guard);
  validate_source_guard(c.source_guard);
  WATTMOE_REQUIRE(std::isfinite(c.teacher_momentum) && c.teacher_momentum >= 0 && c.teacher_momentum < 1,
                  "teacher_momentum must be in [0, 1), got {}", c.teacher_momentum);
  WATTMOE_REQUIRE(c.teacher || !c.predict_with_teacher, "predict_with_teacher needs the EMA teacher (teacher = true)");
}

TestTimeAdapter::TestTimeAdapter(const ModelConfig& base, const float* base_params, AdapterConfig cfg,
                                 const RunnerFactory& make_runner)
    : cfg_(std::move(cfg)), triggers_((validate_adapter_config(cfg_, base), cfg_.triggers)), guard_(cfg_.guard),
      source_guard_(cfg_.source_guard), replay_(cfg_.replay) {
  if (cfg_.lora_rank > 0) {
    ModelConfig with;
    params_ = expand_with_lora(base, base_params, cfg_.lora_rank, cfg_.lora_scale, cfg_.lora_seed, &with);
    net_ = make_runner ? make_runner(with) : wattmoe::make_runner(with, {});
  } else {
    net_ = make_runner ? make_runner(base) : wattmoe::make_runner(base, {});
    params_.assign(base_params, base_params + net_->layout().total());
  }
  const ModelConfig& mc = net_->config();
  const ParamLayout& layout = net_->layout();
  WATTMOE_CHECK(int64_t(params_.size()) == layout.total());
  source_ = params_;
  ranges_ = trainable_ranges(cfg_.groups, mc, layout);
  spans_ = spans_of(ranges_);
  mask_ = make_grad_mask(cfg_.groups, mc, layout);
  std::vector<ScaledRange> scaled = group_lr_ranges(cfg_.groups, mc, layout, cfg_.optim);
  device_step_ = cfg_.objective.anchor == 0 && !cfg_.teacher && net_->adapt_optimizer_begin(ranges_, scaled, cfg_.optim);
  if (!device_step_) {
    grads_.assign(params_.size(), 0.f);
    opt_ = std::make_unique<AdaptOptimizer>(layout, make_trainable_mask(cfg_.groups, mc, layout), ranges_, cfg_.optim,
                                            std::move(scaled));
  }
  if (cfg_.drift.enabled) drift_ = std::make_unique<PageHinkley>(cfg_.drift.test);
  if (cfg_.teacher) teacher_ = std::make_unique<EmaTeacher>(cfg_.teacher_momentum, ranges_, source_);
  net_->set_params(source_.data());
  loaded_ = source_.data();
  if (device_step_) net_->keep_param_ranges(kSourceSlot, ranges_);
}

AdaptPhases& AdaptPhases::operator+=(const AdaptPhases& o) {
  weights += o.weights, forward += o.forward, loss += o.loss, backward += o.backward, grads += o.grads;
  optimizer += o.optimizer, guard += o.guard, other += o.other;
  return *this;
}

void TestTimeAdapter::lap(double AdaptPhases::*phase) {
  if (!phases_) return;
  net_->finish();
  phases_->*phase += lap_timer_.seconds();
  lap_timer_.reset();
}

const std::vector<float>& TestTimeAdapter::params() const {
  fetch_params();
  return params_;
}

void TestTimeAdapter::fetch_params() const {
  if (!theta_stale_) return;
  if (loaded_ == params_.data()) {
    net_->get_param_ranges(params_.data(), ranges_);
  } else {  // θ waits in its slot (device_step_ only: then θ₀ is the only other set the runner holds)
    WATTMOE_CHECK(theta_kept_ && (loaded_ == source_.data() || loaded_ == nullptr));
    net_->load_param_ranges(kThetaSlot, ranges_);
    net_->get_param_ranges(params_.data(), ranges_);
    if (loaded_) net_->load_param_ranges(kSourceSlot, ranges_);
  }
  theta_stale_ = false;
}

void TestTimeAdapter::use(const float* weights) {
  if (weights == loaded_) return;
  if (device_step_) {  // θ and θ₀ switch on the runner's device: θ is kept there, never fetched
    if (loaded_ == params_.data()) net_->keep_param_ranges(kThetaSlot, ranges_), theta_kept_ = true;
    if (weights == source_.data() || (weights == params_.data() && theta_is_source_))
      net_->load_param_ranges(kSourceSlot, ranges_);
    else if (weights == params_.data() && theta_kept_)
      net_->load_param_ranges(kThetaSlot, ranges_);
    else
      net_->set_param_ranges(weights, ranges_);
  } else {
    if (loaded_ == params_.data()) fetch_params();  // θ leaves the runner: keep the host copy current
    net_->set_param_ranges(weights, ranges_);  // all vectors differ from θ₀ only inside the trainable ranges
  }
  loaded_ = weights;
}

void TestTimeAdapter::use_predicting_weights() {
  if (source_guard_.on_probation() && adapted_) use(source_.data());
  else use(cfg_.predict_with_teacher ? teacher_->params() : params_.data());
}

WindowScore TestTimeAdapter::score(const float* weights, const int32_t* ids, int S) {
  use(weights);
  return score_window(*net_, ids, S);
}

double TestTimeAdapter::mean_nll(const int32_t* targets) { return net_->next_token_loss(targets, 0, false); }

void TestTimeAdapter::set_expert_costs(EnergyCosts costs) {
  validate_energy_costs(costs, net_->config().num_layers, net_->config().num_experts);
  cfg_.expert_costs = std::move(costs);
}

void TestTimeAdapter::reset() {
  for (const ParamRange& r : ranges_)
    std::copy(source_.begin() + r.offset, source_.begin() + r.offset + r.numel, params_.begin() + r.offset);
  if (device_step_) net_->adapt_optimizer_reset(), device_steps_ = 0;
  else opt_->reset();
  theta_stale_ = false;  // θ = θ₀ on the host; the runner gets it at the next use
  theta_is_source_ = true, theta_kept_ = false;
  if (teacher_) teacher_->reset(source_.data());
  weights_changed();
  adapted_ = false;
}

LossComponents TestTimeAdapter::adapt_steps(const int32_t* ids, int S, bool acts_ready, WindowOutcome* r) {
  // With stored windows the steps train on a batch (this window first); the scoring forward covered this window
  // alone, so its activations are of no use then.
  const ReplayBatch batch = replay_.size() > 0 ? replay_.batch(ids, S) : ReplayBatch{};
  const bool batched = batch.B > 1;
  const int32_t* inputs = batched ? batch.inputs.data() : ids;
  const int32_t* targets = batched ? batch.targets.data() : ids + 1;
  const int B = batched ? batch.B : 1;
  if (batched) acts_ready = false;
  const EnergyCosts* costs = cfg_.expert_costs.empty() ? nullptr : &cfg_.expert_costs;
  LossComponents first;
  for (int step = 0; step < cfg_.steps_per_window; ++step) {
    if (step > 0 || !acts_ready) {
      use(params_.data());
      lap(&AdaptPhases::weights);
      net_->forward(inputs, B, S);
      lap(&AdaptPhases::forward);
      if (r) r->extra_forwards += B;
    }
    LossComponents lc = adapt_loss(*net_, targets, cfg_.objective, costs);
    if (!device_step_) {  // the host step's gradient: the anchor's part here, the runner's added by take_grads
      span_for_each(spans_, [this](int64_t begin, int64_t end, int64_t) {
        std::fill(grads_.begin() + begin, grads_.begin() + end, 0.f);
      });
      if (cfg_.objective.anchor > 0) {
        lc.anchor = l2_anchor<float>(params_.data(), source_.data(), ranges_, cfg_.objective.anchor, grads_.data());
        lc.total += cfg_.objective.anchor * lc.anchor;
      }
    }
    lap(&AdaptPhases::loss);
    net_->backward(&mask_);
    lap(&AdaptPhases::backward);
    if (r) r->backwards += B;
    double norm = 0;
    if (device_step_) {  // θ moves in the runner, which holds it (loaded_ stays params_)
      norm = net_->adapt_optimizer_step(scheduled_lr(cfg_.optim, device_steps_++));
      theta_stale_ = true, theta_is_source_ = false;
      lap(&AdaptPhases::optimizer);
    } else {
      net_->take_grads(grads_.data(), ranges_);
      lap(&AdaptPhases::grads);
      norm = opt_->step(params_.data(), grads_.data());
      if (teacher_) teacher_->update(params_.data());
      lap(&AdaptPhases::optimizer);
      weights_changed();
    }
    adapted_ = true;
    if (step == 0) first = lc;
    if (r) r->steps = step + 1, r->grad_norm = norm, r->batch = B;
  }
  return first;
}

LossComponents TestTimeAdapter::adapt_on(const int32_t* ids, int S) {
  WATTMOE_REQUIRE(S >= 1, "a window needs at least 2 tokens (S >= 1), got S = {}", S);
  return adapt_steps(ids, S, false, nullptr);
}

WindowOutcome TestTimeAdapter::process(const int32_t* ids, int S, const std::optional<Sample>& sensor) {
  WindowOutcome r;
  Timer timer;
  const bool was_adapted = adapted_;
  const bool by_teacher = cfg_.predict_with_teacher;
  // The weights under test (the adapted ones that predict); on probation the reported score is the source's.
  const float* tested = by_teacher ? teacher_->params() : params_.data();
  const bool probation = source_guard_.on_probation() && was_adapted;
  r.probation = probation;
  WindowScore ws = score(probation ? source_.data() : tested, ids, S);
  r.infer_seconds = timer.seconds();
  timer.reset();
  if (cfg_.time_phases) phases_ = &r.phases, lap_timer_.reset();
  r.nats = ws.nats, r.tokens = ws.tokens, r.entropy = ws.entropy, r.experts_per_token = ws.experts_per_token;
  r.counts = std::move(ws.counts);
  const double loss = r.nats_per_token();

  const double signal = cfg_.drift.signal == DriftSignal::Loss ? loss : r.entropy;
  if (drift_ && std::isfinite(signal)) r.drift = drift_->update(signal);
  const TriggerDecision d = triggers_.decide({window_, loss, r.drift, sensor ? &*sensor : nullptr});
  r.trigger = d.reason;
  r.suspended = source_guard_.begin_window() && d.fire;

  // The comparison with θ₀: on probation the tested weights' score of this window (before adapting on it), live every
  // check_every-th window the source's (after adapting: the last forward is free then).
  const bool compare = source_guard_.due(was_adapted);
  if (compare && probation) {
    r.source_nats = r.nats;
    use(tested);
    lap(&AdaptPhases::weights);
    r.tested_nats = score(tested, ids, S).nats;
    ++r.extra_forwards;
    lap(&AdaptPhases::guard);
  }
  if (d.fire && !r.suspended) {
    const bool measure = cfg_.triggers.adaptive;
    // The student's activations and loss before adapting: the scoring forward's, unless the teacher or the source
    // scored (then the student's forward on probation, else a fresh one).
    bool acts_ready = !by_teacher && !probation;
    double before = loss;
    if (!by_teacher && compare && probation) {
      acts_ready = true, before = r.tested_nats / double(r.tokens);
    } else if (!acts_ready) {
      use(params_.data());
      lap(&AdaptPhases::weights);
      net_->forward(ids, 1, S);
      ++r.extra_forwards;
      before = mean_nll(ids + 1);
      acts_ready = true;
      lap(&AdaptPhases::forward);
    }
    r.loss = adapt_steps(ids, S, acts_ready, &r);
    r.adapted = true;
    if (measure) {
      use(params_.data());
      lap(&AdaptPhases::weights);
      net_->forward(ids, 1, S);
      ++r.extra_forwards;
      const double after = mean_nll(ids + 1);
      lap(&AdaptPhases::guard);
      r.gain = before > 0 ? (before - after) / before : 0;
      triggers_.report_gain(r.gain);
    }
  }
  if (compare && !probation) {
    r.tested_nats = r.nats;
    use(source_.data());
    lap(&AdaptPhases::weights);
    r.source_nats = score(source_.data(), ids, S).nats;
    ++r.extra_forwards;
    lap(&AdaptPhases::guard);
  }

  // Reasons to reset, the first wins. The collapse guard judges the reported weights only when they are adapted.
  std::string why = guard_.check({loss, r.entropy, &r.counts}, was_adapted && !probation);
  if (compare) {
    ++source_checks_;
    const std::string worse = source_guard_.record(r.tested_nats / double(r.tokens), r.source_nats / double(r.tokens));
    if (why.empty()) why = worse;
  }
  if (why.empty() && r.drift && cfg_.reset_on_drift && adapted_) why = "drift";
  if (why.empty() && cfg_.episodic && adapted_) why = "episodic";
  if (!why.empty()) {
    reset();
    ++resets_;
    r.reset = why;
  }
  replay_.push(ids, S);  // revealed and scored: from the next window on it may join a batch
  r.adapt_seconds = timer.seconds();
  if (phases_) {
    const AdaptPhases& p = r.phases;
    r.phases.other = std::max(0.0, r.adapt_seconds - (p.weights + p.forward + p.loss + p.backward + p.grads +
                                                      p.optimizer + p.guard));
    phases_ = nullptr;
  }
  ++window_;
  return r;
}

}  // namespace wattmoe
