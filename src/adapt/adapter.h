// TestTimeAdapter: an MoE LM that reads a stream window by window and adapts itself online — router, RMSNorm gains
// and per-expert LoRA (or any parameter groups, adapt/param_groups.h) — to hold quality under domain shift and under
// cheaper routing.
//
// Prequential protocol of process(), per window of S+1 tokens:
//   1. score: forward ids[0..S-1] with the current weights θ (or the EMA teacher's, predict_with_teacher) and the
//      caller's router selection; NLL of the targets ids[1..S] is the reported quality — computed BEFORE adapting on
//      the window, so nothing leaks — with the window's entropy, expert use per layer and experts per token.
//   2. adapt, when a trigger fires (adapt/triggers.h; drift from a Page-Hinkley test on the loss or entropy):
//      L = weighted objectives (adapt/adapt_loss.h) + anchor, masked backward (only the trainable groups' gradients,
//      stopping below the lowest trainable layer), clipped optimizer step; steps_per_window times. The first step
//      reuses the scoring forward's activations (unless the teacher scored); later steps run a fresh forward.
//      With replay > 1 (adapt/replay.h) each step trains on a batch: this window and the last replay−1 windows
//      already revealed (every step then runs a fresh forward over the batch). The window is stored for replay only
//      after this step — so it is never in a batch before it has been scored.
//   3. source guard (source_guard.check_every > 0, adapt/stability.h): θ is compared with θ₀ on the same window —
//      live, every check_every-th window scored with θ is scored again with θ₀ after step 2; on probation (θ not yet
//      trusted: at the start and after a failure) step 1 reports θ₀'s score and θ is scored beside it, before step 2.
//      The extra forward never enters the reported score. When the running comparison finds θ worse than θ₀ by more
//      than the margin, θ is reset ("worse_than_source") and adaptation is suspended for a backoff that doubles with
//      consecutive failures; suspended windows are scored with θ₀ and not adapted.
//   4. guard: a collapse (adapt/stability.h; judged on windows reported with adapted weights), the source guard, a
//      drift alarm with reset_on_drift, or episodic mode (the first reason wins) resets θ to the source weights θ₀
//      and the optimizer (and teacher) state.
// infer_seconds covers step 1; adapt_seconds everything after it (steady clock), the source check's forward included.
// With time_phases, adapt_seconds is also split by phase (AdaptPhases), waiting for the runner's queued work at each
// phase's end (Runner::finish) so that device work is charged to the phase that queued it — which costs a little.
//
// Where the network runs: the adapter keeps θ, θ₀, the gradients, optimiser, teacher and guards on the host and owns
// a Runner (model/runner.h) of the adapted config, made by a RunnerFactory (the CPU by default, or a GPU), for
// forwards, scores, objectives and backward passes. The runner holds one weight set: the trainable ranges of the
// vector a forward needs (θ, θ₀ or the teacher's) go in only when they differ from what it holds, and per step only
// the trainable ranges' gradients come out. Where the runner offers its own optimizer step (the GPU:
// Runner::adapt_optimizer_begin; not with the anchor or the teacher, which read θ every step) the step runs there
// instead, on the same semantics: no gradient leaves the device, θ and θ₀ switch there (Runner::keep_param_ranges),
// and θ comes back to the host only when params() is read. The routing is the runner's (runner().set_routing).
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapt/adapt_loss.h"
#include "adapt/adapt_optimizer.h"
#include "adapt/page_hinkley.h"
#include "adapt/param_groups.h"
#include "adapt/replay.h"
#include "adapt/stability.h"
#include "adapt/triggers.h"
#include "energy/sensor.h"
#include "adapt/window_score.h"
#include "core/timer.h"
#include "model/runner.h"
#include "model/param_spans.h"

