// wattmoe forward: logits, router logits and (optionally) gradients for token ids read from a safetensors file.
#include <filesystem>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/objective.h"
#include "model/transformer.h"

namespace wattmoe::cli {

namespace {

struct ForwardArgs {
  std::string model, input, out, grad;
  bool all_grads = false;
};

// input_ids: I64 (or I32) [B, S] → int32, with the file named in every error.
std::vector<int32_t> read_input_ids(const std::string& path, int* B, int* S) {
  SafetensorsFile f = SafetensorsFile::open(path);
  WATTMOE_REQUIRE(f.has("input_ids"), "{}: no tensor named input_ids", path);
  const TensorInfo& info = f.info("input_ids");
  WATTMOE_REQUIRE(info.shape.size() == 2 && info.shape[0] > 0 && info.shape[1] > 0,
                  "{}: input_ids must have shape [B, S] with B, S > 0, got {}", path, shape_str(info.shape));
  WATTMOE_REQUIRE(info.dtype == DType::I64 || info.dtype == DType::I32, "{}: input_ids must be I64 or I32, got {}",
                  path, dtype_name(info.dtype));
  Tensor t = f.get("input_ids");
  *B = int(info.shape[0]), *S = int(info.shape[1]);
  std::vector<int32_t> ids(size_t(t.numel()));
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t v = info.dtype == DType::I64 ? t.data<int64_t>()[i] : t.data<int32_t>()[i];
    WATTMOE_REQUIRE(v >= 0 && v <= INT32_MAX, "{}: input_ids[{}] = {} is negative or too large", path, i, v);
    ids[i] = int32_t(v);
  }
  return ids;
}

bool grad_is_reported(ParamKind k) {
  return k == ParamKind::Router || k == ParamKind::Norm || k == ParamKind::SharedGate;
}

void run_forward(const ForwardArgs& a) {
  Timer timer;
  ModelWeights<float> m = load_model<float>(a.model);
  int B = 0, S = 0;
  std::vector<int32_t> ids = read_input_ids(a.input, &B, &S);
  for (size_t i = 0; i < ids.size(); ++i)
    WATTMOE_REQUIRE(ids[i] < m.config.vocab_size, "{}: input_ids[{}] = {} is outside the vocabulary [0, {})", a.input,
                    i, ids[i], m.config.vocab_size);
  Transformer<float> model(m.config);
  Activations<float> acts;
  model.forward(m.params.data(), ids.data(), B, S, acts);

  const int64_t V = m.config.vocab_size, E = m.config.num_experts;
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("logits", Tensor::from_vector(acts.logits, {B, S, V}));
  for (int l = 0; l < m.config.num_layers; ++l)
    if (m.config.is_moe_layer(l))
      out.emplace_back("router_logits." + std::to_string(l),
                       Tensor::from_vector(acts.layers[l].router_logits, {int64_t(B) * S, E}));
  if (!a.grad.empty()) {
    const Objective obj = parse_objective(a.grad);
    std::vector<float> dlogits(acts.logits.size()), grads(m.params.size(), 0.0f);
    const double loss = objective_loss<float>(obj, acts.logits.data(), ids.data(), B, S, int(V), dlogits.data());
    model.backward(m.params.data(), ids.data(), dlogits.data(), acts, grads.data());
    out.emplace_back("loss", Tensor::from_vector(std::vector<float>{float(loss)}, {}));
    for (const ParamSpec& s : m.layout.specs()) {
      if (!a.all_grads && !grad_is_reported(s.kind)) continue;
      std::vector<float> gv(grads.begin() + s.offset, grads.begin() + s.offset + s.numel);
      out.emplace_back("grad." + s.name, Tensor::from_vector(gv, s.shape));
    }
    log_info("{} loss {:.6f}", a.grad, loss);
  }
  write_safetensors(a.out, out);
  log_info("wrote {} tensors to {} ({:.2f} s)", out.size(), a.out, timer.seconds());
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto args = std::make_shared<ForwardArgs>();
  CLI::App* cmd = app.add_subcommand("forward", "Logits, router logits and gradients for token ids (safetensors in/out)");
  cmd->add_option("--model", args->model, "checkpoint directory (config.json + safetensors)")->required();
  cmd->add_option("--input", args->input, "safetensors file holding input_ids (I64 [B, S])")->required();
  cmd->add_option("--out", args->out, "safetensors file to write: logits, router_logits.{layer}, grad.{name}")
      ->required();
  cmd->add_option("--grad", args->grad,
                  "also write gradients of this loss: entropy (mean next-token entropy) or nll (next-token NLL)")
      ->check(CLI::IsMember({"entropy", "nll"}));
  cmd->add_flag("--all-grads", args->all_grads,
                "with --grad, write every parameter's gradient (default: router, norm and shared-expert-gate weights)");
  add_threads_flag(cmd);
  cmd->callback([args] { run_forward(*args); });
}

}  // namespace wattmoe::cli
