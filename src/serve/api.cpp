#include "serve/api.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "serve/chat_template.h"
#include "serve/engine.h"

namespace wattmoe {

Json error_json(const ApiError& e) {
  return Json{{"error",
               {{"message", e.message}, {"type", e.type}, {"param", e.param.empty() ? Json(nullptr) : Json(e.param)},
                {"code", e.code.empty() ? Json(nullptr) : Json(e.code)}}}};
}

void api_fail(int status, const std::string& param, const std::string& message, const std::string& code) {
  ApiError e;
  e.status = status, e.param = param, e.message = message, e.code = code;
  if (status == 404) e.type = "not_found_error";
  throw e;
}

std::string dump_json(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

namespace {

const char* type_name(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// The field's value if present and not null.
const Json* field(const Json& o, const char* name) {
  const auto it = o.find(name);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

int64_t get_int(const Json& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer())
    api_fail(400, name, fmt::format("{}: expected an integer, got {}", name, type_name(v)));
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                        ? std::numeric_limits<int64_t>::max()
                        : v.get<int64_t>();
  if (x < lo || x > hi) api_fail(400, name, fmt::format("{}: expected an integer in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

double get_num(const Json& v, const std::string& name, double lo, double hi, bool lo_open = false) {
  if (!v.is_number()) api_fail(400, name, fmt::format("{}: expected a number, got {}", name, type_name(v)));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
    api_fail(400, name, fmt::format("{}: expected a number in {}{}, {}], got {}", name, lo_open ? "(" : "[", lo, hi, x));
  return x;
}

bool get_bool(const Json& v, const std::string& name) {
  if (!v.is_boolean()) api_fail(400, name, fmt::format("{}: expected true or false, got {}", name, type_name(v)));
  return v.get<bool>();
}

const std::string& get_str(const Json& v, const std::string& name) {
  if (!v.is_string()) api_fail(400, name, fmt::format("{}: expected a string, got {}", name, type_name(v)));
  return v.get_ref<const std::string&>();
}

// Fields OpenAI defines that would change the output and that this server does not do: accepted only at their
// neutral value, so a request is never silently answered as if they were not there.
void reject_unsupported(const Json& b, bool chat) {
  auto neutral = [&](const char* name, const auto& ok, const char* what) {
    if (const Json* v = field(b, name); v && !ok(*v))
      api_fail(400, name, fmt::format("{}: not supported by this server (only {})", name, what));
  };
  neutral("n", [](const Json& v) { return v.is_number_integer() && v.get<int64_t>() == 1; }, "n = 1");
  neutral("best_of", [](const Json& v) { return v.is_number_integer() && v.get<int64_t>() == 1; }, "best_of = 1");
  neutral("echo", [](const Json& v) { return v.is_boolean() && !v.get<bool>(); }, "echo = false");
  neutral("logprobs", [](const Json& v) { return v.is_boolean() && !v.get<bool>(); }, "no logprobs");
  neutral("top_logprobs", [](const Json& v) { return v.is_number_integer() && v.get<int64_t>() == 0; },
          "no logprobs");
  neutral("suffix", [](const Json& v) { return v.is_string() && v.get_ref<const std::string&>().empty(); },
          "no suffix");
  neutral("logit_bias", [](const Json& v) { return v.is_object() && v.empty(); }, "no logit_bias");
  neutral("presence_penalty", [](const Json& v) { return v.is_number() && v.get<double>() == 0; }, "0");
  neutral("frequency_penalty", [](const Json& v) { return v.is_number() && v.get<double>() == 0; }, "0");
  neutral("tools", [](const Json& v) { return v.is_array() && v.empty(); }, "no tools");
  neutral("functions", [](const Json& v) { return v.is_array() && v.empty(); }, "no functions");
  neutral("response_format",
          [](const Json& v) { return v.is_object() && v.value("type", std::string()) == "text"; },
          "{\"type\": \"text\"}");
  (void)chat;
}

std::vector<int32_t> encode_prompt(const ApiContext& ctx, const std::string& text) {
  std::vector<int32_t> ids = ctx.tokenizer->encode(text);
  if (const auto bos = ctx.tokenizer->bos_id()) ids.insert(ids.begin(), *bos);  // as wattmoe generate
  return ids;
}

std::vector<int32_t> completion_prompt(const Json& b, const ApiContext& ctx) {
  const Json* p = field(b, "prompt");
  if (!p) api_fail(400, "prompt", "prompt: required (a string, or an array of token ids)");
  auto ids_of = [&](const Json& arr) {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < arr.size(); ++i)
      ids.push_back(int32_t(get_int(arr[i], fmt::format("prompt[{}]", i), 0, ctx.tokenizer->vocab_size() - 1)));
    return ids;
  };
  if (p->is_string()) return encode_prompt(ctx, p->get_ref<const std::string&>());
  if (!p->is_array())
    api_fail(400, "prompt", fmt::format("prompt: expected a string or an array of token ids, got {}", type_name(*p)));
  if (p->empty()) api_fail(400, "prompt", "prompt: the array is empty");
  if ((*p)[0].is_string() || (*p)[0].is_array()) {  // a batch of prompts
    if (p->size() != 1) api_fail(400, "prompt", "prompt: one prompt per request (n = 1); got a batch of " +
                                                   std::to_string(p->size()));
    const Json& one = (*p)[0];
    if (one.is_string()) return encode_prompt(ctx, one.get_ref<const std::string&>());
    return ids_of(one);
  }
  return ids_of(*p);
}

std::vector<int32_t> chat_prompt(const Json& b, const ApiContext& ctx) {
  const Json* m = field(b, "messages");
  if (!m) api_fail(400, "messages", "messages: required (an array of {role, content})");
  if (!m->is_array() || m->empty())
    api_fail(400, "messages", fmt::format("messages: expected a non-empty array, got {}", type_name(*m)));
  std::vector<ChatMessage> msgs;
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& x = (*m)[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!x.is_object()) api_fail(400, at, fmt::format("{}: expected an object, got {}", at, type_name(x)));
    const Json* role = field(x, "role");
    if (!role) api_fail(400, at + ".role", at + ".role: required");
    const std::string& r = get_str(*role, at + ".role");
    if (r != "system" && r != "developer" && r != "user" && r != "assistant")
      api_fail(400, at + ".role", fmt::format("{}.role: '{}' is not system, developer, user or assistant", at, r));
    const Json* content = field(x, "content");
    if (!content) api_fail(400, at + ".content", at + ".content: required");
    std::string text;
    if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {  // [{"type": "text", "text": "..."}, ...]
      for (size_t k = 0; k < content->size(); ++k) {
        const Json& part = (*content)[k];
        const std::string pat = fmt::format("{}.content[{}]", at, k);
        if (!part.is_object() || part.value("type", std::string()) != "text" || !field(part, "text"))
          api_fail(400, pat, pat + ": expected {\"type\": \"text\", \"text\": ...} (only text content)");
        text += get_str(part["text"], pat + ".text");
      }
    } else {
      api_fail(400, at + ".content",
               fmt::format("{}.content: expected a string or an array of text parts, got {}", at, type_name(*content)));
    }
    msgs.push_back({r, std::move(text)});
  }
  return encode_prompt(ctx, render_chat(msgs));
}

}  // namespace

RoutingOptions routing_options_from_json(const Json& r, RoutingOptions o, const std::string& prefix) {
  for (const auto& [k, v] : r.items()) {
    const std::string name = prefix + k;
    if (k == "policy") o.policy = get_str(v, name);
    else if (k == "k_min") o.k_min = int(get_int(v, name, 1, 4096));
    else if (k == "k_max") o.k_max = int(get_int(v, name, 0, 4096));
    else if (k == "top_p") o.top_p = float(get_num(v, name, 0, 1, true));
    else if (k == "lambda") o.lambda = float(get_num(v, name, 0, 1e9));
    else if (k == "beta") o.beta = float(get_num(v, name, 0, 1));
    else if (k == "budget_j") o.budget_j = get_num(v, name, 0, std::numeric_limits<double>::max());
    else if (k == "reuse_min_tokens") o.reuse_min_tokens = int(get_int(v, name, 0, 1 << 20));
    else if (k == "mask") o.mask = get_str(v, name);
    else
      api_fail(400, name, fmt::format("{}: unknown routing field (expected policy, k_min, k_max, top_p, lambda, beta, "
                                      "budget_j, reuse_min_tokens, mask)", name));
  }
  return o;
}

ApiContext api_context(const Engine& e) {
  ApiContext c;
  c.model_id = e.config().model_id;
  c.tokenizer = &e.tokenizer();
  c.context = e.context();
  c.budget_active = e.budget_active();
  c.routing = [&e](const Json& r) {
    const RoutingOptions o = routing_options_from_json(r, e.routing_options(), "routing.");
    try {
      return e.request_routing(o);
    } catch (const Error& err) {
      api_fail(400, "routing", err.what());
    }
  };
  c.draw_seed = [] {
    thread_local std::mt19937_64 g(std::random_device{}());
    return uint64_t(g() >> 1);  // < 2^63: the same seed given back as a JSON integer reproduces it
  };
  return c;
}

ParsedRequest parse_request(const std::string& body, bool chat, const ApiContext& ctx) {
  Json b;
  try {
    b = Json::parse(body);
  } catch (const Json::parse_error& e) {
    api_fail(400, "", fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!b.is_object()) api_fail(400, "", fmt::format("the request body must be a JSON object, got {}", type_name(b)));
  ParsedRequest r;
  r.chat = chat;
  GenParams& p = r.params;
  const Json* model = field(b, "model");
  if (!model) api_fail(400, "model", "model: required (GET /v1/models lists it)");
  if (get_str(*model, "model") != ctx.model_id)
    api_fail(404, "model", fmt::format("model: '{}' is not served here (this server serves '{}')",
                                       model->get_ref<const std::string&>(), ctx.model_id),
             "model_not_found");
  reject_unsupported(b, chat);
  p.prompt = chat ? chat_prompt(b, ctx) : completion_prompt(b, ctx);
  if (p.prompt.empty()) api_fail(400, chat ? "messages" : "prompt", "the prompt is empty");
  const int64_t room = int64_t(ctx.context) - int64_t(p.prompt.size());
  if (room < 1)
    api_fail(400, chat ? "messages" : "prompt",
             fmt::format("the prompt has {} tokens but the context holds {}: it must be shorter", p.prompt.size(),
                         ctx.context),
             "context_length_exceeded");
  // max_tokens: what is asked, capped by the context (finish_reason "length" then, as wattmoe generate stops).
  const Json* mt = field(b, "max_tokens");
  const char* mt_name = "max_tokens";
  if (chat && !mt) mt = field(b, "max_completion_tokens"), mt_name = "max_completion_tokens";
  p.max_tokens = mt ? int(get_int(*mt, mt_name, 1, 1 << 30)) : chat ? int(room) : 16;
  if (const Json* v = field(b, "temperature")) p.temperature = get_num(*v, "temperature", 0, 2);
  if (const Json* v = field(b, "top_p")) p.top_p = get_num(*v, "top_p", 0, 1, true);
  if (const Json* v = field(b, "seed")) {
    if (!v->is_number_integer()) api_fail(400, "seed", fmt::format("seed: expected an integer, got {}", type_name(*v)));
    p.seed = v->is_number_unsigned() ? v->get<uint64_t>() : uint64_t(v->get<int64_t>());  // as wattmoe generate's
    r.seed_given = true;
  } else {
    p.seed = ctx.draw_seed ? ctx.draw_seed() : 0;
  }
  if (const Json* v = field(b, "stop")) {
    if (v->is_string()) {
      p.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 4) api_fail(400, "stop", fmt::format("stop: at most 4 strings, got {}", v->size()));
      for (size_t i = 0; i < v->size(); ++i) p.stop.push_back(get_str((*v)[i], fmt::format("stop[{}]", i)));
    } else {
      api_fail(400, "stop", fmt::format("stop: expected a string or an array of strings, got {}", type_name(*v)));
    }
    for (const std::string& s : p.stop)
      if (s.empty() || s.size() > 256) api_fail(400, "stop", "stop: each string must have 1 to 256 bytes");
  }
  if (chat) p.stop.push_back(kChatStop);
  if (const Json* v = field(b, "stream")) r.stream = get_bool(*v, "stream");
  if (const Json* v = field(b, "stream_options")) {
    if (!v->is_object()) api_fail(400, "stream_options", "stream_options: expected an object");
    if (const Json* u = field(*v, "include_usage")) r.include_usage = get_bool(*u, "stream_options.include_usage");
  }
  if (const Json* v = field(b, "routing")) {
    if (!v->is_object())
      api_fail(400, "routing", fmt::format("routing: expected an object, got {}", type_name(*v)));
    if (ctx.budget_active) {
      // The controller owns the routing while a budget is held: a request may only ask for fewer experts.
      for (const auto& [k, x] : v->items())
        if (k != "k_max")
          api_fail(400, "routing." + k,
                   fmt::format("routing.{}: the server holds a budget, so its controller sets the routing; a request "
                               "may only bound it with routing.k_max (PUT /v1/budget to change the budget)", k));
      if (const Json* k = field(*v, "k_max")) p.k_max_cap = int(get_int(*k, "routing.k_max", 1, 4096));
    } else if (!v->empty()) {
      p.routing = ctx.routing(*v);
    }
  }
  return r;
}

Json usage_json(const JobUsage& u, const std::string& source) {
  return Json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"energy_j", u.energy_j},
              {"energy_source", source},
              {"experts_per_token", u.experts_per_token()},
              {"queue_s", u.queue_s},
              {"latency_s", u.latency_s}};
}

Json health_json(const ServeStats& st) {
  Json ttt{{"enabled", st.ttt}};
  if (st.ttt) {
    ttt["queued"] = st.ttt_queued, ttt["windows"] = st.ttt_windows, ttt["adapted"] = st.ttt_adapted;
    ttt["steps"] = st.ttt_steps, ttt["resets"] = st.ttt_resets, ttt["dropped"] = st.ttt_dropped;
    ttt["seconds"] = st.ttt_seconds, ttt["energy_j"] = st.ttt_energy_j, ttt["distance"] = st.ttt_distance;
  }
  return Json{{"status", st.draining ? "draining" : "ok"}, {"model", st.model},
              {"running", st.running},     {"queued", st.queued},
              {"energy_source", st.source}, {"memory_pressure", st.memory_pressure},
              {"ttt", ttt}};
}

Json response_json(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& model,
                   const std::string& text, const std::string& finish_reason, const JobUsage& u,
                   const std::string& source) {
  Json choice{{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}};
  if (r.chat) choice["message"] = Json{{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  return Json{{"id", id},
              {"object", r.chat ? "chat.completion" : "text_completion"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", nullptr},
              {"choices", Json::array({choice})},
              {"usage", usage_json(u, source)},
              {"seed", r.params.seed}};
}

Json chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& model,
                const std::string& text, const std::string& finish_reason, bool first) {
  Json choice{{"index", 0}, {"logprobs", nullptr},
              {"finish_reason", finish_reason.empty() ? Json(nullptr) : Json(finish_reason)}};
  if (r.chat) {
    Json delta = Json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && finish_reason.empty())) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return Json{{"id", id},
              {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", nullptr},
              {"choices", Json::array({choice})}};
}

Json usage_chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& model,
                      const JobUsage& u, const std::string& source) {
  return Json{{"id", id},
              {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", model},
              {"system_fingerprint", nullptr},
              {"choices", Json::array()},
              {"usage", usage_json(u, source)}};
}

BudgetUpdate parse_budget_update(const std::string& body, const RoutingOptions& routing) {
  Json b;
  try {
    b = Json::parse(body);
  } catch (const Json::parse_error& e) {
    api_fail(400, "", fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!b.is_object()) api_fail(400, "", "the request body must be a JSON object");
  BudgetUpdate u;
  for (const auto& [k, v] : b.items()) {
    if (k == "power_w" || k == "energy_j_per_token") {
      if (!v.is_null() && !v.is_number())
        api_fail(400, k, fmt::format("{}: expected a number >= 0 (0 or null: no budget)", k));
      (k == "power_w" ? u.power_w : u.energy_j_per_token) = v.is_null() ? 0.0 : v.get<double>();
    } else if (k == "control_policy") {
      if (!v.is_string()) api_fail(400, k, "control_policy: expected a string (cost, top_p, skip, topk, budget)");
      u.control_policy = v.get<std::string>();
    } else if (k == "thermal_guard" || k == "ladder") {
      if (!v.is_boolean()) api_fail(400, k, fmt::format("{}: expected true or false", k));
      (k == "thermal_guard" ? u.thermal_guard : u.ladder) = v.get<bool>();
    } else if (k == "routing") {
      if (!v.is_object()) api_fail(400, k, "routing: expected an object of routing fields");
      u.routing = routing_options_from_json(v, routing, "routing.");
    } else {
      api_fail(400, k, fmt::format("{}: unknown field (expected power_w, energy_j_per_token, control_policy, "
                                   "thermal_guard, ladder, routing)", k));
    }
  }
  return u;
}

}  // namespace wattmoe
