#!/usr/bin/env python3
"""Rewrite a checkpoint directory's model.safetensors with BF16 weights (what ships models/mix-small under 15 MB).

    python3 scripts/models/to_bf16.py DIR

Every F32 tensor of DIR/model.safetensors becomes BF16 (round to nearest, ties to even; the engine's loader widens
BF16 back to fp32, so a model loads exactly as its rounded weights); other dtypes are copied as they are. The
header's "__metadata__" is kept, config.json's "torch_dtype" becomes "bfloat16". Both files are written atomically
(a temporary file renamed over the old one). Standard library only. Errors: `to_bf16.py: error: ...`, exit 2.
"""
import json, os, struct, sys
from array import array


def fail(msg):
    print(f"to_bf16.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def bf16_bytes(raw):
    a = array("I")
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    out = array("H", ((x + 0x7FFF + ((x >> 16) & 1)) >> 16 if (x & 0x7F800000) != 0x7F800000 else x >> 16 for x in a))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 2:
        fail("usage: to_bf16.py DIR")
    d = sys.argv[1]
    st, cfg = os.path.join(d, "model.safetensors"), os.path.join(d, "config.json")
    try:
        blob = open(st, "rb").read()
        config = json.load(open(cfg))
    except (OSError, ValueError) as e:
        fail(f"{d}: {e}")
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out_header, chunks, off = {}, [], 0
    for name, t in header.items():
        if name == "__metadata__":
            out_header[name] = t
            continue
        b, e = t["data_offsets"]
        raw = data[b:e]
        dtype = t["dtype"]
        if dtype == "F32":
            raw, dtype = bf16_bytes(raw), "BF16"
        pad = (-off) % 8
        chunks.append(b"\0" * pad)
        off += pad
        out_header[name] = {"dtype": dtype, "shape": t["shape"], "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(out_header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    write_atomic(st, struct.pack("<Q", len(h)) + h + b"".join(chunks))
    config["torch_dtype"] = "bfloat16"
    write_atomic(cfg, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())


if __name__ == "__main__":
    main()
