#!/usr/bin/env python3
"""llama.cpp's perplexity of the default model over tests/data/text/public_domain.txt.

Same method as llama-perplexity (and `hearth perplexity`): windows of 512 tokens, each
scoring its second half; logits from llama-cpp-python (eval with logits_all). Writes
tests/data/text/perplexity_golden.json. Needs llama-cpp-python (see
make_forward_golden.py for how to install it).
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import llama_cpp
from llama_cpp import Llama

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("HEARTH_MODELS", Path.home() / ".local/share/hearth/models"))
MODEL = MODEL_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = REPO / "tests/data/text/public_domain.txt"
N_CTX = 512


def main() -> None:
    text = TEXT.read_text(encoding="utf-8")
    m = Llama(str(MODEL), n_ctx=N_CTX, n_batch=N_CTX, logits_all=True, verbose=False, n_threads=2)
    add_bos = m.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    toks = m.tokenize(text.encode(), add_bos=add_bos, special=False)
    n_windows = (len(toks) - N_CTX) // N_CTX + 1
    nll = []
    for w in range(n_windows):
        win = toks[w * N_CTX:(w + 1) * N_CTX]
        m.reset()
        m.eval(win)
        logits = np.array(m.scores[:N_CTX], dtype=np.float64)
        for i in range(N_CTX // 2, N_CTX):
            row = logits[i - 1]
            mx = row.max()
            nll.append(np.log(np.exp(row - mx).sum()) + mx - row[win[i]])
    out = {
        "llama_cpp_python": llama_cpp.__version__,
        "model_sha256": hashlib.sha256(MODEL.read_bytes()).hexdigest(),
        "text": TEXT.name,
        "n_ctx": N_CTX,
        "n_text_tokens": len(toks),
        "n_windows": n_windows,
        "n_scored": len(nll),
        "perplexity": float(np.exp(np.mean(nll))),
    }
    (TEXT.parent / "perplexity_golden.json").write_text(json.dumps(out, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    sys.exit(main())
