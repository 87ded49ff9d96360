// A stream run: walk a TokenStream in windows of S+1 tokens with stride S — eval/evaluate.cpp's protocol (every
// token after the first predicted once with up to S tokens of context; a final partial window scores what remains),
// so an unadapted run reproduces `evaluate` (batch 1) exactly — handing each window to a TestTimeAdapter (or, with
// no adapter, scoring it with fixed weights).
//
// After every window the callback (optional) sees the window's result and may change what the next window runs
// with: the routing (a controller moving λ/k/p: set on the runner before the next window), the sensor Sample for the
// triggers, or stop the run.
// Totals: nats, tokens, bytes, bits per byte, resets (by reason), source-guard checks, backed-off and probation
// windows, experts per token, expert-use matrices of the first and the last `compare_windows` windows (before/after
// adaptation) and over the whole run, seconds of inference and adaptation.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "adapt/adapter.h"
#include "energy/sensor.h"
#include "model/runner.h"
#include "moe/routing_spec.h"
#include "text/token_stream.h"

namespace wattmoe {

struct StreamOptions {
  int seq = 128;               // S ≥ 1
  int64_t max_tokens = 0;      // > 0: only the stream's first max_tokens + 1 tokens
  int compare_windows = 8;     // ≥ 1: windows in the first/last expert-use matrices
};
void validate_stream_options(const StreamOptions& o);

// What the next window runs with; the callback may change it.
struct StreamControl {
  std::optional<RoutingSpec> routing;   // set: the runner routes so from the next window on (then cleared)
  std::optional<Sample> sensor;         // the reading the triggers see
  bool stop = false;                    // end the run after this window
};

struct WindowInfo {
  int64_t index = 0;     // window number
  int64_t start = 0;     // position of its first token in the stream
  int len = 0;           // S of this window (the last may be shorter)
};
using WindowCallback = std::function<void(const WindowInfo&, const WindowOutcome&, StreamControl&)>;

struct StreamResult {
  double nats = 0;
  int64_t tokens = 0, bytes = 0, windows = 0, adapted_windows = 0, resets = 0, drift_alarms = 0;
  // The source guard's comparisons, windows it kept from adapting (backoff) and windows reported with θ₀ on probation.
  int64_t source_checks = 0, suspended_windows = 0, probation_windows = 0;
  std::map<std::string, int64_t> reset_reasons;       // resets by WindowOutcome::reset
  double experts_per_token = 0;  // mean over windows weighted by tokens
  std::vector<std::vector<int64_t>> counts, counts_first, counts_last;  // [layer][expert]
  double infer_seconds = 0, adapt_seconds = 0;
  AdaptPhases adapt_phases;      // summed WindowOutcome::phases (zeros unless the adapter times them)
  double bits_per_byte() const;
  double nats_per_token() const { return tokens ? nats / double(tokens) : 0; }
  double adapt_infer_ratio() const { return infer_seconds > 0 ? adapt_seconds / infer_seconds : 0; }
};

// With adaptation: each window through adapter.process (routing applied to adapter.runner()).
StreamResult run_stream(TestTimeAdapter& adapter, const TokenStream& s, const StreamOptions& opt,
                        StreamControl control = {}, const WindowCallback& callback = nullptr);

// The no-adaptation path: the same windows scored with the runner's fixed weights.
StreamResult run_stream(Runner& run, const TokenStream& s, const StreamOptions& opt, StreamControl control = {},
                        const WindowCallback& callback = nullptr);

}  // namespace wattmoe
