// Times our MoE layer forward (ops/moe_cuda.h) on one GPU and prints one JSON line per token count, which
// bench/moe_layer_torch.py reads to put it beside the PyTorch paths. Default shape: Mixtral (H=4096, I=14336, E=8,
// k=2), bf16, random weights (std 1/sqrt(fan_in)) and random inputs (std 1), so routing is roughly balanced.
//
// Time: CUDA events around each forward (stream launches; and separately replays of a captured CUDA graph), median
// of --reps after warm-up. Energy: NVML's total-energy counter (read only, through dlopen of libnvidia-ml), sampled
// by a background thread while the forward runs back to back for --window seconds; power = energy between the first
// and last counter tick inside the window / the time between them; J per forward = power × wall time per forward.
// Idle power is measured the same way with the GPU idle, before anything runs.
//
//   moe_layer_bench [--tokens 1,8,64,512,4096,16384] [--H 4096 --I 14336 --E 8 --k 2] [--reps 30] [--window 1.0]
//                   [--block-m 0|64|128] [--decode-max 8] [--sm90 0|1|2|3|4] [--no-energy] [--stages N]
//                   [--static-schedule] [--store 0|1|2|3]
//                   [--policy topk|cost|top_p|skip|budget|mask] [--slots S] [--k-max K] [--k-min N] [--lambda L]
//                   [--p P] [--beta B] [--budget J | --budget-frac F] [--reuse M] [--mask e1,e2,...]
//                   [--cost-fixed J] [--cost-per-token J] [--cost-skew F] [--expert-precision bf16,fp8,int8]
// Routing policy (ops/moe_route_policy.h; knobs in device memory, set before each token count, validated by
// MoeLayerCuda::set_route_policy): default plain top-k with --k. --slots: MoeShape::max_slots (default max(k, K)).
// Expert costs for cost/budget: a_e = cost-fixed · (1 + skew·e/(E-1)), b_e = cost-per-token · (same factor); the
// defaults are rough Mixtral-expert figures (352 MB of weights at ~0.1 nJ/byte; 352 MFLOP at ~1 pJ/FLOP), only to give
// the policies a realistic ratio. --budget-frac F: budget_j = F · (Σ a_e + T·K·mean b_e) at each T (a scale where a
// budget binds at every token count). Each line reports the routed pairs (Σ counts) beside T·K.
// --store: MoeCudaOptions::sm90_store, epilogue of the TMA kernels (0 auto = 3, 1 registers, 2 TMA store in
// gate_up, 3 TMA store in gate_up and down).
// --static-schedule: MoeCudaOptions::sm90_static_schedule (the TMA kernels as before: fixed-stride tile order,
// every 64-row half computed).
// --stages N: also N forwards back to back (no host sync between them) with a CUDA event after each stage
// (MoeCudaOptions::on_stage); prints the mean ms of each stage and of the whole forward under sustained load
// (power-limited clocks) as one JSON line {"stages":...}.
// --sm90: kernel of the 128-row tiles (MoeCudaOptions::sm90_kernel: 0 auto, 1 cp.async, 2 TMA, 3 / 4 TMA multicast
// in clusters of 2 / 4).
// --expert-precision bf16,fp8,int8 (a list; default bf16): at each token count, the layer runs with each format on
// the same inputs — fp8 / int8 are weight-only quantised experts (ops/quant.h rules: one fp32 scale per weight row)
// made on the device from the same bf16 weights and read by the decode kernels (T <= --decode-max; larger T reads
// the bf16 experts in every format, so its lines time the same kernels). Each line carries "expert_precision" and
// "weight_gb_s", the expert bytes the step must read (active experts × 3·I·H × bytes per weight, plus the scales)
// over the graph-replay time; after the formats of one T, a line {"ratios":...} gives bf16's ms, graph ms and J per
// token over each other format's (> 1: the format is faster / spends less).
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <stdexcept>

#include "bench_util.h"
#include "ops/moe_cuda.h"

