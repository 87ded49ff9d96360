// wattmoe train: pre-train an MoE language model from a preset on a text corpus (resumable). Prints a verdict line
// ("trained tiny to step 100: val bits/byte 2.41, train loss 1.73 (12.3 s, 4,567 tokens/s); model in OUT") or, with
// --json, the JSON (schema wattmoe.train/1).
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/defaults.h"
#include "cli/output_flags.h"
#include "core/log.h"
#include "io/json.h"
#include "model/config.h"
#include "eval/run_report.h"
#include "model/runner.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

namespace wattmoe::cli {

namespace {

struct TrainArgs {
  std::string preset = "tiny", train_file = "data/kjv.train.txt", val_file = "data/kjv.val.txt", out, device = "cpu",
              model_config, tokenizer = "bytes";
  int steps = 0, batch = 0, seq = 0, accum = 0, stop_after = 0, eval_every = 0, ckpt_every = 0, shards = 0;
  double lr = 0, lb_coef = -1, z_coef = -1;
  uint64_t seed = 1234;
  bool no_resume = false;
  OutputFlags output;
};

void run_train(const TrainArgs& a, const CLI::App& cmd) {
  // A flag given is checked and used; one not given keeps the preset's value (0 or NaN never mean "the preset").
  const auto given = [&](const char* flag) { return cmd.count(flag) > 0; };
  const auto at_least = [&](const char* flag, int64_t v, int64_t min) {
    WATTMOE_REQUIRE(!given(flag) || v >= min, "{} {}: expected a number >= {}", flag, v, min);
  };
  at_least("--steps", a.steps, 1), at_least("--batch", a.batch, 1), at_least("--seq", a.seq, 2);
  at_least("--accum", a.accum, 1), at_least("--eval-every", a.eval_every, 1), at_least("--ckpt-every", a.ckpt_every, 1);
  at_least("--stop-after", a.stop_after, 1), at_least("--shards", a.shards, 1);
  WATTMOE_REQUIRE(!given("--lr") || a.lr > 0, "--lr {}: expected a learning rate > 0", a.lr);
  WATTMOE_REQUIRE(!given("--lb-coef") || a.lb_coef >= 0, "--lb-coef {}: expected a coefficient >= 0", a.lb_coef);
  WATTMOE_REQUIRE(!given("--z-coef") || a.z_coef >= 0, "--z-coef {}: expected a coefficient >= 0", a.z_coef);
  // Training routes on the host (the fused MoE kernels are inference-only) and keeps fp32 master weights.
  const RunnerOptions where{a.device, "fp32", a.device == "cuda" ? "host" : "auto"};
  check_runner_options(where);  // before any work: a GPU-less machine fails at once
  TrainConfig c = train_preset(a.preset);
  c.train_file = a.train_file, c.val_file = a.val_file, c.out_dir = a.out, c.seed = a.seed;
  c.tokenizer = a.tokenizer;
  c.resume = !a.no_resume;
  c.stop_after = a.stop_after;
  c.shards = a.shards;
  if (!a.model_config.empty()) c.model = parse_model_config(read_json_file(a.model_config), a.model_config);
  // A preset's shape with a subword tokenizer: the embedding and output layers take the tokenizer's vocabulary (the
  // presets' 256 is the byte tokenizer's). --model-config says its own vocab_size.
  else if (a.tokenizer != "bytes") c.model.vocab_size = load_tokenizer(a.tokenizer)->vocab_size();
  if (given("--steps")) c.steps = a.steps, c.lr.total = a.steps;
  if (given("--batch")) c.batch = a.batch;
  if (given("--seq")) c.seq = a.seq;
  if (given("--accum")) c.accum = a.accum;
  if (given("--eval-every")) c.eval_every = a.eval_every;
  if (given("--ckpt-every")) c.ckpt_every = a.ckpt_every;
  if (given("--lr")) c.lr.peak = c.adamw.lr = a.lr;
  if (given("--lb-coef")) c.lb_coef = a.lb_coef;
  if (given("--z-coef")) c.z_coef = a.z_coef;
  log_info("training preset {} ({} params) on {} → {} ({})", c.preset, c.model.num_parameters(), c.train_file,
           c.out_dir, a.device);
  const TrainSummary s = train(c, where);
  Json j{{"schema", "wattmoe.train/1"}, {"preset", c.preset}, {"device", a.device}, {"out", c.out_dir}, {"first_step", s.first_step}, {"last_step", s.last_step},
         {"final_train_loss", s.final_train_loss}, {"final_val_bpb", s.final_val_bpb}, {"seconds", s.seconds},
         {"tokens_per_s", s.tokens_per_second}};
  if (!s.interrupted.empty()) j["interrupted"] = s.interrupted;
  std::string human = s.interrupted.empty()
                          ? fmt::format("trained {} to step {}", c.preset, s.last_step)
                          : fmt::format("training interrupted by {} at step {} of {} (a checkpoint is in {}/checkpoint; "
                                        "the same command resumes)", s.interrupted, s.last_step, c.steps, c.out_dir);
  human += fmt::format(": val bits/byte {:.4f}, train loss {:.4f} ({:.1f} s, {} tokens/s); model in {}\n",
                       s.final_val_bpb, s.final_train_loss, s.seconds, thousands(int64_t(s.tokens_per_second)),
                       c.out_dir);
  emit_result(a.output, j, human, -1);  // one line, as it always was
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Pre-train an MoE language model from a preset (resumable)");
  cmd->add_option("--preset", a->preset,
                  "tiny (seconds), small (the shipped model's schedule) or medium (~107M parameters, ~4 min with "
                  "--device cuda)")
      ->check(CLI::IsMember({"tiny", "small", "medium"}));
  cmd->add_option("--train", a->train_file, "training text file")->capture_default_str();
  cmd->add_option("--val", a->val_file, "validation text file")->capture_default_str();
  cmd->add_option("--out", a->out, "output directory (model, checkpoint/, metrics.jsonl)")->required();
  cmd->add_option("--model-config", a->model_config,
                  "an HF config.json whose model shape replaces the preset's (the preset keeps the schedule)");
  cmd->add_option("--tokenizer", a->tokenizer,
                  "bytes, or a tokenizer.json (`wattmoe data tokenizer`): copied into --out with a tokenizer_config.json; "
                  "a preset's vocabulary becomes the tokenizer's; with --model-config it must fit its vocab_size")
      ->capture_default_str();
  cmd->add_option("--steps", a->steps, "override the preset's number of optimizer steps");
  cmd->add_option("--batch", a->batch, "override the batch size (sequences per micro-batch)");
  cmd->add_option("--seq", a->seq, "override the sequence length");
  cmd->add_option("--accum", a->accum, "gradient accumulation steps");
  cmd->add_option("--lr", a->lr, "override the peak learning rate");
  cmd->add_option("--lb-coef", a->lb_coef, "load-balancing loss coefficient");
  cmd->add_option("--z-coef", a->z_coef, "router z-loss coefficient");
  cmd->add_option("--eval-every", a->eval_every, "validate every N steps");
  cmd->add_option("--ckpt-every", a->ckpt_every, "checkpoint every N steps");
  cmd->add_option("--stop-after", a->stop_after, "stop after N steps of this run (with a checkpoint)");
  cmd->add_option("--shards", a->shards,
                  "data-parallel shards per micro-batch, one thread each (default: min(batch, cores)); results "
                  "depend on the shard count, never on timing (--device cpu only)");
  cmd->add_option("--device", a->device, "cpu (default) or cuda (the model, its gradients and optimizer on GPU 0)")
      ->capture_default_str();
  add_threads_flag(cmd);
  cmd->add_option("--seed", a->seed, "data order and initialisation seed")->capture_default_str();
  cmd->add_flag("--no-resume", a->no_resume, "start from scratch even if OUT/checkpoint exists");
  add_output_flags(cmd, a->output);
  cmd->callback([a, cmd] { run_train(*a, *cmd); });
}

}  // namespace wattmoe::cli
