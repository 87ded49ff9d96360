// wattmoe._core.Model: one checkpoint loaded once (weights on the host, its tokenizer) and the library's jobs on it,
// each exactly as the command of the same name runs it — eval (eval/evaluate.h, as `wattmoe eval`), run
// (eval/budgeted_run.h, as `wattmoe run`: the same summary and the same per-window records as its --log), generate
// (serve/engine.h: one request to the serving engine, which samples as `wattmoe generate` does and can hold a budget),
// and forward (model/runner.h: logits, router probabilities and routing of the last forward as NumPy arrays).
// eval, run and generate make their own runner per call, as the CLI does per process; forward keeps one.
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include "bindings.h"
#include "core/error.h"
#include "io/files.h"
#include "model/checkpoint.h"
#include "text/token_stream.h"
#include "text/tokenizer.h"

namespace wattmoe::py {

using namespace nb::literals;

namespace {

// A NumPy array that owns `v` (moved, not copied): the array's capsule frees it.
template <class T>
nb::ndarray<nb::numpy, T> owned_array(std::vector<T>&& v, std::initializer_list<size_t> shape) {
  auto* buf = new std::vector<T>(std::move(v));
  nb::capsule owner(buf, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(buf->data(), shape, owner);
}

// What the last forward left: host copies, since the runner reuses its buffers on the next forward.
struct ForwardOut {
  std::vector<float> logits;
  std::vector<std::vector<float>> probs;     // per layer, empty for dense layers
  std::vector<std::vector<int32_t>> expert;  // per layer [N, k], -1 for unused slots
  std::vector<int> k;
};

}  // namespace

class PyModel {
 public:
  PyModel(std::string dir, const std::string& tokenizer, const nb::dict& device)
      : dir_(std::move(dir)), where_(runner_options(device)) {
    nb::gil_scoped_release nogil;
    check_runner_options(where_);  // before any work: a GPU-less machine fails at once
    m_ = load_model<float>(dir_);
    tok_ = model_tokenizer(dir_, tokenizer, m_.config.vocab_size);
  }

  const std::string& dir() const { return dir_; }
  nb::object config() const { return to_python(model_config_to_json(m_.config)); }
  std::string tokenizer() const { return tok_->describe(); }
  nb::object device() const {
    return to_python(Json{{"device", where_.device}, {"precision", where_.precision}, {"moe_kernels", where_.moe_kernels},
                          {"expert_precision", where_.expert_precision}, {"gpu", where_.gpu}});
  }

  nb::ndarray<nb::numpy, int32_t> encode(const std::string& text) const {
    std::vector<int32_t> ids = tok_->encode(text);
    const size_t n = ids.size();
    return owned_array(std::move(ids), {n});
  }
  nb::bytes decode(nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> ids) const {
    const std::string s = tok_->decode(std::span<const int32_t>(ids.data(), ids.shape(0)));
    return nb::bytes(s.data(), s.size());
  }

  // `wattmoe eval`'s JSON for the text (or the file at path).
  nb::object eval(const std::optional<std::string>& text, const std::optional<std::string>& path,
                  const nb::dict& windows, const nb::dict& routing_opts) const {
    const EvalWindows w = eval_windows(windows);
    const RoutingOptions ro = routing_options(routing_opts);
    Json j;
    {
      nb::gil_scoped_release nogil;
      const TokenStream s = stream(text, path);
      j = run_eval_job(m_, dir_, *tok_, s, s.path, where_, w, ro).json;  // as wattmoe eval --json
    }
    return to_python(j);
  }

