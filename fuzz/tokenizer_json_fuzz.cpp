// tokenizer.json (text/tokenizer.h): parse; a tokenizer that loads then encodes and decodes a fixed text.
#include "fuzz_util.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wattmoe::fuzz::accept_or_refuse([&] {
    const auto tok = wattmoe::parse_tokenizer_json(wattmoe::fuzz::text(data, size), "tokenizer.json");
    const std::vector<int32_t> ids = tok->encode("Hello, wörld! <|endoftext|> \t\n 123");
    for (int32_t id : ids)
      if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
    tok->decode(ids);
    tok->decode(ids, true);
  });
  return 0;
}
