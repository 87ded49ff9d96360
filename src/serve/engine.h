// Engine: the serving loop of `wattmoe serve`, as library code. One scheduler thread owns the model (a Runner,
// model/runner.h, with one KV-cache slot per sequence) and runs continuous batching: requests (serve/job.h) wait in
// a bounded queue, join the running batch at a step boundary when a slot is free, and leave it when they finish;
// each step runs every running sequence's prompt as its own forward (on its first step) and the last sampled token
// of all the others as one batched forward per routing spec (Runner::forward_slots: one row per sequence),
// samples its next token exactly as `wattmoe generate` does (eval/sample.h, one Rng per request seeded by its seed),
// and ends with the step's energy (serve/step_energy.h: one meter window per step).
//
// Energy per request: each step's energy is shared among the requests in that step in proportion to the tokens each
// ran in it (its whole prompt on its first step, one token after); a request's energy_j is the sum of its shares, so
// the requests' energies add up to the meter's energy over the same steps. A request whose client went away is billed
// like the others (its share is in energy_billed, not in anyone's response).
//
// The budget: with --power-budget-w/--energy-budget-j-per-token a Controller (control/controller.h, built as in `wattmoe run` by
// eval/budget_control.h) sees the steps' power or J/token once per control period and sets the routing of the
// following steps; its ladder's batch scale caps how many sequences may run, and with --ladder-tier its tier level
// re-quantises the routed experts between steps (the GPU's decode steps then read fp8/int8 codes). set_budget changes
// it live.
//
// Memory: the KV-cache slots are allocated once at start (max_batch × context positions), so serving never grows
// them; a request waits for a slot in the queue, a full queue refuses new ones (QueueFull → 429). Memory pressure
// has two levels (MemoryLevel), judged at every submit and at step boundaries (at most every 50 ms): near capacity
// (host memory available below 2 × min_free_host_mb, or the GPU fuller than max_gpu_memory_fraction − 0.05) the
// server moves to its cheaper rung for memory — at most half of max_batch sequences run (the rest wait in the queue;
// what grows with load is the batched step's activations and the requests' buffers, not the KV cache); at capacity
// (below min_free_host_mb, above max_gpu_memory_fraction) it also refuses new requests (Memory → 429). Both end by
// themselves when the reading recovers; the metrics and the log say when each starts and ends.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/controller.h"
#include "eval/budget_control.h"
#include "eval/budgeted_run.h"
#include "eval/routing_setup.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "serve/adaptation_share.h"
#include "serve/job.h"
#include "serve/metrics.h"
#include "serve/step_energy.h"
#include "text/tokenizer.h"

namespace wattmoe {

struct EngineLimits {
  int max_batch = 8;              // KV-cache slots: the most sequences decoded together
  int max_queue = 64;             // requests waiting for a slot; a new one beyond this gets 429
  int context = 0;                // positions per slot; 0: the model's max_position_embeddings
  double min_free_host_mb = 256;  // refuse new requests below this much host memory; halve the batch below 2× (0: off)
  double max_gpu_memory_fraction = 0.97;  // refuse above this GPU memory use; halve the batch above it − 0.05
  double min_step_s = 0;  // > 0: each step lasts at least this long (paces the scheduler: a slower device, or tests)
  double ttt_max_share = 1;  // (0, 1]: with --ttt, adaptation's most recent share of the time while requests are in
                             // flight (serve/adaptation_share.h; 1: no cap); texts wait meanwhile (a full queue drops)
};

// Memory pressure (above): 0 none, 1 near capacity (the batch is halved), 2 at capacity (new requests refused too).
enum class MemoryLevel { None = 0, Near = 1, Full = 2 };

struct EngineConfig {
  std::string model_id = "wattmoe";  // what /v1/models and responses call the model
  RunnerOptions runner;
  RoutingOptions routing;  // the server's routing when no budget is held (and the costs the policies price)
  BudgetOptions budget;
  ServeEnergyOptions energy;
  EngineLimits limits;
  // Host memory available in bytes (NaN: unknown, never pressure); null: /proc/meminfo's MemAvailable. Tests drive
  // memory pressure through it.
  std::function<double()> host_available_bytes;
  // Online test-time training on served text (off by default): the --ttt options of `wattmoe run`. A request's text
  // (prompt + completion) is queued only once it has been answered; at a step boundary the scheduler runs at most
  // one queued text through TestTimeAdapter::process (adapt/adapter.h: score, trigger, adapt, guards) on the runner it
  // serves with, in a meter window of its own that no request is billed for.
  TttOptions ttt;
};

// Error naming the option for anything wrong that needs no file (call before loading the model).
void check_engine_config(const EngineConfig& c);

// What a live budget change asks for (PUT /v1/budget): fields left empty keep their value.
struct BudgetUpdate {
  std::optional<double> power_w, energy_j_per_token;  // 0 turns that budget off
  std::optional<std::string> control_policy;
  std::optional<bool> thermal_guard, ladder;
  std::optional<RoutingOptions> routing;  // the server's base routing
};

class Engine {
 public:
  enum class Admit { Ok, QueueFull, Memory, Draining };
  static const char* admit_name(Admit a);  // "ok", "queue_full", "memory", "draining"

