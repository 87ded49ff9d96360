// Grouped expert GEMMs for large token counts on Hopper (sm_90a): wgmma (warpgroup MMA, bf16 in, fp32 accumulate)
// on a 128 × 256 CTA tile, same contract as moe_gemm.cu's block_m = 128 path:
//  gate_up: A = x rows gathered through sorted_token, B = 128 gate rows ‖ 128 up rows of expert e ([I,H] each)
//           -> h [max_rows, I] = bf16(silu(A·gateᵀ) ⊙ (A·upᵀ)) for 128 outputs i per CTA. Overwrites h.
//  down:    A = h [max_rows, I], B = 256 rows of down[e] [H,I] -> y [max_rows, H] = bf16(sorted_w[r] · A·downᵀ).
// 256 threads = 2 warpgroups, each m64n256k16 over its 64 rows. Operands reach shared memory by cp.async (the A rows
// are a gather, which the tensor-copy engine cannot do) in the 128-byte-swizzled K-major layout wgmma reads through
// matrix descriptors; 4 stages of BK = 64, refilled two k-tiles ahead so one wgmma group stays in flight.
// Requires H % 8 == 0 and I % 8 == 0; N, K and M tails are zero-filled and masked.
#include "ops/cuda/moe_common.cuh"

namespace wattmoe::cuda {
namespace {

template <bool GATED>
struct Sm90Cfg {
  static constexpr int kBM = 128, kBRows = 256, kBK = 64, kStages = 4, kThreads = 256;
  static constexpr int kBNOut = GATED ? 128 : 256;
  static constexpr int kABytes = kBM * 128, kBBytes = kBRows * 128, kStageBytes = kABytes + kBBytes;
  static constexpr int kSmem = kStages * kStageBytes + 1024;  // + slack to align the tiles to 1024 bytes
  static constexpr int kGroupM = 8;
};

__device__ __forceinline__ uint32_t swz(int r, int c) { return uint32_t(r * 128 + ((c ^ (r & 7)) << 4)); }

// Matrix descriptor of a K-major tile with 128-byte swizzle: rows of 128 bytes, 8-row atoms 1024 bytes apart.
__device__ __forceinline__ uint64_t smem_desc(uint32_t saddr) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

__device__ __forceinline__ void fence_proxy_async() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_arrive() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Keeps the compiler from moving accumulator registers across the asynchronous MMA.
__device__ __forceinline__ void fence_regs(float* d) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

__device__ __forceinline__ void wgmma_m64n256k16(float* d, uint64_t da, uint64_t db) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db));
#else
  __trap();  // sm_90a only; the host never launches this kernel elsewhere
#endif
}

