// ReplaySensor: plays back a recorded trace (`wattmoe telemetry --record FILE`) as a PowerSensor, so
// controllers and cost calibration can be tested offline against real device behaviour.
// Time is the trace's: each read() returns the next sample and now() is the time of the last one returned.
// Capabilities are the fields present in any sample of the trace.
#pragma once
#include <string>
#include <vector>

#include "energy/sensor.h"

namespace wattmoe {

class ReplaySensor : public PowerSensor {
 public:
  explicit ReplaySensor(const std::string& path);  // reads the whole trace; Errors name file:line and the field
  explicit ReplaySensor(std::vector<Sample> samples, std::string name = "replay");

  std::string name() const override { return name_; }
  Capabilities capabilities() const override { return caps_; }
  Sample read() override;  // the next sample; Error "trace ended" after the last one
  double now() override;

  const std::vector<Sample>& samples() const { return samples_; }
  size_t position() const { return next_; }
  bool done() const { return next_ >= samples_.size(); }
  // The latest sample with time_s <= t (the first sample if t is before it). Error on an empty trace.
  const Sample& at(double t) const;

 private:
  void init_caps();
  std::string name_;
  std::vector<Sample> samples_;
  size_t next_ = 0;
  Capabilities caps_;
};

}  // namespace wattmoe
