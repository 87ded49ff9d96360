// wattmoe info: what a checkpoint is — architecture, sizes, parameter counts (total and active), memory, dtypes.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output_flags.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/params.h"

namespace wattmoe::cli {

namespace {

void run_info(const std::string& dir, const OutputFlags& out) {
  const ModelConfig c = load_model_config(dir);
  const ParamLayout layout = ParamLayout::build(c);
  CheckpointReader ck = CheckpointReader::open(dir);
  std::map<std::string, int64_t> bytes_by_dtype;
  int64_t stored_bytes = 0;
  for (const std::string& n : ck.names()) {
    const TensorInfo& i = ck.info(n);
    bytes_by_dtype[std::string(dtype_name(i.dtype))] += int64_t(i.end - i.begin);
    stored_bytes += int64_t(i.end - i.begin);
  }
  for (const ParamSpec& s : layout.specs()) {
    WATTMOE_REQUIRE(ck.has(s.name), "{}: missing tensor {} (config.json implies shape {})", dir, s.name,
                    shape_str(s.shape));
    WATTMOE_REQUIRE(ck.info(s.name).shape == s.shape, "{}: tensor {} has shape {} but config.json implies {}", dir,
                    s.name, shape_str(ck.info(s.name).shape), shape_str(s.shape));
  }
  int moe_layers = 0;
  for (int l = 0; l < c.num_layers; ++l) moe_layers += c.is_moe_layer(l);
  Json j;
  j["schema"] = "wattmoe.info/1";
  j["model"] = dir;
  j["architecture"] = arch_name(c.arch);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["layers"] = c.num_layers;
  j["moe_layers"] = moe_layers;
  j["heads"] = c.num_heads;
  j["kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["experts"] = c.num_experts;
  j["top_k"] = c.top_k;
  j["expert_ffn"] = c.moe_intermediate_size;
  j["shared_expert_ffn"] = c.shared_expert_intermediate_size;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["parameters"] = c.num_parameters();
  j["active_parameters_per_token"] = c.active_parameters();
  j["stored_bytes"] = stored_bytes;
  j["fp32_bytes"] = c.num_parameters() * 4;
  j["dtypes"] = bytes_by_dtype;
  // The verdict first: what the checkpoint is, in one line.
  std::string t = fmt::format("{}: {} MoE, {:.2f}M parameters ({:.2f}M active per token), {} experts top-{}, {} layers\n",
                              dir, arch_name(c.arch), c.num_parameters() / 1e6, c.active_parameters() / 1e6,
                              c.num_experts, c.top_k, c.num_layers);
  t += fmt::format("model            {}\n", dir);
  t += fmt::format("architecture     {} ({} layers, {} MoE; hidden {}, heads {}/{} kv, head_dim {})\n",
                   arch_name(c.arch), c.num_layers, moe_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim);
  t += fmt::format("experts          {} per MoE layer, top-{}{}, expert FFN {}", c.num_experts, c.top_k,
                   c.norm_topk_prob ? " (renormalised)" : "", c.moe_intermediate_size);
  if (c.shared_expert_intermediate_size) t += fmt::format(", shared expert FFN {}", c.shared_expert_intermediate_size);
  t += fmt::format("\nvocabulary       {}\n", c.vocab_size);
  t += fmt::format("parameters       {} total, {} active per token ({:.1f}%)\n", c.num_parameters(),
                   c.active_parameters(), 100.0 * double(c.active_parameters()) / double(c.num_parameters()));
  t += fmt::format("memory           {:.2f} MB stored, {:.2f} MB as fp32\n", stored_bytes / 1e6,
                   c.num_parameters() * 4 / 1e6);
  std::string dts;
  for (const auto& [k, v] : bytes_by_dtype) dts += fmt::format("{}{} ({:.2f} MB)", dts.empty() ? "" : ", ", k, v / 1e6);
  t += fmt::format("dtypes           {}\n", dts);
  emit_result(out, j, t);
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<OutputFlags>();
  CLI::App* cmd = app.add_subcommand("info", "Architecture, parameter counts (total, active per token), memory, dtypes");
  cmd->add_option("--model", *dir, "checkpoint directory (config.json + safetensors)")->required();
  add_output_flags(cmd, *out);
  cmd->callback([dir, out] { run_info(*dir, *out); });
}

}  // namespace wattmoe::cli
