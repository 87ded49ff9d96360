// The mix corpus's cleaners (text/mix_corpus.h): finish_doc, strip_troff, clean_rest, wordnet_gloss,
// dictd_entries. Pure functions on strings; no file access.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "core/error.h"
#include "text/mix_corpus.h"
#include "text/utf8.h"

namespace wattmoe {
namespace {

std::vector<std::string_view> lines_of(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t nl = s.find('\n');
    out.push_back(s.substr(0, nl));
    s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
  }
  return out;
}

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// troff special characters (\(xx, \[xx], \*(xx) we keep; anything else is dropped.
const std::map<std::string, std::string, std::less<>>& troff_chars() {
  static const std::map<std::string, std::string, std::less<>> m = {
      {"em", "\u2014"}, {"en", "\u2013"}, {"hy", "-"},  {"aq", "'"},  {"dq", "\""}, {"lq", "\u201c"},
      {"rq", "\u201d"}, {"oq", "\u2018"}, {"cq", "\u2019"}, {"bu", "\u2022"}, {"co", "\u00a9"},
      {"rg", "\u00ae"}, {"tm", "\u2122"}, {"Tm", "\u2122"}, {"R", "\u00ae"}, {"mu", "\u00d7"},
      {"ti", "~"},  {"ha", "^"},  {"bv", "|"},  {"ba", "|"},  {"rs", "\\"}, {"sl", "/"},
      {"at", "@"},  {"sh", "#"},  {"Do", "$"},  {"ga", "`"},  {"aa", "\u00b4"}, {"de", "\u00b0"},
      {"->", "\u2192"}, {"<-", "\u2190"}, {"<=", "\u2264"}, {">=", "\u2265"}, {"!=", "\u2260"},
      {"+-", "\u00b1"}, {"pl", "+"}, {"mi", "-"}, {"eq", "="}, {"lB", "["}, {"rB", "]"}, {"lC", "{"},
      {"rC", "}"}, {"la", "<"}, {"ra", ">"}, {"ss", "\u00df"}};
  return m;
}

std::string troff_char(std::string_view name) {
  auto it = troff_chars().find(name);
  if (it != troff_chars().end()) return it->second;
  if (name.size() == 5 && name[0] == 'u') {  // \[u00E9]
    unsigned cp = 0;
    for (char c : name.substr(1)) {
      if (!std::isxdigit((unsigned char)c)) return "";
      cp = cp * 16 + unsigned(std::isdigit((unsigned char)c) ? c - '0' : (std::tolower((unsigned char)c) - 'a' + 10));
    }
    if (cp >= 0xD800 && cp < 0xE000) return "";  // a surrogate is no character
    std::string s;
    utf8::append(s, char32_t(cp));
    return s;
  }
  return "";
}

// A name after \( (two chars), \[ (to ']') or one char; advances i past it.
std::string_view escape_name(std::string_view s, size_t& i) {
  if (i >= s.size()) return {};
  if (s[i] == '(') {
    std::string_view n = s.substr(i + 1, 2);
    i = std::min(s.size(), i + 3);
    return n;
  }
  if (s[i] == '[') {
    size_t e = s.find(']', i);
    if (e == std::string_view::npos) e = s.size();
    std::string_view n = s.substr(i + 1, e - i - 1);
    i = std::min(s.size(), e + 1);
    return n;
  }
  return s.substr(i++, 1);
}

// Inline escapes of one troff line -> text.
std::string troff_text(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    char c = s[i++];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i >= s.size()) break;
    char e = s[i++];
    switch (e) {
      case '"': case '#': return out;  // comment to the end of the line
      case 'f': case 'F': case 'n': case 'g': case 'k': case 'm': case 'M': case 'V': case 'Y':
        escape_name(s, i);
        break;
      case 's':  // \s+2, \s-1, \s0, \s(12, \s[12]
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
        if (i < s.size() && (s[i] == '(' || s[i] == '[')) {
          escape_name(s, i);
        } else {
          while (i < s.size() && std::isdigit((unsigned char)s[i])) ++i;
        }
        break;
      case '(': case '[':
        --i;
        out += troff_char(escape_name(s, i));
        break;
      case '*': out += troff_char(escape_name(s, i)); break;
      case 'X': case 'h': case 'v': case 'w': case 'o': case 'l': case 'L': case 'D': case 'b': case 'x':
      case 'Z': case 'A': case 'B': case 'C': case 'N': case 'R': case 'S': {  // \h'...' and friends: drop
        if (i < s.size()) {
          char q = s[i];
          size_t e2 = s.find(q, i + 1);
          i = e2 == std::string_view::npos ? s.size() : e2 + 1;
        }
        break;
      }
      case '-': out += '-'; break;
      case 'e': case '\\': out += '\\'; break;
      case ' ': case '~': case '0': out += ' '; break;
      case '&': case ':': case '%': case '/': case ',': case ')': case 'c': case '^': case '|': case '{':
      case '}': case 'd': case 'u': case 'p': case 'r': case 't': case 'a': break;
      default: out += e;  // \. \' \` and anything unknown: the character itself
    }
  }
  return out;
}

