#include "adapt/stream.h"

#include <cmath>
#include <deque>

#include "adapt/window_score.h"
#include "core/error.h"
#include "core/timer.h"

namespace wattmoe {

void validate_stream_options(const StreamOptions& o) {
  WATTMOE_REQUIRE(o.seq >= 1, "stream seq must be >= 1 token, got {}", o.seq);
  WATTMOE_REQUIRE(o.max_tokens >= 0, "stream max_tokens must be >= 0 (0 = all), got {}", o.max_tokens);
  WATTMOE_REQUIRE(o.compare_windows >= 1, "stream compare_windows must be >= 1, got {}", o.compare_windows);
}

double StreamResult::bits_per_byte() const { return bytes ? nats / (std::log(2.0) * double(bytes)) : 0; }

namespace {

using Counts = std::vector<std::vector<int64_t>>;

void add_counts(Counts& into, const Counts& c) {
  if (into.empty()) {
    into = c;
    return;
  }
  for (size_t l = 0; l < c.size(); ++l)
    for (size_t e = 0; e < c[l].size(); ++e) into[l][e] += c[l][e];
}

// Scores (and may adapt on) one window of S + 1 tokens and returns its outcome.
using WindowFn = std::function<WindowOutcome(const int32_t* ids, int S, const StreamControl& control)>;

// The walk itself, whatever scores a window: windows, totals and the callback; `routed` takes the control's routing.
StreamResult walk(const TokenStream& s, const StreamOptions& opt, StreamControl control, const WindowCallback& callback,
                  Runner& routed, const WindowFn& fn) {
  validate_stream_options(opt);
  int64_t n = int64_t(s.tokens.size());
  if (opt.max_tokens > 0) n = std::min(n, opt.max_tokens + 1);
  StreamResult r;
  std::deque<Counts> last;
  double ept_weighted = 0;
  for (int64_t start = 0; start + 1 < n; start += opt.seq) {
    const int len = int(std::min<int64_t>(opt.seq, n - 1 - start));
    if (control.routing) {
      routed.set_routing(*control.routing);
      control.routing.reset();
    }
    WindowOutcome w = fn(s.tokens.data() + start, len, control);
    WATTMOE_REQUIRE(std::isfinite(w.nats), "run: the model's loss is not finite ({}) on the window at token {}: its "
                    "activations overflow or hold NaN (finite weights too large, or adaptation diverged?)", w.nats,
                    start);
    r.nats += w.nats, r.tokens += w.tokens;
    r.adapted_windows += w.adapted ? 1 : 0;
    r.resets += w.reset.empty() ? 0 : 1;
    if (!w.reset.empty()) ++r.reset_reasons[w.reset];
    r.source_checks += std::isnan(w.source_nats) ? 0 : 1;
    r.suspended_windows += w.suspended ? 1 : 0;
    r.probation_windows += w.probation ? 1 : 0;
    r.drift_alarms += w.drift ? 1 : 0;
    r.infer_seconds += w.infer_seconds, r.adapt_seconds += w.adapt_seconds;
    r.adapt_phases += w.phases;
    ept_weighted += w.experts_per_token * double(w.tokens);
    add_counts(r.counts, w.counts);
    if (r.windows < opt.compare_windows) add_counts(r.counts_first, w.counts);
    last.push_back(w.counts);
    if (int64_t(last.size()) > opt.compare_windows) last.pop_front();
    const WindowInfo info{r.windows, start, len};
    ++r.windows;
    if (callback) callback(info, w, control);
    if (control.stop) break;
  }
  for (const Counts& c : last) add_counts(r.counts_last, c);
  r.experts_per_token = r.tokens ? ept_weighted / double(r.tokens) : 0;
  // As eval/evaluate.cpp: exact for a byte tokenizer, else the scored share of the text's bytes.
  r.bytes = s.bytes == int64_t(s.tokens.size())
                ? r.tokens
                : int64_t(std::llround(double(s.bytes) * double(r.tokens) / double(s.tokens.size() - 1)));
  return r;
}

}  // namespace

StreamResult run_stream(TestTimeAdapter& adapter, const TokenStream& s, const StreamOptions& opt,
                        StreamControl control, const WindowCallback& callback) {
  return walk(s, opt, std::move(control), callback, adapter.runner(),
              [&](const int32_t* ids, int S, const StreamControl& c) { return adapter.process(ids, S, c.sensor); });
}

StreamResult run_stream(Runner& run, const TokenStream& s, const StreamOptions& opt, StreamControl control,
                        const WindowCallback& callback) {
  return walk(s, opt, std::move(control), callback, run, [&](const int32_t* ids, int S, const StreamControl&) {
    Timer t;
    WindowScore ws = score_window(run, ids, S);
    WindowOutcome w;
    w.nats = ws.nats, w.tokens = ws.tokens, w.entropy = ws.entropy, w.experts_per_token = ws.experts_per_token;
    w.counts = std::move(ws.counts);
    w.infer_seconds = t.seconds();
    return w;
  });
}

}  // namespace wattmoe