namespace wattmoe {

enum class DriftSignal { Loss, Entropy };
DriftSignal parse_drift_signal(const std::string& s);  // "loss" | "entropy"

struct DriftConfig {
  bool enabled = false;
  DriftSignal signal = DriftSignal::Loss;  // the window's nats/token, or its mean next-token entropy
  PageHinkleyConfig test;
};

// Where adaptation time goes (seconds, summed over steps): weights = θ / θ₀ ranges into the runner (and a device's
// merge of LoRA into the expert weights); forward = adaptation forwards; loss = objectives and dlogits; backward;
// grads = the trainable gradients out of the runner; optimizer = the host step (+ teacher); guard = the source guard's
// extra scoring and the adaptive trigger's measurement; other = the rest of adapt_seconds (triggers, bookkeeping).
struct AdaptPhases {
  double weights = 0, forward = 0, loss = 0, backward = 0, grads = 0, optimizer = 0, guard = 0, other = 0;
  AdaptPhases& operator+=(const AdaptPhases& o);
};

struct AdapterConfig {
  ParamGroups groups{.router = true, .norms = true};
  int lora_rank = 0;             // > 0: add rank-r LoRA adapters to every routed expert (fresh: B = 0)
  float lora_scale = 1.f;
  uint64_t lora_seed = 1234;
  AdaptOptimConfig optim;
  int steps_per_window = 1;      // ≥ 1
  int replay = 1;                // ≥ 1: windows per adaptation batch (this one + the last replay−1 revealed ones)
  ObjectiveWeights objective;
  EnergyCosts expert_costs;      // the energy objective's per-layer ExpertCosts and tokens per step (router_objectives.h)
  TriggerConfig triggers{.always = true};
  DriftConfig drift;
  CollapseGuardConfig guard;
  SourceGuardConfig source_guard;  // check_every = 0: off
  bool reset_on_drift = false;
  bool teacher = false;          // keep an EMA teacher θ_T
  double teacher_momentum = 0.99;
  bool predict_with_teacher = false;  // score windows with θ_T (needs teacher)
  bool episodic = false;         // reset to θ₀ after every adapted window
  bool time_phases = false;      // split adapt_seconds into AdaptPhases (waits for the runner at each phase's end)
};

// Error naming the field and what was expected (also checks the groups against the adapted model's config).
void validate_adapter_config(const AdapterConfig& c, const ModelConfig& base);

struct WindowOutcome {
  double nats = 0;               // Σ −log p over the window's targets (before adapting on it)
  int64_t tokens = 0;
  double entropy = 0;            // mean next-token entropy, nats
  double experts_per_token = 0;
  std::vector<std::vector<int64_t>> counts;  // [layer][expert] (token, expert) pairs; empty rows for dense layers
  bool drift = false;            // the drift detector alarmed on this window
  bool adapted = false;
  int steps = 0;                 // optimizer steps taken on this window
  int batch = 0;                 // windows in the adaptation batch (1 + replayed ones); 0 when not adapted
  std::string trigger;           // reasons that fired, '|'-joined; empty when none
  std::string reset;             // why θ went back to θ₀ after this window; empty when it did not
  bool suspended = false;        // a source-guard backoff kept this window from adapting
  bool probation = false;        // reported with θ₀ while the adapted weights are on probation
  double tested_nats = std::nan("");  // when the source guard compared: Σ −log p with the adapted weights; else NaN
  double source_nats = std::nan("");  // when the source guard compared: Σ −log p with θ₀; else NaN
  LossComponents loss;           // the first adaptation step's objective values
  double grad_norm = 0;          // the last step's gradient norm before clipping
  double gain = std::nan("");    // relative loss gain of the adaptation (measured for the adaptive trigger)
  // The network passes run on this window after its scoring forward (adaptation, the source guard, the adaptive
  // trigger's measure), in windows of S tokens (a pass over a batch of B windows counts B): what a plant that
  // prices adaptation charges (plant/plant.h charge_adaptation).
  int extra_forwards = 0, backwards = 0;
  double infer_seconds = 0, adapt_seconds = 0;
  AdaptPhases phases;            // with AdapterConfig::time_phases; zeros otherwise
  double nats_per_token() const { return tokens ? nats / double(tokens) : 0; }
};

class TestTimeAdapter {
 public:
  // base_params: base.num_parameters() values in ParamLayout::build(base) order (copied). make_runner: where the
  // network runs (null: the CPU, runner_factory({})).
  TestTimeAdapter(const ModelConfig& base, const float* base_params, AdapterConfig cfg,
                  const RunnerFactory& make_runner = nullptr);
  TestTimeAdapter(const TestTimeAdapter&) = delete;
  TestTimeAdapter& operator=(const TestTimeAdapter&) = delete;

  // ids: S + 1 tokens. sensor: this window's reading for the power/thermal triggers (may be empty).
  WindowOutcome process(const int32_t* ids, int S, const std::optional<Sample>& sensor = std::nullopt);

