// energy_policies: the measured energy of routing policies on one GPU, by the board's NVML energy counter. One model
// per run (a checkpoint, or a random model of a given shape for speed and energy only), every policy point in every
// mode, each point repeated and interleaved with the others so drift and temperature touch all alike.
//
//   energy_policies (--model DIR | --random-init SEED --config FILE) --data FILE --out DIR [--name NAME]
//     [--points "topk; topk k_max=1; skip beta=0.3/0.5/0.7" | --points-file FILE.json]   (eval/policy_points.h)
//     [--modes prefill,decode1,decode8,decode64,slots8 | --streams 1,8,64] [--batch 64 --seq 128] [--cache 128]
//                                                                                         (eval/policy_workload.h)
//     [--window-s 2] [--reps 3] [--warmup-s 0.3] [--idle-s 5] [--time-budget-s 900]
//     [--precision bf16] [--moe-kernels auto|fused|host] [--quality-tokens 65536] [--report-data FILE]
//     [--calib-batches 4]
//     [--no-host-baseline] [--no-decode-graphs | --eager-baseline] [--plan-only]
//     [--device cuda --sensor nvml (cpu/fake: a smoke test of the flow)]
//
// What one run does, in order (each phase prints one line; every window one progress line with an ETA):
//   1. checks (CUDA device, NVML: one clear line and exit 2 when missing); loads the model and the text; resolves the
//      points (a bad point string is an error naming it); every point runs on the kernels --moe-kernels names (auto:
//      the fused kernels, which run every policy, where the model allows); with auto the model's top-k also runs on
//      host routing, as a second group (--no-host-baseline drops it). slots<N> decode steps on the fused kernels replay
//      as CUDA graphs (--no-decode-graphs: launched kernel by kernel); --eager-baseline adds a group that runs the
//      model's top-k that way (kernels "fused-eager"), so the graphs' saving is measured in the same run.
//   2. the runners: one per group, all alive at once when their weights fit in half the free device memory (then
//      every point is interleaved with every other), else one at a time (points interleaved within a group).
//   3. idle power: --idle-s seconds with nothing running (after --settle-s), by the same meter as the windows.
//   4. calibration (only for `mask r=N` points): the model's top-k over --calib-batches prefill batches of the text
//      counts each layer's expert use; each such point prunes its layer's r least-used experts.
//   5. per point, before its first window: a quality pass (bits per byte of the first --quality-tokens tokens of the
//      text in disjoint seq-windows, `wattmoe eval`'s protocol; 0 = none; off for random models), and with
//      --report-data the same pass on that held-out text: knobs are then chosen on --data's bits/byte (the tuning
//      split) and reported on this one's (bench/energy_table.py); per (point, mode) an unmeasured warm-up of
//      ≥ --warmup-s.
//   6. the windows: for rep in reps, for mode in modes, for point in points, each rep starting one point later
//      (A B C, B C A, C A B: no point is always first after a mode change or a cool start): set_routing, then
//      prefill/decode steps until the window lasts ≥ --window-s, inside one EnergyMeter window (sync = device
//      synchronize) over an NvmlSensor sampled at 25 Hz on the meter's thread. A window that would end past
//      --time-budget-s (less the final idle) is skipped and listed; when the plan does not fit at the start, reps
//      and then the last modes are dropped first, and the run says so.
//   7. idle power again at the end; summary.json.
// Outputs under --out: measurements.jsonl (one JSON object per line, "kind": idle | calibration | quality | window |
// skipped, as it happens) and summary.json (per mode and point: medians over reps of J/token above idle (J − idle_W·s)/tokens,
// with idle_W the mean of the start and end idle, its min/max, tokens/s, bits/byte, experts/token, the analytic J/token
// of eval/step_work.h and everything relative to the top-k baseline of the same kernels). bench/energy_table.py
// turns the JSONL into a markdown table and checks the goals. Read only on the GPU: clocks and power limits are never
// touched (NVML is only read).
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "energy/meter.h"
#include "energy/nvml_sensor.h"
#include "eval/evaluate.h"
#include "eval/policy_points.h"
#include "eval/policy_workload.h"
#include "eval/step_work.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/params.h"
#include "model/runner.h"
#include "text/tokenizer.h"
#include "train/data.h"

namespace wattmoe {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultPoints =
    "topk; topk k_max=1; skip beta=0.3/0.5/0.7; top_p p=0.5/0.7/0.9; mask r=2; cost lambda=1 reuse=2";

struct Args {
  std::string model, config, data = "data/kjv.val.txt", report_data, out, name, points = kDefaultPoints, points_file;
  std::string modes = "prefill,decode1,decode8,decode64", precision = "bf16", moe_kernels = "auto";
  std::string device = "cuda", sensor = "nvml";
  uint64_t seed = 0;
  bool random_init = false, host_baseline = true, plan_only = false;
  bool decode_graphs = true, eager_baseline = false;  // slots<N> steps as CUDA graphs; top-k without them beside
  int batch = 64, seq = 128, cache = 128, reps = 3, calib_batches = 4, gpu = 0;
  double window_s = 2, warmup_s = 0.3, idle_s = 5, settle_s = 1, budget_s = 900;
  int64_t quality_tokens = -1;  // -1: 65536, or 0 for random models
};

// A constant 100 W board with an energy counter on the wall clock: lets the flow run without a GPU (--sensor fake).
class FakeSensor final : public PowerSensor {
 public:
  std::string name() const override { return "fake sensor (constant 100 W; not a measurement)"; }
  Capabilities capabilities() const override {
    Capabilities c;
    c.power = c.energy = true;
    return c;
  }
  Sample read() override {
    Sample s;
    s.time_s = now_seconds();
    s.power_w = 100;
    s.energy_j = 100 * (s.time_s - t0_);
    return s;
  }
  double now() override { return now_seconds(); }

 private:
  double t0_ = now_seconds();
};

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("{}: {}", what, cudaGetErrorString(e));
}

