#!/root/.cache/hearth-refenv/bin/python
"""Golden data for Hearth's K-quant dequantizers (tests/kernels/k_quants_test.cpp).

For each of Q4_K, Q5_K, Q6_K: random bytes made into valid blocks (every f16 scale finite:
random bit patterns with exponent 31 rejected, so negatives and subnormals occur; half the
blocks instead get small positive scales as real models have), dequantized by the gguf
Python package (gguf.quants.dequantize, the reference). Writes tests/data/kquants/<type>.bin:

    magic  b"HKQG"
    u32    GGUF type id
    u32    n_blocks
    u8     blocks[n_blocks * type_size]
    f32    values[n_blocks * 256]        (little-endian)

Also quantize_ref.bin: llama.cpp's reference quantizers (quantize_row_q{4,5,6,8}_K_ref from
the libggml-base shipped with llama-cpp-python) applied to 8 blocks of f32 data (Gaussian,
shifted uniform, heavy-tailed, with a zero block and an outlier):

    magic  b"HKQQ"
    u32    n (floats)
    f32    x[n]
    then for Q4_K, Q5_K, Q6_K, Q8_K:  u32 GGUF type id, u8 row[row_bytes(type, n)]

and SOURCE.txt naming the package versions used. Deterministic (fixed seeds).
Run: /root/.cache/hearth-refenv/bin/python scripts/golden/make_kquant_golden.py
"""
import ctypes
import importlib.metadata
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "kquants"
N_BLOCKS = 16

# Byte offsets of the f16 fields in each block.
F16_FIELDS = {T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def finite_f16(rng: np.random.Generator, small: bool) -> np.ndarray:
    if small:
        return np.float16(rng.uniform(1e-4, 2e-2)).reshape(1).view(np.uint16)
    while True:
        bits = np.uint16(rng.integers(0, 1 << 16))
        if (bits >> 10) & 0x1F != 0x1F:
            return bits.reshape(1)


def make(qtype: T, rng: np.random.Generator) -> None:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
    for b in range(N_BLOCKS):
        for off in F16_FIELDS[qtype]:
            blocks[b, off:off + 2] = finite_f16(rng, small=b % 2 == 1).view(np.uint8)
    values = dequantize(blocks, qtype).astype(np.float32).reshape(-1)
    assert values.size == N_BLOCKS * block_size and np.all(np.isfinite(values))
    with open(OUT / f"{qtype.name.lower()}.bin", "wb") as f:
        f.write(b"HKQG" + struct.pack("<II", int(qtype), N_BLOCKS))
        f.write(blocks.tobytes())
        f.write(values.astype("<f4").tobytes())


def make_quantize_golden() -> None:
    import llama_cpp  # only for the path of its libggml-base

    lib = ctypes.CDLL(str(pathlib.Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    rng = np.random.default_rng(77)
    x = np.concatenate([
        rng.normal(0, 0.02, 3 * 256),
        rng.uniform(-1, 3, 2 * 256),
        rng.standard_t(2, 2 * 256) * 0.01,
        np.zeros(256),
    ]).astype(np.float32)
    x[300] = 0.9  # outlier
    n = x.size
    with open(OUT / "quantize_ref.bin", "wb") as f:
        f.write(b"HKQQ" + struct.pack("<I", n) + x.astype("<f4").tobytes())
        for qtype in (T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K):
            _, type_size = GGML_QUANT_SIZES[qtype]
            out = np.zeros(n // 256 * type_size, dtype=np.uint8)
            fn = getattr(lib, f"quantize_row_{qtype.name.lower()[:-1]}K_ref")
            fn(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n))
            f.write(struct.pack("<I", int(qtype)) + out.tobytes())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240607)
    for qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        make(qtype, rng)
    make_quantize_golden()
    (OUT / "SOURCE.txt").write_text(
        "Made by scripts/golden/make_kquant_golden.py with "
        f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}, "
        f"llama-cpp-python {importlib.metadata.version('llama-cpp-python')}.\n")


if __name__ == "__main__":
    main()
