#include "text/bpe_train.h"

#include <fmt/format.h>

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/timer.h"
#include "io/atomic_file.h"
#include "text/bpe.h"
#include "text/byte_level.h"
#include "text/regex_split.h"
#include "text/utf8.h"

namespace wattmoe {
namespace {

using WordCounts = std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>;

bool plain(char c) { return c >= '!' && c <= '~'; }  // printable ASCII, not a space

// Cuts `text` into pieces of about `target` bytes at a newline with a printable ASCII character on both sides. No
// GPT-2 regex match crosses such a point and none depends on what lies before it, so splitting each piece gives
// the same words as splitting the whole (the encoder sees the whole).
std::vector<std::string_view> safe_chunks(std::string_view text, size_t target) {
  std::vector<std::string_view> out;
  while (text.size() > target) {
    size_t cut = std::string_view::npos;
    for (size_t k = text.find('\n', target); k != std::string_view::npos; k = text.find('\n', k + 1))
      if (k > 0 && k + 1 < text.size() && plain(text[k - 1]) && plain(text[k + 1])) {
        cut = k + 1;
        break;
      }
    if (cut == std::string_view::npos) break;
    out.push_back(text.substr(0, cut));
    text.remove_prefix(cut);
  }
  if (!text.empty()) out.push_back(text);
  return out;
}

// The spans of `text` between occurrences of the special tokens (leftmost, then longest, as AddedTokenMatcher).
std::vector<std::string_view> cut_specials(std::string_view text, const std::vector<std::string>& specials) {
  std::vector<std::string_view> out;
  size_t from = 0;
  while (true) {
    size_t best = std::string_view::npos, len = 0;
    for (const std::string& s : specials) {
      size_t k = text.find(s, from);
      if (k < best || (k == best && k != std::string_view::npos && s.size() > len)) best = k, len = s.size();
    }
    if (best == std::string_view::npos) break;
    if (best > from) out.push_back(text.substr(from, best - from));
    from = best + len;
  }
  if (from < text.size()) out.push_back(text.substr(from));
  return out;
}

void count_words(std::string_view text, const std::vector<std::string>& specials, WordCounts& counts,
                 uint64_t& words) {
  for (std::string_view seg : cut_specials(text, specials))
    for (std::string_view chunk : safe_chunks(seg, size_t(1) << 20))
      for (auto [b, e] : regex_matches(SplitRegex::Gpt2, chunk)) {
        std::string_view w = chunk.substr(b, e - b);
        ++words;
        if (auto it = counts.find(w); it != counts.end()) ++it->second;
        else counts.emplace(std::string(w), 1);
      }
}

uint64_t pair_key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

struct HeapEntry {
  int64_t count;
  uint64_t pair;
  bool operator<(const HeapEntry& o) const {  // max-heap: higher count first, then the smaller pair
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

// The merge loop over the counted words.
class Merger {
 public:
  Merger(const WordCounts& counts, BpeTrainResult& r, const std::vector<std::string>& specials) : r_(r) {
    for (int32_t b = 0; b < 256; ++b) index_.emplace(r_.vocab[b], b);
    special_keys_.insert(specials.begin(), specials.end());
    words_.reserve(counts.size());
    freq_.reserve(counts.size());
    for (const auto& [w, c] : counts) {
      std::vector<int32_t> syms(w.begin(), w.end());
      for (int32_t& s : syms) s &= 0xFF;  // id = byte value
      words_.push_back(std::move(syms));
      freq_.push_back(int64_t(c));
    }
    // Deterministic order of the words (the hash map's order is not); it does not change the result, only the
    // order in which the same updates are made.
    std::vector<uint32_t> order(words_.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return words_[a] < words_[b]; });
    std::vector<std::vector<int32_t>> w2;
    std::vector<int64_t> f2;
    w2.reserve(order.size());
    f2.reserve(order.size());
    for (uint32_t i : order) w2.push_back(std::move(words_[i])), f2.push_back(freq_[i]);
    words_ = std::move(w2);
    freq_ = std::move(f2);
    for (uint32_t w = 0; w < words_.size(); ++w) {
      const auto& s = words_[w];
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        uint64_t p = pair_key(s[i], s[i + 1]);
        count_[p] += freq_[w];
        where_[p].push_back(w);
      }
    }
    for (const auto& [p, c] : count_) heap_.push({c, p});
  }

