#include "serve/text_stream.h"

#include <algorithm>
#include <span>

namespace wattmoe {

size_t incomplete_utf8_tail(const std::string& s) {
  // Look back at most 3 bytes for the lead byte of the last character.
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    const unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking
    const size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;  // only continuation bytes (or nothing): invalid or complete, nothing to wait for
}

TextStream::TextStream(const Tokenizer& tok, std::vector<std::string> stop) : tok_(tok), stop_(std::move(stop)) {
  stop_.erase(std::remove(stop_.begin(), stop_.end(), std::string()), stop_.end());
}

std::string TextStream::take(size_t end) {
  if (end <= sent_.size()) return {};
  std::string piece = all_.substr(sent_.size(), end - sent_.size());
  sent_ += piece;
  return piece;
}

std::string TextStream::push(int32_t id) {
  if (stopped_) return {};
  const size_t before = all_.size();
  all_ += tok_.decode(std::span<const int32_t>(&id, 1));
  // The earliest stop string that ends in the new bytes (one that ended earlier would have stopped us then).
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) {
    const size_t from = before >= s.size() ? before - s.size() + 1 : 0;
    const size_t at = all_.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    all_.resize(cut);
    return take(all_.size());
  }
  // Hold back the longest tail that is a proper prefix of some stop string, and a partial character.
  size_t hold = incomplete_utf8_tail(all_);
  for (const std::string& s : stop_)
    for (size_t n = std::min(s.size() - 1, all_.size()); n > hold; --n)
      if (all_.compare(all_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return take(all_.size() - hold);
}

std::string TextStream::finish() { return take(all_.size()); }

}  // namespace wattmoe
