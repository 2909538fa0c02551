#!/usr/bin/env python3
"""Writes seeds for the fuzz targets: small valid GGUF files for fuzz/fuzz_gguf.cpp (uses the PyPI
gguf writer) and, given a second directory, config files for fuzz/fuzz_config.cpp.

usage: make_fuzz_seeds.py GGUF_DIR [CONFIG_DIR]"""
import sys
from pathlib import Path

import numpy as np
import gguf


def write(path: Path, n_tokens: int, qtype) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(n_tokens)])
    w.add_token_scores([float(i) for i in range(n_tokens)])
    w.add_array("some.ints", [1, 2, 3])
    w.add_bool("some.flag", True)
    w.add_float64("some.f64", 1.5)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 32)).astype(np.float32)
    if qtype is None:
        w.add_tensor("a.weight", data)
    else:
        q = gguf.quants.quantize(data, qtype)
        w.add_tensor("a.weight", q, raw_shape=q.shape, raw_dtype=qtype)
    w.add_tensor("b.weight", np.ones(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CONFIG_SEEDS = {
    # Every key Hearth knows (README.md, "Configuration file").
    "full.toml": 'require_signed = true\nrequire_sandbox = false\ndefault_model = "tiny"\n'
    'threads = 4\nctx = 2048\n\n[serve]\nport = 11435\nlisten = "127.0.0.1"\nparallel = 2\n'
    'cors_origin = "http://localhost:3000"\n',
    "dotted.toml": 'serve.port = 8080\nserve = { parallel = 3 }\n',
    "inline.toml": '# comment\nserve = { listen = "::1", cors_origin = \'x\' }\nthreads = 0x10\n',
    "strings.toml": 'default_model = """multi\nline"""\n"quoted key" = 1e3\n[a.b]\nc = [1, [2], {d = 3}]\n',
    "dates.toml": 'ctx = 1_024\nwhen = 1979-05-27T07:32:00Z\n[[arr]]\nx = true\n',
}


def write_config_seeds(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in CONFIG_SEEDS.items():
        (out / name).write_text(text)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write(out / "f32.gguf", 8, None)
    write(out / "q8_0.gguf", 3, gguf.GGMLQuantizationType.Q8_0)
    write(out / "q4_0.gguf", 5, gguf.GGMLQuantizationType.Q4_0)
    if len(sys.argv) > 2:
        write_config_seeds(Path(sys.argv[2]))


if __name__ == "__main__":
    main()
