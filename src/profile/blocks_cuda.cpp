#include "profile/blocks_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/error.h"
#include "energy/profile_fit.h"
#include "model/params.h"
#include "ops/moe_cuda.h"

namespace wattmoe {

namespace {

uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A device bf16 tensor of n values: random (std) or, when host is set, host[0..n) converted.
DeviceBuffer tensor(size_t n, const float* host, double std, uint64_t seed) {
  DeviceBuffer d(n * 2);
  if (host)
    upload_bf16(d.get(), host, n);
  else
    fill_uniform_bf16(d.get(), n, std, seed);
  return d;
}

}  // namespace

CudaBlockExecutor::CudaBlockExecutor(const ModelConfig& c, const float* params, uint64_t seed, int max_tokens,
                                     int graph_calls)
    : c_(c), max_tokens_(max_tokens), graph_calls_(graph_calls) {
  WATTMOE_REQUIRE(max_tokens >= 1, "profile: max tokens {}: expected >= 1", max_tokens);
  WATTMOE_REQUIRE(graph_calls >= 1, "profile: calls per CUDA graph {}: expected >= 1", graph_calls);
  const size_t H = size_t(c.hidden_size), I = size_t(c.moe_intermediate_size), E = size_t(c.num_experts);
  const size_t S = size_t(c.shared_expert_intermediate_size), qd = size_t(c.q_dim()), kvd = size_t(c.kv_dim());
  const double sH = 1 / std::sqrt(double(H)), sI = 1 / std::sqrt(double(I)), sQ = 1 / std::sqrt(double(qd));
  std::unique_ptr<ParamLayout> layout;
  std::unique_ptr<ModelView<float>> view;
  if (params) {
    layout = std::make_unique<ParamLayout>(ParamLayout::build(c));
    view = std::make_unique<ModelView<float>>(ModelView<float>::bind(c, *layout, const_cast<float*>(params)));
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerView<float>* L = view ? &view->layers[size_t(l)] : nullptr;
    auto seed_of = [&](int id) { return mix(seed * 1315423911ull + uint64_t(l) * 64 + uint64_t(id)); };
    CudaLayerWeights w;
    w.router = tensor(E * H, L ? L->router : nullptr, sH, seed_of(0));
    w.wq = tensor(qd * H, L ? L->wq : nullptr, sH, seed_of(1));
    w.wk = tensor(kvd * H, L ? L->wk : nullptr, sH, seed_of(2));
    w.wv = tensor(kvd * H, L ? L->wv : nullptr, sH, seed_of(3));
    w.wo = tensor(H * qd, L ? L->wo : nullptr, sQ, seed_of(4));
    if (L) {
      // Experts are separate tensors in the checkpoint; the kernels want them stacked [E, ...].
      w.gate = DeviceBuffer(E * I * H * 2), w.up = DeviceBuffer(E * I * H * 2), w.down = DeviceBuffer(E * H * I * 2);
      for (size_t e = 0; e < E; ++e) {
        const size_t off = e * I * H * 2;
        upload_bf16(static_cast<char*>(w.gate.get()) + off, L->experts[e].gate, I * H);
        upload_bf16(static_cast<char*>(w.up.get()) + off, L->experts[e].up, I * H);
        upload_bf16(static_cast<char*>(w.down.get()) + off, L->experts[e].down, H * I);
      }
    } else {
      w.gate = tensor(E * I * H, nullptr, sH, seed_of(5));
      w.up = tensor(E * I * H, nullptr, sH, seed_of(6));
      w.down = tensor(E * H * I, nullptr, sI, seed_of(7));
    }
    if (S > 0) {
      w.sgate = tensor(S * H, L ? L->shared.gate : nullptr, sH, seed_of(8));
      w.sup = tensor(S * H, L ? L->shared.up : nullptr, sH, seed_of(9));
      w.sdown = tensor(H * S, L ? L->shared.down : nullptr, 1 / std::sqrt(double(S)), seed_of(10));
    }
    layers_.push_back(std::move(w));
    layer_names_.push_back("layer" + std::to_string(l));
  }
  x_ = tensor(size_t(max_tokens) * H, nullptr, 1.0, mix(seed ^ 0x5eedull));
  out_ = DeviceBuffer(size_t(max_tokens) * std::max(H, E) * 2);
  expert_ = std::make_unique<ExpertBlockCuda>(int(H), int(I), max_tokens);
  if (S > 0) shared_ = std::make_unique<ExpertBlockCuda>(int(H), int(S), max_tokens);
  router_ = std::make_unique<RouterBlockCuda>(int(H), int(E), max_tokens);
  attention_ = std::make_unique<AttentionBlockCuda>(
      AttentionShape{c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim}, max_tokens);
  cuda_synchronize();
}

CudaBlockExecutor::~CudaBlockExecutor() = default;

void CudaBlockExecutor::dispatch(const std::string& key, const std::function<void(cudaStream_t)>& work) {
  if (graph_calls_ <= 1) {
    work(stream_.get());
    return;
  }
  auto it = graphs_.find(key);
  if (it == graphs_.end())
    it = graphs_.emplace(key, std::make_unique<CudaGraphRun>(work, graph_calls_, stream_.get())).first;
  it->second->launch();
}

void CudaBlockExecutor::attention(int l, int T) {
  const CudaLayerWeights& w = layers_[size_t(l)];
  const std::string name = layer_names_[size_t(l)] + ".attention";
  NvtxScope layer(layer_names_[size_t(l)]);
  NvtxScope block(name);
  dispatch(name + ".T" + std::to_string(T), [&](cudaStream_t s) {
    attention_->run(w.wq.get(), w.wk.get(), w.wv.get(), w.wo.get(), x_.get(), out_.get(), T, s);
  });
}

void CudaBlockExecutor::router(int l, int T) {
  const std::string name = layer_names_[size_t(l)] + ".router";
  NvtxScope layer(layer_names_[size_t(l)]);
  NvtxScope block(name);
  dispatch(name + ".T" + std::to_string(T),
           [&](cudaStream_t s) { router_->run(layers_[size_t(l)].router.get(), x_.get(), out_.get(), T, s); });
}

void CudaBlockExecutor::expert(int l, int e, int T) {
  const CudaLayerWeights& w = layers_[size_t(l)];
  const size_t off = size_t(e) * size_t(c_.moe_intermediate_size) * size_t(c_.hidden_size) * 2;
  const std::string name = layer_names_[size_t(l)] + ".expert" + std::to_string(e);
  NvtxScope layer(layer_names_[size_t(l)]);
  NvtxScope block(name);
  dispatch(name + ".T" + std::to_string(T), [&](cudaStream_t s) {
    expert_->run(static_cast<const char*>(w.gate.get()) + off, static_cast<const char*>(w.up.get()) + off,
                 static_cast<const char*>(w.down.get()) + off, x_.get(), out_.get(), T, s);
  });
}

void CudaBlockExecutor::shared(int l, int T) {
  WATTMOE_CHECK(shared_ != nullptr, "the model has no shared expert");
  const CudaLayerWeights& w = layers_[size_t(l)];
  const std::string name = layer_names_[size_t(l)] + ".shared";
  NvtxScope layer(layer_names_[size_t(l)]);
  NvtxScope block(name);
  dispatch(name + ".T" + std::to_string(T), [&](cudaStream_t s) {
    shared_->run(w.sgate.get(), w.sup.get(), w.sdown.get(), x_.get(), out_.get(), T, s);
  });
}

Json check_layer_cuda(CudaBlockExecutor& ex, const ModelConfig& c, PowerSensor& sensor, EnergyMeter& meter,
                      ProfileOptions opt, const HardwareCoeffs& hw, const ProfileResult& profile) {
  const int H = c.hidden_size, I = c.moe_intermediate_size, E = c.num_experts, k = c.top_k;
  const Precision bf16{2, 2};
  MoeCudaOptions mo;
  mo.name = "layer0.moe";
  MoeLayerCuda layer(MoeShape{H, I, E, k, c.norm_topk_prob}, ex.max_tokens(), mo);
  const CudaLayerWeights& w = ex.weights(0);
  layer.use_device_weights(w.router.get(), w.gate.get(), w.up.get(), w.down.get());

  const ExpertShape es = expert_shape(c, bf16);
  const AnalyticCostModel calibrated = AnalyticCostModel::uniform(1, E, es, hw);
  // The profiled table's layer 0 (experts and router), for a second prediction beside the analytic one.
  std::vector<const BlockProfile*> pexp(size_t(E), nullptr);
  const BlockProfile* prouter = nullptr;
  for (const BlockProfile& b : profile.blocks)
    if (b.layer == 0 && b.kind == "expert" && b.expert >= 0 && b.expert < E) pexp[size_t(b.expert)] = &b;
    else if (b.layer == 0 && b.kind == "router") prouter = &b;

  const int graph_calls = ex.calls_per_run();
  std::map<int, std::unique_ptr<CudaGraphRun>> graphs;  // per token count, as for the blocks
  ProfileBlock moe;
  moe.name = "layer0.moe";
  moe.kind = "layer";
  moe.layer = 0;
  moe.calls_per_run = graph_calls;
  moe.run = [&](int T) {
    NvtxScope lr("layer0");
    NvtxScope mr("layer0.moe");
    auto work = [&](cudaStream_t s) { layer.forward(ex.x(), ex.out(), T, s); };
    if (graph_calls <= 1) {
      work(ex.stream());
      return;
    }
    auto it = graphs.find(T);
    if (it == graphs.end()) it = graphs.emplace(T, std::make_unique<CudaGraphRun>(work, graph_calls, ex.stream())).first;
    it->second->launch();
  };
  opt.min_window_s = std::max(1.0, opt.min_window_s);
  opt.pilot_s = std::min(std::max(opt.pilot_s, 0.05), opt.min_window_s);
  opt.repeats = std::max(3, opt.repeats);
  Profiler prof(sensor, meter, opt);
  const BlockProfile bp = prof.profile_block(moe);

  Json points = Json::array();
  double max_err = 0, max_err_profiled = 0;
  const ProfileWindow* longest = nullptr;
  std::printf("check-layer: layer 0, H=%d I=%d E=%d k=%d, windows >= %.1f s x %d\n", H, I, E, k, opt.min_window_s,
              opt.repeats);
  std::printf("  %6s %12s %12s %8s %12s %8s %9s\n", "T", "measured J", "analytic J", "err", "profiled J", "err",
              "experts");
  for (const ProfilePoint& p : bp.points) {
    for (const ProfileWindow& win : p.windows)
      if (!longest || win.seconds > longest->seconds) longest = &win;
    const int T = p.tokens;
    layer.forward(ex.x(), ex.out(), T, ex.stream());
    cuda_synchronize();
    std::vector<int32_t> counts32(static_cast<size_t>(E));
    download(counts32.data(), layer.expert_counts(), size_t(E) * 4);
    const std::vector<int> counts(counts32.begin(), counts32.end());
    int active = 0;
    for (int n : counts) active += n > 0;
    // The router is one small GEMM: its cost comes from its own profile (the experts' fitted launch time and
    // bandwidth say nothing about it); without one, from the roofline.
    const Work rw = router_work(c, bf16, T);
    const double router_j = prouter ? prouter->joules.line.at(T) : roofline_joules(hw, rw.flops, rw.bytes);
    const double router_s = prouter ? prouter->seconds.line.at(T) : roofline_seconds(hw, rw.flops, rw.bytes);
    const double pred_j = calibrated.layer_joules(0, counts) + router_j;
    const double pred_s = calibrated.layer_seconds(0, counts) + router_s;
    const double err = (pred_j - p.joules) / p.joules, err_s = (pred_s - p.seconds) / p.seconds;
    max_err = std::max(max_err, std::fabs(err));
    Json pj = {{"tokens", T},          {"measured_j", p.joules}, {"measured_s", p.seconds}, {"spread_j", p.spread_j},
               {"counts", counts},     {"activated", active},    {"predicted_j", pred_j},   {"rel_err", err},
               {"predicted_s", pred_s}, {"rel_err_s", err_s}};
    double prof_j = kNaN;
    if (prouter && std::all_of(pexp.begin(), pexp.end(), [](const BlockProfile* b) { return b != nullptr; })) {
      prof_j = prouter->joules.line.at(T);
      for (int e = 0; e < E; ++e) prof_j += pexp[size_t(e)]->joules.line.at(counts[size_t(e)]);
      const double e2 = (prof_j - p.joules) / p.joules;
      max_err_profiled = std::max(max_err_profiled, std::fabs(e2));
      pj["predicted_j_profiled"] = prof_j;
      pj["rel_err_profiled"] = e2;
    }
    std::printf("  %6d %12.5g %12.5g %+7.1f%% %12.5g %+7.1f%% %9d\n", T, p.joules, pred_j, 100 * err, prof_j,
                std::isnan(prof_j) ? 0.0 : 100 * (prof_j - p.joules) / p.joules, active);
    points.push_back(std::move(pj));
  }
  Json cvi = nullptr;
  if (longest) {
    const double rel = std::isfinite(longest->joules_counter) && std::isfinite(longest->joules_integrated)
                           ? (longest->joules_integrated - longest->joules_counter) / longest->joules_counter
                           : kNaN;
    cvi = {{"seconds", longest->seconds},
           {"joules_counter", std::isfinite(longest->joules_counter) ? Json(longest->joules_counter) : Json(nullptr)},
           {"joules_integrated",
            std::isfinite(longest->joules_integrated) ? Json(longest->joules_integrated) : Json(nullptr)},
           {"rel_diff", std::isfinite(rel) ? Json(rel) : Json(nullptr)},
           {"within_5pct", std::isfinite(rel) && std::fabs(rel) <= 0.05}};
    std::printf("  longest window %.2f s: counter %.4g J, integrated %.4g J, difference %+.2f%%\n", longest->seconds,
                longest->joules_counter, longest->joules_integrated, 100 * rel);
  }
  std::printf("  max |error|: analytic %.1f%%, profiled %.1f%%\n", 100 * max_err, 100 * max_err_profiled);
  return {{"format", "wattmoe.check_layer.v1"},
          {"layer", 0},
          {"shape", {{"hidden", H}, {"intermediate", I}, {"experts", E}, {"top_k", k}}},
          {"sensor", sensor.name()},
          {"min_window_s", opt.min_window_s},
          {"calls_per_graph", graph_calls},
          {"router_from", prouter ? "profile" : "roofline"},
          {"repeats", opt.repeats},
          {"hardware",
           {{"static_w", hw.static_w},
            {"pj_per_flop", hw.pj_per_flop},
            {"pj_per_byte", hw.pj_per_byte},
            {"peak_flops", hw.peak_flops},
            {"bandwidth_bytes_per_s", hw.bandwidth_bytes_per_s},
            {"launch_s", hw.launch_s}}},
          {"points", points},
          {"max_abs_rel_err", max_err},
          {"within_15pct", max_err <= 0.15},
          {"max_abs_rel_err_profiled", max_err_profiled},
          {"counter_vs_integrated", cvi}};
}

}  // namespace wattmoe
