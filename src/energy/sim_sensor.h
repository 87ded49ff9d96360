// SimSensor: the simulated GPU seen through the PowerSensor interface. now() is the simulator's virtual time,
// so the meter samples it synchronously (Capabilities::virtual_time). The caller owns the SimulatedGpu and
// keeps it alive as long as the sensor.
#pragma once
#include "energy/sensor.h"
#include "energy/sim_gpu.h"

namespace wattmoe {

class SimSensor : public PowerSensor {
 public:
  explicit SimSensor(SimulatedGpu& gpu) : gpu_(gpu) {}
  std::string name() const override { return "sim:" + gpu_.params().name; }
  Capabilities capabilities() const override { return gpu_.capabilities(); }
  Sample read() override { return gpu_.sample(); }
  double now() override { return gpu_.time(); }

 private:
  SimulatedGpu& gpu_;
};

}  // namespace wattmoe
