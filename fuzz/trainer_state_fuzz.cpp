// trainer_state.json on resume (train/trainer.h): the step is an integer in [0, steps] and the run must match.
#include "fuzz_util.h"
#include "train/trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const wattmoe::Json run = wattmoe::train_detail::run_identity(wattmoe::train_preset("tiny"), "0123abcd");
  wattmoe::fuzz::accept_or_refuse([&] {
    const int step = wattmoe::train_detail::resume_step(
        wattmoe::parse_json(wattmoe::fuzz::text(data, size), "trainer_state.json"), "trainer_state.json", run, 100);
    if (step < 0 || step > 100) __builtin_trap();
  });
  return 0;
}
