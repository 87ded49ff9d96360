#include "core/error.h"
#include "text/tokenizer.h"

namespace wattmoe {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = (unsigned char)text[i];
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids, bool) const {
  std::string bytes(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    WATTMOE_REQUIRE(ids[i] >= 0 && ids[i] < 256, "byte tokenizer: id {} at position {} is not a byte (0..255)", ids[i], i);
    bytes[i] = char(ids[i]);
  }
  return bytes;
}

std::optional<int32_t> ByteTokenizer::token_to_id(std::string_view token) const {
  if (token.size() != 1) return std::nullopt;
  return (unsigned char)token[0];
}

std::string ByteTokenizer::id_to_token(int32_t id) const {
  WATTMOE_REQUIRE(id >= 0 && id < 256, "byte tokenizer: id {} is not a byte (0..255)", id);
  return std::string(1, char(id));
}

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec) {
  if (spec == "bytes") return std::make_unique<ByteTokenizer>();
  return load_tokenizer(spec);
}

}  // namespace wattmoe
