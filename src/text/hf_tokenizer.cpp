// A Hugging Face tokenizer.json with a BPE model: added tokens -> normalizer -> pre-tokenizer -> BPE, and the
// decoder back. Mirrors `tokenizers` (checked against it by tests/text/tokenizer_parity_test.cpp).
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/json.h"
#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/hf_components.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace wattmoe {
namespace {

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(const Json& j, const std::string& path);

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  std::string describe() const override {
    return fmt::format("BPE tokenizer.json (vocab {}, {} added tokens) from {}", vocab_size_, added_.size(), path_);
  }

 private:
  const std::string* token_of(int32_t id) const;
  void find_bos_eos(const Json& j);

  std::string path_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<hf::Normalizer> normalizer_;
  std::unique_ptr<hf::PreTokenizer> pre_;
  std::unique_ptr<hf::Decoder> decoder_;
  std::vector<AddedToken> added_;                // by id order of the file
  std::unordered_map<int32_t, size_t> added_by_id_;
  std::set<std::string> special_contents_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;
  int32_t vocab_size_ = 0;
  std::optional<int32_t> bos_, eos_;
};

std::vector<std::pair<std::string, std::string>> parse_merges(const Json& m, const std::string& where) {
  WATTMOE_REQUIRE(m.is_array(), "{}: \"merges\" should be an array, found {}", where, m.type_name());
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const Json& e = m[i];
    if (e.is_string()) {  // legacy "a b"
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      WATTMOE_REQUIRE(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                      "{}: merges[{}] \"{}\" should be two tokens separated by one space", where, i, s);
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      WATTMOE_REQUIRE(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(),
                      "{}: merges[{}] should be \"a b\" or [\"a\", \"b\"], found {}", where, i, e.dump());
      out.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    }
  }
  return out;
}

std::unique_ptr<BpeModel> parse_model(const Json& j, const std::string& where) {
  WATTMOE_REQUIRE(j.is_object(), "{}: expected an object, found {}", where, j.type_name());
  std::string type = hf::opt_str_field(j, "type", "BPE", where);  // old files have no type tag
  WATTMOE_REQUIRE(type == "BPE", "{}: model type \"{}\" is not supported (only BPE is)", where, type);
  const Json& v = hf::field(j, "vocab", where);
  WATTMOE_REQUIRE(v.is_object(), "{}: \"vocab\" should be an object of token -> id, found {}", where, v.type_name());
  TokenIdMap vocab;
  vocab.reserve(v.size());
  for (auto it = v.begin(); it != v.end(); ++it) {
    WATTMOE_REQUIRE(it.value().is_number_integer(), "{}: vocab id of '{}' should be an integer, found {}", where,
                    it.key(), it.value().dump());
    int64_t id = it.value().get<int64_t>();
    WATTMOE_REQUIRE(id >= 0 && id < (int64_t(1) << 31), "{}: vocab id {} of '{}' is out of range", where, id, it.key());
    vocab.emplace(it.key(), int32_t(id));
  }
  auto merges = parse_merges(hf::field(j, "merges", where), where);
  if (j.contains("dropout") && !j["dropout"].is_null()) {
    WATTMOE_REQUIRE(j["dropout"].is_number() && j["dropout"].get<double>() == 0.0,
                    "{}: BPE dropout {} is not supported (encoding must be deterministic)", where, j["dropout"].dump());
  }
  BpeOptions opt;
  auto opt_str = [&](const char* k) -> std::optional<std::string> {
    std::string s = hf::opt_str_field(j, k, "\x01", where);
    return s == "\x01" ? std::nullopt : std::optional<std::string>(s);
  };
  opt.unk_token = opt_str("unk_token");
  opt.continuing_subword_prefix = opt_str("continuing_subword_prefix");
  opt.end_of_word_suffix = opt_str("end_of_word_suffix");
  opt.fuse_unk = hf::bool_field(j, "fuse_unk", false, where);
  opt.byte_fallback = hf::bool_field(j, "byte_fallback", false, where);
  opt.ignore_merges = hf::bool_field(j, "ignore_merges", false, where);
  return std::make_unique<BpeModel>(std::move(vocab), merges, std::move(opt), where);
}

