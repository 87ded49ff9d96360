// Pre-training of an MoE language model on a token stream (CPU, fp32): AdamW, warmup + cosine, gradient clipping
// and accumulation, the load-balancing and z losses, periodic validation, resumable checkpoints, JSONL metrics.
//
// Output directory layout (DIR = --out):
//   DIR/config.json, DIR/model.safetensors   the latest weights in HF layout (what every other command loads)
//   DIR/checkpoint/                          model + optimizer.safetensors + trainer_state.json, replaced atomically
//   DIR/metrics.jsonl                        one JSON object per logged step / validation
#pragma once
#include <cstdint>
#include <string>

#include "model/config.h"
#include "train/optimizer.h"
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

// "tiny" (seconds; tests) or "small" (the reference schedule of the shipped model). Error for other names.
TrainConfig train_preset(const std::string& name);

struct TrainSummary {
  int first_step = 0, last_step = 0;
  double final_train_loss = 0, final_val_bpb = 0, seconds = 0, tokens_per_second = 0;
};

TrainSummary train(const TrainConfig& cfg);

// Fills params with the initialisation our trainer uses (normal(0, 0.02) matrices, unit norm gains, zero biases).
void init_params(const ModelConfig& c, const ParamLayout& layout, float* params, uint64_t seed);

}  // namespace wattmoe
