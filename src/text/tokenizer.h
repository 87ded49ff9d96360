// Tokenizers: text <-> token ids. One interface for the byte tokenizer (our own small models) and Hugging Face
// tokenizer.json BPE files (Mixtral, OLMoE, Qwen2-MoE, ...).
//
// encode() gives the ids of the text alone: no BOS/EOS are added (a post-processor's template is not applied);
// callers that want them prepend bos_id() / append eos_id(). Added tokens written in the text ("<|endoftext|>")
// are recognised and map to their ids, as in `tokenizers`' encode(text, add_special_tokens=False).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wattmoe {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Throws Error for an id outside the vocabulary. skip_special drops special tokens (bos, eos, ...).
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;
  virtual int32_t vocab_size() const = 0;  // one more than the largest id
  virtual std::optional<int32_t> bos_id() const { return std::nullopt; }
  virtual std::optional<int32_t> eos_id() const { return std::nullopt; }
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;  // the raw vocabulary string; Error if out of range
  virtual std::string describe() const = 0;                // one line for logs: kind, vocab size, source
};

// Id = byte value, vocab 256, no special tokens. decode() is the exact inverse of encode(): it returns the raw
// bytes, valid UTF-8 or not (a byte model may emit a partial character).
class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const override;
  int32_t vocab_size() const override { return 256; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  std::string describe() const override { return "bytes (vocab 256)"; }
};

// Loads a Hugging Face tokenizer.json (BPE model), or `dir/tokenizer.json` when `path` is a directory. Every
// problem (unreadable, not JSON, unsupported model or component, a merge naming an unknown token) is an Error
// naming the file and what was expected.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);
// The same on the text of a tokenizer.json; `path` names it in errors (fuzz/tokenizer_fuzz.cpp).
std::unique_ptr<Tokenizer> parse_tokenizer_json(std::string_view text, const std::string& path);

// "bytes" gives a ByteTokenizer; anything else is a path for load_tokenizer.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec);

// The tokenizer that goes with a checkpoint directory (what every command and the Python package use): `spec` if
// given ("bytes" or a tokenizer.json path); else DIR/tokenizer.json when present; else bytes. Error when the
// tokenizer's vocabulary is larger than the model's (model_vocab).
std::unique_ptr<Tokenizer> model_tokenizer(const std::string& model_dir, const std::string& spec, int model_vocab);

}  // namespace wattmoe
