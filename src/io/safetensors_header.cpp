// parse_safetensors_header: the validation that stands between an untrusted file and a pointer into it.
// Everything after this function trusts the offsets, so every field is checked here (and fuzzed).
#include <algorithm>
#include <limits>
#include <set>

#include "io/json.h"
#include "io/safetensors.h"

namespace wattmoe {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // what HF's reader accepts
constexpr size_t kMaxQuotedChars = 200;            // keeps error messages one short line

// A JSON value's type as a word for error messages.
const char* type_word(const Json& j) {
  if (j.is_number_integer()) return "an integer";
  if (j.is_number_float()) return "a float";
  return j.type_name();
}

// A name from the file, printable in a one-line message (control bytes escaped, long names cut).
std::string quote_name(const std::string& s) {
  std::string r = "'";
  for (size_t i = 0; i < s.size() && i < kMaxQuotedChars; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    r += (c < 0x20 || c == 0x7f) ? fmt::format("\\x{:02x}", c) : std::string(1, char(c));
  }
  return r + (s.size() > kMaxQuotedChars ? "...'" : "'");
}

// Parses the JSON text; duplicate top-level keys are an error (nlohmann would keep the last silently).
Json parse_json(const uint8_t* p, size_t n, const std::string& what) {
  std::set<std::string> seen;
  std::string dup;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t ev, Json& parsed) {
    if (ev == Json::parse_event_t::key && depth == 1 && parsed.is_string() && dup.empty() &&
        !seen.insert(parsed.get<std::string>()).second)
      dup = parsed.get<std::string>();
    return true;
  };
  Json j;
  check_json_depth(std::string_view(reinterpret_cast<const char*>(p), n), what);
  try {
    j = Json::parse(p, p + n, cb);
  } catch (const Json::exception& e) {
    std::string msg = e.what();
    if (msg.size() > 300) msg = msg.substr(0, 300) + "...";
    fail("{}: safetensors header is not valid JSON: {}", what, msg);
  }
  WATTMOE_REQUIRE(dup.empty(), "{}: safetensors header names {} twice", what, quote_name(dup));
  return j;
}

void parse_metadata(const Json& j, const std::string& what, std::map<std::string, std::string>* out) {
  WATTMOE_REQUIRE(j.is_object(), "{}: __metadata__ must be an object of string to string, got {}", what,
                  type_word(j));
  for (const auto& [k, v] : j.items()) {
    WATTMOE_REQUIRE(v.is_string(), "{}: __metadata__ must be an object of string to string; {} is {}", what,
                    quote_name(k), type_word(v));
    (*out)[k] = v.get<std::string>();
  }
}

// Reads a non-negative integer that fits in int64 (dims, offsets); `field` names it in errors.
uint64_t get_count(const Json& v, const std::string& what, const std::string& name, const char* field) {
  WATTMOE_REQUIRE(v.is_number_integer(), "{}: tensor {}: {} must hold integers, got {}", what,
                  quote_name(name), field, type_word(v));
  WATTMOE_REQUIRE(v.is_number_unsigned() || v.get<int64_t>() >= 0,
                  "{}: tensor {}: {} has a negative value {}", what, quote_name(name), field,
                  v.get<int64_t>());
  uint64_t u = v.get<uint64_t>();
  WATTMOE_REQUIRE(u <= uint64_t(std::numeric_limits<int64_t>::max()),
                  "{}: tensor {}: {} value {} is too large", what, quote_name(name), field, u);
  return u;
}

