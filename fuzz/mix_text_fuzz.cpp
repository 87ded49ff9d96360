// The mix corpus's cleaners (text/mix_corpus.h) on arbitrary bytes: strip_troff, clean_rest, wordnet_gloss (per
// line), dictd_entries (index and .dict split at the first NUL byte) and austen_chapters either return or refuse with
// wattmoe::Error; dictd documents lie inside the .dict; finish_doc keeps valid UTF-8 valid and is idempotent.
#include "fuzz_util.h"
#include "text/mix_corpus.h"
#include "text/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s = wattmoe::fuzz::text(data, size);
  wattmoe::strip_troff(s);
  wattmoe::clean_rest(s);
  for (size_t i = 0; i < s.size();) {
    size_t nl = std::min(s.find('\n', i), s.size());
    wattmoe::wordnet_gloss(std::string_view(s).substr(i, nl - i));
    i = nl + 1;
  }
  const size_t nul = std::min(s.find('\0'), s.size());
  const std::string_view index = std::string_view(s).substr(0, nul);
  const std::string_view dict = nul < s.size() ? std::string_view(s).substr(nul + 1) : std::string_view();
  wattmoe::fuzz::accept_or_refuse([&] {
    for (const wattmoe::MixDoc& d : wattmoe::dictd_entries(index, dict))
      if (d.text.size() > dict.size()) __builtin_trap();
  });
  wattmoe::fuzz::accept_or_refuse([&] { wattmoe::austen_chapters(s); });
  if (wattmoe::utf8::valid(s)) {
    const std::string f = wattmoe::finish_doc(s);
    if (!wattmoe::utf8::valid(f) || wattmoe::finish_doc(f) != f) __builtin_trap();
  }
  return 0;
}
