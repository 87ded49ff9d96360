// Pre-training on the GPU: wattmoe::train (train/trainer.h) with the model (gpu/transformer_cuda.h), its gradients
// and the AdamW moments in device memory, all fp32. Same TrainConfig, data order (sample_windows), LR schedule, AdamW
// semantics (decoupled decay on matrices only, bias-corrected moments), global-norm clipping, load-balancing and z
// losses, periodic validation (gpu/evaluate_cuda.h), metrics.jsonl, progress lines and summary. Checkpoints download
// the weights and moments into the CPU trainer's files (train_detail::write_checkpoint, optimizer.safetensors with
// exp_avg.NAME / exp_avg_sq.NAME and the step in its metadata), so either trainer resumes the other's checkpoint and
// every command loads the result on the CPU.
//
// One difference by design: the GPU runs each micro-batch as ONE shard (cfg.shards is ignored), so the
// load-balancing loss is taken over the whole micro-batch, as the CPU trainer does with --shards 1.
#pragma once
#include "train/trainer.h"

namespace wattmoe::gpu {

// Trains on CUDA device `device` (error naming it when absent). Synchronises with the device every micro-batch (the
// loss is read back), so the reported tokens/s is wall-clock throughput.
TrainSummary train_cuda(const TrainConfig& cfg, int device = 0);

}  // namespace wattmoe::gpu
