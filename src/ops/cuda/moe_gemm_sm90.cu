// Grouped expert GEMMs for large token counts on Hopper (sm_90a): wgmma (warpgroup MMA, bf16 in, fp32 accumulate)
// on a 128 × 256 CTA tile, same contract as moe_gemm.cu's block_m = 128 path:
//  gate_up: A = x rows gathered through sorted_token, B = 128 gate rows ‖ 128 up rows of expert e ([I,H] each)
//           -> h [max_rows, I] = bf16(silu(A·gateᵀ) ⊙ (A·upᵀ)) for 128 outputs i per CTA. Overwrites h.
//  down:    A = h [max_rows, I], B = 256 rows of down[e] [H,I] -> y [max_rows, H] = bf16(sorted_w[r] · A·downᵀ).
// Operands sit in shared memory in the 128-byte-swizzled K-major layout wgmma reads through matrix descriptors,
// BK = 64, 4 stages. Four kernels (GroupedGemmArgs::sm90_kernel), all with the same wgmma sequence, so the same bits:
//  1 cp.async: 256 threads = 2 warpgroups (m64n256k16 each over 64 rows) that also issue the copies, refilled two
//    k-tiles ahead; one CTA per tile. Fastest while the weights' bandwidth bounds (T·k < 4096).
//  2 TMA: 384 threads, a producer warpgroup issuing bulk tensor copies against full/empty mbarriers, 2 consumer
//    warpgroups; persistent (one CTA per SM walks the tiles). gate_up reads xs, x gathered once into permuted rows.
//  3 as 2, in clusters of 2 CTAs on M-tiles 2j, 2j+1 that share each B (weight) tile by TMA multicast.
//  4 as 3 with clusters of 4 CTAs (M-tiles 4j..4j+3; each run of tiles of one expert shares its B tile).
// Kernels 2-4 have two epilogues (GroupedGemmArgs::sm90_store): bf16 stores straight from registers, or (default)
// a staging tile in shared memory written out by asynchronous TMA stores that overlap the next tile's mainloop.
// Requires H % 8 == 0 and I % 8 == 0; N, K and M tails are zero-filled and masked.
#include <cuda.h>  // CUtensorMap; the encode function comes through the runtime (cudaTypedefs.h)
#include <cudaTypedefs.h>

#include <algorithm>

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

// D (+)= A·B; scale_d = 0 ignores D's old contents (first k-step of a tile: no zeroing instructions, which would
// make ptxas serialise the wgmma pipeline inside a persistent loop, warning C7515).
__device__ __forceinline__ void wgmma_m64n256k16(float* d, uint64_t da, uint64_t db, int scale_d = 1) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(da), "l"(db), "r"(scale_d));
#else
  __trap();  // sm_90a only; the host never launches this kernel elsewhere
#endif
}

// Epilogue of one warpgroup's 64 × 256 accumulators (rows from r0): gate_up stores h = silu(gate) ⊙ up
// (columns 0..127 gate, 128..255 up), down stores sorted_w[r] · acc for real rows. Accumulator i = 4*j + q of warp
// w: row = 16w + lane/4 + 8*(q/2), column = 8j + 2*(lane%4) + q%2.
template <bool GATED>
__device__ __forceinline__ void store_tile(const GroupedGemmArgs& a, const float* acc, int r0, int n0, int N, int w,
                                           int lane) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int r = r0 + w * 16 + (lane >> 2) + hh * 8;
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

// Tile `pid` of the launch order -> (M-tile, N-tile): groups of GROUP_M M-tiles, M fastest inside a group, so CTAs
// running together share weight (B) tiles and A panels through L2.
__device__ __forceinline__ void tile_coords(int pid, int max_tiles, int n_tiles, int GROUP_M, int& m_tile,
                                            int& n_tile) {
  const int per_group = GROUP_M * n_tiles, g = pid / per_group, first_m = g * GROUP_M;
  const int gsize = min(max_tiles - first_m, GROUP_M);
  m_tile = first_m + (pid % per_group) % gsize;
  n_tile = (pid % per_group) / gsize;
}

