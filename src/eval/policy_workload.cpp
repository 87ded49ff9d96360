#include "eval/policy_workload.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace wattmoe {

std::string WorkloadMode::name() const {
  if (!decode) return "prefill";
  const std::string n = std::to_string(streams);
  return kind == Streams::Lockstep ? "decode" + n : kind == Streams::Slots ? "slots" + n : "slots" + n + "-serial";
}

WorkloadMode parse_mode(const std::string& s, int batch, int seq, int cache) {
  WATTMOE_REQUIRE(batch >= 1 && seq >= 1 && cache >= 1, "modes: batch {}, seq {} and cache {} must be positive", batch,
                  seq, cache);
  WorkloadMode m;
  m.batch = batch, m.seq = seq, m.cache = cache;
  if (s == "prefill") return m;
  const bool lockstep = s.rfind("decode", 0) == 0, slots = s.rfind("slots", 0) == 0;
  if (lockstep || slots) {
    std::string n = s.substr(lockstep ? 6 : 5);
    if (!n.empty() && n[0] == ':') n = n.substr(1);
    const std::string serial = "-serial";
    const bool is_serial = slots && n.size() > serial.size() && n.ends_with(serial);
    if (is_serial) n.resize(n.size() - serial.size());
    char* end = nullptr;
    const long v = std::strtol(n.c_str(), &end, 10);
    WATTMOE_REQUIRE(!n.empty() && end && *end == '\0' && v >= 1 && v <= 4096,
                    "mode '{}': expected decode<N>, slots<N> or slots<N>-serial with 1 ≤ N ≤ 4096 streams (e.g. "
                    "decode8)", s);
    m.decode = true, m.streams = int(v);
    m.kind = lockstep ? WorkloadMode::Streams::Lockstep
                      : is_serial ? WorkloadMode::Streams::SlotsSerial : WorkloadMode::Streams::Slots;
    return m;
  }
  fail("unknown mode '{}' (expected prefill, decode<N>, slots<N> or slots<N>-serial, e.g. decode8)", s);
}

std::vector<WorkloadMode> parse_modes(const std::string& list, int batch, int seq, int cache) {
  std::vector<WorkloadMode> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const WorkloadMode m = parse_mode(item, batch, seq, cache);
    for (const WorkloadMode& o : out) WATTMOE_REQUIRE(o.name() != m.name(), "mode {} given twice", m.name());
    out.push_back(m);
  }
  WATTMOE_REQUIRE(!out.empty(), "no modes in '{}' (expected e.g. prefill,decode8)", list);
  return out;
}

double WorkTally::bits_per_byte(double bytes_per_token) const {
  const double bytes = double(tokens) * bytes_per_token;
  return bytes > 0 ? nats / (std::log(2.0) * bytes) : 0;
}

void WorkTally::add_routing(Runner& run) {
  const ModelConfig& c = run.config();
  const int64_t rows = run.tokens();
  for (int l = 0; l < c.num_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    const Routing& r = run.routing(l);
    WATTMOE_CHECK(int(r.counts.size()) == c.num_experts, "layer {}: {} expert counts", l, r.counts.size());
    for (int32_t n : r.counts) {
      pairs += n;
      active_experts += n > 0 ? 1 : 0;
    }
    moe_rows += rows;
    ++moe_layer_steps;
  }
}

double bytes_per_token(const TokenStream& s) {
  if (s.bytes == int64_t(s.tokens.size()) || s.tokens.size() < 2) return 1.0;
  return double(s.bytes) / double(s.tokens.size() - 1);
}

Workload::Workload(const TokenStream& text, WorkloadMode mode, const StepWorkModel* work)
    : text_(text), mode_(mode), work_(work) {
  const int64_t n = int64_t(text.tokens.size());
  WATTMOE_REQUIRE(n >= (mode.decode ? int64_t(mode.streams) + 1 : int64_t(mode.seq) + 1),
                  "{}: {} tokens are too few for mode {} (seq {}, streams {})", text.path, n, mode.name(), mode.seq,
                  mode.streams);
}

