#!/usr/bin/env python3
"""Reference data for wattmoe's tokenizers, produced with the Hugging Face `tokenizers` package.

  make_tokenizer_fixtures.py fixtures [--out tests/fixtures/tokenizers]
      Trains two small BPE tokenizers (byte-level and SentencePiece-style with byte fallback) on the KJV
      (`bible` from bible-kjv), the fortunes cookie files and a little multilingual text, writes them in a few
      configurations (the pre-tokenizer / normalizer / decoder combinations real models use) and a cases.json
      with the ids and decodes `tokenizers` produces. The C++ test must reproduce every one exactly.
  make_tokenizer_fixtures.py unicode-tables [--out src/text/unicode_data.inc]
      Writes the Unicode tables the C++ pre-tokenizers and NFC use. Letter / number / space classes are read
      from the `tokenizers` regex engine itself (Oniguruma: \\p{L}, \\p{N}, \\s) and the word class from its
      added-token matcher, so the C++ code agrees with it exactly; NFC data comes from Python's unicodedata.

Run with /work/venv-ref/bin/python (pip install tokenizers if missing). Deterministic: same package version,
same files.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import unicodedata

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# A little text in other scripts so that the trained vocabularies hold some non-ASCII pieces.
MULTILINGUAL = """Le cœur a ses raisons que la raison ne connaît point. Ça va très bien, merci.
Über allen Gipfeln ist Ruh, in allen Wipfeln spürest du kaum einen Hauch. Grüße aus Köln!
¿Dónde está la biblioteca? El niño comió piña y jalapeños en la mañana.
Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς τὸν θεόν. Καλημέρα κόσμε.
В начале было Слово, и Слово было у Бога. Привет, мир! Как дела?
太初有道，道與神同在，道就是神。你好，世界！今天天气很好。
はじめに言葉があった。こんにちは世界。東京は大きな都市です。
태초에 말씀이 계시니라. 안녕하세요 세계.
في البدء كان الكلمة. مرحبا بالعالم.
בְּרֵאשִׁית בָּרָא אֱלֹהִים אֵת הַשָּׁמַיִם וְאֵת הָאָרֶץ
शुरुआत में वचन था। नमस्ते दुनिया।
Emoji: 😀 🎉 👍🏽 ❤️ 🚀 — numbers ½ ² ٣ ४ Ⅻ 3.14 1,000,000 and 2024-11-26.
"""

CASES = [
    "",
    " ",
    "Hello world",
    "hello world",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "In the beginning God created the heaven and the earth.",
    "And God said, Let there be light: and there was light.",
    "don't can't won't I'm you're they've we'll he'd IT'S DON'T",
    "I'ſ a long s and 'S and 'T",
    "digits 12345 and 3.14 and 1234567890 and 007",
    "MiXeD CaSe WoRdS and ALLCAPS and lowercase",
    "tabs\tand\t\ttabs",
    "new\nlines\n\nand\r\nCRLF\n",
    "spaces   between    words     here",
    "   \n\t  mixed whitespace run \t\n  ",
    "trailing newline\n",
    "\n\n\n",
    "café naïve résumé façade Zürich São Paulo",
    "e\u0301 composed by NFC, A\u030a and \u1e9b\u0323, Hangul \u1100\u1161\u11a8",
    "日本語のテキストと中文文本",
    "太初有道，道與神同在",
    "한국어 텍스트",
    "Ελληνικά και Русский текст",
    "emoji 😀🎉 👍🏽 ❤️ family 👨‍👩‍👧",
    "symbols !!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&&",
    "code: int main(void) { return x[i] + y->z; } // done",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "a <|im_start|>user\nhi<|im_end|> b",
    "<s>bos and eos</s>",
    "wattmoe inside wattmoes",
    "moe and a moe, moe! xmoe moey _moe wattmoe",
    "x <|lstrip|> y",
    "rare chars: \u2603 \u2764 \u00bf \u00a1 \u00b5 \u03a9 \u20ac \U0001d54f \ufeff \u200b",
    "\u00a0non-breaking\u00a0spaces\u2003em\u3000ideographic",
    "Vulgar ½ superscript² arabic ٣ devanagari ४ roman Ⅻ",
    "word",
    "a",
    "!",
    "The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me "
    "beside the still waters. He restoreth my soul: he leadeth me in the paths of righteousness for his name's "
    "sake.",
    "Q: What's the difference between a duck?\nA: One leg is both the same.\n\t\t-- fortune(6)\n",
]


def random_cases(n, seed):
    """Strings drawn from a pool of characters that sit on the edges of the split patterns' classes."""
    pool = list("aZ09 '\t\n\r.,!?-_()\"$") + ["ſ", "é", "\u0301", "ß", "日", "本", "😀", "\u00a0", "\u2003",
                                                "\u3000", "٣", "½", "Ω", "\u200b", "\ufeff", "'s", "'LL", "12345",
                                                "  ", "\n\n", " \n", "<|endoftext|>", "wattmoe", "moe", "▁"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pool) for _ in range(rng.randrange(1, 25))) for _ in range(n)]


