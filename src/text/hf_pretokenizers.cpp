// tokenizer.json pre-tokenizers: split each normalized segment into the pieces the BPE model sees.
#include <optional>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/hf_components.h"
#include "text/regex_split.h"

namespace wattmoe::hf {
namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;
enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Non-overlapping occurrences of a literal, left to right.
Ranges literal_matches(const std::string& s, const std::string& pat) {
  Ranges out;
  if (pat.empty()) return out;
  for (size_t k = s.find(pat); k != std::string::npos; k = s.find(pat, k + pat.size())) out.emplace_back(k, k + pat.size());
  return out;
}

// Cuts `p` at `matches` the way NormalizedString::split does for each delimiter behavior.
void split_piece(const Piece& p, const Ranges& matches, Behavior how, bool invert, std::vector<Piece>& out) {
  struct Seg {
    size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) segs.push_back({prev, b, invert});
    segs.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < p.text.size()) segs.push_back({prev, p.text.size(), invert});
  std::vector<Seg> keep;  // match now means "remove"
  bool prev_match = false;
  switch (how) {
    case Behavior::Isolated:
      for (auto s : segs) keep.push_back({s.b, s.e, false});
      break;
    case Behavior::Removed:
      keep = segs;
      break;
    case Behavior::Contiguous:
      for (auto s : segs) {
        if (!keep.empty() && s.match == prev_match) keep.back().e = s.e;
        else keep.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (auto s : segs) {
        if (s.match && !prev_match && !keep.empty()) keep.back().e = s.e;
        else keep.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      break;
    case Behavior::MergedWithNext:
      for (size_t i = segs.size(); i-- > 0;) {
        auto s = segs[i];
        if (s.match && !prev_match && !keep.empty()) keep.back().b = s.b;
        else keep.push_back({s.b, s.e, false});
        prev_match = s.match;
      }
      std::reverse(keep.begin(), keep.end());
      break;
  }
  for (auto s : keep)
    if (!s.match && s.e > s.b) out.push_back({p.text.substr(s.b, s.e - s.b), p.at_start && s.b == 0});
}

struct SequenceP : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  void split(std::vector<Piece>& pieces) const override {
    for (auto& p : parts) p->split(pieces);
  }
};

struct SplitP : PreTokenizer {
  std::optional<SplitRegex> regex;
  std::string literal;
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto& p : pieces)
      split_piece(p, regex ? regex_matches(*regex, p.text) : literal_matches(p.text, literal), behavior, invert, out);
    pieces = std::move(out);
  }
};

struct ByteLevelP : PreTokenizer {
  bool add_prefix_space = true, use_regex = true;
  ByteLevelMap map;
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto p : pieces) {
      if (add_prefix_space && p.text[0] != ' ') p.text.insert(0, " ");
      if (use_regex) split_piece(p, regex_matches(SplitRegex::Gpt2, p.text), Behavior::Isolated, false, out);
      else out.push_back(std::move(p));
    }
    for (auto& p : out) p.text = map.encode(p.text);
    pieces = std::move(out);
  }
};

struct MetaspaceP : PreTokenizer {
  std::string rep;
  PrependScheme prepend = PrependScheme::Always;
  bool split_on_rep = true;
  void split(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    for (auto p : pieces) {
      replace_all(p.text, " ", rep);
      bool starts = p.text.compare(0, rep.size(), rep) == 0;
      bool want = prepend == PrependScheme::Always || (prepend == PrependScheme::First && p.at_start);
      if (want && !starts) p.text.insert(0, rep);
      if (split_on_rep) {
        Ranges m = literal_matches(p.text, rep);
        split_piece(p, m, Behavior::MergedWithNext, false, out);
      } else {
        out.push_back(std::move(p));
      }
    }
    pieces = std::move(out);
  }
};

Behavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail("{}: unknown split behavior \"{}\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or "
       "Contiguous)", where, s);
}

}  // namespace

PrependScheme parse_prepend_scheme(const Json& j, const std::string& where) {
  std::string s = opt_str_field(j, "prepend_scheme", "always", where);
  PrependScheme p;
  if (s == "always") p = PrependScheme::Always;
  else if (s == "first") p = PrependScheme::First;
  else if (s == "never") p = PrependScheme::Never;
  else fail("{}: prepend_scheme \"{}\" should be always, first or never", where, s);
  if (!bool_field(j, "add_prefix_space", true, where)) {
    WATTMOE_REQUIRE(p == PrependScheme::Never || !j.contains("prepend_scheme"),
                    "{}: add_prefix_space false does not match prepend_scheme \"{}\"", where, s);
    p = PrependScheme::Never;
  }
  return p;
}

std::string metaspace_replacement(const Json& j, const std::string& where) {
  std::string rep = str_field(j, "replacement", where);
  WATTMOE_REQUIRE(!rep.empty(), "{}: Metaspace replacement should be one character, found an empty string", where);
  return rep;
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(j, where);
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceP>();
    const Json& list = field(j, "pretokenizers", where);
    WATTMOE_REQUIRE(list.is_array(), "{}: \"pretokenizers\" should be an array", where);
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = parse_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", where, i));
      if (p) seq->parts.push_back(std::move(p));
    }
    return seq;
  }
  if (type == "Split") {
    auto p = std::make_unique<SplitP>();
    const Json& pat = field(j, "pattern", where);
    if (pat.is_object() && pat.contains("Regex")) {
      const Json& r = pat["Regex"];
      WATTMOE_REQUIRE(r.is_string(), "{}: pattern.Regex should be a string", where);
      p->regex = known_split_regex(r.get<std::string>());
      WATTMOE_REQUIRE(p->regex, "{}: Split regex {} is not supported (only the GPT-2, Llama-3 and Qwen2 patterns are)",
                      where, r.dump());
    } else {
      p->literal = string_pattern(pat, where);
    }
    p->behavior = parse_behavior(str_field(j, "behavior", where), where);
    p->invert = bool_field(j, "invert", false, where);
    return p;
  }
  if (type == "ByteLevel") {
    auto p = std::make_unique<ByteLevelP>();
    p->add_prefix_space = bool_field(j, "add_prefix_space", true, where);
    p->use_regex = bool_field(j, "use_regex", true, where);
    return p;
  }
  if (type == "Metaspace") {
    auto p = std::make_unique<MetaspaceP>();
    p->rep = metaspace_replacement(j, where);
    p->prepend = parse_prepend_scheme(j, where);
    p->split_on_rep = bool_field(j, "split", true, where);
    return p;
  }
  fail("{}: pre_tokenizer type \"{}\" is not supported (supported: Sequence, Split, ByteLevel, Metaspace)", where,
       type);
}

}  // namespace wattmoe::hf
