// Simulated-GPU parameters (energy/sim_params.h): parse, then run the simulation on them (a tiny tick or a huge
// duration must end quickly or be refused: libFuzzer's -timeout reports a hang).
#include <cmath>

#include "energy/sim_gpu.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wattmoe::fuzz::accept_or_refuse([&] {
    const wattmoe::SimGpuParams p =
        wattmoe::sim_params_from_json(wattmoe::parse_json(wattmoe::fuzz::text(data, size), "sim"), "sim");
    wattmoe::SimulatedGpu gpu(p);
    for (double flops : {1e9, 1e13, 1e15}) gpu.run({flops, flops / 10, "work"});
    gpu.idle(30);
    if (!std::isfinite(gpu.true_energy_j()) || gpu.true_energy_j() < 0 || !std::isfinite(gpu.temperature_c()))
      __builtin_trap();
  });
  return 0;
}
