#include "energy/nvml_sensor.h"

#include <dlfcn.h>

#include "core/error.h"
#include "core/timer.h"

namespace wattmoe {

namespace {

// The few NVML types we use, declared from the NVML API reference (layouts are part of its stable C ABI).
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t kSuccess = 0;
constexpr int kTemperatureGpu = 0;            // NVML_TEMPERATURE_GPU
constexpr int kThresholdSlowdown = 1;         // NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
constexpr int kClockSm = 1, kClockMem = 2;    // NVML_CLOCK_SM, NVML_CLOCK_MEM
constexpr unsigned kFieldMemoryTemp = 82;     // NVML_FI_DEV_MEMORY_TEMP
constexpr unsigned kFieldPowerInstant = 186;  // NVML_FI_DEV_POWER_INSTANT (mW)

struct nvmlMemory_t {
  unsigned long long total, free, used;
};
union nvmlValue_t {
  double dVal;
  int siVal;
  unsigned int uiVal;
  unsigned long ulVal;
  unsigned long long ullVal;
  long long sllVal;
  unsigned short usVal;
};
struct nvmlFieldValue_t {
  unsigned int fieldId;
  unsigned int scopeId;
  long long timestamp;
  long long latencyUsec;
  int valueType;  // nvmlValueType_t
  nvmlReturn_t nvmlReturn;
  nvmlValue_t value;
};
static_assert(sizeof(nvmlFieldValue_t) == 40, "nvmlFieldValue_t layout must match nvml.h");

double field_as_double(const nvmlFieldValue_t& f) {
  switch (f.valueType) {
    case 0: return f.value.dVal;
    case 1: return double(f.value.uiVal);
    case 2: return double(f.value.ulVal);
    case 3: return double(f.value.ullVal);
    case 4: return double(f.value.sllVal);
    case 5: return double(f.value.siVal);
    case 6: return double(f.value.usVal);
    default: return kNaN;
  }
}

}  // namespace

struct NvmlSensor::Impl {
  void* lib = nullptr;
  bool initialized = false;
  nvmlDevice_t dev = nullptr;
  std::string name;
  Capabilities caps;
  double slowdown_c = kNaN;

  nvmlReturn_t (*Init)() = nullptr;
  nvmlReturn_t (*Shutdown)() = nullptr;
  const char* (*ErrorString)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*GetCount)(unsigned*) = nullptr;
  nvmlReturn_t (*GetHandleByIndex)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*GetName)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*GetPowerUsage)(nvmlDevice_t, unsigned*) = nullptr;
  nvmlReturn_t (*GetTotalEnergy)(nvmlDevice_t, unsigned long long*) = nullptr;
  nvmlReturn_t (*GetTemperature)(nvmlDevice_t, int, unsigned*) = nullptr;
  nvmlReturn_t (*GetTemperatureThreshold)(nvmlDevice_t, int, unsigned*) = nullptr;
  nvmlReturn_t (*GetClockInfo)(nvmlDevice_t, int, unsigned*) = nullptr;
  nvmlReturn_t (*GetClockReasons)(nvmlDevice_t, unsigned long long*) = nullptr;
  const char* clock_reasons_call = "";
  nvmlReturn_t (*GetMemoryInfo)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*GetEnforcedPowerLimit)(nvmlDevice_t, unsigned*) = nullptr;
  nvmlReturn_t (*GetFieldValues)(nvmlDevice_t, int, nvmlFieldValue_t*) = nullptr;

  template <class F>
  void sym(F*& f, const char* name) {
    f = reinterpret_cast<F*>(dlsym(lib, name));
  }
  std::string err(nvmlReturn_t r) const {
    const char* s = ErrorString ? ErrorString(r) : nullptr;
    return fmt::format("{} (code {})", s ? s : "unknown error", r);
  }
  // During read(): any failure of a call we probed as working is a device fault.
  void check(nvmlReturn_t r, const char* call) const {
    if (r != kSuccess) fail("NVML {}: {}", call, err(r));
  }

  ~Impl() {
    if (initialized && Shutdown) Shutdown();
    if (lib) dlclose(lib);
  }
};

