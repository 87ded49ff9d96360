// Runner: one MoE model on one device — the single interface that every runner of the library (eval/evaluate.h,
// adapt/stream.h, adapt/adapter.h, train/trainer.h, generation) is written against, so none of them has a GPU twin.
// make_runner(config, options) picks the implementation: the CPU model (model/transformer.h, the reference) or, in a
// CUDA build, the GPU model (gpu/runner_cuda.h: fp32 or bf16, MoE layers on host routing or the fused kernels).
//
// Weights live inside the runner (fp32 master copy, ParamLayout order); callers hand host vectors in and out.
// Routing is data, not a callback: set_routing(RoutingSpec) (moe/routing_spec.h) applies to every following forward;
// an observer (set_routing_observer) sees each MoE layer's routing after every forward, on every kernel path — the
// one place routing energy is priced (moe/routing_tally.h).
//
// Call orders:
//   inference   forward(ids, B, S) → nll / mean_entropy / logits / routing
//   decoding    reset_cache(capacity, batch) → forward_cached(ids [batch, S], S)…
//   serving     reset_slots(slots, capacity) → per step: forward_slot(slot, ids, S) for a sequence's prompt, then
//               forward_slots(slots, ids, n) for one new token of each decoding sequence; read logits / routing rows;
//               clear_slot(slot) when a sequence leaves (continuous batching, serve/)
//   adaptation  forward → [router_views: objectives add into drouter] → set_dlogits / next_token_loss → backward(mask)
//               → take_grads(host, ranges)   (gradients accumulate until taken or zeroed)
//               or, where the runner steps on its device: adapt_optimizer_begin once, then per step
//               → adapt_optimizer_step(lr) (θ stays in the runner; get_param_ranges reads it back)
//   training    train_begin → per step: zero_grads, train_micro_batch…, clip_gradients, optimizer_step
// A call that reads the last forward's results after another forward sees the newer one. Not thread-safe.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/adapt_optim_config.h"
#include "model/config.h"
#include "model/grad_mask.h"
#include "model/params.h"
#include "moe/aux_losses.h"
#include "moe/router_view.h"
#include "moe/routing.h"
#include "moe/routing_spec.h"
#include "model/optimizer.h"
#include "ops/quant.h"

namespace wattmoe {

struct RunnerOptions {
  std::string device = "cpu";        // cpu | cuda (GPU `gpu`)
  std::string precision = "fp32";    // fp32 | bf16 (cuda only)
  std::string moe_kernels = "auto";  // auto | fused | host (cuda only; see choose_moe_kernels)
  int gpu = 0;
  // bf16 | fp8 | int8: the routed experts' weights (model/expert_quant.h). bf16 leaves them as they are (fp32 on the
  // CPU, bf16 with --precision bf16); fp8 (e4m3) and int8 quantise them weight-only, one fp32 scale per output row,
  // when the runner receives them, so every path computes with code · scale; the GPU's fused decode kernels read the
  // 1-byte codes themselves.
  std::string expert_precision = "bf16";
  // cuda, fused kernels: forward_slots' decode steps replayed as CUDA graphs (gpu/transformer_cuda.h); false: every
  // step launched kernel by kernel (the comparison).
  bool decode_graphs = true;
};

// Error unless device/precision/moe_kernels/expert_precision are known names and bf16/fused come with device cuda; for cuda also
// when this build has no CUDA or no device is visible. Cheap: commands call it before any work.
void check_runner_options(const RunnerOptions& o);

// forward_slots' argument check, shared by the runners: Error unless n >= 1 and slots[0..n) are distinct slot numbers
// below n_slots (naming the first bad one).
void check_slot_rows(const int32_t* slots, int n, size_t n_slots);

// What a runner is: where it runs and which code runs its MoE layers ("host" or "fused"), for reports.
struct RunnerInfo {
  std::string device, precision, moe_kernels, expert_precision = "bf16";
  bool decode_graphs = false;                   // forward_slots' steps may replay as CUDA graphs
  int64_t graph_captures = 0, graph_replays = 0;  // how many steps so far were captured, replayed
  std::string graph_failure;                    // why graphs were given up (empty while they work)
};

struct TrainLosses {
  double loss = 0, load_balance = 0, z = 0;  // the micro-batch's scaled contributions
};

class Runner {
 public:
  virtual ~Runner() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const ParamLayout& layout() const = 0;
  virtual RunnerInfo info() const = 0;

