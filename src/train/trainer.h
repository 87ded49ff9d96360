// Pre-training of an MoE language model on a token stream, on any runner (model/runner.h: the CPU with data-parallel
// shards, or a GPU): AdamW, warmup + cosine, gradient clipping and accumulation, the load-balancing and z losses,
// periodic validation, resumable checkpoints (CPU and GPU runs resume each other's), JSONL metrics.
//
// Output directory layout (DIR = --out):
//   DIR/config.json, DIR/model.safetensors   the latest weights in HF layout (what every other command loads)
//   DIR/checkpoint/                          model + optimizer.safetensors + trainer_state.json, replaced atomically
//   DIR/metrics.jsonl                        one JSON object per logged step / validation
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/stop_signal.h"
#include "core/timer.h"
#include "eval/evaluate.h"
#include "io/files.h"
#include "io/json.h"
#include "model/config.h"
#include "model/runner.h"
#include "train/data.h"
#include "model/optimizer.h"
#include "train/schedule.h"

namespace wattmoe {

struct TrainConfig {
  std::string preset = "tiny";
  ModelConfig model;
  int seq = 128, batch = 16, accum = 1, steps = 3000;
  LrSchedule lr;
  AdamWConfig adamw;
  double clip = 1.0, lb_coef = 0.01, z_coef = 0.0;
  int eval_every = 250, ckpt_every = 250, log_every = 10;
  int64_t eval_tokens = 65536;  // periodic validation on the first N tokens of val (the final one on all of it)
  uint64_t seed = 1234;
  std::string train_file, val_file, out_dir, tokenizer = "bytes";
  bool resume = true;           // continue from DIR/checkpoint when present
  int stop_after = 0;           // > 0: stop (with a checkpoint) after this many steps in this run (tests, slicing)
  // Data-parallel shards per micro-batch, each on its own thread with single-threaded BLAS; gradients are summed in
  // shard order, so results depend on the shard count but never on timing. The load-balancing loss is computed per
  // shard (as data-parallel MoE trainers do per rank). 0: min(batch, hardware threads).
  int shards = 0;
};

// "tiny" (seconds; tests), "small" (the reference schedule of the shipped model) or "medium" (~107M parameters,
// about 4 minutes of fp32 training on one H100/H200). Error for other names.
TrainConfig train_preset(const std::string& name);

struct TrainSummary {
  int first_step = 0, last_step = 0;
  double final_train_loss = 0, final_val_bpb = 0, seconds = 0, tokens_per_second = 0;
  std::string interrupted;  // "SIGINT"/"SIGTERM" when a signal stopped the run (after a checkpoint), else ""
};

// where: the runner's device and precision (moe_kernels does not apply: training routes on the host).
TrainSummary train(const TrainConfig& cfg, const RunnerOptions& where = {});

// Fills params with the initialisation our trainer uses (normal(0, 0.02) matrices, unit norm gains, zero biases).
void init_params(const ModelConfig& c, const ParamLayout& layout, float* params, uint64_t seed);

// The parts around the training loop: preparation, checkpoints, resuming, metrics and progress.
namespace train_detail {

// The checks, token streams and model config every run starts from (the preset's config with the run's auxiliary
// loss coefficients and context length); creates the output directory. Errors name the flag or file.
// Holds DIR/.lock (a second training on the same --out is refused) and refuses a DIR holding a model but no
// checkpoint of a training run.
struct TrainData {
  TokenStream train, val;
  ModelConfig model;
  Json run;  // run_identity
  std::optional<FileLock> lock;
};
TrainData prepare_training(const TrainConfig& cfg);

// DIR/checkpoint/{model, optimizer.safetensors (written by save_optimizer(path)), trainer_state.json} through
// DIR/checkpoint.tmp swapped in, then the latest weights in DIR itself.
void write_checkpoint(const std::string& out, const ModelConfig& mc, const ParamLayout& layout, const float* params,
                      const std::function<void(const std::string& path)>& save_optimizer, const Json& state);
// What makes a resumed run the same run: preset, seed, the training text's SHA-256, tokenizer, seq, batch, accum,
// steps, lr and loss coefficients (trainer_state.json's "run"); a resume that differs is refused, naming each change.
Json run_identity(const TrainConfig& cfg, const std::string& train_sha256);
Json state_json(const TrainConfig& cfg, int step, const Json& run);  // trainer_state.json
// The step to resume from in a trainer_state.json: an integer in [0, steps], and the same run (fuzz/trainer_state_fuzz.cpp).
int resume_step(const Json& state, const std::string& state_path, const Json& run, int steps);

// Where a resumed run starts: DIR/checkpoint (or checkpoint.old) when cfg.resume and present — its weights and step;
// the caller loads DIR/optimizer.safetensors itself. dir is empty when there is nothing to resume. Error when the
// checkpoint's architecture differs from the preset's.
struct ResumePoint {
  std::string dir;
  int step = 0;
  std::vector<float> params;
};
ResumePoint find_resume_point(const TrainConfig& cfg, const ModelConfig& mc, const ParamLayout& layout, const Json& run);
// Resumes (weights into params, the optimizer through load_optimizer(DIR/checkpoint/optimizer.safetensors)) or
// initialises params with cfg.seed; returns the first step to run.
int resume_or_init(const TrainConfig& cfg, const ModelConfig& mc, const ParamLayout& layout, const Json& run,
                   std::vector<float>& params, const std::function<void(const std::string& path)>& load_optimizer);

// What the training loop does around the maths of a step: metrics.jsonl, the progress line, evaluation and
// checkpoints on schedule, stopping on a signal or --stop-after, and the summary.
class StepBook {
 public:
  // Opens DIR/metrics.jsonl for appending, cut back to the lines of steps <= start; starts the clocks.
  StepBook(const TrainConfig& cfg, int start);
  struct Step {
    double loss = 0, lb = 0, z = 0, lr = 0, grad_norm = 0;
    int64_t tokens = 0;  // tokens the step trained on
  };
  // After the optimizer step `done` (1-based): logs it, evaluates (eval(max_tokens), 0 = the whole val text) and
  // checkpoints (checkpoint(done)) when due. Returns true when training must stop after this step.
  bool after_step(int done, const Step& s, const std::function<EvalResult(int64_t max_tokens)>& eval,
                  const std::function<void(int done)>& checkpoint);
  TrainSummary finish(int last_step);  // the run's summary (call once, after the loop)

 private:
  const TrainConfig& cfg_;
  int start_;
  std::ofstream metrics_;
  StopOnSignal stop_signal_;
  bool tty_;
  Timer timer_, log_timer_;
  int64_t tokens_done_ = 0;
  TrainSummary sum_;
};

std::string fmt_duration(double seconds);
// "step 10/3000 | loss … | lb … | lr … | N tok/s | ETA …" on stderr ('\r'-updated on a terminal).
void print_progress(bool tty, int done, int steps, double loss, double lb, double lr, double tps, double eta_s);

}  // namespace train_detail

}  // namespace wattmoe
