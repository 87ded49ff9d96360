#include "train/trainer.h"

#include <unistd.h>

#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "eval/evaluate.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "model/transformer.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "train/data.h"

namespace wattmoe {

namespace fs = std::filesystem;

namespace {

// Set by SIGINT/SIGTERM: the loop finishes its step, writes a checkpoint and returns. (A signal handler can only
// reach process-wide state; this flag is the one exception to "no mutable globals".)
volatile std::sig_atomic_t g_stop_requested = 0;
extern "C" void on_stop_signal(int) { g_stop_requested = 1; }

std::string fmt_duration(double s) {
  const int64_t t = int64_t(s);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, int(t % 3600 / 60)) : fmt::format("{}m{:02d}s", t / 60, int(t % 60));
}

// Writes DIR/checkpoint.tmp then swaps it in, so an interrupted write never destroys the last good checkpoint.
void write_checkpoint(const std::string& out, const ModelConfig& mc, const ParamLayout& layout, const float* params,
                      const AdamW& opt, const Json& state) {
  const fs::path dir = fs::path(out) / "checkpoint", tmp = fs::path(out) / "checkpoint.tmp",
                 old = fs::path(out) / "checkpoint.old";
  fs::remove_all(tmp);
  save_model<float>(tmp.string(), mc, layout, params);
  opt.save((tmp / "optimizer.safetensors").string());
  write_json_file((tmp / "trainer_state.json").string(), state);
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
  save_model<float>(out, mc, layout, params);  // the latest weights, loadable by every command
}

fs::path find_checkpoint(const std::string& out) {
  for (const char* name : {"checkpoint", "checkpoint.old"}) {
    fs::path p = fs::path(out) / name;
    if (fs::exists(p / "trainer_state.json")) return p;
  }
  return {};
}

}  // namespace

void init_params(const ModelConfig& c, const ParamLayout& layout, float* params, uint64_t seed) {
  Rng rng(seed);
  for (const ParamSpec& s : layout.specs()) {
    float* p = params + s.offset;
    if (s.kind == ParamKind::Norm) {
      std::fill(p, p + s.numel, 1.0f);
    } else if (s.kind == ParamKind::Bias) {
      std::fill(p, p + s.numel, 0.0f);
    } else {
      for (int64_t i = 0; i < s.numel; ++i) p[i] = float(0.02 * rng.normal());
    }
  }
}