template <bool GATED>
__global__ void __launch_bounds__(256, 1) grouped_gemm_sm90(GroupedGemmArgs a) {
  using C = Sm90Cfg<GATED>;
  const int N = GATED ? a.I : a.H, K = GATED ? a.H : a.I;
  const int n_tiles = (N + C::kBNOut - 1) / C::kBNOut;
  const int per_group = C::kGroupM * n_tiles;
  const int pid = blockIdx.x, g = pid / per_group, first_m = g * C::kGroupM;
  const int gsize = min(a.max_tiles - first_m, C::kGroupM);
  const int m_tile = first_m + (pid % per_group) % gsize, n_tile = (pid % per_group) / gsize;
  const int e = a.tile_expert[m_tile];
  if (e < 0) return;
  const int m0 = m_tile * C::kBM, n0 = n_tile * C::kBNOut;

  extern __shared__ uint8_t smem_raw[];
  const uint32_t sbase = (uint32_t(__cvta_generic_to_shared(smem_raw)) + 1023u) & ~1023u;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
  const int chunk = tid & 7, row0 = tid >> 3;

  constexpr int kAIters = C::kBM * 8 / 256, kBIters = C::kBRows * 8 / 256;
  const bf16* a_src[kAIters];
  bool a_ok[kAIters];
#pragma unroll
  for (int i = 0; i < kAIters; ++i) {
    const int r = m0 + row0 + 32 * i;
    if constexpr (GATED) {
      const int tok = a.sorted_token[r];
      a_ok[i] = tok >= 0;
      a_src[i] = a.x + size_t(tok >= 0 ? tok : 0) * K;
    } else {
      a_ok[i] = true;
      a_src[i] = a.h + size_t(r) * K;
    }
  }
  const bf16* b_src[kBIters];
  bool b_ok[kBIters];
#pragma unroll
  for (int i = 0; i < kBIters; ++i) {
    const int r = row0 + 32 * i;
    const int nr = GATED ? n0 + (r & 127) : n0 + r;
    b_ok[i] = nr < N;
    const bf16* base = GATED ? (r < 128 ? a.gate : a.up) : a.down;
    b_src[i] = base + (size_t(e) * N + (nr < N ? nr : 0)) * K;
  }
  auto load_stage = [&](int stage, int kt) {
    const int k = kt * C::kBK + chunk * 8;
    const bool kok = k < K;
    const int koff = kok ? k : 0;
    const uint32_t sA = sbase + stage * C::kStageBytes, sB = sA + C::kABytes;
#pragma unroll
    for (int i = 0; i < kAIters; ++i)
      cp_async16(sA + swz(row0 + 32 * i, chunk), a_src[i] + koff, (a_ok[i] && kok) ? 16 : 0);
#pragma unroll
    for (int i = 0; i < kBIters; ++i)
      cp_async16(sB + swz(row0 + 32 * i, chunk), b_src[i] + koff, (b_ok[i] && kok) ? 16 : 0);
  };

  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.f;

  const int KT = (K + C::kBK - 1) / C::kBK;
  constexpr int kAhead = C::kStages - 2;
#pragma unroll
  for (int s = 0; s < kAhead; ++s) {
    if (s < KT) load_stage(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<kAhead - 1>();  // k-tile kt has landed (this thread's copies)
    fence_proxy_async();          // ...and is visible to the tensor cores' proxy
    __syncthreads();              // everyone's copies; every warpgroup finished wgmma(kt-2)
    if (kt + kAhead < KT) load_stage((kt + kAhead) % C::kStages, kt + kAhead);
    cp_async_commit();

    const uint32_t sA = sbase + (kt % C::kStages) * C::kStageBytes, sB = sA + C::kABytes;
    const uint64_t da = smem_desc(sA + wg * 64 * 128), db = smem_desc(sB);
    fence_regs(acc);
    wgmma_arrive();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_m64n256k16(acc, da + 2 * kk, db + 2 * kk);  // +32 bytes along K
    wgmma_commit();
    wgmma_wait<1>();
    fence_regs(acc);
  }
  wgmma_wait<0>();
  fence_regs(acc);
  cp_async_wait<0>();

  // Accumulator i = 4*j + q of warp w: row = 16w + lane/4 + 8*(q/2), column = 8j + 2*(lane%4) + q%2.
  const int w = warp & 3;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int r = m0 + wg * 64 + w * 16 + (lane >> 2) + hh * 8;
    if constexpr (GATED) {
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int col = n0 + j * 8 + (lane & 3) * 2;
        if (col < N) {
          const float h0 = silu(acc[4 * j + 2 * hh]) * acc[4 * (j + 16) + 2 * hh];
          const float h1 = silu(acc[4 * j + 2 * hh + 1]) * acc[4 * (j + 16) + 2 * hh + 1];
          *reinterpret_cast<uint32_t*>(a.h + size_t(r) * N + col) = pack_bf16x2(h0, h1);
        }
      }
    } else {
      if (a.sorted_token[r] < 0) continue;
      const float wt = a.sorted_w[r];
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const int col = n0 + j * 8 + (lane & 3) * 2;
        if (col < N)
          *reinterpret_cast<uint32_t*>(a.y + size_t(r) * N + col) =
              pack_bf16x2(wt * acc[4 * j + 2 * hh], wt * acc[4 * j + 2 * hh + 1]);
      }
    }
  }
}

template <bool GATED>
void launch_sm90(const GroupedGemmArgs& a, cudaStream_t s) {
  using C = Sm90Cfg<GATED>;
  const int N = GATED ? a.I : a.H;
  const long long blocks = (long long)a.max_tiles * ((N + C::kBNOut - 1) / C::kBNOut);
  if (blocks == 0) return;
  grouped_gemm_sm90<GATED><<<unsigned(blocks), C::kThreads, C::kSmem, s>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace

void prepare_gemm_sm90_kernels() {
  WATTMOE_CUDA_CALL(cudaFuncSetAttribute(grouped_gemm_sm90<true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         Sm90Cfg<true>::kSmem));
  WATTMOE_CUDA_CALL(cudaFuncSetAttribute(grouped_gemm_sm90<false>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         Sm90Cfg<false>::kSmem));
}
void launch_gate_up_sm90(const GroupedGemmArgs& a, cudaStream_t s) { launch_sm90<true>(a, s); }
void launch_down_sm90(const GroupedGemmArgs& a, cudaStream_t s) { launch_sm90<false>(a, s); }

}  // namespace wattmoe::cuda
