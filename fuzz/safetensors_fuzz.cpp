// libFuzzer target for parse_safetensors_header: any input must either parse or throw wattmoe::Error, never
// crash, read out of bounds or hit UB (the build adds ASan + UBSan). Run: ctest -R fuzz, or by hand:
//   build/fuzz/safetensors_fuzz -dict=fuzz/safetensors.dict CORPUS_DIR fuzz/corpus
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    wattmoe::SafetensorsHeader h = wattmoe::parse_safetensors_header(data, size, size, "fuzz");
    // What callers rely on after a successful parse: the ranges tile the data section exactly (the reference
    // reader's rule), each the size of its dtype and shape.
    uint64_t end = 0;
    for (const auto& t : h.tensors) {
      if (t.begin != end || t.begin > t.end ||
          t.end - t.begin != uint64_t(wattmoe::shape_numel(t.shape)) * wattmoe::dtype_size(t.dtype))
        __builtin_trap();
      end = t.end;
    }
    if (h.data_start + end != size) __builtin_trap();
  } catch (const wattmoe::Error&) {
  }
  return 0;
}
