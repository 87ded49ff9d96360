// The GPU runner (model/runner.h): TransformerCudaT<float|bf16> (gpu/transformer_cuda.h) on one CUDA device with its
// own context. fp32 or bf16 (fp32 master weights and gradients either way); the MoE layers on host routing (every
// policy, routing bit-identical to the CPU's at equal router probabilities) or on the fused kernels (every policy as
// knobs in device memory, backward included), chosen once at construction by choose_moe_kernels.
//
// Differences from the CPU runner, all within the precision's rounding: fp32 sums in another order (and bf16
// rounding for bf16). The routing observer of a fused forward runs when the host first reads anything of that forward
// (or at the next forward): the routing comes down in one copy per forward, and the wait for it is the one the read
// needed anyway. Training keeps AdamW's moments on the device and runs each micro-batch whole (no shards).
#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>

#include "core/error.h"
#include "core/log.h"
#include "gpu/transformer_cuda.h"
#include "model/objective.h"
#include "model/runner_impl.h"
#include "moe/route_policy_block.h"
#include "ops/cuda/context.h"  // PinnedBuffer
#include "ops/cuda/dense_ops.h"
#include "model/param_spans.h"

namespace wattmoe {

bool cuda_device_visible() { return cuda::device_available(); }

namespace {

using gpu::TransformerCudaT;

// AdamW's state on the device: moments m, v and the decay mask, built as AdamW builds it (1 on matrices); saved and
// loaded in AdamW's own file format (model/optimizer.h), so CPU and GPU runs resume from each other's checkpoints.
struct DeviceAdamW {
  AdamWConfig cfg;
  cuda::DeviceBuffer<float> m, v;
  cuda::DeviceBuffer<uint8_t> decay;
  int64_t t = 0;

  DeviceAdamW(cuda::Context& ctx, const ParamLayout& layout, AdamWConfig c) : cfg(c) {
    const size_t n = size_t(layout.total());
    const std::vector<uint8_t> mask = weight_decay_mask(layout);
    decay.upload(mask, ctx.stream());
    m.resize(n), v.resize(n);
    m.zero(ctx.stream()), v.zero(ctx.stream());
    ctx.sync();  // `mask` dies here
  }
  void step(cuda::Context& ctx, float* params, const float* grads, double lr) {
    ++t;
    cuda::adamw_step(ctx, params, grads, m.data(), v.data(), decay.data(), nullptr, int64_t(m.size()), lr, cfg.beta1,
                     cfg.beta2, cfg.eps, cfg.weight_decay, t);
  }
  void save(cuda::Context& ctx, const ParamLayout& layout, const std::string& path) const {
    const std::vector<float> hm = m.download(ctx.stream()), hv = v.download(ctx.stream());
    save_adam_moments(path, layout, hm.data(), hv.data(), t);
  }
  void load(cuda::Context& ctx, const ParamLayout& layout, const std::string& path) {
    std::vector<float> hm(m.size()), hv(v.size());
    t = load_adam_moments(path, layout, hm.data(), hv.data());
    m.upload(hm, ctx.stream()), v.upload(hv, ctx.stream());
    ctx.sync();  // hm, hv die here
  }
};

// Test-time adaptation's trainable elements as packed pieces (cuda::PackedPiece): the ranges split wherever a tensor
// or a scaled range begins or ends, so that a piece has one decay (AdamW decays matrices: weight_decay_mask) and one
// multiplier (the scaled range holding it, else 1); neighbours with equal both merged again; flat starts back to back.
std::vector<cuda::PackedPiece> pack_pieces(const ParamLayout& layout, const std::vector<ParamRange>& ranges,
                                           const std::vector<ScaledRange>& scaled) {
  std::vector<int64_t> cuts;
  for (const ParamSpec& s : layout.specs()) cuts.push_back(s.offset), cuts.push_back(s.offset + s.numel);
  for (const ScaledRange& s : scaled) cuts.push_back(s.range.offset), cuts.push_back(s.range.offset + s.range.numel);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  const auto mult_at = [&](int64_t i) {
    for (const ScaledRange& s : scaled)
      if (i >= s.range.offset && i < s.range.offset + s.range.numel) return s.mult;
    return 1.0;
  };
  const auto decay_at = [&](int64_t i) {  // the spec holding i (specs ascending and contiguous)
    const auto& specs = layout.specs();
    const auto it = std::upper_bound(specs.begin(), specs.end(), i,
                                     [](int64_t x, const ParamSpec& s) { return x < s.offset; });
    return it != specs.begin() && std::prev(it)->is_matrix() ? 1 : 0;
  };
  std::vector<cuda::PackedPiece> out;
  int64_t flat = 0;
  for (const ParamRange& r : ranges) {
    for (int64_t a = r.offset, end = r.offset + r.numel; a < end;) {
      const int64_t b = std::min(end, *std::upper_bound(cuts.begin(), cuts.end(), a));
      cuda::PackedPiece p;
      p.offset = a, p.flat = flat, p.numel = b - a, p.mult = mult_at(a), p.decay = decay_at(a);
      if (!out.empty() && out.back().offset + out.back().numel == a && out.back().mult == p.mult &&
          out.back().decay == p.decay)
        out.back().numel += p.numel;
      else
        out.push_back(p);
      flat += b - a, a = b;
    }
  }
  return out;
}

// Parameter ranges packed back to back: their pieces (pack_pieces; host copy and device array) and the packed length.
struct PackedRanges {
  std::vector<ParamRange> ranges;
  std::vector<cuda::PackedPiece> host_pieces;
  cuda::DeviceBuffer<cuda::PackedPiece> pieces;
  int64_t total = 0;