namespace {

#define CK(call)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                                \
    }                                                                                              \
  } while (0)

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Uniform(-a, a) bf16 from a counter hash: fills gigabytes on the device in milliseconds.
__global__ void fill_uniform(uint16_t* p, size_t n, float a, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull + seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float u = float(z >> 40) * (1.0f / 16777216.0f);  // [0,1)
    const float v = (2.f * u - 1.f) * a;
    uint32_t b;
    std::memcpy(&b, &v, 4);
    p[i] = uint16_t((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
  }
}

void fill(uint16_t* p, size_t n, double std, uint64_t seed) {
  fill_uniform<<<1024, 256>>>(p, n, float(std * 1.7320508075688772), seed);
  CK(cudaGetLastError());
}

// Weight-only quantisation of bf16 rows on the device, one warp per row, by the rules of ops/quant.h (scale =
// amax / 448 for fp8 e4m3 — CUDA's own saturating, round-to-nearest-even conversion — or amax / 127 for int8, round
// half to even, clamped to ±127; a zero row gets scale 1). Here only because a Mixtral layer has 1.4e9 expert
// weights, minutes for the host quantiser; fmt 1 fp8, 2 int8.
__global__ void quantise_rows_dev(const uint16_t* w, size_t rows, int cols, int fmt, uint8_t* codes, float* scales) {
  const size_t row = blockIdx.x * size_t(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const uint16_t* r = w + row * cols;
  auto value = [&](int j) { return __uint_as_float(uint32_t(r[j]) << 16); };
  float amax = 0.f;
  for (int j = lane; j < cols; j += 32) amax = fmaxf(amax, fabsf(value(j)));
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float s = amax == 0.f ? 1.f : amax / (fmt == 1 ? 448.f : 127.f);
  if (lane == 0) scales[row] = s;
  for (int j = lane; j < cols; j += 32) {
    const float v = value(j) / s;
    codes[row * cols + j] = fmt == 1 ? __nv_fp8_e4m3(v).__x : uint8_t(int8_t(rintf(fminf(fmaxf(v, -127.f), 127.f))));
  }
}

// NVML, read-only, loaded at run time so the binary needs no NVML at link time.
struct Nvml {
  using Fn0 = int (*)();
  using FnPci = int (*)(const char*, void**);
  using FnEnergy = int (*)(void*, unsigned long long*);
  void* lib = nullptr;
  void* dev = nullptr;
  FnEnergy energy = nullptr;

  bool open(int cuda_device) {
    lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!lib) return false;
    auto init = reinterpret_cast<Fn0>(dlsym(lib, "nvmlInit_v2"));
    auto by_pci = reinterpret_cast<FnPci>(dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
    energy = reinterpret_cast<FnEnergy>(dlsym(lib, "nvmlDeviceGetTotalEnergyConsumption"));
    if (!init || !by_pci || !energy || init() != 0) return false;
    char bus[64];
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, cuda_device) != cudaSuccess) return false;
    return by_pci(bus, &dev) == 0;
  }
  bool read(unsigned long long* mj) const { return energy(dev, mj) == 0; }
};

