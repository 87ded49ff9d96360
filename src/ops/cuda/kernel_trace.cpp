// CUPTI activity records of kernel launches (ops/cuda/kernel_trace.h). CUPTI is dlopen'ed once per process and never
// closed: its callbacks stay registered for the life of the process, so the library must stay loaded.
#include "ops/cuda/kernel_trace.h"

#include <cuda_runtime.h>
#include <cupti_activity.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "core/error.h"
#include "ops/cuda/moe_kernels.h"
#include "ops/cuda/profile_blocks.h"

namespace wattmoe {

namespace {

constexpr size_t kBufferBytes = size_t(8) << 20;
constexpr size_t kBufferAlign = 8;  // CUPTI's required alignment of activity buffers

// CUPTI's entry points, resolved once.
struct Cupti {
  void* lib = nullptr;
  std::string error;  // why CUPTI is unusable ("" when loaded)
  CUptiResult (*RegisterCallbacks)(CUpti_BuffersCallbackRequestFunc, CUpti_BuffersCallbackCompleteFunc) = nullptr;
  CUptiResult (*Enable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*Disable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*FlushAll)(uint32_t) = nullptr;
  CUptiResult (*GetNextRecord)(uint8_t*, size_t, CUpti_Activity**) = nullptr;
  CUptiResult (*GetNumDroppedRecords)(CUcontext, uint32_t, size_t*) = nullptr;
  CUptiResult (*GetResultString)(CUptiResult, const char**) = nullptr;

  std::string err(CUptiResult r) const {
    const char* s = nullptr;
    if (GetResultString && GetResultString(r, &s) == CUPTI_SUCCESS && s) return s;
    return "CUPTI error " + std::to_string(int(r));
  }
};

// What the completion callback collects for the trace in progress.
struct Collected {
  std::mutex mu;
  std::vector<KernelLaunch> kernels;
  std::vector<uint64_t> starts;
  size_t dropped = 0;
};
Collected g_collected;
std::atomic<bool> g_tracer_alive{false};

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlign, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

const Cupti& cupti();

void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t* buffer, size_t, size_t valid) {
  const Cupti& c = cupti();
  std::lock_guard<std::mutex> lock(g_collected.mu);
  CUpti_Activity* rec = nullptr;
  while (valid > 0 && c.GetNextRecord(buffer, valid, &rec) == CUPTI_SUCCESS) {
    if (rec->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && rec->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(rec);
    KernelLaunch l;
    l.name = kernel_base_name(k->name ? k->name : "?");
    l.grid = int64_t(k->gridX) * k->gridY * k->gridZ;
    l.threads = k->blockX * k->blockY * k->blockZ;
    l.regs_per_thread = k->registersPerThread;
    l.static_smem = k->staticSharedMemory;
    l.dynamic_smem = k->dynamicSharedMemory;
    l.cluster = std::max<int>(1, int(k->clusterX) * int(k->clusterY) * int(k->clusterZ));
    l.seconds = k->end > k->start ? double(k->end - k->start) * 1e-9 : 0.0;
    g_collected.kernels.push_back(std::move(l));
    g_collected.starts.push_back(k->start);
  }
  size_t dropped = 0;
  if (c.GetNumDroppedRecords && c.GetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS)
    g_collected.dropped += dropped;
  std::free(buffer);
}

Cupti load_cupti() {
  Cupti c;
  const std::string major = std::to_string(CUDART_VERSION / 1000);
  std::vector<std::string> names = {"libcupti.so." + major, "libcupti.so"};
  const char* roots[] = {std::getenv("CUDA_HOME"), std::getenv("CUDA_PATH"), "/usr/local/cuda"};
  for (const char* root : roots)
    if (root && *root)
      for (const char* sub : {"/extras/CUPTI/lib64/", "/lib64/", "/lib/", "/targets/x86_64-linux/lib/"})
        names.push_back(std::string(root) + sub + "libcupti.so." + major);
  std::string tried;
  for (const std::string& n : names) {
    dlerror();
    c.lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (c.lib) break;
    tried += (tried.empty() ? "" : ", ") + n;
  }
  if (!c.lib) {
    c.error = "CUPTI not found (tried " + tried + "; it ships with the CUDA toolkit)";
    return c;
  }
  auto sym = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::decay_t<decltype(fn)>>(dlsym(c.lib, name)); };
  sym(c.RegisterCallbacks, "cuptiActivityRegisterCallbacks");
  sym(c.Enable, "cuptiActivityEnable");
  sym(c.Disable, "cuptiActivityDisable");
  sym(c.FlushAll, "cuptiActivityFlushAll");
  sym(c.GetNextRecord, "cuptiActivityGetNextRecord");
  sym(c.GetNumDroppedRecords, "cuptiActivityGetNumDroppedRecords");
  sym(c.GetResultString, "cuptiGetResultString");
  if (!c.RegisterCallbacks || !c.Enable || !c.Disable || !c.FlushAll || !c.GetNextRecord) {
    c.error = "CUPTI's library lacks the activity API (cuptiActivityRegisterCallbacks, Enable, Disable, FlushAll, "
              "GetNextRecord)";
    return c;
  }
  const CUptiResult r = c.RegisterCallbacks(buffer_requested, buffer_completed);
  if (r != CUPTI_SUCCESS) c.error = "cuptiActivityRegisterCallbacks: " + c.err(r) + " (is another profiler attached?)";
  return c;
}

const Cupti& cupti() {
  static const Cupti c = load_cupti();
  return c;
}

int attribute(cudaDeviceAttr a, int dev) {
  int v = 0;
  WATTMOE_CUDA_CALL(cudaDeviceGetAttribute(&v, a, dev));
  return v;
}

}  // namespace

