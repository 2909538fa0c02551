#!/usr/bin/env python3
"""Independent NumPy reference for the GGUF `gemma3` architecture (text decoder).

Written from the Gemma 3 technical report (arXiv 2503.19786) and the GGUF metadata,
sharing no code with Hearth. Weights are read with the PyPI `gguf` package
(GGUFReader, gguf.quants.dequantize), dequantized once to float64 and cached per
process (about 2.2 GB for the 270M model); activations are float64 (no activation quantization, unlike llama.cpp and
Hearth), so this is as exact as the weights allow.

    logits_for(model_path, token_ids, rows=None) -> np.ndarray [len(rows), n_vocab] (float32)

Forward pass:
    x = token_embd[ids] * sqrt(n_embd)
    per layer il (global if (il + 1) % period == 0, else local; period 6 = 5 local : 1
                  global unless gemma3.attention.sliding_window_pattern says):
        h = rmsnorm(x) * attn_norm
        q, k, v = h Wq, h Wk, h Wv                    # per head: [head_dim]
        q = rmsnorm(q) * attn_q_norm; k = rmsnorm(k) * attn_k_norm   (per head)
        q, k = rope_neox(q, k, base = freq_base if global else freq_base_swa or 10000)
        attn = softmax(q k^T / sqrt(query_pre_attn_scalar) + mask) v
               mask: causal; local layers also hide keys at pos <= p - sliding_window
        x += rmsnorm(attn Wo) * post_attention_norm
        h = rmsnorm(x) * ffn_norm
        x += rmsnorm((gelu_tanh(h Wgate) * (h Wup)) Wdown) * post_ffw_norm
    logits = (rmsnorm(x) * output_norm) token_embd^T        (tied head)
    logits = cap * tanh(logits / cap) if gemma3.final_logit_softcapping is set

Norm weights: Gemma computes x_normed * (1 + w); llama.cpp's converter stores (1 + w)
in the GGUF, so the file's weights are used as they are. Checked numerically: adding 1
again moves the reference 10x further from llama.cpp (see make_gemma3_golden.py).
query_pre_attn_scalar is not in the GGUF; Gemma 3 270M/1B/4B/12B use head_dim (256),
which is what we use (the 27B model differs; it has another head_dim too).

CLI: python gemma3_numpy.py MODEL.gguf ID ID ... prints a greedy continuation.
"""
from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np
import gguf

LOCAL_ROPE_BASE = 10000.0  # Gemma 3 report: local layers keep RoPE base 10k
GLOBAL_EVERY = 6           # 5 local layers, then 1 global


def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