// Macro arguments, honouring "double quotes".
std::vector<std::string> troff_args(std::string_view s) {
  std::vector<std::string> args;
  size_t i = 0;
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i >= s.size()) break;
    std::string a;
    if (s[i] == '"') {
      for (++i; i < s.size(); ++i) {
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            a += '"', ++i;
            continue;
          }
          ++i;
          break;
        }
        a += s[i];
      }
    } else {
      while (i < s.size() && s[i] != ' ' && s[i] != '\t') a += s[i++];
    }
    args.push_back(std::move(a));
  }
  return args;
}

bool adornment(std::string_view l) {
  if (l.size() < 3 || std::string_view("=-~^\"'`#*+:._<>").find(l[0]) == std::string_view::npos) return false;
  return std::all_of(l.begin(), l.end(), [&](char c) { return c == l[0]; });
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && std::isspace((unsigned char)s.back())) s.remove_suffix(1);
  return s;
}

// `text <target>` or `text` -> text.
std::string_view link_text(std::string_view t) {
  if (!t.empty() && t.back() == '>') {
    size_t lt = t.rfind('<');
    if (lt != std::string_view::npos && lt > 0) return strip(t.substr(0, lt));
  }
  while (!t.empty() && (t.front() == '~' || t.front() == '!')) t.remove_prefix(1);
  return t;
}

// Inline reST markup of one line.
std::string rest_inline(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (starts(s.substr(i), "``")) {  // ``literal``
      size_t e = s.find("``", i + 2);
      if (e != std::string_view::npos) {
        out.append(s.substr(i + 2, e - i - 2));
        i = e + 2;
        continue;
      }
    }
    if (s[i] == ':' && i + 1 < s.size() && std::isalpha((unsigned char)s[i + 1])) {  // :role:`text`
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum((unsigned char)s[j]) || s[j] == '-' || s[j] == '_' || s[j] == ':'))
        ++j;
      if (j < s.size() && s[j] == '`' && s[j - 1] == ':') {
        size_t e = s.find('`', j + 1);
        if (e != std::string_view::npos) {
          out.append(link_text(s.substr(j + 1, e - j - 1)));
          i = e + 1;
          continue;
        }
      }
    }
    if (s[i] == '`') {  // `text`_, `text <url>`_, `text`
      size_t e = s.find('`', i + 1);
      if (e != std::string_view::npos) {
        out.append(link_text(s.substr(i + 1, e - i - 1)));
        i = e + 1;
        while (i < s.size() && s[i] == '_') ++i;
        continue;
      }
    }
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == ' ') {  // "non-\ NULL": an escaped space is nothing
      i += 2;
      continue;
    }
    out += s[i++];
  }
  if (out.ends_with("::")) out.pop_back();  // "Example::" introduces a literal block
  return out;
}

uint64_t b64_number(std::string_view s) {
  static const std::string_view kAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint64_t v = 0;
  for (char c : s) {
    size_t d = kAlpha.find(c);
    if (d == std::string_view::npos) return UINT64_MAX;
    v = v * 64 + d;
  }
  return v;
}

}  // namespace

