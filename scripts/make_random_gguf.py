#!/usr/bin/env python3
"""Write random-weight GGUF files with the shapes of real models, for speed measurements.

Speed does not depend on the weights' values, so these stand in for models that cannot be
downloaded here. Weights are F16 (norms F32); turn them into other types with
`hearth quantize IN OUT Q4_0|Q8_0|Q4_K_M`. The files use the `llama` architecture and a
synthetic byte-level vocabulary of the real size, so Hearth and llama.cpp both load them.

  scripts/make_random_gguf.py llama-3.2-1b  OUT.gguf
  scripts/make_random_gguf.py qwen2.5-0.5b  OUT.gguf   (its shapes, as a llama-arch model)
  scripts/make_random_gguf.py smollm2-135m  OUT.gguf
"""
import argparse
import sys

import numpy as np
import gguf

SHAPES = {
    # name: (hidden, ffn, layers, heads, kv_heads, vocab, rope_base, ctx)
    "llama-3.2-1b": (2048, 8192, 16, 32, 8, 128256, 500000.0, 131072),
    "qwen2.5-0.5b": (896, 4864, 24, 14, 2, 151936, 1000000.0, 32768),
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152, 100000.0, 8192),
}


def byte_tokens() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d, ff, n_layer, n_head, n_kv, vocab, base, ctx = SHAPES[args.shape]
    head_dim = d // n_head
    rng = np.random.default_rng(args.seed)

    def weight(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name(f"random {args.shape}")
    w.add_block_count(n_layer)
    w.add_context_length(ctx)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(base)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    tokens = byte_tokens()
    merges = ["Ġ t", "Ġ a", "h e", "i n"]
    tokens += [m.replace(" ", "") for m in merges]
    tokens += [f"<|tok{i}|>" for i in range(vocab - len(tokens) - 2)] + ["<|bos|>", "<|eos|>"]
    w.add_token_list(tokens)
    w.add_token_types([1] * (vocab - 2) + [3, 3])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab - 2)
    w.add_eos_token_id(vocab - 1)
    w.add_tensor("token_embd.weight", weight(vocab, d))  # tied output head, as both real models
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "attn_q.weight", weight(n_head * head_dim, d))
        w.add_tensor(p + "attn_k.weight", weight(n_kv * head_dim, d))
        w.add_tensor(p + "attn_v.weight", weight(n_kv * head_dim, d))
        w.add_tensor(p + "attn_output.weight", weight(d, n_head * head_dim))
        w.add_tensor(p + "ffn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "ffn_gate.weight", weight(ff, d))
        w.add_tensor(p + "ffn_up.weight", weight(ff, d))
        w.add_tensor(p + "ffn_down.weight", weight(d, ff))
        print(f"\rlayer {i + 1}/{n_layer}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=True)
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
