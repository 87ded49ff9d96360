"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/*): valid inputs and one of each kind of bad one.

Run with any python3: python3 fuzz/make_corpus.py. The seeds are committed; rerun only to change them.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")


def st(header, data=b"", length=None):
    h = header if isinstance(header, bytes) else header.encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


SAFETENSORS = {
    # valid
    "valid_empty": st("{}"),
    "valid_padded": st("{}      "),
    "valid_two": st(js({"__metadata__": {"format": "pt"}, "w": entry("F32", [2, 2], 0, 16),
                        "b": entry("BF16", [3], 16, 22)}), bytes(24)),
    "valid_scalar_zero": st(js({"s": entry("F64", [], 0, 8), "z": entry("I64", [0, 4], 8, 8),
                                "u": entry("U8", [3], 8, 11)}), bytes(11)),
    "valid_every_dtype": st(js({d: entry(d, [1], 8 * i, 8 * i + n) for i, (d, n) in enumerate(
        [("F64", 8), ("F32", 4), ("F16", 2), ("BF16", 2), ("F8_E4M3", 1), ("F8_E5M2", 1), ("I64", 8),
         ("I32", 4), ("I16", 2), ("I8", 1), ("U8", 1), ("BOOL", 1)])}), bytes(96)),
    # invalid
    "bad_short": b"\x05\x00\x00",
    "bad_length_past_end": st("{}", length=99),
    "bad_length_absurd": st("{}", length=1 << 62),
    "bad_not_json": st('{"a": tru}'),
    "bad_array": st("[1,2]"),
    "bad_missing_dtype": st(js({"a": {"shape": [1], "data_offsets": [0, 4]}}), bytes(4)),
    "bad_dtype": st(js({"a": entry("F7", [1], 0, 4)}), bytes(4)),
    "bad_negative_dim": st(js({"a": entry("F32", [-1], 0, 4)}), bytes(4)),
    "bad_overflow": st(js({"a": entry("U8", [1 << 32, 1 << 32, 0], 0, 0)})),
    "bad_offsets_arity": st(js({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}), bytes(4)),
    "bad_begin_gt_end": st(js({"a": entry("F32", [0], 4, 0)}), bytes(4)),
    "bad_size_mismatch": st(js({"a": entry("F32", [2], 0, 4)}), bytes(8)),
    "bad_past_data": st(js({"a": entry("F32", [2], 0, 8)}), bytes(4)),
    "bad_overlap": st(js({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}), bytes(12)),
    # the reference reader's rules: contiguous from byte 0, no trailing bytes, header padded with spaces only
    "bad_gap": st(js({"a": entry("U8", [2], 0, 2), "b": entry("U8", [2], 4, 6)}), bytes(6)),
    "bad_trailing": st(js({"a": entry("U8", [2], 0, 2)}), bytes(5)),
    "bad_padding": st("{}\n\t"),
    "bad_metadata": st(js({"__metadata__": {"k": 1}})),
    "bad_duplicate": st('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                        '"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', bytes(2)),
}



def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


def tiny_tokenizer(**over):
    """A byte-level BPE tokenizer.json with a handful of tokens (fast to fuzz), fields overridable."""
    vocab = {c: i for i, c in enumerate(["a", "b", "c", "ab", "abc", "Ġ", "Ġa"])}
    t = {"version": "1.0", "added_tokens": [{"id": 7, "content": "<|endoftext|>", "special": True}],
         "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                               "use_regex": True},
         "decoder": {"type": "ByteLevel"},
         "model": {"type": "BPE", "vocab": vocab, "merges": ["a b", "ab c", "Ġ a"]}}
    t.update(over)
    return js(t).encode()


def cost_table(layers):
    return js({"format": "wattmoe.cost_table.v1", "num_layers": len(layers), "num_experts": len(layers[0]),
               "layers": [{"layer": i, "experts": [{"a_j": a, "b_j": b, "a_s": 1e-4, "b_s": 1e-6, "spread": 0.01}
                                                   for a, b in l]} for i, l in enumerate(layers)]}).encode()


RUN = {"preset": "tiny", "seed": 1234, "train_sha256": "0123abcd", "tokenizer": "bytes", "seq": 128, "batch": 16,
       "accum": 1, "steps": 3000, "lr": 0.003, "lb_coef": 0.01, "z_coef": 0.0}

CORPORA = {
    "safetensors": SAFETENSORS,
    "config": {
        "mixtral": fixture("mixtral_gqa", "config.json"),
        "olmoe": fixture("olmoe_basic", "config.json"),
        "qwen2moe": fixture("qwen2moe_shared", "config.json"),
        "bad_bool_layers": js({"model_type": "mixtral", "num_hidden_layers": True}).encode(),
        "bad_float": js({"model_type": "olmoe", "hidden_size": 4.9}).encode(),
        "bad_deep": b"[" * 200 + b"]" * 200,
    },
    "shard_index": {
        "valid": js({"metadata": {"total_size": 24}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                                                    "c": "model-00002-of-00002.safetensors"}}).encode(),
        "bad_dotdot": js({"weight_map": {"a": "../x.safetensors"}}).encode(),
        "bad_absolute": js({"weight_map": {"a": "/etc/passwd"}}).encode(),
        "bad_type": js({"weight_map": {"a": 3}}).encode(),
        "bad_no_map": b"{}",
    },
    "tokenizer_json": {
        "tiny": tiny_tokenizer(),
        "tiny_metaspace": tiny_tokenizer(pre_tokenizer={"type": "Metaspace", "replacement": "▁",
                                                        "prepend_scheme": "first"}, decoder={"type": "Metaspace"}),
        "gpt2": fixture("tokenizers", "bytelevel_gpt2.json"),
        "bad_merge": tiny_tokenizer(model={"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]}),
        "bad_model": tiny_tokenizer(model={"type": "WordPiece", "vocab": {}}),
    },
    "tokenizer_text": {
        "ascii": b"Hello, world! 123",
        "utf8": "wörld 世界 😀".encode(),
        "invalid_utf8": b"\xff\xfe\xc3(\xa0\xa1 ok",
        "special": b"a <|endoftext|> b<|endoftext|>",
        "spaces": b"   \t\n\r\n  x",
    },
    "cost_table": {
        "valid": cost_table([[(1e-3, 1e-5), (2e-3, 1e-5)], [(1e-3, 2e-5), (1e-3, 1e-5)]]),
        "bad_negative": cost_table([[(-1.0, 1e-5)]]),
        "bad_float_overflow": cost_table([[(1e-3, 1e105)]]),  # finite as a double, infinite as routing's float
        "bad_ragged": js({"format": "wattmoe.cost_table.v1", "layers": [{"experts": []}]}).encode(),
        "bad_format": js({"format": "v0", "layers": []}).encode(),
    },
    "trace_jsonl": {
        "valid": b'{"time_s":0,"energy_j":1000,"power_w":300}\n{"time_s":0.1,"energy_j":1030,"gpu_temp_c":55}\n',
        "wrap": b'{"time_s":0,"energy_j":990}\n{"time_s":1,"energy_j":5}\n',
        "bad_backwards": b'{"time_s":1}\n{"time_s":0}\n',
        "bad_field": b'{"time_s":0,"watts":1}\n',
        "bad_nan": b'{"time_s":NaN}\n',
    },
    "trace_csv": {
        "valid": b"time_s,power_w,energy_j,gpu_temp_c\n0,300,1000,55\n0.1,310,1031,55.5\n",
        "empty_cells": b"time_s,power_w,energy_j\n0,,1000\n1,2,\n",
        "bad_column": b"time_s,watts\n0,1\n",
        "bad_cells": b"time_s,power_w\n0,1,2\n",
        "bad_number": b"time_s,power_w\n0,1e999\n",
    },
    "sim_params": {
        "defaults": b"{}",
        "h100ish": js({"idle_w": 75, "power_limit_w": 700, "peak_flops": 989e12, "thermal_tau_s": 20,
                       "counter_tick_s": 0.1}).encode(),
        "tiny_tick": js({"counter_tick_s": 1e-6, "thermal_step_s": 1e-6}).encode(),
        "hot": js({"ambient_c": 80, "thermal_resistance_c_per_w": 1, "slowdown_temp_c": 81}).encode(),
        "bad_type": js({"idle_w": "80"}).encode(),
        "bad_negative": js({"peak_flops": -1}).encode(),
    },
    "trainer_state": {
        "valid": js({"step": 40, "train_file": "t.txt", "run": RUN}).encode(),
        "old": js({"step": 10, "preset": "tiny", "seed": 1}).encode(),
        "bad_seed": js({"step": 40, "run": dict(RUN, seed=7)}).encode(),
        "bad_step": js({"step": -3, "run": RUN}).encode(),
        "bad_step_type": js({"step": "40"}).encode(),
        "bad_run_type": js({"step": 4, "run": [1]}).encode(),
    },
    "mix_text": {
        "troff": b'.TH LS 1\n.SH NAME\nls \\- list\n.B ls\n[\\fIFILE\\fR] \\(lqq\\(rq \\[u00E9] \\s-1x\\s0\n'
                 b'.TP\n.BR a (1)\n.nf\nkept\n.fi\n.de XX\njunk\n..\n.TS\nl l.\na\tb\n.TE\n',
        "rest": b"Title\n=====\n\n.. note::\n   :class: x\n\n   Body with :func:`f` and ``x`` and `t <u>`_::\n"
                b".. toctree::\n\n   a.rst\n",
        "wordnet": b"  1 header\n02084071 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis\n",
        "dictd": b"00-info\tA\tE\nword\tF\tF\n\0info\nword\n",
        "austen": b"\x01emma\nEMMA\nCHAPTER I\nText.\n",
        "crlf": b"\r\n a \r\n\r\nb\rc\n\n",
    },
    "flag_mask": {"one": b"3", "two": b"3,5", "bad_range": b"8", "bad_empty_item": b"1,,2", "bad_text": b"x"},
    "flag_budget_schedule": {"one": b"0:400", "two": b"0:400,200:300", "bad_order": b"5:1,2:1",
                             "bad_target": b"0:-1", "bad_nan": b"0:nan", "bad_format": b"0-400"},
    "flag_expert_shape": {"mixtral": b"4096x14336", "bad_sep": b"4096*14336", "bad_zero": b"0x5",
                          "bad_huge": b"99999999999x1", "bad_trailing": b"4x4x"},
    "flag_token_counts": {"three": b"1,8,64", "bad_dup": b"8,8", "bad_zero": b"0", "bad_text": b"1,a"},
    "flag_ttt_groups": {"default": b"router,norms", "lora": b"lora", "top": b"top=2", "all": b"all",
                        "bad_top": b"top=0", "bad_name": b"routers"},
    "flag_ttt_trigger": {"always": b"always", "any": b"drift,power,thermal", "adaptive": b"adaptive,every",
                         "bad": b"sometimes", "bad_empty": b"drift,"},
}

for target, seeds in CORPORA.items():
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {d}")
