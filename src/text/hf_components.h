// The pieces of a Hugging Face tokenizer.json pipeline that BPE models use, parsed from their JSON:
//   normalizer (whole-text rewrite) -> pre-tokenizer (split into pieces) -> model -> ... -> decoder (ids to text).
// Supported: normalizers Sequence, Prepend, Replace (String pattern), NFC, Strip, ByteLevel; pre-tokenizers
// Sequence, ByteLevel, Split (String pattern or the GPT-2 / Llama-3 / Qwen2 regex), Metaspace; decoders
// Sequence, ByteLevel, Metaspace, Replace (String pattern), ByteFallback, Fuse, Strip. Anything else is an Error
// naming the file and the component, never a silent fallback.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/json.h"

namespace wattmoe::hf {

struct Normalizer {
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
};

// A pre-tokenized piece; `at_start` is true for the piece that begins at offset 0 of the original text (what
// Metaspace's prepend_scheme "first" looks at).
struct Piece {
  std::string text;
  bool at_start = false;
};

struct PreTokenizer {
  virtual ~PreTokenizer() = default;
  virtual void split(std::vector<Piece>& pieces) const = 0;  // replaces pieces; never yields empty ones
};

struct Decoder {
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// `where` names the file and the field for error messages ("x/tokenizer.json: normalizer"). A JSON null gives
// nullptr (no such stage).
std::unique_ptr<Normalizer> parse_normalizer(const Json& j, const std::string& where);
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Json& j, const std::string& where);
std::unique_ptr<Decoder> parse_decoder(const Json& j, const std::string& where);

// Checked field access: an Error that names `where`, the key and the expected type.
const Json& field(const Json& j, const char* key, const std::string& where);
std::string str_field(const Json& j, const char* key, const std::string& where);
std::string opt_str_field(const Json& j, const char* key, const std::string& def, const std::string& where);
bool bool_field(const Json& j, const char* key, bool def, const std::string& where);
int64_t int_field(const Json& j, const char* key, int64_t def, const std::string& where);
std::string type_of(const Json& j, const std::string& where);  // the "type" tag of a component

// Metaspace's options, shared by the pre-tokenizer and the decoder. "add_prefix_space": false (the older
// spelling) means never.
enum class PrependScheme { Always, First, Never };
PrependScheme parse_prepend_scheme(const Json& j, const std::string& where);
std::string metaspace_replacement(const Json& j, const std::string& where);

// {"String": "x"} -> "x"; a {"Regex": ...} pattern is an Error naming `where`.
std::string string_pattern(const Json& pattern, const std::string& where);
void replace_all(std::string& s, const std::string& from, const std::string& to);

}  // namespace wattmoe::hf
