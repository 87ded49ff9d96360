// Domain-shift transforms: seeded, reproducible corruptions of any UTF-8 text, used to build shifted evaluation
// sets (kjv.val.noise10.txt, ...) and to perturb text on the fly. Line breaks are never touched, so a corrupted
// file has the same lines as its source. Invalid UTF-8 input is an Error.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "core/rng.h"

namespace wattmoe {

struct NoiseStats {
  size_t chars = 0;  // characters considered (all but '\n')
  size_t hits = 0;   // characters an edit was applied to
  size_t substitutions = 0, deletions = 0, insertions = 0, swaps = 0;
};

// Typing noise: every character except '\n' is hit with probability p; a hit is, with equal odds, a substitution
// by a QWERTY neighbour, a deletion, the insertion of a neighbour after it, or a swap with the next character
// (a swap at the end of a line becomes a substitution; the swapped-in character is not hit again). Letters keep
// their case; ' ' has the keys above the space bar as neighbours; characters that are not on the keyboard get a
// random lowercase letter.
std::string char_noise(std::string_view text, double p, Rng& rng, NoiseStats* stats = nullptr);

// Upper case: ASCII, Latin-1, Greek and Cyrillic letters (the simple one-to-one mappings; 'ß' and other letters
// whose capital is longer or elsewhere stay as they are).
std::string all_caps(std::string_view text);

// Shuffles the words (runs of non-space characters) of each line; the whitespace runs between them stay as they
// were, in order, so the line keeps its length and characters.
std::string shuffle_words(std::string_view text, Rng& rng);

// A seed for one named use of a base seed (say "kjv.val.noise10"), so outputs do not depend on build order.
uint64_t derive_seed(uint64_t seed, std::string_view name);

}  // namespace wattmoe
