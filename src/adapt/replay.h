// Replay for prequential test-time training: each adaptation step trains on the window just revealed together with
// the last capacity−1 windows revealed before it, as one batch of B sequences (B ≤ capacity). The noise of a shifted
// stream is i.i.d. per character, so more revealed text per step means a less noisy gradient at the same cost in
// leakage (none: only windows already scored ever enter a batch).
//
// Protocol (TestTimeAdapter::process): score window t, then batch(window t) — the current window first, then the
// stored ones newest first — then push(window t) after adapting, so window t is in the buffer only from window t+1 on.
// Only stored windows of the same length S as the current one join its batch (the last window of a stream may be
// shorter; it then trains alone or with shorter stored windows only).
//
// Batch layout: inputs [B, S] (ids[0..S−1] of each window), targets [B, S] (ids[1..S]): row b·S + s of a forward over
// inputs with (B, S) predicts targets[b·S + s].
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

namespace wattmoe {

struct ReplayBatch {
  int B = 0, S = 0;
  std::vector<int32_t> inputs, targets;  // [B·S] each
};

class ReplayBuffer {
 public:
  explicit ReplayBuffer(int capacity = 1);  // ≥ 1: the batch size; 1 keeps nothing (every batch is the window alone)

  // Stores one revealed window of S + 1 tokens (copied); the oldest goes when more than capacity − 1 are held.
  void push(const int32_t* ids, int S);
  // The current window (S + 1 tokens) followed by the stored windows of length S, newest first, up to capacity rows.
  ReplayBatch batch(const int32_t* ids, int S) const;
  void clear() { windows_.clear(); }

  int capacity() const { return capacity_; }
  int64_t size() const { return int64_t(windows_.size()); }

 private:
  int capacity_;
  std::deque<std::vector<int32_t>> windows_;  // oldest first; each S + 1 tokens
};

}  // namespace wattmoe