  void build(const ParamLayout& layout, const std::vector<ParamRange>& r, const std::vector<ScaledRange>& scaled,
             cuda::Context& ctx) {
    ranges = r;
    host_pieces = pack_pieces(layout, r, scaled);
    total = 0;
    for (const cuda::PackedPiece& p : host_pieces) total += p.numel;
    pieces.upload(host_pieces, ctx.stream());  // host_pieces outlives the upload
  }
  int count() const { return int(host_pieces.size()); }
};

// Runner::adapt_optimizer_begin's state: the packed ranges (whose bf16 copy a step refreshes), the packed gradient,
// the moments (AdamW) or velocity (SGD, in m) and the step count.
struct DeviceAdaptOptimizer {
  AdaptOptimConfig cfg;
  PackedRanges packed;
  cuda::DeviceBuffer<float> g, m, v;
  int64_t t = 0;

  void reset(cuda::Context& ctx) {
    m.zero(ctx.stream()), v.zero(ctx.stream());
    t = 0;
  }
};

// Runner::keep_param_ranges's weight sets: the ranges' values packed back to back.
struct KeptRanges {
  PackedRanges packed;
  cuda::DeviceBuffer<float> values;
};

bool same_ranges(const std::vector<ParamRange>& a, const std::vector<ParamRange>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const ParamRange& x, const ParamRange& y) {
    return x.offset == y.offset && x.numel == y.numel;
  });
}

template <class T>
class CudaRunner final : public Runner {
 public:
  CudaRunner(const ModelConfig& c, const RunnerOptions& o)
      : ctx_(o.gpu), model_(c, ctx_), precision_(o.precision),
        experts_(ops::parse_expert_precision(o.expert_precision)) {
    if (choose_moe_kernels(o.moe_kernels, model_.fused_moe_unsupported()))
      model_.set_moe_kernels(gpu::MoeKernels::Fused);
    model_.set_decode_graphs(o.decode_graphs);
  }