NvmlSensor::NvmlSensor(unsigned index) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  dlerror();
  m.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!m.lib) {
    const char* e = dlerror();
    fail("NVML not available: {}", e ? e : "dlopen(libnvidia-ml.so.1) failed");
  }
  m.sym(m.Init, "nvmlInit_v2");
  m.sym(m.Shutdown, "nvmlShutdown");
  m.sym(m.ErrorString, "nvmlErrorString");
  m.sym(m.GetCount, "nvmlDeviceGetCount_v2");
  m.sym(m.GetHandleByIndex, "nvmlDeviceGetHandleByIndex_v2");
  m.sym(m.GetName, "nvmlDeviceGetName");
  m.sym(m.GetPowerUsage, "nvmlDeviceGetPowerUsage");
  m.sym(m.GetTotalEnergy, "nvmlDeviceGetTotalEnergyConsumption");
  m.sym(m.GetTemperature, "nvmlDeviceGetTemperature");
  m.sym(m.GetTemperatureThreshold, "nvmlDeviceGetTemperatureThreshold");
  m.sym(m.GetClockInfo, "nvmlDeviceGetClockInfo");
  m.sym(m.GetClockReasons, "nvmlDeviceGetCurrentClocksEventReasons");
  m.clock_reasons_call = "nvmlDeviceGetCurrentClocksEventReasons";
  if (!m.GetClockReasons) {  // drivers before 535 only have the older name
    m.sym(m.GetClockReasons, "nvmlDeviceGetCurrentClocksThrottleReasons");
    m.clock_reasons_call = "nvmlDeviceGetCurrentClocksThrottleReasons";
  }
  m.sym(m.GetMemoryInfo, "nvmlDeviceGetMemoryInfo");
  m.sym(m.GetEnforcedPowerLimit, "nvmlDeviceGetEnforcedPowerLimit");
  m.sym(m.GetFieldValues, "nvmlDeviceGetFieldValues");
  if (!m.Init || !m.Shutdown || !m.GetHandleByIndex)
    fail("NVML not available: libnvidia-ml.so.1 lacks nvmlInit_v2/nvmlShutdown/nvmlDeviceGetHandleByIndex_v2");

  nvmlReturn_t r = m.Init();
  if (r != kSuccess) fail("NVML not available: nvmlInit_v2: {}", m.err(r));
  m.initialized = true;
  if (m.GetCount) {
    unsigned n = 0;
    r = m.GetCount(&n);
    if (r != kSuccess) fail("no GPU: nvmlDeviceGetCount_v2: {}", m.err(r));
    if (index >= n) fail("no GPU: device index {} requested, NVML sees {} device(s)", index, n);
  }
  r = m.GetHandleByIndex(index, &m.dev);
  if (r != kSuccess) fail("no GPU: nvmlDeviceGetHandleByIndex_v2({}): {}", index, m.err(r));

  char buf[96] = {};
  m.name = fmt::format("nvml:{}", index);
  if (m.GetName && m.GetName(m.dev, buf, sizeof buf) == kSuccess) m.name += fmt::format(" ({})", buf);

  // Probe each reading once: a call that is missing or NOT_SUPPORTED here is a capability we lack; anything
  // else failing later is a fault (see Impl::check).
  auto works = [&](auto probe) { return probe() == kSuccess; };
  unsigned u = 0;
  unsigned long long ull = 0;
  nvmlMemory_t mem{};
  Capabilities& c = m.caps;
  c.power_avg = m.GetPowerUsage && works([&] { return m.GetPowerUsage(m.dev, &u); });
  c.energy = m.GetTotalEnergy && works([&] { return m.GetTotalEnergy(m.dev, &ull); });
  c.gpu_temp = m.GetTemperature && works([&] { return m.GetTemperature(m.dev, kTemperatureGpu, &u); });
  c.sm_clock = m.GetClockInfo && works([&] { return m.GetClockInfo(m.dev, kClockSm, &u); });
  c.mem_clock = m.GetClockInfo && works([&] { return m.GetClockInfo(m.dev, kClockMem, &u); });
  c.clock_event_reasons = m.GetClockReasons && works([&] { return m.GetClockReasons(m.dev, &ull); });
  c.memory = m.GetMemoryInfo && works([&] { return m.GetMemoryInfo(m.dev, &mem); });
  c.power_limit = m.GetEnforcedPowerLimit && works([&] { return m.GetEnforcedPowerLimit(m.dev, &u); });
  if (c.gpu_temp && m.GetTemperatureThreshold && m.GetTemperatureThreshold(m.dev, kThresholdSlowdown, &u) == kSuccess) {
    m.slowdown_c = double(u);
    c.thermal_margin = true;
  }
  if (m.GetFieldValues) {
    nvmlFieldValue_t f[2] = {};
    f[0].fieldId = kFieldPowerInstant;
    f[1].fieldId = kFieldMemoryTemp;
    if (m.GetFieldValues(m.dev, 2, f) == kSuccess) {
      c.power = f[0].nvmlReturn == kSuccess;
      c.mem_temp = f[1].nvmlReturn == kSuccess;
    }
  }
  c.counter_tick_s = 0.1;  // measured on H100/H200 (ARCHITECTURE.md); the counter is 64-bit mJ and never wraps
}

