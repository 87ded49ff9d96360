// Weight-only quantised routed experts of a model (model/expert_quant.h, RunnerOptions::expert_precision) on the
// CPU runner and the shipped model models/kjv-small: what is quantised (every routed-expert tensor, rows requantising
// to the same codes; nothing else changes, bit for bit), what the codes and scales hold, what the runner refuses
// (changing quantised experts in place, training), and the quality cost in bits per byte on a slice of kjv val.
#include "model/expert_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "eval/evaluate.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "ops/quant.h"
#include "../test_util.h"
#include "text/token_stream.h"
#include "text/tokenizer.h"

namespace wattmoe {
namespace {

using ops::ExpertPrecision;

const ModelWeights<float>& kjv() {
  static const ModelWeights<float> m = load_model<float>(test::source_path("models/kjv-small"));
  return m;
}

// The first 2 kB (whole lines) of kjv val (data/kjv.val.txt; `wattmoe data build`), public domain.
const char* const kText =
    "But he is a Jew, which is one inwardly; and circumcision is that of the heart, in the spirit, and not in the letter; whose praise is not of men, but of God.\n"
    "What advantage then hath the Jew? or what profit is there of circumcision?\n"
    "Much every way: chiefly, because that unto them were committed the oracles of God.\n"
    "For what if some did not believe? shall their unbelief make the faith of God without effect?\n"
    "God forbid: yea, let God be true, but every man a liar; as it is written, That thou mightest be justified in thy sayings, and mightest overcome when thou art judged.\n"
    "But if our unrighteousness commend the righteousness of God, what shall we say? Is God unrighteous who taketh vengeance? (I speak as a man)\n"
    "God forbid: for then how shall God judge the world?\n"
    "For if the truth of God hath more abounded through my lie unto his glory; why yet am I also judged as a sinner?\n"
    "And not rather, (as we be slanderously reported, and as some affirm that we say,) Let us do evil, that good may come? whose damnation is just.\n"
    "What then? are we better than they? No, in no wise: for we have before proved both Jews and Gentiles, that they are all under sin;\n"
    "As it is written, There is none righteous, no, not one:\n"
    "There is none that understandeth, there is none that seeketh after God.\n"
    "They are all gone out of the way, they are together become unprofitable; there is none that doeth good, no, not one.\n"
    "Their throat is an open sepulchre; with their tongues they have used deceit; the poison of asps is under their lips:\n"
    "Whose mouth is full of cursing and bitterness:\n"
    "Their feet are swift to shed blood:\n"
    "Destruction and misery are in their ways:\n"
    "And the way of peace have they not known:\n"
    "There is no fear of God before their eyes.\n"
    "Now we know that what things soever the law saith, it saith to them who are under the law: that every mouth may be stopped, and all the world may become guilty before God.\n"
    "Therefore by the deeds of the law there shall no flesh be justified in his sight: for by the law is the knowledge of sin.\n";

double bits_per_byte(const std::string& expert_precision) {
  const ModelWeights<float>& m = kjv();
  RunnerOptions o;
  o.expert_precision = expert_precision;
  std::unique_ptr<Runner> run = make_runner(m.config, o);
  run->set_params(m.params.data());
  EXPECT_EQ(run->info().expert_precision, expert_precision);
  ByteTokenizer tok;
  const TokenStream s = make_token_stream(kText, tok, 129, "kjv val slice");
  EvalWindows w;
  w.seq = 128, w.stride = 64;  // the sliding protocol of docs/results.md
  return evaluate(*run, s, w).bits_per_byte();
}

TEST(ExpertQuant, QuantisesExactlyTheRoutedExperts) {
  const ModelWeights<float>& m = kjv();
  const ParamLayout L = ParamLayout::build(m.config);
  for (ExpertPrecision p : {ExpertPrecision::Fp8, ExpertPrecision::Int8}) {
    SCOPED_TRACE(ops::expert_precision_name(p));
    std::vector<float> q = m.params;
    ExpertCodes codes;
    quantise_experts(m.config, L, q.data(), p, &codes);
    ASSERT_EQ(codes.precision, p);
    const int64_t E = m.config.num_experts, I = m.config.moe_intermediate_size, H = m.config.hidden_size;
    int moe = 0;
    for (int l = 0; l < m.config.num_layers; ++l) moe += m.config.is_moe_layer(l);
    ASSERT_EQ(int64_t(codes.codes.size()), moe * 3 * E * I * H);
    ASSERT_EQ(int64_t(codes.scales.size()), moe * E * (2 * I + H));
    int changed = 0;
    for (const ParamSpec& s : L.specs()) {
      const bool expert = s.kind == ParamKind::Expert;
      bool same = true;
      for (int64_t i = 0; i < s.numel; ++i) same = same && q[size_t(s.offset + i)] == m.params[size_t(s.offset + i)];
      if (!expert) {
        EXPECT_TRUE(same) << s.name << " is not a routed expert and must not change";
      }
      changed += expert && !same;
      if (!expert) continue;
      // Each row: the quantiser's codes and scale again (requantising code · scale is idempotent), and the stored
      // codes dequantise to exactly the runner's weights.
      const int64_t rows = s.shape[0], cols = s.shape[1];
      std::vector<uint8_t> c(static_cast<size_t>(s.numel));
      std::vector<float> sc(static_cast<size_t>(rows)), d(static_cast<size_t>(s.numel));
      ops::quantise_rows(m.params.data() + s.offset, rows, cols, p, c.data(), sc.data());
      ops::dequantise_rows(c.data(), sc.data(), rows, cols, p, d.data());
      for (int64_t i = 0; i < s.numel; ++i) ASSERT_EQ(d[size_t(i)], q[size_t(s.offset + i)]) << s.name << " [" << i << "]";
    }
    EXPECT_EQ(changed, moe * 3 * E) << "every routed-expert tensor is quantised";
    // The expert-major codes of layer 0, expert 1's down projection are that tensor's codes.
    const ParamSpec* down = L.find(m.config.arch == Arch::Mixtral ? "model.layers.0.block_sparse_moe.experts.1.w2.weight"
                                                                   : "model.layers.0.mlp.experts.1.down_proj.weight");
    ASSERT_NE(down, nullptr);
    std::vector<uint8_t> c(static_cast<size_t>(down->numel));
    std::vector<float> sc(static_cast<size_t>(H));
    ops::quantise_rows(m.params.data() + down->offset, H, I, p, c.data(), sc.data());
    for (int64_t i = 0; i < down->numel; ++i) ASSERT_EQ(codes.codes[size_t((2 * E + 1) * I * H + i)], c[size_t(i)]);
    for (int64_t r = 0; r < H; ++r) ASSERT_EQ(codes.scales[size_t(2 * E * I + H + r)], sc[size_t(r)]);
  }
  std::vector<float> q = m.params;
  ExpertCodes none;
  quantise_experts(m.config, L, q.data(), ExpertPrecision::Bf16, &none);
  EXPECT_EQ(q, m.params);
  EXPECT_TRUE(none.codes.empty());
}

TEST(ExpertQuant, RunnerRefusesChangingQuantisedExperts) {
  const ModelWeights<float>& m = kjv();
  RunnerOptions o;
  o.expert_precision = "fp8";
  std::unique_ptr<Runner> run = make_runner(m.config, o);
  run->set_params(m.params.data());
  const ParamLayout& L = run->layout();
  const ParamSpec* router = nullptr;
  const ParamSpec* expert = nullptr;
  for (const ParamSpec& s : L.specs()) {
    if (s.kind == ParamKind::Router && !router) router = &s;
    if (s.kind == ParamKind::Expert && !expert) expert = &s;
  }
  ASSERT_TRUE(router && expert);
  run->set_param_ranges(m.params.data(), {{router->offset, router->numel}});  // what adaptation changes: fine
  EXPECT_NE(test::error_of([&] { run->set_param_ranges(m.params.data(), {{expert->offset, 8}}); })
                .find("--expert-precision fp8: the routed experts are quantised"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { run->train_begin(AdamWConfig{}, 1); }).find("training a model with quantised experts"),
            std::string::npos);
  o.expert_precision = "fp4";
  EXPECT_EQ(test::error_of([&] { check_runner_options(o); }), "--expert-precision fp4: expected bf16, fp8 or int8");
}

// The tier switch at run time (Runner::set_expert_precision, the ladder's tier level): switching a bf16 runner to
// fp8 gives exactly the weights of a runner made fp8, with a weight adaptation changed before the switch kept (a
// router row); switching back restores the full-precision experts bit for bit, the changed router still kept.
TEST(ExpertQuant, RunnerSwitchesTiersKeepingAdaptedWeights) {
  const ModelWeights<float>& m = kjv();
  const ParamLayout L = ParamLayout::build(m.config);
  const ParamSpec* router = nullptr;
  for (const ParamSpec& s : L.specs())
    if (s.kind == ParamKind::Router && !router) router = &s;
  ASSERT_NE(router, nullptr);
  std::vector<float> adapted = m.params;  // what adaptation would have moved: the first router's weights
  for (int64_t i = 0; i < router->numel; ++i) adapted[size_t(router->offset + i)] += 0.25f;

  std::unique_ptr<Runner> run = make_runner(m.config, {});
  run->set_params(m.params.data());
  run->set_param_ranges(adapted.data(), {{router->offset, router->numel}});
  EXPECT_EQ(run->expert_precision(), ExpertPrecision::Bf16);
  run->set_expert_precision(ExpertPrecision::Fp8, m.params.data());
  EXPECT_EQ(run->expert_precision(), ExpertPrecision::Fp8);
  EXPECT_EQ(run->info().expert_precision, "fp8");
  std::vector<float> want = adapted, got(adapted.size());
  quantise_experts(m.config, L, want.data(), ExpertPrecision::Fp8);
  run->get_params(got.data());
  EXPECT_EQ(got, want) << "fp8 tier: quantised experts and the adapted router";

  run->set_expert_precision(ExpertPrecision::Bf16, m.params.data());
  run->get_params(got.data());
  EXPECT_EQ(got, adapted) << "back to bf16: the full-precision experts and the adapted router";
  EXPECT_EQ(run->expert_precision(), ExpertPrecision::Bf16);
}

// Quality on the shipped model (sliding windows over 2 kB of kjv val; the CPU runner, so "bf16" is the fp32 model).
// fp8 keeps 4 significant bits per weight (relative error ≤ 2^-4), int8 an absolute error ≤ amax/254 per row: both
// must stay close to the unquantised model, and neither may equal it (the experts really changed). Bound: the issue's
// 0.5% for fp8, for both (measured when this test was written: fp8 +0.06%, int8 -0.01%; printed below; the whole of
// kjv val: docs/results.md).
TEST(ExpertQuant, BitsPerByteOnTheShippedModel) {
  const double ref = bits_per_byte("bf16"), fp8 = bits_per_byte("fp8"), int8 = bits_per_byte("int8");
  std::printf("[expert-quant] kjv-small, 2 kB of kjv val, stride 64: bits/byte bf16 (fp32) %.4f  fp8 %.4f (%+.2f%%)  "
              "int8 %.4f (%+.2f%%)\n",
              ref, fp8, 100 * (fp8 / ref - 1), int8, 100 * (int8 / ref - 1));
  EXPECT_NE(fp8, ref);
  EXPECT_NE(int8, ref);
  EXPECT_LT(std::fabs(fp8 / ref - 1), 0.005);
  EXPECT_LT(std::fabs(int8 / ref - 1), 0.005);
}

}  // namespace
}  // namespace wattmoe
