#include "train/trainer.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "eval/evaluate.h"
#include "io/atomic_file.h"
#include "io/files.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "text/sha256.h"
#include "text/tokenizer_export.h"
#include "train/data.h"

namespace wattmoe {

namespace fs = std::filesystem;

namespace train_detail {

TrainData prepare_training(const TrainConfig& cfg) {
  WATTMOE_REQUIRE(!cfg.out_dir.empty(), "train: --out is required");
  WATTMOE_REQUIRE(cfg.steps > 0 && cfg.batch > 0 && cfg.seq > 1 && cfg.accum > 0,
                  "train: steps, batch, accum must be positive and seq > 1");
  cfg.model.validate("train preset " + cfg.preset);
  // The library's one pairing check (text/tokenizer.h): an Error naming the tokenizer file when its vocabulary is
  // larger than the model's.
  std::unique_ptr<Tokenizer> tok = model_tokenizer(cfg.out_dir, cfg.tokenizer, cfg.model.vocab_size);
  TrainData d;
  d.train = load_token_stream(cfg.train_file, *tok, cfg.seq + 2);
  d.val = load_token_stream(cfg.val_file, *tok, 2);
  fs::create_directories(cfg.out_dir);
  const fs::path out = cfg.out_dir;
  d.lock.emplace((out / ".lock").string(), "another `wattmoe train` is writing this --out (two runs would interleave); "
                                           "wait for it or choose another --out");
  const bool has_model = fs::exists(out / "model.safetensors") || fs::exists(out / "model.safetensors.index.json");
  const bool has_ckpt =
      fs::exists(out / "checkpoint" / "trainer_state.json") || fs::exists(out / "checkpoint.old" / "trainer_state.json");
  WATTMOE_REQUIRE(!has_model || has_ckpt,
                  "--out {}: holds a model but no checkpoint of a training run; training would overwrite it (choose "
                  "a new --out)", cfg.out_dir);
  export_tokenizer(cfg.tokenizer, cfg.out_dir);  // DIR/tokenizer.json + tokenizer_config.json beside the weights
  d.run = run_identity(cfg, sha256_hex(read_text_file(cfg.train_file)));
  d.model = cfg.model;
  d.model.router_aux_loss_coef = cfg.lb_coef;
  d.model.router_z_loss_coef = cfg.z_coef;
  d.model.max_position_embeddings = cfg.seq;  // the context the model is trained for (generate stops there)
  return d;
}

Json run_identity(const TrainConfig& cfg, const std::string& train_sha256) {
  return Json{{"preset", cfg.preset}, {"seed", cfg.seed}, {"train_sha256", train_sha256}, {"tokenizer", cfg.tokenizer},
              {"seq", cfg.seq}, {"batch", cfg.batch}, {"accum", cfg.accum}, {"steps", cfg.steps},
              {"lr", cfg.lr.peak}, {"lb_coef", cfg.lb_coef}, {"z_coef", cfg.z_coef}};
}

Json state_json(const TrainConfig& cfg, int step, const Json& run) {
  return Json{{"step", step}, {"train_file", cfg.train_file}, {"run", run}};
}

void check_same_run(const std::string& state_path, const Json& state, const Json& run) {
  if (!state.contains("run")) {
    log_warn("{}: an older checkpoint without the run's identity; resuming unchecked", state_path);
    return;
  }
  std::string changed;
  for (const auto& [key, want] : run.items()) {
    const Json had = state.at("run").value(key, Json());
    if (had != want) changed += fmt::format("{}{} {} -> {}", changed.empty() ? "" : ", ", key, had.dump(), want.dump());
  }
  WATTMOE_REQUIRE(changed.empty(),
                  "{}: this run differs from the checkpoint's ({}); use the same flags and data, or --no-resume to "
                  "start over", state_path, changed);
}

int resume_step(const Json& state, const std::string& state_path, const Json& run, int steps) {
  WATTMOE_REQUIRE(state.is_object() && state.contains("step") && state["step"].is_number_integer(),
                  "{}: expected an object with an integer \"step\"", state_path);
  const int64_t step = state["step"].get<int64_t>();
  WATTMOE_REQUIRE(step >= 0 && step <= steps, "{}: step {} is outside [0, {}] (the run's --steps)", state_path, step,
                  steps);
  WATTMOE_REQUIRE(!state.contains("run") || state["run"].is_object(), "{}: \"run\" must be an object", state_path);
  check_same_run(state_path, state, run);
  return int(step);
}

int resume_or_init(const TrainConfig& cfg, const ModelConfig& mc, const ParamLayout& layout, const Json& run,
                   std::vector<float>& params, const std::function<void(const std::string&)>& load_optimizer) {
  ResumePoint rp = find_resume_point(cfg, mc, layout, run);
  if (rp.dir.empty()) {
    init_params(mc, layout, params.data(), cfg.seed);
    return 0;
  }
  params = std::move(rp.params);
  load_optimizer(rp.dir + "/optimizer.safetensors");
  log_info("resuming from {} at step {}", rp.dir, rp.step);
  return rp.step;
}

// metrics.jsonl keeps the lines of steps <= start (a crash after the last checkpoint leaves later ones, which the
// resumed run writes again); a fresh run (start 0) starts it empty.
std::string cut_metrics(const std::string& path, int start) {
  const std::string target = output_path(path);
  std::string kept;
  if (start > 0 && fs::exists(target)) {
    std::istringstream in(read_text_file(target));
    for (std::string line; std::getline(in, line);) {
      const Json j = Json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= start)
        kept += line + "\n";
    }
  }
  AtomicFile f(target);
  f.write(kept.data(), kept.size());
  f.commit();
  return target;
}

StepBook::StepBook(const TrainConfig& cfg, int start)
    : cfg_(cfg), start_(start), metrics_(cut_metrics((fs::path(cfg.out_dir) / "metrics.jsonl").string(), start),
                                         std::ios::app),
      tty_(isatty(STDERR_FILENO)) {
  WATTMOE_REQUIRE(metrics_.good(), "{}/metrics.jsonl: cannot open for writing", cfg.out_dir);
  sum_.first_step = start;
}

bool StepBook::after_step(int done, const Step& s, const std::function<EvalResult(int64_t)>& eval,
                          const std::function<void(int)>& checkpoint) {
  WATTMOE_REQUIRE(std::isfinite(s.loss), "train: loss became {} at step {} (lower the learning rate?)", s.loss,
                  done - 1);
  tokens_done_ += s.tokens;
  sum_.final_train_loss = s.loss;
  const double el = timer_.seconds(), tps = double(tokens_done_) / std::max(el, 1e-9);
  if (done % cfg_.log_every == 0 || done == cfg_.steps) {
    metrics_ << Json{{"step", done}, {"loss", s.loss}, {"lb_loss", s.lb}, {"z_loss", s.z}, {"lr", s.lr},
                     {"grad_norm", s.grad_norm}, {"tokens_per_s", tps}, {"elapsed_s", el}}.dump()
             << "\n";
    metrics_.flush();
    if (tty_ || log_timer_.seconds() > 10 || done == cfg_.steps) {
      const double eta = double(cfg_.steps - done) * el / double(done - start_);
      print_progress(tty_, done, cfg_.steps, s.loss, s.lb, s.lr, tps, eta);
      log_timer_.reset();
    }
  }
  const bool stop = stop_signal_.requested() || (cfg_.stop_after > 0 && done - start_ >= cfg_.stop_after);
  if (done % cfg_.eval_every == 0 || done == cfg_.steps) {
    const EvalResult ev = eval(done == cfg_.steps ? 0 : cfg_.eval_tokens);
    metrics_ << Json{{"step", done}, {"val_bpb", ev.bits_per_byte()}, {"val_nats_per_token", ev.nats_per_token()},
                     {"val_tokens", ev.tokens}}.dump()
             << "\n";
    metrics_.flush();
    if (tty_) fmt::print(stderr, "\n");
    log_info("step {}: val {:.4f} bits/byte on {} tokens", done, ev.bits_per_byte(), ev.tokens);
    sum_.final_val_bpb = ev.bits_per_byte();
  }
  if (done % cfg_.ckpt_every == 0 || done == cfg_.steps || stop) checkpoint(done);
  if (stop && stop_signal_.requested()) log_warn("stopped at step {} by {}; checkpoint written", done,
                                                 stop_signal_name(stop_signal_received()));
  return stop;
}

TrainSummary StepBook::finish(int last_step) {
  if (tty_) fmt::print(stderr, "\n");
  sum_.last_step = last_step;
  sum_.seconds = timer_.seconds();
  sum_.tokens_per_second = double(tokens_done_) / std::max(sum_.seconds, 1e-9);
  if (stop_signal_.requested()) sum_.interrupted = stop_signal_name(stop_signal_received());
  return sum_;
}

std::string fmt_duration(double s) {
  const int64_t t = int64_t(s);
  return t >= 3600 ? fmt::format("{}h{:02d}m", t / 3600, int(t % 3600 / 60)) : fmt::format("{}m{:02d}s", t / 60, int(t % 60));
}

// Writes DIR/checkpoint.tmp then swaps it in, so an interrupted write never destroys the last good checkpoint.
void write_checkpoint(const std::string& out, const ModelConfig& mc, const ParamLayout& layout, const float* params,
                      const std::function<void(const std::string&)>& save_optimizer, const Json& state) {
  const fs::path dir = fs::path(out) / "checkpoint", tmp = fs::path(out) / "checkpoint.tmp",
                 old = fs::path(out) / "checkpoint.old";
  fs::remove_all(tmp);
  save_model<float>(tmp.string(), mc, layout, params);
  save_optimizer((tmp / "optimizer.safetensors").string());
  write_json_file((tmp / "trainer_state.json").string(), state);
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
  save_model<float>(out, mc, layout, params);  // the latest weights, loadable by every command
}

ResumePoint find_resume_point(const TrainConfig& cfg, const ModelConfig& mc, const ParamLayout& layout, const Json& run) {
  ResumePoint r;
  if (!cfg.resume) return r;
  for (const char* name : {"checkpoint", "checkpoint.old"}) {
    const fs::path p = fs::path(cfg.out_dir) / name;
    if (!fs::exists(p / "trainer_state.json")) continue;
    ModelWeights<float> w = load_model<float>(p.string());
    WATTMOE_REQUIRE(w.config.arch == mc.arch && w.layout.total() == layout.total() &&
                        w.config.hidden_size == mc.hidden_size && w.config.num_layers == mc.num_layers,
                    "{}: the checkpoint's architecture differs from preset {} (use a new --out or --no-resume)",
                    p.string(), cfg.preset);
    r.step = resume_step(read_json_file((p / "trainer_state.json").string()), (p / "trainer_state.json").string(),
                         run, cfg.steps);
    r.dir = p.string();
    r.params = std::move(w.params);
    return r;
  }
  return r;
}

void print_progress(bool tty, int done, int steps, double loss, double lb, double lr, double tps, double eta_s) {
  fmt::print(stderr, "{}step {}/{} | loss {:.4f} | lb {:.3f} | lr {:.2e} | {:.0f} tok/s | ETA {}{}", tty ? "\r" : "",
             done, steps, loss, lb, lr, tps, fmt_duration(eta_s), tty ? "   " : "\n");
}

}  // namespace train_detail

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