TrainSummary train(const TrainConfig& cfg) {
  WATTMOE_REQUIRE(!cfg.out_dir.empty(), "train: --out is required");
  WATTMOE_REQUIRE(cfg.steps > 0 && cfg.batch > 0 && cfg.seq > 1 && cfg.accum > 0,
                  "train: steps, batch, accum must be positive and seq > 1");
  cfg.model.validate("train preset " + cfg.preset);
  std::unique_ptr<Tokenizer> tok = make_tokenizer(cfg.tokenizer);
  WATTMOE_REQUIRE(tok->vocab_size() <= cfg.model.vocab_size, "train: tokenizer vocabulary {} exceeds the model's {}",
                  tok->vocab_size(), cfg.model.vocab_size);
  const TokenStream train_s = load_token_stream(cfg.train_file, *tok, cfg.seq + 2);
  const TokenStream val_s = load_token_stream(cfg.val_file, *tok, 2);
  fs::create_directories(cfg.out_dir);

  ModelConfig mc = cfg.model;
  mc.router_aux_loss_coef = cfg.lb_coef;
  mc.router_z_loss_coef = cfg.z_coef;
  mc.max_position_embeddings = cfg.seq;  // the context the model is trained for (generate stops there)
  Transformer<float> model(mc);
  const ParamLayout& layout = model.layout();
  std::vector<float> params(size_t(layout.total())), grads(params.size());
  AdamW opt(layout, cfg.adamw);
  int start = 0;
  const fs::path ck = cfg.resume ? find_checkpoint(cfg.out_dir) : fs::path();
  if (!ck.empty()) {
    ModelWeights<float> w = load_model<float>(ck.string());
    WATTMOE_REQUIRE(w.config.arch == mc.arch && w.layout.total() == layout.total() &&
                        w.config.hidden_size == mc.hidden_size && w.config.num_layers == mc.num_layers,
                    "{}: the checkpoint's architecture differs from preset {} (use a new --out or --no-resume)",
                    ck.string(), cfg.preset);
    params = std::move(w.params);
    opt.load((ck / "optimizer.safetensors").string());
    start = read_json_file((ck / "trainer_state.json").string()).at("step").get<int>();
    log_info("resuming from {} at step {}", ck.string(), start);
  } else {
    init_params(mc, layout, params.data(), cfg.seed);
  }

  std::ofstream metrics(fs::path(cfg.out_dir) / "metrics.jsonl", std::ios::app);
  WATTMOE_REQUIRE(metrics.good(), "{}/metrics.jsonl: cannot open for writing", cfg.out_dir);
  auto prev_int = std::signal(SIGINT, on_stop_signal);
  auto prev_term = std::signal(SIGTERM, on_stop_signal);
  g_stop_requested = 0;
  const bool tty = isatty(STDERR_FILENO);

  TrainSummary sum;
  sum.first_step = start;
  Timer timer, log_timer;
  int64_t tokens_done = 0;
  double last_loss = 0;
  const int shards = std::max(1, std::min(cfg.batch, cfg.shards > 0 ? cfg.shards
                                                                      : int(std::thread::hardware_concurrency())));
  WATTMOE_REQUIRE(cfg.batch % shards == 0, "train: batch {} is not divisible into {} shards", cfg.batch, shards);
  const int shard_b = cfg.batch / shards;
  if (shards > 1) ops::set_blas_threads(1);
  struct Shard {
    std::vector<int32_t> in, tg;
    std::vector<float> dlogits, grads;
    Activations<float> acts;
    double loss = 0, lb = 0, z = 0;
  };
  std::vector<Shard> work(static_cast<size_t>(shards));
  for (auto& w : work) w.grads.assign(params.size(), 0.0f);
  std::vector<int32_t> in, tg;
  auto state_json = [&](int step) {
    return Json{{"step", step}, {"preset", cfg.preset}, {"seed", cfg.seed}, {"train_file", cfg.train_file}};
  };
  int step = start;
  for (; step < cfg.steps; ++step) {
    double loss = 0, lb = 0, z = 0;
    const double scale = 1.0 / (double(cfg.batch) * cfg.seq * cfg.accum);
    for (auto& w : work) std::fill(w.grads.begin(), w.grads.end(), 0.0f);
    for (int micro = 0; micro < cfg.accum; ++micro) {
      sample_windows(train_s, cfg.batch, cfg.seq, cfg.seed, step, micro, in, tg);
      auto run_shard = [&](int k) {
        Shard& w = work[size_t(k)];
        const size_t off = size_t(k) * shard_b * cfg.seq, len = size_t(shard_b) * cfg.seq;
        w.in.assign(in.begin() + off, in.begin() + off + len);
        w.tg.assign(tg.begin() + off, tg.begin() + off + len);
        model.forward(params.data(), w.in.data(), shard_b, cfg.seq, w.acts);
        w.dlogits.resize(w.acts.logits.size());
        w.loss = ops::nll_loss<float>(w.acts.logits.data(), w.tg.data(), int64_t(len), mc.vocab_size,
                                      w.dlogits.data(), scale) * scale;
        const double share = 1.0 / (double(cfg.accum) * shards);
        const AuxLossValues aux = model.router_aux_losses(w.acts, cfg.lb_coef * share, cfg.z_coef * share);
        w.lb = aux.load_balance * share, w.z = aux.z * share;
        model.backward(params.data(), w.in.data(), w.dlogits.data(), w.acts, w.grads.data());
      };
      std::vector<std::thread> threads;
      for (int k = 1; k < shards; ++k) threads.emplace_back(run_shard, k);
      run_shard(0);
      for (auto& t : threads) t.join();
      for (const auto& w : work) loss += w.loss, lb += w.lb, z += w.z;
    }
    // Sum shard gradients in a fixed order: bitwise reproducible for a given shard count.
    for (size_t i = 0; i < grads.size(); ++i) {
      float g = 0;
      for (const auto& w : work) g += w.grads[i];
      grads[i] = g;
    }
    WATTMOE_REQUIRE(std::isfinite(loss), "train: loss became {} at step {} (lower the learning rate?)", loss, step);
    const double gnorm = clip_grad_norm(grads.data(), int64_t(grads.size()), cfg.clip);
    const double lr = cfg.lr.at(step);
    opt.step(params.data(), grads.data(), lr);
    tokens_done += int64_t(cfg.batch) * cfg.seq * cfg.accum;
    last_loss = loss;
    const int done = step + 1;
    const double el = timer.seconds(), tps = double(tokens_done) / std::max(el, 1e-9);
    if (done % cfg.log_every == 0 || done == cfg.steps) {
      metrics << Json{{"step", done}, {"loss", loss}, {"lb_loss", lb}, {"z_loss", z}, {"lr", lr}, {"grad_norm", gnorm},
                      {"tokens_per_s", tps}, {"elapsed_s", el}}.dump()
              << "\n";
      metrics.flush();
      if (tty || log_timer.seconds() > 10 || done == cfg.steps) {
        const double eta = double(cfg.steps - done) * el / double(done - start);
        fmt::print(stderr, "{}step {}/{} | loss {:.4f} | lb {:.3f} | lr {:.2e} | {:.0f} tok/s | ETA {}{}", tty ? "\r" : "",
                   done, cfg.steps, loss, lb, lr, tps, fmt_duration(eta), tty ? "   " : "\n");
        log_timer.reset();
      }
    }
    const bool stop = g_stop_requested || (cfg.stop_after > 0 && done - start >= cfg.stop_after);
    if (done % cfg.eval_every == 0 || done == cfg.steps) {
      const EvalResult ev = evaluate(model, params.data(), val_s, cfg.seq, cfg.batch,
                                     done == cfg.steps ? 0 : cfg.eval_tokens);
      metrics << Json{{"step", done}, {"val_bpb", ev.bits_per_byte()}, {"val_nats_per_token", ev.nats_per_token()},
                      {"val_tokens", ev.tokens}}.dump()
              << "\n";
      metrics.flush();
      if (tty) fmt::print(stderr, "\n");
      log_info("step {}: val {:.4f} bits/byte on {} tokens", done, ev.bits_per_byte(), ev.tokens);
      sum.final_val_bpb = ev.bits_per_byte();
    }
    if (done % cfg.ckpt_every == 0 || done == cfg.steps || stop) {
      write_checkpoint(cfg.out_dir, mc, layout, params.data(), opt, state_json(done));
    }
    if (stop) {
      ++step;
      if (g_stop_requested) log_warn("stopped at step {} on request; checkpoint written", done);
      break;
    }
  }
  std::signal(SIGINT, prev_int);
  std::signal(SIGTERM, prev_term);
  if (tty) fmt::print(stderr, "\n");
  sum.last_step = step;
  sum.final_train_loss = last_loss;
  sum.seconds = timer.seconds();
  sum.tokens_per_second = double(tokens_done) / std::max(sum.seconds, 1e-9);
  return sum;
}

}  // namespace wattmoe