// Weights of a random model: matrices uniform with std 1/√fan_in (as `wattmoe profile --random-init`), norms 1,
// biases 0. Chunks of 2^22 values each get their own generator, so the weights do not depend on the thread count.
std::vector<float> random_params(const ModelConfig& c, uint64_t seed) {
  const ParamLayout layout = ParamLayout::build(c);
  std::vector<float> p(size_t(layout.total()));
  struct Chunk {
    float* w;
    int64_t n;
    double a;  // 0: fill with `fill`
    float fill;
  };
  constexpr int64_t kChunk = int64_t(1) << 22;
  std::vector<Chunk> chunks;
  for (const ParamSpec& s : layout.specs()) {
    const bool matrix = s.is_matrix();
    const double a = matrix ? std::sqrt(3.0 / double(s.shape[1])) : 0.0;
    const float fill = s.kind == ParamKind::Bias ? 0.f : 1.f;
    for (int64_t o = 0; o < s.numel; o += kChunk)
      chunks.push_back({p.data() + s.offset + o, std::min(kChunk, s.numel - o), a, fill});
  }
  std::atomic<size_t> next{0};
  const auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < chunks.size();) {
      const Chunk& ch = chunks[i];
      if (ch.a == 0) {
        std::fill(ch.w, ch.w + ch.n, ch.fill);
        continue;
      }
      Rng rng(seed * 0x9E3779B97F4A7C15ull + i);
      for (int64_t j = 0; j < ch.n; ++j) ch.w[j] = float((2 * rng.uniform() - 1) * ch.a);
    }
  };
  std::vector<std::thread> pool;
  const unsigned n = std::max(1u, std::min(32u, std::thread::hardware_concurrency()));
  for (unsigned t = 0; t < n; ++t) pool.emplace_back(work);
  for (std::thread& t : pool) t.join();
  return p;
}

double median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

std::string fmt_s(double s) {
  const int t = int(std::lround(std::max(0.0, s)));
  return t >= 60 ? fmt::format("{}m{:02d}s", t / 60, t % 60) : fmt::format("{}s", t);
}

Json meter_json(const WindowResult& r) {
  Json j{{"seconds", r.seconds},           {"joules", r.joules},
         {"energy_method", energy_method_name(r.method)}, {"joules_counter", r.joules_counter},
         {"joules_integrated", r.joules_integrated},     {"mean_w", r.mean_w},
         {"peak_w", r.peak_w},             {"max_temp_c", r.max_temp_c},
         {"samples", r.samples},           {"complete", r.complete}};
  Json ev = Json::object();
  for (size_t i = 0; i < kClockEventReasons.size(); ++i)
    if (r.reason_seconds[i] > 0) ev[std::string(kClockEventReasons[i].name)] = r.reason_seconds[i];
  j["clock_events_s"] = ev;
  if (r.warning) j["meter_warning"] = r.warning_msg;
  if (!r.error.empty()) j["meter_error"] = r.error;
  return j;
}

// How the runner's slots<N> decode steps have run so far (cumulative over the runner's life).
Json graph_json(const RunnerInfo& i) {
  Json j{{"on", i.decode_graphs}, {"captures", i.graph_captures}, {"replays", i.graph_replays}};
  if (!i.graph_failure.empty()) j["failure"] = i.graph_failure;
  return j;
}

// One runner configuration: the points whose routing the same kernels run.
struct Group {
  std::string moe_kernels = "auto";  // what the group asks for (model/runner.h RunnerOptions::moe_kernels)
  bool decode_graphs = true;         // RunnerOptions::decode_graphs
  std::unique_ptr<Runner> runner;
  std::string kernels = "?";      // the runner's choice once made: fused | fused-eager (graphs off) | host
  double create_s = 0;
};

struct Item {
  PolicyPoint point;
  int group = 0;
  bool baseline = false;       // the model's own top-k
  bool auto_baseline = false;  // added by the bench as its group's baseline
  std::vector<RoutingSpec> specs;  // per mode
  bool quality_done = false;
  std::optional<EvalResult> quality, report;  // bits/byte on --data (the tuning split) and on --report-data
  std::vector<bool> warmed;    // per mode
};

struct WindowRec {
  int item, mode, rep;
  WindowResult meter;
  WorkTally tally;
};

class Bench {
 public:
  explicit Bench(const Args& a) : a_(a) {}
  int run();

 private:
  void load();          // config, text, modes: cheap, so bad arguments fail before the weights load
  void load_weights();
  void resolve_points(const std::vector<std::vector<int64_t>>& usage);
  void make_groups();
  Runner& runner(int g);
  void create_runner(int g);
  double measure_idle(const std::string& when);
  void calibrate();
  void plan();
  void run_slots();
  void quality(Item& it);
  void warm(Item& it, int m);
  void window(int i, int m, int rep);
  void skip(int i, int m, int rep, const std::string& why);
  void write(const Json& j);
  Json summary() const;
  std::string item_name(const Item& it) const;

  const Args& a_;
  Timer clock_;
  std::string name_, card_;
  ModelConfig cfg_;
  std::vector<float> params_;
  TokenStream text_, report_text_;  // report_text_: --report-data's, empty without it
  double bytes_per_token_ = 1;
  std::vector<WorkloadMode> modes_;
  std::vector<Item> items_;
  std::vector<Group> groups_;
  bool keep_all_ = true;
  std::unique_ptr<PowerSensor> sensor_;
  std::unique_ptr<EnergyMeter> meter_;
  std::unique_ptr<StepWorkModel> work_;
  std::ofstream jsonl_;
  std::vector<Json> idle_;
  std::vector<WindowRec> windows_;
  std::vector<Json> skipped_;
  std::vector<Json> notes_;
  int reps_ = 0;
  int64_t quality_tokens_ = 0;
  double quality_s_est_ = 1.0;
  // The schedule: phases of (item, mode, rep); one phase when every runner is alive, else one per group.
  struct Slot {
    int item, mode, rep;
  };
  std::vector<std::vector<Slot>> phases_;
  size_t planned_ = 0, done_ = 0;
  double window_cost_sum_ = 0;
};

std::string Bench::item_name(const Item& it) const {
  return fmt::format("{} ({})", it.point.label, groups_[size_t(it.group)].kernels);
}

