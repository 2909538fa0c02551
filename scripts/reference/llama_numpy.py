#!/usr/bin/env python3
"""Independent NumPy reference for the GGUF `llama` architecture forward pass.

Written from the architecture description (as llama.cpp computes it), sharing no
code with Hearth. Weights are read with the PyPI `gguf` package (GGUFReader,
gguf.quants.dequantize), dequantized once to float32 and cached per process.
All activations are computed in float64 to make the reference as exact as the
weights allow (no activation quantization, unlike llama.cpp / Hearth).

    logits_for(model_path, token_ids) -> np.ndarray [n_tokens, n_vocab] (float32)

Forward pass (pre-norm transformer):
    x = token_embd[ids]
    per layer:  h = rmsnorm(x) * attn_norm
                q, k, v = h @ Wq^T, h @ Wk^T, h @ Wv^T
                q, k = rope(q), rope(k)      # "normal" rope: adjacent pairs (2i, 2i+1)
                x += attn_output(causal_gqa_attention(q, k, v))
                h = rmsnorm(x) * ffn_norm
                x += ffn_down(silu(ffn_gate(h)) * ffn_up(h))
    logits = (rmsnorm(x) * output_norm) @ output^T   (output = token_embd when tied)

Note on RoPE: convert_hf_to_gguf.py permutes the HF Q/K weights so that the
rotated pairs are adjacent elements (2i, 2i+1) of each head, which is the layout
the GGUF `llama` arch (LLAMA_ROPE_TYPE_NORM) expects.

CLI: python llama_numpy.py MODEL.gguf ID ID ... prints the greedy continuation
(argmax of the last position, recomputing the full prefix each step; slow but
simple) as a sanity check.
"""
from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np
import gguf


def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


class LlamaWeights:
    """Hyper-parameters and float32 weights of one GGUF llama model."""

    def __init__(self, path: str):
        r = gguf.GGUFReader(path)
        arch = _field(r, "general.architecture")
        if arch != "llama":
            raise ValueError(f"{path}: architecture {arch!r}, expected 'llama'")
        p = "llama."
        self.n_embd = int(_field(r, p + "embedding_length"))
        self.n_layer = int(_field(r, p + "block_count"))
        self.n_head = int(_field(r, p + "attention.head_count"))
        self.n_head_kv = int(_field(r, p + "attention.head_count_kv", self.n_head))
        self.eps = float(_field(r, p + "attention.layer_norm_rms_epsilon"))
        self.rope_base = float(_field(r, p + "rope.freq_base", 10000.0))
        self.head_dim = self.n_embd // self.n_head
        self.rot_dim = int(_field(r, p + "rope.dimension_count", self.head_dim))
        scaling = _field(r, p + "rope.scaling.type", "none")
        if scaling not in ("none", None):
            raise NotImplementedError(f"rope scaling {scaling!r} not supported by the reference")

        self.tensors: dict[str, np.ndarray] = {}
        for t in r.tensors:
            # dequantize returns the array in GGUF row-major order: shape reversed from
            # ggml's ne, i.e. [rows (out features), cols (in features)] for matrices.
            w = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            self.tensors[t.name] = np.asarray(w, dtype=np.float32).reshape(shape)
        if "output.weight" not in self.tensors:
            self.tensors["output.weight"] = self.tensors["token_embd.weight"]  # tied
        self.n_vocab = self.tensors["token_embd.weight"].shape[0]

    def w(self, name: str) -> np.ndarray:
        return self.tensors[name]


@lru_cache(maxsize=4)
def load(path: str) -> LlamaWeights:
    return LlamaWeights(path)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope_normal(x: np.ndarray, positions: np.ndarray, rot_dim: int, base: float) -> np.ndarray:
    """x: [n_tokens, n_heads, head_dim]; rotates pairs (2i, 2i+1), i < rot_dim/2."""
    out = x.copy()
    i = np.arange(rot_dim // 2, dtype=np.float64)
    inv_freq = base ** (-2.0 * i / rot_dim)                       # [rot_dim/2]
    theta = positions[:, None].astype(np.float64) * inv_freq[None, :]  # [n, rot_dim/2]
    cos = np.cos(theta)[:, None, :]
    sin = np.sin(theta)[:, None, :]
    x0 = x[..., 0:rot_dim:2]
    x1 = x[..., 1:rot_dim:2]
    out[..., 0:rot_dim:2] = x0 * cos - x1 * sin
    out[..., 1:rot_dim:2] = x0 * sin + x1 * cos
    return out


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal grouped-query attention. q: [n, H, d]; k, v: [n, Hkv, d] -> [n, H*d]."""
    n, n_head, d = q.shape
    group = n_head // k.shape[1]
    k = np.repeat(k, group, axis=1)  # query head h uses kv head h // group
    v = np.repeat(v, group, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d)
    mask = np.triu(np.ones((n, n), dtype=bool), k=1)
    scores = np.where(mask[None], -np.inf, scores)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", p, v).reshape(n, n_head * d)


def forward(m: LlamaWeights, token_ids) -> np.ndarray:
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise ValueError("token_ids must be a non-empty 1-D sequence")
    if ids.min() < 0 or ids.max() >= m.n_vocab:
        raise ValueError("token id out of range")
    n = len(ids)
    pos = np.arange(n)
    f64 = np.float64
    x = m.w("token_embd.weight")[ids].astype(f64)
    for il in range(m.n_layer):
        b = f"blk.{il}."
        h = rms_norm(x, m.w(b + "attn_norm.weight"), m.eps)
        q = (h @ m.w(b + "attn_q.weight").T.astype(f64)).reshape(n, m.n_head, m.head_dim)
        k = (h @ m.w(b + "attn_k.weight").T.astype(f64)).reshape(n, m.n_head_kv, m.head_dim)
        v = (h @ m.w(b + "attn_v.weight").T.astype(f64)).reshape(n, m.n_head_kv, m.head_dim)
        q = rope_normal(q, pos, m.rot_dim, m.rope_base)
        k = rope_normal(k, pos, m.rot_dim, m.rope_base)
        x = x + attention(q, k, v) @ m.w(b + "attn_output.weight").T.astype(f64)
        h = rms_norm(x, m.w(b + "ffn_norm.weight"), m.eps)
        g = h @ m.w(b + "ffn_gate.weight").T.astype(f64)
        u = h @ m.w(b + "ffn_up.weight").T.astype(f64)
        x = x + (silu(g) * u) @ m.w(b + "ffn_down.weight").T.astype(f64)
    x = rms_norm(x, m.w("output_norm.weight"), m.eps)
    return (x @ m.w("output.weight").T.astype(f64)).astype(np.float32)


def logits_for(model_path: str, token_ids) -> np.ndarray:
    """Logits of every position, float32 [n_tokens, n_vocab]."""
    return forward(load(str(model_path)), token_ids)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        print("usage: llama_numpy.py MODEL.gguf ID [ID ...]", file=sys.stderr)
        return 2
    ids = [int(a) for a in argv[2:]]
    out = []
    for _ in range(16):
        nxt = int(np.argmax(logits_for(argv[1], ids + out)[-1]))
        out.append(nxt)
        if nxt in (0, 2):
            break
    print(" ".join(map(str, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
