// Helpers shared by the tests: paths to committed fixtures, scratch directories, error norms.
#pragma once
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace wattmoe::test {

// Runs fn and returns the wattmoe::Error message ("" and a test failure if nothing was thrown).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a wattmoe::Error";
  return "";
}

inline std::string source_path(const std::string& rel) { return std::string(WATTMOE_SOURCE_DIR) + "/" + rel; }

// A fresh, empty directory unique to the running test.
// The HF golden fixtures (tests/fixtures/NAME with a config.json), sorted by name.
inline std::vector<std::string> fixture_names() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(source_path("tests/fixtures")))
    if (std::filesystem::exists(e.path() / "config.json")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A fixture's input_ids (I64 [B, S] in DIR/input.safetensors) as int32, with its shape.
inline std::vector<int32_t> read_fixture_ids(const std::string& dir, int* B, int* S) {
  SafetensorsFile f = SafetensorsFile::open(dir + "/input.safetensors");
  Tensor t = f.get("input_ids");
  *B = int(t.size(0)), *S = int(t.size(1));
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < t.numel(); ++i) ids.push_back(int32_t(t.data<int64_t>()[i]));
  return ids;
}

// A fresh directory named after the test, the tag and this process (two test runs on one machine, e.g. two
// checkouts' suites at once, never share it); left in place after the test for a look at its files.
inline std::string scratch_dir(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path p = std::filesystem::temp_directory_path() /
                            ("wattmoe_" + std::to_string(::getpid()) + "_" + std::string(info->test_suite_name()) +
                             "_" + info->name() + "_" + tag);
  std::string s = p.string();
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return s;
}

// A unique directory under the gtest temp dir, removed when the test ends.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};  // unique names within this process (tests may run in parallel)
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = ::testing::TempDir() + "wattmoe_" + std::to_string(::getpid()) + "_" +
            (info ? std::string(info->name()) : "x") + "_" + std::to_string(counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

// ‖a − b‖₂ / ‖b‖₂ (b is the reference).
template <class A, class B>
double rel_l2(const A& a, const B& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    den += double(b[i]) * double(b[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace wattmoe::test