void Bench::write(const Json& j) {
  jsonl_ << j.dump() << "\n";
  jsonl_.flush();
}

void Bench::load() {
  if (a_.random_init) {
    cfg_ = parse_model_config(read_json_file(a_.config), a_.config);
    name_ = a_.name.empty() ? fs::path(a_.config).stem().string() + "-random" : a_.name;
  } else {
    cfg_ = load_model_config(a_.model);
    name_ = a_.name.empty() ? fs::path(a_.model).filename().string() : a_.name;
  }
  cfg_.validate(a_.random_init ? a_.config : a_.model);
  std::unique_ptr<Tokenizer> tok;
  if (!a_.random_init && fs::exists(fs::path(a_.model) / "tokenizer.json"))
    tok = make_tokenizer(a_.model + "/tokenizer.json");
  else
    tok = make_tokenizer("bytes");
  WATTMOE_REQUIRE(tok->vocab_size() <= cfg_.vocab_size, "{}: the tokenizer's vocabulary ({}) exceeds the model's ({})",
                  a_.data, tok->vocab_size(), cfg_.vocab_size);
  text_ = load_token_stream(a_.data, *tok, int64_t(a_.seq) + 2);
  if (!a_.report_data.empty()) {
    WATTMOE_REQUIRE(!a_.random_init, "--report-data: a random model's bits/byte mean nothing (drop --report-data)");
    report_text_ = load_token_stream(a_.report_data, *tok, int64_t(a_.seq) + 2);
  }
  bytes_per_token_ = bytes_per_token(text_);
  modes_ = parse_modes(a_.modes, a_.batch, a_.seq, a_.cache);
  for (const WorkloadMode& m : modes_)
    WATTMOE_REQUIRE(int64_t(text_.tokens.size()) > (m.decode ? m.streams : m.seq) + 1,
                    "{}: {} tokens are too few for mode {}", a_.data, text_.tokens.size(), m.name());
  quality_tokens_ = a_.quality_tokens >= 0 ? a_.quality_tokens : (a_.random_init ? 0 : 65536);
  quality_tokens_ = std::min<int64_t>(quality_tokens_, int64_t(text_.tokens.size()) - 1);
  const bool bf16 = a_.precision == "bf16";
  work_ = std::make_unique<StepWorkModel>(cfg_, bf16 ? 2 : 4, bf16 ? 2 : 4);
}

void Bench::load_weights() {
  const Timer t;
  if (a_.random_init) {
    params_ = random_params(cfg_, a_.seed);
  } else {
    ModelWeights<float> m = load_model<float>(a_.model);
    params_ = std::move(m.params);
  }
  fmt::print(stderr, "[{:6.1f}s] model {}: {} parameters ({}), text {} tokens; loaded in {:.1f} s\n", clock_.seconds(),
             name_, cfg_.num_parameters(), a_.random_init ? fmt::format("random, seed {}", a_.seed) : a_.model,
             text_.tokens.size(), t.seconds());
}

void Bench::resolve_points(const std::vector<std::vector<int64_t>>& usage) {
  for (Item& it : items_) {
    it.specs.clear();
    for (const WorkloadMode& m : modes_) it.specs.push_back(point_spec(it.point, cfg_, usage, double(m.tokens_per_step())));
    it.baseline = is_model_topk(it.specs[0], cfg_.top_k);
    it.warmed.assign(modes_.size(), false);
  }
}

void Bench::make_groups() {
  std::vector<PolicyPoint> points = a_.points_file.empty() ? parse_points(a_.points) : load_points_file(a_.points_file);
  for (PolicyPoint& p : points) {
    Item it;
    it.point = std::move(p);
    items_.push_back(std::move(it));
  }
  // Usage counts are not known yet: a `mask r=N` point is resolved on zeros here (which experts it prunes does not
  // change which kernels can run it) and again after calibration.
  std::vector<std::vector<int64_t>> zeros(size_t(cfg_.num_layers));
  for (int l = 0; l < cfg_.num_layers; ++l)
    if (cfg_.is_moe_layer(l)) zeros[size_t(l)].assign(size_t(cfg_.num_experts), 0);
  resolve_points(zeros);
  // One group runs every point with --moe-kernels as given (every policy runs on the fused kernels); with auto and a
  // GPU the model's top-k is measured on host routing too, in a second group: what routing cost before the policies
  // ran on the device (--no-host-baseline drops it).
  groups_.clear();
  WATTMOE_REQUIRE(!items_.empty(), "no policy point given");
  for (Item& it : items_) it.group = 0;
  Group all;
  all.moe_kernels = a_.moe_kernels;
  groups_.push_back(std::move(all));
  // Baseline groups run only the model's top-k: on host routing (auto on a GPU, unless --no-host-baseline), and with
  // --eager-baseline on the fused kernels with the decode steps launched kernel by kernel (what the CUDA graphs of
  // the slots<N> steps save, in the same run).
  const auto add_baseline_group = [&](Group g) {
    const auto base = std::find_if(items_.begin(), items_.end(), [](const Item& i) { return i.baseline; });
    if (base == items_.end()) return;
    Item b = *base;
    b.group = int(groups_.size()), b.auto_baseline = true;
    groups_.push_back(std::move(g));
    items_.push_back(std::move(b));
  };
  const bool gpu = a_.device == "cuda";
  if (a_.host_baseline && a_.moe_kernels == "auto" && gpu) {
    Group host;
    host.moe_kernels = "host";
    add_baseline_group(std::move(host));
  }
  if (a_.eager_baseline && a_.decode_graphs && a_.moe_kernels != "host" && gpu) {
    Group eager;
    eager.moe_kernels = a_.moe_kernels, eager.decode_graphs = false;
    add_baseline_group(std::move(eager));
  }
  for (Group& g : groups_) g.decode_graphs = g.decode_graphs && a_.decode_graphs;
  if (!std::any_of(items_.begin(), items_.end(), [](const Item& i) { return i.baseline; }))
    notes_.push_back("no point is the model's own top-k: nothing to compare against (add 'topk')");
}