SmLimits cuda_sm_limits() {
  int dev = 0;
  WATTMOE_CUDA_CALL(cudaGetDevice(&dev));
  SmLimits s;
  s.sm_count = attribute(cudaDevAttrMultiProcessorCount, dev);
  s.warp_size = attribute(cudaDevAttrWarpSize, dev);
  s.max_threads_per_sm = attribute(cudaDevAttrMaxThreadsPerMultiProcessor, dev);
  s.max_threads_per_block = attribute(cudaDevAttrMaxThreadsPerBlock, dev);
  s.max_blocks_per_sm = attribute(cudaDevAttrMaxBlocksPerMultiprocessor, dev);
  s.regs_per_sm = attribute(cudaDevAttrMaxRegistersPerMultiprocessor, dev);
  s.regs_per_block = attribute(cudaDevAttrMaxRegistersPerBlock, dev);
  s.smem_per_sm = attribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev);
  s.smem_per_block_optin = attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  s.smem_reserved_per_block = attribute(cudaDevAttrReservedSharedMemoryPerBlock, dev);
  const int major = attribute(cudaDevAttrComputeCapabilityMajor, dev);
  WATTMOE_REQUIRE(major >= 8, "occupancy: compute capability {}.x: the calculator covers sm_80 and newer", major);
  s.device = cuda_device_description();
  validate(s);
  return s;
}

KernelTracer::KernelTracer() {
  const Cupti& c = cupti();
  WATTMOE_REQUIRE(c.error.empty(), "kernel launch records: {}", c.error);
  WATTMOE_REQUIRE(!g_tracer_alive.exchange(true), "kernel launch records: a tracer already exists in this process");
}

KernelTracer::~KernelTracer() { g_tracer_alive = false; }

std::vector<KernelLaunch> KernelTracer::trace(const std::function<void()>& work) {
  const Cupti& c = cupti();
  WATTMOE_CUDA_CALL(cudaDeviceSynchronize());
  {
    std::lock_guard<std::mutex> lock(g_collected.mu);
    g_collected.kernels.clear();
    g_collected.starts.clear();
    g_collected.dropped = 0;
  }
  CUptiResult r = c.Enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  WATTMOE_REQUIRE(r == CUPTI_SUCCESS, "kernel launch records: cuptiActivityEnable: {} (is another profiler attached?)",
                  c.err(r));
  auto stop = [&] {
    const CUptiResult f = c.FlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    const CUptiResult d = c.Disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    return f != CUPTI_SUCCESS ? f : d;
  };
  try {
    work();
    WATTMOE_CUDA_CALL(cudaDeviceSynchronize());
  } catch (...) {
    stop();
    throw;
  }
  r = stop();
  WATTMOE_REQUIRE(r == CUPTI_SUCCESS, "kernel launch records: flushing CUPTI's buffers: {}", c.err(r));
  std::lock_guard<std::mutex> lock(g_collected.mu);
  WATTMOE_REQUIRE(g_collected.dropped == 0, "kernel launch records: CUPTI dropped {} records",
                  g_collected.dropped);
  std::vector<size_t> order(g_collected.kernels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [](size_t a, size_t b) { return g_collected.starts[a] < g_collected.starts[b]; });
  std::vector<KernelLaunch> out;
  out.reserve(order.size());
  for (size_t i : order) out.push_back(std::move(g_collected.kernels[i]));
  g_collected.kernels.clear();
  g_collected.starts.clear();
  return out;
}

}  // namespace wattmoe