template <bool GATED>
__global__ void __launch_bounds__(256, 1) grouped_gemm_sm90(GroupedGemmArgs a) {
  using C = Sm90Cfg<GATED>;
  const int N = GATED ? a.I : a.H, K = GATED ? a.H : a.I;
  const int n_tiles = (N + C::kBNOut - 1) / C::kBNOut;
  int m_tile, n_tile;
  tile_coords(blockIdx.x, a.max_tiles, n_tiles, C::kGroupM, m_tile, n_tile);
  const int e = a.tile_expert[m_tile];
  if (e < 0) return;
  const int m0 = m_tile * C::kBM, n0 = n_tile * C::kBNOut;

  extern __shared__ uint8_t smem_raw[];
  const uint32_t sbase = (uint32_t(__cvta_generic_to_shared(smem_raw)) + 1023u) & ~1023u;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
  const int chunk = tid & 7, row0 = tid >> 3;

  constexpr int kAIters = C::kBM * 8 / 256, kBIters = C::kBRows * 8 / 256;
  const auto a_rows = a_tile_rows<GATED, kAIters>(a, m0, row0, K);
  const auto b_rows = b_tile_rows<GATED, 128, kBIters>(a, e, n0, row0, N, K);
  auto load_stage = [&](int stage, int kt) {
    const uint32_t sA = sbase + stage * C::kStageBytes;
    cp_async_tile(sA, a_rows, row0, chunk, kt * C::kBK + chunk * 8, K);
    cp_async_tile(sA + C::kABytes, b_rows, row0, chunk, kt * C::kBK + chunk * 8, K);
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

  store_tile<GATED>(a, acc, m0 + wg * 64, n0, N, warp & 3, lane);
}

// ---- Warp-specialised TMA variant (default) ---------------------------------------------------------------------
// 384 threads: warpgroup 0 is the producer (one thread issues bulk tensor copies, TMA, into a 4-stage ring guarded
// by full/empty mbarriers), warpgroups 1 and 2 consume (each m64n256k16 over its 64 rows, releasing a stage as soon
// as the wgmma that read it has retired). Persistent: gridDim.x CTAs (≤ one per SM) walk the tile order with stride
// gridDim.x, so the producer fills the next tile's stages while the consumers run the epilogue. gate_up's A operand
// is xs, the x rows gathered once into permuted order by gather_rows_kernel (TMA cannot gather rows on sm_90).
struct TmaParams {
  CUtensorMap ta;   // A: xs [rows, H] (gate_up) or h [rows, I] (down), box 64 (K) × 128 rows
  CUtensorMap tb0;  // gate [E,I,H] (box 64 × 128 × 1) or down [E,H,I] (box 64 × 256 × 1)
  CUtensorMap tb1;  // up [E,I,H] (gate_up only)
  CUtensorMap tc;   // output h [rows, I] (gate_up) or y [rows, H] (down), box 64 (N) × 64 rows (TMA-store epilogue)
  GroupedGemmArgs a;
  int group_m;  // M-tiles per raster group
  int dynamic;  // 1: work units handed out in order by an atomic counter (a.sched), 0: static stride
  int skip_padding;  // 1: 64-row halves that are all padding are not computed
};

template <bool GATED>
struct WsCfg {
  // kGroupM: M-tiles per raster group. With the in-order hand-out, 16 read 27% fewer DRAM bytes than 8 at T=16384
  // (gate_up 7.2 vs 9.9 GB, ncu, H200); 32 read more (12.8 GB).
  static constexpr int kBM = 128, kBK = 64, kStages = 4, kThreads = 384, kGroupM = 16;
  static constexpr int kBNOut = GATED ? 128 : 256;
  static constexpr int kABytes = kBM * 128, kBBytes = 256 * 128, kStageBytes = kABytes + kBBytes;
  // TMA-store epilogue: one 64 × 128 bf16 staging tile per consumer warpgroup (two 128-byte-swizzled boxes of 64
  // columns, 8 KB each), placed after the stage tiles.
  static constexpr int kEpiBytes = 2 * 64 * 128 * 2;
  // tiles (1024-aligned), [epilogue tiles,] stage barriers, unit barriers (2 full, 2 empty) and the 2-slot unit ring
  static constexpr int kSmemBase = kStages * kStageBytes + 1024 + 2 * kStages * 8 + 4 * 8 + 2 * 4;
  static constexpr int kSmem = kSmemBase + kEpiBytes;  // with the TMA-store epilogue (the launch asks for what it uses)
};

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nWAIT_LOOP:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_LOOP;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* tm, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(tm)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* tm, int c0, int c1, int c2,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(tm)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}

