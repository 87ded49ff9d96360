#include "eval/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/timer.h"
#include "ops/loss.h"

namespace wattmoe {

double EvalResult::bits_per_byte() const { return bytes ? nats / (std::log(2.0) * double(bytes)) : 0; }
double EvalResult::perplexity() const { return std::exp(nats_per_token()); }

EvalResult evaluate_windows(const ModelConfig& c, const TokenStream& s, int seq, int batch, int64_t max_tokens,
                            const BatchScorer& scorer) {
  WATTMOE_REQUIRE(seq > 0 && batch > 0, "eval: seq and batch must be positive (got {} and {})", seq, batch);
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
  int64_t pairs = 0, moe_tokens = 0;
  std::vector<int32_t> in, tg;
  for (size_t i = 0; i < starts.size();) {
    // Batch full windows together; the last partial window runs alone at its own length.
    const int len = int(std::min<int64_t>(seq, n - 1 - starts[i]));
    int B = 0;
    while (i + B < starts.size() && B < batch && std::min<int64_t>(seq, n - 1 - starts[i + B]) == len) ++B;
    in.resize(size_t(B) * len), tg.resize(size_t(B) * len);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < len; ++t) {
        in[size_t(b) * len + t] = s.tokens[size_t(starts[i + b] + t)];
        tg[size_t(b) * len + t] = s.tokens[size_t(starts[i + b] + t + 1)];
      }
    r.nats += scorer.score(in.data(), tg.data(), B, len);
    r.tokens += int64_t(B) * len;
    for (int l = 0; l < c.num_layers; ++l) {
      if (!c.is_moe_layer(l)) continue;
      const Routing& ro = scorer.routing(l);
      for (int e = 0; e < c.num_experts; ++e) {
        r.expert_counts[l][e] += ro.counts[e];
        pairs += ro.counts[e];
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

EvalResult evaluate(const Transformer<float>& model, const float* params, const TokenStream& s, int seq, int batch,
                    int64_t max_tokens, const RouterSelect<float>& select) {
  const ModelConfig& c = model.config();
  Activations<float> acts;
  BatchScorer scorer;
  scorer.score = [&](const int32_t* in, const int32_t* tg, int B, int len) {
    model.forward(params, in, B, len, acts, nullptr, select);
    return ops::nll_loss<float>(acts.logits.data(), tg, int64_t(B) * len, c.vocab_size, nullptr, 0);
  };
  scorer.routing = [&](int l) -> const Routing& { return acts.layers[size_t(l)].routing; };
  return evaluate_windows(c, s, seq, batch, max_tokens, scorer);
}

}  // namespace wattmoe