std::string finish_doc(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 1);
  size_t blank = 0;  // pending blank lines (emitted only before more text)
  for (size_t i = 0; i <= text.size();) {
    size_t e = text.find_first_of("\r\n", i);
    if (e == std::string_view::npos) e = text.size();
    std::string_view line = text.substr(i, e - i);
    while (!line.empty() && std::isspace((unsigned char)line.back())) line.remove_suffix(1);
    if (line.empty()) {
      if (!out.empty()) ++blank;
    } else {
      out.append(blank, '\n');
      blank = 0;
      out.append(line);
      out += '\n';
    }
    if (e >= text.size()) break;
    i = e + (text[e] == '\r' && e + 1 < text.size() && text[e + 1] == '\n' ? 2 : 1);
  }
  return out;
}

std::string strip_troff(std::string_view man) {
  std::string out, para;  // para: the line being filled
  bool in_def = false, table_format = false, fill = true, tag_pending = false;
  auto brk = [&] {  // end the filled line
    if (!para.empty()) out += para, out += '\n';
    para.clear();
  };
  auto text = [&](const std::string& t) {  // text in fill mode joins the filled line, as troff does
    if (!fill || tag_pending) {
      brk();
      out += t, out += '\n';
      tag_pending = false;
    } else if (!t.empty()) {
      if (!para.empty()) para += ' ';
      para += t;
    }
  };
  auto paragraph = [&] {
    brk();
    out += '\n';
  };
  for (std::string_view line : lines_of(man)) {
    if (in_def) {  // .de NAME ... ..
      in_def = strip(line) != "..";
      continue;
    }
    if (table_format) {  // tbl options and format lines end with the line that ends in '.'
      table_format = !strip(line).ends_with(".");
      continue;
    }
    if (line.empty()) {
      fill ? paragraph() : text("");
      continue;
    }
    if (line[0] != '.' && line[0] != '\'') {
      text(troff_text(line));
      continue;
    }
    std::string_view req = line.substr(1);
    while (!req.empty() && (req[0] == ' ' || req[0] == '\t')) req.remove_prefix(1);
    size_t sp = req.find_first_of(" \t");
    std::string_view name = req.substr(0, sp), rest = sp == std::string_view::npos ? "" : req.substr(sp);
    if (name == "so") return "";  // a link to another page
    std::vector<std::string> args = troff_args(rest);
    auto joined = [&](const char* sep) {
      std::string s;
      for (size_t k = 0; k < args.size(); ++k) s += (k ? sep : ""), s += troff_text(args[k]);
      return s;
    };
    if (name == "SH" || name == "SS") {
      paragraph();
      out += joined(" ") + "\n";
    } else if (name == "B" || name == "I" || name == "SM" || name == "SB") {
      text(joined(" "));
    } else if (name.size() == 2 && std::string_view("BIR").find(name[0]) != std::string_view::npos &&
               std::string_view("BIR").find(name[1]) != std::string_view::npos && name[0] != name[1]) {
      text(joined(""));
    } else if (name == "PP" || name == "P" || name == "LP" || name == "sp" || name == "HP") {
      paragraph();
    } else if (name == "TP" || name == "TQ") {  // the next line is the tag, on a line of its own
      paragraph();
      tag_pending = true;
    } else if (name == "IP") {
      paragraph();
      if (!args.empty() && !args[0].empty()) out += troff_text(args[0]) + "\n";
    } else if (name == "br" || name == "RS" || name == "RE" || name == "in") {
      brk();
    } else if (name == "nf" || name == "EX") {
      brk();
      fill = false;
    } else if (name == "fi" || name == "EE") {
      brk();
      fill = true;
    } else if (name == "de" || name == "de1" || name == "am") {
      in_def = true;
    } else if (name == "TS") {
      brk();
      fill = false, table_format = true;
    } else if (name == "TE") {
      fill = true;
    }
    // everything else (.TH, .ft, .ds, .if, .ie, .nr, .ad, .UR/.UE, ...) is dropped
  }
  brk();
  return out;
}

