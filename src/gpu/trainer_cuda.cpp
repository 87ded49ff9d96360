#include "gpu/trainer_cuda.h"

#include <cmath>

#include "core/log.h"
#include "gpu/evaluate_cuda.h"
#include "gpu/transformer_cuda.h"
#include "io/json.h"
#include "ops/cuda/dense_ops.h"
#include "train/data.h"

namespace wattmoe::gpu {

namespace {

// AdamW's state on the device: moments m, v and the decay mask, built as AdamW builds it (1 on matrices).
struct DeviceAdamW {
  AdamWConfig cfg;
  cuda::DeviceBuffer<float> m, v;
  cuda::DeviceBuffer<uint8_t> decay;
  int64_t t = 0;

  DeviceAdamW(cuda::Context& ctx, const ParamLayout& layout, AdamWConfig c) : cfg(c) {
    const size_t n = size_t(layout.total());
    const std::vector<uint8_t> mask = weight_decay_mask(layout);
    decay.upload(mask, ctx.stream());
    m.resize(n), v.resize(n);
    m.zero(ctx.stream()), v.zero(ctx.stream());
    ctx.sync();  // `mask` dies here
  }

  void step(cuda::Context& ctx, float* params, const float* grads, double lr) {
    ++t;
    cuda::adamw_step(ctx, params, grads, m.data(), v.data(), decay.data(), nullptr, int64_t(m.size()), lr, cfg.beta1,
                     cfg.beta2, cfg.eps, cfg.weight_decay, t);
  }

  // AdamW's own file format (train/optimizer.h), so that CPU and GPU runs resume from each other's checkpoints.
  void save(cuda::Context& ctx, const ParamLayout& layout, const std::string& path) const {
    const std::vector<float> hm = m.download(ctx.stream()), hv = v.download(ctx.stream());
    save_adam_moments(path, layout, hm.data(), hv.data(), t);
  }

  void load(cuda::Context& ctx, const ParamLayout& layout, const std::string& path) {
    std::vector<float> hm(m.size()), hv(v.size());
    t = load_adam_moments(path, layout, hm.data(), hv.data());
    m.upload(hm, ctx.stream()), v.upload(hv, ctx.stream());
    ctx.sync();  // hm, hv die here
  }
};

}  // namespace

TrainSummary train_cuda(const TrainConfig& cfg, int device) {
  const train_detail::TrainData data = train_detail::prepare_training(cfg);
  const TokenStream &train_s = data.train, &val_s = data.val;
  const ModelConfig& mc = data.model;

  cuda::Context ctx(device);
  TransformerCuda model(mc, ctx);
  const ParamLayout& layout = model.layout();
  const int64_t n_params = layout.total();
  std::vector<float> params(static_cast<size_t>(n_params));
  DeviceAdamW opt(ctx, layout, cfg.adamw);
  const int start = train_detail::resume_or_init(cfg, mc, layout, params,
                                                 [&](const std::string& path) { opt.load(ctx, layout, path); });
  model.upload_params(params.data());

  if (cfg.shards > 1) log_warn("train --device cuda: --shards {} ignored (the GPU runs each micro-batch whole)", cfg.shards);
  train_detail::StepBook book(cfg, start);
  std::vector<int32_t> in, tg;
  auto checkpoint = [&](int done) {
    model.download_params(params.data());
    train_detail::write_checkpoint(
        cfg.out_dir, mc, layout, params.data(), [&](const std::string& path) { opt.save(ctx, layout, path); },
        train_detail::state_json(cfg, done));
  };
  int step = start;
  for (; step < cfg.steps; ++step) {
    double loss = 0, lb = 0, z = 0;
    // As the CPU trainer with one shard: the NLL gradient is the mean over all tokens of the step, each micro-batch's
    // auxiliary losses carry 1/accum of their coefficients.
    const double scale = 1.0 / (double(cfg.batch) * cfg.seq * cfg.accum), share = 1.0 / double(cfg.accum);
    model.zero_grads();
    for (int micro = 0; micro < cfg.accum; ++micro) {
      sample_windows(train_s, cfg.batch, cfg.seq, cfg.seed, step, micro, in, tg);
      model.forward(in.data(), cfg.batch, cfg.seq);
      loss += model.nll(tg.data(), scale, /*want_grad=*/true) * scale;
      const AuxLossValues aux = model.router_aux_losses(cfg.lb_coef * share, cfg.z_coef * share);
      lb += aux.load_balance * share, z += aux.z * share;
      model.backward();
    }
    // clip_grad_norm (train/optimizer.h) on the device: the norm in double, scaled to cfg.clip when larger.
    const double gnorm = std::sqrt(cuda::sum_squares(ctx, model.grads(), n_params));
    WATTMOE_REQUIRE(std::isfinite(gnorm), "train: gradient norm became {} at step {} (lower the learning rate?)", gnorm,
                    step);
    if (cfg.clip > 0 && gnorm > cfg.clip) cuda::scale(ctx, model.grads(), float(cfg.clip / (gnorm + 1e-6)), n_params);
    const double lr = cfg.lr.at(step);
    opt.step(ctx, model.params(), model.grads(), lr);
    const bool stop = book.after_step(
        step + 1, {loss, lb, z, lr, gnorm, int64_t(cfg.batch) * cfg.seq * cfg.accum},
        [&](int64_t max_tokens) { return evaluate_cuda(model, val_s, {cfg.seq, cfg.batch, max_tokens}); }, checkpoint);
    if (stop) {
      ++step;
      break;
    }
  }
  ctx.sync();
  return book.finish(step);
}

}  // namespace wattmoe::gpu