  const ModelConfig& config() const override { return model_.config(); }
  const ParamLayout& layout() const override { return model_.layout(); }
  RunnerInfo info() const override {
    RunnerInfo i;
    i.device = "cuda", i.precision = precision_, i.moe_kernels = fused() ? "fused" : "host";
    i.expert_precision = ops::expert_precision_name(experts_);
    const cuda::StepGraphStats& g = model_.decode_graph_stats();
    i.decode_graphs = fused() && model_.decode_graphs_enabled();
    i.graph_captures = g.captures, i.graph_replays = g.replays, i.graph_failure = g.failure;
    return i;
  }

  // Quantised experts (model/expert_quant.h): quantised on the device (TransformerCudaT::quantise_experts).
  void set_params(const float* host) override {
    model_.upload_params(host);
    quantise_uploaded_experts(experts_);
  }
  // Only the routed experts of `full` travel, and they are quantised on the device: no round trip of the weights.
  void set_expert_precision(ops::ExpertPrecision p, const float* full) override {
    if (p == experts_) return;
    const std::vector<ParamRange> ranges = expert_param_ranges(layout());
    upload_ranges(full, ranges);
    quantise_uploaded_experts(p);
  }
  void set_param_ranges(const float* host, const std::vector<ParamRange>& ranges) override {
    WATTMOE_REQUIRE(experts_ == ops::ExpertPrecision::Bf16 || !ranges_touch_experts(layout(), ranges),
                    "--expert-precision {}: the routed experts are quantised; changing them in place is not supported "
                    "(set all weights with set_params)",
                    ops::expert_precision_name(experts_));
    upload_ranges(host, ranges);
  }
  void get_params(float* host) const override { model_.download_params(host); }

  void set_routing(const RoutingSpec& spec) override {
    const ModelConfig& c = config();
    validate_routing_spec(spec, c.num_layers, c.num_experts, c.top_k);
    if (fused()) {  // the policy as device knobs: no host selection
      model_.set_route_policies(route_policy_blocks(spec, c.num_layers, c.num_experts));
      select_ = nullptr;
    } else {
      select_ = spec_select(spec, c.num_layers, c.num_experts, c.top_k);
    }
  }
  void set_routing_observer(RoutingObserver observe) override { observe_ = std::move(observe); }

  void forward(const int32_t* ids, int B, int S) override {
    observed([&] { model_.forward(ids, B, S, select_); });
  }
  void forward_inference(const int32_t* ids, int B, int S) override {
    observed([&] { model_.forward_inference(ids, B, S, select_); });
  }
  void reset_cache(int64_t capacity, int batch) override { model_.reset_cache(capacity, batch); }
  void forward_cached(const int32_t* ids, int S) override {
    observed([&] { model_.forward_cached(ids, S, select_); });
  }

  void reset_slots(int slots, int64_t capacity) override { model_.reset_slots(slots, capacity); }
  void clear_slot(int slot) override { model_.clear_slot(slot); }
  void forward_slot(int slot, const int32_t* ids, int S) override {
    observed([&] { model_.forward_slot(slot, ids, S, select_); });
  }
  void forward_slots(const int32_t* slots, const int32_t* ids, int n) override {
    observed([&] { model_.forward_slots(slots, ids, n, select_); });
  }
  int64_t tokens() const override { return model_.tokens(); }
  double nll(const int32_t* targets) override {
    flush();
    return model_.nll(targets, 0.0, /*want_grad=*/false);
  }
  double mean_entropy() override {
    flush();
    return model_.objective(Objective::Entropy, /*want_grad=*/false);  // mean over the rows
  }
  // The same host buffer every call (downloaded again each time): `logits(), logits() + n` is one range.
  const float* logits() override {
    flush();
    model_.download_logits(logits_);
    return logits_.data();
  }
  bool logits_on_host() const override { return false; }
  const Routing& routing(int layer) override {
    flush();
    return model_.routing(layer).routing;
  }
  RouterViews<float> router_views() override {
    flush();
    return model_.router_views();
  }