std::string clean_rest(std::string_view rest) {
  std::string out;
  std::vector<std::string_view> lines = lines_of(rest);
  for (size_t k = 0; k < lines.size(); ++k) {
    std::string_view line = lines[k], t = strip(line);
    if (adornment(t)) continue;
    if (starts(t, "..")) {
      // a directive, comment, target or substitution definition: drop it and the ":option: value" lines below
      size_t indent = line.size() - t.size();
      // toctree and index bodies are file names and index terms, not text: drop the whole indented block
      bool drop_body = starts(t, ".. toctree::") || starts(t, ".. index::");
      while (k + 1 < lines.size()) {
        std::string_view n = lines[k + 1], nt = strip(n);
        bool option = nt.size() > 1 && nt[0] == ':' && nt.find(':', 1) != nt.npos;
        bool in_body = nt.empty() ? k + 2 < lines.size() && lines[k + 2].size() - strip(lines[k + 2]).size() > indent
                                  : n.size() - nt.size() > indent;
        if (in_body && (option || drop_body)) {
          ++k;
        } else {
          break;
        }
      }
      continue;
    }
    out += rest_inline(line);
    out += '\n';
  }
  return out;
}

std::string wordnet_gloss(std::string_view line) {
  if (line.empty() || !std::isdigit((unsigned char)line[0])) return "";
  size_t bar = line.find(" | ");
  std::string_view head = line.substr(0, bar);
  std::vector<std::string_view> f;
  for (size_t i = 0; i < head.size();) {
    size_t e = std::min(head.find(' ', i), head.size());
    if (e > i) f.push_back(head.substr(i, e - i));
    i = e + 1;
  }
  if (f.size() < 4) return "";
  size_t n = 0;  // w_cnt: two hex digits
  for (char c : f[3]) {
    if (!std::isxdigit((unsigned char)c) || n > 0xFFFF) return "";
    n = n * 16 + size_t(std::isdigit((unsigned char)c) ? c - '0' : std::tolower((unsigned char)c) - 'a' + 10);
  }
  std::string out;
  for (size_t w = 0; w < n && 4 + 2 * w < f.size(); ++w) {
    std::string_view word = f[4 + 2 * w];
    if (size_t p = word.find('('); p != std::string_view::npos && word.back() == ')') word = word.substr(0, p);
    if (w) out += ", ";
    for (char c : word) out += c == '_' ? ' ' : c;
  }
  if (bar != std::string_view::npos) out += ": ", out.append(strip(line.substr(bar + 3)));
  return out;
}

std::vector<MixDoc> dictd_entries(std::string_view index, std::string_view dict) {
  struct Entry {
    uint64_t off, len;
    std::string head;
  };
  std::vector<Entry> entries;
  std::set<std::pair<uint64_t, uint64_t>> seen;
  std::map<std::string, int> repeats;
  size_t lineno = 0;
  for (std::string_view line : lines_of(index)) {
    ++lineno;
    size_t t1 = line.find('\t'), t2 = t1 == line.npos ? line.npos : line.find('\t', t1 + 1);
    WATTMOE_REQUIRE(t2 != line.npos, "dictd index line {}: expected headword, offset and length separated by tabs",
                    lineno);
    std::string_view head = line.substr(0, t1);
    uint64_t off = b64_number(line.substr(t1 + 1, t2 - t1 - 1)), len = b64_number(line.substr(t2 + 1));
    WATTMOE_REQUIRE(off != UINT64_MAX && len != UINT64_MAX && off <= dict.size() && len <= dict.size() - off,
                    "dictd index line {}: bad offset or length for \"{}\" (the .dict has {} bytes)", lineno, head,
                    dict.size());
    if (starts(head, "00-") || !seen.insert({off, len}).second) continue;
    int r = repeats[std::string(head)]++;
    entries.push_back({off, len, r ? std::string(head) + "#" + std::to_string(r) : std::string(head)});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.off < b.off; });
  std::vector<MixDoc> docs;
  docs.reserve(entries.size());
  for (auto& e : entries) docs.push_back({e.head, std::string(dict.substr(e.off, e.len))});
  return docs;
}

}  // namespace wattmoe