TensorInfo parse_tensor(const std::string& name, const Json& j, uint64_t data_size, const std::string& what) {
  auto q = quote_name(name);
  WATTMOE_REQUIRE(j.is_object(), "{}: tensor {}: entry must be an object, got {}", what, q, type_word(j));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    WATTMOE_REQUIRE(j.contains(key), "{}: tensor {}: missing \"{}\"", what, q, key);
  TensorInfo t;
  t.name = name;

  const Json& dt = j["dtype"];
  WATTMOE_REQUIRE(dt.is_string(), "{}: tensor {}: dtype must be a string, got {}", what, q, type_word(dt));
  WATTMOE_REQUIRE(dtype_from_name(dt.get_ref<const std::string&>(), &t.dtype),
                  "{}: tensor {}: unknown dtype {}", what, q, quote_name(dt.get<std::string>()));

  // numel * dtype_size must fit in uint64, and so must the product of the nonzero dims in int64: otherwise
  // shape_numel() (int64) would overflow on its way to a zero.
  const Json& sh = j["shape"];
  WATTMOE_REQUIRE(sh.is_array(), "{}: tensor {}: shape must be an array, got {}", what, q, type_word(sh));
  uint64_t numel = 1, nonzero = 1;
  bool overflow = false;
  for (const Json& d : sh) {
    uint64_t u = get_count(d, what, name, "shape");
    t.shape.push_back(int64_t(u));
    overflow |= __builtin_mul_overflow(numel, u, &numel);
    overflow |= __builtin_mul_overflow(nonzero, std::max<uint64_t>(u, 1), &nonzero);
  }
  uint64_t nbytes = 0;
  overflow |= nonzero > uint64_t(std::numeric_limits<int64_t>::max());
  overflow |= __builtin_mul_overflow(numel, uint64_t(dtype_size(t.dtype)), &nbytes);
  WATTMOE_REQUIRE(!overflow, "{}: tensor {}: shape {} overflows (too many elements)", what, q,
                  shape_str(t.shape));

  const Json& off = j["data_offsets"];
  WATTMOE_REQUIRE(off.is_array() && off.size() == 2,
                  "{}: tensor {}: data_offsets must be [begin, end], got {}", what, q,
                  off.is_array() ? fmt::format("{} values", off.size()) : type_word(off));
  t.begin = get_count(off[0], what, name, "data_offsets");
  t.end = get_count(off[1], what, name, "data_offsets");
  WATTMOE_REQUIRE(t.begin <= t.end, "{}: tensor {}: data_offsets [{}, {}] has begin > end", what, q, t.begin,
                  t.end);
  WATTMOE_REQUIRE(t.end - t.begin == nbytes,
                  "{}: tensor {}: data_offsets [{}, {}] span {} bytes but {} {} needs {} bytes", what, q,
                  t.begin, t.end, t.end - t.begin, dtype_name(t.dtype), shape_str(t.shape), nbytes);
  WATTMOE_REQUIRE(
      t.end <= data_size,
      "{}: tensor {}: data_offsets [{}, {}] go beyond the data section ({} bytes; file truncated?)", what, q,
      t.begin, t.end, data_size);
  return t;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, uint64_t file_size,
                                           const std::string& what) {
  WATTMOE_REQUIRE(size <= file_size, "{}: {} header bytes given for a {}-byte file", what, size, file_size);
  WATTMOE_REQUIRE(size >= 8,
                  "{}: file is {} bytes, shorter than the 8-byte header length of a safetensors file", what,
                  size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];  // little-endian on any host
  WATTMOE_REQUIRE(n <= kMaxHeaderBytes,
                  "{}: header length {} is absurd (more than {} bytes); not a safetensors file?", what, n,
                  kMaxHeaderBytes);
  WATTMOE_REQUIRE(8 + n <= file_size, "{}: header length {} goes beyond the end of the file ({} bytes)", what,
                  n, file_size);
  WATTMOE_REQUIRE(8 + n <= size, "{}: header length {} but only {} bytes were read", what, n, size);

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t data_size = file_size - h.data_start;
  size_t json_n = size_t(n);
  while (json_n > 0 && data[8 + json_n - 1] == ' ') --json_n;  // padding: spaces only (0x20)
  Json j = parse_json(data + 8, json_n, what);
  WATTMOE_REQUIRE(j.is_object(), "{}: safetensors header must be a JSON object, got {}", what, type_word(j));
  WATTMOE_REQUIRE(data[8] == '{' && data[8 + json_n - 1] == '}',
                  "{}: safetensors header must start with '{{' and be padded only with spaces (0x20), as the reference "
                  "reader requires", what);
  for (const auto& [name, entry] : j.items()) {
    if (name == "__metadata__") {
      parse_metadata(entry, what, &h.metadata);
    } else {
      h.tensors.push_back(parse_tensor(name, entry, data_size, what));
    }
  }

  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end != b.end ? a.end < b.end : a.name < b.name;
  });
  // The reference reader's rule: sorted by offsets, the tensors tile the data section from byte 0 to its end —
  // no gap, no overlap, no trailing bytes (zero-size tensors sit at a boundary).
  uint64_t end = 0;
  const TensorInfo* last = nullptr;
  for (const TensorInfo& t : h.tensors) {
    WATTMOE_REQUIRE(t.begin >= end, "{}: tensors {} [{}, {}] and {} [{}, {}] have overlapping byte ranges", what,
                    quote_name(last->name), last->begin, last->end, quote_name(t.name), t.begin, t.end);
    WATTMOE_REQUIRE(t.begin == end,
                    "{}: tensor {} starts at data byte {} but the tensors before it end at {}: a gap (safetensors "
                    "tensors must be contiguous)", what, quote_name(t.name), t.begin, end);
    end = t.end;
    last = &t;
  }
  WATTMOE_REQUIRE(end == data_size,
                  "{}: {} bytes after the last tensor (the data section is {} bytes, the tensors cover {}): "
                  "trailing bytes are not allowed", what, data_size - end, data_size, end);
  return h;
}

}  // namespace wattmoe