  double next_token_loss(const int32_t* targets, double weight, bool want_grad) override {
    flush();
    const int64_t N = tokens();
    int64_t scored = 0;
    for (int64_t i = 0; i < N; ++i) scored += targets[i] >= 0 ? 1 : 0;
    if (scored == 0) {
      if (want_grad) zero_dlogits();
      return 0;
    }
    // with want_grad OVERWRITES dlogits with weight/scored · ∂Σ/∂logits, as next_token_nll's weight over the rows
    return model_.nll(targets, want_grad ? weight / double(scored) : 0.0, want_grad) / double(scored);
  }
  void set_dlogits(const float* host) override {
    const int64_t n = tokens() * config().vocab_size;
    if constexpr (std::is_same_v<T, float>) {
      WATTMOE_CUDA_CALL(cudaMemcpyAsync(model_.dlogits(), host, sizeof(float) * size_t(n), cudaMemcpyHostToDevice,
                                        ctx_.stream()));
    } else {
      staging_.upload(host, size_t(n), ctx_.stream());
      cuda::convert<T, float>(ctx_, staging_.data(), model_.dlogits(), n);
    }
  }
  void zero_dlogits() override {
    WATTMOE_CUDA_CALL(cudaMemsetAsync(model_.dlogits(), 0, sizeof(T) * size_t(tokens() * config().vocab_size),
                                      ctx_.stream()));
  }
  void backward(const GradMask* mask) override {
    flush();
    model_.backward(mask);
  }
  void zero_grads() override { model_.zero_grads(); }
  void take_grads(float* host, const std::vector<ParamRange>& ranges) override {
    int64_t n = 0;
    for (const ParamRange& r : ranges) n += r.numel;
    packed_.resize(size_t(n));
    int64_t at = 0;
    for (const ParamRange& r : ranges) {
      WATTMOE_CUDA_CALL(cudaMemcpyAsync(packed_.data() + at, model_.master_grads() + r.offset,
                                        sizeof(float) * size_t(r.numel), cudaMemcpyDeviceToHost, ctx_.stream()));
      at += r.numel;
    }
    for (const ParamRange& r : ranges)
      WATTMOE_CUDA_CALL(cudaMemsetAsync(model_.master_grads() + r.offset, 0, sizeof(float) * size_t(r.numel),
                                        ctx_.stream()));
    ctx_.sync();
    span_for_each(spans_of(ranges), [&](int64_t begin, int64_t end, int64_t flat) {
      for (int64_t i = begin, k = flat; i < end; ++i, ++k) host[i] += packed_.data()[k];
    });
  }

  void finish() override { ctx_.sync(); }

