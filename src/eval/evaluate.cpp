#include "eval/evaluate.h"

#include <cmath>

#include "core/timer.h"
#include "ops/loss.h"

namespace wattmoe {

double EvalResult::bits_per_byte() const { return bytes ? nats / (std::log(2.0) * double(bytes)) : 0; }
double EvalResult::perplexity() const { return std::exp(nats_per_token()); }

EvalResult evaluate(const Transformer<float>& model, const float* params, const TokenStream& s, int seq, int batch,
                    int64_t max_tokens, const RouterSelect<float>& select) {
  const ModelConfig& c = model.config();
  EvalResult r;
  r.expert_counts.assign(size_t(c.num_layers), {});
  for (int l = 0; l < c.num_layers; ++l)
    if (c.is_moe_layer(l)) r.expert_counts[l].assign(size_t(c.num_experts), 0);
  int64_t n = int64_t(s.tokens.size());
  if (max_tokens > 0) n = std::min(n, max_tokens + 1);
  Timer timer;
  // Window starts 0, seq, 2·seq, …; each predicts tokens start+1 … start+len.
  std::vector<int64_t> starts;
  for (int64_t st = 0; st + 1 < n; st += seq) starts.push_back(st);
  Activations<float> acts;
  int64_t pairs = 0, moe_tokens = 0;
  for (size_t i = 0; i < starts.size();) {
    // Batch full windows together; the last partial window runs alone at its own length.
    const int len = int(std::min<int64_t>(seq, n - 1 - starts[i]));
    int B = 0;
    while (i + B < starts.size() && B < batch && std::min<int64_t>(seq, n - 1 - starts[i + B]) == len) ++B;
    std::vector<int32_t> in(size_t(B) * len), tg(size_t(B) * len);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < len; ++t) {
        in[size_t(b) * len + t] = s.tokens[size_t(starts[i + b] + t)];
        tg[size_t(b) * len + t] = s.tokens[size_t(starts[i + b] + t + 1)];
      }
    model.forward(params, in.data(), B, len, acts, nullptr, select);
    r.nats += ops::nll_loss<float>(acts.logits.data(), tg.data(), int64_t(B) * len, c.vocab_size, nullptr, 0);
    r.tokens += int64_t(B) * len;
    for (int l = 0; l < c.num_layers; ++l) {
      if (!c.is_moe_layer(l)) continue;
      for (int e = 0; e < c.num_experts; ++e) {
        r.expert_counts[l][e] += acts.layers[l].routing.counts[e];
        pairs += acts.layers[l].routing.counts[e];
      }
      moe_tokens += int64_t(B) * len;
    }
    i += size_t(B);
  }
  r.seconds = timer.seconds();
  // Bytes covered by the scored tokens: exact for a byte tokenizer (one token, one byte); for subword tokenizers the
  // scored share of the text's bytes.
  r.bytes = s.bytes == int64_t(s.tokens.size())
                ? r.tokens
                : int64_t(std::llround(double(s.bytes) * double(r.tokens) / double(s.tokens.size() - 1)));
  r.experts_per_token = moe_tokens ? double(pairs) / double(moe_tokens) : 0;
  return r;
}

}  // namespace wattmoe
