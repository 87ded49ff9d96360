// Every way parse_safetensors_header must refuse a header, each with the phrase its message must contain.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "io_test_util.h"

namespace wattmoe {
namespace {

using test::expect_error;
using test::st_bytes;

SafetensorsHeader parse(const std::string& bytes) {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), bytes.size(),
                                  "bad.safetensors");
}

struct BadCase {
  const char* label;
  std::string bytes;
  const char* phrase;
};

std::string one(const std::string& entry, size_t data = 8) {
  return st_bytes("{\"a\":" + entry + "}", data);
}

TEST(SafetensorsHeader, RejectsEveryBadInput) {
  const BadCase cases[] = {
      {"empty", "", "file is 0 bytes, shorter than the 8-byte header length"},
      {"short", "abcde", "shorter than the 8-byte header length"},
      {"absurd length", st_bytes("{}", 0, 200'000'000), "is absurd"},
      {"length past end", st_bytes("{}", 0, 3), "goes beyond the end of the file"},
      {"huge length", st_bytes("{}", 0, ~0ull - 1), "is absurd"},
      {"not json", st_bytes("{\"a\": tru}"), "not valid JSON"},
      {"truncated json", st_bytes("{\"a\": {"), "not valid JSON"},
      {"not utf8", st_bytes("{\"\xff\": 1}"), "not valid JSON"},
      {"array", st_bytes("[1, 2]"), "must be a JSON object, got array"},
      {"string", st_bytes("\"x\""), "must be a JSON object, got string"},
      {"entry not object", one("1"), "tensor 'a': entry must be an object, got an integer"},
      {"no dtype", one(R"({"shape":[2],"data_offsets":[0,8]})"), "tensor 'a': missing \"dtype\""},
      {"no shape", one(R"({"dtype":"F32","data_offsets":[0,8]})"), "missing \"shape\""},
      {"no offsets", one(R"({"dtype":"F32","shape":[2]})"), "missing \"data_offsets\""},
      {"dtype type", one(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})"), "dtype must be a string"},
      {"unknown dtype", one(R"({"dtype":"F7","shape":[2],"data_offsets":[0,8]})"), "unknown dtype 'F7'"},
      {"shape type", one(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"), "shape must be an array"},
      {"dim float", one(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), "shape must hold integers"},
      {"dim string", one(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"),
       "shape must hold integers"},
      {"negative dim", one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"),
       "shape has a negative value"},
      {"dim too large", one(R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8]})"),
       "shape value 18446744073709551615 is too large"},
      {"numel overflow", one(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]})"),
       "overflows"},
      {"bytes overflow", one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})"),
       "overflows"},
      {"overflow before zero",
       one(R"({"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})"), "overflows"},
      {"offsets type", one(R"({"dtype":"F32","shape":[2],"data_offsets":8})"),
       "data_offsets must be [begin, end]"},
      {"offsets arity", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4,8]})"),
       "data_offsets must be [begin, end], got 3 values"},
      {"offset negative", one(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"),
       "data_offsets has a negative value"},
      {"offset float", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})"),
       "data_offsets must hold integers"},
      {"begin after end", one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), "has begin > end"},
      {"size mismatch", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"),
       "span 4 bytes but F32 [2] needs 8 bytes"},
      {"past data", one(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})"),
       "go beyond the data section"},
      {"past data huge", one(R"({"dtype":"U8","shape":[8],"data_offsets":[18446744073709551608,0]})"),
       "too large"},
      {"overlap",
       st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                16),
       "tensors 'a' [0, 8] and 'b' [4, 12] have overlapping byte ranges"},
      {"same range",
       st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                4),
       "overlapping byte ranges"},
      {"duplicate name",
       st_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                2),
       "names 'a' twice"},
      // The reference reader's rules: contiguous tensors from byte 0, nothing after the last, spaces as padding.
      {"gap", st_bytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})", 6),
       "tensor 'b' starts at data byte 4 but the tensors before it end at 2: a gap"},
      {"gap at start", one(R"({"dtype":"U8","shape":[4],"data_offsets":[4,8]})"), "starts at data byte 4"},
      {"zero size inside", st_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                    R"("z":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})", 4),
       "overlapping byte ranges"},
      {"trailing bytes", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 12),
       "4 bytes after the last tensor"},
      {"garbage padding", st_bytes("{}  xx"), "not valid JSON"},
      {"newline padding", st_bytes("{} \n "), "padded only with spaces (0x20)"},
      {"nul padding", st_bytes(std::string("{}\0\0", 4)), "padded only with spaces (0x20)"},
      {"leading space", st_bytes(" {}"), "must start with '{'"},
      {"metadata type", st_bytes(R"({"__metadata__":[1]})"),
       "__metadata__ must be an object of string to string"},
      {"metadata value", st_bytes(R"({"__metadata__":{"k":1}})"),
       "__metadata__ must be an object of string to string; 'k' is an integer"},
      {"metadata null", st_bytes(R"({"__metadata__":{"k":null}})"), "'k' is null"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    expect_error([&] { parse(c.bytes); }, "bad.safetensors: ", c.phrase);
  }
}

TEST(SafetensorsHeader, NamesWithControlBytesStayOnOneLine) {
  expect_error([&] { parse(st_bytes("{\"a\\nb\": 1}")); }, "bad.safetensors: ", "tensor 'a\\x0ab'");
}

TEST(SafetensorsHeader, AcceptsEmptyZeroSizeAndPadding) {
  auto h = parse(st_bytes("{}"));
  EXPECT_TRUE(h.tensors.empty());
  EXPECT_EQ(h.data_start, 10u);

  // Contiguous tensors in any header order, zero-size ones at a boundary, trailing spaces, a scalar, unknown keys.
  h = parse(st_bytes(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[2,10]},)"
                     R"("a":{"dtype":"BF16","shape":[],"data_offsets":[0,2],"extra":1},)"
                     R"("z":{"dtype":"I64","shape":[3,0],"data_offsets":[10,10]},)"
                     R"("__metadata__":{"format":"pt"}}    )",
                     10));
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "a");  // sorted by begin
  EXPECT_EQ(h.tensors[0].shape, Shape{});
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[2].name, "z");
  EXPECT_EQ(h.tensors[2].shape, (Shape{3, 0}));
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

TEST(SafetensorsHeader, NeedsTheHeaderBytes) {
  std::string b = st_bytes("{}");
  expect_error(
      [&] {
        parse_safetensors_header(reinterpret_cast<const uint8_t*>(b.data()), 9, b.size(), "part.safetensors");
      },
      "part.safetensors: ", "only 9 bytes were read");
}

}  // namespace
}  // namespace wattmoe