void Bench::create_runner(int g) {
  Group& G = groups_[size_t(g)];
  if (G.runner) return;
  const Timer t;
  RunnerOptions o{a_.device, a_.precision, G.moe_kernels, a_.gpu};
  o.decode_graphs = G.decode_graphs;
  G.runner = make_runner(cfg_, o);
  G.runner->set_params(params_.data());
  if (a_.device == "cuda") cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  const RunnerInfo info = G.runner->info();
  G.kernels = info.moe_kernels + (info.moe_kernels == "fused" && !info.decode_graphs ? "-eager" : "");
  G.create_s = t.seconds();
  fmt::print(stderr, "[{:6.1f}s] runner {} ({}, {}) ready in {:.1f} s\n", clock_.seconds(), g, a_.precision,
             G.kernels, G.create_s);
}

Runner& Bench::runner(int g) {
  Group& G = groups_[size_t(g)];
  if (!G.runner) {
    if (!keep_all_)
      for (Group& o : groups_) o.runner.reset();  // one set of weights on the device at a time
    create_runner(g);
  }
  return *G.runner;
}

double Bench::measure_idle(const std::string& when) {
  if (a_.device == "cuda") cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  std::this_thread::sleep_for(std::chrono::duration<double>(a_.settle_s));
  meter_->begin("idle");
  std::this_thread::sleep_for(std::chrono::duration<double>(a_.idle_s));
  const WindowResult r = meter_->wait(meter_->end("idle"));
  const double w = r.seconds > 0 ? r.joules / r.seconds : kNaN;
  Json j{{"kind", "idle"}, {"model", name_}, {"card", card_}, {"when", when}, {"watts", w}, {"t_s", clock_.seconds()}};
  j.update(meter_json(r));
  write(j);
  idle_.push_back(j);
  fmt::print(stderr, "[{:6.1f}s] idle ({}): {:.1f} W over {:.1f} s ({} samples, mean instant power {:.1f} W)\n",
             clock_.seconds(), when, w, r.seconds, r.samples, r.mean_w);
  return w;
}

void Bench::calibrate() {
  if (!std::any_of(items_.begin(), items_.end(), [](const Item& i) { return i.point.mask_least_used > 0; })) return;
  const Timer t;
  int g = 0;
  for (size_t i = 0; i < groups_.size(); ++i)
    if (groups_[i].runner) g = int(i);
  Runner& run = runner(g);
  run.set_routing(RoutingSpec{});
  Workload w(text_, parse_mode("prefill", a_.batch, a_.seq, a_.cache), nullptr);
  w.begin(run);
  WorkTally tally;
  std::vector<std::vector<int64_t>> usage(size_t(cfg_.num_layers));
  for (int l = 0; l < cfg_.num_layers; ++l)
    if (cfg_.is_moe_layer(l)) usage[size_t(l)].assign(size_t(cfg_.num_experts), 0);
  for (int b = 0; b < std::max(1, a_.calib_batches); ++b) {
    w.step(run, tally);
    for (int l = 0; l < cfg_.num_layers; ++l)
      if (cfg_.is_moe_layer(l))
        for (int e = 0; e < cfg_.num_experts; ++e) usage[size_t(l)][size_t(e)] += run.routing(l).counts[size_t(e)];
  }
  resolve_points(usage);
  Json u = Json::object();
  for (int l = 0; l < cfg_.num_layers; ++l)
    if (cfg_.is_moe_layer(l)) u[std::to_string(l)] = usage[size_t(l)];
  write(Json{{"kind", "calibration"}, {"model", name_}, {"batches", a_.calib_batches}, {"tokens", tally.tokens},
             {"expert_counts", u}});
  fmt::print(stderr, "[{:6.1f}s] calibration: expert use under top-k over {} tokens ({:.1f} s)\n", clock_.seconds(),
             tally.tokens, t.seconds());
}

void Bench::plan() {
  const double reserve = a_.settle_s + a_.idle_s + 2;
  const double per_window = a_.window_s + 0.15, per_warm = a_.warmup_s + 0.2;
  const double quality = quality_tokens_ > 0 ? quality_s_est_ : 0;
  double create = 0;
  if (!keep_all_)
    for (const Group& g : groups_) create = std::max(create, g.create_s);
  const auto estimate = [&](int reps, size_t modes) {
    const double n = double(items_.size());
    return n * double(modes) * (reps * per_window + per_warm) + n * quality +
           (keep_all_ ? 0 : double(groups_.size() - 1) * (create + 1));
  };
  const double left = a_.budget_s - clock_.seconds() - reserve;
  reps_ = std::max(1, a_.reps);
  size_t modes = modes_.size();
  while (reps_ > 1 && estimate(reps_, modes) > left) --reps_;
  while (modes > 1 && estimate(reps_, modes) > left) --modes;
  if (reps_ < a_.reps || modes < modes_.size()) {
    std::string dropped;
    for (size_t m = modes; m < modes_.size(); ++m) dropped += (dropped.empty() ? "" : ",") + modes_[m].name();
    const std::string msg = fmt::format(
        "time budget: {:.0f} s left would not hold {} reps of every mode (~{:.0f} s): running {} rep(s){}", left,
        a_.reps, estimate(a_.reps, modes_.size()), reps_, dropped.empty() ? "" : ", dropping modes " + dropped);
    fmt::print(stderr, "{}\n", msg);
    notes_.push_back(msg);
    for (size_t m = modes; m < modes_.size(); ++m)
      skipped_.push_back(Json{{"kind", "skipped"}, {"model", name_}, {"point", "all"}, {"mode", modes_[m].name()},
                              {"reason", "time budget (planned)"}});
  }
  phases_.clear();
  const auto add_phase = [&](int group) {  // group < 0: all
    std::vector<Slot> ph;
    const size_t n = items_.size();
    for (int r = 0; r < reps_; ++r)
      for (size_t m = 0; m < modes; ++m)
        for (size_t j = 0; j < n; ++j) {
          const size_t i = (j + size_t(r)) % n;  // rep r starts at point r: each point leads some rep
          if (group < 0 || items_[i].group == group) ph.push_back({int(i), int(m), r});
        }
    if (!ph.empty()) phases_.push_back(std::move(ph));
  };
  if (keep_all_) {
    add_phase(-1);
  } else {
    // Start with the group whose runner is alive.
    std::vector<int> order;
    for (size_t g = 0; g < groups_.size(); ++g)
      if (groups_[g].runner) order.insert(order.begin(), int(g));
      else order.push_back(int(g));
    for (int g : order) add_phase(g);
  }
  planned_ = 0;
  for (const auto& ph : phases_) planned_ += ph.size();
  fmt::print(stderr,
             "[{:6.1f}s] plan: {} points × {} modes × {} reps = {} windows of ≥ {:.1f} s, ~{:.0f} s; budget {:.0f} s, "
             "{:.0f} s left; points interleaved {}\n",
             clock_.seconds(), items_.size(), modes, reps_, planned_, a_.window_s, estimate(reps_, modes),
             a_.budget_s, left, keep_all_ ? "across all kernels" : "within each kernel group");
}

