// The CPU runner (model/runner.h): Transformer<float> over a host weight buffer — the reference every other runner is
// tested against. Training splits each micro-batch into data-parallel shards (one thread each, single-threaded BLAS),
// summing their gradients in shard order, so results depend on the shard count but never on timing.
#include <algorithm>
#include <exception>
#include <optional>
#include <thread>

#include "core/error.h"
#include "model/expert_quant.h"
#include "model/kv_cache.h"
#include "model/runner_impl.h"
#include "model/transformer.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/token_objectives.h"
#include "model/param_spans.h"

namespace wattmoe {

namespace {

class CpuRunner final : public Runner {
 public:
  CpuRunner(const ModelConfig& c, ops::ExpertPrecision experts)
      : model_(c), params_(size_t(model_.layout().total()), 0.f), experts_(experts) {}

  const ModelConfig& config() const override { return model_.config(); }
  const ParamLayout& layout() const override { return model_.layout(); }
  RunnerInfo info() const override {
    RunnerInfo i;
    i.device = "cpu", i.precision = "fp32", i.moe_kernels = "host";
    i.expert_precision = ops::expert_precision_name(experts_);
    return i;
  }

  // Quantised experts (model/expert_quant.h): the experts become code · scale as they arrive.
  void set_params(const float* host) override {
    std::copy(host, host + params_.size(), params_.begin());
    quantise_experts(config(), layout(), params_.data(), experts_);
  }
  void set_param_ranges(const float* host, const std::vector<ParamRange>& ranges) override {
    WATTMOE_REQUIRE(experts_ == ops::ExpertPrecision::Bf16 || !ranges_touch_experts(layout(), ranges),
                    "--expert-precision {}: the routed experts are quantised; changing them in place is not supported "
                    "(set all weights with set_params)",
                    ops::expert_precision_name(experts_));
    for (const ParamRange& r : ranges) std::copy(host + r.offset, host + r.offset + r.numel, params_.begin() + r.offset);
  }
  void get_params(float* host) const override { std::copy(params_.begin(), params_.end(), host); }

  void set_routing(const RoutingSpec& spec) override {
    const ModelConfig& c = config();
    select_ = spec_select(spec, c.num_layers, c.num_experts, c.top_k);
  }
  void set_routing_observer(RoutingObserver observe) override { observe_ = std::move(observe); }

  void forward(const int32_t* ids, int B, int S) override { run(ids, B, S, nullptr); }
  void reset_cache(int64_t capacity, int batch) override {
    WATTMOE_REQUIRE(capacity >= 1, "KV cache capacity must be positive, got {}", capacity);
    WATTMOE_REQUIRE(batch == 1, "the CPU runner decodes one sequence at a time, not {}", batch);
    cache_ = std::make_unique<KvCache<float>>(config().num_layers, capacity, config().kv_dim());
  }
  void forward_cached(const int32_t* ids, int S) override {
    WATTMOE_REQUIRE(cache_ != nullptr, "forward_cached before reset_cache");
    run(ids, 1, S, cache_.get());
  }
  void reset_slots(int slots, int64_t capacity) override {
    WATTMOE_REQUIRE(slots >= 1 && capacity >= 1, "KV cache slots: need >= 1 slot of >= 1 position, got {} of {}",
                    slots, capacity);
    slots_.clear();  // release the old caches before allocating the new ones
    for (int s = 0; s < slots; ++s)
      slots_.push_back(std::make_unique<KvCache<float>>(config().num_layers, capacity, config().kv_dim()));
  }
  void clear_slot(int slot) override { cache_slot(slot).clear(); }
  void forward_slot(int slot, const int32_t* ids, int S) override { run(ids, 1, S, &cache_slot(slot)); }
  // The reference of the batched step: exactly n one-token forward_slot calls, their rows gathered.
  void forward_slots(const int32_t* slots, const int32_t* ids, int n) override {
    check_slot_rows(slots, n, slots_.size());
    for (int r = 0; r < n; ++r) {  // all or nothing: no slot moves on when one is full
      const KvCache<float>& s = cache_slot(slots[r]);
      WATTMOE_REQUIRE(s.length < s.capacity, "KV cache slot {} is full ({} positions)", slots[r], s.capacity);
    }
    const ModelConfig& c = config();
    Rows rows;
    rows.routing.resize(size_t(c.num_layers));
    for (int r = 0; r < n; ++r) {
      run(ids + r, 1, 1, &cache_slot(slots[r]));
      rows.logits.insert(rows.logits.end(), acts_.logits.begin(), acts_.logits.end());
      for (int l = 0; l < c.num_layers; ++l)
        if (c.is_moe_layer(l)) rows.routing[size_t(l)].append_rows(acts_.layers[size_t(l)].routing);
    }
    rows.tokens = n;
    rows_ = std::move(rows);
  }

