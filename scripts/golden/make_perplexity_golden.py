#!/usr/bin/env python3
"""llama.cpp's perplexity of a model over a text in tests/data/text/.

Same method as llama-perplexity (and `hearth perplexity`): windows of 512 tokens, each
scoring its second half; where the model adds BOS, each window's first token is replaced
by BOS (Gemma depends on it); logits from llama-cpp-python (eval with logits_all). Writes
tests/data/text/perplexity_golden.json (public_domain.txt, the default model) or, with a
text name as the argument, perplexity_golden_<stem>.json; with --model NAME (a file in
$HEARTH_MODELS) and --tag TAG, perplexity_golden_<stem>_<TAG>.json. Needs
llama-cpp-python (see make_forward_golden.py for how to install it).

  python make_perplexity_golden.py                   # public_domain.txt
  python make_perplexity_golden.py kjv_genesis.txt   # 48k tokens: what test_quality compares
  python make_perplexity_golden.py kjv_genesis.txt --model gemma-3-270m-q4_k_m.gguf --tag gemma3
"""
import argparse
import hashlib
import json
import os
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", nargs="?", default=TEXT.name)
    ap.add_argument("--model", default=MODEL.name, help="a GGUF file in $HEARTH_MODELS")
    ap.add_argument("--tag", default="", help="suffix of the output name (for --model)")
    a = ap.parse_args()
    text_path = TEXT.parent / a.text
    model = MODEL_DIR / a.model
    text = text_path.read_text(encoding="utf-8")
    m = Llama(str(model), n_ctx=N_CTX, n_batch=N_CTX, logits_all=True, verbose=False, n_threads=2)
    add_bos = m.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    toks = m.tokenize(text.encode(), add_bos=add_bos, special=False)
    n_windows = (len(toks) - N_CTX) // N_CTX + 1
    nll = []
    for w in range(n_windows):
        win = list(toks[w * N_CTX:(w + 1) * N_CTX])
        if add_bos:  # as llama-perplexity: every window starts with BOS
            win[0] = m.token_bos()
        m.reset()
        m.eval(win)
        logits = np.array(m.scores[:N_CTX], dtype=np.float64)
        for i in range(N_CTX // 2, N_CTX):
            row = logits[i - 1]
            mx = row.max()
            nll.append(np.log(np.exp(row - mx).sum()) + mx - row[win[i]])
    out = {
        "llama_cpp_python": llama_cpp.__version__,
        "model": model.name,
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "text": text_path.name,
        "n_ctx": N_CTX,
        "n_text_tokens": len(toks),
        "n_windows": n_windows,
        "n_scored": len(nll),
        "perplexity": float(np.exp(np.mean(nll))),
    }
    name = "perplexity_golden.json" if text_path == TEXT else f"perplexity_golden_{text_path.stem}.json"
    if a.tag:
        name = name.replace(".json", f"_{a.tag}.json") if text_path != TEXT else f"perplexity_golden_{a.tag}.json"
    (TEXT.parent / name).write_text(json.dumps(out, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    raise SystemExit(main())
