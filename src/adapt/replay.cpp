#include "adapt/replay.h"

#include "core/error.h"

namespace wattmoe {

ReplayBuffer::ReplayBuffer(int capacity) : capacity_(capacity) {
  WATTMOE_REQUIRE(capacity >= 1, "replay capacity must be >= 1 window (1 = no replay), got {}", capacity);
}

void ReplayBuffer::push(const int32_t* ids, int S) {
  WATTMOE_REQUIRE(S >= 1, "a replayed window needs at least 2 tokens (S >= 1), got S = {}", S);
  if (capacity_ <= 1) return;
  windows_.emplace_back(ids, ids + S + 1);
  while (int64_t(windows_.size()) > capacity_ - 1) windows_.pop_front();
}

ReplayBatch ReplayBuffer::batch(const int32_t* ids, int S) const {
  WATTMOE_REQUIRE(S >= 1, "a window needs at least 2 tokens (S >= 1), got S = {}", S);
  ReplayBatch b;
  b.S = S;
  auto add = [&](const int32_t* w) {
    b.inputs.insert(b.inputs.end(), w, w + S);
    b.targets.insert(b.targets.end(), w + 1, w + S + 1);
    ++b.B;
  };
  add(ids);
  for (auto it = windows_.rbegin(); it != windows_.rend() && b.B < capacity_; ++it)
    if (int(it->size()) == S + 1) add(it->data());
  return b;
}

}  // namespace wattmoe
