// serve/api.h: every field of a completion or chat request checked, with the error naming the field, its status and
// OpenAI's code; the defaults; the chat template; the response and chunk shapes.
#include "serve/api.h"

#include <gtest/gtest.h>

#include "serve/chat_template.h"
#include "serve/engine.h"

namespace wattmoe {
namespace {

struct Api {
  ByteTokenizer tok;
  ApiContext ctx;
  Api() {
    ctx.model_id = "m", ctx.tokenizer = &tok, ctx.context = 32;
    ctx.routing = [](const Json& r) {
      RoutingSpec s;
      s.policy = r.value("policy", std::string("topk"));
      return s;
    };
    ctx.draw_seed = [] { return uint64_t(77); };
  }
  ParsedRequest parse(const std::string& body, bool chat = false) { return parse_request(body, chat, ctx); }
  // The error a body gives (status, param, message); fails the test when it parses.
  ApiError error(const std::string& body, bool chat = false) {
    try {
      parse(body, chat);
    } catch (const ApiError& e) {
      return e;
    }
    ADD_FAILURE() << "no error for " << body;
    return {};
  }
};

void expect_error(Api& a, const std::string& body, int status, const std::string& param, const std::string& text,
                  bool chat = false) {
  const ApiError e = a.error(body, chat);
  EXPECT_EQ(e.status, status) << body;
  EXPECT_EQ(e.param, param) << body;
  EXPECT_NE(e.message.find(text), std::string::npos) << body << " -> " << e.message;
}

TEST(ServeApi, CompletionDefaultsAndFields) {
  Api a;
  ParsedRequest r = a.parse(R"({"model": "m", "prompt": "hi"})");
  EXPECT_EQ(r.params.prompt, (std::vector<int32_t>{'h', 'i'}));
  EXPECT_EQ(r.params.max_tokens, 16);
  EXPECT_EQ(r.params.temperature, 1.0);
  EXPECT_EQ(r.params.top_p, 1.0);
  EXPECT_EQ(r.params.seed, 77u);  // drawn by the server
  EXPECT_FALSE(r.seed_given || r.stream || r.chat || r.params.routing);
  r = a.parse(R"({"model": "m", "prompt": [104, 105], "max_tokens": 5, "temperature": 0, "top_p": 0.5,
                  "seed": 9, "stop": ["x", "yz"], "stream": true, "stream_options": {"include_usage": true}, "n": 1,
                  "routing": {"policy": "cost"}})");
  EXPECT_EQ(r.params.prompt, (std::vector<int32_t>{104, 105}));
  EXPECT_EQ(r.params.max_tokens, 5);
  EXPECT_EQ(r.params.temperature, 0.0);
  EXPECT_EQ(r.params.top_p, 0.5);
  EXPECT_EQ(r.params.seed, 9u);
  EXPECT_EQ(r.params.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_TRUE(r.stream && r.include_usage && r.seed_given);
  ASSERT_TRUE(r.params.routing);
  EXPECT_EQ(r.params.routing->policy, "cost");
  EXPECT_EQ(a.parse(R"({"model": "m", "prompt": ["hi"], "stop": "s"})").params.stop, (std::vector<std::string>{"s"}));
}

TEST(ServeApi, ChatRendersTheTemplate) {
  Api a;
  a.ctx.context = 64;
  const ParsedRequest r =
      a.parse(R"({"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]})", true);
  const std::string want = "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n";
  EXPECT_EQ(want, render_chat({{"system", "Be brief."}, {"user", "Hi"}}));
  EXPECT_EQ(std::string(r.params.prompt.begin(), r.params.prompt.end()), want);
  EXPECT_EQ(r.params.max_tokens, 64 - int(want.size()));  // the rest of the context
  EXPECT_EQ(r.params.stop, (std::vector<std::string>{kChatStop}));
  EXPECT_TRUE(r.chat);
}