  void run(const BpeTrainOptions& opt) {
    const int total = opt.vocab_size - int(r_.vocab.size());
    Timer last;
    while (int(r_.vocab.size()) < opt.vocab_size && !heap_.empty()) {
      HeapEntry e = heap_.top();
      heap_.pop();
      auto it = count_.find(e.pair);
      int64_t cur = it == count_.end() ? 0 : it->second;
      if (cur != e.count) {  // stale: the count has changed since this entry was pushed
        if (cur > 0) heap_.push({cur, e.pair});
        continue;
      }
      if (cur < std::max(opt.min_frequency, 1)) break;  // the best pair is too rare: so is every other
      const int32_t a = int32_t(e.pair >> 32), b = int32_t(e.pair & 0xFFFFFFFFu);
      if (special_keys_.count(map_.encode(r_.vocab[a] + r_.vocab[b]))) {  // would be a second token "<|endoftext|>"
        count_.erase(e.pair);
        banned_.insert(e.pair);
        continue;
      }
      merge(a, b);
      if (opt.progress && last.seconds() > 2) {
        fmt::print(stderr, "bpe: {:>6}/{} merges, vocab {} (last pair seen {} times)\n", r_.merges.size(), total,
                   r_.vocab.size(), cur);
        last.reset();
      }
    }
  }

 private:
  void merge(int32_t a, int32_t b) {
    const std::string merged = r_.vocab[a] + r_.vocab[b];
    int32_t c;
    if (auto it = index_.find(merged); it != index_.end()) {
      c = it->second;  // the same bytes were already formed by another pair: the merge reuses that token
    } else {
      c = int32_t(r_.vocab.size());
      r_.vocab.push_back(merged);
      index_.emplace(merged, c);
    }
    r_.merges.push_back({a, b, c});
    const uint64_t p = pair_key(a, b);
    std::vector<uint32_t> ws = std::move(where_[p]);
    where_.erase(p);
    std::sort(ws.begin(), ws.end());
    ws.erase(std::unique(ws.begin(), ws.end()), ws.end());
    std::vector<uint64_t> touched;
    std::vector<int32_t> out;
    for (uint32_t w : ws) {
      std::vector<int32_t>& s = words_[w];
      out.clear();
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          out.push_back(c);
          i += 2;
        } else {
          out.push_back(s[i++]);
        }
      }
      if (out.size() == s.size()) continue;  // a stale entry: the pair is no longer in this word
      const int64_t f = freq_[w];
      for (size_t i = 0; i + 1 < s.size(); ++i) count_[pair_key(s[i], s[i + 1])] -= f;
      for (size_t i = 0; i + 1 < out.size(); ++i) {
        uint64_t q = pair_key(out[i], out[i + 1]);
        count_[q] += f;
        if (out[i] == c || out[i + 1] == c) {
          where_[q].push_back(w);
          touched.push_back(q);
        }
      }
      s.swap(out);
    }
    count_.erase(p);
    // Only pairs with the merged token gained counts; the others only lost some and are fixed up lazily.
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t q : touched)
      if (int64_t n = count_[q]; n > 0 && !banned_.count(q)) heap_.push({n, q});
  }

  BpeTrainResult& r_;
  const ByteLevelMap map_;
  std::unordered_map<std::string, int32_t> index_;  // token bytes -> id, bytes and merges (a merge may reuse one)
  std::unordered_set<std::string> special_keys_;    // the special tokens: no merge may form one of them
  std::unordered_set<uint64_t> banned_;             // pairs that would
  std::vector<std::vector<int32_t>> words_;
  std::vector<int64_t> freq_;
  std::unordered_map<uint64_t, int64_t> count_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where_;  // pair -> words that may hold it (stale allowed)
  std::priority_queue<HeapEntry> heap_;
};

}  // namespace