  // --- weights (host fp32, layout order)
  virtual void set_params(const float* host) = 0;
  // Only these ranges of `host` (the rest of the runner's weights stay): what test-time adaptation changes.
  virtual void set_param_ranges(const float* host, const std::vector<ParamRange>& ranges) = 0;
  virtual void get_params(float* host) const = 0;
  // The routed experts' tier at run time (the degradation ladder's tier level, control/ladder.h): re-quantises them
  // to `p` (bf16: restores them) from `full`, the model's full-precision weights in layout order, of which only the
  // routed-expert tensors are read; every other weight keeps its current value, adaptation's included. A stall the
  // caller accounts for: here one get_params and one set_params (quantisation on the host); the GPU runner uploads
  // only the experts and quantises them on the device. Throws on a non-finite weight, naming it (the GPU runner
  // is then left with `full`'s experts at bf16).
  virtual void set_expert_precision(ops::ExpertPrecision p, const float* full);
  ops::ExpertPrecision expert_precision() const { return ops::parse_expert_precision(info().expert_precision); }

  // --- routing of the following forwards (validated here: an error names the bad knob or cost table)
  virtual void set_routing(const RoutingSpec& spec) = 0;
  virtual void set_routing_observer(RoutingObserver observe) = 0;  // null: none

  // --- forward. ids on the host (checked against the vocabulary).
  virtual void forward(const int32_t* ids, int B, int S) = 0;  // positions from 0; keeps what backward needs
  // A forward no backward follows (evaluation, replayed work): results as forward's within the runner's rounding; a
  // runner may skip what only backward reads (the GPU: attention probabilities, so bf16 attends with flash), and
  // backward after it may be refused. The default is forward.
  virtual void forward_inference(const int32_t* ids, int B, int S) { forward(ids, B, S); }
  // Decoding `batch` sequences in lockstep (the CPU runner decodes one): ids [batch, S], positions continue the cache;
  // no backward.
  virtual void reset_cache(int64_t capacity, int batch = 1) = 0;
  virtual void forward_cached(const int32_t* ids, int S) = 0;
  // Slot decoding, for continuous batching (serve/engine.h): `slots` independent one-sequence KV caches of `capacity`
  // positions each (apart from reset_cache's cache, which they leave as it is), all empty. forward_slot runs S tokens
  // of slot's sequence at the positions after those its cache holds, exactly as forward_cached does for a cache of
  // batch 1 (so the logits equal a one-sequence decode bit for bit); results as any forward's; no backward. Sequences
  // of different lengths join and leave between forwards: clear_slot empties one slot. Each call is one forward of
  // one sequence.
  virtual void reset_slots(int slots, int64_t capacity) = 0;
  virtual void clear_slot(int slot) = 0;
  virtual void forward_slot(int slot, const int32_t* ids, int S) = 0;
  // One new token of each of n distinct slots (ids[r] for slots[r], each at its slot's next position): the step of
  // continuous batching. Results are the n rows in that order (tokens() = n, logits [n, V], routing rows), as n
  // forward_slot calls of one token would give — bit for bit on the CPU (which runs exactly those calls), within the
  // precision's rounding on the GPU (one forward over the n rows: gpu/transformer_cuda.h). No backward, no
  // router_views or logits gradient after it. Error naming the slot when one repeats, does not exist or is full.
  virtual void forward_slots(const int32_t* slots, const int32_t* ids, int n) = 0;

  // --- the last forward's results
  virtual int64_t tokens() const = 0;                      // B·S
  virtual double nll(const int32_t* targets) = 0;          // Σ −log p(target) over rows with target ≥ 0 (nats)
  virtual double mean_entropy() = 0;                       // mean next-token entropy over all rows (nats)
  virtual const float* logits() = 0;                       // host [B·S, V], valid until the next call
  virtual bool logits_on_host() const = 0;                 // logits() costs no copy (the CPU)
  virtual const Routing& routing(int layer) = 0;           // host; empty for dense layers
  // Host views of each MoE layer's router logits, probabilities and drouter (zeroed by forward); objectives add into
  // drouter and the next backward carries it.
  virtual RouterViews<float> router_views() = 0;

