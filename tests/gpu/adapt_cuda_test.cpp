// Test-time training with the model on the GPU (TestTimeAdapter over a CUDA runner, fp32, host routing) against the same
// adapter on the CPU runner: the same config, stream and windows through TestTimeAdapter::process, then reset.
// Cases: an odd-sized random Mixtral (V 53, H 37, head_dim 6, I 23, 5 experts, LoRA rank 3 added by the adapter) and
// the shipped models/kjv-small (the tuned `run --ttt` setting: AdamW β₁ 0, lr 1e-2 decaying, per-group rates, rank 8);
// groups router+norms+LoRA; objectives: next-token NLL, gated entropy (+NLL), expected expert energy + load balance
// (+NLL); a routing policy chosen on the host; plus the source guard (θ₀ scored beside θ, probation) and the EMA
// teacher, which switch the weights the device holds between θ, θ₀ and θ_T within a window.
//
// What may differ, and the tolerances (derived, not tuned):
//   - Window 0 is scored with θ₀ on both sides: fp32 summation order only. model_parity_test.cpp bounds logits to
//     2e-5 of max|logit| and a loss to 1e-5 relative (kTolLoss), so window nats agree to kScore = 1e-5 relative.
//   - One step's gradient agrees to 1e-4 of each tensor's max |g| (model_parity_test.cpp kTolGrad), so an update does
//     to ~1e-4 of its size (SGD: linear in g; AdamW: g/√v̂ is scale-free, the error stays relative except for elements
//     whose |g| is at the noise floor, which Adam may move by ±lr — rare, and weighed in L2 below). Over N steps the
//     per-step errors add (≤ N·1e-4 of Σ‖step‖) and are carried by the next gradients with a factor ≈ 1 + lr·‖H‖ per
//     step (≈ 1: each step changes the loss by a few % at most). We allow kDrift = 1e-3 for
//     ‖θ_gpu − θ_cpu‖₂ / ‖θ_cpu − θ₀‖₂ over the trainable elements after N = 8 windows (the 8·1e-4 of that sum plus
//     some growth); measured values are printed.
//   - The objective values of a window's first step (loss components): kScore, plus what the drift changes — at most
//     kDrift of the component's own size (adaptation changes each by less than 100% of its value).
//   - A later window's nats: with θ_gpu = θ_cpu + δ and ‖δ‖ ≤ kDrift·‖θ − θ₀‖, the loss moves by ≲ kDrift of what
//     adaptation moved it (|L(θ) − L(θ₀)|, to first order), plus the forward's kScore:
//     |nats_gpu − nats_cpu| ≤ kScore·nats_cpu + kDrift·|nats_cpu − nats_θ₀| + 1e-9 (θ₀'s score from the CPU).
//   - Routing (expert counts) must match exactly, window by window (a near-tie flip would show up and is reported).
//   - reset(): both return to exactly θ₀ (host vectors equal bit for bit) and the next window is scored with θ₀ on
//     the device (the cache of loaded weights was invalidated), so it agrees to kScore again.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../adapt/adapt_test_util.h"
#include "adapt/adapt_optimizer.h"
#include "adapt/adapter.h"
#include "adapt/window_score.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "ops/cuda/context.h"