void Bench::quality(Item& it) {
  it.quality_done = true;
  if (quality_tokens_ <= 0) return;
  Runner& run = runner(it.group);
  run.set_routing(it.specs[0]);
  const Timer t;
  // split: "tune" when a held-out text is reported beside it (the knob is chosen on this one), else absent.
  const auto pass = [&](const TokenStream& text, const std::string& file, const char* split) {
    const int64_t n = std::min<int64_t>(quality_tokens_, int64_t(text.tokens.size()) - 1);
    const EvalResult r = evaluate(run, text, EvalWindows{a_.seq, a_.batch, n, 0});
    Json j{{"kind", "quality"}, {"model", name_}, {"point", it.point.label},
           {"moe_kernels", groups_[size_t(it.group)].kernels}, {"data", file}, {"tokens", r.tokens},
           {"bytes", r.bytes}, {"nats", r.nats}, {"bits_per_byte", r.bits_per_byte()},
           {"experts_per_token", r.experts_per_token}, {"seconds", r.seconds}, {"tokens_per_s", r.tokens_per_second()},
           {"seq", a_.seq}, {"batch", a_.batch}};
    if (split) j["split"] = split;
    write(j);
    return r;
  };
  const bool held_out = !a_.report_data.empty();
  it.quality = pass(text_, a_.data, held_out ? "tune" : nullptr);
  if (held_out) it.report = pass(report_text_, a_.report_data, "report");
  quality_s_est_ = t.seconds();
}

void Bench::warm(Item& it, int m) {
  Runner& run = runner(it.group);
  run.set_routing(it.specs[size_t(m)]);
  Workload w(text_, modes_[size_t(m)], nullptr);
  w.begin(run);
  WorkTally t;
  const Timer timer;
  do w.step(run, t);
  while (timer.seconds() < a_.warmup_s || t.steps < 2);
  it.warmed[size_t(m)] = true;
}

void Bench::skip(int i, int m, int rep, const std::string& why) {
  const Json s{{"kind", "skipped"}, {"model", name_}, {"point", items_[size_t(i)].point.label},
               {"moe_kernels", groups_[size_t(items_[size_t(i)].group)].kernels}, {"mode", modes_[size_t(m)].name()},
               {"rep", rep}, {"reason", why}};
  write(s);
  skipped_.push_back(s);
  fmt::print(stderr, "[{:6.1f}s] skip {} | {} | rep {}: {}\n", clock_.seconds(), modes_[size_t(m)].name(),
             items_[size_t(i)].point.label, rep + 1, why);
}

void Bench::window(int i, int m, int rep) {
  Item& it = items_[size_t(i)];
  const WorkloadMode& mode = modes_[size_t(m)];
  const Timer wall;
  Runner& run = runner(it.group);
  if (!it.quality_done) quality(it);
  if (!it.warmed[size_t(m)]) warm(it, m);
  run.set_routing(it.specs[size_t(m)]);
  Workload w(text_, mode, work_.get());
  w.begin(run);
  WorkTally t;
  meter_->begin("window");
  const Timer timer;
  do w.step(run, t);
  while (timer.seconds() < a_.window_s);
  const WindowResult r = meter_->wait(meter_->end("window"));
  windows_.push_back({i, m, rep, r, t});
  ++done_;
  window_cost_sum_ += wall.seconds();

  const double idle = idle_.empty() ? kNaN : idle_.front()["watts"].get<double>();
  const double tok = double(t.tokens), jpt = r.joules / tok, above = (r.joules - idle * r.seconds) / tok;
  Json j{{"kind", "window"},
         {"model", name_},
         {"card", card_},
         {"mode", mode.name()},
         {"decode", mode.decode},
         {"streams", mode.decode ? mode.streams : 0},
         {"batch", mode.decode ? mode.streams : mode.batch},
         {"seq", mode.decode ? 1 : mode.seq},
         {"cache", mode.decode ? mode.cache : 0},
         {"point", it.point.label},
         {"baseline", it.baseline},
         {"auto_baseline", it.auto_baseline},
         {"point_spec", point_json(it.point)},
         {"moe_kernels", groups_[size_t(it.group)].kernels},
         {"precision", a_.precision},
         {"decode_graphs", graph_json(run.info())},
         {"rep", rep},
         {"tokens", t.tokens},
         {"steps", t.steps},
         {"tokens_per_s", tok / r.seconds},
         {"nats", t.nats},
         {"bits_per_byte", t.bits_per_byte(bytes_per_token_)},
         {"experts_per_token", t.experts_per_token()},
         {"active_experts_per_layer_step", t.active_experts_per_layer_step()},
         {"j_per_token", jpt},
         {"idle_w_start", idle},
         {"j_per_token_above_idle_start", above},
         {"analytic",
          {{"expert_flops_per_token", t.work.expert_flops / tok},
           {"expert_bytes_per_token", t.work.expert_bytes / tok},
           {"expert_j_per_token", t.work.expert_j / tok},
           {"dense_j_per_token", t.work.dense_j / tok},
           {"total_j_per_token", t.work.total_j() / tok}}},
         {"t_s", clock_.seconds()}};
  j.update(meter_json(r));
  write(j);
  const double eta = double(planned_ - done_) * window_cost_sum_ / double(done_);
  fmt::print(stderr,
             "[{:6.1f}s] {:>4}/{} {} | {} | rep {}/{} | {:.2f} s {:.0f} tok/s {:.0f} W | {:.4g} mJ/tok, above idle "
             "{:.4g} | {:.3f} bits/byte | {:.2f} experts/tok | ETA {}\n",
             clock_.seconds(), done_, planned_, mode.name(), item_name(it), rep + 1, reps_, r.seconds,
             tok / r.seconds, r.seconds > 0 ? r.joules / r.seconds : kNaN, 1e3 * jpt, 1e3 * above,
             t.bits_per_byte(bytes_per_token_), t.experts_per_token(), fmt_s(eta));
}