void Workload::begin(Runner& run) {
  cursor_ = 0, cache_len_ = 0;
  if (!mode_.decode) return;
  const int64_t n = int64_t(text_.tokens.size()), gap = (n - 1) / mode_.streams;
  pos_.resize(size_t(mode_.streams));
  for (int i = 0; i < mode_.streams; ++i) pos_[size_t(i)] = int64_t(i) * gap;
  if (mode_.kind == WorkloadMode::Streams::Lockstep) {
    run.reset_cache(mode_.cache, mode_.streams);
    return;
  }
  run.reset_slots(mode_.streams, mode_.cache);
  slot_left_.resize(size_t(mode_.streams));
  slot_len_.assign(size_t(mode_.streams), 0);
  slot_ids_.resize(size_t(mode_.streams));
  const int64_t stagger = mode_.cache / mode_.streams;
  for (int i = 0; i < mode_.streams; ++i)
    slot_left_[size_t(i)] = mode_.cache - int64_t(i) * stagger, slot_ids_[size_t(i)] = i;
}

void Workload::step(Runner& run, WorkTally& t) {
  const std::vector<int32_t>& tok = text_.tokens;
  const int64_t n = int64_t(tok.size());
  if (!mode_.decode) {
    const int B = mode_.batch, S = mode_.seq;
    in_.resize(size_t(B) * S), tg_.resize(size_t(B) * S);
    for (int b = 0; b < B; ++b) {
      if (cursor_ + S + 1 > n) cursor_ = 0;
      for (int s = 0; s < S; ++s) {
        in_[size_t(b) * S + s] = tok[size_t(cursor_ + s)];
        tg_[size_t(b) * S + s] = tok[size_t(cursor_ + s + 1)];
      }
      cursor_ += S;
    }
    run.forward_inference(in_.data(), B, S);
    t.nats += run.nll(tg_.data());
    t.tokens += int64_t(B) * S;
    if (work_) t.work += work_->dense(B, S, S);
  } else if (mode_.kind != WorkloadMode::Streams::Lockstep) {
    slots_step(run, t);
    return;
  } else {
    const int N = mode_.streams;
    if (cache_len_ == mode_.cache) {
      run.reset_cache(mode_.cache, N);
      cache_len_ = 0;
    }
    in_.resize(size_t(N)), tg_.resize(size_t(N));
    for (int i = 0; i < N; ++i) {
      int64_t& p = pos_[size_t(i)];
      if (p + 1 >= n) p = 0;
      in_[size_t(i)] = tok[size_t(p)];
      tg_[size_t(i)] = tok[size_t(p + 1)];
      ++p;
    }
    run.forward_cached(in_.data(), 1);
    ++cache_len_;
    t.nats += run.nll(tg_.data());
    t.tokens += N;
    if (work_) t.work += work_->dense(N, 1, cache_len_);
  }
  tally_forward(run, t);
}

void Workload::tally_forward(Runner& run, WorkTally& t) {
  ++t.steps;
  const ModelConfig& c = run.config();
  t.add_routing(run);
  if (work_)
    for (int l = 0; l < c.num_layers; ++l)
      if (c.is_moe_layer(l)) t.work += work_->experts(l, run.routing(l).counts);
}

void Workload::slots_step(Runner& run, WorkTally& t) {
  const std::vector<int32_t>& tok = text_.tokens;
  const int64_t n = int64_t(tok.size());
  const int N = mode_.streams;
  in_.resize(size_t(N)), tg_.resize(size_t(N));
  int64_t context = 0;  // the streams' mean context, for the analytic attention work
  for (int i = 0; i < N; ++i) {
    if (slot_left_[size_t(i)] == 0) run.clear_slot(i), slot_left_[size_t(i)] = mode_.cache, slot_len_[size_t(i)] = 0;
    --slot_left_[size_t(i)];
    context += ++slot_len_[size_t(i)];
    int64_t& p = pos_[size_t(i)];
    if (p + 1 >= n) p = 0;
    in_[size_t(i)] = tok[size_t(p)], tg_[size_t(i)] = tok[size_t(p + 1)];
    ++p;
  }
  if (work_) t.work += work_->dense(N, 1, context / N);
  t.tokens += N;
  if (mode_.kind == WorkloadMode::Streams::Slots) {
    run.forward_slots(slot_ids_.data(), in_.data(), N);
    t.nats += run.nll(tg_.data());
    tally_forward(run, t);
    return;
  }
  for (int i = 0; i < N; ++i) {  // serial: one forward per stream
    run.forward_slot(i, &in_[size_t(i)], 1);
    t.nats += run.nll(&tg_[size_t(i)]);
    tally_forward(run, t);
  }
}

}  // namespace wattmoe