  int64_t tokens() const override { return rows_ ? rows_->tokens : acts_.tokens(); }
  double nll(const int32_t* targets) override {
    return ops::nll_loss<float>(logits(), targets, tokens(), config().vocab_size, nullptr, 0);
  }
  double mean_entropy() override { return wattmoe::mean_entropy<float>(logits(), tokens(), config().vocab_size); }
  const float* logits() override { return rows_ ? rows_->logits.data() : acts_.logits.data(); }
  bool logits_on_host() const override { return true; }
  const Routing& routing(int layer) override {
    return rows_ ? rows_->routing.at(size_t(layer)) : acts_.layers.at(size_t(layer)).routing;
  }
  RouterViews<float> router_views() override {
    not_after_rows("router_views");
    return wattmoe::router_views(acts_, config());
  }

  double next_token_loss(const int32_t* targets, double weight, bool want_grad) override {
    not_after_rows("next_token_loss");
    if (want_grad) dlogits_.assign(acts_.logits.size(), 0.f);
    return next_token_nll<float>(acts_.logits.data(), targets, tokens(), config().vocab_size, weight,
                                 want_grad ? dlogits_.data() : nullptr);
  }
  void set_dlogits(const float* host) override {
    not_after_rows("set_dlogits");
    dlogits_.assign(host, host + acts_.logits.size());
  }
  void zero_dlogits() override { dlogits_.assign(acts_.logits.size(), 0.f); }
  void backward(const GradMask* mask) override {
    not_after_rows("backward");
    WATTMOE_CHECK(dlogits_.size() == acts_.logits.size(), "backward before a logits gradient was set");
    ensure_grads();
    model_.backward(params_.data(), ids_.data(), dlogits_.data(), acts_, grads_.data(), mask);
  }
  void zero_grads() override {
    ensure_grads();
    std::fill(grads_.begin(), grads_.end(), 0.f);
    for (Shard& w : shards_) std::fill(w.grads.begin(), w.grads.end(), 0.f);
  }
  void take_grads(float* host, const std::vector<ParamRange>& ranges) override {
    ensure_grads();
    span_for_each(spans_of(ranges), [&](int64_t begin, int64_t end, int64_t) {
      for (int64_t i = begin; i < end; ++i) host[i] += grads_[size_t(i)], grads_[size_t(i)] = 0.f;
    });
  }

