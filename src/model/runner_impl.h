// Internal to the runner implementations (model/runner.h): the factories make_runner chooses between.
#pragma once
#include <memory>

#include "model/runner.h"
#include "ops/quant.h"

namespace wattmoe {

std::unique_ptr<Runner> make_cpu_runner(const ModelConfig& c,
                                        ops::ExpertPrecision experts = ops::ExpertPrecision::Bf16);  // runner_cpu.cpp
std::unique_ptr<Runner> make_cuda_runner(const ModelConfig& c, const RunnerOptions& o);  // gpu/runner_cuda.cpp
bool cuda_device_visible();                                                   // gpu/runner_cuda.cpp

}  // namespace wattmoe
