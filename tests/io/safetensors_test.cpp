// SafetensorsFile (mmap read) and write_safetensors: round trips, zero-copy views, a file written by Python.
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "io_test_util.h"

namespace wattmoe {
namespace {

using test::expect_error;
using test::st_bytes;
using test::TempDir;

constexpr DType kAllDTypes[] = {DType::F64, DType::F32,  DType::F16,     DType::BF16,
                                DType::I64, DType::I32,  DType::I16,     DType::I8,
                                DType::U8,  DType::BOOL, DType::F8_E4M3, DType::F8_E5M2};

// A tensor whose bytes are a pattern that differs per tensor (BOOL gets 0/1 only).
Tensor patterned(DType t, Shape shape, int seed) {
  Tensor r = Tensor::zeros(t, std::move(shape));
  auto* p = static_cast<uint8_t*>(r.raw());
  for (size_t i = 0; i < r.nbytes(); ++i)
    p[i] = t == DType::BOOL ? (i + seed) % 2 : uint8_t(i * 31 + seed * 7 + 1);
  return r;
}

void expect_same(const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.dtype(), want.dtype());
  ASSERT_EQ(got.shape(), want.shape());
  ASSERT_EQ(got.nbytes(), want.nbytes());
  if (want.nbytes()) {
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0);
  }
}

TEST(SafetensorsWrite, RoundTripsEveryDTypeAndShape) {
  TempDir dir;
  const Shape shapes[] = {{}, {0}, {3}, {2, 3, 1}, {0, 5}, {7}};
  std::vector<std::pair<std::string, Tensor>> ts;
  int seed = 0;
  for (DType t : kAllDTypes)
    for (const Shape& s : shapes)
      ts.emplace_back(fmt::format("{}.{}", dtype_name(t), shape_str(s)), patterned(t, s, seed++));
  const std::string path = dir.file("all.safetensors");
  write_safetensors(path, ts, {{"format", "pt"}, {"note", "ünïcode ✓"}});
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0) << "temporary file left behind";

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"note", "ünïcode ✓"}}));
  ASSERT_EQ(f.tensors().size(), ts.size());
  uint64_t expected_begin = 0;
  for (size_t i = 0; i < ts.size(); ++i) {  // data laid out in the given order, without gaps
    SCOPED_TRACE(ts[i].first);
    ASSERT_TRUE(f.has(ts[i].first));
    EXPECT_EQ(f.info(ts[i].first).begin, expected_begin);
    expected_begin += ts[i].second.nbytes();
    expect_same(f.get(ts[i].first), ts[i].second);
  }
  EXPECT_EQ(f.tensors().back().end, expected_begin);
}

TEST(SafetensorsWrite, HeaderIsPaddedToEightBytes) {
  TempDir dir;
  for (int len = 1; len <= 9; ++len) {  // names of varying length move the header size through every residue
    std::string path = dir.file("p.safetensors");
    write_safetensors(path, {{std::string(size_t(len), 'x'), patterned(DType::F64, {2}, len)}});
    auto f = SafetensorsFile::open(path);
    auto t = f.get(std::string(size_t(len), 'x'));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 8, 0u);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ((st.st_size - 16) % 8, 0);
  }
}

TEST(SafetensorsFile, ViewIsZeroCopyAndOutlivesTheFile) {
  TempDir dir;
  const std::string path = dir.file("v.safetensors");
  auto want = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  write_safetensors(path, {{"w", want}});
  Tensor a, b;
  {
    auto f = SafetensorsFile::open(path);
    a = f.get("w");
    b = f.get("w");
  }
  EXPECT_EQ(a.raw(), b.raw());  // both point into the one mapping
  ::unlink(path.c_str());       // the mapping survives the name
  EXPECT_EQ(a.to_f32_vector(), want.to_f32_vector());
}

TEST(SafetensorsFile, MisalignedDataIsCopied) {
  TempDir dir;
  // Pad the header so the data section starts at 1 mod 4: the F32 tensor cannot be viewed in place.
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while ((8 + header.size()) % 4 != 1) header += ' ';
  float vals[2] = {1.5f, -7.25f};
  std::string bytes = st_bytes(header) + std::string(reinterpret_cast<const char*>(vals), 8);
  const std::string path = dir.file("odd.safetensors");
  test::write_bytes(path, bytes);
  auto t = SafetensorsFile::open(path).get("a");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
  EXPECT_EQ(t.to_f32_vector(), (std::vector<float>{1.5f, -7.25f}));
}

