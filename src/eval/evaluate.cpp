#include "eval/evaluate.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/timer.h"

namespace wattmoe {

double EvalResult::bits_per_byte() const { return bytes ? nats / (std::log(2.0) * double(bytes)) : 0; }
double EvalResult::perplexity() const { return std::exp(nats_per_token()); }

EvalResult evaluate(Runner& run, const TokenStream& s, const EvalWindows& w, const EvalProgress& progress) {
  const ModelConfig& c = run.config();
  const int seq = w.seq, batch = w.batch, stride = w.step();
  WATTMOE_REQUIRE(seq > 0 && batch > 0, "eval: seq and batch must be positive (got {} and {})", seq, batch);
  WATTMOE_REQUIRE(stride >= 1 && stride <= seq, "eval: stride must be in 1 … seq = {} (0: seq), got {}", seq, w.stride);
  EvalResult r;
  r.expert_counts.assign(size_t(c.num_layers), {});
  for (int l = 0; l < c.num_layers; ++l)
    if (c.is_moe_layer(l)) r.expert_counts[l].assign(size_t(c.num_experts), 0);
  int64_t n = int64_t(s.tokens.size());
  if (w.max_tokens > 0) n = std::min(n, w.max_tokens + 1);
  Timer timer;
  // Window starts 0, stride, 2·stride, … until a window reaches the last token; each predicts tokens start+1 …
  // start+len, of which it scores those after the previous window's last.
  const auto window_len = [&](int64_t st) { return int(std::min<int64_t>(seq, n - 1 - st)); };
  std::vector<int64_t> starts;
  for (int64_t st = 0; st + 1 < n; st += stride) {
    starts.push_back(st);
    if (st + window_len(st) >= n - 1) break;
  }
  int64_t pairs = 0, moe_tokens = 0;
  std::vector<int32_t> in, tg;
  for (size_t i = 0; i < starts.size();) {
    // Batch full windows together; the last partial window runs alone at its own length.
    const int len = window_len(starts[i]);
    int B = 0;
    while (i + B < starts.size() && B < batch && window_len(starts[i + B]) == len) ++B;
    in.resize(size_t(B) * len), tg.resize(size_t(B) * len);
    for (int b = 0; b < B; ++b) {
      const size_t j = i + size_t(b);
      const int64_t scored_until = j == 0 ? 0 : starts[j - 1] + window_len(starts[j - 1]);  // last target scored
      for (int t = 0; t < len; ++t) {
        const int64_t target = starts[j] + t + 1;
        in[size_t(b) * len + t] = s.tokens[size_t(target - 1)];
        tg[size_t(b) * len + t] = target > scored_until ? s.tokens[size_t(target)] : -1;
      }
      r.tokens += starts[j] + len - std::max(scored_until, starts[j]);
    }
    run.forward_inference(in.data(), B, len);
    const double nats = run.nll(tg.data());
    // A NaN here would print "bits_per_byte": null with exit 0 (weights finite but too large overflow the logits).
    WATTMOE_REQUIRE(std::isfinite(nats), "eval: the model's loss is not finite ({}) on the window at token {}: its "
                    "activations overflow or hold NaN (finite weights too large?)", nats, starts[i]);
    r.nats += nats;
    for (int l = 0; l < c.num_layers; ++l) {
      if (!c.is_moe_layer(l)) continue;
      const Routing& ro = run.routing(l);
      for (int e = 0; e < c.num_experts; ++e) {
        r.expert_counts[l][e] += ro.counts[e];
        pairs += ro.counts[e];
      }
      moe_tokens += int64_t(B) * len;
    }
    i += size_t(B);
    if (progress) progress(int64_t(i), int64_t(starts.size()), timer.seconds());
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
