// encode/decode of arbitrary bytes with a real tokenizer.json (byte-level BPE, WATTMOE_FUZZ_TOKENIZER) and the byte
// tokenizer: ids stay in the vocabulary; the byte tokenizer round-trips exactly; the BPE tokenizer encodes valid
// UTF-8 and refuses the rest; decoding arbitrary ids either works or is refused.
#include "fuzz_util.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto hf = wattmoe::load_tokenizer(WATTMOE_FUZZ_TOKENIZER);
  static const wattmoe::ByteTokenizer bytes;
  const std::string s = wattmoe::fuzz::text(data, size);
  if (bytes.decode(bytes.encode(s)) != s) __builtin_trap();
  wattmoe::fuzz::accept_or_refuse([&] {
    const std::vector<int32_t> ids = hf->encode(s);
    for (int32_t id : ids)
      if (id < 0 || id >= hf->vocab_size()) __builtin_trap();
    hf->decode(ids);
  });
  std::vector<int32_t> raw(size / 4);
  for (size_t i = 0; i < raw.size(); ++i)
    raw[i] = int32_t(uint32_t(data[4 * i]) | uint32_t(data[4 * i + 1]) << 8 | uint32_t(data[4 * i + 2]) << 16 |
                     uint32_t(data[4 * i + 3]) << 24);
  wattmoe::fuzz::accept_or_refuse([&] { hf->decode(raw, true); });
  wattmoe::fuzz::accept_or_refuse([&] { bytes.decode(raw); });
  return 0;
}