def kjv_text():
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    return [line.split(" ", 1)[1] for line in out.splitlines() if " " in line]


def fortunes_text():
    d = "/usr/share/games/fortunes"
    lines = []
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if name.endswith((".dat", ".u8")) or os.path.islink(p) or not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8", errors="replace") as f:
            lines += [l.rstrip("\n") for l in f if l.strip() != "%"]
    return lines


def training_lines():
    kjv = kjv_text()
    # Every 20th verse (about 220 KB), a slice of fortunes (about 150 KB), the multilingual text a few times.
    return kjv[::20] + fortunes_text()[:4000] + MULTILINGUAL.splitlines() * 8


def train_bytelevel(lines):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.add_tokens([AddedToken("wattmoe", normalized=True, special=False)])
    tok.add_special_tokens([AddedToken("<|lstrip|>", lstrip=True, rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("moe", single_word=True, normalized=False, special=False)])
    return json.loads(tok.to_str())


def train_metaspace(lines):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # Keep the 120 most frequent characters (ties by code point) so that rarer ones fall back to <0xXX> bytes.
    # (The trainer's own limit_alphabet breaks ties in hash order, which would make the fixture differ run to run.)
    counts = {}
    for l in lines:
        for c in l:
            counts[c] = counts.get(c, 0) + 1
    keep = set(sorted(counts, key=lambda c: (-counts[c], c))[:120])
    lines = ["".join(c for c in l if c in keep) for l in lines]
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(lines, trainer)
    j = json.loads(tok.to_str())
    # SentencePiece layout: specials, then the 256 byte tokens <0x00>..<0xFF>, then the learned pieces.
    old = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    specials = [t for t, _ in old[:3]]
    assert specials == ["<unk>", "<s>", "</s>"], specials
    order = specials + [f"<0x{b:02X}>" for b in range(256)] + [t for t, _ in old[3:]]
    j["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    j["added_tokens"] = [dict(a, id=j["model"]["vocab"][a["content"]]) for a in j["added_tokens"]]
    return j


def variants(bl, ms):
    """name -> tokenizer.json dict: the configurations HF models ship."""
    out = {}
    q = json.loads(json.dumps(bl))
    out["bytelevel_qwen2.json"] = q  # NFC + Split(Qwen2 regex) + ByteLevel, merges as pairs

    l3 = json.loads(json.dumps(bl))
    l3["normalizer"] = None
    l3["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": LLAMA3_PATTERN}
    l3["model"]["ignore_merges"] = True
    l3["model"]["merges"] = [" ".join(m) for m in l3["model"]["merges"]]  # legacy "a b" strings
    out["bytelevel_llama3.json"] = l3

    g2 = json.loads(json.dumps(bl))
    g2["normalizer"] = None
    g2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    g2["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    out["bytelevel_gpt2.json"] = g2

    leg = json.loads(json.dumps(ms))  # Mixtral / Llama-2: normalizer does the spaces, decoder undoes them
    leg["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    leg["pre_tokenizer"] = None
    leg["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    leg["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    out["metaspace_legacy.json"] = leg

    new = json.loads(json.dumps(ms))  # newer Llama / Mistral: Metaspace pre-tokenizer, prepend only at the start
    new["normalizer"] = None
    new["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    new["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                                   "split": True}]}
    out["metaspace_first.json"] = new
    return out


def decoded(tok, ids):
    """ids and their decodes; decoded_skip_special only where skipping special tokens changes the text."""
    d = {"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)}
    skip = tok.decode(ids, skip_special_tokens=True)
    if skip != d["decoded"]:
        d["decoded_skip_special"] = skip
    return d


def make_fixtures(out_dir):
    lines = training_lines()
    kjv = kjv_text()
    texts = CASES + random_cases(60, 7) + ["\n".join(kjv[1000:1012]) + "\n" + "\n".join(fortunes_text()[5000:5025])]
    print(f"training on {sum(len(l) + 1 for l in lines)} characters, tokenizers {tokenizers.__version__}",
          file=sys.stderr)
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(1234)
    cases = {"tokenizers_version": tokenizers.__version__, "texts": texts, "tokenizers": {}}
    for name, j in variants(train_bytelevel(lines), train_metaspace(lines)).items():
        text = json.dumps(j, ensure_ascii=False, separators=(",", ":"))
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write(text)
        tok = Tokenizer.from_str(text)
        enc = []
        for t in texts:
            ids = tok.encode(t, add_special_tokens=False).ids
            enc.append(decoded(tok, ids))
        # Random id sequences exercise the decoders on pieces that need not form valid UTF-8.
        n = tok.get_vocab_size(with_added_tokens=True)
        dec = []
        for _ in range(30):
            ids = [rng.randrange(n) for _ in range(rng.randrange(1, 12))]
            dec.append(decoded(tok, ids))
        cases["tokenizers"][name] = {"vocab_size": n, "encode": enc, "decode": dec}
        print(f"  {name}: {len(text)} bytes, vocab {n}", file=sys.stderr)
    with open(os.path.join(out_dir, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


def char_class_ranges(pattern):
    """Code point ranges the `tokenizers` regex engine matches with a one-character class."""
    cps = [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF)]
    s = "".join(map(chr, cps))
    unmatched = pre_tokenizers.Split(Regex(pattern), behavior="removed").pre_tokenize_str(s)
    member = bytearray([1]) * len(cps)
    for _, (a, b) in unmatched:  # offsets are in characters
        member[a:b] = bytes(b - a)
    ranges = []
    for i, c in enumerate(cps):
        if member[i]:
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
    return ranges


def word_char_ranges():
    """\\w as the added-token matcher sees it (single_word): Rust's regex crate, which differs from Oniguruma's
    \\w on a few characters. Read by asking, for every code point c, whether "c" + "moe" still matches a
    single_word added token "moe"."""
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.add_tokens([AddedToken("moe", single_word=True, normalized=False)])
    cps = [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF)]
    enc = tok.encode_batch([chr(c) + "moe" for c in cps], add_special_tokens=False)
    ranges = []
    for c, e in zip(cps, enc):
        if 1 not in e.ids:
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
    return ranges


def nfc_tables():
    decomp, compose = [], []
    ccc = []
    for c in range(0x110000):
        ch = chr(c)
        k = unicodedata.combining(ch)
        if k:
            if ccc and ccc[-1][1] == c - 1 and ccc[-1][2] == k:
                ccc[-1][1] = c
            else:
                ccc.append([c, c, k])
        d = unicodedata.decomposition(ch)
        if d and not d.startswith("<"):
            parts = [int(x, 16) for x in d.split()]
            decomp.append((c, parts))
            # A primary composite: a pair decomposition that NFC leaves as is (not a composition exclusion).
            if len(parts) == 2 and unicodedata.normalize("NFC", ch) == ch:
                compose.append((parts[0], parts[1], c))
    return decomp, sorted(compose), ccc


def write_unicode_tables(path):
    out = [
        "// Generated by scripts/make_tokenizer_fixtures.py unicode-tables: do not edit.",
        f"// Classes read from the `tokenizers` {tokenizers.__version__} regex engine (Oniguruma); NFC data from"
        f" Python unicodedata {unicodedata.unidata_version}.",
    ]
    for name, pat in [("kLetterRanges", r"\p{L}"), ("kNumberRanges", r"\p{N}"), ("kSpaceRanges", r"\s"),
                      ("kWordRanges", None)]:
        r = char_class_ranges(pat) if pat else word_char_ranges()
        out.append(f"inline constexpr CpRange {name}[] = {{")
        out += ["  " + " ".join(f"{{0x{a:X},0x{b:X}}}," for a, b in r[i:i + 6]) for i in range(0, len(r), 6)]
        out.append("};")
    decomp, compose, ccc = nfc_tables()
    out.append("// {first, last, canonical combining class}")
    out.append("inline constexpr CccRange kCccRanges[] = {")
    out += ["  " + " ".join(f"{{0x{a:X},0x{b:X},{k}}}," for a, b, k in ccc[i:i + 5]) for i in range(0, len(ccc), 5)]
    out.append("};")
    out.append("// {code point, first, second (0 if a singleton)}: one step of canonical decomposition, sorted")
    out.append("inline constexpr Decomp kDecomp[] = {")
    rows = [f"{{0x{c:X},0x{p[0]:X},0x{(p[1] if len(p) > 1 else 0):X}}}," for c, p in decomp]
    out += ["  " + " ".join(rows[i:i + 5]) for i in range(0, len(rows), 5)]
    out.append("};")
    out.append("// {first, second, composite}: primary composites, sorted by (first, second)")
    out.append("inline constexpr Compose kCompose[] = {")
    rows = [f"{{0x{a:X},0x{b:X},0x{c:X}}}," for a, b, c in compose]
    out += ["  " + " ".join(rows[i:i + 5]) for i in range(0, len(rows), 5)]
    out.append("};")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["fixtures", "unicode-tables"])
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.what == "fixtures":
        make_fixtures(a.out or os.path.join(ROOT, "tests/fixtures/tokenizers"))
    else:
        write_unicode_tables(a.out or os.path.join(ROOT, "src/text/unicode_data.inc"))


if __name__ == "__main__":
    main()