// Samples the energy counter every ~2 ms; ticks() are the (time, mJ) points where the counter changed.
class EnergySampler {
 public:
  explicit EnergySampler(const Nvml& n) : nvml_(n) {
    th_ = std::thread([this] {
      unsigned long long last = 0;
      bool have = false;
      while (!stop_.load()) {
        unsigned long long v;
        const auto t = Clock::now();
        if (nvml_.read(&v) && (!have || v != last)) {
          ticks_.push_back({t, v});
          last = v, have = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  // Mean power (W) from the first tick at/after t0 to the last tick at/before t1; -1 if fewer than 2 or < 0.2 s.
  double stop_and_power(Clock::time_point t0, Clock::time_point t1) {
    stop_.store(true);
    th_.join();
    const Tick* a = nullptr;
    const Tick* b = nullptr;
    for (const auto& k : ticks_) {
      if (k.t >= t0 && !a) a = &k;
      if (k.t <= t1) b = &k;
    }
    if (!a || !b || secs(a->t, b->t) < 0.2) return -1;
    return double(b->mj - a->mj) * 1e-3 / secs(a->t, b->t);
  }

 private:
  struct Tick {
    Clock::time_point t;
    unsigned long long mj;
  };
  const Nvml& nvml_;
  std::atomic<bool> stop_{false};
  std::vector<Tick> ticks_;
  std::thread th_;
};

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[size_t(q * double(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
  int H = 4096, I = 14336, E = 8, k = 2, reps = 30, block_m = 0, decode_max = 8, sm90 = 0, stages = 0, store = 0;
  double window = 1.0;
  bool energy = true, static_schedule = false;
  std::vector<int> tokens = {1, 8, 64, 512, 4096, 16384};
  // Routing policy knobs (see the header comment).
  std::string policy_name = "topk";
  int slots = 0, k_max = 0, k_min = 1, reuse = 0;
  float lambda = 0.f, top_p = 1.f, beta = 0.f;
  double budget = -1, budget_frac = -1, cost_fixed = 0.035, cost_per_token = 3.5e-4, cost_skew = 1.0;
  std::vector<int> masked;
  std::vector<std::string> precisions = {"bf16"};
  for (int i = 1; i < argc; ++i) {
    auto is = [&](const char* f) { return std::strcmp(argv[i], f) == 0 && i + 1 < argc; };
    if (is("--tokens")) tokens = parse_list(argv[++i]);
    else if (is("--H")) H = std::atoi(argv[++i]);
    else if (is("--I")) I = std::atoi(argv[++i]);
    else if (is("--E")) E = std::atoi(argv[++i]);
    else if (is("--k")) k = std::atoi(argv[++i]);
    else if (is("--reps")) reps = std::atoi(argv[++i]);
    else if (is("--window")) window = std::atof(argv[++i]);
    else if (is("--block-m")) block_m = std::atoi(argv[++i]);
    else if (is("--decode-max")) decode_max = std::atoi(argv[++i]);
    else if (is("--sm90")) sm90 = std::atoi(argv[++i]);
    else if (is("--stages")) stages = std::atoi(argv[++i]);
    else if (is("--store")) store = std::atoi(argv[++i]);
    else if (is("--policy")) policy_name = argv[++i];
    else if (is("--slots")) slots = std::atoi(argv[++i]);
    else if (is("--k-max")) k_max = std::atoi(argv[++i]);
    else if (is("--k-min")) k_min = std::atoi(argv[++i]);
    else if (is("--lambda")) lambda = float(std::atof(argv[++i]));
    else if (is("--p")) top_p = float(std::atof(argv[++i]));
    else if (is("--beta")) beta = float(std::atof(argv[++i]));
    else if (is("--budget")) budget = std::atof(argv[++i]);
    else if (is("--budget-frac")) budget_frac = std::atof(argv[++i]);
    else if (is("--reuse")) reuse = std::atoi(argv[++i]);
    else if (is("--mask")) masked = parse_list(argv[++i]);
    else if (is("--cost-fixed")) cost_fixed = std::atof(argv[++i]);
    else if (is("--cost-per-token")) cost_per_token = std::atof(argv[++i]);
    else if (is("--cost-skew")) cost_skew = std::atof(argv[++i]);
    else if (is("--expert-precision")) {
      precisions.clear();
      for (const char* p = argv[++i]; *p;) {
        const char* q = std::strchr(p, ',');
        precisions.emplace_back(p, q ? size_t(q - p) : std::strlen(p));
        p = q ? q + 1 : p + std::strlen(p);
      }
    }
    else if (std::strcmp(argv[i], "--no-energy") == 0) energy = false;
    else if (std::strcmp(argv[i], "--static-schedule") == 0) static_schedule = true;
    else {
      std::fprintf(stderr, "unknown or incomplete flag %s (see the header of bench/moe_layer_bench.cu)\n", argv[i]);
      return 2;
    }
  }
  for (const std::string& p : precisions)
    if (p != "bf16" && p != "fp8" && p != "int8") {
      std::fprintf(stderr, "--expert-precision %s: expected a list of bf16, fp8, int8\n", p.c_str());
      return 2;
    }
  const int maxT = *std::max_element(tokens.begin(), tokens.end());
  wattmoe::MoeRoutePolicy pol{};
  if (!wattmoe::moe_route_from_name(policy_name, pol.policy)) {
    std::fprintf(stderr, "--policy %s: expected topk, cost, top_p, skip, budget or mask\n", policy_name.c_str());
    return 2;
  }
  pol.k_max = k_max, pol.k_min = k_min, pol.reuse_min_tokens = reuse, pol.lambda = lambda, pol.p = top_p;
  pol.beta = beta;
  for (int e : masked) {
    if (e < 0 || e >= E || e >= wattmoe::kMoeRouteMaxExperts) {
      std::fprintf(stderr, "--mask %d: expected experts 0..%d\n", e, E - 1);
      return 2;
    }
    wattmoe::moe_route_set_pruned(pol, e, true);
  }
  if (pol.policy == wattmoe::MoeRoute::Cost || pol.policy == wattmoe::MoeRoute::Budget) {
    pol.cost_experts = E;
    for (int e = 0; e < E && e < wattmoe::kMoeRouteMaxExperts; ++e) {
      const double f = 1.0 + cost_skew * (E > 1 ? double(e) / double(E - 1) : 0.0);
      pol.fixed[e] = float(cost_fixed * f), pol.per_token[e] = float(cost_per_token * f);
    }
  }
  const int K = k_max > 0 ? k_max : k;
  if (slots == 0) slots = std::max(k, K);

  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  Nvml nvml;
  const bool have_nvml = energy && nvml.open(0);
  std::printf("{\"device\":\"%s\",\"sms\":%d,\"H\":%d,\"I\":%d,\"E\":%d,\"k\":%d,\"nvml\":%s,\"policy\":\"%s\","
              "\"slots\":%d,\"K\":%d,\"k_min\":%d,\"lambda\":%g,\"p\":%g,\"beta\":%g,\"reuse\":%d,\"masked\":%zu}\n",
              prop.name, prop.multiProcessorCount, H, I, E, k, have_nvml ? "true" : "false", policy_name.c_str(), slots,
              K, k_min, lambda, top_p, beta, reuse, masked.size());

  double idle_w = -1;
  if (have_nvml) {  // idle first, before any kernel heats the card
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EnergySampler smp(nvml);
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    idle_w = smp.stop_and_power(t0, Clock::now());
    std::printf("{\"idle_w\":%.1f}\n", idle_w);
  }

  try {
    const size_t nr = size_t(E) * H, ne = size_t(E) * I * H;
    uint16_t *router, *gate, *up, *down, *x, *out;
    CK(cudaMalloc(&router, nr * 2));
    CK(cudaMalloc(&gate, ne * 2));
    CK(cudaMalloc(&up, ne * 2));
    CK(cudaMalloc(&down, ne * 2));
    CK(cudaMalloc(&x, size_t(maxT) * H * 2));
    CK(cudaMalloc(&out, size_t(maxT) * H * 2));
    fill(router, nr, 1.0 / std::sqrt(double(H)), 1);
    fill(gate, ne, 1.0 / std::sqrt(double(H)), 2);
    fill(up, ne, 1.0 / std::sqrt(double(H)), 3);
    fill(down, ne, 1.0 / std::sqrt(double(I)), 4);
    fill(x, size_t(maxT) * H, 1.0, 5);

    wattmoe::MoeCudaOptions opt;
    opt.block_m = block_m;
    opt.decode_max_tokens = decode_max;
    opt.sm90_kernel = sm90;
    opt.sm90_static_schedule = static_schedule;
    opt.sm90_store = store;
    // --stages: events recorded after each stage into `stage_ev` while `stage_on` (names kept in `stage_names`).
    std::vector<cudaEvent_t> stage_ev;
    std::vector<std::string> stage_names;
    bool stage_on = false;
    size_t stage_next = 0;
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    opt.on_stage = [&](const char* name) {
      if (!stage_on) return;
      if (stage_next >= stage_ev.size()) {
        stage_ev.emplace_back();
        CK(cudaEventCreate(&stage_ev.back()));
      }
      if (stage_names.size() <= stage_next) stage_names.emplace_back(name);
      CK(cudaEventRecord(stage_ev[stage_next++], s));
    };
    wattmoe::MoeLayerCuda layer({H, I, E, k, true, slots}, maxT, opt);
    layer.use_device_weights(router, gate, up, down);
    std::fprintf(stderr, "workspace %.1f MB for max T %d\n", double(layer.workspace_bytes()) / 1e6, maxT);
    // The quantised experts of each format asked for: codes [3][E·I·H] and scales gate, up [E·I], down [E·H].
    struct Quant {
      uint8_t* codes = nullptr;
      float* scales = nullptr;
    } quant[3];
    for (const std::string& p : precisions) {
      const int fmt = p == "fp8" ? 1 : p == "int8" ? 2 : 0;
      if (fmt == 0 || quant[fmt].codes) continue;
      Quant& q = quant[fmt];
      CK(cudaMalloc(&q.codes, 3 * ne));
      CK(cudaMalloc(&q.scales, (size_t(2) * E * I + size_t(E) * H) * 4));
      const uint16_t* src[3] = {gate, up, down};
      const size_t rows[3] = {size_t(E) * I, size_t(E) * I, size_t(E) * H};
      const size_t soff[3] = {0, size_t(E) * I, size_t(2) * E * I};
      for (int m = 0; m < 3; ++m) {
        const int cols = m == 2 ? I : H;
        quantise_rows_dev<<<unsigned((rows[m] + 7) / 8), 256>>>(src[m], rows[m], cols, fmt, q.codes + m * ne,
                                                                 q.scales + soff[m]);
        CK(cudaGetLastError());
      }
      CK(cudaDeviceSynchronize());
    }

    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));

    for (int T : tokens) {
      struct Result {
        std::string precision;
        double ms, graph_ms, j_tok;
      };
      std::vector<Result> results;
      for (const std::string& prec : precisions) {
        const int fmt = prec == "fp8" ? 1 : prec == "int8" ? 2 : 0;
        const wattmoe::ops::ExpertPrecision ep = fmt == 1   ? wattmoe::ops::ExpertPrecision::Fp8
                                                 : fmt == 2 ? wattmoe::ops::ExpertPrecision::Int8
                                                            : wattmoe::ops::ExpertPrecision::Bf16;
        if (fmt == 0) {
          layer.use_device_quantised_experts(ep, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
        } else {
          const Quant& q = quant[fmt];
          layer.use_device_quantised_experts(ep, q.codes, q.codes + ne, q.codes + 2 * ne, q.scales,
                                             q.scales + size_t(E) * I, q.scales + size_t(2) * E * I);
        }
        pol.budget_j = budget >= 0 ? budget : std::numeric_limits<double>::infinity();
        if (budget_frac >= 0 && pol.cost_experts > 0) {
          double a = 0, b = 0;
          for (int e = 0; e < E; ++e) a += pol.fixed[e], b += pol.per_token[e];
          pol.budget_j = budget_frac * (a + double(T) * K * b / double(E));
        }
        layer.set_route_policy(pol, s);  // throws wattmoe::Error naming a bad knob
        for (int i = 0; i < 3; ++i) layer.forward(x, out, T, s);
        CK(cudaStreamSynchronize(s));
        if (const int f = layer.route_policy_faults()) {
          std::fprintf(stderr, "moe_layer_bench: the kernels flagged the policy block (faults %d)\n", f);
          return 1;
        }
        std::vector<int32_t> counts(static_cast<size_t>(E));
        CK(cudaMemcpy(counts.data(), layer.expert_counts(), size_t(E) * 4, cudaMemcpyDeviceToHost));
        const int active = int(std::count_if(counts.begin(), counts.end(), [](int c) { return c > 0; }));
        long pairs = 0;
        for (int c : counts) pairs += c;
        std::vector<uint16_t> o(static_cast<size_t>(H));
        CK(cudaMemcpy(o.data(), out, size_t(H) * 2, cudaMemcpyDeviceToHost));
        bool finite = true;
        for (uint16_t b : o) finite = finite && ((b & 0x7f80) != 0x7f80);

        std::vector<double> ms;
        for (int r = 0; r < reps; ++r) {
          CK(cudaEventRecord(e0, s));
          layer.forward(x, out, T, s);
          CK(cudaEventRecord(e1, s));
          CK(cudaEventSynchronize(e1));
          float m;
          CK(cudaEventElapsedTime(&m, e0, e1));
          ms.push_back(m);
        }
        // The same forward captured once and replayed: launch gaps removed.
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        layer.forward(x, out, T, s);
        CK(cudaStreamEndCapture(s, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(ge, s));
        std::vector<double> gms;
        for (int r = 0; r < reps; ++r) {
          CK(cudaEventRecord(e0, s));
          CK(cudaGraphLaunch(ge, s));
          CK(cudaEventRecord(e1, s));
          CK(cudaEventSynchronize(e1));
          float m;
          CK(cudaEventElapsedTime(&m, e0, e1));
          gms.push_back(m);
        }
        CK(cudaGraphExecDestroy(ge));
        CK(cudaGraphDestroy(g));

        if (stages > 0) {  // back to back, one event after each stage; stage_ev[0] marks the start
          stage_ev.clear(), stage_names.clear();
          stage_next = 0;
          stage_on = true;
          opt.on_stage("start");
          for (int r = 0; r < stages; ++r) layer.forward(x, out, T, s);
          stage_on = false;
          CK(cudaStreamSynchronize(s));
          const size_t per = (stage_next - 1) / size_t(stages);  // events per forward
          std::vector<double> sum(per, 0.0);
          for (size_t i = 1; i < stage_next; ++i) {
            float m;
            CK(cudaEventElapsedTime(&m, stage_ev[i - 1], stage_ev[i]));
            sum[(i - 1) % per] += m;
          }
          float total;
          CK(cudaEventElapsedTime(&total, stage_ev[0], stage_ev[stage_next - 1]));
          std::printf("{\"stages\":{\"T\":%d,\"n\":%d,\"fwd_ms\":%.4f", T, stages, total / stages);
          for (size_t j = 0; j < per; ++j) std::printf(",\"%s\":%.4f", stage_names[j + 1].c_str(), sum[j] / stages);
          std::printf("}}\n");
          std::fflush(stdout);
        }
        double watts = -1, per_fwd_s = 0;
        long iters = 0;
        if (have_nvml) {
          EnergySampler smp(nvml);
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          const auto t0 = Clock::now();
          Clock::time_point t1;
          do {
            for (int i = 0; i < 8; ++i) layer.forward(x, out, T, s);
            iters += 8;
            CK(cudaStreamSynchronize(s));
            t1 = Clock::now();
          } while (secs(t0, t1) < window);
          per_fwd_s = secs(t0, t1) / double(iters);
          watts = smp.stop_and_power(t0, t1);
        }
        const double j_tok = watts > 0 ? watts * per_fwd_s / T : -1;
        // FNV-1a of the whole output: kernel variants that sum in the same order (WATTMOE_SM90=cp vs the TMA default)
        // must print the same hash on the same inputs.
        std::vector<uint16_t> all(size_t(T) * H);
        CK(cudaMemcpy(all.data(), out, all.size() * 2, cudaMemcpyDeviceToHost));
        unsigned long long hash = 1469598103934665603ull;
        for (uint16_t b : all) {
          finite = finite && ((b & 0x7f80) != 0x7f80);
          hash = (hash ^ b) * 1099511628211ull;
        }
        // Expert bytes the step reads: the decode path streams the active experts once in the format; prefill reads
        // bf16 whatever the format.
        const bool decode = layer.path_for(T) == 0;
        const double wbytes = decode && fmt != 0 ? 1.0 : 2.0;
        const double bytes =
            double(active) * (3.0 * double(I) * H * wbytes + (decode && fmt ? (2.0 * I + H) * 4 : 0));
        std::printf(
            "{\"impl\":\"wattmoe\",\"T\":%d,\"path\":\"%s\",\"expert_precision\":\"%s\",\"ms\":%.4f,"
            "\"ms_p10\":%.4f,\"ms_p90\":%.4f,"
            "\"graph_ms\":%.4f,\"weight_gb_s\":%.1f,\"active_experts\":%d,\"pairs\":%ld,\"pairs_topK\":%ld,"
            "\"budget_j\":%g,\"finite\":%s,\"watts\":%.1f,\"loop_ms\":%.4f,\"iters\":%ld,\"j_per_token\":%.6g,"
            "\"out_hash\":\"%016llx\"}\n",
            T, decode ? "decode" : (layer.path_for(T) == 64 ? "gemm64" : "gemm128"), prec.c_str(), median(ms),
            quantile(ms, 0.1), quantile(ms, 0.9), median(gms), bytes / (median(gms) * 1e-3) / 1e9, active, pairs,
            long(T) * K, pol.budget_j, finite ? "true" : "false", watts, per_fwd_s * 1e3, iters, j_tok, hash);
        std::fflush(stdout);
        results.push_back({prec, median(ms), median(gms), j_tok});
      }
      const auto base =
          std::find_if(results.begin(), results.end(), [](const Result& r) { return r.precision == "bf16"; });
      if (base != results.end() && results.size() > 1) {  // bf16 over each other format: > 1 means faster / cheaper
        std::printf("{\"ratios\":{\"T\":%d", T);
        for (const Result& r : results) {
          if (r.precision == "bf16") continue;
          std::printf(",\"bf16_over_%s\":{\"ms\":%.3f,\"graph_ms\":%.3f,\"j_per_token\":%.3f}",
                      r.precision.c_str(), base->ms / r.ms, base->graph_ms / r.graph_ms,
                      base->j_tok > 0 && r.j_tok > 0 ? base->j_tok / r.j_tok : -1.0);
        }
        std::printf("}}\n");
        std::fflush(stdout);
      }
    }
    for (Quant& q : quant) cudaFree(q.codes), cudaFree(q.scales);
    cudaFree(router), cudaFree(gate), cudaFree(up), cudaFree(down), cudaFree(x), cudaFree(out);
  } catch (const std::exception& err) {  // wattmoe::Error: bad shape or CUDA failure
    std::fprintf(stderr, "moe_layer_bench: %s\n", err.what());
    return 1;
  }
  return 0;
}
