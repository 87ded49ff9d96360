// Job: one generation request between the HTTP thread that received it and the scheduler (serve/engine.h) that runs
// it. The HTTP side fills GenParams, submits, then either waits for the end or pulls text as it comes (streaming);
// the scheduler appends text and finally closes the job with its usage. cancel() (the client went away) makes the
// scheduler drop it at the next step boundary. Thread-safe.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "moe/routing_spec.h"

namespace wattmoe {

struct GenParams {
  std::vector<int32_t> prompt;  // token ids, BOS first when the tokenizer has one (as wattmoe generate)
  int max_tokens = 16;          // ≥ 1; generation also ends when the context is full
  double temperature = 1.0;     // 0: greedy
  double top_p = 1.0;           // nucleus mass in (0, 1]
  uint64_t seed = 0;
  std::vector<std::string> stop;       // generation ends before the first of these (not included in the text)
  std::optional<RoutingSpec> routing;  // this request's own routing (no budget active); else the server's
  int k_max_cap = 0;                   // > 0: at most this many experts per token (a bound on the server's routing)
};

// What the request cost, in its response's `usage` (docs/serve.md says how energy is shared).
struct JobUsage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double energy_j = 0;           // this request's share of every step it was in
  int64_t expert_pairs = 0;      // (token, expert) pairs over its tokens and MoE layers
  int64_t moe_token_layers = 0;  // its tokens × MoE layers
  double queue_s = 0, first_token_s = 0, latency_s = 0;  // from submit: admitted, first text, done
  double experts_per_token() const { return moe_token_layers ? double(expert_pairs) / double(moe_token_layers) : 0; }
};

class Job {
 public:
  explicit Job(GenParams p) : params_(std::move(p)) {}
  const GenParams& params() const { return params_; }

  // --- HTTP side
  // Waits up to timeout_s for news: appends new text to `text` and returns true when there was any or the job ended.
  bool next(std::string& text, double timeout_s);
  void wait_done();
  bool done() const;
  void cancel();
  bool cancelled() const;
  // After done(): "stop", "length", or "cancelled"; error is non-empty when the job failed (the server's fault).
  std::string finish_reason() const;
  std::string error() const;
  std::string text() const;  // everything emitted
  JobUsage usage() const;

  // --- scheduler side
  void emit(const std::string& piece);
  void finish(const std::string& reason, const JobUsage& u, const std::string& error = "");

 private:
  const GenParams params_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  size_t taken_ = 0;  // bytes of text_ handed to next()
  bool done_ = false, cancelled_ = false;
  std::string reason_, error_;
  JobUsage usage_;
};

}  // namespace wattmoe