HfTokenizer::HfTokenizer(const Json& j, const std::string& path) : path_(path) {
  WATTMOE_REQUIRE(j.is_object(), "{}: expected a tokenizer.json object at the top level, found {}", path, j.type_name());
  WATTMOE_REQUIRE(j.contains("model"), "{}: missing field \"model\" (is this a Hugging Face tokenizer.json?)", path);
  model_ = parse_model(j["model"], path + ": model");
  auto get = [&](const char* k) -> const Json& {
    static const Json null_json;  // immutable; stands for an absent stage
    return j.contains(k) ? j[k] : null_json;
  };
  normalizer_ = hf::parse_normalizer(get("normalizer"), path + ": normalizer");
  pre_ = hf::parse_pre_tokenizer(get("pre_tokenizer"), path + ": pre_tokenizer");
  decoder_ = hf::parse_decoder(get("decoder"), path + ": decoder");

  vocab_size_ = model_->max_id() + 1;
  std::vector<AddedToken> raw, normalized;
  const Json& added = get("added_tokens");
  WATTMOE_REQUIRE(added.is_null() || added.is_array(), "{}: \"added_tokens\" should be an array", path);
  for (size_t i = 0; i < added.size(); ++i) {
    std::string where = fmt::format("{}: added_tokens[{}]", path, i);
    const Json& a = added[i];
    AddedToken t;
    t.content = hf::str_field(a, "content", where);
    int64_t id = hf::int_field(a, "id", -1, where);
    WATTMOE_REQUIRE(id >= 0 && id < (int64_t(1) << 31), "{}: \"id\" should be a non-negative integer", where);
    t.id = int32_t(id);
    t.special = hf::bool_field(a, "special", false, where);
    t.single_word = hf::bool_field(a, "single_word", false, where);
    t.lstrip = hf::bool_field(a, "lstrip", false, where);
    t.rstrip = hf::bool_field(a, "rstrip", false, where);
    t.normalized = hf::bool_field(a, "normalized", !t.special, where);
    WATTMOE_REQUIRE(!added_by_id_.count(t.id), "{}: id {} is used by two added tokens", where, t.id);
    if (auto mid = model_->token_to_id(t.content); mid && *mid != t.id)
      fail("{}: '{}' has id {} but the model's vocab gives it id {}", where, t.content, t.id, *mid);
    added_by_id_[t.id] = added_.size();
    added_.push_back(t);
    if (t.special) special_contents_.insert(t.content);
    vocab_size_ = std::max(vocab_size_, t.id + 1);
    if (t.normalized) {
      if (normalizer_) normalizer_->normalize(t.content);  // matched against normalized text
      normalized.push_back(t);
    } else {
      raw.push_back(t);
    }
  }
  const int64_t unused_ids = int64_t(vocab_size_) - int64_t(model_->size() + added_.size());
  WATTMOE_REQUIRE(unused_ids <= kMaxUnusedVocabIds, "{}: token ids are sparse: {} ids for {} vocab and {} added tokens "
                  "(at most {} unused)", path, vocab_size_, model_->size(), added_.size(), kMaxUnusedVocabIds);
  raw_matcher_ = AddedTokenMatcher(std::move(raw));
  normalized_matcher_ = AddedTokenMatcher(std::move(normalized));
  find_bos_eos(j);
}

