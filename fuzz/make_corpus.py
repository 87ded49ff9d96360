"""Writes the seed corpus for safetensors_fuzz (fuzz/corpus/*): valid headers and one of each kind of bad one.

Run with any python3: python3 fuzz/make_corpus.py. The seeds are committed; rerun only to change them.
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def st(header, data=b"", length=None):
    h = header if isinstance(header, bytes) else header.encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


SEEDS = {
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

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(SEEDS)} seeds to {OUT}")