  // Adapts on one window now, whatever the triggers say (steps_per_window steps, fresh forward; with replay the
  // batch adds the stored windows, but this window is not stored). Returns the first step's objective values.
  LossComponents adapt_on(const int32_t* ids, int S);

  // The runner holds the weights that predict now, as process() reports them: θ₀ while adapted weights are on the
  // source guard's probation, else the teacher's with predict_with_teacher, else θ (for a caller that runs the
  // runner itself between windows: the server).
  void use_predicting_weights();

  void reset();  // θ ← θ₀, fresh optimizer state, teacher ← θ₀ (the replay buffer keeps its revealed windows)
  void set_expert_costs(EnergyCosts costs);  // validated; used by the energy objective from the next step on

  Runner& runner() { return *net_; }  // the network (routing and observer are set here)
  const ModelConfig& model_config() const { return net_->config(); }
  // The score of a window with the given weights (θ, θ₀ or the teacher's), the runner's routing; no adaptation.
  WindowScore score(const float* weights, const int32_t* ids, int S);
  const std::vector<float>& params() const;  // θ (read back from the runner first when it stepped there)
  const std::vector<float>& source() const { return source_; }
  const float* teacher_params() const { return teacher_ ? teacher_->params() : nullptr; }
  const std::vector<ParamRange>& trainable() const { return ranges_; }
  const AdapterConfig& config() const { return cfg_; }
  int64_t windows() const { return window_; }
  int64_t resets() const { return resets_; }
  int64_t source_checks() const { return source_checks_; }
  const SourceGuard& source_guard() const { return source_guard_; }
  const ReplayBuffer& replay() const { return replay_; }
  bool adapted() const { return adapted_; }  // θ has moved since the last reset
  int trigger_interval() const { return triggers_.interval(); }

 private:
  LossComponents adapt_steps(const int32_t* ids, int S, bool acts_ready, WindowOutcome* r);
  void use(const float* weights);  // the runner holds `weights` (its trainable ranges go in when they differ)
  void weights_changed() { loaded_ = nullptr; }  // a vector already passed changed (step, teacher update, reset)
  void fetch_params() const;  // params_ ← the runner's θ, when the runner stepped it (theta_stale_)
  double mean_nll(const int32_t* targets);
  // With time_phases while a window adapts: waits for the runner, charges the time since the last lap to `phase`.
  void lap(double AdaptPhases::*phase);

  AdapterConfig cfg_;
  std::unique_ptr<Runner> net_;      // where forwards and backwards run
  const float* loaded_ = nullptr;    // the host vector whose trainable ranges the runner holds (null: stale)
  mutable std::vector<float> params_;  // θ on the host: behind the runner's while theta_stale_
  std::vector<float> source_, grads_;  // grads_: the host step's (empty with device_step_)
  std::vector<ParamRange> ranges_;
  Spans spans_;                      // ranges_ as spans
  GradMask mask_;
  std::unique_ptr<AdaptOptimizer> opt_;
  // The runner steps θ on its device (Runner::adapt_optimizer_begin; not with the anchor or the teacher, which read θ
  // on the host every step): θ stays there, params_ is fetched only when params() is read; there is no host
  // optimizer or gradient then. device_steps_: steps since the last reset (lr_t).
  bool device_step_ = false;
  mutable bool theta_stale_ = false;
  // With device_step_ the runner also keeps θ₀ (from the start) and θ (whenever another set goes in) in its weight-set
  // slots (Runner::keep_param_ranges), so the source guard's switches cost no host transfer. theta_kept_: the θ slot
  // holds θ; theta_is_source_: θ = θ₀ (no step since the start or the last reset).
  static constexpr int kSourceSlot = 0, kThetaSlot = 1;
  mutable bool theta_kept_ = false;
  bool theta_is_source_ = true;
  int64_t device_steps_ = 0;
  std::unique_ptr<PageHinkley> drift_;
  Triggers triggers_;
  CollapseGuard guard_;
  SourceGuard source_guard_;
  std::unique_ptr<EmaTeacher> teacher_;
  ReplayBuffer replay_;
  int64_t window_ = 0, resets_ = 0, source_checks_ = 0;
  bool adapted_ = false;
  AdaptPhases* phases_ = nullptr;    // the window's phases being timed (null: not timing)
  Timer lap_timer_;
};

}  // namespace wattmoe