  // Loads nothing: the weights and tokenizer are given. Allocates the slots and starts the scheduler thread.
  Engine(const EngineConfig& c, const ModelWeights<float>& m, std::shared_ptr<const Tokenizer> tok);
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelConfig& model_config() const { return model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  const EngineConfig& config() const { return cfg_; }
  int context() const { return context_; }
  const char* energy_source() const { return energy_->source(); }

  // A request's routing fields over the server's routing options → the spec it runs with (Error names the field).
  RoutingSpec request_routing(const RoutingOptions& o) const;
  bool budget_active() const;
  RoutingOptions routing_options() const;  // the server's routing now (PUT /v1/budget may change it)

  Admit submit(const std::shared_ptr<Job>& job);
  void note_rejected(const std::string& reason);  // a request refused before it reached the engine (bad input, ...)

  // Shutdown: drain() refuses new requests; wait_idle() waits until every accepted one has finished (false on
  // timeout); cancel_all() ends the rest; stop() joins the scheduler and closes the meter's outer window.
  void drain();
  bool wait_idle(double timeout_s);
  void cancel_all();
  Json stop();  // a summary: requests, tokens, energy (the steps' sum and the meter's outer window), source

  ServeStats stats() const;
  Json budget_json() const;
  void set_budget(const BudgetUpdate& u);  // validated (Error names the field), applied before the next step

 private:
  struct Seq;
  struct Bill;
  struct Control;
  void loop();
  void admit_locked(std::vector<std::pair<std::shared_ptr<Job>, double>>& out);
  void retire_finished();  // running sequences with a reason to stop go to billing_, their slots free
  void step();
  void resolve_bills();
  void control_update(double joules, double seconds, double tokens, int64_t pairs, int64_t moe_token_layers,
                      const Sample& sample);
  void complete_ready_jobs();
  MemoryLevel memory_level_locked();  // reads the memory, logs and records a change of level, applies it
  void apply_admit_limit_locked();   // admit_limit_ = the controller's limit under the memory rung's cap
  std::shared_ptr<const RoutingSpec> spec_for(Seq& s, const std::shared_ptr<const RoutingSpec>& server);
  void adapt_one();  // TTT: one queued text through the adapter, as a step of its own
  void carry_window(bool stepped);  // after a loop turn: carry_on or drop_carried as idle_carry_ says

  EngineConfig cfg_;
  ModelConfig model_;
  std::shared_ptr<const Tokenizer> tok_;
  int context_ = 0, moe_layers_ = 0;
  std::unique_ptr<Runner> runner_;  // without TTT
  std::unique_ptr<TestTimeAdapter> adapter_;  // with TTT: it owns the runner
  Runner* net_ = nullptr;  // the runner served with (runner_, or the adapter's)
  std::unique_ptr<StepEnergy> energy_;
  IdleCarry idle_carry_{0};  // loop thread only; set from cfg_.energy.bill_idle_s
  double distance_judged_s_ = -1e300;  // loop thread only: when adapt_one last measured ‖θ − θ₀‖
  AdaptationShare ttt_share_;          // loop thread only: set from cfg_.limits.ttt_max_share

  // Shared with the HTTP threads (mu_)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<Job>, double>> queue_;  // with its arrival time
  bool draining_ = false, stop_ = false, cancel_all_ = false;
  int running_count_ = 0, admit_limit_ = 0, awaiting_bills_ = 0;
  int control_admit_ = 0;  // the controller's limit (max batch × its ladder's batch scale)
  MemoryLevel memory_ = MemoryLevel::None;
  double memory_judged_s_ = -1e300;  // when memory_level_locked last read the memory
  double overload_logged_s_ = -1e300;  // when a full queue was last logged
  uint64_t overload_refused_ = 0;      // 429s since then
  ServeStats stats_;
  std::unique_ptr<Control> control_;  // the budget and routing (mu_)

  // Scheduler thread only
  std::vector<std::unique_ptr<Seq>> running_;
  std::vector<int> free_slots_;
  std::deque<Bill> bills_;               // steps whose energy is not final yet, oldest first
  std::vector<std::unique_ptr<Seq>> billing_;  // finished sequences waiting for their last step's energy
  const RoutingSpec* applied_ = nullptr;  // the spec the runner holds
  std::shared_ptr<const RoutingSpec> applied_hold_;
  // The ladder's tier level (--ladder-tier): the tier the runner's experts hold ("" = the server's own), and the
  // model's fp32 weights a switch re-quantises from (without TTT; with it, the adapter's θ₀ serves).
  std::string tier_now_;
  std::vector<float> full_weights_;
  void apply_expert_tier(const std::string& tier);  // switches the runner's experts when the ladder asks
  double ctl_j_ = 0, ctl_s_ = 0, ctl_tokens_ = 0;
  int64_t ctl_pairs_ = 0, ctl_moe_ = 0, ctl_step_ = 0;
  std::deque<std::vector<int32_t>> ttt_queue_;  // answered requests' texts waiting for adaptation
  std::thread thread_;
};

}  // namespace wattmoe
