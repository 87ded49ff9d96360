"""Writes py_written.safetensors with Python's `safetensors` (the HF reference writer) for safetensors_test.cpp.

Run: /work/venv-ref/bin/python tests/io/data/make_py_written.py  (the values are listed in the test; keep in sync)
"""
import os

import torch
from safetensors.torch import save_file

tensors = {
    "f32": torch.tensor([[1.0, -2.5, 3.25], [0.0, 1e-3, -1e6]], dtype=torch.float32),
    "bf16": torch.tensor([1.0, -0.5, 3.0, 256.0], dtype=torch.bfloat16),
    "f16": torch.tensor([[0.5], [-2.0], [65504.0]], dtype=torch.float16),
    "i64": torch.tensor([-1, 0, 2**40, 7], dtype=torch.int64),
    # odd byte count first in name order: exercises the writer's layout (it sorts by dtype size, then name)
    "a_u8": torch.tensor([1, 2, 3], dtype=torch.uint8),
    "scalar": torch.tensor(4.5, dtype=torch.float32),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py_written.safetensors")
save_file(tensors, out, metadata={"format": "pt", "source": "make_py_written.py"})
print(out, os.path.getsize(out))