TEST(ServeApi, BadInputNamesTheField) {
  Api a;
  expect_error(a, "{not json", 400, "", "not valid JSON");
  expect_error(a, "[1, 2]", 400, "", "must be a JSON object");
  expect_error(a, R"({"prompt": "x"})", 400, "model", "model: required");
  expect_error(a, R"({"model": 3, "prompt": "x"})", 400, "model", "expected a string, got an integer");
  expect_error(a, R"({"model": "other", "prompt": "x"})", 404, "model", "'other' is not served here");
  EXPECT_EQ(a.error(R"({"model": "other", "prompt": "x"})").code, "model_not_found");
  expect_error(a, R"({"model": "m"})", 400, "prompt", "prompt: required");
  expect_error(a, R"({"model": "m", "prompt": 5})", 400, "prompt", "expected a string or an array");
  expect_error(a, R"({"model": "m", "prompt": ["a", "b"]})", 400, "prompt", "one prompt per request");
  expect_error(a, R"({"model": "m", "prompt": [1, 300]})", 400, "prompt[1]", "in [0, 255]");
  expect_error(a, R"({"model": "m", "prompt": ""})", 400, "prompt", "the prompt is empty");
  expect_error(a, R"({"model": "m", "prompt": ")" + std::string(32, 'x') + R"("})", 400, "prompt",
               "the prompt has 32 tokens but the context holds 32");
  EXPECT_EQ(a.error(R"({"model": "m", "prompt": ")" + std::string(40, 'x') + R"("})").code, "context_length_exceeded");
  expect_error(a, R"({"model": "m", "prompt": "x", "max_tokens": 0})", 400, "max_tokens", "in [1,");
  expect_error(a, R"({"model": "m", "prompt": "x", "max_tokens": -3})", 400, "max_tokens", "in [1,");
  expect_error(a, R"({"model": "m", "prompt": "x", "max_tokens": "5"})", 400, "max_tokens", "expected an integer");
  expect_error(a, R"({"model": "m", "prompt": "x", "max_tokens": 2.5})", 400, "max_tokens", "expected an integer");
  expect_error(a, R"({"model": "m", "prompt": "x", "temperature": 3})", 400, "temperature", "in [0, 2]");
  expect_error(a, R"({"model": "m", "prompt": "x", "temperature": "hot"})", 400, "temperature", "expected a number");
  expect_error(a, R"({"model": "m", "prompt": "x", "top_p": 0})", 400, "top_p", "in (0, 1]");
  expect_error(a, R"({"model": "m", "prompt": "x", "seed": 1.5})", 400, "seed", "expected an integer");
  expect_error(a, R"({"model": "m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]})", 400, "stop", "at most 4");
  expect_error(a, R"({"model": "m", "prompt": "x", "stop": [""]})", 400, "stop", "1 to 256 bytes");
  expect_error(a, R"({"model": "m", "prompt": "x", "stop": 7})", 400, "stop", "expected a string or an array");
  expect_error(a, R"({"model": "m", "prompt": "x", "stream": "yes"})", 400, "stream", "expected true or false");
  expect_error(a, R"({"model": "m", "prompt": "x", "n": 2})", 400, "n", "only n = 1");
  expect_error(a, R"({"model": "m", "prompt": "x", "echo": true})", 400, "echo", "not supported");
  expect_error(a, R"({"model": "m", "prompt": "x", "logprobs": 3})", 400, "logprobs", "not supported");
  expect_error(a, R"({"model": "m", "prompt": "x", "routing": 1})", 400, "routing", "expected an object");
  expect_error(a, R"({"model": "m", "messages": []})", 400, "messages", "non-empty array", true);
  expect_error(a, R"({"model": "m", "messages": [{"role": "bot", "content": "x"}]})", 400, "messages[0].role",
               "'bot' is not system", true);
  expect_error(a, R"({"model": "m", "messages": [{"role": "user"}]})", 400, "messages[0].content", "required", true);
  expect_error(a, R"({"model": "m", "messages": [{"role": "user", "content": 4}]})", 400, "messages[0].content",
               "expected a string or an array of text parts", true);
}

TEST(ServeApi, BudgetUpdateKeepsWhatIsNotGiven) {
  const RoutingOptions base;
  const BudgetUpdate u = parse_budget_update(R"({"power_w": 250, "control_policy": "topk", "ladder": false})", base);
  EXPECT_EQ(u.power_w, 250.0);
  EXPECT_EQ(u.control_policy, "topk");
  EXPECT_EQ(u.ladder, false);
  EXPECT_FALSE(u.energy_j_per_token || u.thermal_guard || u.routing);
  EXPECT_EQ(parse_budget_update(R"({"power_w": null})", base).power_w, 0.0);  // null: off
  EXPECT_EQ(parse_budget_update(R"({"routing": {"k_max": 1}})", base).routing->k_max, 1);
  auto fails = [&](const std::string& body, const std::string& param, const std::string& text) {
    try {
      parse_budget_update(body, base);
      ADD_FAILURE() << "no error for " << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << body;
      EXPECT_EQ(e.param, param) << body;
      EXPECT_NE(e.message.find(text), std::string::npos) << body << " -> " << e.message;
    }
  };
  fails("{", "", "not valid JSON");
  fails("[]", "", "must be a JSON object");
  fails(R"({"power_w": "300"})", "power_w", "expected a number");
  fails(R"({"ladder": 1})", "ladder", "expected true or false");
  fails(R"({"control_policy": 3})", "control_policy", "expected a string");
  fails(R"({"routing": 2})", "routing", "expected an object");
  fails(R"({"volts": 3})", "volts", "unknown field");
}