NvmlSensor::~NvmlSensor() = default;

std::string NvmlSensor::name() const { return impl_->name; }
Capabilities NvmlSensor::capabilities() const { return impl_->caps; }
double NvmlSensor::now() { return now_seconds(); }

Sample NvmlSensor::read() {
  Impl& m = *impl_;
  const Capabilities& c = m.caps;
  Sample s;
  const double t0 = now_seconds();
  unsigned u = 0;
  unsigned long long ull = 0;
  if (c.power || c.mem_temp) {
    nvmlFieldValue_t f[2] = {};
    f[0].fieldId = kFieldPowerInstant;
    f[1].fieldId = kFieldMemoryTemp;
    m.check(m.GetFieldValues(m.dev, 2, f), "nvmlDeviceGetFieldValues");
    // Each field carries its own return code; the call as a whole can succeed while one field fails.
    if (c.power) {
      m.check(f[0].nvmlReturn, "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)");
      s.power_w = field_as_double(f[0]) / 1000.0;
    }
    if (c.mem_temp) {
      m.check(f[1].nvmlReturn, "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)");
      s.mem_temp_c = field_as_double(f[1]);
    }
  }
  if (c.power_avg) {
    m.check(m.GetPowerUsage(m.dev, &u), "nvmlDeviceGetPowerUsage");
    s.power_avg_w = u / 1000.0;
  }
  if (c.energy) {
    m.check(m.GetTotalEnergy(m.dev, &ull), "nvmlDeviceGetTotalEnergyConsumption");
    s.energy_j = double(ull) / 1000.0;
  }
  if (c.gpu_temp) {
    m.check(m.GetTemperature(m.dev, kTemperatureGpu, &u), "nvmlDeviceGetTemperature");
    s.gpu_temp_c = u;
    if (c.thermal_margin) s.thermal_margin_c = m.slowdown_c - s.gpu_temp_c;
  }
  if (c.sm_clock) {
    m.check(m.GetClockInfo(m.dev, kClockSm, &u), "nvmlDeviceGetClockInfo(NVML_CLOCK_SM)");
    s.sm_clock_mhz = u;
  }
  if (c.mem_clock) {
    m.check(m.GetClockInfo(m.dev, kClockMem, &u), "nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)");
    s.mem_clock_mhz = u;
  }
  if (c.clock_event_reasons) {
    m.check(m.GetClockReasons(m.dev, &ull), m.clock_reasons_call);
    s.clock_event_reasons = ull;
  }
  if (c.memory) {
    nvmlMemory_t mem{};
    m.check(m.GetMemoryInfo(m.dev, &mem), "nvmlDeviceGetMemoryInfo");
    s.mem_used_bytes = mem.used;
    s.mem_total_bytes = mem.total;
  }
  if (c.power_limit) {
    m.check(m.GetEnforcedPowerLimit(m.dev, &u), "nvmlDeviceGetEnforcedPowerLimit");
    s.power_limit_w = u / 1000.0;
  }
  // The calls take a few ms together: stamp the sample at their midpoint.
  s.time_s = 0.5 * (t0 + now_seconds());
  return s;
}

}  // namespace wattmoe