// BOS / EOS from the post-processor's template (special tokens before / after $A), else from common names.
void HfTokenizer::find_bos_eos(const Json& j) {
  auto template_ids = [&](const Json& pp) {
    if (!pp.is_object() || pp.value("type", "") != "TemplateProcessing") return;
    const Json& single = pp.value("single", Json());
    const Json& specials = pp.value("special_tokens", Json());
    if (!single.is_array() || !specials.is_object()) return;
    bool seen_seq = false;
    for (const Json& piece : single) {
      if (piece.contains("Sequence")) seen_seq = true;
      if (!piece.contains("SpecialToken")) continue;
      std::string name = piece["SpecialToken"].value("id", "");
      auto id = token_to_id(name);
      if (!id) continue;
      (seen_seq ? eos_ : bos_) = *id;
    }
  };
  const Json& pp = j.contains("post_processor") ? j["post_processor"] : Json();
  if (pp.is_object() && pp.value("type", "") == "Sequence" && pp.contains("processors") && pp["processors"].is_array())
    for (const Json& p : pp["processors"]) template_ids(p);
  else
    template_ids(pp);
  auto by_name = [&](std::initializer_list<const char*> names) -> std::optional<int32_t> {
    for (const char* n : names)
      if (special_contents_.count(n)) return token_to_id(n);
    return std::nullopt;
  };
  if (!bos_) bos_ = by_name({"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>"});
  if (!eos_) eos_ = by_name({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"});
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  for (auto& t : added_)
    if (t.content == token) return t.id;
  return model_->token_to_id(token);
}

const std::string* HfTokenizer::token_of(int32_t id) const {
  if (auto it = added_by_id_.find(id); it != added_by_id_.end()) return &added_[it->second].content;
  return model_->id_to_token(id);
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  const std::string* t = token_of(id);
  WATTMOE_REQUIRE(t, "{}: no token has id {} (vocab size {})", path_, id, vocab_size_);
  return *t;
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  if (size_t bad = utf8::find_invalid(text); bad != std::string_view::npos)
    fail("{}: cannot encode text that is not valid UTF-8 (bad byte 0x{:02X} at offset {})", path_,
         (unsigned)(unsigned char)text[bad], bad);
  std::vector<int32_t> ids;
  std::vector<hf::Piece> pieces;
  for (const TextSpan& seg : raw_matcher_.split(text)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string s(text.substr(seg.begin, seg.end - seg.begin));
    if (normalizer_) normalizer_->normalize(s);
    for (const TextSpan& sub : normalized_matcher_.split(s)) {
      if (sub.id >= 0) {
        ids.push_back(sub.id);
        continue;
      }
      pieces.assign(1, hf::Piece{s.substr(sub.begin, sub.end - sub.begin), seg.begin == 0 && sub.begin == 0});
      if (pre_) pre_->split(pieces);
      for (auto& p : pieces) model_->tokenize(p.text, ids);
    }
  }
  return ids;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string* t = token_of(ids[i]);
    WATTMOE_REQUIRE(t, "{}: cannot decode id {} at position {}: no token has it (vocab size {})", path_, ids[i], i,
                    vocab_size_);
    if (skip_special && special_contents_.count(*t)) continue;
    tokens.push_back(*t);
  }
  if (!decoder_) {  // upstream joins with spaces when there is no decoder
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder_->decode_chain(tokens);
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path_in) {
  std::string path = path_in;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) path = (std::filesystem::path(path) / "tokenizer.json").string();
  WATTMOE_REQUIRE(std::filesystem::exists(path, ec), "tokenizer file {} does not exist (expected a tokenizer.json or a directory "
                  "holding one)", path);
  return parse_tokenizer_json(read_text_file(path), path);
}

std::unique_ptr<Tokenizer> parse_tokenizer_json(std::string_view text, const std::string& path) {
  const Json j = parse_json(text, path);
  try {
    return std::make_unique<HfTokenizer>(j, path);
  } catch (const Json::exception& e) {  // a field of an unexpected type that the checks above missed
    fail("{}: malformed tokenizer.json: {}", path, e.what());
  }
}

}  // namespace wattmoe
