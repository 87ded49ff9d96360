#include "cli/common_flags.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/thread_pool.h"

namespace wattmoe::cli {

void add_model_flags(CLI::App* cmd, std::string& model, std::string& tokenizer) {
  cmd->add_option("--model", model, "checkpoint directory")->capture_default_str();
  cmd->add_option("--tokenizer", tokenizer, "bytes, or a tokenizer.json (default: the model's, else bytes)");
}

void add_device_flags(CLI::App* cmd, RunnerOptions& o, const std::string& device_help) {
  cmd->add_option("--device", o.device, "cpu (default) or cuda (" + device_help + " on GPU 0)")->capture_default_str();
  cmd->add_option("--precision", o.precision, "fp32, or bf16 (with --device cuda: bf16 weights and activations)")
      ->capture_default_str();
  cmd->add_option("--moe-kernels", o.moe_kernels,
                  "with --device cuda, what runs the MoE layers: auto (the fused kernels — every routing policy on the "
                  "device, test-time training included — wherever the model allows: --precision bf16, H and I "
                  "multiples of 8, at most 256 experts), fused (error when not possible), or host (routing on the "
                  "host: one round trip per layer)")
      ->capture_default_str();
}

void add_window_flags(CLI::App* cmd, int& seq, int64_t& max_tokens) {
  cmd->add_option("--seq", seq, "window length (windows of seq+1 tokens)")->capture_default_str();
  cmd->add_option("--max-tokens", max_tokens, "only the text's first N tokens (0: all)");
}

void add_threads_flag(CLI::App* cmd) {
  cmd->add_option_function<int>("--threads", [](const int& n) { set_default_pool_threads(n); },
                                "threads of the CPU engine (default: WATTMOE_THREADS, else one per core)")
      ->check(CLI::Range(1, kMaxThreads));
}

void refuse_non_finite_numbers(CLI::App& app, const std::vector<std::string>& inf_allowed) {
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_type_name().rfind("FLOAT", 0) != 0) continue;  // "FLOAT", or "FLOAT:<its validators>"
    const std::string name = opt->get_name();
    const bool inf_ok = std::find(inf_allowed.begin(), inf_allowed.end(), name) != inf_allowed.end();
    opt->check(CLI::Validator(
        [inf_ok](std::string& text) -> std::string {
          char* end = nullptr;
          const double v = std::strtod(text.c_str(), &end);
          if (end == text.c_str()) return "";  // not a number at all: CLI11's own conversion says so
          if (std::isnan(v)) return "expected a number, got '" + text + "'";  // CLI11 prefixes the flag's name
          if (std::isinf(v) && !inf_ok) return "expected a finite number, got '" + text + "'";
          return "";
        },
        "", "finite"));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) refuse_non_finite_numbers(*sub, inf_allowed);
}

}  // namespace wattmoe::cli
