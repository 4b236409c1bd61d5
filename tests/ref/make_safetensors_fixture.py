#!/usr/bin/env python3
"""safetensors interoperability with the reference Python library (pip: numpy, safetensors).

1. Writes tests/fixtures/safetensors/py_written.safetensors with safetensors.numpy.save_file; the C test
   safetensors_python_written_fixture checks the values below.
2. Loads tests/fixtures/safetensors/c_written.safetensors (written by the C stw_* writer; the C test
   safetensors_c_written_fixture keeps it byte-identical to what the writer produces now) with the
   Python library and checks every value, so the writer is proven readable by the reference implementation.

Run from the repository root: python3 tests/ref/make_safetensors_fixture.py   (exits non-zero on mismatch)

numpy has no bfloat16 (and ml_dtypes may be absent), so the BF16 tensor is saved as uint16 ("U16") and the
dtype string in the library's header is then changed to "BF16" (same element size, so the library's data
layout is untouched); the file is then re-opened with the library to prove it is still valid.
"""
import json
import os
import struct
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

HERE = os.path.join("tests", "fixtures", "safetensors")
PY_FILE = os.path.join(HERE, "py_written.safetensors")
C_FILE = os.path.join(HERE, "c_written.safetensors")


def py_tensors():
    # Keep in sync with safetensors_python_written_fixture in tests/test_safetensors.c.
    return {
        "f32": (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(2, 3),
        "f16": np.array([1.0, -2.5, 65504.0, 2.0**-24, np.inf], dtype=np.float16),
        "bf16": np.array([[0x3F80, 0xC020], [0x7F80, 0x0001]], dtype=np.uint16),  # 1, -2.5, inf, 2^-133
        "i64": np.array([[-1, 0], [2**40, 7]], dtype=np.int64),
        "scalar": np.array(3.25, dtype=np.float32),
        "f64": np.array([0.1, 1e-3], dtype=np.float64),
        "u8": np.array([0, 128, 255], dtype=np.uint8),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "model.layers.0.self_attn.q_proj.weight": np.arange(24, dtype=np.float32).reshape(3, 4, 2),
    }


def write_py_fixture():
    save_file(py_tensors(), PY_FILE, metadata={"format": "pt", "source": "make_safetensors_fixture.py"})
    raw = open(PY_FILE, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    assert header["bf16"]["dtype"] == "U16"
    text = raw[8 : 8 + n].decode().rstrip(" ")
    old = '"bf16":{"dtype":"U16"'
    assert text.count(old) == 1, "unexpected header layout from the safetensors library"
    text = text.replace(old, '"bf16":{"dtype":"BF16"')
    text += " " * (-len(text) % 8)
    with open(PY_FILE, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode() + raw[8 + n :])
    with safe_open(PY_FILE, framework="numpy") as f:  # the library must still accept it
        s = f.get_slice("bf16")
        assert s.get_dtype() == "BF16" and list(s.get_shape()) == [2, 2], (s.get_dtype(), s.get_shape())
        for k, v in py_tensors().items():
            if k != "bf16":
                got = f.get_tensor(k)
                assert got.dtype == v.dtype and got.shape == v.shape and np.array_equal(got, v), k
    print(f"wrote {PY_FILE} ({os.path.getsize(PY_FILE)} bytes)")


def f32_to_bf16_bits(x):
    # Round to nearest even, as util/common.c f32_to_bf16 (no NaNs in these values).
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def c_expected():
    # Keep in sync with c_written_build() in tests/test_safetensors.c.
    return {
        "w.f32": (np.arange(6, dtype=np.float32) * 0.25 - 0.5).reshape(2, 3),
        "w.f16": np.array([1.0, -2.0, 1.0 / 3.0, 65504.0], dtype=np.float32).astype(np.float16),
        "w.bf16": f32_to_bf16_bits(np.array([1.0, -2.5, 3.14159274], dtype=np.float32)),
        "i64": np.array([-5, 0, 2**40], dtype=np.int64),
        "i32": np.array([-7, 7], dtype=np.int32),
        "u8": np.array([0, 1, 128, 255], dtype=np.uint8),
        "bool": np.array([True, False]),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0,), dtype=np.float16),
        "cube": np.arange(8, dtype=np.float64).reshape(2, 2, 2),
    }


def check_c_fixture():
    if not os.path.exists(C_FILE):
        sys.exit(f"{C_FILE} is missing: run `VLM_UPDATE_FIXTURES=1 build/test_vlm safetensors_c_written` first")
    raw = open(C_FILE, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0, "header length must be a multiple of 8"
    header = json.loads(raw[8 : 8 + n])
    expected = c_expected()
    with safe_open(C_FILE, framework="numpy") as f:
        meta = f.metadata()
        want_meta = {"format": "pt", "step": "7", "note": 'quote " and backslash \\'}
        assert meta == want_meta, meta
        assert sorted(f.keys()) == sorted(expected), f.keys()
        for k, v in expected.items():
            if k == "w.bf16":  # numpy cannot hold bf16: check dtype/shape via the library, bits by hand
                s = f.get_slice(k)
                assert s.get_dtype() == "BF16" and list(s.get_shape()) == [3], (s.get_dtype(), s.get_shape())
                b, e = header[k]["data_offsets"]
                bits = np.frombuffer(raw[8 + n + b : 8 + n + e], dtype="<u2")
                assert np.array_equal(bits, v), (k, bits, v)
                continue
            got = f.get_tensor(k)
            assert got.dtype == v.dtype, (k, got.dtype, v.dtype)
            assert got.shape == v.shape, (k, got.shape, v.shape)
            assert np.array_equal(got, v), (k, got, v)
    print(f"checked {C_FILE}: {len(expected)} tensors match under the Python safetensors library")


if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    write_py_fixture()
    check_c_fixture()