  bool adapt_optimizer_begin(const std::vector<ParamRange>& ranges, const std::vector<ScaledRange>& scaled,
                             const AdaptOptimConfig& cfg) override {
    if (experts_ != ops::ExpertPrecision::Bf16 && ranges_touch_experts(layout(), ranges)) return false;
    auto o = std::make_unique<DeviceAdaptOptimizer>();
    o->cfg = cfg;
    o->packed.build(layout(), ranges, scaled, ctx_);
    const size_t total = size_t(o->packed.total);
    o->g.resize(total), o->m.resize(total);
    o->v.resize(cfg.kind == AdaptOptimizerKind::AdamW ? total : 0);
    o->reset(ctx_);
    adapt_opt_ = std::move(o);
    return true;
  }
  double adapt_optimizer_step(double lr) override {
    WATTMOE_REQUIRE(adapt_opt_ != nullptr, "adapt_optimizer_step before adapt_optimizer_begin");
    DeviceAdaptOptimizer& o = *adapt_opt_;
    const PackedRanges& pr = o.packed;
    cuda::pack_grads(ctx_, model_.master_grads(), pr.pieces.data(), pr.count(), pr.total, o.g.data());
    const double norm = std::sqrt(cuda::sum_squares(ctx_, o.g.data(), pr.total));  // waits for the backward
    cuda::PackedStep s;
    s.adamw = o.cfg.kind == AdaptOptimizerKind::AdamW, s.lr = lr, s.beta1 = o.cfg.beta1, s.beta2 = o.cfg.beta2;
    s.eps = o.cfg.eps, s.weight_decay = o.cfg.weight_decay, s.momentum = o.cfg.momentum, s.nesterov = o.cfg.nesterov;
    s.t = ++o.t;
    if (o.cfg.clip > 0 && norm > o.cfg.clip) s.grad_scale = float(o.cfg.clip / norm);  // clip_grad_ranges
    cuda::packed_optimizer_step(ctx_, model_.params(), o.g.data(), o.m.data(), o.v.data(), pr.pieces.data(),
                                pr.count(), pr.total, s);
    model_.sync_weights(&pr.ranges);
    return norm;
  }
  void adapt_optimizer_reset() override {
    WATTMOE_REQUIRE(adapt_opt_ != nullptr, "adapt_optimizer_reset before adapt_optimizer_begin");
    adapt_opt_->reset(ctx_);
  }
  void get_param_ranges(float* host, const std::vector<ParamRange>& ranges) const override {
    for (const ParamRange& r : ranges)
      WATTMOE_CUDA_CALL(cudaMemcpyAsync(host + r.offset, model_.params() + r.offset, sizeof(float) * size_t(r.numel),
                                        cudaMemcpyDeviceToHost, ctx_.stream()));
    ctx_.sync();
  }

  void keep_param_ranges(int slot, const std::vector<ParamRange>& ranges) override {
    KeptRanges& k = kept_slot(slot);
    PackedRanges& pr = k.packed;
    if (!same_ranges(pr.ranges, ranges) || pr.host_pieces.empty()) {
      pr.build(layout(), ranges, {}, ctx_);
      k.values.resize(size_t(pr.total));
    }
    cuda::gather_pieces(ctx_, model_.params(), pr.pieces.data(), pr.count(), pr.total, k.values.data());
  }
  void load_param_ranges(int slot, const std::vector<ParamRange>& ranges) override {
    const KeptRanges& k = kept_slot(slot);
    const PackedRanges& pr = k.packed;
    WATTMOE_REQUIRE(!pr.host_pieces.empty() && same_ranges(pr.ranges, ranges),
                    "load_param_ranges: slot {} holds no weight set of these ranges (keep_param_ranges first)", slot);
    cuda::scatter_pieces(ctx_, k.values.data(), pr.pieces.data(), pr.count(), pr.total, model_.params());
    model_.sync_weights(&ranges);
  }

  void train_begin(const AdamWConfig& adamw, int shards) override {
    WATTMOE_REQUIRE(experts_ == ops::ExpertPrecision::Bf16,
                    "--expert-precision {}: training a model with quantised experts is not supported",
                    ops::expert_precision_name(experts_));
    if (shards > 1) log_warn("train --device cuda: --shards {} ignored (the GPU runs each micro-batch whole)", shards);
    opt_ = std::make_unique<DeviceAdamW>(ctx_, layout(), adamw);
  }
  TrainLosses train_micro_batch(const int32_t* in, const int32_t* tg, int B, int S, double scale, double lb,
                                double z, int accum) override {
    flush();
    // As the CPU runner with one shard: each micro-batch's auxiliary losses carry 1/accum of their coefficients.
    const double share = 1.0 / double(accum);
    TrainLosses r;
    model_.forward(in, B, S);
    r.loss = model_.nll(tg, scale, /*want_grad=*/true) * scale;
    const AuxLossValues aux = model_.router_aux_losses(lb * share, z * share);
    r.load_balance = aux.load_balance * share, r.z = aux.z * share;
    model_.backward();
    return r;
  }
  double clip_gradients(double max_norm) override {
    // clip_grad_norm (model/optimizer.h) on the device: the norm in double, scaled to max_norm when larger.
    const int64_t n = layout().total();
    const double gnorm = std::sqrt(cuda::sum_squares(ctx_, model_.master_grads(), n));
    if (max_norm > 0 && gnorm > max_norm) cuda::scale(ctx_, model_.master_grads(), float(max_norm / (gnorm + 1e-6)), n);
    return gnorm;
  }
  void optimizer_step(double lr) override {
    WATTMOE_REQUIRE(opt_ != nullptr, "optimizer_step before train_begin");
    opt_->step(ctx_, model_.params(), model_.master_grads(), lr);
    model_.sync_weights();
  }
  void save_optimizer(const std::string& path) const override {
    WATTMOE_REQUIRE(opt_ != nullptr, "save_optimizer before train_begin");
    opt_->save(ctx_, layout(), path);
  }
  void load_optimizer(const std::string& path) override {
    WATTMOE_REQUIRE(opt_ != nullptr, "load_optimizer before train_begin");
    opt_->load(ctx_, layout(), path);
  }

