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