  void train_begin(const AdamWConfig& adamw, int shards) override {
    WATTMOE_REQUIRE(experts_ == ops::ExpertPrecision::Bf16,
                    "--expert-precision {}: training a model with quantised experts is not supported",
                    ops::expert_precision_name(experts_));
    opt_ = std::make_unique<AdamW>(layout(), adamw);
    shards_.assign(size_t(std::max(1, shards)), Shard{});
    for (Shard& w : shards_) w.grads.assign(params_.size(), 0.f);
    if (shards_.size() > 1) ops::set_blas_threads(1);
  }
  TrainLosses train_micro_batch(const int32_t* in, const int32_t* tg, int B, int S, double scale, double lb,
                                double z, int accum) override {
    WATTMOE_REQUIRE(!shards_.empty(), "train_micro_batch before train_begin");
    const int n = int(shards_.size());
    WATTMOE_REQUIRE(B % n == 0, "train: batch {} is not divisible into {} shards", B, n);
    const int shard_b = B / n;
    const ModelConfig& c = config();
    auto run_shard = [&](int k) {
      Shard& w = shards_[size_t(k)];
      const size_t off = size_t(k) * shard_b * S, len = size_t(shard_b) * S;
      w.in.assign(in + off, in + off + len);
      w.tg.assign(tg + off, tg + off + len);
      model_.forward(params_.data(), w.in.data(), shard_b, S, w.acts);
      w.dlogits.resize(w.acts.logits.size());
      w.loss.loss = ops::nll_loss<float>(w.acts.logits.data(), w.tg.data(), int64_t(len), c.vocab_size,
                                         w.dlogits.data(), scale) * scale;
      const double share = 1.0 / (double(accum) * n);
      const AuxLossValues aux = model_.router_aux_losses(w.acts, lb * share, z * share);
      w.loss.load_balance = aux.load_balance * share, w.loss.z = aux.z * share;
      model_.backward(params_.data(), w.in.data(), w.dlogits.data(), w.acts, w.grads.data());
    };
    // A shard that throws (a bad id, out of memory) must not escape its thread (std::terminate): each keeps its
    // exception, every thread is joined, and the first in shard order is rethrown here.
    std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
    auto guarded = [&](int k) {
      try {
        run_shard(k);
      } catch (...) {
        errors[size_t(k)] = std::current_exception();
      }
    };
    std::vector<std::thread> threads;
    for (int k = 1; k < n; ++k) threads.emplace_back(guarded, k);
    guarded(0);
    for (auto& t : threads) t.join();
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    TrainLosses sum;
    for (const Shard& w : shards_) sum.loss += w.loss.loss, sum.load_balance += w.loss.load_balance, sum.z += w.loss.z;
    return sum;
  }
  double clip_gradients(double max_norm) override {
    // The shards' gradients summed in a fixed order: bitwise reproducible for a given shard count.
    ensure_grads();
    for (size_t i = 0; i < grads_.size(); ++i) {
      float g = 0;
      for (const Shard& w : shards_) g += w.grads[i];
      grads_[i] = g;
    }
    return clip_grad_norm(grads_.data(), int64_t(grads_.size()), max_norm);
  }
  void optimizer_step(double lr) override {
    WATTMOE_REQUIRE(opt_ != nullptr, "optimizer_step before train_begin");
    opt_->step(params_.data(), grads_.data(), lr);
  }
  void save_optimizer(const std::string& path) const override {
    WATTMOE_REQUIRE(opt_ != nullptr, "save_optimizer before train_begin");
    opt_->save(path);
  }
  void load_optimizer(const std::string& path) override {
    WATTMOE_REQUIRE(opt_ != nullptr, "load_optimizer before train_begin");
    opt_->load(path);
  }

 private:
  void set_expert_tier(ops::ExpertPrecision p) override { experts_ = p; }
  struct Shard {
    std::vector<int32_t> in, tg;
    std::vector<float> dlogits, grads;
    Activations<float> acts;
    TrainLosses loss;
  };

  // forward_slots' gathered rows (what logits, tokens and routing report until the next forward).
  struct Rows {
    int64_t tokens = 0;
    std::vector<float> logits;     // [tokens, V]
    std::vector<Routing> routing;  // per layer (empty for dense layers)
  };
  void not_after_rows(const char* what) const {
    WATTMOE_REQUIRE(!rows_, "{} after forward_slots (a decode step has no backward)", what);
  }

  void run(const int32_t* ids, int B, int S, KvCache<float>* cache) {
    rows_.reset();
    model_.forward(params_.data(), ids, B, S, acts_, cache, select_);
    ids_.assign(ids, ids + int64_t(B) * S);
    if (observe_)
      for (int l = 0; l < config().num_layers; ++l)
        if (config().is_moe_layer(l)) observe_(l, acts_.layers[size_t(l)].routing);
  }
  KvCache<float>& cache_slot(int slot) {
    WATTMOE_REQUIRE(slot >= 0 && size_t(slot) < slots_.size(), "KV cache slot {} does not exist ({} slots)", slot,
                    slots_.size());
    return *slots_[size_t(slot)];
  }
  void ensure_grads() {
    if (grads_.size() != params_.size()) grads_.assign(params_.size(), 0.f);
  }

  Transformer<float> model_;
  std::vector<float> params_, grads_, dlogits_;
  ops::ExpertPrecision experts_;  // the routed experts' format (model/expert_quant.h)
  Activations<float> acts_;
  std::vector<int32_t> ids_;
  SpecSelectFn select_;
  RoutingObserver observe_;
  std::unique_ptr<KvCache<float>> cache_;
  std::vector<std::unique_ptr<KvCache<float>>> slots_;  // reset_slots: one cache per served sequence
  std::optional<Rows> rows_;                            // set by forward_slots, cleared by any other forward
  std::unique_ptr<AdamW> opt_;
  std::vector<Shard> shards_;
};

}  // namespace

std::unique_ptr<Runner> make_cpu_runner(const ModelConfig& c, ops::ExpertPrecision experts) {
  return std::make_unique<CpuRunner>(c, experts);
}

}  // namespace wattmoe
