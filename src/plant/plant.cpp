#include "plant/plant.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "plant/sim_plant.h"
#if WATTMOE_WITH_CUDA
#include "ops/cuda/context.h"
#include "plant/real_plant.h"
#endif

namespace wattmoe {

void check_plant(const std::string& name) {
  WATTMOE_REQUIRE(name == "sim" || name == "cuda" || name == "model", "--plant {}: expected sim, cuda or model", name);
  if (name == "sim") return;
#if WATTMOE_WITH_CUDA
  WATTMOE_REQUIRE(cuda::device_available(),
                  "--plant {}: no CUDA device is visible (no GPU or driver here, or CUDA_VISIBLE_DEVICES hides it); "
                  "use --plant sim", name);
#else
  fail("--plant {}: this wattmoe was built without CUDA (configure with -DWATTMOE_CUDA=ON and rebuild); use --plant "
       "sim", name);
#endif
}

void set_plant_expert_shape(PlantShape& s, const std::string& hxi, int num_experts, double expert_weight_bytes) {
  WATTMOE_CHECK(expert_weight_bytes > 0);
  s.expert.weight_bytes = expert_weight_bytes;
  if (hxi.empty()) return;
  long long h = 0, i = 0;
  char x = 0, extra = 0;
  WATTMOE_REQUIRE(std::sscanf(hxi.c_str(), "%lld%c%lld%c", &h, &x, &i, &extra) == 3 && x == 'x' && h > 0 && i > 0,
                  "--expert-shape: '{}' is not HxI with positive integers (e.g. 4096x14336)", hxi);
  s.expert.hidden = h, s.expert.ffn = i;
  s.dense_params = double(h) * (2.5 * double(h)) + double(num_experts) * double(h);
}

double default_step_period(const std::string& name) { return name == "sim" ? 0.02 : 1.0; }

std::unique_ptr<Plant> make_plant(const PlantOptions& o) {
  check_plant(o.name);
  if (o.name == "sim") return std::make_unique<SimulatedPlant>(o.sim, o.shape);
#if WATTMOE_WITH_CUDA
  RealPlantConfig c;
  c.hidden = int(o.shape.expert.hidden), c.ffn = int(o.shape.expert.ffn);
  c.num_layers = o.num_layers, c.num_experts = o.num_experts, c.window_tokens = o.window_tokens;
  c.streams = o.shape.streams, c.period_s = o.shape.period_s, c.idle_s = o.idle_s, c.seed = o.seed;
  // The dense GEMM's rows: dense_params / H (q, k, v, o and router weights, as the simulated plant prices them).
  c.dense_out = int(std::llround(o.shape.dense_params / double(o.shape.expert.hidden)));
  c.dense_out = (c.dense_out + 7) / 8 * 8;
  if (o.name == "model") {
    WATTMOE_CHECK(o.work != nullptr, "--plant model needs the model's work");
    c.work = o.work;
  }
  return std::make_unique<RealGpuPlant>(c);
#else
  fail("--plant cuda: this wattmoe was built without CUDA");
#endif
}

}  // namespace wattmoe
