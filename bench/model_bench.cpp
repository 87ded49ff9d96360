// CPU throughput of the MoE transformer: forward, forward+backward and a full training step (with clipping and
// AdamW) in tokens/s for a preset's model shape.
// Prints JSON lines (one per mode) so that bench/cpu_vs_torch.py can put them beside PyTorch's numbers.
//   model_bench [preset=small] [batch] [seq] [repeats]
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
}  // namespace

int main(int argc, char** argv) {
  const std::string preset = argc > 1 ? argv[1] : "small";
  TrainConfig tc = train_preset(preset);
  const int B = argc > 2 ? std::atoi(argv[2]) : tc.batch, S = argc > 3 ? std::atoi(argv[3]) : tc.seq;
  const int reps = argc > 4 ? std::atoi(argv[4]) : 5;
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