__device__ __forceinline__ void tma_load_3d_mc(uint32_t dst, const CUtensorMap* tm, int c0, int c1, int c2,
                                               uint32_t bar, uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, "
      "%3, %4}], [%5], %6;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(tm)), "r"(c0), "r"(c1), "r"(c2), "r"(bar), "h"(mask)
      : "memory");
}
__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// Address of the same shared-memory location in CTA `rank` of the cluster.
__device__ __forceinline__ uint32_t cluster_addr(uint32_t addr, uint32_t rank) {
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(addr), "r"(rank));
  return r;
}
// Arrival on a barrier of any CTA of the cluster (release at CTA scope, as CUTLASS's ClusterBarrier does: what it
// orders is this warpgroup's finished wgmma reads of the stage; a cluster-scope release would also wait for the
// epilogue's global stores to drain).
__device__ __forceinline__ void mbar_arrive_cluster(uint32_t caddr) {
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(caddr) : "memory");
}

// Cluster-scope publication of a work unit: a store into (possibly) another CTA's shared memory, then an arrival
// with release semantics at cluster scope on that CTA's barrier; readers wait with acquire at cluster scope.
__device__ __forceinline__ void st_cluster_u32(uint32_t caddr, uint32_t v) {
  asm volatile("st.shared::cluster.u32 [%0], %1;\n" ::"r"(caddr), "r"(v) : "memory");
}
__device__ __forceinline__ void mbar_arrive_release_cluster(uint32_t caddr) {
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(caddr) : "memory");
}
__device__ __forceinline__ void mbar_wait_acquire_cluster(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nWAIT_ACQ_LOOP:\n"
      "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_ACQ_LOOP;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ uint32_t ld_shared_u32(uint32_t addr) {
  uint32_t v;
  asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(addr) : "memory");
  return v;
}

// ---- TMA-store epilogue (kernels 2-4 with STORE) ----------------------------------------------------------------
// Each consumer warpgroup converts its accumulators into a 64 × 128 bf16 staging tile in shared memory (two boxes
// of 64 columns, 128-byte swizzle: a warp's 4-byte stores of 8 rows × 16 bytes land on 32 distinct banks), then one
// thread hands it to the TMA unit (bulk tensor store, asynchronous) and the warpgroup goes on to its next tile's
// mainloop while the stores drain; the staging tile is rewritten only after the previous stores have read it.
// The register-to-global epilogue (store_tile) instead issues 16-32 4-byte stores per thread per half, each warp
// instruction touching 8 rows.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* tm, uint32_t src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];\n" ::"l"(
                   reinterpret_cast<uint64_t>(tm)),
               "r"(src), "r"(c0), "r"(c1)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_read_all() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void st_shared_u32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void named_bar(int id) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}

// Output columns 128·HC .. 128·HC+127 of this warpgroup's 64 rows (from r0) into the staging tile `buf`, with the
// same arithmetic as store_tile (gate_up: HC = 0, h from accumulator blocks j (gate) and j + 16 (up); down: blocks
// 16·HC + j times sorted_w[r], which is 0 on padding rows: those are stored too, as zeros, and never read).
template <bool GATED, int HC>
__device__ __forceinline__ void stage_half(const GroupedGemmArgs& a, const float* acc, uint32_t buf, int r0, int w,
                                           int lane) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int rl = w * 16 + (lane >> 2) + hh * 8;  // row inside the 64; rl % 8 = lane / 4
    float wt = 1.f;
    if constexpr (!GATED) wt = a.sorted_w[r0 + rl];
    const uint32_t row_addr = buf + rl * 128 + (lane & 3) * 4;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      uint32_t v;
      if constexpr (GATED) {
        const float h0 = silu(acc[4 * j + 2 * hh]) * acc[4 * (j + 16) + 2 * hh];
        const float h1 = silu(acc[4 * j + 2 * hh + 1]) * acc[4 * (j + 16) + 2 * hh + 1];
        v = pack_bf16x2(h0, h1);
      } else {
        constexpr int jb = 16 * HC;
        v = pack_bf16x2(wt * acc[4 * (jb + j) + 2 * hh], wt * acc[4 * (jb + j) + 2 * hh + 1]);
      }
      // box j / 8, 16-byte chunk j % 8 of the row, swizzled with the row's index mod 8
      st_shared_u32(row_addr + (j >> 3) * 8192 + (((j & 7) ^ (rl & 7)) << 4), v);
    }
  }
}

