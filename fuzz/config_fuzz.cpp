// config.json (model/config.h): parse, then what loading does next (validate, parameter count).
#include "fuzz_util.h"
#include "io/json.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wattmoe::fuzz::accept_or_refuse([&] {
    const wattmoe::ModelConfig c = wattmoe::parse_model_config(wattmoe::parse_json(wattmoe::fuzz::text(data, size),
                                                                                   "config.json"), "config.json");
    c.validate("config.json");
    if (c.num_parameters() <= 0) __builtin_trap();
  });
  return 0;
}