  // --- gradients (fp32, layout order, inside the runner; they accumulate until zero_grads)
  // Mean −log p(target) over rows with target ≥ 0 (ops/token_objectives.h next_token_nll); with want_grad OVERWRITES
  // the logits gradient with weight × its gradient (0 when no row is scored).
  virtual double next_token_loss(const int32_t* targets, double weight, bool want_grad = true) = 0;
  virtual void set_dlogits(const float* host) = 0;  // the logits gradient [B·S, V] from the host
  virtual void zero_dlogits() = 0;
  virtual void backward(const GradMask* mask) = 0;   // adds ∂L/∂θ into the gradients (model/grad_mask.h semantics)
  virtual void zero_grads() = 0;
  // Moves these ranges' gradients out: host[r] += gradients[r], then gradients[r] = 0 in the runner.
  virtual void take_grads(float* host, const std::vector<ParamRange>& ranges) = 0;
  virtual void finish() {}  // waits for the work queued so far (a device's queue; the CPU's work is done on return)

  // --- adaptation's optimizer on the runner's own device (adapt/adapter.h uses it where offered)
  // Takes the optimizer state for θ's `ranges` (disjoint, ascending), stepped as AdaptOptimizer::step does with cfg
  // (adapt/adapt_optimizer.h: clip over the ranges, sgd | adamw with decay on matrices, the `scaled` ranges'
  // multipliers); fresh state. False when this runner has no such step (the CPU: the host optimizer is the step).
  virtual bool adapt_optimizer_begin(const std::vector<ParamRange>& ranges, const std::vector<ScaledRange>& scaled,
                                     const AdaptOptimConfig& cfg) {
    (void)ranges, (void)scaled, (void)cfg;
    return false;
  }
  // One step with learning rate lr on the ranges' gradients accumulated since the last step (then zeroed), on the
  // weights the runner holds; the next forward uses the new θ. Returns the gradient norm before clipping.
  virtual double adapt_optimizer_step(double lr);
  virtual void adapt_optimizer_reset();  // fresh state (moments / velocity, step count)
  // θ's ranges as the runner holds them, into host (only those elements are written).
  virtual void get_param_ranges(float* host, const std::vector<ParamRange>& ranges) const;
  // Weight sets of the trainable ranges kept beside θ on the runner's device (where adapt_optimizer_begin returned
  // true), so that a test-time adapter switches between θ and θ₀ without a host round trip: keep_param_ranges copies
  // the current values of `ranges` into slot 0 or 1; load_param_ranges makes a slot's values current again, as
  // set_param_ranges would with them (`ranges` must be the ones kept). The base class has none (Error).
  virtual void keep_param_ranges(int slot, const std::vector<ParamRange>& ranges);
  virtual void load_param_ranges(int slot, const std::vector<ParamRange>& ranges);

  // --- training (train/trainer.h)
  // AdamW moments and the data-parallel shards (CPU: each micro-batch split into `shards` threads, gradients summed
  // in shard order; the GPU runs a micro-batch whole and says so when shards > 1).
  virtual void train_begin(const AdamWConfig& adamw, int shards) = 0;
  // One of `accum` micro-batches of a step: forward, next-token loss (gradient scale·∂Σ/∂logits; loss reported
  // × scale), the router aux losses with the run's coefficients lb, z shared among the micro-batches (and shards),
  // backward ADDED into the gradients. in, tg: [B, S].
  virtual TrainLosses train_micro_batch(const int32_t* in, const int32_t* tg, int B, int S, double scale, double lb,
                                        double z, int accum) = 0;
  virtual double clip_gradients(double max_norm) = 0;  // global L2 norm before clipping (max_norm ≤ 0: no clipping)
  virtual void optimizer_step(double lr) = 0;
  virtual void save_optimizer(const std::string& path) const = 0;
  virtual void load_optimizer(const std::string& path) = 0;

 protected:
  // The tier the next set_params quantises to (set_expert_precision's second half); the default refuses.
  virtual void set_expert_tier(ops::ExpertPrecision p);
};

std::unique_ptr<Runner> make_runner(const ModelConfig& c, const RunnerOptions& o);

// Makes runners of any config on one device (e.g. for test-time adaptation, whose config adds LoRA adapters).
using RunnerFactory = std::function<std::unique_ptr<Runner>(const ModelConfig&)>;
RunnerFactory runner_factory(const RunnerOptions& o);

// The MoE-kernel choice of a GPU runner (the fused kernels run every routing policy, test-time training included):
// `why_not` says why they cannot run the model ("" when they can). auto → fused when they can; fused → fused, or an
// Error naming the reason; host → host. Logs the choice (and auto's reason for falling back). True for fused.
bool choose_moe_kernels(const std::string& moe_kernels, const std::string& why_not);

}  // namespace wattmoe
