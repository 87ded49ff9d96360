// tokenizer.json decoders: turn the token strings of a decode back into text. Each works on the whole list
// (decode_chain), as upstream, because some (Fuse, ByteFallback) join or split tokens.
#include "core/error.h"
#include "text/byte_level.h"
#include "text/hf_components.h"
#include "text/utf8.h"

namespace wattmoe::hf {
namespace {

struct SequenceD : Decoder {
  std::vector<std::unique_ptr<Decoder>> parts;
  void decode_chain(std::vector<std::string>& t) const override {
    for (auto& p : parts) p->decode_chain(t);
  }
};

// Characters of the byte map back to bytes; a token with any other character keeps its UTF-8 as is.
struct ByteLevelD : Decoder {
  ByteLevelMap map;
  void decode_chain(std::vector<std::string>& t) const override {
    std::string bytes;
    for (auto& tok : t) {
      std::u32string u = utf8::decode(tok);
      std::string mine;
      bool all = true;
      for (char32_t c : u) {
        int b = map.to_byte(c);
        if (b < 0) {
          all = false;
          break;
        }
        mine += char(b);
      }
      bytes += all ? mine : tok;
    }
    t.assign(1, utf8::lossy(bytes));
  }
};

struct MetaspaceD : Decoder {
  std::string rep;
  PrependScheme prepend = PrependScheme::Always;
  void decode_chain(std::vector<std::string>& t) const override {
    for (size_t i = 0; i < t.size(); ++i)  // upstream drops every replacement of the first token, not only one
      replace_all(t[i], rep, i == 0 && prepend != PrependScheme::Never ? "" : " ");
  }
};

struct ReplaceD : Decoder {
  std::string from, to;
  void decode_chain(std::vector<std::string>& t) const override {
    for (auto& s : t) replace_all(s, from, to);
  }
};

// Runs of <0xXX> tokens become the text they spell; if it is not valid UTF-8, one U+FFFD per byte.
struct ByteFallbackD : Decoder {
  static int byte_of(const std::string& s) {
    auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1; };
    if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return -1;
    int hi = hex(s[3]), lo = hex(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
  void decode_chain(std::vector<std::string>& t) const override {
    std::vector<std::string> out;
    std::string run;
    size_t run_len = 0;
    auto flush = [&] {
      if (!run_len) return;
      if (utf8::valid(run)) out.push_back(run);
      else for (size_t i = 0; i < run_len; ++i) out.push_back("\xEF\xBF\xBD");
      run.clear();
      run_len = 0;
    };
    for (auto& s : t) {
      int b = byte_of(s);
      if (b >= 0) {
        run += char(b);
        ++run_len;
      } else {
        flush();
        out.push_back(s);
      }
    }
    flush();
    t = std::move(out);
  }
};

struct FuseD : Decoder {
  void decode_chain(std::vector<std::string>& t) const override {
    std::string all;
    for (auto& s : t) all += s;
    t.assign(1, all);
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` from every token.
struct StripD : Decoder {
  char32_t content = ' ';
  size_t start = 0, stop = 0;
  void decode_chain(std::vector<std::string>& t) const override {
    for (auto& s : t) {
      std::u32string u = utf8::decode(s);
      size_t b = 0, e = u.size();
      while (b < start && b < e && u[b] == content) ++b;
      for (size_t i = 0; i < stop && e > b && u[e - 1] == content; ++i) --e;
      s = utf8::encode(std::u32string_view(u).substr(b, e - b));
    }
  }
};

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const Json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(j, where);
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceD>();
    const Json& list = field(j, "decoders", where);
    WATTMOE_REQUIRE(list.is_array(), "{}: \"decoders\" should be an array", where);
    for (size_t i = 0; i < list.size(); ++i) {
      auto d = parse_decoder(list[i], fmt::format("{}.decoders[{}]", where, i));
      if (d) seq->parts.push_back(std::move(d));
    }
    return seq;
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelD>();
  if (type == "Metaspace") {
    auto d = std::make_unique<MetaspaceD>();
    d->rep = metaspace_replacement(j, where);
    d->prepend = parse_prepend_scheme(j, where);
    return d;
  }
  if (type == "Replace") {
    auto d = std::make_unique<ReplaceD>();
    d->from = string_pattern(field(j, "pattern", where), where);
    d->to = str_field(j, "content", where);
    return d;
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackD>();
  if (type == "Fuse") return std::make_unique<FuseD>();
  if (type == "Strip") {
    auto d = std::make_unique<StripD>();
    std::u32string c = utf8::decode(str_field(j, "content", where));
    WATTMOE_REQUIRE(c.size() == 1, "{}: Strip content should be one character", where);
    d->content = c[0];
    int64_t a = int_field(j, "start", 0, where), b = int_field(j, "stop", 0, where);
    WATTMOE_REQUIRE(a >= 0 && b >= 0, "{}: Strip start/stop should be >= 0", where);
    d->start = size_t(a);
    d->stop = size_t(b);
    return d;
  }
  fail("{}: decoder type \"{}\" is not supported (supported: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, "
       "Fuse, Strip)", where, type);
}

}  // namespace wattmoe::hf