TrainSummary train(const TrainConfig& cfg, const RunnerOptions& where) {
  const train_detail::TrainData data = train_detail::prepare_training(cfg);
  const TokenStream &train_s = data.train, &val_s = data.val;
  const ModelConfig& mc = data.model;
  std::unique_ptr<Runner> run = make_runner(mc, where);
  const ParamLayout& layout = run->layout();
  std::vector<float> params(size_t(layout.total()));
  const int shards = std::max(1, std::min(cfg.batch, cfg.shards > 0 ? cfg.shards
                                                                      : int(std::thread::hardware_concurrency())));
  WATTMOE_REQUIRE(cfg.batch % shards == 0, "train: batch {} is not divisible into {} shards", cfg.batch, shards);
  // The GPU runs a micro-batch whole: shards only when asked for (the CPU's default is one per core).
  run->train_begin(cfg.adamw, where.device == "cpu" ? shards : std::max(1, cfg.shards));
  const int start =
      train_detail::resume_or_init(cfg, mc, layout, data.run, params, [&](const std::string& path) { run->load_optimizer(path); });
  run->set_params(params.data());

  train_detail::StepBook book(cfg, start);
  std::vector<int32_t> in, tg;
  int step = start;
  for (; step < cfg.steps; ++step) {
    double loss = 0, lb = 0, z = 0;
    // The next-token gradient is the mean over all tokens of the step; each micro-batch's auxiliary losses carry
    // 1/accum of their coefficients.
    const double scale = 1.0 / (double(cfg.batch) * cfg.seq * cfg.accum);
    run->zero_grads();
    for (int micro = 0; micro < cfg.accum; ++micro) {
      sample_windows(train_s, cfg.batch, cfg.seq, cfg.seed, step, micro, in, tg);
      const TrainLosses l = run->train_micro_batch(in.data(), tg.data(), cfg.batch, cfg.seq, scale, cfg.lb_coef,
                                                   cfg.z_coef, cfg.accum);
      loss += l.loss, lb += l.load_balance, z += l.z;
    }
    const double gnorm = run->clip_gradients(cfg.clip);
    WATTMOE_REQUIRE(std::isfinite(gnorm), "train: gradient norm became {} at step {} (lower the learning rate?)", gnorm,
                    step);
    const double lr = cfg.lr.at(step);
    run->optimizer_step(lr);
    const bool stop = book.after_step(
        step + 1, {loss, lb, z, lr, gnorm, int64_t(cfg.batch) * cfg.seq * cfg.accum},
        [&](int64_t max_tokens) { return evaluate(*run, val_s, {cfg.seq, cfg.batch, max_tokens}); },
        [&](int done) {
          run->get_params(params.data());
          train_detail::write_checkpoint(cfg.out_dir, mc, layout, params.data(),
                                         [&](const std::string& path) { run->save_optimizer(path); },
                                         train_detail::state_json(cfg, done, data.run));
        });
    if (stop) {
      ++step;
      break;
    }
  }
  return book.finish(step);
}

}  // namespace wattmoe