TEST(ServeApi, UnderABudgetARequestMayOnlyBoundExperts) {
  Api a;
  a.ctx.budget_active = true;
  const ParsedRequest r = a.parse(R"({"model": "m", "prompt": "x", "routing": {"k_max": 1}})");
  EXPECT_EQ(r.params.k_max_cap, 1);
  EXPECT_FALSE(r.params.routing);
  expect_error(a, R"({"model": "m", "prompt": "x", "routing": {"policy": "cost"}})", 400, "routing.policy",
               "holds a budget");
  expect_error(a, R"({"model": "m", "prompt": "x", "routing": {"k_max": 0}})", 400, "routing.k_max", "in [1,");
}

TEST(ServeApi, RoutingFieldsOverTheServersOptions) {
  RoutingOptions base;
  base.policy = "skip", base.beta = 0.1f;
  const RoutingOptions o = routing_options_from_json(Json::parse(R"({"k_max": 1, "top_p": 0.5})"), base, "routing.");
  EXPECT_EQ(o.policy, "skip");
  EXPECT_EQ(o.k_max, 1);
  EXPECT_FLOAT_EQ(o.top_p, 0.5f);
  EXPECT_FLOAT_EQ(o.beta, 0.1f);
  try {
    routing_options_from_json(Json::parse(R"({"kmax": 1})"), base, "routing.");
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "routing.kmax");
    EXPECT_NE(e.message.find("unknown routing field"), std::string::npos);
  }
}

TEST(ServeApi, ResponsesCarryUsageAndEnergySource) {
  Api a;
  const ParsedRequest chat = a.parse(R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})", true);
  JobUsage u;
  u.prompt_tokens = 3, u.completion_tokens = 2, u.energy_j = 1.5, u.expert_pairs = 30, u.moe_token_layers = 20;
  const Json r = response_json(chat, "chatcmpl-1", 5, "m", "ok", "stop", u, "simulated");
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "ok");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["usage"]["total_tokens"], 5);
  EXPECT_EQ(r["usage"]["energy_j"], 1.5);
  EXPECT_EQ(r["usage"]["energy_source"], "simulated");
  EXPECT_EQ(r["usage"]["experts_per_token"], 1.5);
  const Json c0 = chunk_json(chat, "chatcmpl-1", 5, "m", "", "", true);
  EXPECT_EQ(c0["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(c0["choices"][0]["finish_reason"].is_null());
  const ParsedRequest cmpl = a.parse(R"({"model": "m", "prompt": "x"})");
  EXPECT_EQ(chunk_json(cmpl, "c", 5, "m", "ab", "", false)["choices"][0]["text"], "ab");
  EXPECT_TRUE(usage_chunk_json(cmpl, "c", 5, "m", u, "measured")["choices"].empty());
  // A byte model may emit invalid UTF-8: the JSON text replaces it instead of failing.
  EXPECT_NE(dump_json(Json{{"t", std::string("a\xff")}}).find("a\xEF\xBF\xBD"), std::string::npos);
}

// /health: the scheduler's state, memory pressure, and TTT's state when it is on (its counters as the metrics have them).
TEST(ServeApi, HealthCarriesMemoryAndTttState) {
  ServeStats st;
  st.model = "m", st.source = "measured", st.running = 2, st.queued = 1, st.memory_pressure = 1;
  Json h = health_json(st);
  EXPECT_EQ(h["status"], "ok");
  EXPECT_EQ(h["running"], 2);
  EXPECT_EQ(h["memory_pressure"], 1);
  EXPECT_EQ(h["ttt"], (Json{{"enabled", false}}));
  st.ttt = true, st.ttt_queued = 3, st.ttt_windows = 5, st.ttt_adapted = 4, st.ttt_steps = 4, st.ttt_resets = 1;
  st.ttt_seconds = 0.25, st.ttt_energy_j = 2.5, st.ttt_distance = 0.125, st.draining = true;
  h = health_json(st);
  EXPECT_EQ(h["status"], "draining");
  EXPECT_EQ(h["ttt"]["enabled"], true);
  EXPECT_EQ(h["ttt"]["queued"], 3);
  EXPECT_EQ(h["ttt"]["adapted"], 4);
  EXPECT_EQ(h["ttt"]["resets"], 1);
  EXPECT_EQ(h["ttt"]["energy_j"], 2.5);
  EXPECT_EQ(h["ttt"]["distance"], 0.125);
}

}  // namespace
}  // namespace wattmoe
