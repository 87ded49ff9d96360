#include "energy/profiler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/timer.h"

namespace wattmoe {

namespace {
constexpr const char* kFormat = "wattmoe.cost_table.v1";
// Simulated seconds between meter polls: integrated power sees inside windows, and the counter update that the
// meter only brackets between two samples is placed within ±0.5 ms (0.1% of a 0.5 s window).
constexpr double kSimPollS = 0.001;
}  // namespace

void validate(const ProfileOptions& o) {
  WATTMOE_REQUIRE(!o.token_counts.empty(), "profile: token counts: expected at least one");
  for (int t : o.token_counts)
    WATTMOE_REQUIRE(t >= 1, "profile: token count {}: expected >= 1 (a call with no tokens measures nothing)", t);
  std::set<int> uniq(o.token_counts.begin(), o.token_counts.end());
  WATTMOE_REQUIRE(uniq.size() == o.token_counts.size(), "profile: token counts: each must appear once");
  WATTMOE_REQUIRE(std::isfinite(o.min_window_s) && o.min_window_s > 0 && o.min_window_s <= 600,
                  "profile: min window {} s: expected a number in (0, 600]", o.min_window_s);
  WATTMOE_REQUIRE(o.repeats >= 1 && o.repeats <= 1000, "profile: repeats {}: expected 1 to 1000", o.repeats);
  WATTMOE_REQUIRE(o.warmup >= 0 && o.warmup <= 1000000, "profile: warmup {}: expected 0 to 1000000 calls", o.warmup);
  WATTMOE_REQUIRE(std::isfinite(o.settle_s) && o.settle_s >= 0 && o.settle_s <= 60,
                  "profile: settle {} s: expected 0 to 60", o.settle_s);
  WATTMOE_REQUIRE(std::isfinite(o.pilot_s) && o.pilot_s > 0 && o.pilot_s <= o.min_window_s,
                  "profile: pilot {} s: expected a number in (0, min window = {} s]", o.pilot_s, o.min_window_s);
  WATTMOE_REQUIRE(o.max_calls >= 1, "profile: max calls {}: expected >= 1", o.max_calls);
  if (o.trace_launches) validate(o.sm);
}

Profiler::Profiler(PowerSensor& sensor, EnergyMeter& meter, ProfileOptions opt, SimulatedGpu* sim)
    : sensor_(sensor), meter_(meter), opt_(std::move(opt)), sim_(sim) {
  validate(opt_);
  const Capabilities caps = sensor_.capabilities();
  WATTMOE_REQUIRE(!caps.virtual_time || sim_ != nullptr,
                  "profile: sensor {} runs on virtual time: the profiler needs the simulated GPU it reads to feed the "
                  "blocks' work to (a replayed trace cannot be profiled)", sensor_.name());
  WATTMOE_REQUIRE(caps.virtual_time || sim_ == nullptr,
                  "profile: sensor {} measures a real device: work cannot also go to a simulated GPU", sensor_.name());
  WATTMOE_REQUIRE(caps.energy || caps.power || caps.power_avg,
                  "profile: sensor {} reports neither an energy counter nor power: nothing to measure with",
                  sensor_.name());
  if (sim_) last_poll_ = sim_->time();
}

double Profiler::now() { return sensor_.now(); }

void Profiler::call(const ProfileBlock& b, int tokens, const Work& w) {
  if (!sim_) {
    b.run(tokens);
    return;
  }
  for (int i = 0; i < b.calls_per_run; ++i) {
    sim_->run(w);
    if (sim_->time() - last_poll_ >= kSimPollS) {
      meter_.poll();
      last_poll_ = sim_->time();
    }
  }
}

double Profiler::measure_idle(double seconds) {
  WATTMOE_REQUIRE(std::isfinite(seconds) && seconds > 0 && seconds <= 600,
                  "profile: idle measurement {} s: expected a number in (0, 600]", seconds);
  meter_.begin("idle");
  if (sim_) {
    for (double left = seconds; left > 0; left -= kSimPollS) {
      sim_->idle(std::min(left, kSimPollS));
      meter_.poll();
    }
    last_poll_ = sim_->time();
  } else {
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
  const WindowResult r = meter_.wait(meter_.end("idle"));
  WATTMOE_REQUIRE(r.complete && std::isfinite(r.joules) && r.seconds > 0,
                  "profile: idle measurement with {} failed: {}", sensor_.name(), r.error.empty() ? "no energy" : r.error);
  return r.joules / r.seconds;
}

ProfilePoint Profiler::measure(const ProfileBlock& b, int tokens) {
  ProfilePoint pt;
  pt.tokens = tokens;
  if (b.work) {
    pt.work = b.work(tokens);
    pt.work.name = b.name;
  }
  for (int i = 0; i < opt_.warmup; ++i) call(b, tokens, pt.work);

  // Pilot: how long one call takes, device synchronised; the call count grows until the pilot lasts pilot_s.
  int64_t n = 1;
  double dt = 0;
  for (;;) {
    if (opt_.sync) opt_.sync();
    const double t0 = now();
    for (int64_t i = 0; i < n; ++i) call(b, tokens, pt.work);
    if (opt_.sync) opt_.sync();
    dt = now() - t0;
    if (dt >= opt_.pilot_s || n >= opt_.max_calls) break;
    const double grow = dt > 0 ? std::clamp(1.2 * opt_.pilot_s / dt, 2.0, 100.0) : 100.0;
    n = std::min<int64_t>(opt_.max_calls, int64_t(std::ceil(double(n) * grow)));
  }
  const double per_run = dt / double(n);
  int64_t calls = per_run > 0 ? int64_t(std::ceil(opt_.min_window_s / per_run)) : opt_.max_calls;
  calls = std::clamp<int64_t>(calls, 1, opt_.max_calls);  // runs per window
  if (!sim_ && opt_.settle_s > 0) {
    const int64_t settle = per_run > 0 ? int64_t(std::ceil(opt_.settle_s / per_run)) : 1;
    for (int64_t i = 0; i < std::min(settle, opt_.max_calls); ++i) call(b, tokens, pt.work);
  }

  const std::string outer = fmt::format("{}.T{}", b.name, tokens);
  std::vector<size_t> ids;
  meter_.begin(outer);
  for (int r = 0; r < opt_.repeats; ++r) {
    const std::string inner = fmt::format("{}.r{}", outer, r);
    meter_.begin(inner);
    for (int64_t i = 0; i < calls; ++i) call(b, tokens, pt.work);
    ids.push_back(meter_.end(inner));
  }
  meter_.end(outer);

  std::vector<double> js, ss;
  for (size_t id : ids) {
    const WindowResult wr = meter_.wait(id);
    WATTMOE_REQUIRE(wr.complete, "profile: {} at T={}: sensor {} failed during the window: {}", b.name, tokens,
                    sensor_.name(), wr.error);
    WATTMOE_REQUIRE(std::isfinite(wr.joules) && wr.joules > 0 && wr.seconds > 0,
                    "profile: {} at T={}: window '{}' measured {} J over {} s with {}: expected energy > 0 (over "
                    "windows this short the counter's estimate can read below 0 J: make them longer, min_window_s "
                    "{} now, {} by default)", b.name, tokens, wr.name, wr.joules, wr.seconds, sensor_.name(),
                    opt_.min_window_s, ProfileOptions{}.min_window_s);
    const double per_window = double(calls) * b.calls_per_run;
    ProfileWindow w;
    w.calls = calls * b.calls_per_run;
    w.seconds = wr.seconds;
    w.joules = wr.joules;
    w.joules_counter = wr.joules_counter;
    w.joules_integrated = wr.joules_integrated;
    w.method = energy_method_name(wr.method);
    w.warning = wr.warning;
    (wr.method == EnergyMethod::Counter ? counter_windows_ : integrated_windows_)++;
    pt.windows.push_back(w);
    js.push_back(wr.joules / per_window);
    ss.push_back(wr.seconds / per_window);
  }
  pt.joules = median_of(js);
  pt.seconds = median_of(ss);
  pt.spread_j = relative_spread(js);
  pt.spread_s = relative_spread(ss);

  ++done_;
  if (opt_.progress) {
    const double wall = now_seconds() - t_start_, rate = wall > 0 ? double(done_) / wall : 0;
    const std::string eta =
        total_ > done_ && rate > 0 ? fmt::format(", ETA {:.0f} s", double(total_ - done_) / rate) : std::string();
    fmt::print(stderr, "profile [{}/{}] {} T={}: {:.4g} J/call ±{:.1f}%, {:.4g} ms/call, {} calls x {}; {:.2f} points/s{}\n",
               done_, total_, b.name, tokens, pt.joules, 100 * pt.spread_j, 1e3 * pt.seconds, calls * b.calls_per_run,
               opt_.repeats, rate, eta);
    std::fflush(stderr);
  }
  return pt;
}

void Profiler::check_block(const ProfileBlock& b) const {
  WATTMOE_REQUIRE(!b.name.empty(), "profile: a block needs a name");
  WATTMOE_REQUIRE(b.calls_per_run >= 1, "profile: block {}: calls per run {}: expected >= 1", b.name, b.calls_per_run);
  WATTMOE_REQUIRE(sim_ ? bool(b.work) : bool(b.run), "profile: block {} has no {} function", b.name,
                  sim_ ? "work (the simulated GPU runs on it)" : "run");
}

BlockProfile Profiler::profile_block(const ProfileBlock& b) {
  check_block(b);
  total_ = opt_.token_counts.size();
  done_ = 0;
  t_start_ = now_seconds();
  return profile_one(b);
}

BlockProfile Profiler::profile_one(const ProfileBlock& b) {
  BlockProfile bp;
  bp.name = b.name;
  bp.kind = b.kind;
  bp.layer = b.layer;
  bp.expert = b.expert;
  std::vector<double> x, yj, ys;
  for (int t : opt_.token_counts) {
    bp.points.push_back(measure(b, t));
    x.push_back(t);
    yj.push_back(bp.points.back().joules);
    ys.push_back(bp.points.back().seconds);
    bp.spread = std::max(bp.spread, bp.points.back().spread_j);
  }
  bp.joules = fit_linear_relative(x, yj, "profile: " + b.name + ": joules per call");
  bp.seconds = fit_linear_relative(x, ys, "profile: " + b.name + ": seconds per call");
  return bp;
}

ProfileResult Profiler::run(const std::vector<ProfileBlock>& blocks, double idle_s) {
  WATTMOE_REQUIRE(!blocks.empty(), "profile: no blocks to profile");
  std::set<std::string> names;
  for (const ProfileBlock& b : blocks) {
    check_block(b);
    WATTMOE_REQUIRE(names.insert(b.name).second, "profile: block name {} appears twice", b.name);
  }
  WATTMOE_REQUIRE(idle_s >= 0 && std::isfinite(idle_s), "profile: idle seconds {}: expected >= 0", idle_s);
  ProfileResult r;
  r.token_counts = opt_.token_counts;
  r.sensor = sensor_.name();
  r.simulated = sim_ != nullptr;
  r.min_window_s = opt_.min_window_s;
  r.repeats = opt_.repeats;
  r.warmup = opt_.warmup;
  counter_windows_ = integrated_windows_ = 0;
  if (idle_s > 0) r.idle_w = measure_idle(idle_s);
  total_ = blocks.size() * opt_.token_counts.size();
  done_ = 0;
  t_start_ = now_seconds();
  for (const ProfileBlock& b : blocks) r.blocks.push_back(profile_one(b));
  r.method = integrated_windows_ == 0 ? "counter" : counter_windows_ == 0 ? "integrated" : "mixed";
  if (opt_.trace_launches && !sim_) {
    if (opt_.progress) fmt::print(stderr, "profile: launch records of {} points\n", total_);
    bool any = false;
    for (size_t i = 0; i < blocks.size(); ++i)
      for (ProfilePoint& p : r.blocks[i].points) {
        trace_launches(blocks[i], p);
        any = any || p.launches.has_value();
      }
    if (any) r.sm = opt_.sm;
  }
  return r;
}

void Profiler::trace_launches(const ProfileBlock& b, ProfilePoint& p) {
  const std::vector<KernelLaunch> k =
      opt_.trace_launches(fmt::format("{}.T{}", b.name, p.tokens), [&] { b.run(p.tokens); });
  if (!k.empty()) p.launches = summarise_launches(opt_.sm, k, b.calls_per_run);
}

namespace {

Json fit_json(const LinearFit& f) {
  Json j = {{"max_rel_residual", f.max_rel_residual}, {"rms_rel_residual", f.rms_rel_residual},
            {"rel_residuals", f.rel_residuals}};
  if (!f.note.empty()) j["note"] = f.note;
  return j;
}

Json launches_json(const LaunchSummary& l) {
  const KernelLaunch& k = l.dominant;
  const Occupancy& o = l.dominant_occupancy;
  return {{"kernels_per_call", l.kernels_per_call},
          {"kernel_s_per_call", l.kernel_seconds_per_call},
          {"occupancy_theoretical", l.theoretical},
          {"occupancy_resident", l.resident},
          {"max_regs_per_thread", l.max_regs_per_thread},
          {"max_smem_per_block", l.max_smem_per_block},
          {"dominant",
           {{"name", k.name},
            {"share", l.dominant_share},
            {"s_per_call", k.seconds},
            {"grid", k.grid},
            {"threads", k.threads},
            {"cluster", k.cluster},
            {"regs_per_thread", k.regs_per_thread},
            {"smem_per_block", k.static_smem + k.dynamic_smem},
            {"blocks_per_sm", o.blocks_per_sm},
            {"limiter", o.limiter},
            {"occupancy_theoretical", o.theoretical},
            {"occupancy_resident", o.resident},
            {"waves", o.waves}}}};
}

Json measurements_json(const BlockProfile& b) {
  Json arr = Json::array();
  for (const ProfilePoint& p : b.points) {
    Json wj = Json::array(), ws = Json::array();
    for (const ProfileWindow& w : p.windows) {
      wj.push_back(w.joules / double(w.calls));
      ws.push_back(w.seconds / double(w.calls));
    }
    arr.push_back({{"tokens", p.tokens},
                   {"j", p.joules},
                   {"s", p.seconds},
                   {"spread_j", p.spread_j},
                   {"spread_s", p.spread_s},
                   {"calls", p.windows.empty() ? 0 : p.windows.front().calls},
                   {"flops", p.work.flops},
                   {"bytes", p.work.bytes},
                   {"j_windows", wj},
                   {"s_windows", ws}});
    if (p.launches) arr.back()["launches"] = launches_json(*p.launches);
  }
  return arr;
}

Json cost_json(const BlockProfile& b) {
  return {{"a_j", b.joules.line.a},  {"b_j", b.joules.line.b},          {"a_s", b.seconds.line.a},
          {"b_s", b.seconds.line.b}, {"spread", b.spread},              {"measurements", measurements_json(b)},
          {"fit", {{"joules", fit_json(b.joules)}, {"seconds", fit_json(b.seconds)}}}};
}

}  // namespace

Json profile_to_json(const ProfileResult& r, const std::string& device, const std::string& command) {
  // Expert blocks by (layer, expert); they must tile layers 0..L-1 and experts 0..E_l-1.
  std::map<int, std::map<int, const BlockProfile*>> grid;
  Json others = Json::array();
  for (const BlockProfile& b : r.blocks) {
    if (b.kind != "expert") {
      Json j = {{"name", b.name}, {"kind", b.kind}, {"layer", b.layer}};
      j.update(cost_json(b));
      others.push_back(std::move(j));
      continue;
    }
    WATTMOE_REQUIRE(b.layer >= 0 && b.expert >= 0, "profile: expert block {} has layer {} and expert {}: expected >= 0",
                    b.name, b.layer, b.expert);
    WATTMOE_REQUIRE(grid[b.layer].emplace(b.expert, &b).second, "profile: layer {} expert {} was profiled twice",
                    b.layer, b.expert);
  }
  WATTMOE_REQUIRE(!grid.empty(), "profile: no expert blocks: a cost table needs at least one expert");
  Json layers = Json::array();
  int next = 0;
  std::set<size_t> widths;
  for (const auto& [l, experts] : grid) {
    WATTMOE_REQUIRE(l == next, "profile: expert blocks skip layer {} (a cost table lists layers 0..L-1)", next);
    Json ej = Json::array();
    int e_next = 0;
    for (const auto& [e, b] : experts) {
      WATTMOE_REQUIRE(e == e_next, "profile: layer {}: expert {} was not profiled (experts 0..E-1 are needed)", l,
                      e_next);
      Json j = {{"name", b->name}};
      j.update(cost_json(*b));
      ej.push_back(std::move(j));
      ++e_next;
    }
    widths.insert(experts.size());
    layers.push_back({{"layer", l}, {"experts", std::move(ej)}});
    ++next;
  }
  Json j = Json::object();
  j["format"] = kFormat;
  j["device"] = device;
  j["num_layers"] = layers.size();
  if (widths.size() == 1) j["num_experts"] = *widths.begin();
  j["layers"] = std::move(layers);
  j["blocks"] = std::move(others);
  j["token_counts"] = r.token_counts;
  j["sensor"] = r.sensor;
  j["simulated"] = r.simulated;
  j["method"] = r.method;
  j["idle_w"] = std::isnan(r.idle_w) ? Json(nullptr) : Json(r.idle_w);
  j["command"] = command;
  j["options"] = {{"min_window_s", r.min_window_s}, {"repeats", r.repeats}, {"warmup", r.warmup}};
  if (r.sm)
    j["sm_limits"] = {{"device", r.sm->device},
                      {"sm_count", r.sm->sm_count},
                      {"max_threads_per_sm", r.sm->max_threads_per_sm},
                      {"max_blocks_per_sm", r.sm->max_blocks_per_sm},
                      {"regs_per_sm", r.sm->regs_per_sm},
                      {"smem_per_sm", r.sm->smem_per_sm},
                      {"smem_per_block_optin", r.sm->smem_per_block_optin},
                      {"smem_reserved_per_block", r.sm->smem_reserved_per_block}};
  return j;
}

}  // namespace wattmoe
