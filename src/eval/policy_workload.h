// The two workloads of the routing-policy energy benchmark (bench/energy_policies.cpp), written against the Runner
// interface only (model/runner.h), so they run on any device and the benchmark gains whatever the runner's kernels
// gain. A window of work is begin() then step() until the caller's clock says stop; every window of a mode sees the
// same text from the same place, so points differ only by their routing and speed.
//
//   prefill   batch × seq windows of the text (disjoint, window i predicts tokens i·seq+1 … i·seq+seq), cycling
//             back to the start at the end; per step: forward(ids, batch, seq) and nll over every row (each row is
//             scored: 0 … seq−1 tokens of context, as `wattmoe eval`'s disjoint windows).
//   decode    `streams` sequences decoded in lockstep with the batched KV cache: stream i starts at text position
//             i·⌊(n−1)/streams⌋; per step every stream feeds its true next token (teacher forcing) through
//             forward_cached(ids [streams, 1], 1) and the prediction of the token after it is scored. When the cache
//             holds `cache` positions it is emptied (reset_cache) and the streams go on from where they are with no
//             context; a stream reaching the end of the text wraps to its start. begin() empties the cache.
//             (The CPU runner decodes one stream.)
//   slots     the same streams as continuous batching decodes them (serve/engine.h): each stream in its own KV-cache
//             slot (reset_slots), all streams' tokens in one forward_slots per step, so the streams sit at different
//             lengths: slot i is first emptied (clear_slot) after cache − i·⌊cache/streams⌋ tokens, then every
//             `cache` tokens. `slots<N>-serial` runs the same steps as N one-token forward_slot calls (how serving
//             ran before the batched step), for the comparison in one run.
// Per step the tally adds the scored tokens and their nats, and for each MoE layer its (token, expert) pairs and
// distinct active experts (routing(l).counts), and the analytic work of the step (eval/step_work.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/step_work.h"
#include "model/runner.h"
#include "text/token_stream.h"

namespace wattmoe {

struct WorkloadMode {
  enum class Streams { Lockstep, Slots, SlotsSerial };
  bool decode = false;
  Streams kind = Streams::Lockstep;  // decode: lockstep cache (decode<N>), slots<N>, slots<N>-serial
  int batch = 64, seq = 128;  // prefill
  int streams = 1;            // decode
  int cache = 128;            // decode: positions per cache fill
  std::string name() const;   // "prefill", "decode8", "slots8", "slots8-serial"
  int64_t tokens_per_step() const { return decode ? streams : int64_t(batch) * seq; }
};

// "prefill", or "decode<N>" / "decode:<N>", "slots<N>", "slots<N>-serial" (N streams). Error naming the mode
// otherwise.
WorkloadMode parse_mode(const std::string& s, int batch, int seq, int cache);
// A comma-separated list of modes.
std::vector<WorkloadMode> parse_modes(const std::string& list, int batch, int seq, int cache);

struct WorkTally {
  int64_t tokens = 0, steps = 0;  // scored tokens, forwards
  double nats = 0;
  int64_t pairs = 0, moe_rows = 0;                // (token, expert) pairs, token rows summed over MoE layers
  int64_t active_experts = 0, moe_layer_steps = 0;  // Σ distinct experts per MoE layer-step, MoE layer-steps
  StepWork work;                                  // analytic work of every step
  double experts_per_token() const { return moe_rows ? double(pairs) / double(moe_rows) : 0; }
  double active_experts_per_layer_step() const {
    return moe_layer_steps ? double(active_experts) / double(moe_layer_steps) : 0;
  }
  // nats / ln 2 / bytes, with bytes = tokens × bytes_per_token (1 for the byte tokenizer).
  double bits_per_byte(double bytes_per_token) const;
  void add_routing(Runner& run);  // the last forward's routing of every MoE layer
};

// Bytes per token of a stream: 1 for a byte tokenizer, else the text's bytes per token.
double bytes_per_token(const TokenStream& s);

class Workload {
 public:
  // text must hold at least seq + 1 tokens (prefill) or streams + 1 (decode); work may be null (no analytic work).
  Workload(const TokenStream& text, WorkloadMode mode, const StepWorkModel* work);
  const WorkloadMode& mode() const { return mode_; }
  void begin(Runner& run);
  void step(Runner& run, WorkTally& t);

 private:
  void slots_step(Runner& run, WorkTally& t);
  void tally_forward(Runner& run, WorkTally& t);  // steps, routing and expert work of the last forward
  const TokenStream& text_;
  WorkloadMode mode_;
  const StepWorkModel* work_;
  int64_t cursor_ = 0, cache_len_ = 0;
  // Each stream's text position; slots: tokens before its slot is emptied, and tokens in it.
  std::vector<int64_t> pos_, slot_left_, slot_len_;
  std::vector<int32_t> slot_ids_;
  std::vector<int32_t> in_, tg_;
};

}  // namespace wattmoe