 private:
  // `ranges` of host (layout order) into the fp32 master weights and the bf16 copy.
  void upload_ranges(const float* host, const std::vector<ParamRange>& ranges) {
    // Pageable host memory: each copy has left `host` when cudaMemcpyAsync returns, so the host may change it next.
    for (const ParamRange& r : ranges)
      WATTMOE_CUDA_CALL(cudaMemcpyAsync(model_.params() + r.offset, host + r.offset, sizeof(float) * size_t(r.numel),
                                        cudaMemcpyHostToDevice, ctx_.stream()));
    model_.sync_weights(&ranges);
  }
  // The experts as uploaded become tier p. On an error (a non-finite weight, a shape the decode kernels refuse) they
  // stay as uploaded, and the tier is bf16.
  void quantise_uploaded_experts(ops::ExpertPrecision p) {
    experts_ = ops::ExpertPrecision::Bf16;
    model_.quantise_experts(p);
    experts_ = p;
  }
  bool fused() const { return model_.moe_kernels() == gpu::MoeKernels::Fused; }
  // A forward whose routing the observer gets (at the next flush: reading it back waits for the GPU).
  template <class Forward>
  void observed(const Forward& forward) {
    flush();
    forward();
    pending_ = true;
  }
  // The last forward's routing to the observer (once), layers in order.
  void flush() {
    if (!pending_) return;
    pending_ = false;
    if (!observe_) return;
    for (int l = 0; l < config().num_layers; ++l)
      if (config().is_moe_layer(l)) observe_(l, model_.routing(l).routing);
  }

  mutable cuda::Context ctx_;  // declared first: the model and buffers below are released before it
  TransformerCudaT<T> model_;
  std::string precision_;
  ops::ExpertPrecision experts_;  // the routed experts' format (model/expert_quant.h)
  SpecSelectFn select_;
  RoutingObserver observe_;
  bool pending_ = false;  // a forward whose routing the observer has not seen yet
  std::vector<float> logits_;
  cuda::PinnedBuffer<float> packed_;  // take_grads: page-locked, so the copies run at the link's speed
  cuda::DeviceBuffer<float> staging_;
  std::unique_ptr<DeviceAdamW> opt_;
  std::unique_ptr<DeviceAdaptOptimizer> adapt_opt_;
  std::array<KeptRanges, 2> kept_;
  KeptRanges& kept_slot(int slot) {
    WATTMOE_REQUIRE(slot >= 0 && slot < int(kept_.size()), "weight-set slot {} is not 0 or 1", slot);
    return kept_[size_t(slot)];
  }
};

}  // namespace

std::unique_ptr<Runner> make_cuda_runner(const ModelConfig& c, const RunnerOptions& o) {
  if (o.precision == "bf16") return std::make_unique<CudaRunner<cuda::bf16>>(c, o);
  return std::make_unique<CudaRunner<float>>(c, o);
}

}  // namespace wattmoe