  // `wattmoe run`: the summary; on_record (a callable or None) gets each window's record as it is logged and
  // returns True to go on (False ends the run after that window). Called from the thread that runs this.
  nb::object run(const std::optional<std::string>& text, const std::optional<std::string>& path, const nb::dict& opts,
                 const nb::dict& routing_opts, const nb::object& ttt, const nb::object& on_record) const {
    RunConfig c;
    c.model = dir_;
    c.runner = where_;
    c.routing = routing_options(routing_opts);
    apply_run_options(opts, ttt, c);
    WATTMOE_REQUIRE(on_record.is_none() || PyCallable_Check(on_record.ptr()), "run: on_record must be callable or None");
    const nb::handle cb = on_record;  // kept alive by the caller; no reference counting without the GIL
    WindowRecordFn fn;
    if (cb.is_valid() && !cb.is_none())
      fn = [cb](const Json& record) {
        nb::gil_scoped_acquire gil;
        return nb::cast<bool>(cb(to_python(record)));
      };
    Json summary;
    {
      nb::gil_scoped_release nogil;
      check_run_config(c);  // before any work, as the CLI
      const TokenStream s = stream(text, path);
      c.data = s.path;
      std::vector<std::pair<std::string, std::string>> inputs{{"data", c.data}, {"model", dir_ + "/model.safetensors"}};
      refuse_output_is_input("log", c.log, inputs);
      summary = run_budgeted(c, m_, s, fn);
    }
    return to_python(summary);
  }

  // One request to the serving engine: the sampled text and what it cost (serve/job.h JobUsage), and the engine's
  // summary (energy source, steps, the meter's energy).
  nb::object generate(const std::string& prompt, int max_new, double temperature, double top_p, uint64_t seed,
                      const nb::dict& opts, const nb::dict& routing_opts) const {
    EngineConfig c;
    c.runner = where_;
    c.routing = routing_options(routing_opts);
    apply_generate_options(opts, c);
    c.limits.max_batch = 1;
    c.limits.max_queue = 1;
    WATTMOE_REQUIRE(std::isfinite(temperature) && temperature >= 0, "generate: temperature must be >= 0, got {}", temperature);
    WATTMOE_REQUIRE(std::isfinite(top_p) && top_p > 0 && top_p <= 1, "generate: top_p must be in (0, 1], got {}", top_p);
    WATTMOE_REQUIRE(max_new >= 1, "generate: max_new must be >= 1, got {}", max_new);
    Json out;
    {
      nb::gil_scoped_release nogil;
      check_engine_config(c);
      GenParams p;
      p.prompt = tok_->encode(prompt);
      if (tok_->bos_id()) p.prompt.insert(p.prompt.begin(), *tok_->bos_id());  // as wattmoe generate
      p.max_tokens = max_new, p.temperature = temperature, p.top_p = top_p, p.seed = seed;
      WATTMOE_REQUIRE(!p.prompt.empty(), "generate: the prompt is empty");
      Engine engine(c, m_, tok_);
      WATTMOE_REQUIRE(int(p.prompt.size()) < engine.context(), "generate: the prompt has {} tokens but the context holds {}",
                      p.prompt.size(), engine.context());
      const int64_t prompt_tokens = int64_t(p.prompt.size());
      auto job = std::make_shared<Job>(std::move(p));
      const Engine::Admit admit = engine.submit(job);
      WATTMOE_REQUIRE(admit == Engine::Admit::Ok, "generate: the engine refused the request ({})",
                      Engine::admit_name(admit));
      job->wait_done();
      const Json summary = engine.stop();
      WATTMOE_REQUIRE(job->error().empty(), "generate: {}", job->error());
      const JobUsage u = job->usage();
      out = Json{{"text", job->text()}, {"finish_reason", job->finish_reason()}, {"prompt_tokens", prompt_tokens},
                 {"completion_tokens", u.completion_tokens}, {"context", engine.context()}, {"energy_j", u.energy_j},
                 {"experts_per_token", u.experts_per_token()}, {"latency_s", u.latency_s}, {"engine", summary}};
    }
    return to_python(out);
  }