BpeTrainResult train_bpe(const std::vector<std::string_view>& texts, const std::vector<std::string>& names,
                         const BpeTrainOptions& opt) {
  WATTMOE_REQUIRE(texts.size() == names.size(), "train_bpe: {} texts but {} names", texts.size(), names.size());
  const int base = 256 + int(opt.special_tokens.size());
  WATTMOE_REQUIRE(opt.vocab_size >= base,
                  "tokenizer training: --vocab {} is smaller than the 256 byte tokens plus {} special tokens",
                  opt.vocab_size, opt.special_tokens.size());
  BpeTrainResult r;
  const ByteLevelMap map;
  std::unordered_set<std::string> keys;  // the tokenizer.json vocab keys so far
  for (int b = 0; b < 256; ++b) {
    r.vocab.push_back(std::string(1, char(b)));
    keys.insert(map.encode(r.vocab.back()));
  }
  for (const std::string& s : opt.special_tokens) {
    WATTMOE_REQUIRE(!s.empty() && utf8::valid(s), "tokenizer training: special token '{}' should be non-empty UTF-8",
                    utf8::lossy(s));
    WATTMOE_REQUIRE(keys.insert(s).second,
                    "tokenizer training: special token '{}' is given twice or is the token of a single byte", s);
    r.vocab.push_back(s);
  }
  r.num_special = int(opt.special_tokens.size());

  Timer t;
  WordCounts counts;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (size_t bad = utf8::find_invalid(texts[i]); bad != std::string_view::npos)
      fail("{}: not valid UTF-8 (bad byte 0x{:02X} at offset {}); tokenizer training reads UTF-8 text", names[i],
           unsigned((unsigned char)texts[i][bad]), bad);
    count_words(texts[i], opt.special_tokens, counts, r.words);
    r.bytes += texts[i].size();
    if (opt.progress)
      fmt::print(stderr, "bpe: counted {} ({:.2f} MB): {} words so far, {} distinct ({:.1f} s)\n", names[i],
                 double(texts[i].size()) / 1e6, r.words, counts.size(), t.seconds());
  }
  r.unique_words = counts.size();
  r.count_seconds = t.seconds();
  t.reset();
  {
    Merger m(counts, r, opt.special_tokens);
    counts = WordCounts();  // the merger holds the words as symbol lists now
    m.run(opt);
  }
  r.merge_seconds = t.seconds();
  if (opt.progress)
    fmt::print(stderr, "bpe: {} merges, vocab {} ({:.1f} s counting, {:.1f} s merging)\n", r.merges.size(),
               r.vocab.size(), r.count_seconds, r.merge_seconds);
  return r;
}

BpeTrainResult train_bpe_files(const std::vector<std::string>& files, const BpeTrainOptions& opt) {
  WATTMOE_REQUIRE(!files.empty(), "tokenizer training: no training files given (--train FILE...)");
  std::vector<std::string> texts;
  texts.reserve(files.size());
  for (const std::string& f : files) texts.push_back(read_text_file(f));
  std::vector<std::string_view> views(texts.begin(), texts.end());
  return train_bpe(views, files, opt);
}

Json bpe_tokenizer_json(const BpeTrainResult& r) {
  const ByteLevelMap map;
  const int first_merge = 256 + r.num_special;
  auto token = [&](int32_t id) {
    return id >= 256 && id < first_merge ? r.vocab[id] : map.encode(r.vocab[id]);
  };
  Json vocab = Json::object();
  for (int32_t id = 0; id < int32_t(r.vocab.size()); ++id) vocab[token(id)] = id;
  Json merges = Json::array();
  for (const auto& m : r.merges) merges.push_back(Json::array({token(m.left), token(m.right)}));
  Json added = Json::array();
  for (int32_t id = 256; id < first_merge; ++id)
    added.push_back(Json{{"id", id}, {"content", r.vocab[id]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}});
  auto byte_level = [](bool prefix, bool trim) {
    return Json{{"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"trim_offsets", trim}, {"use_regex", true}};
  };
  return Json{{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", byte_level(false, true)},
              {"post_processor", byte_level(true, false)},
              {"decoder", byte_level(true, true)},
              {"model", Json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                             {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                             {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                             {"vocab", vocab}, {"merges", merges}}}};
}

void write_bpe_tokenizer(const std::string& path, const BpeTrainResult& r) {
  write_json_file(path, bpe_tokenizer_json(r), 1);
}

}  // namespace wattmoe