TEST(SafetensorsFile, OpenErrorsNameThePath) {
  TempDir dir;
  expect_error([&] { SafetensorsFile::open(dir.file("none.safetensors")); },
               dir.file("none.safetensors") + ": ",
               "cannot open safetensors file (No such file or directory)");
  expect_error([&] { SafetensorsFile::open(dir.path()); }, dir.path() + ": ", "not a regular file");
  test::write_bytes(dir.file("empty.safetensors"), "");
  expect_error([&] { SafetensorsFile::open(dir.file("empty.safetensors")); },
               dir.file("empty.safetensors") + ": ", "file is empty");
  test::write_bytes(dir.file("short.safetensors"), "abc");
  expect_error([&] { SafetensorsFile::open(dir.file("short.safetensors")); },
               dir.file("short.safetensors") + ": ", "shorter than the 8-byte header length");
  test::write_bytes(dir.file("trunc.safetensors"),
                    st_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  expect_error([&] { SafetensorsFile::open(dir.file("trunc.safetensors")); },
               dir.file("trunc.safetensors") + ": ", "go beyond the data section");
  write_safetensors(dir.file("ok.safetensors"), {{"a", Tensor::zeros(DType::F32, {1})}});
  expect_error([&] { SafetensorsFile::open(dir.file("ok.safetensors")).get("b"); },
               dir.file("ok.safetensors") + ": ", "no tensor named 'b'");
  if (::geteuid() != 0) {  // root reads anything
    ::chmod(dir.file("ok.safetensors").c_str(), 0);
    expect_error([&] { SafetensorsFile::open(dir.file("ok.safetensors")); },
                 dir.file("ok.safetensors") + ": ", "Permission denied");
  }
}

TEST(SafetensorsWrite, ErrorsNameThePath) {
  TempDir dir;
  const std::string bad_dir = dir.file("no/such/dir/x.safetensors");
  expect_error(
      [&] {
        write_safetensors(bad_dir, {{"a", Tensor::zeros(DType::F32, {1})}});
      },
      bad_dir + ": ", "cannot create temporary file");
  const std::string path = dir.file("x.safetensors");
  auto t = Tensor::zeros(DType::F32, {1});
  expect_error([&] { write_safetensors(path, {{"a", t}, {"a", t}}); }, path + ": ", "tensor 'a' given twice");
  expect_error([&] { write_safetensors(path, {{"__metadata__", t}}); }, path + ": ", "reserved");
  expect_error(
      [&] {
        write_safetensors(path, {{"a", t}}, {{"k", "\xff"}});
      },
      path + ": ", "cannot write safetensors header");
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);
}

TEST(SafetensorsWrite, EmptyFileRoundTrips) {
  TempDir dir;
  write_safetensors(dir.file("e.safetensors"), {});
  auto f = SafetensorsFile::open(dir.file("e.safetensors"));
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

// Written by tests/io/data/make_py_written.py with Python's safetensors; the values below are the script's.
TEST(SafetensorsFile, ReadsAFileWrittenByPython) {
  auto f = SafetensorsFile::open(std::string(WATTMOE_SOURCE_DIR) + "/tests/io/data/py_written.safetensors");
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"source", "make_py_written.py"}}));
  ASSERT_EQ(f.tensors().size(), 6u);

  auto f32 = f.get("f32");
  EXPECT_EQ(f32.dtype(), DType::F32);
  EXPECT_EQ(f32.shape(), (Shape{2, 3}));
  EXPECT_EQ(f32.to_f32_vector(), (std::vector<float>{1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -1e6f}));

  auto bf16 = f.get("bf16");
  EXPECT_EQ(bf16.dtype(), DType::BF16);
  EXPECT_EQ(bf16.shape(), (Shape{4}));
  EXPECT_EQ(bf16.to_f32_vector(), (std::vector<float>{1.0f, -0.5f, 3.0f, 256.0f}));

  auto f16 = f.get("f16");
  EXPECT_EQ(f16.dtype(), DType::F16);
  EXPECT_EQ(f16.shape(), (Shape{3, 1}));
  EXPECT_EQ(f16.to_f32_vector(), (std::vector<float>{0.5f, -2.0f, 65504.0f}));

  auto i64 = f.get("i64");
  EXPECT_EQ(i64.dtype(), DType::I64);
  EXPECT_EQ(i64.shape(), (Shape{4}));
  EXPECT_EQ(std::vector<int64_t>(i64.data<int64_t>(), i64.data<int64_t>() + 4),
            (std::vector<int64_t>{-1, 0, int64_t(1) << 40, 7}));

  auto u8 = f.get("a_u8");
  EXPECT_EQ(std::vector<uint8_t>(u8.data<uint8_t>(), u8.data<uint8_t>() + 3),
            (std::vector<uint8_t>{1, 2, 3}));

  auto scalar = f.get("scalar");
  EXPECT_EQ(scalar.shape(), Shape{});
  EXPECT_EQ(scalar.to_f32_vector(), (std::vector<float>{4.5f}));
}

}  // namespace
}  // namespace wattmoe