  // One forward of ids [B, S] with this routing: logits [B, S, V], and per layer the router probabilities [B, S, E]
  // and the chosen experts [B, S, k] (None for dense layers).
  nb::dict forward(nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> ids,
                   const nb::dict& routing_opts) {
    const RoutingOptions ro = routing_options(routing_opts);
    const size_t B = ids.shape(0), S = ids.shape(1);
    WATTMOE_REQUIRE(B >= 1 && S >= 1, "forward: ids must be [batch, seq] with both >= 1, got [{}, {}]", B, S);
    const int L = m_.config.num_layers, V = m_.config.vocab_size, E = m_.config.num_experts;
    ForwardOut o;
    {
      nb::gil_scoped_release nogil;
      std::lock_guard<std::mutex> lk(mu_);
      if (!fwd_) {
        fwd_ = make_runner(m_.config, where_);
        fwd_->set_params(m_.params.data());
      }
      fwd_->set_routing(make_routing(ro, m_.config, double(B * S), where_.expert_precision).spec());
      fwd_->forward(ids.data(), int(B), int(S));
      const float* lg = fwd_->logits();
      o.logits.assign(lg, lg + B * S * size_t(V));
      const RouterViews<float> views = fwd_->router_views();
      o.probs.resize(L), o.expert.resize(L), o.k.assign(L, 0);
      for (int l = 0; l < L; ++l) {
        if (!views.layers[l].moe()) continue;
        o.probs[l].assign(views.layers[l].probs, views.layers[l].probs + B * S * size_t(E));
        const Routing& r = fwd_->routing(l);
        o.expert[l] = r.expert, o.k[l] = r.k;
      }
    }
    nb::dict out;
    out["logits"] = owned_array(std::move(o.logits), {B, S, size_t(V)});
    nb::list probs, experts;
    for (int l = 0; l < L; ++l) {
      if (o.probs[l].empty()) {
        probs.append(nb::none()), experts.append(nb::none());
        continue;
      }
      probs.append(owned_array(std::move(o.probs[l]), {B, S, size_t(E)}));
      experts.append(owned_array(std::move(o.expert[l]), {B, S, size_t(o.k[l])}));
    }
    out["router_probs"] = probs;
    out["experts"] = experts;
    return out;
  }

 private:
  TokenStream stream(const std::optional<std::string>& text, const std::optional<std::string>& path) const {
    WATTMOE_REQUIRE(text.has_value() != path.has_value(), "give the text or a path to a text file, not both or neither");
    return path ? load_token_stream(*path, *tok_, 2) : make_token_stream(*text, *tok_, 2, "<text>");
  }

  std::string dir_;
  RunnerOptions where_;
  ModelWeights<float> m_;
  std::shared_ptr<const Tokenizer> tok_;
  std::mutex mu_;                // forward's runner
  std::unique_ptr<Runner> fwd_;
};

void bind_model(nb::module_& m) {
  nb::class_<PyModel>(m, "Model")
      .def(nb::init<std::string, const std::string&, const nb::dict&>(), "dir"_a, "tokenizer"_a = "",
           "device"_a = nb::dict())
      .def_prop_ro("dir", &PyModel::dir)
      .def_prop_ro("config", &PyModel::config)
      .def_prop_ro("tokenizer", &PyModel::tokenizer)
      .def_prop_ro("device", &PyModel::device)
      .def("encode", &PyModel::encode, "text"_a)
      .def("decode", &PyModel::decode, "ids"_a)
      .def("eval", &PyModel::eval, "text"_a.none(), "path"_a.none(), "windows"_a, "routing"_a)
      .def("run", &PyModel::run, "text"_a.none(), "path"_a.none(), "options"_a, "routing"_a, "ttt"_a.none(),
           "on_record"_a.none())
      .def("generate", &PyModel::generate, "prompt"_a, "max_new"_a, "temperature"_a, "top_p"_a, "seed"_a,
           "options"_a, "routing"_a)
      .def("forward", &PyModel::forward, "ids"_a, "routing"_a);
}

}  // namespace wattmoe::py
