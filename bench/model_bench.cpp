// CPU throughput of the MoE transformer: forward, forward+backward and a full training step (with clipping and
// AdamW) in tokens/s for a preset's model shape.
// Prints JSON lines (one per mode) so that bench/cpu_vs_torch.py can put them beside PyTorch's numbers.
//   model_bench [preset=small] [batch] [seq] [repeats]   (-h/--help: usage, exit 0; a bad argument: one error line, exit 2)
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "core/timer.h"
#include "model/objective.h"
#include "model/transformer.h"
#include "ops/loss.h"
#include "model/optimizer.h"
#include "train/trainer.h"

using namespace wattmoe;

namespace {
// FNV-1a over the bytes of a float buffer: a fingerprint that tells whether two builds (or thread counts) give
// bitwise identical results.
uint64_t fingerprint(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

constexpr const char* kUsage =
    "usage: model_bench [PRESET [BATCH [SEQ [REPEATS]]]]\n"
    "CPU throughput of the MoE transformer (forward, forward+backward, train step) in tokens/s, one JSON line per mode.\n"
    "  PRESET   tiny, small (default) or medium: the model shape and default batch and seq\n"
    "  BATCH    sequences per step (default: the preset's)\n"
    "  SEQ      tokens per sequence (default: the preset's)\n"
    "  REPEATS  timed runs per mode after one warm-up (default 5; the median is reported)\n"
    "Threads: WATTMOE_THREADS (default one per core).\n";

// argv[i] as a whole number >= 1, or `fallback` when absent; anything else is a usage error.
int positive_arg(int argc, char** argv, int i, const char* name, int fallback) {
  if (argc <= i) return fallback;
  char* end = nullptr;
  const long v = std::strtol(argv[i], &end, 10);
  if (end == argv[i] || *end != '\0' || v < 1 || v > (1 << 20)) {
    fmt::print(stderr, "model_bench: error: {} must be a whole number >= 1, got '{}'\n{}", name, argv[i], kUsage);
    std::exit(2);
  }
  return int(v);
}
}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      fmt::print("{}", kUsage);
      return 0;
    }
  if (argc > 5) {
    fmt::print(stderr, "model_bench: error: at most 4 arguments, got {}\n{}", argc - 1, kUsage);
    return 2;
  }
  const std::string preset = argc > 1 ? argv[1] : "small";
  TrainConfig tc;
  try {
    tc = train_preset(preset);
  } catch (const std::exception& e) {
    fmt::print(stderr, "model_bench: error: {}\n{}", e.what(), kUsage);
    return 2;
  }
  const int B = positive_arg(argc, argv, 2, "BATCH", tc.batch), S = positive_arg(argc, argv, 3, "SEQ", tc.seq);
  const int reps = positive_arg(argc, argv, 4, "REPEATS", 5);
  Transformer<float> model(tc.model);
  std::vector<float> params(size_t(model.layout().total())), grads(params.size());
  init_params(tc.model, model.layout(), params.data(), 1);
  Rng rng(7);
  std::vector<int32_t> ids(size_t(B) * S), tg(ids.size());
  for (auto& t : ids) t = int32_t(rng.below(uint64_t(tc.model.vocab_size)));
  for (auto& t : tg) t = int32_t(rng.below(uint64_t(tc.model.vocab_size)));
  Activations<float> acts;
  std::vector<float> dlogits;
  AdamW opt(model.layout(), tc.adamw);
  uint64_t logits_fp = 0, grads_fp = 0;
  for (const char* mode : {"forward", "forward_backward", "train_step"}) {
    const bool bwd = std::string(mode) != "forward", step = std::string(mode) == "train_step";
    std::vector<double> times;
    for (int r = 0; r < reps + 1; ++r) {  // first run warms up
      Timer t;
      model.forward(params.data(), ids.data(), B, S, acts);
      if (bwd) {
        dlogits.resize(acts.logits.size());
        ops::nll_loss<float>(acts.logits.data(), tg.data(), int64_t(B) * S, tc.model.vocab_size, dlogits.data(),
                             1.0 / (B * S));
        model.router_aux_losses(acts, 0.01, 0.0);
        std::fill(grads.begin(), grads.end(), 0.f);
        model.backward(params.data(), ids.data(), dlogits.data(), acts, grads.data());
        if (!step && r == 0) logits_fp = fingerprint(acts.logits), grads_fp = fingerprint(grads);
      }
      if (step) {  // what one optimizer step of the trainer adds: clipping and AdamW
        clip_grad_norm(grads.data(), int64_t(grads.size()), 1.0);
        opt.step(params.data(), grads.data(), 1e-4);
      }
      if (r > 0) times.push_back(t.seconds());
    }
    std::sort(times.begin(), times.end());
    const double med = times[times.size() / 2];
    fmt::print("{{\"engine\": \"wattmoe\", \"preset\": \"{}\", \"mode\": \"{}\", \"batch\": {}, \"seq\": {}, "
               "\"median_s\": {:.6f}, \"tokens_per_s\": {:.1f}}}\n",
               preset, mode, B, S, med, double(B) * S / med);
  }
  // Fingerprints of the first forward+backward (same weights and inputs every run): equal across thread counts and
  // across changes that keep results bitwise.
  fmt::print("{{\"engine\": \"wattmoe\", \"mode\": \"fingerprint\", \"logits\": \"{:016x}\", \"grads\": \"{:016x}\"}}\n",
             logits_fp, grads_fp);
}
