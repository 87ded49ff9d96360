// wattmoe generate: sample a continuation of a prompt with a KV cache.
#include <cstdio>

#include "cli/commands.h"
#include "cli/defaults.h"
#include "core/log.h"
#include "core/timer.h"
#include "eval/sample.h"
#include "model/checkpoint.h"
#include "model/transformer.h"

namespace wattmoe::cli {

namespace {

struct GenArgs {
  std::string model = default_model_dir(), prompt = "In the beginning", tokenizer;
  int max_new = 200, context = 0;
  double temperature = 0.8, top_p = 0.95;
  uint64_t seed = 0;
};

void run_generate(const GenArgs& a) {
  ModelWeights<float> m = load_model<float>(a.model);
  std::unique_ptr<Tokenizer> tok = model_tokenizer(a.model, a.tokenizer, m.config.vocab_size);
  std::vector<int32_t> ids = tok->encode(a.prompt);
  if (tok->bos_id()) ids.insert(ids.begin(), *tok->bos_id());
  const int context = a.context > 0 ? a.context : m.config.max_position_embeddings;
  WATTMOE_REQUIRE(!ids.empty(), "generate: the prompt is empty");
  WATTMOE_REQUIRE(int(ids.size()) < context, "generate: the prompt has {} tokens but the context holds {}",
                  ids.size(), context);
  WATTMOE_REQUIRE(a.max_new >= 0, "generate: --max-new must be >= 0");
  const int total = std::min<int>(context, int(ids.size()) + a.max_new);
  Transformer<float> model(m.config);
  KvCache<float> cache(m.config.num_layers, total, m.config.kv_dim());
  Activations<float> acts;
  Rng rng(a.seed);
  Timer timer;
  model.forward(m.params.data(), ids.data(), 1, int(ids.size()), acts, &cache);
  const double prefill_s = timer.seconds();
  const int V = m.config.vocab_size;
  std::fputs(a.prompt.c_str(), stdout);
  std::vector<int32_t> out;
  Timer decode;
  while (int(cache.length) < total) {
    const float* last = acts.logits.data() + (acts.logits.size() / size_t(V) - 1) * size_t(V);
    int32_t next = sample_token(last, V, a.temperature, a.top_p, rng);
    if (next >= tok->vocab_size()) next = 0;  // a byte model never emits these; guard larger model vocabularies
    if (tok->eos_id() && next == *tok->eos_id()) break;
    out.push_back(next);
    std::fputs(tok->decode(std::span<const int32_t>(&next, 1)).c_str(), stdout);
    std::fflush(stdout);
    model.forward(m.params.data(), &next, 1, 1, acts, &cache);
  }
  std::fputs("\n", stdout);
  log_info("prompt {} tokens ({:.3f} s), generated {} tokens at {:.1f} tok/s", ids.size(), prefill_s, out.size(),
           out.size() / std::max(decode.seconds(), 1e-9));
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Sample a continuation of a prompt (KV cache)");
  cmd->add_option("--model", a->model, "checkpoint directory")->capture_default_str();
  cmd->add_option("--prompt", a->prompt, "prompt text")->capture_default_str();
  cmd->add_option("--tokenizer", a->tokenizer, "bytes, or a tokenizer.json (default: the model's, else bytes)");
  cmd->add_option("--max-new", a->max_new, "tokens to generate")->capture_default_str();
  cmd->add_option("--context", a->context, "context length (default: the model's max_position_embeddings)");
  cmd->add_option("--temperature", a->temperature, "0 for greedy")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "nucleus sampling mass in (0, 1]")->capture_default_str();
  cmd->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace wattmoe::cli
