// NvmlSensor: reads an NVIDIA GPU through NVML, loaded with dlopen("libnvidia-ml.so.1") at run time, so the
// binary neither needs the NVML header nor links against it and still runs on machines without a driver.
// Read only: no NVML setter is ever called (power and clocks are not ours to set; see ARCHITECTURE.md).
// NVML calls cost 1-1.5 ms each (ARCHITECTURE.md) and read() makes about ten (3.5-4 ms on an H200, one run):
// read() belongs on the meter's sampler thread, never on the decode path.
#pragma once
#include <memory>
#include <string>

#include "energy/sensor.h"

namespace wattmoe {

class NvmlSensor : public PowerSensor {
 public:
  // Error "NVML not available: <why>" without the library/driver, "no GPU: ..." without device `index`.
  explicit NvmlSensor(unsigned index = 0);
  ~NvmlSensor() override;
  NvmlSensor(const NvmlSensor&) = delete;
  NvmlSensor& operator=(const NvmlSensor&) = delete;

  std::string name() const override;
  Capabilities capabilities() const override;
  // Errors name the NVML call that failed ("nvmlDeviceGetPowerUsage: GPU is lost").
  Sample read() override;
  double now() override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wattmoe