template <bool GATED, int HC>
__device__ __forceinline__ void store_half_tma(const CUtensorMap* tc, const GroupedGemmArgs& a, const float* acc,
                                               uint32_t buf, int r0, int n0, int N, int c, int w, int lane,
                                               bool signaller) {
  if (signaller) bulk_wait_read_all();  // the previous stores from `buf` have read it
  named_bar(3 + c);
  stage_half<GATED, HC>(a, acc, buf, r0, w, lane);
  fence_proxy_async();  // the generic-proxy writes are visible to the TMA unit
  named_bar(3 + c);
  if (signaller) {
    const int col = n0 + 128 * HC;
    if (col < N) tma_store_2d(tc, buf, col, r0);  // columns past N (and rows past the map) are clipped
    if (col + 64 < N) tma_store_2d(tc, buf + 8192, col + 64, r0);
    bulk_commit();
  }
}

// CL = 1: one CTA per tile. CL = 2 or 4: clusters of CL CTAs take M-tiles CL·j + rank at the same N-tile. The B
// (weight) tile is cut into max(CL, 2) slices (one tensor-map box each); the ranks whose tiles belong to
// one expert (a run of consecutive ranks; an unused tile joins the run before it) each fetch every L-th slice (L =
// run length) and multicast it to the whole run, so B leaves L2 once per run instead of once per tile. A stage is
// refilled only after the consumers of all CL CTAs released it (empty barrier: 2 warpgroups × CL CTAs), so the
// cluster walks its k-tiles in lockstep; a CTA whose own tile is unused still loads and releases its stages but
// skips the wgmma and the stores.
// STORE: the TMA-store epilogue above instead of store_tile (same values, same bits).
template <bool GATED, int CL, bool STORE>
__global__ void __launch_bounds__(384, 1) grouped_gemm_sm90_ws(const __grid_constant__ TmaParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using C = WsCfg<GATED>;
  constexpr bool MC = CL > 1;
  constexpr int kSlices = CL > 2 ? CL : 2, kSliceRows = 256 / kSlices;  // B slices (tensor-map boxes); gate ≠ up
  const GroupedGemmArgs& a = p.a;
  const int N = GATED ? a.I : a.H, K = GATED ? a.H : a.I;
  const int n_tiles = (N + C::kBNOut - 1) / C::kBNOut, KT = (K + C::kBK - 1) / C::kBK;
  const int m_units = (a.max_tiles + CL - 1) / CL;  // M-tiles, or groups of CL of them
  const int total = m_units * n_tiles;
  const int rank = int(blockIdx.x % CL), unit0 = int(blockIdx.x / CL);
  const int stride = int(gridDim.x / CL);

  extern __shared__ uint8_t smem_raw[];
  const uint32_t sbase = (uint32_t(__cvta_generic_to_shared(smem_raw)) + 1023u) & ~1023u;
  const uint32_t ebase = sbase + C::kStages * C::kStageBytes;  // staging tiles of the TMA-store epilogue
  const uint32_t full0 = ebase + (STORE ? C::kEpiBytes : 0), empty0 = full0 + 8 * C::kStages;
  const uint32_t ufull0 = empty0 + 8 * C::kStages, uempty0 = ufull0 + 16, uring0 = uempty0 + 16;
  const int tid = threadIdx.x, wg = tid >> 7;
  if (tid == 0) {
    for (int s = 0; s < C::kStages; ++s) {
      mbar_init(full0 + 8 * s, 1);           // the producer's expect_tx arrival (+ the copies' bytes)
      mbar_init(empty0 + 8 * s, 2 * CL);     // one arrival per consumer warpgroup of every CTA of the cluster
    }
    for (int s = 0; s < 2; ++s) {
      mbar_init(ufull0 + 8 * s, 1);           // rank 0's producer published unit slot s
      mbar_init(uempty0 + 8 * s, 3 * CL - 1);  // (rank 0 only) every other reader of the cluster took it
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  if constexpr (MC) cluster_sync_all();  // the peers' barriers exist before anything multicasts into them
  else __syncthreads();

  // Work unit u -> this CTA's M-tile, N-tile, expert (-1: unused), the expert whose B it loads, and its run.
  struct Unit {
    int m_tile, n0, e, eb;
    int run_lo, run_len;  // ranks [run_lo, run_lo + run_len) share this CTA's B tile
    bool skip;
  };
  auto unit = [&](int u) {
    Unit w;
    int mu, nt;
    tile_coords(u, m_units, n_tiles, MC ? max(1, p.group_m / CL) : p.group_m, mu, nt);
    w.n0 = nt * C::kBNOut;
    w.m_tile = CL * mu + rank;
    int ex[CL];
#pragma unroll
    for (int r = 0; r < CL; ++r) ex[r] = CL * mu + r < a.max_tiles ? a.tile_expert[CL * mu + r] : -1;
    w.e = ex[rank];
    w.skip = ex[0] < 0;  // unused tiles are a suffix: the first one unused means all are
    // Effective expert of each rank: its own, or (unused tile) the last used one before it.
#pragma unroll
    for (int r = 1; r < CL; ++r)
      if (ex[r] < 0) ex[r] = ex[r - 1];
    w.eb = ex[rank];
    // Tiles are sorted by expert, so the ranks with the same effective expert are consecutive.
    w.run_lo = CL, w.run_len = 0;
#pragma unroll
    for (int r = 0; r < CL; ++r)
      if (ex[r] == w.eb) w.run_lo = min(w.run_lo, r), ++w.run_len;
    return w;
  };

  // The n-th work unit of this cluster. Static: unit0 + n·stride. Dynamic: rank 0's producer takes the next unit
  // from the atomic counter and publishes it into slot n % 2 of every CTA's ring (u >= total: no more work); the
  // other readers (both consumer warpgroups of every CTA, the other ranks' producers) take it from their own ring and
  // hand the slot back on rank 0's barrier. In-order hand-out keeps the CTAs that share weight tiles through L2
  // (consecutive units) running at the same time, which a static stride loses as SMs drift apart.
  auto publish = [&](int n) -> int {
    if (!p.dynamic) return unit0 + n * stride;
    const int slot = n & 1;
    const uint32_t ph = (n >> 1) & 1;
    mbar_wait_acquire_cluster(uempty0 + 8 * slot, ph ^ 1);  // fresh barrier: parity 1 counts as completed
    const int u = atomicAdd(a.sched + (GATED ? 0 : 1), 1);
#pragma unroll
    for (int r = 0; r < CL; ++r) {
      if constexpr (MC) {
        st_cluster_u32(cluster_addr(uring0 + 4 * slot, r), uint32_t(u));
        mbar_arrive_release_cluster(cluster_addr(ufull0 + 8 * slot, r));
      } else {
        asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(uring0 + 4 * slot), "r"(u) : "memory");
        mbar_arrive(ufull0 + 8 * slot);
      }
    }
    return u;
  };
  // take: read unit n from this CTA's ring; give_back: hand its slot back (callers make sure that the rest of their
  // warpgroup has read it first).
  auto take = [&](int n) -> int {
    if (!p.dynamic) return unit0 + n * stride;
    const int slot = n & 1;
    const uint32_t ph = (n >> 1) & 1;
    if constexpr (MC) mbar_wait_acquire_cluster(ufull0 + 8 * slot, ph);
    else mbar_wait(ufull0 + 8 * slot, ph);
    const int u = int(ld_shared_u32(uring0 + 4 * slot));
    return u;
  };
  auto give_back = [&](int n) {
    if (!p.dynamic) return;
    const uint32_t e = uempty0 + 8 * (n & 1);
    if constexpr (MC) mbar_arrive_release_cluster(cluster_addr(e, 0));
    else mbar_arrive(e);
  };

  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (tid == 0) {
      int stage = 0;
      uint32_t phase = 0;
      for (int n = 0;; ++n) {
        int u;
        if (rank == 0) {
          u = publish(n);
        } else {
          u = take(n);
          give_back(n);
        }
        if (u >= total) break;
        const Unit w = unit(u);
        if (w.skip) continue;
        const int arow = w.e >= 0 ? w.m_tile * C::kBM : 0;  // an unused tile reads any rows (never computed)
        const int idx = rank - w.run_lo;
        const uint16_t mask = uint16_t(((1u << w.run_len) - 1u) << w.run_lo);
        for (int kt = 0; kt < KT; ++kt) {
          mbar_wait(empty0 + 8 * stage, phase ^ 1);  // fresh barrier: parity 1 counts as completed
          const uint32_t fb = full0 + 8 * stage, sA = sbase + stage * C::kStageBytes, sB = sA + C::kABytes;
          const int k0 = kt * C::kBK;
          mbar_expect_tx(fb, C::kStageBytes);  // out-of-bounds boxes are zero-filled and still counted
          tma_load_2d(sA, &p.ta, k0, arow, fb);
          // B = 256 rows: gate rows n0.. ‖ up rows n0.. (gate_up, 128 each), down rows n0.. (down); slice j holds
          // rows j·kSliceRows.. of that.
#pragma unroll
          for (int j = 0; j < kSlices; ++j) {
            if (j % w.run_len != idx) continue;
            const int r0 = j * kSliceRows;
            const CUtensorMap* tm = GATED && r0 >= 128 ? &p.tb1 : &p.tb0;
            const int row = w.n0 + (GATED && r0 >= 128 ? r0 - 128 : r0);
            if (MC && w.run_len > 1) tma_load_3d_mc(sB + r0 * 128, tm, k0, row, w.eb, fb, mask);
            else tma_load_3d(sB + r0 * 128, tm, k0, row, w.eb, fb);
          }
          if (++stage == C::kStages) stage = 0, phase ^= 1;
        }
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int c = wg - 1, warp = (tid >> 5) & 3, lane = tid & 31;
    const bool signaller = (tid & 127) == 0;
    auto release = [&](int st) {
      if (!signaller) return;
      if constexpr (MC) {
#pragma unroll
        for (int r = 0; r < CL; ++r) mbar_arrive_cluster(cluster_addr(empty0 + 8 * st, r));
      } else {
        mbar_arrive(empty0 + 8 * st);
      }
    };
    int stage = 0;
    uint32_t phase = 0;
    float acc[128];
    for (int n = 0;; ++n) {
      const int u = take(n);
      if (p.dynamic) {
        asm volatile("bar.sync %0, 128;\n" ::"r"(1 + c) : "memory");  // the whole warpgroup has read slot n % 2
        if (signaller) give_back(n);
      }
      if (u >= total) break;
      const Unit w = unit(u);
      if (w.skip) continue;
      // A 64-row half that is all padding (its first row is: padding ends an expert's rows) is not computed or
      // stored: ≈ 3% of the MMAs at T=4096.
      const bool compute = w.e >= 0 && (!p.skip_padding || a.sorted_token[w.m_tile * C::kBM + c * 64] >= 0);
      int prev = 0;
      for (int kt = 0; kt < KT; ++kt) {
        mbar_wait(full0 + 8 * stage, phase);
        if (compute) {
          const uint32_t sA = sbase + stage * C::kStageBytes, sB = sA + C::kABytes;
          const uint64_t da = smem_desc(sA + c * 64 * 128), db = smem_desc(sB);
          fence_regs(acc);
          wgmma_arrive();
#pragma unroll
          for (int kk = 0; kk < 4; ++kk) wgmma_m64n256k16(acc, da + 2 * kk, db + 2 * kk, kt > 0 || kk > 0);
          wgmma_commit();
          wgmma_wait<1>();  // the previous k-tile's wgmma has retired: its stage may be refilled
          fence_regs(acc);
        }
        if (kt > 0) release(prev);
        prev = stage;
        if (++stage == C::kStages) stage = 0, phase ^= 1;
      }
      wgmma_wait<0>();
      fence_regs(acc);
      release(prev);
      if (compute) {
        const int r0 = w.m_tile * C::kBM + c * 64;
        if constexpr (STORE) {
          const uint32_t buf = ebase + c * (C::kEpiBytes / 2);
          store_half_tma<GATED, 0>(&p.tc, a, acc, buf, r0, w.n0, N, c, warp, lane, signaller);
          if constexpr (!GATED) store_half_tma<GATED, 1>(&p.tc, a, acc, buf, r0, w.n0, N, c, warp, lane, signaller);
        } else {
          store_tile<GATED>(a, acc, r0, w.n0, N, warp, lane);
        }
      }
    }
    if constexpr (STORE)
      if (signaller) bulk_wait_all();  // the last stores have completed before the CTA (and its smem) goes away
  }
  if constexpr (MC) cluster_sync_all();  // no CTA leaves while a peer may still signal its barriers
#else
  __trap();  // sm_90a only
#endif
}

// xs[r] = x[sorted_token[r]] (zeros on padding rows) for the rows of used M-tiles; one CTA per row.
__global__ void __launch_bounds__(128) gather_rows_kernel(const bf16* x, const int* sorted_token,
                                                          const int* tile_expert, int H, bf16* xs, int* sched) {
  const int r = blockIdx.x;
  if (r == 0 && threadIdx.x == 0) sched[0] = sched[1] = 0;  // the GEMMs that follow on the stream start at unit 0
  if (tile_expert[r / 128] < 0) return;
  const int tok = sorted_token[r];
  const uint4* src = reinterpret_cast<const uint4*>(x + size_t(tok < 0 ? 0 : tok) * H);
  uint4* dst = reinterpret_cast<uint4*>(xs + size_t(r) * H);
  for (int c = threadIdx.x; c < H / 8; c += blockDim.x) dst[c] = tok >= 0 ? ld_ro(src + c) : make_uint4(0, 0, 0, 0);
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (no link against libcuda).
PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    WATTMOE_CUDA_CALL(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || !f)
      cuda_fail(cudaErrorNotSupported, "cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled)", __FILE__,
                __LINE__);
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// bf16 tensor, dims innermost first (dims[0] = K, contiguous), 128-byte swizzle, zero fill out of bounds.
CUtensorMap make_map(const void* base, int rank, const cuuint64_t* dims, const cuuint64_t* strides_bytes,
                     const cuuint32_t* box) {
  CUtensorMap m;
  const cuuint32_t es[3] = {1, 1, 1};
  const CUresult r = encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, cuuint32_t(rank), const_cast<void*>(base), dims,
                                 strides_bytes, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) cuda_fail(cudaErrorInvalidValue, "cuTensorMapEncodeTiled", __FILE__, __LINE__);
  return m;
}

template <bool GATED, int CL, bool STORE>
void launch_sm90_ws(const GroupedGemmArgs& a, cudaStream_t s) {
  using C = WsCfg<GATED>;
  const int N = GATED ? a.I : a.H, K = GATED ? a.H : a.I;
  const long long n_tiles = (N + C::kBNOut - 1) / C::kBNOut;
  const long long units = (long long)((a.max_tiles + CL - 1) / CL) * n_tiles;
  if (units == 0) return;
  const cuuint64_t rows = cuuint64_t(a.max_tiles) * C::kBM;
  if constexpr (GATED) {
    gather_rows_kernel<<<unsigned(rows), 128, 0, s>>>(a.x, a.sorted_token, a.tile_expert, a.H, a.xs, a.sched);
    WATTMOE_CUDA_LAUNCHED();
  }
  TmaParams p{};
  p.a = a;
  // static_schedule: the TMA kernels as they were before the in-order hand-out (for comparison).
  p.group_m = a.static_schedule ? 8 : C::kGroupM;
  p.dynamic = a.static_schedule ? 0 : 1;
  p.skip_padding = a.static_schedule ? 0 : 1;
  const cuuint64_t da[2] = {cuuint64_t(K), rows}, sa[1] = {cuuint64_t(K) * 2};
  const cuuint32_t ba[2] = {64, 128};
  p.ta = make_map(GATED ? static_cast<const void*>(a.xs) : a.h, 2, da, sa, ba);
  const cuuint64_t db[3] = {cuuint64_t(K), cuuint64_t(N), cuuint64_t(a.E)};
  const cuuint64_t sb[2] = {cuuint64_t(K) * 2, cuuint64_t(K) * N * 2};
  const cuuint32_t bb[3] = {64, 256 / (CL > 2 ? CL : 2), 1};  // one B slice (see the kernel)
  p.tb0 = make_map(GATED ? a.gate : a.down, 3, db, sb, bb);
  p.tb1 = GATED ? make_map(a.up, 3, db, sb, bb) : p.tb0;
  if constexpr (STORE) {
    const cuuint64_t dc[2] = {cuuint64_t(N), rows}, sc[1] = {cuuint64_t(N) * 2};
    const cuuint32_t bc[2] = {64, 64};
    p.tc = make_map(GATED ? static_cast<const void*>(a.h) : a.y, 2, dc, sc, bc);
  }
  constexpr int smem = STORE ? C::kSmem : C::kSmemBase;
  int dev = 0, sms = 0;
  WATTMOE_CUDA_CALL(cudaGetDevice(&dev));
  WATTMOE_CUDA_CALL(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if constexpr (CL > 1) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(unsigned(sms / CL * CL));
    cfg.blockDim = dim3(C::kThreads);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = CL;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    // Persistent grid = the clusters that fit at once: with one CTA per SM, SMs left over in their GPC take no
    // cluster, and a grid of sms/CL clusters would run its last clusters as a second wave.
    static int max_clusters = 0;  // per process (one device kind) and instantiation
    if (!max_clusters)
      WATTMOE_CUDA_CALL(
          cudaOccupancyMaxActiveClusters(&max_clusters, grouped_gemm_sm90_ws<GATED, CL, STORE>, &cfg));
    cfg.gridDim = dim3(unsigned(CL) * unsigned(std::min<long long>(units, std::max(max_clusters, 1))));
    WATTMOE_CUDA_CALL(cudaLaunchKernelEx(&cfg, grouped_gemm_sm90_ws<GATED, CL, STORE>, p));
  } else {
    const unsigned grid = unsigned(std::min<long long>(units, sms));
    grouped_gemm_sm90_ws<GATED, 1, STORE><<<grid, C::kThreads, smem, s>>>(p);
    WATTMOE_CUDA_LAUNCHED();
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

template <bool GATED>
void launch_variant(const GroupedGemmArgs& a, cudaStream_t s) {
  int v = a.sm90_kernel;
  // Auto: the cp.async kernel below 4096 routed rows (weight-bandwidth-bound sizes, where it measured faster than
  // TMA on the H200: T=512 1.18 vs 1.37 ms, T=1024 1.71 vs 1.84 ms), the multicast TMA kernel from there on
  // (T=2048: 2.59 vs 2.74 ms TMA, 2.82 cp.async; T=4096: 5.13 vs 5.36 / 5.39 ms).
  if (v == 0) v = a.pairs < 4096 ? 1 : 3;
  if (v == 1) return launch_sm90<GATED>(a, s);
  // Epilogue of kernels 2-4 (MoeCudaOptions::sm90_store): 1 registers, 2 TMA store in gate_up only, 3 TMA store
  // in both; auto = 3 (kernel 3, H200, same call, 20 forwards back to back, 3 runs each: T=4096 4.79 vs 5.01 ms,
  // T=16384 18.35 vs 18.85 ms against registers; 2 sat between; H100, 5 runs each: −2.6% / −4.0%, T=2048 −0.8%).
  const int st = a.sm90_store == 0 ? 3 : a.sm90_store;
  if (GATED ? st >= 2 : st == 3) {
    if (v == 2) return launch_sm90_ws<GATED, 1, true>(a, s);
    if (v == 3) return launch_sm90_ws<GATED, 2, true>(a, s);
    return launch_sm90_ws<GATED, 4, true>(a, s);
  }
  if (v == 2) return launch_sm90_ws<GATED, 1, false>(a, s);
  if (v == 3) return launch_sm90_ws<GATED, 2, false>(a, s);
  launch_sm90_ws<GATED, 4, false>(a, s);
}

template <typename F>
void allow_smem(F* kernel, int bytes) {
  WATTMOE_CUDA_CALL(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

}  // namespace

void prepare_gemm_sm90_kernels() {
  allow_smem(grouped_gemm_sm90<true>, Sm90Cfg<true>::kSmem);
  allow_smem(grouped_gemm_sm90<false>, Sm90Cfg<false>::kSmem);
  allow_smem(grouped_gemm_sm90_ws<true, 1, false>, WsCfg<true>::kSmemBase);
  allow_smem(grouped_gemm_sm90_ws<false, 1, false>, WsCfg<false>::kSmemBase);
  allow_smem(grouped_gemm_sm90_ws<true, 2, false>, WsCfg<true>::kSmemBase);
  allow_smem(grouped_gemm_sm90_ws<false, 2, false>, WsCfg<false>::kSmemBase);
  allow_smem(grouped_gemm_sm90_ws<true, 4, false>, WsCfg<true>::kSmemBase);
  allow_smem(grouped_gemm_sm90_ws<false, 4, false>, WsCfg<false>::kSmemBase);
  allow_smem(grouped_gemm_sm90_ws<true, 1, true>, WsCfg<true>::kSmem);
  allow_smem(grouped_gemm_sm90_ws<false, 1, true>, WsCfg<false>::kSmem);
  allow_smem(grouped_gemm_sm90_ws<true, 2, true>, WsCfg<true>::kSmem);
  allow_smem(grouped_gemm_sm90_ws<false, 2, true>, WsCfg<false>::kSmem);
  allow_smem(grouped_gemm_sm90_ws<true, 4, true>, WsCfg<true>::kSmem);
  allow_smem(grouped_gemm_sm90_ws<false, 4, true>, WsCfg<false>::kSmem);
}
void launch_gate_up_sm90(const GroupedGemmArgs& a, cudaStream_t s) { launch_variant<true>(a, s); }
void launch_down_sm90(const GroupedGemmArgs& a, cudaStream_t s) { launch_variant<false>(a, s); }

}  // namespace wattmoe::cuda