void Bench::run_slots() {
  const double reserve = a_.settle_s + a_.idle_s + 2;
  for (const auto& phase : phases_) {
    for (const Slot& s : phase) {
      const Item& it = items_[size_t(s.item)];
      double need = a_.window_s + 0.3;
      if (!it.warmed[size_t(s.mode)]) need += a_.warmup_s + 0.3;
      if (!it.quality_done && quality_tokens_ > 0) need += quality_s_est_;
      if (!groups_[size_t(it.group)].runner) {
        double create = 0;
        for (const Group& g : groups_) create = std::max(create, g.create_s);
        need += create + 1;
      }
      if (clock_.seconds() + need + reserve > a_.budget_s) {
        skip(s.item, s.mode, s.rep, fmt::format("time budget ({:.0f} s) reached", a_.budget_s));
        --planned_;
        continue;
      }
      window(s.item, s.mode, s.rep);
    }
  }
}

Json Bench::summary() const {
  std::vector<double> idle_w;
  for (const Json& j : idle_)
    if (j["watts"].is_number()) idle_w.push_back(j["watts"].get<double>());
  double idle = kNaN;
  if (!idle_w.empty()) {
    idle = 0;
    for (double w : idle_w) idle += w;
    idle /= double(idle_w.size());
  }
  Json rows = Json::array();
  // Per (mode, item): medians over its windows.
  struct Agg {
    double above, jpt, tps, bpb, ept, aept, a_exp, a_tot, mean_w, lo, hi;
    int n;
  };
  std::map<std::pair<int, int>, Agg> agg;
  for (size_t m = 0; m < modes_.size(); ++m)
    for (size_t i = 0; i < items_.size(); ++i) {
      std::vector<double> above, jpt, tps, bpb, ept, aept, a_exp, a_tot, mw;
      for (const WindowRec& w : windows_) {
        if (w.item != int(i) || w.mode != int(m)) continue;
        const double tok = double(w.tally.tokens);
        above.push_back((w.meter.joules - idle * w.meter.seconds) / tok);
        jpt.push_back(w.meter.joules / tok);
        tps.push_back(tok / w.meter.seconds);
        bpb.push_back(w.tally.bits_per_byte(bytes_per_token_));
        ept.push_back(w.tally.experts_per_token());
        aept.push_back(w.tally.active_experts_per_layer_step());
        a_exp.push_back(w.tally.work.expert_j / tok);
        a_tot.push_back(w.tally.work.total_j() / tok);
        mw.push_back(w.meter.seconds > 0 ? w.meter.joules / w.meter.seconds : kNaN);
      }
      if (above.empty()) continue;
      agg[{int(m), int(i)}] = {median(above), median(jpt), median(tps), median(bpb), median(ept), median(aept),
                               median(a_exp), median(a_tot), median(mw),
                               *std::min_element(above.begin(), above.end()),
                               *std::max_element(above.begin(), above.end()), int(above.size())};
    }
  for (const auto& [key, r] : agg) {
    const auto [m, i] = key;
    const Item& it = items_[size_t(i)];
    Json row{{"mode", modes_[size_t(m)].name()},
             {"point", it.point.label},
             {"policy", it.point.policy},
             {"moe_kernels", groups_[size_t(it.group)].kernels},
             {"baseline", it.baseline},
             {"windows", r.n},
             {"j_per_token_above_idle", r.above},
             {"j_per_token_above_idle_min", r.lo},
             {"j_per_token_above_idle_max", r.hi},
             {"spread_pct", 100 * (r.hi - r.lo) / r.above},
             {"j_per_token", r.jpt},
             {"tokens_per_s", r.tps},
             {"mean_w", r.mean_w},
             {"window_bits_per_byte", r.bpb},
             {"experts_per_token", r.ept},
             {"active_experts_per_layer_step", r.aept},
             {"analytic_expert_j_per_token", r.a_exp},
             {"analytic_total_j_per_token", r.a_tot}};
    if (it.quality) row["quality_bits_per_byte"] = it.quality->bits_per_byte();
    if (it.report) row["report_bits_per_byte"] = it.report->bits_per_byte();
    // The baseline: the model's top-k on the same kernels in the same mode.
    for (const auto& [k2, b] : agg) {
      const Item& bi = items_[size_t(k2.second)];
      if (k2.first != m || !bi.baseline || bi.group != it.group) continue;
      row["vs_top2_pct"] = 100 * (r.above / b.above - 1);
      row["time_vs_top2_pct"] = 100 * (b.tps / r.tps - 1);
      row["measured_saving"] = 1 - r.above / b.above;
      row["analytic_expert_share"] = r.a_exp / b.a_exp;
      row["analytic_total_share"] = r.a_tot / b.a_tot;
      row["predicted_saving"] = 1 - r.a_tot / b.a_tot;
      if (it.quality && bi.quality)
        row["quality_vs_top2_pct"] = 100 * (it.quality->bits_per_byte() / bi.quality->bits_per_byte() - 1);
      if (it.report && bi.report)
        row["report_vs_top2_pct"] = 100 * (it.report->bits_per_byte() / bi.report->bits_per_byte() - 1);
    }
    rows.push_back(row);
  }
  Json pts = Json::array();
  for (const Item& it : items_) {
    Json p = point_json(it.point);
    p["moe_kernels"] = groups_[size_t(it.group)].kernels;
    p["baseline"] = it.baseline;
    p["auto_baseline"] = it.auto_baseline;
    pts.push_back(p);
  }
  Json modes = Json::array();
  for (const WorkloadMode& m : modes_) modes.push_back(m.name());
  Json idle_j{{"mean_w", idle}};
  for (const Json& j : idle_) idle_j[j["when"].get<std::string>() + "_w"] = j["watts"];
  return Json{{"model", name_},
              {"source", a_.random_init ? "random-init " + std::to_string(a_.seed) + " " + a_.config : a_.model},
              {"card", card_},
              {"device", a_.device},
              {"sensor", sensor_ ? sensor_->name() : ""},
              {"config", model_config_to_json(cfg_)},
              {"parameters", cfg_.num_parameters()},
              {"data", a_.data},
              {"report_data", a_.report_data},
              {"precision", a_.precision},
              {"moe_kernels_asked", a_.moe_kernels},
              {"interleaving", keep_all_ ? "all points" : "within each kernel group"},
              {"window_s", a_.window_s},
              {"reps", reps_},
              {"reps_asked", a_.reps},
              {"batch", a_.batch},
              {"seq", a_.seq},
              {"cache", a_.cache},
              {"quality_tokens", quality_tokens_},
              {"modes", modes},
              {"points", pts},
              {"idle", idle_j},
              {"rows", rows},
              {"windows", windows_.size()},
              {"skipped", skipped_},
              {"notes", notes_},
              {"time_budget_s", a_.budget_s},
              {"elapsed_s", clock_.seconds()}};
}