class Gemma3Weights:
    def __init__(self, path: str):
        r = gguf.GGUFReader(path)
        arch = _field(r, "general.architecture")
        if arch != "gemma3":
            raise ValueError(f"{path}: architecture {arch!r}, expected 'gemma3'")
        p = "gemma3."
        self.n_embd = int(_field(r, p + "embedding_length"))
        self.n_layer = int(_field(r, p + "block_count"))
        self.n_head = int(_field(r, p + "attention.head_count"))
        self.n_head_kv = int(_field(r, p + "attention.head_count_kv", self.n_head))
        self.head_dim = int(_field(r, p + "attention.key_length", self.n_embd // self.n_head))
        self.eps = float(_field(r, p + "attention.layer_norm_rms_epsilon"))
        self.rope_base = float(_field(r, p + "rope.freq_base", 1e6))
        self.window = int(_field(r, p + "attention.sliding_window"))
        self.global_every = int(_field(r, p + "attention.sliding_window_pattern", GLOBAL_EVERY))
        self.local_rope_base = float(_field(r, p + "rope.freq_base_swa", LOCAL_ROPE_BASE))
        cap = _field(r, p + "final_logit_softcapping")
        self.final_cap = float(cap) if cap else None
        self.tensors: dict[str, np.ndarray] = {}
        for t in r.tensors:
            w = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            self.tensors[t.name] = np.asarray(w, dtype=np.float64).reshape(shape)
        self.n_vocab = self.tensors["token_embd.weight"].shape[0]

    def w(self, name: str) -> np.ndarray:
        return self.tensors[name]


@lru_cache(maxsize=2)
def load(path: str) -> Gemma3Weights:
    return Gemma3Weights(path)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope_neox(x: np.ndarray, positions: np.ndarray, base: float) -> np.ndarray:
    """x: [n, heads, d]; rotates pairs (i, i + d/2)."""
    d = x.shape[-1]
    half = d // 2
    inv_freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / d)
    theta = positions[:, None].astype(np.float64) * inv_freq[None, :]
    cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x0, x1 = x[..., :half], x[..., half:]
    return np.concatenate([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def attention(q, k, v, scale: float, window: int | None) -> np.ndarray:
    """q: [n, H, d]; k, v: [n, Hkv, d] -> [n, H*d]; causal, optionally sliding."""
    n, n_head, d = q.shape
    group = n_head // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    s = np.einsum("qhd,khd->hqk", q, k) * scale
    qi, ki = np.arange(n)[:, None], np.arange(n)[None, :]
    hide = ki > qi
    if window is not None:
        hide |= ki <= qi - window
    s = np.where(hide[None], -np.inf, s)
    s -= s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", p, v).reshape(n, n_head * d)


def forward(m: Gemma3Weights, token_ids, rows=None, sliding: bool = True,
            kv_f16: bool = False) -> np.ndarray:
    """Logits of the positions `rows` (default: all). sliding=False lets local layers see
    every earlier key: only to show that the window matters (make_gemma3_golden.py).
    kv_f16=True rounds K (after RoPE) and V to float16 before attention, as the KV caches of
    Hearth and llama.cpp hold them: for comparisons at f32 precision (the tiny F32 files);
    the committed goldens were made without it."""
    ids = np.asarray(token_ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0 or ids.min() < 0 or ids.max() >= m.n_vocab:
        raise ValueError("token_ids must be a non-empty 1-D sequence of vocabulary ids")
    n, pos, eps = len(ids), np.arange(len(ids)), m.eps
    x = m.w("token_embd.weight")[ids] * np.sqrt(m.n_embd)
    for il in range(m.n_layer):
        b = f"blk.{il}."
        is_global = (il + 1) % m.global_every == 0
        h = rms_norm(x, m.w(b + "attn_norm.weight"), eps)
        q = (h @ m.w(b + "attn_q.weight").T).reshape(n, m.n_head, m.head_dim)
        k = (h @ m.w(b + "attn_k.weight").T).reshape(n, m.n_head_kv, m.head_dim)
        v = (h @ m.w(b + "attn_v.weight").T).reshape(n, m.n_head_kv, m.head_dim)
        q = rms_norm(q, m.w(b + "attn_q_norm.weight"), eps)
        k = rms_norm(k, m.w(b + "attn_k_norm.weight"), eps)
        base = m.rope_base if is_global else m.local_rope_base
        q, k = rope_neox(q, pos, base), rope_neox(k, pos, base)
        if kv_f16:
            k, v = k.astype(np.float16).astype(np.float64), v.astype(np.float16).astype(np.float64)
        window = None if is_global or not sliding else m.window
        a = attention(q, k, v, 1.0 / np.sqrt(m.head_dim), window)
        o = a @ m.w(b + "attn_output.weight").T
        x = x + rms_norm(o, m.w(b + "post_attention_norm.weight"), eps)
        h = rms_norm(x, m.w(b + "ffn_norm.weight"), eps)
        g = h @ m.w(b + "ffn_gate.weight").T
        u = h @ m.w(b + "ffn_up.weight").T
        f = (gelu_tanh(g) * u) @ m.w(b + "ffn_down.weight").T
        x = x + rms_norm(f, m.w(b + "post_ffw_norm.weight"), eps)
    if rows is not None:
        x = x[np.asarray(rows, dtype=np.int64)]
    x = rms_norm(x, m.w("output_norm.weight"), eps)
    logits = x @ m.w("token_embd.weight").T
    if m.final_cap:
        logits = m.final_cap * np.tanh(logits / m.final_cap)
    return logits.astype(np.float32)


def logits_for(model_path: str, token_ids, rows=None) -> np.ndarray:
    """Logits of the positions `rows` (default: every position), float32 [rows, n_vocab]."""
    return forward(load(str(model_path)), token_ids, rows)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        print("usage: gemma3_numpy.py MODEL.gguf ID [ID ...]", file=sys.stderr)
        return 2
    ids = [int(a) for a in argv[2:]]
    out: list[int] = []
    for _ in range(16):
        nxt = int(np.argmax(logits_for(argv[1], ids + out)[-1]))
        out.append(nxt)
        if nxt in (1, 106):  # <eos>, <end_of_turn>
            break
    print(" ".join(map(str, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
