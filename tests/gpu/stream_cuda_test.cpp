// run_stream's no-adaptation path on a CUDA runner against the CPU runner on the shipped kjv-small model (fp32 on both
// sides, host routing), over a generated English-like text of ~3000 byte tokens (windows of S = 100, a final partial
// window of odd length 37), first with the model's own top-k, then with a callback that switches the routing every
// window (top-1 / skip β = 0.3 / own top-k), as the controller does in `wattmoe run`.
//
// Tolerance: the two sides differ only in fp32 summation order (and few-ulp exp/rsqrt). Per logit the error is ≲ 2e-5
// of the largest |logit| (model_parity_test.cpp's derivation for 4 layers of H = 128); a token's NLL is 2-Lipschitz in
// the logits' max norm, and the errors of ~3000 terms add with random signs, so the total nats move by ≪ 1e-5
// relative. Routing: near-ties in the router probabilities could flip a selection; the counts must match exactly here
// (the brief's criterion: a flip would show as a count difference and is reported, not tolerated silently).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "adapt/stream.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "text/tokenizer.h"

namespace wattmoe {
namespace {

TokenStream make_stream(int64_t n_bytes) {
  const char* words[] = {"and", "the", "lord", "said", "unto", "moses", "in", "that", "day", "he", "went", "up",
                         "into", "a", "land", "of", "milk", "honey", "Behold,", "thou", "shalt", "not."};
  uint64_t x = 12345;
  std::string text;
  while (int64_t(text.size()) < n_bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    text += words[(x >> 33) % (sizeof(words) / sizeof(words[0]))];
    text += ((x >> 20) % 13 == 0) ? ".\n" : " ";
  }
  text.resize(size_t(n_bytes));
  TokenStream s;
  s.path = "generated";
  s.tokens = ByteTokenizer().encode(text);
  s.bytes = int64_t(text.size());
  return s;
}

void expect_same(const StreamResult& cpu, const StreamResult& gpu) {
  ASSERT_TRUE(std::isfinite(gpu.nats) && std::isfinite(gpu.experts_per_token));
  EXPECT_EQ(cpu.windows, gpu.windows);
  EXPECT_EQ(cpu.tokens, gpu.tokens);
  EXPECT_EQ(cpu.bytes, gpu.bytes);
  EXPECT_LE(std::abs(gpu.bits_per_byte() - cpu.bits_per_byte()), 1e-5 * cpu.bits_per_byte())
      << "cpu " << cpu.bits_per_byte() << " gpu " << gpu.bits_per_byte();
  EXPECT_EQ(cpu.counts, gpu.counts);
  EXPECT_EQ(cpu.counts_first, gpu.counts_first);
  EXPECT_EQ(cpu.counts_last, gpu.counts_last);
  EXPECT_EQ(cpu.experts_per_token, gpu.experts_per_token);
}

struct PerWindow {
  std::vector<double> nats, entropy;
  std::vector<std::vector<std::vector<int64_t>>> counts;
};

TEST(StreamCuda, MatchesCpuStreamOnKjvSmall) {
  const ModelWeights<float> m = load_model<float>(std::string(WATTMOE_SOURCE_DIR) + "/models/kjv-small");
  const TokenStream s = make_stream(3037);  // 3036 targets: 30 windows of 100 + one of 36
  StreamOptions opt;
  opt.seq = 100, opt.compare_windows = 3;
  std::unique_ptr<Runner> models[2] = {make_runner(m.config, {}), make_runner(m.config, {"cuda", "fp32", "host"})};
  for (auto& r : models) r->set_params(m.params.data());

  // A policy switch every window: what the controller does between windows.
  std::vector<RoutingSpec> routings(3);
  routings[0].knobs.k_max = 1;
  routings[1].policy = "skip", routings[1].knobs.beta = 0.3f;

  for (bool switching : {false, true}) {
    SCOPED_TRACE(switching ? "switching selection" : "model's top-k");
    PerWindow pw[2];
    auto cb = [&](int side) {
      return [&, side, switching](const WindowInfo& w, const WindowOutcome& r, StreamControl& next) {
        pw[side].nats.push_back(r.nats), pw[side].entropy.push_back(r.entropy), pw[side].counts.push_back(r.counts);
        if (switching) next.routing = routings[size_t(w.index % 3)];
      };
    };
    StreamControl start;
    start.routing = RoutingSpec{};
    const StreamResult c = run_stream(*models[0], s, opt, start, cb(0));
    const StreamResult g = run_stream(*models[1], s, opt, start, cb(1));
    EXPECT_EQ(c.windows, 31);
    expect_same(c, g);
    ASSERT_EQ(pw[0].nats.size(), pw[1].nats.size());
    for (size_t i = 0; i < pw[0].nats.size(); ++i) {
      EXPECT_NEAR(pw[1].nats[i], pw[0].nats[i], 1e-5 * std::abs(pw[0].nats[i])) << "window " << i;
      EXPECT_NEAR(pw[1].entropy[i], pw[0].entropy[i], 1e-5 * std::max(1.0, pw[0].entropy[i])) << "window " << i;
      EXPECT_EQ(pw[1].counts[i], pw[0].counts[i]) << "window " << i;
    }
  }
}

}  // namespace
}  // namespace wattmoe
