// Slot decoding on the CPU runner (model/runner.h reset_slots / forward_slot / clear_slot, what continuous batching
// drives): sequences interleaved across slots, joining late and restarting in a cleared slot, give bit for bit the
// logits and routing of each sequence decoded alone through forward_cached, and leave the lockstep cache alone.
#include <gtest/gtest.h>

#include "../adapt/adapt_test_util.h"
#include "../test_util.h"
#include "core/error.h"

namespace wattmoe {
namespace {

// EXPECT_ERROR(statement, text): it throws a wattmoe::Error whose message contains text.
#define EXPECT_ERROR(stmt, text) \
  EXPECT_NE(test::error_of([&] { stmt; }).find(text), std::string::npos) << "expected an error containing: " << text

TEST(SlotDecode, InterleavedSlotsEqualEachSequenceAlone) {
  const test::TinyModel m = test::tiny_model(11);
  const int V = m.config.vocab_size;
  std::unique_ptr<Runner> r = make_runner(m.config, {});
  r->set_params(m.params.data());
  r->reset_cache(8);  // a lockstep cache beside the slots
  const std::vector<int32_t> lock = test::random_ids(3, V, 40);
  r->forward_cached(lock.data(), 3);
  r->reset_slots(3, 12);
  std::vector<std::vector<int32_t>> seq;
  for (int s = 0; s < 3; ++s) seq.push_back(test::random_ids(10, V, 41 + s));
  // (slot, chunk) in step order: slot 1 joins late; slot 2 is cleared below and starts again.
  const std::vector<std::pair<int, int>> plan = {{0, 4}, {0, 1}, {1, 5}, {0, 1}, {2, 3}, {1, 1}, {2, 1}, {0, 2}};
  std::vector<std::vector<float>> got(3);  // each slot's logits, concatenated
  std::vector<std::vector<int32_t>> routed(3);
  std::vector<int> pos(3, 0);
  auto step = [&](int s, int S) {
    r->forward_slot(s, seq[size_t(s)].data() + pos[size_t(s)], S);
    got[size_t(s)].insert(got[size_t(s)].end(), r->logits(), r->logits() + size_t(S) * V);
    const Routing& rt = r->routing(0);
    routed[size_t(s)].insert(routed[size_t(s)].end(), rt.expert.begin(), rt.expert.end());
    pos[size_t(s)] += S;
  };
  for (auto [s, S] : plan) step(s, S);
  r->clear_slot(2), got[2].clear(), routed[2].clear(), pos[2] = 0;
  step(2, 2), step(1, 1), step(2, 2);

  for (int s = 0; s < 3; ++s) {
    SCOPED_TRACE("slot " + std::to_string(s));
    std::unique_ptr<Runner> alone = make_runner(m.config, {});
    alone->set_params(m.params.data());
    alone->reset_cache(12);
    std::vector<float> want;
    std::vector<int32_t> want_routed;
    int at = 0;
    std::vector<int> chunks;
    for (auto [t, S] : plan)
      if (t == s) chunks.push_back(S);
    if (s == 1) chunks.push_back(1);
    if (s == 2) chunks = {2, 2};
    for (int S : chunks) {
      alone->forward_cached(seq[size_t(s)].data() + at, S);
      want.insert(want.end(), alone->logits(), alone->logits() + size_t(S) * V);
      const Routing& rt = alone->routing(0);
      want_routed.insert(want_routed.end(), rt.expert.begin(), rt.expert.end());
      at += S;
    }
    EXPECT_EQ(got[size_t(s)], want);  // bitwise
    EXPECT_EQ(routed[size_t(s)], want_routed);
  }

  // The lockstep cache is where it was: one more token continues it as a fresh decode of the same chunks would.
  const int32_t next = 7;
  r->forward_cached(&next, 1);
  const std::vector<float> cont(r->logits(), r->logits() + V);
  std::unique_ptr<Runner> fresh = make_runner(m.config, {});
  fresh->set_params(m.params.data());
  fresh->reset_cache(8);
  fresh->forward_cached(lock.data(), 3);
  fresh->forward_cached(&next, 1);
  EXPECT_EQ(cont, std::vector<float>(fresh->logits(), fresh->logits() + V));
}

// The batched step: forward_slots over slots at different lengths (one prefilled longer, one restarted) gives each
// row exactly what forward_slot of that one token gives, routing rows included, and moves every slot on by one.
TEST(SlotDecode, BatchedStepEqualsOneSlotAtATime) {
  const test::TinyModel m = test::tiny_model(13);
  const int V = m.config.vocab_size;
  auto make = [&] {
    std::unique_ptr<Runner> r = make_runner(m.config, {});
    r->set_params(m.params.data());
    r->reset_slots(4, 16);
    return r;
  };
  std::unique_ptr<Runner> batched = make(), single = make();
  const std::vector<int32_t> prompt = test::random_ids(5, V, 50);
  for (Runner* r : {batched.get(), single.get()}) r->forward_slot(2, prompt.data(), 5), r->forward_slot(0, prompt.data(), 2);
  const std::vector<int32_t> slots = {2, 3, 0};  // lengths 5, 0, 2
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const std::vector<int32_t> ids = test::random_ids(3, V, 60 + step);
    batched->forward_slots(slots.data(), ids.data(), 3);
    ASSERT_EQ(batched->tokens(), 3);
    const std::vector<float> got(batched->logits(), batched->logits() + 3 * V);
    const std::vector<int32_t> got_routed = batched->routing(0).expert;
    std::vector<float> want;
    std::vector<int32_t> want_routed;
    for (int r = 0; r < 3; ++r) {
      single->forward_slot(slots[size_t(r)], &ids[size_t(r)], 1);
      want.insert(want.end(), single->logits(), single->logits() + V);
      const Routing& rt = single->routing(0);
      want_routed.insert(want_routed.end(), rt.expert.begin(), rt.expert.end());
    }
    EXPECT_EQ(got, want);  // bitwise
    EXPECT_EQ(got_routed, want_routed);
    EXPECT_EQ(batched->routing(0).tokens, 3);
  }
  // A plain forward afterwards reports its own rows again.
  batched->forward(prompt.data(), 1, 5);
  EXPECT_EQ(batched->tokens(), 5);
}

TEST(SlotDecode, BatchedStepErrors) {
  const test::TinyModel m = test::tiny_model(14);
  std::unique_ptr<Runner> r = make_runner(m.config, {});
  r->set_params(m.params.data());
  r->reset_slots(2, 1);
  const std::vector<int32_t> ids = {1, 2};
  const std::vector<int32_t> twice = {1, 1}, missing = {0, 5};
  EXPECT_ERROR(r->forward_slots(twice.data(), ids.data(), 2), "slot 1 appears twice");
  EXPECT_ERROR(r->forward_slots(missing.data(), ids.data(), 2), "slot 5 does not exist (2 slots)");
  EXPECT_ERROR(r->forward_slots(twice.data(), ids.data(), 0), "at least one slot");
  const int32_t one = 1;
  r->forward_slots(&one, ids.data(), 1);
  EXPECT_ERROR(r->router_views(), "router_views after forward_slots");
  EXPECT_ERROR(r->backward(nullptr), "backward after forward_slots");
  const std::vector<int32_t> both = {0, 1};
  EXPECT_ERROR(r->forward_slots(both.data(), ids.data(), 2), "KV cache slot 1 is full (1 positions)");
  r->forward_slots(both.data(), ids.data(), 1);  // slot 0 did not move on: it still has its one position
}

TEST(SlotDecode, ErrorsNameTheSlot) {
  const test::TinyModel m = test::tiny_model(12);
  std::unique_ptr<Runner> r = make_runner(m.config, {});
  r->set_params(m.params.data());
  const int32_t id = 1;
  EXPECT_ERROR(r->forward_slot(0, &id, 1), "slot 0 does not exist");
  r->reset_slots(2, 2);
  EXPECT_ERROR(r->forward_slot(2, &id, 1), "slot 2 does not exist (2 slots)");
  r->forward_slot(1, &id, 1), r->forward_slot(1, &id, 1);
  EXPECT_ERROR(r->forward_slot(1, &id, 1), "exceeds the KV cache");
  r->clear_slot(1);
  r->forward_slot(1, &id, 1);  // room again
  EXPECT_ERROR(make_runner(test::tiny_model(1).config, {})->reset_slots(0, 4), "need >= 1 slot");
}

}  // namespace
}  // namespace wattmoe
