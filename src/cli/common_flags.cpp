#include "cli/common_flags.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/thread_pool.h"
#include "serve/engine_options.h"

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
                  "with --device cuda, what runs the MoE layers: auto (the fused kernels, every routing policy on the "
                  "device, wherever the model allows: --precision bf16, H and I "
                  "multiples of 8, at most 256 experts), fused (error when not possible), or host (routing on the "
                  "host: one round trip per layer)")
      ->capture_default_str();
  cmd->add_option("--expert-precision", o.expert_precision,
                  "the routed experts' weights: bf16 (as loaded), fp8 (e4m3) or int8, quantised weight-only at load "
                  "with one fp32 scale per output row; every path computes with the dequantised weights, and with "
                  "--device cuda --precision bf16 the fused decode kernels (steps of <= 8 tokens) read the 1-byte "
                  "codes")
      ->capture_default_str();
  cmd->add_flag("!--no-decode-graphs", o.decode_graphs,
                "with --device cuda on the fused kernels, launch each batched decode step kernel by kernel instead of "
                "replaying it as a CUDA graph (for comparison; the outputs are the same bit for bit)");
}

void add_window_flags(CLI::App* cmd, int& seq, int64_t& max_tokens) {
  visit_window_options(seq, max_tokens, TableFlags{cmd});
}

void add_threads_flag(CLI::App* cmd) {
  cmd->add_option_function<int>("--threads", [](const int& n) { set_default_pool_threads(n); },
                                "threads of the CPU engine (default: WATTMOE_THREADS, else one per core)")
      ->check(CLI::Range(1, kMaxThreads));
}

void refuse_bad_numbers(CLI::App& app, const std::vector<std::string>& inf_allowed,
                        const std::vector<std::string>& negative_allowed) {
  const auto listed = [](const std::vector<std::string>& l, const std::string& n) {
    return std::find(l.begin(), l.end(), n) != l.end();
  };
  for (CLI::Option* opt : app.get_options()) {
    const std::string type = opt->get_type_name();  // "FLOAT", or "FLOAT:<its validators>"
    const bool is_float = type.rfind("FLOAT", 0) == 0;
    if (!is_float && type.rfind("INT", 0) != 0 && type.rfind("UINT", 0) != 0) continue;
    const std::string name = opt->get_name();
    const bool inf_ok = listed(inf_allowed, name), negative_ok = listed(negative_allowed, name);
    opt->check(CLI::Validator(
        [is_float, inf_ok, negative_ok](std::string& text) -> std::string {
          char* end = nullptr;
          const double v = std::strtod(text.c_str(), &end);
          if (end == text.c_str()) return "";  // not a number at all: CLI11's own conversion says so
          if (is_float && std::isnan(v)) return "expected a number, got '" + text + "'";  // CLI11 prefixes the flag
          if (is_float && std::isinf(v) && !inf_ok) return "expected a finite number, got '" + text + "'";
          if (v < 0 && !negative_ok) return "expected a number >= 0, got '" + text + "'";
          return "";
        },
        "", "checked"));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    refuse_bad_numbers(*sub, inf_allowed, negative_allowed);
}

void refuse_bad_numbers(CLI::App& app) {
  std::vector<std::string> inf_ok, negative_ok;
  const auto collect = [&](const OptionInfo& i, auto&) {
    if (i.inf_ok) inf_ok.emplace_back(i.flag);
    if (i.negative_ok) negative_ok.emplace_back(i.flag);
  };
  RunConfig run;
  EngineConfig engine;
  EvalWindows eval;
  visit_routing_options(run.routing, collect);
  visit_run_options(run, collect);
  visit_ttt_options(run.ttt, collect);
  visit_engine_options(engine, collect);
  visit_eval_window_options(eval, collect);
  refuse_bad_numbers(app, inf_ok, negative_ok);
}

}  // namespace wattmoe::cli
