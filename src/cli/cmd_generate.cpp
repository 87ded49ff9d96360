// wattmoe generate: sample a continuation of a prompt with a KV cache, on the CPU or (--device cuda) on GPU 0 in fp32
// or bf16 (--precision; bf16 runs the MoE layers on the fused kernels where they apply, --moe-kernels), through
// model/runner.h. Sampling runs on the host from the last logits row.
#include <cstdio>

#include "cli/commands.h"
#include "cli/defaults.h"
#include "cli/common_flags.h"
#include "core/log.h"
#include "core/timer.h"
#include "eval/sample.h"
#include "model/checkpoint.h"
#include "model/runner.h"

namespace wattmoe::cli {

namespace {

struct GenArgs {
  std::string model = default_model_dir(), prompt = "In the beginning", tokenizer;
  int max_new = 200, context = 0;
  double temperature = 0.8, top_p = 0.95;
  uint64_t seed = 0;
  RunnerOptions runner;  // the model's own top-k: no routing reason keeps the fused kernels off
};

void run_generate(const GenArgs& a) {
  // Flags first: a wrong device or precision fails before any work.
  const RunnerOptions& where = a.runner;
  check_runner_options(where);
  ModelWeights<float> m = load_model<float>(a.model);
  std::unique_ptr<Tokenizer> tok = model_tokenizer(a.model, a.tokenizer, m.config.vocab_size);
  std::vector<int32_t> ids = tok->encode(a.prompt);
  if (tok->bos_id()) ids.insert(ids.begin(), *tok->bos_id());
  const int context = a.context > 0 ? a.context : m.config.max_position_embeddings;
  WATTMOE_REQUIRE(!ids.empty(), "generate: the prompt is empty");
  WATTMOE_REQUIRE(int(ids.size()) < context, "generate: the prompt has {} tokens but the context holds {}",
                  ids.size(), context);
  WATTMOE_REQUIRE(a.max_new >= 0, "generate: --max-new-tokens must be >= 0");
  const int total = std::min<int>(context, int(ids.size()) + a.max_new);
  const int V = m.config.vocab_size;
  // The model with one KV-cache slot, decoded as serving decodes a request (serve/engine.h): the prompt in one
  // forward_slot, then each token as a one-row forward_slots step (on the GPU's fused kernels a replayed CUDA graph).
  // Each call runs tokens through it and returns the logits row of the last one.
  std::unique_ptr<Runner> model = make_runner(m.config, where);
  model->set_params(m.params.data());
  model->reset_slots(1, total);
  const int32_t slot = 0;
  const auto run = [&](const int32_t* x, int n) {
    if (n == 1) model->forward_slots(&slot, x, 1);
    else model->forward_slot(slot, x, n);
    return model->logits() + size_t(n - 1) * size_t(V);
  };
  Rng rng(a.seed);
  Timer timer;
  const float* last = run(ids.data(), int(ids.size()));
  int length = int(ids.size());
  const double prefill_s = timer.seconds();
  std::fputs(a.prompt.c_str(), stdout);
  std::vector<int32_t> out;
  Timer decode;
  while (length < total) {
    int32_t next = sample_token(last, V, a.temperature, a.top_p, rng);
    if (next >= tok->vocab_size()) next = 0;  // a byte model never emits these; guard larger model vocabularies
    if (tok->eos_id() && next == *tok->eos_id()) break;
    out.push_back(next);
    std::fputs(tok->decode(std::span<const int32_t>(&next, 1)).c_str(), stdout);
    std::fflush(stdout);
    last = run(&next, 1);
    ++length;
  }
  std::fputs("\n", stdout);
  // Cut by the context, not by --max-new-tokens or an end-of-sequence token: say so rather than return fewer tokens silently.
  if (length == total && int(out.size()) < a.max_new)
    log_warn("generate: {} new tokens, fewer than --max-new-tokens {}: the context holds {} tokens (--context, default the "
             "model's max_position_embeddings) and the prompt took {}", out.size(), a.max_new, context, ids.size());
  log_info("prompt {} tokens ({:.3f} s), generated {} tokens at {:.1f} tok/s", ids.size(), prefill_s, out.size(),
           out.size() / std::max(decode.seconds(), 1e-9));
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample a continuation of a prompt (KV cache)");
  add_model_flags(cmd, a->model, a->tokenizer);
  cmd->add_option("--prompt", a->prompt, "prompt text")->capture_default_str();
  CLI::Option* n = cmd->add_option("--max-new-tokens", a->max_new, "tokens to generate")->capture_default_str();
  add_deprecated_alias(cmd, "--max-new", n, a->max_new);
  cmd->add_option("--context", a->context, "context length (default: the model's max_position_embeddings)");
  cmd->add_option("--temperature", a->temperature, "0 for greedy")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "nucleus sampling: the smallest set of tokens with this much probability, "
                  "in (0, 1] (the routing p of eval and run is --route-top-p)")->capture_default_str();
  cmd->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  add_device_flags(cmd, a->runner, "the model and its KV cache");
  add_threads_flag(cmd);
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace wattmoe::cli
