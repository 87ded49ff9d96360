// tokenizer.json normalizers: rewrite each text segment (between added tokens) before pre-tokenization.
#include "core/error.h"
#include "text/byte_level.h"
#include "text/hf_components.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace wattmoe::hf {
namespace {

struct SequenceN : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> parts;
  void normalize(std::string& s) const override {
    for (auto& p : parts) p->normalize(s);
  }
};

struct PrependN : Normalizer {
  std::string prefix;
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prefix);  // upstream leaves an empty segment empty
  }
};

struct ReplaceN : Normalizer {
  std::string from, to;
  void normalize(std::string& s) const override { replace_all(s, from, to); }
};

struct NfcN : Normalizer {
  void normalize(std::string& s) const override { s = unicode::nfc(s); }
};

struct StripN : Normalizer {
  bool left = true, right = true;
  void normalize(std::string& s) const override {
    std::u32string u = utf8::decode(s);
    size_t b = 0, e = u.size();
    if (left) while (b < e && unicode::is_space(u[b])) ++b;
    if (right) while (e > b && unicode::is_space(u[e - 1])) --e;
    s = utf8::encode(std::u32string_view(u).substr(b, e - b));
  }
};

struct ByteLevelN : Normalizer {
  ByteLevelMap map;
  void normalize(std::string& s) const override { s = map.encode(s); }
};

}  // namespace

std::unique_ptr<Normalizer> parse_normalizer(const Json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(j, where);
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceN>();
    const Json& list = field(j, "normalizers", where);
    WATTMOE_REQUIRE(list.is_array(), "{}: \"normalizers\" should be an array", where);
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = parse_normalizer(list[i], fmt::format("{}.normalizers[{}]", where, i));
      if (p) seq->parts.push_back(std::move(p));
    }
    return seq;
  }
  if (type == "Prepend") {
    auto n = std::make_unique<PrependN>();
    n->prefix = str_field(j, "prepend", where);
    return n;
  }
  if (type == "Replace") {
    auto n = std::make_unique<ReplaceN>();
    n->from = string_pattern(field(j, "pattern", where), where);
    n->to = str_field(j, "content", where);
    return n;
  }
  if (type == "NFC") return std::make_unique<NfcN>();
  if (type == "Strip") {
    auto n = std::make_unique<StripN>();
    n->left = bool_field(j, "strip_left", true, where);
    n->right = bool_field(j, "strip_right", true, where);
    return n;
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelN>();
  fail("{}: normalizer type \"{}\" is not supported (supported: Sequence, Prepend, Replace, NFC, Strip, ByteLevel)",
       where, type);
}

}  // namespace wattmoe::hf
