// Internal to the runner implementations (model/runner.h): the factories make_runner chooses between.
#pragma once
#include <memory>

#include "model/runner.h"

namespace wattmoe {

std::unique_ptr<Runner> make_cpu_runner(const ModelConfig& c);               // model/runner_cpu.cpp
std::unique_ptr<Runner> make_cuda_runner(const ModelConfig& c, const RunnerOptions& o);  // gpu/runner_cuda.cpp
bool cuda_device_visible();                                                   // gpu/runner_cuda.cpp

}  // namespace wattmoe
