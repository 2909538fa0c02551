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

and SOURCE.txt naming the gguf and numpy versions used. Deterministic (fixed seed).
Run: /root/.cache/hearth-refenv/bin/python scripts/golden/make_kquant_golden.py
"""
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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240607)
    for qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        make(qtype, rng)
    (OUT / "SOURCE.txt").write_text(
        "Made by scripts/golden/make_kquant_golden.py with "
        f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}.\n")


if __name__ == "__main__":
    main()