namespace wattmoe {
namespace {

constexpr double kScore = 1e-5, kDrift = 1e-3;

#define SKIP_WITHOUT_GPU() \
  if (!::wattmoe::cuda::device_available()) GTEST_SKIP() << "no CUDA device"

ModelConfig odd_mixtral() {
  ModelConfig c = test::mixtral_config(2);
  c.vocab_size = 53, c.hidden_size = 37, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 6;
  c.intermediate_size = c.moe_intermediate_size = 23, c.num_experts = 5, c.top_k = 2;
  return c;
}

struct Objective {
  std::string name;
  ObjectiveWeights w;
};

std::vector<Objective> objectives(int E) {
  std::vector<Objective> o;
  o.push_back({"nll", {}});
  ObjectiveWeights ent;
  ent.entropy = 0.5, ent.entropy_gate = 1e9;  // every token kept: the gradient is never empty
  o.push_back({"nll+entropy", ent});
  ObjectiveWeights en;
  en.energy = 0.3, en.load_balance = 0.05;
  o.push_back({"nll+energy+lb", en});
  (void)E;
  return o;
}

EnergyCosts some_costs(int E) {
  std::vector<float> b;
  for (int e = 0; e < E; ++e) b.push_back(float(1.0 + 0.37 * e));
  return test::per_pair_costs(std::move(b));
}

double l2(const std::vector<float>& a, const std::vector<float>& b, const std::vector<ParamRange>& ranges) {
  double s = 0;
  for (const ParamRange& r : ranges)
    for (int64_t i = r.offset; i < r.offset + r.numel; ++i) {
      const double d = double(a[size_t(i)]) - double(b[size_t(i)]);
      s += d * d;
    }
  return std::sqrt(s);
}

// Runs `windows` windows of S tokens through both adapters and checks the tolerances above; then reset and one more.
void compare(const std::string& name, const ModelConfig& base, const std::vector<float>& params,
             const AdapterConfig& cfg, const TokenStream& s, int S, int windows, const RoutingSpec& routing = {}) {
  SCOPED_TRACE(name);
  TestTimeAdapter cpu(base, params.data(), cfg);
  TestTimeAdapter gpu(base, params.data(), cfg, runner_factory({"cuda", "fp32", "host"}));
  ASSERT_EQ(cpu.params(), gpu.params());  // the same θ₀ (LoRA factors drawn from the same seed)
  cpu.runner().set_routing(routing), gpu.runner().set_routing(routing);
  std::unique_ptr<Runner> source_run = make_runner(cpu.model_config(), {});  // θ₀'s scores on the CPU
  source_run->set_params(cpu.source().data());
  source_run->set_routing(routing);
  double worst_nats = 0, worst_loss = 0;
  for (int w = 0; w < windows; ++w) {
    const int32_t* ids = s.tokens.data() + size_t(w) * S;
    const WindowOutcome a = cpu.process(ids, S);
    const WindowOutcome b = gpu.process(ids, S);
    ASSERT_TRUE(std::isfinite(b.nats)) << "window " << w;
    const double source = score_window(*source_run, ids, S).nats;
    const double tol = kScore * std::abs(a.nats) + kDrift * std::abs(a.nats - source) + 1e-9;
    EXPECT_LE(std::abs(a.nats - b.nats), tol) << "window " << w << " cpu " << a.nats << " gpu " << b.nats;
    worst_nats = std::max(worst_nats, std::abs(a.nats - b.nats) / std::abs(a.nats));
    EXPECT_EQ(a.counts, b.counts) << "window " << w;
    EXPECT_EQ(a.adapted, b.adapted) << "window " << w;
    EXPECT_EQ(a.steps, b.steps) << "window " << w;
    EXPECT_EQ(a.reset, b.reset) << "window " << w;
    EXPECT_EQ(a.probation, b.probation) << "window " << w;
    EXPECT_EQ(std::isnan(a.source_nats), std::isnan(b.source_nats)) << "window " << w;
    if (a.adapted) {  // the first step's objective values: kScore plus the drift of earlier steps (header)
      const auto near = [](double x, double y) { return std::abs(x - y) <= (kScore + kDrift) * std::abs(x) + 1e-9; };
      EXPECT_PRED2(near, a.loss.total, b.loss.total) << "window " << w;
      EXPECT_PRED2(near, a.loss.nll, b.loss.nll) << "window " << w;
      EXPECT_PRED2(near, a.loss.entropy, b.loss.entropy) << "window " << w;
      EXPECT_PRED2(near, a.loss.energy, b.loss.energy) << "window " << w;
      EXPECT_PRED2(near, a.loss.load_balance, b.loss.load_balance) << "window " << w;
      worst_loss = std::max(worst_loss, std::abs(a.loss.total - b.loss.total) / std::abs(a.loss.total));
    }
  }
  const std::vector<ParamRange>& R = cpu.trainable();
  const double moved = l2(cpu.params(), cpu.source(), R), diff = l2(cpu.params(), gpu.params(), R);
  ASSERT_GT(moved, 0) << "adaptation did not move θ: the comparison would be empty";
  EXPECT_LE(diff, kDrift * moved) << "‖θ_gpu − θ_cpu‖ " << diff << " vs moved " << moved;
  std::printf("[ttt-cuda] %-34s windows %d  nats rel %.2e  loss rel %.2e  |θ_gpu−θ_cpu|/|θ−θ₀| %.2e (|θ−θ₀| %.3e)\n",
              name.c_str(), windows, worst_nats, worst_loss, diff / moved, moved);

  cpu.reset(), gpu.reset();
  EXPECT_EQ(cpu.params(), cpu.source());
  EXPECT_EQ(gpu.params(), gpu.source());
  EXPECT_FALSE(gpu.adapted());
  const int32_t* ids = s.tokens.data() + size_t(windows) * S;
  const double a = cpu.process(ids, S).nats, b = gpu.process(ids, S).nats;
  EXPECT_LE(std::abs(a - b), kScore * std::abs(a)) << "after reset: cpu " << a << " gpu " << b;
}

AdapterConfig base_config(int lora_rank) {
  AdapterConfig c;
  c.groups = {.router = true, .norms = true, .lora = true};
  c.lora_rank = lora_rank, c.lora_scale = 0.5f;
  c.optim.kind = AdaptOptimizerKind::AdamW;
  c.optim.lr = 1e-2, c.optim.beta1 = 0, c.optim.lr_decay_steps = 45;
  c.optim.lr_norms = 4, c.optim.lr_router = 0.125, c.optim.lr_lora = 0.75;
  return c;
}

TEST(AdaptCuda, OddRandomModelMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = odd_mixtral();
  const std::vector<float> p = test::random_params<float>(ParamLayout::build(c), 17);
  constexpr int S = 19, N = 8;
  const TokenStream s = test::motif_stream(int64_t(S) * (N + 1) + 1, c.vocab_size, 7, 3);
  for (const Objective& o : objectives(c.num_experts)) {
    AdapterConfig cfg = base_config(3);
    cfg.objective = o.w;
    if (o.w.energy > 0) cfg.expert_costs = some_costs(c.num_experts);
    compare("odd adamw " + o.name, c, p, cfg, s, S, N);
    cfg.optim.kind = AdaptOptimizerKind::Sgd, cfg.optim.lr = 3e-2;
    compare("odd sgd " + o.name, c, p, cfg, s, S, N);
  }
  // Two steps per window, the source guard every window (θ₀ scored after each step) and the EMA teacher predicting:
  // the device switches between θ, θ₀ and θ_T inside every window.
  AdapterConfig g = base_config(3);
  g.steps_per_window = 2, g.source_guard.check_every = 1, g.teacher = true, g.teacher_momentum = 0.5;
  g.predict_with_teacher = true;
  compare("odd guard+teacher+2 steps", c, p, g, s, S, N);
  // The same without the teacher: the optimizer steps on the device (Runner::adapt_optimizer_begin), so every swap to
  // θ₀ keeps θ in the runner's weight-set slot and loads θ₀ from its own (Runner::keep_param_ranges), and the next
  // step's forward loads θ back: no host copy of θ between them.
  g.teacher = false, g.predict_with_teacher = false;
  compare("odd guard+2 steps (device step)", c, p, g, s, S, N);
  // A routing policy (the host selects, as under the controller): skip with β 0.6 (one or two experts per token) and
  // the last expert masked (never used); gradients still reach the router through the selected probabilities.
  RoutingSpec skip;
  skip.policy = "skip", skip.knobs.beta = 0.6f;
  skip.knobs.mask.assign(size_t(c.num_experts), false);
  skip.knobs.mask.back() = true;
  compare("odd policy (skip, dead expert)", c, p, base_config(3), s, S, N, skip);
}

TEST(AdaptCuda, KjvSmallMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const ModelWeights<float> m = load_model<float>(std::string(WATTMOE_SOURCE_DIR) + "/models/kjv-small");
  constexpr int S = 128, N = 6;
  const TokenStream s = test::random_stream(int64_t(S) * (N + 1) + 1, m.config.vocab_size, 11);
  // A shift the model has not seen: English-like text would be better, but random bytes move the loss a lot in a few
  // steps, which is what the drift bound needs to be tested against.
  for (const Objective& o : objectives(m.config.num_experts)) {
    AdapterConfig cfg = base_config(8);
    cfg.lora_scale = 1.f;
    cfg.objective = o.w;
    if (o.w.energy > 0) cfg.expert_costs = some_costs(m.config.num_experts);
    compare("kjv-small tuned " + o.name, m.config, m.params, cfg, s, S, N);
  }
}

// Runner::adapt_optimizer_step is AdaptOptimizer::step (adapt/adapt_optimizer.h) on the device: the same gradient
// (the runner's backward, taken to the host for the reference; the backward is checked to repeat bit for bit, so both
// steps see one gradient), three steps (moments, bias corrections, lr schedule), AdamW with weight decay on the
// matrices and SGD with Nesterov momentum, per-group rates (router 0.125, norms 4, LoRA 0.75), the clip off and
// binding; fp32 and bf16 runners. The kernels repeat the host's rounded float operations and its double blend, so θ
// agrees bit for bit unless the clip binds: then the norm's summation order may move the clip factor by an ulp
// (bound 1e-6 of the step).
TEST(AdaptCuda, DeviceOptimizerStepIsTheHostStep) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = odd_mixtral();
  c.lora_rank = 3, c.lora_scale = 0.5f;
  const ParamLayout L = ParamLayout::build(c);
  const std::vector<float> p0 = test::random_params<float>(L, 23);
  const ParamGroups groups{.router = true, .norms = true, .lora = true};
  const std::vector<ParamRange> ranges = trainable_ranges(groups, c, L);
  const GradMask mask = make_grad_mask(groups, c, L);
  const std::vector<int32_t> ids = test::random_ids(18, c.vocab_size, 4);
  constexpr int S = 17;
  for (const char* precision : {"fp32", "bf16"})
    for (const bool adamw : {true, false})
      for (const double clip : {0.0, 1e-3}) {
        SCOPED_TRACE(std::string(precision) + (adamw ? " adamw" : " sgd") + (clip > 0 ? " clipped" : ""));
        AdaptOptimConfig o;
        o.kind = adamw ? AdaptOptimizerKind::AdamW : AdaptOptimizerKind::Sgd;
        o.lr = 1e-2, o.weight_decay = 0.05, o.nesterov = true, o.clip = clip, o.lr_decay_steps = 2;
        o.lr_router = 0.125, o.lr_norms = 4, o.lr_lora = 0.75;
        const std::vector<ScaledRange> scaled = group_lr_ranges(groups, c, L, o);
        ASSERT_FALSE(scaled.empty());
        AdaptOptimizer host(L, make_trainable_mask(groups, c, L), ranges, o, scaled);
        std::unique_ptr<Runner> g = make_runner(c, {"cuda", precision, "host"});
        ASSERT_TRUE(g->adapt_optimizer_begin(ranges, scaled, o));
        std::vector<float> theta = p0, first;  // the host's θ; after the first step
        g->set_params(p0.data());
        const auto gradient = [&](std::vector<float>& into) {
          g->forward(ids.data(), 1, S);
          g->next_token_loss(ids.data() + 1, 1.0, true);
          g->backward(&mask);
          if (into.empty()) return;
          std::fill(into.begin(), into.end(), 0.f);
          g->take_grads(into.data(), ranges);
        };
        for (int step = 0; step < 3; ++step) {
          std::vector<float> grad(p0.size()), again(p0.size()), none;
          gradient(grad), gradient(again);
          ASSERT_EQ(grad, again) << "the backward does not repeat bit for bit: the comparison needs one gradient";
          const double want_norm = host.step(theta.data(), grad.data());
          gradient(none);  // the same gradient, left in the runner for its own step
          const double got_norm = g->adapt_optimizer_step(scheduled_lr(o, step));
          EXPECT_NEAR(got_norm, want_norm, 1e-9 * want_norm) << "step " << step;
          std::vector<float> got(p0.size(), std::nanf(""));
          g->get_param_ranges(got.data(), ranges);
          double worst = 0, moved = 0;
          for (const ParamRange& r : ranges)
            for (int64_t i = r.offset; i < r.offset + r.numel; ++i) {
              worst = std::max(worst, std::abs(double(got[size_t(i)]) - double(theta[size_t(i)])));
              moved = std::max(moved, std::abs(double(theta[size_t(i)]) - double(p0[size_t(i)])));
            }
          ASSERT_GT(moved, 0);
          if (clip == 0) EXPECT_EQ(worst, 0.0) << "step " << step << " (moved " << moved << ")";
          else EXPECT_LE(worst, 1e-6 * moved) << "step " << step;
          std::vector<float> all(p0.size());  // the runner's weights outside the ranges are untouched
          g->get_params(all.data());
          for (size_t i = 0, r = 0; i < all.size(); ++i) {
            while (r < ranges.size() && int64_t(i) >= ranges[r].offset + ranges[r].numel) ++r;
            if (r == ranges.size() || int64_t(i) < ranges[r].offset) ASSERT_EQ(all[i], p0[i]) << "element " << i;
          }
          g->set_param_ranges(theta.data(), ranges);  // both go on from the host's θ (the same unless clipped)
          if (step == 0) first = theta;
        }
        // A reset gives fresh state: from p0 again, the first step's θ again.
        g->adapt_optimizer_reset();
        g->set_params(p0.data());
        std::vector<float> none, got(p0.size());
        gradient(none);
        g->adapt_optimizer_step(scheduled_lr(o, 0));
        g->get_param_ranges(got.data(), ranges);
        for (const ParamRange& r : ranges)
          for (int64_t i = r.offset; i < r.offset + r.numel; ++i)
            ASSERT_NEAR(got[size_t(i)], first[size_t(i)], clip == 0 ? 0.0 : 1e-6) << "after reset, element " << i;
      }
}

// set_param_ranges replaces exactly those ranges of the device weights (the rest stays) and the forward sees them:
// what the adapter's weight swaps rely on (tests/adapt/adapter_runner_test.cpp checks when it swaps).
TEST(AdaptCuda, SetParamRangesReplacesOnlyThoseRanges) {
  SKIP_WITHOUT_GPU();
  const ModelConfig c = odd_mixtral();
  const ParamLayout L = ParamLayout::build(c);
  const std::vector<float> p = test::random_params<float>(L, 5), q = test::random_params<float>(L, 6);
  const std::vector<ParamRange> ranges = trainable_ranges({.router = true, .norms = true}, c, L);
  const std::vector<int32_t> ids = test::random_ids(12, c.vocab_size, 9);
  for (const char* precision : {"fp32", "bf16"}) {
    SCOPED_TRACE(precision);
    std::unique_ptr<Runner> g = make_runner(c, {"cuda", precision, "host"});
    g->set_params(p.data());
    g->set_param_ranges(q.data(), ranges);
    std::vector<float> got(p.size()), want = p;
    for (const ParamRange& r : ranges) std::copy(q.begin() + r.offset, q.begin() + r.offset + r.numel, want.begin() + r.offset);
    g->get_params(got.data());
    EXPECT_EQ(got, want);
    const double swapped = score_window(*g, ids.data(), 11).nats;
    g->set_params(want.data());  // the same weights by a full upload: the same score
    EXPECT_EQ(score_window(*g, ids.data(), 11).nats, swapped);
  }
}

// keep_param_ranges / load_param_ranges: a kept set comes back exactly (only its ranges; the rest as it is now), the
// forward sees it as it sees the same weights uploaded whole, and misuse says why.
TEST(AdaptCuda, KeptWeightSetsComeBackExactly) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = odd_mixtral();
  c.hidden_size = 40, c.head_dim = 10, c.intermediate_size = c.moe_intermediate_size = 24;  // the fused kernels' sizes
  c.lora_rank = 3;
  const ParamLayout L = ParamLayout::build(c);
  const std::vector<float> p = test::random_params<float>(L, 5), q = test::random_params<float>(L, 6);
  const std::vector<ParamRange> ranges = trainable_ranges({.router = true, .norms = true, .lora = true}, c, L);
  const std::vector<int32_t> ids = test::random_ids(12, c.vocab_size, 9);
  const auto with = [&](const std::vector<float>& base, const std::vector<float>& in) {
    std::vector<float> w = base;
    for (const ParamRange& r : ranges)
      std::copy(in.begin() + r.offset, in.begin() + r.offset + r.numel, w.begin() + r.offset);
    return w;
  };
  for (const char* kernels : {"host", "fused"}) {
    SCOPED_TRACE(kernels);
    std::unique_ptr<Runner> g = make_runner(c, {"cuda", "bf16", kernels});
    EXPECT_THROW(g->load_param_ranges(0, ranges), Error);  // nothing kept yet
    g->set_params(p.data());
    g->keep_param_ranges(0, ranges);              // p's ranges
    g->set_param_ranges(q.data(), ranges);
    g->keep_param_ranges(1, ranges);              // q's ranges
    g->load_param_ranges(0, ranges);
    std::vector<float> got(p.size());
    g->get_params(got.data());
    EXPECT_EQ(got, p);
    const double kept = score_window(*g, ids.data(), 11).nats;
    g->load_param_ranges(1, ranges);
    g->get_params(got.data());
    EXPECT_EQ(got, with(p, q));
    const double other = score_window(*g, ids.data(), 11).nats;
    g->set_params(with(p, q).data());  // the same weights by a full upload: the same score
    EXPECT_EQ(score_window(*g, ids.data(), 11).nats, other);
    g->set_params(p.data());
    EXPECT_EQ(score_window(*g, ids.data(), 11).nats, kept);
    const std::vector<ParamRange> fewer(ranges.begin(), ranges.begin() + 1);
    EXPECT_THROW(g->load_param_ranges(1, fewer), Error);  // not the ranges kept
    EXPECT_THROW(g->keep_param_ranges(2, ranges), Error);
  }
}

}  // namespace
}  // namespace wattmoe
