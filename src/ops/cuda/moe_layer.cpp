// Host side of MoeLayerCuda (ops/moe_cuda.h): workspace layout, weight upload, routing policy blocks, path choice
// and the launch sequence of one forward, each stage inside an NVTX range named <name>.router (route and its
// step-level pass) / .permute / .gate_up / .down / .combine.
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "ops/cuda/moe_kernels.h"
#include "ops/moe_cuda.h"
#include "ops/moe_route_policy_check.h"

namespace wattmoe {
namespace cuda {

void cuda_fail(cudaError_t e, const char* call, const char* file, int line) {
  throw Error(std::string(file) + ":" + std::to_string(line) + ": CUDA error " + cudaGetErrorName(e) + " (" +
              cudaGetErrorString(e) + ") in " + call);
}

}  // namespace cuda

namespace {

using cuda::bf16;

class NvtxRange {
 public:
  explicit NvtxRange(const std::string& name) { nvtxRangePushA(name.c_str()); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Padded row capacity of the permuted layout for T tokens of S slots and M-tile bm (routing-independent upper bound:
// at most T·S used pairs, each expert's rows padded by at most bm - 1).
int rows_capacity(int T, int S, int E, int bm) {
  const long long rows = (long long)T * S + (long long)E * (bm - 1);
  return int((rows + bm - 1) / bm * bm);
}

}  // namespace

MoeLayerCuda::MoeLayerCuda(const MoeShape& shape, int max_tokens, const MoeCudaOptions& opt)
    : shape_(shape), opt_(opt), max_tokens_(max_tokens) {
  const int H = shape.hidden, I = shape.intermediate, E = shape.experts, k = shape.top_k;
  WATTMOE_REQUIRE(H > 0 && H % 8 == 0, "MoeLayerCuda: hidden size {} must be a positive multiple of 8 (16-byte rows)",
                  H);
  WATTMOE_REQUIRE(I > 0 && I % 8 == 0,
                  "MoeLayerCuda: intermediate size {} must be a positive multiple of 8 (16-byte rows)", I);
  WATTMOE_REQUIRE(E >= 1 && E <= cuda::kMaxExperts, "MoeLayerCuda: {} experts, supported 1..{}", E,
                  cuda::kMaxExperts);
  WATTMOE_REQUIRE(k >= 1 && k <= E, "MoeLayerCuda: top_k {} must be in 1..{} (experts)", k, E);
  const int S = shape.max_slots ? shape.max_slots : k;
  WATTMOE_REQUIRE(S >= k && S <= E, "MoeLayerCuda: max_slots {} must be 0 (= top_k) or in top_k..E = {}..{}",
                  shape.max_slots, k, E);
  slots_ = S;
  WATTMOE_REQUIRE(max_tokens >= 1, "MoeLayerCuda: max_tokens {} must be >= 1", max_tokens);
  WATTMOE_REQUIRE(opt.decode_max_tokens >= 0 && opt.decode_max_tokens <= cuda::kDecodeMaxTokens,
                  "MoeLayerCuda: decode_max_tokens {} must be in 0..{}", opt.decode_max_tokens,
                  cuda::kDecodeMaxTokens);
  WATTMOE_REQUIRE(opt.block_m == 0 || opt.block_m == 64 || opt.block_m == 128,
                  "MoeLayerCuda: block_m {} must be 0 (auto), 64 or 128", opt.block_m);
  WATTMOE_REQUIRE(opt.sm90_kernel >= 0 && opt.sm90_kernel <= 4, "MoeLayerCuda: sm90_kernel {} must be in 0..4",
                  opt.sm90_kernel);
  WATTMOE_REQUIRE(opt.sm90_store >= 0 && opt.sm90_store <= 3, "MoeLayerCuda: sm90_store {} must be in 0..3",
                  opt.sm90_store);
  WATTMOE_REQUIRE((long long)max_tokens * S < (1ll << 30), "MoeLayerCuda: max_tokens {} × slots {} too large",
                  max_tokens, S);

  max_rows_ = std::max(rows_capacity(max_tokens, S, E, 64), rows_capacity(max_tokens, S, E, 128));
  const size_t pairs = size_t(max_tokens) * S;
  size_t o = 0;
  auto take = [&](size_t bytes) {
    const size_t at = o;
    o = align_up(o + bytes, 256);
    return at;
  };
  off_logits_ = take(size_t(max_tokens) * E * 2);
  off_ids_ = take(pairs * 4);
  off_w_ = take(pairs * 4);
  off_counts_ = take(size_t(2 * E + 1) * 4);  // counts [E], first-pass counts [E], fault word
  off_probs_ = take(size_t(max_tokens) * E * 4);
  off_policy_ = take(sizeof(MoeRoutePolicy));
  off_ckey_ = take(pairs * 4 * 2);
  off_cp_ = take(pairs * 4 * 2);
  off_cratio_ = take(pairs * 8);
  off_ctok_ = take(pairs * 4);
  off_keep_ = take(pairs);
  off_stok_ = take(size_t(max_rows_) * 4);
  off_sw_ = take(size_t(max_rows_) * 4);
  off_inv_ = take(pairs * 4);
  off_tiles_ = take(size_t(max_rows_ / 64) * 4);
  off_h_ = take(size_t(max_rows_) * I * 2);
  off_y_ = take(size_t(max_rows_) * H * 2);
  int dev = 0, major = 0;
  WATTMOE_CUDA_CALL(cudaGetDevice(&dev));
  WATTMOE_CUDA_CALL(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  sm90_ = major == 9;
  // The sm90 TMA gate_up reads x through a gathered copy xs [max_rows, H] (TMA cannot gather rows).
  off_xs_ = sm90_ ? take(size_t(max_rows_) * H * 2) : 0;
  off_sched_ = take(2 * 4);  // tile counters of the sm90 TMA kernels
  ws_bytes_ = o;
  WATTMOE_CUDA_CALL(cudaMalloc(&ws_, ws_bytes_));
  // The default policy: plain top-k with the model's k (every knob at its default).
  const MoeRoutePolicy def{};
  auto* own = reinterpret_cast<MoeRoutePolicy*>(static_cast<char*>(ws_) + off_policy_);
  WATTMOE_CUDA_CALL(cudaMemcpy(own, &def, sizeof def, cudaMemcpyHostToDevice));
  policy_ = own;
  cuda::prepare_gemm_kernels();
  if (sm90_) cuda::prepare_gemm_sm90_kernels();
}

MoeLayerCuda::~MoeLayerCuda() {
  cudaFree(ws_);
  cudaFree(owned_weights_);
  cudaFree(owned_quant_);
}

void MoeLayerCuda::upload(const uint16_t* router, const uint16_t* gate, const uint16_t* up, const uint16_t* down) {
  const size_t H = shape_.hidden, I = shape_.intermediate, E = shape_.experts;
  const size_t nr = E * H * 2, ne = E * I * H * 2;
  if (owned_weights_) {
    WATTMOE_CUDA_CALL(cudaFree(owned_weights_));
    owned_weights_ = nullptr;
  }
  WATTMOE_CUDA_CALL(cudaMalloc(&owned_weights_, align_up(nr, 256) + 3 * ne));
  char* p = static_cast<char*>(owned_weights_);
  char* pr = p;
  char* pg = p + align_up(nr, 256);
  char* pu = pg + ne;
  char* pd = pu + ne;
  WATTMOE_CUDA_CALL(cudaMemcpy(pr, router, nr, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(pg, gate, ne, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(pu, up, ne, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(pd, down, ne, cudaMemcpyHostToDevice));
  router_ = pr, gate_ = pg, up_ = pu, down_ = pd;
}

void MoeLayerCuda::use_device_weights(const void* router, const void* gate, const void* up, const void* down) {
  WATTMOE_REQUIRE(router && gate && up && down, "MoeLayerCuda::use_device_weights: null weight pointer");
  router_ = router, gate_ = gate, up_ = up, down_ = down;
}

void MoeLayerCuda::use_device_quantised_experts(ops::ExpertPrecision p, const void* gate, const void* up,
                                                const void* down, const float* gate_s, const float* up_s,
                                                const float* down_s) {
  if (p == ops::ExpertPrecision::Bf16) {
    qprec_ = p, qgate_ = qup_ = qdown_ = nullptr, sgate_ = sup_ = sdown_ = nullptr;
    return;
  }
  WATTMOE_REQUIRE(shape_.hidden % 16 == 0 && shape_.intermediate % 16 == 0,
                  "MoeLayerCuda: {} experts need hidden {} and intermediate {} to be multiples of 16 (16 codes per "
                  "16-byte load)",
                  ops::expert_precision_name(p), shape_.hidden, shape_.intermediate);
  WATTMOE_REQUIRE(gate && up && down && gate_s && up_s && down_s,
                  "MoeLayerCuda::use_device_quantised_experts: null pointer");
  qprec_ = p, qgate_ = gate, qup_ = up, qdown_ = down, sgate_ = gate_s, sup_ = up_s, sdown_ = down_s;
}

void MoeLayerCuda::upload_quantised_experts(ops::ExpertPrecision p, const uint8_t* gate, const uint8_t* up,
                                            const uint8_t* down, const float* gate_s, const float* up_s,
                                            const float* down_s) {
  if (owned_quant_) {
    WATTMOE_CUDA_CALL(cudaFree(owned_quant_));
    owned_quant_ = nullptr;
  }
  if (p == ops::ExpertPrecision::Bf16) return use_device_quantised_experts(p, nullptr, nullptr, nullptr, nullptr,
                                                                           nullptr, nullptr);
  const size_t H = shape_.hidden, I = shape_.intermediate, E = shape_.experts;
  const size_t ne = align_up(E * I * H, 256), nsi = align_up(E * I * 4, 256), nsh = align_up(E * H * 4, 256);
  WATTMOE_CUDA_CALL(cudaMalloc(&owned_quant_, 3 * ne + 2 * nsi + nsh));
  char* pg = static_cast<char*>(owned_quant_);
  char *pu = pg + ne, *pd = pu + ne, *sg = pd + ne, *su = sg + nsi, *sd = su + nsi;
  WATTMOE_CUDA_CALL(cudaMemcpy(pg, gate, E * I * H, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(pu, up, E * I * H, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(pd, down, E * I * H, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(sg, gate_s, E * I * 4, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(su, up_s, E * I * 4, cudaMemcpyHostToDevice));
  WATTMOE_CUDA_CALL(cudaMemcpy(sd, down_s, E * H * 4, cudaMemcpyHostToDevice));
  use_device_quantised_experts(p, pg, pu, pd, reinterpret_cast<const float*>(sg), reinterpret_cast<const float*>(su),
                               reinterpret_cast<const float*>(sd));
}

void MoeLayerCuda::set_route_policy(const MoeRoutePolicy& p, cudaStream_t stream) {
  validate_route_policy(p, shape_.experts, shape_.top_k, slots_);
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  WATTMOE_CUDA_CALL(cudaStreamIsCapturing(stream, &cap));
  WATTMOE_REQUIRE(cap == cudaStreamCaptureStatusNone,
                  "MoeLayerCuda::set_route_policy: the stream is capturing a CUDA graph; set knobs between replays "
                  "(the graph reads the policy block when it runs)");
  auto* own = reinterpret_cast<MoeRoutePolicy*>(static_cast<char*>(ws_) + off_policy_);
  // From pageable memory: the runtime stages p before returning, so p may go out of scope at once.
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(own, &p, sizeof p, cudaMemcpyHostToDevice, stream));
  policy_ = own;
}

void MoeLayerCuda::use_route_policy(const MoeRoutePolicy* device_block) {
  policy_ = device_block ? device_block
                         : reinterpret_cast<const MoeRoutePolicy*>(static_cast<const char*>(ws_) + off_policy_);
}

int MoeLayerCuda::route_policy_faults() const {
  WATTMOE_CUDA_CALL(cudaDeviceSynchronize());
  int32_t f = 0;
  const char* at = static_cast<const char*>(ws_) + off_counts_ + size_t(2 * shape_.experts) * 4;
  WATTMOE_CUDA_CALL(cudaMemcpy(&f, at, 4, cudaMemcpyDeviceToHost));
  return f;
}

int MoeLayerCuda::path_for(int T) const {
  if (T <= opt_.decode_max_tokens) return 0;
  if (!sm90_) return 64;  // the 128-row tiles are wgmma kernels
  if (opt_.block_m) return opt_.block_m;
  // Tokens per expert decide: big groups fill 128-row wgmma tiles, small ones waste less padding with 64.
  return (long long)T * shape_.top_k >= 64ll * shape_.experts ? 128 : 64;  // measured crossover, H200 (docs)
}

void MoeLayerCuda::forward(const void* x, void* out, int T, cudaStream_t stream) {
  auto mark = [&](const char* stage) {
    if (opt_.on_stage) opt_.on_stage(stage);
  };
  WATTMOE_REQUIRE(T >= 1 && T <= max_tokens_, "MoeLayerCuda::forward: T={} outside 1..{} (max_tokens)", T,
                  max_tokens_);
  WATTMOE_REQUIRE(router_ && gate_ && up_ && down_, "MoeLayerCuda::forward: no weights (call upload first)");
  const int H = shape_.hidden, I = shape_.intermediate, E = shape_.experts, k = shape_.top_k, S = slots_;
  char* ws = static_cast<char*>(ws_);
  auto* logits = reinterpret_cast<bf16*>(ws + off_logits_);
  auto* probs = reinterpret_cast<float*>(ws + off_probs_);
  auto* ids = reinterpret_cast<int*>(ws + off_ids_);
  auto* wts = reinterpret_cast<float*>(ws + off_w_);
  auto* counts = reinterpret_cast<int*>(ws + off_counts_);
  int* counts1 = counts + E;
  int* status = counts + 2 * E;
  auto* h = reinterpret_cast<bf16*>(ws + off_h_);
  auto* y = reinterpret_cast<bf16*>(ws + off_y_);
  const auto* xb = static_cast<const bf16*>(x);
  auto* ob = static_cast<bf16*>(out);
  const auto* wg = static_cast<const bf16*>(gate_);
  const auto* wu = static_cast<const bf16*>(up_);
  const auto* wd = static_cast<const bf16*>(down_);

  {
    NvtxRange r(opt_.name + ".router");
    WATTMOE_CUDA_CALL(cudaMemsetAsync(counts, 0, size_t(2 * E + 1) * 4, stream));  // counts, counts1, faults
    cuda::launch_route({xb, static_cast<const bf16*>(router_), T, H, E, k, S, shape_.renorm, policy_, logits, probs,
                        ids, wts, counts, counts1, status},
                       stream);
    cuda::RouteStepArgs st{};
    st.T = T, st.E = E, st.k = k, st.slots = S, st.renorm = shape_.renorm, st.policy = policy_;
    st.logits = logits, st.probs = probs, st.topk_ids = ids, st.topk_w = wts, st.counts = counts;
    st.counts1 = counts1;
    auto* ckey = reinterpret_cast<uint32_t*>(ws + off_ckey_);
    auto* cp = reinterpret_cast<int*>(ws + off_cp_);
    const size_t cap = size_t(max_tokens_) * S;
    st.cand_key[0] = ckey, st.cand_key[1] = ckey + cap;
    st.cand_p[0] = cp, st.cand_p[1] = cp + cap;
    st.cand_ratio = reinterpret_cast<double*>(ws + off_cratio_);
    st.cand_tok = reinterpret_cast<int*>(ws + off_ctok_);
    st.keep = reinterpret_cast<uint8_t*>(ws + off_keep_);
    cuda::launch_route_step(st, stream);
  }
  mark("router");
  const int bm = path_for(T);
  if (bm == 0) {
    cuda::DecodeArgs d{xb, wg, wu, wd, ids, wts, counts, T, S, H, I, E, h, y};
    if (qprec_ != ops::ExpertPrecision::Bf16) {  // the quantised experts (use_device_quantised_experts)
      d.gate = qgate_, d.up = qup_, d.down = qdown_;
      d.wq = qprec_ == ops::ExpertPrecision::Fp8 ? 1 : 2;
      d.gate_s = sgate_, d.up_s = sup_, d.down_s = sdown_;
    }
    {
      NvtxRange r(opt_.name + ".gate_up");
      cuda::launch_decode_gate_up(d, stream);
    }
    mark("gate_up");
    {
      NvtxRange r(opt_.name + ".down");
      cuda::launch_decode_down(d, stream);
    }
    mark("down");
    {
      NvtxRange r(opt_.name + ".combine");
      cuda::launch_combine(y, nullptr, ids, T, S, H, ob, stream);
    }
    mark("combine");
    return;
  }
  const int rows = rows_capacity(T, S, E, bm), tiles = rows / bm;
  auto* stok = reinterpret_cast<int*>(ws + off_stok_);
  auto* sw = reinterpret_cast<float*>(ws + off_sw_);
  auto* inv = reinterpret_cast<int*>(ws + off_inv_);
  auto* tile_e = reinterpret_cast<int*>(ws + off_tiles_);
  {
    NvtxRange r(opt_.name + ".permute");
    cuda::launch_permute({ids, wts, counts, T, S, E, bm, rows, tiles, stok, sw, inv, tile_e}, stream);
  }
  mark("permute");
  auto* xs = sm90_ ? reinterpret_cast<bf16*>(ws + off_xs_) : nullptr;
  auto* sched = reinterpret_cast<int*>(ws + off_sched_);
  // pairs: the rows the model's k would route (the routed count lives on the device); picks the sm90 variant only.
  const cuda::GroupedGemmArgs g{xb, wg, wu, wd, stok, sw, tile_e, H, I, tiles, bm, h, y, E, xs, T * k,
                                opt_.sm90_kernel, sched, opt_.sm90_static_schedule, opt_.sm90_store};
  {
    NvtxRange r(opt_.name + ".gate_up");
    bm == 128 ? cuda::launch_gate_up_sm90(g, stream) : cuda::launch_gate_up(g, stream);
  }
  mark("gate_up");
  {
    NvtxRange r(opt_.name + ".down");
    bm == 128 ? cuda::launch_down_sm90(g, stream) : cuda::launch_down(g, stream);
  }
  mark("down");
  {
    NvtxRange r(opt_.name + ".combine");
    cuda::launch_combine(y, inv, ids, T, S, H, ob, stream);
  }
  mark("combine");
}

const uint16_t* MoeLayerCuda::router_logits() const {
  return reinterpret_cast<const uint16_t*>(static_cast<const char*>(ws_) + off_logits_);
}
const float* MoeLayerCuda::router_probs() const {
  return reinterpret_cast<const float*>(static_cast<const char*>(ws_) + off_probs_);
}
const int32_t* MoeLayerCuda::topk_ids() const {
  return reinterpret_cast<const int32_t*>(static_cast<const char*>(ws_) + off_ids_);
}
const float* MoeLayerCuda::topk_weights() const {
  return reinterpret_cast<const float*>(static_cast<const char*>(ws_) + off_w_);
}
const int32_t* MoeLayerCuda::expert_counts() const {
  return reinterpret_cast<const int32_t*>(static_cast<const char*>(ws_) + off_counts_);
}

}  // namespace wattmoe