int Bench::run() {
  if (!a_.plan_only) {
    RunnerOptions o{a_.device, a_.precision, a_.moe_kernels, a_.gpu};
    check_runner_options(o);  // no CUDA device: one clear line
    if (a_.sensor == "nvml") {
      sensor_ = std::make_unique<NvmlSensor>(unsigned(a_.gpu));
    } else {
      WATTMOE_REQUIRE(a_.sensor == "fake", "--sensor: expected nvml or fake, got {}", a_.sensor);
      sensor_ = std::make_unique<FakeSensor>();
    }
    card_ = sensor_->name();
  }
  load();
  make_groups();
  if (a_.plan_only) {
    for (const Item& it : items_)
      fmt::print("point '{}' ({}): group {}{}\n", it.point.label, it.point.policy, it.group,
                 it.auto_baseline ? ", host routing: added as the host group's top-k baseline"
                 : a_.moe_kernels != "host" ? " (fused kernels if the model allows)" : ", host routing");
    // Whether both runners stay alive is decided at run time from the free memory; here for an 80 GB card.
    const double need = double(cfg_.num_parameters()) * (a_.precision == "bf16" ? 6 : 4);  // no gradients
    keep_all_ = groups_.size() <= 1 || double(groups_.size()) * need <= 0.5 * 80e9;
    fmt::print("device memory for one runner: ~{:.1f} GB ({} parameters){}\n", need / 1e9, cfg_.num_parameters(),
               groups_.size() > 1 ? (keep_all_ ? "; both runners at once on an 80 GB card"
                                               : "; one runner at a time on an 80 GB card")
                                  : "");
    quality_s_est_ = quality_tokens_ > 0 ? 1.0 : 0;
    plan();
    return 0;
  }
  load_weights();
  fs::create_directories(a_.out);
  jsonl_.open(fs::path(a_.out) / "measurements.jsonl", std::ios::trunc);
  WATTMOE_REQUIRE(jsonl_.good(), "{}/measurements.jsonl: cannot open for writing", a_.out);
  MeterOptions mo;
  mo.sample_hz = 25;
  if (a_.device == "cuda") mo.sync = [] { cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); };
  meter_ = std::make_unique<EnergyMeter>(*sensor_, mo);
  WATTMOE_REQUIRE(!meter_->fault(), "{}: {}", card_, meter_->fault().value_or(""));

  // Both runners at once only when two weight sets fit easily (a bf16 runner holds fp32 master weights and the bf16
  // weights, 6 B a parameter, no gradients for inference; fp32: 4).
  if (a_.device == "cuda") {
    cuda_ok(cudaSetDevice(a_.gpu), "cudaSetDevice");
    size_t free_b = 0, total_b = 0;
    cuda_ok(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    const double need = double(cfg_.num_parameters()) * (a_.precision == "bf16" ? 6 : 4);  // no gradients
    WATTMOE_REQUIRE(need < 0.92 * double(free_b),
                    "{}: the runner needs ~{:.1f} GB of device memory for {} parameters ({} B each in {}) and "
                    "activations on top, but {:.1f} GB of {:.1f} GB are free: use a smaller --config",
                    name_, need / 1e9, cfg_.num_parameters(), a_.precision == "bf16" ? 6 : 4, a_.precision,
                    double(free_b) / 1e9, double(total_b) / 1e9);
    keep_all_ = groups_.size() <= 1 || double(groups_.size()) * need <= 0.5 * double(free_b);
  }
  // The first runner decides whether a second group is needed: a model the fused kernels cannot run gives a host
  // runner, which runs every point itself.
  create_runner(0);
  if (groups_.size() > 1 && groups_[0].kernels == "host") {
    std::vector<Item> kept;
    for (Item& it : items_)
      if (!it.auto_baseline) it.group = 0, kept.push_back(std::move(it));
    items_ = std::move(kept);
    groups_.resize(1);
    notes_.push_back("the first runner routes on the host (the model or precision cannot use the fused kernels): "
                     "one group");
  }
  if (keep_all_)
    for (size_t g = 1; g < groups_.size(); ++g) {
      try {
        create_runner(int(g));
      } catch (const Error& e) {  // e.g. out of device memory after all: one runner at a time instead
        groups_[g].runner.reset();
        keep_all_ = false;
        const std::string msg = fmt::format("runner {} did not fit beside runner 0 ({}): one runner at a time", g,
                                            e.what());
        fmt::print(stderr, "{}\n", msg);
        notes_.push_back(msg);
        break;
      }
    }
  measure_idle("start");
  calibrate();
  // One quality pass before planning, so the plan knows what the others cost.
  if (quality_tokens_ > 0)
    for (Item& it : items_)
      if (groups_[size_t(it.group)].runner) {
        quality(it);
        break;
      }
  plan();
  run_slots();
  if (a_.device == "cuda") cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  measure_idle("end");
  write_json_file((fs::path(a_.out) / "summary.json").string(), summary());
  fmt::print(stderr, "[{:6.1f}s] done: {} windows, {} skipped; {}/measurements.jsonl, {}/summary.json\n",
             clock_.seconds(), windows_.size(), skipped_.size(), a_.out, a_.out);
  return 0;
}

}  // namespace
}  // namespace wattmoe

