#include "text/bpe.h"

#include <fmt/format.h>

#include <queue>

#include "core/error.h"
#include "text/utf8.h"

namespace wattmoe {

BpeModel::BpeModel(TokenIdMap vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions opt, const std::string& where)
    : vocab_(std::move(vocab)), opt_(std::move(opt)) {
  int32_t max_id = -1;
  for (auto& [tok, id] : vocab_) {
    WATTMOE_REQUIRE(id >= 0, "{}: vocab token '{}' has a negative id {}", where, tok, id);
    max_id = std::max(max_id, id);
  }
  // The id -> token table is dense: a few unused ids are fine, a huge id on a small vocab would allocate gigabytes.
  const int64_t unused_ids = int64_t(max_id) + 1 - int64_t(vocab_.size());  // < 0: repeated ids, refused below
  WATTMOE_REQUIRE(unused_ids <= kMaxUnusedVocabIds, "{}: vocab ids are sparse: the largest is {} for {} tokens ({} ids "
                  "unused, at most {} allowed)", where, max_id, vocab_.size(), unused_ids, kMaxUnusedVocabIds);
  id_to_token_.resize(size_t(max_id + 1));
  has_id_.assign(size_t(max_id + 1), false);
  for (auto& [tok, id] : vocab_) {
    WATTMOE_REQUIRE(!has_id_[id], "{}: vocab id {} is used by two tokens ('{}' and '{}')", where, id,
                    id_to_token_[id], tok);
    id_to_token_[id] = tok;
    has_id_[id] = true;
  }
  size_t prefix_len = opt_.continuing_subword_prefix ? opt_.continuing_subword_prefix->size() : 0;
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    auto& [a, b] = merges[rank];
    auto ia = token_to_id(a), ib = token_to_id(b);
    WATTMOE_REQUIRE(ia, "{}: merge {} ('{}' '{}') names '{}', which is not in the vocab", where, rank, a, b, a);
    WATTMOE_REQUIRE(ib, "{}: merge {} ('{}' '{}') names '{}', which is not in the vocab", where, rank, a, b, b);
    // With a continuing-subword prefix ("##"), the right part's prefix is dropped in the merged token.
    std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : std::string());
    auto im = token_to_id(merged);
    WATTMOE_REQUIRE(im, "{}: merge {} ('{}' '{}') forms '{}', which is not in the vocab", where, rank, a, b, merged);
    merges_[key(*ia, *ib)] = Merge{uint32_t(rank), *im};  // a repeated pair keeps its last rank, as upstream
  }
  if (opt_.unk_token) {
    unk_id_ = token_to_id(*opt_.unk_token);
  }
  for (int b = 0; b < 256; ++b) {
    auto id = token_to_id(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = id ? *id : -1;
  }
  // Most symbols a word starts from are single characters (all of them for byte-level models): look those up in
  // a table. Only valid without affixes, which would change the strings looked up.
  if (!opt_.continuing_subword_prefix && !opt_.end_of_word_suffix) {
    char_ids_.assign(0x800, -1);
    std::string s;
    for (char32_t c = 0; c < 0x800; ++c) {
      s.clear();
      utf8::append(s, c);
      if (auto id = token_to_id(s)) char_ids_[c] = *id;
    }
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !has_id_[id]) return nullptr;
  return &id_to_token_[id];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {  // Llama-3: a piece that is a whole token is taken as is
    if (auto id = token_to_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  struct Sym {
    int32_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  auto push = [&](int32_t id) {
    int i = int(syms.size());
    syms.push_back({id, i - 1, i + 1, true});
  };
  int32_t pending_unk = -1;  // an unk waiting to be fused with the next unknown character
  std::string s;
  for (size_t i = 0; i < word.size();) {
    char32_t cp;
    bool ok;
    size_t n = utf8::decode_one(word, i, &cp, &ok);
    bool first = i == 0, last = i + n == word.size();
    if (ok && cp < char_ids_.size() && char_ids_[cp] >= 0) {
      if (pending_unk >= 0) push(pending_unk), pending_unk = -1;
      push(char_ids_[cp]);
      i += n;
      continue;
    }
    s.assign(word.substr(i, n));
    i += n;
    if (!first && opt_.continuing_subword_prefix) s = *opt_.continuing_subword_prefix + s;
    if (last && opt_.end_of_word_suffix) s += *opt_.end_of_word_suffix;
    if (auto id = token_to_id(s)) {
      if (pending_unk >= 0) push(pending_unk), pending_unk = -1;
      push(*id);
      continue;
    }
    if (opt_.byte_fallback) {
      bool all = true;
      for (unsigned char b : s) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : s) push(byte_ids_[b]);
        continue;
      }
    }
    if (opt_.unk_token) {
      WATTMOE_REQUIRE(unk_id_, "tokenizer: the unk token '{}' is not in the vocab", *opt_.unk_token);
      if (pending_unk >= 0 && !opt_.fuse_unk) push(pending_unk);
      pending_unk = *unk_id_;
    }
    // No unk token configured: upstream drops the character; so do we.
  }
  if (pending_unk >= 0) push(pending_unk);
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Cand {
    uint32_t rank;
    int pos;
    int32_t id;
    bool operator<(const Cand& o) const {  // priority_queue pops the largest: lowest rank, then leftmost
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Cand> q;
  auto lookup = [&](int a, int b) -> const Merge* {
    auto it = merges_.find(key(syms[a].id, syms[b].id));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int i = 0; i + 1 < int(syms.size()); ++i)
    if (auto m = lookup(i, i + 1)) q.push({m->rank, i, m->id});
  while (!q.empty()) {
    Cand c = q.top();
    q.pop();
    Sym& left = syms[c.pos];
    if (!left.alive || left.next < 0) continue;
    auto m = lookup(c.pos, left.next);
    if (!m || m->id != c.id) continue;  // stale: one side has been merged since
    Sym& right = syms[left.next];
    right.alive = false;
    left.id = c.id;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = c.pos;
    if (left.prev >= 0)
      if (auto p = lookup(left.prev, c.pos)) q.push({p->rank, left.prev, p->id});
    if (left.next >= 0)
      if (auto p = lookup(c.pos, left.next)) q.push({p->rank, c.pos, p->id});
  }
  for (int i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

}  // namespace wattmoe
