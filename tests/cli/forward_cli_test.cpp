// `wattmoe forward` end to end: the binary is run on each committed fixture with --grad entropy and --grad nll, and its
// output file (read back with SafetensorsFile) must match the fixture's expected_*.safetensors: logits, router
// logits, the loss, and the gradients it reports by default (router, norm and shared-expert-gate weights — exactly
// those), with the tolerances of tests/model/golden_test.cpp. --all-grads adds every parameter's gradient.
#include <cstdlib>
#include <filesystem>
#include <set>

#include "../test_util.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/params.h"

namespace wattmoe::test {
namespace {

namespace fs = std::filesystem;

std::string wattmoe_binary() { return std::string(WATTMOE_BINARY_DIR) + "/wattmoe"; }

std::vector<std::string> fixtures() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(source_path("tests/fixtures")))
    if (fs::exists(e.path() / "expected_entropy.safetensors")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool reported_by_default(ParamKind k) {
  return k == ParamKind::Router || k == ParamKind::Norm || k == ParamKind::SharedGate;
}

// Runs the binary; returns its exit status (stderr goes to `log`).
int run_forward(const std::string& fixture, const std::string& out, const std::string& grad, bool all,
                const std::string& log) {
  const std::string dir = source_path("tests/fixtures/" + fixture);
  const std::string cmd = "'" + wattmoe_binary() + "' forward --model '" + dir + "' --input '" + dir +
                          "/input.safetensors' --out '" + out + "' --grad " + grad + (all ? " --all-grads" : "") +
                          " 2>'" + log + "'";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

void compare(const std::string& fixture, const std::string& grad, bool all) {
  SCOPED_TRACE(fixture + " --grad " + grad + (all ? " --all-grads" : ""));
  const std::string tmp = scratch_dir(fixture + "_" + grad);
  const std::string out = tmp + "/out.safetensors";
  ASSERT_EQ(run_forward(fixture, out, grad, all, tmp + "/stderr.txt"), 0);
  const std::string dir = source_path("tests/fixtures/" + fixture);
  const ModelConfig c = load_model_config(dir);
  const ParamLayout layout = ParamLayout::build(c);
  const SafetensorsFile got = SafetensorsFile::open(out);
  const SafetensorsFile want = SafetensorsFile::open(dir + "/expected_" + grad + ".safetensors");

  // logits [B, S, V] within 1e-4 and router logits within 1e-5 (fp32, as the golden test).
  ASSERT_TRUE(got.has("logits"));
  EXPECT_EQ(got.info("logits").shape, want.info("logits").shape);
  EXPECT_LE(max_abs_diff(got.get("logits").to_f64_vector(), want.get("logits").to_f64_vector()), 1e-4);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string key = "router_logits." + std::to_string(l);
    ASSERT_EQ(got.has(key), c.is_moe_layer(l)) << key;
    if (!got.has(key)) continue;
    EXPECT_EQ(got.info(key).shape, want.info(key).shape) << key;
    EXPECT_LE(max_abs_diff(got.get(key).to_f64_vector(), want.get(key).to_f64_vector()), 1e-5) << key;
  }
  ASSERT_TRUE(got.has("loss"));
  const double loss = got.get("loss").to_f64_vector().at(0), ref = want.get("loss").to_f64_vector().at(0);
  EXPECT_NEAR(loss, ref, 1e-5 * std::max(1.0, std::abs(ref)));

  // Exactly the expected gradient tensors, each with its parameter's shape and the fixture's values:
  // 1e-3 relative L2, or 1e-6 absolute for gradients that are zero in exact arithmetic (noise in the fixture).
  std::set<std::string> expected;
  for (const ParamSpec& s : layout.specs())
    if (all || reported_by_default(s.kind)) expected.insert("grad." + s.name);
  std::set<std::string> present;
  for (const TensorInfo& t : got.tensors())
    if (t.name.rfind("grad.", 0) == 0) present.insert(t.name);
  EXPECT_EQ(present, expected);
  for (const ParamSpec& s : layout.specs()) {
    const std::string key = "grad." + s.name;
    if (!got.has(key)) continue;
    EXPECT_EQ(got.info(key).shape, s.shape) << key;
    const std::vector<double> g = got.get(key).to_f64_vector(), w = want.get(key).to_f64_vector();
    const double rel = rel_l2(g, w), abs = max_abs_diff(g, w);
    EXPECT_TRUE(rel <= 1e-3 || abs <= 1e-6) << key << " rel " << rel << " abs " << abs;
  }
  fs::remove_all(tmp);
}

TEST(CliForward, EntropyGradientsMatchFixtures) {
  if (!fs::exists(wattmoe_binary())) GTEST_SKIP() << wattmoe_binary() << " is not built";
  const auto names = fixtures();
  ASSERT_GE(names.size(), 7u);
  for (const auto& f : names) compare(f, "entropy", false);
}

TEST(CliForward, NllGradientsMatchFixtures) {
  if (!fs::exists(wattmoe_binary())) GTEST_SKIP() << wattmoe_binary() << " is not built";
  for (const auto& f : fixtures()) compare(f, "nll", false);
}

TEST(CliForward, AllGradsWritesEveryParameter) {
  if (!fs::exists(wattmoe_binary())) GTEST_SKIP() << wattmoe_binary() << " is not built";
  compare("qwen2moe_shared", "entropy", true);
  compare("mixtral_gqa", "nll", true);
}

}  // namespace
}  // namespace wattmoe::test