int main(int argc, char** argv) {
  using namespace wattmoe;
  Args a;
  CLI::App app{"Measured energy (NVML energy counter) of routing policies on one GPU: J/token above idle, tokens/s, "
               "bits/byte and experts/token per policy point, in prefill and batched decoding"};
  app.add_option("--model", a.model, "checkpoint directory (config.json + safetensors)");
  CLI::Option* seed = app.add_option("--random-init", a.seed, "random weights from this seed (with --config; speed "
                                                              "and energy only)");
  app.add_option("--config", a.config, "HF config.json of the random model's shape (with --random-init)");
  app.add_option("--data", a.data, "text to run (prefill windows, decode streams, quality)")->capture_default_str();
  app.add_option("--out", a.out, "output directory: measurements.jsonl, summary.json");
  app.add_option("--name", a.name, "model name in the records (default: the directory or config name)");
  app.add_option("--points", a.points, "policy points, ';'-separated, a/b/c expands (eval/policy_points.h)")
      ->capture_default_str();
  app.add_option("--points-file", a.points_file, "a JSON array of policy points (replaces --points)");
  app.add_option("--modes", a.modes, "prefill and/or decode<N> (N streams), comma-separated")->capture_default_str();
  std::string streams;
  app.add_option("--streams", streams, "decode stream counts, e.g. 1,8,64: replaces the decode modes of --modes");
  app.add_option("--batch", a.batch, "prefill: sequences per forward")->capture_default_str();
  app.add_option("--seq", a.seq, "prefill: tokens per sequence (also the quality pass's windows)")->capture_default_str();
  app.add_option("--cache", a.cache, "decode: positions before the KV cache restarts")->capture_default_str();
  app.add_option("--window-s", a.window_s, "each measured window lasts at least this long")->capture_default_str();
  app.add_option("--reps", a.reps, "windows per (point, mode), interleaved")->capture_default_str();
  app.add_option("--warmup-s", a.warmup_s, "unmeasured warm-up per (point, mode)")->capture_default_str();
  app.add_option("--idle-s", a.idle_s, "idle power window at the start and at the end")->capture_default_str();
  app.add_option("--settle-s", a.settle_s, "pause before each idle window")->capture_default_str();
  app.add_option("--time-budget-s", a.budget_s, "the whole run stays inside this (skips what would not fit, says so)")
      ->capture_default_str();
  app.add_option("--precision", a.precision, "fp32 | bf16")->capture_default_str();
  app.add_option("--moe-kernels", a.moe_kernels, "auto | fused | host (model/runner.h)")->capture_default_str();
  app.add_option("--quality-tokens", a.quality_tokens,
                 "bits/byte of each point over the text's first N tokens (default 65536; 0 = none; random models: 0)");
  app.add_option("--report-data", a.report_data,
                 "a held-out text for a second quality pass: knobs are chosen on --data's bits/byte (the tuning "
                 "split) and reported on this one's");
  app.add_option("--calib-batches", a.calib_batches, "prefill batches of top-k that count expert use (mask r=N)")
      ->capture_default_str();
  app.add_flag("!--no-host-baseline", a.host_baseline, "do not measure top-k on host routing beside fused top-k");
  app.add_flag("!--no-decode-graphs", a.decode_graphs,
               "launch every slots<N> decode step kernel by kernel (no CUDA graphs; gpu/transformer_cuda.h)");
  app.add_flag("--eager-baseline", a.eager_baseline,
               "also measure top-k with the slots<N> steps launched kernel by kernel (kernels 'fused-eager')");
  app.add_flag("--plan-only", a.plan_only, "resolve the points and print the plan; no weights, no GPU");
  app.add_option("--device", a.device, "cuda (cpu: a smoke test of the flow, decode 1 stream)")->capture_default_str();
  app.add_option("--sensor", a.sensor, "nvml | fake (constant 100 W: a smoke test, not a measurement)")
      ->capture_default_str();
  app.add_option("--gpu", a.gpu, "CUDA device and NVML index")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  a.random_init = seed->count() > 0;
  if (!streams.empty()) {  // --streams 1,8,64: decode1,decode8,decode64 after the other modes
    std::string modes, item;
    std::stringstream ms(a.modes), ss(streams);
    while (std::getline(ms, item, ','))
      if (!item.empty() && item.rfind("decode", 0) != 0) modes += (modes.empty() ? "" : ",") + item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) modes += (modes.empty() ? "decode" : ",decode") + item;
    a.modes = modes;
  }
  try {
    WATTMOE_REQUIRE(a.model.empty() != !a.random_init,
                    "expected --model DIR, or --random-init SEED with --config FILE (not both)");
    WATTMOE_REQUIRE(!a.random_init || !a.config.empty(), "--random-init needs --config FILE (the shape)");
    WATTMOE_REQUIRE(a.plan_only || !a.out.empty(), "--out DIR is required");
    WATTMOE_REQUIRE(a.window_s > 0 && a.reps >= 1 && a.warmup_s >= 0 && a.idle_s > 0 && a.settle_s >= 0,
                    "--window-s, --idle-s must be > 0, --reps ≥ 1, --warmup-s and --settle-s ≥ 0");
    WATTMOE_REQUIRE(a.random_init || file_exists(a.model + "/config.json"), "--model {}: no config.json there",
                    a.model);
    return Bench(a).run();
  } catch (const Error& e) {
    fmt::print(stderr, "energy_policies: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "energy_policies: {}\n", e.what());
    return 1;
  }
}
