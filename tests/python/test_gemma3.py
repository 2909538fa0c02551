"""End-to-end checks of Hearth's gemma3 forward pass (Gemma 3 270M, Q4_K_M) against
independent references, from goldens made by scripts/golden/make_gemma3_golden.py:

  (i)   `hearth eval` logits vs the float64 NumPy reference (scripts/reference/
        gemma3_numpy.py) on four token sequences, one 600 tokens long so its last
        positions are past the 512-token sliding window of the local layers;
  (ii)  `hearth generate --temp 0` greedy ids vs llama.cpp's (llama-cpp-python 0.3.36);
  (iii) `hearth run` on a model with no chat template in its file: the Gemma template
        fallback gives llama.cpp's greedy answer to the same rendered prompt;
  (iv)  `hearth generate` completes "... The capital of Germany is" with Berlin;
  (v)   tiny random-weight F32 gemma3 files (no download needed, so they run in CI):
        logits vs the NumPy reference to 1e-3 relative, with a 4-token window over 12
        tokens, global/local layers by the default period or the file's
        sliding_window_pattern and rope.freq_base_swa, and final logit softcapping;
        broken files give a one-line error.

The reference's logits are stored for a subset of columns per position (its top-20
and 236 fixed random ids; 262144 columns x 120 positions would be 120 MB), so this
test runs in seconds and needs neither llama.cpp nor the 2 GB float64 reference.

Environment: HEARTH_BIN (default <repo>/build/hearth), HEARTH_MODELS (default
~/.local/share/hearth/models). Skips when the binary or the model is missing or its
sha256 is not the one the goldens were made from.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "reference"))
import gemma3_numpy  # noqa: E402
from test_cli import expect_error, gguf_bytes_to_unicode, hearth as run_hearth  # noqa: E402

DATA = REPO / "tests" / "data" / "forward"
MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
TIMEOUT_S = 300
CTX = ["-c", "1024"]

G = json.loads((DATA / "gemma3_270m.json").read_text())
LOGITS = np.load(DATA / "gemma3_270m_logits.npz")

# Tolerances: Hearth, like llama.cpp, rounds activations to 8 bits per block before each
# quantized matmul, so it should be about as far from the float64 reference as llama.cpp
# is. Per case we allow 2x llama.cpp's max and mean abs diff over the stored columns
# (recorded in the golden; the cases differ: the repetitive chat continuation has a
# logit range of 123 and llama.cpp's max abs diff 3.4, the others 47-64 and 0.75-1.23).
# The golden's logits_tolerances (2x the worst case) bound every case as well. A wrong
# norm (+1 twice) moves logits by ~44 (measured while writing the reference); a missing
# sliding window moves the past-window positions by 15 (test_long_case_would_catch_...).
# Top-1 is judged with near-ties in mind, as in test_forward.py: agreement >= 98% where
# the reference's top-2 gap is >= tie_margin, and Hearth's pick never further below the
# reference's best than tie_margin, or llama.cpp's own worst on that case if larger
# (0.649 on chat_capital).
TOL = G["logits_tolerances"]
TIE_MARGIN = TOL["tie_margin"]


@pytest.fixture(scope="module")
def hearth() -> Path:
    p = Path(os.environ.get("HEARTH_BIN", REPO / "build" / "hearth"))
    p = p if p.is_absolute() else REPO / p
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.skip(f"Hearth binary not found at {p} (set HEARTH_BIN)")
    return p


@pytest.fixture(scope="module")
def model() -> Path:
    d = os.environ.get("HEARTH_MODELS") or str(Path.home() / ".local" / "share" / "hearth" / "models")
    m = Path(d) / MODEL_NAME
    if not m.is_file():
        pytest.skip(f"model {m} not found (scripts/fetch_models.py fetches it)")
    h = hashlib.sha256()
    with open(m, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != G["model_sha256"]:
        pytest.skip(f"{m} has sha256 {h.hexdigest()}, the goldens were made from {G['model_sha256']}")
    return m


def _run(args: list) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                           timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {TIMEOUT_S}s: {' '.join(map(str, args))}")
    assert r.returncode == 0, (f"{args[1]} exited with {r.returncode}\n"
                               f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}")
    return r


# ---------------------------------------------------------------- (i) logits


def column_stats(got_rows: np.ndarray, cols: np.ndarray, ref: np.ndarray) -> dict:
    """got_rows: [n, n_vocab]; cols: [n, w] ids (-1 = padding); ref: [n, w] reference
    logits there. The same statistics make_gemma3_golden.py computed for llama.cpp."""
    valid = cols >= 0
    got = np.take_along_axis(got_rows, np.where(valid, cols, 0), 1).astype(np.float64)
    ref = ref.astype(np.float64)
    d = np.abs(got - ref)[valid]
    got_m = np.where(valid, got, -1e30)
    ref_m = np.where(valid, ref, -1e30)
    pick = np.argmax(got_m, -1)
    agree = pick == np.argmax(ref_m, -1)
    top2 = np.sort(ref_m, -1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) >= TIE_MARGIN
    return {
        "max_abs_diff": float(d.max()),
        "mean_abs_diff": float(d.mean()),
        "top1_agreement_clear_positions": float(agree[clear].mean()) if clear.any() else 1.0,
        "n_clear_positions": int(clear.sum()),
        "max_pick_gap": float((ref_m.max(-1) - ref_m[np.arange(len(ref_m)), pick]).max()),
        "disagreeing_rows": np.nonzero(~agree)[0].tolist(),
        # Hearth's full-vocabulary argmax must be one of the stored columns (the
        # reference's top-20), else it picked a token the reference ranks low.
        "full_argmax_in_reference_top": bool(np.all(
            [np.argmax(got_rows[i]) in cols[i] for i in range(len(cols))])),
    }


@pytest.mark.parametrize("case", G["logits_cases"], ids=[c["name"] for c in G["logits_cases"]])
def test_logits_match_numpy_reference(hearth, model, case, tmp_path):
    ids, rows = case["ids"], case["rows"]
    out = tmp_path / "logits.f32"
    _run([hearth, "eval", model, *CTX, "--ids", " ".join(map(str, ids)), "--logits-out", out])
    raw = np.fromfile(out, dtype="<f4")
    assert raw.size % len(ids) == 0, f"{raw.size} floats is not a multiple of {len(ids)} tokens"
    got = raw.reshape(len(ids), -1)[rows]
    assert np.all(np.isfinite(got)), "non-finite logits"
    s = column_stats(got, LOGITS[case["name"] + ".cols"], LOGITS[case["name"] + ".ref"])
    lc = case["llama_cpp_vs_reference_stored_columns"]
    print(f"\n[{case['name']}: {len(ids)} tokens, {len(rows)} rows] hearth vs reference: max abs "
          f"{s['max_abs_diff']:.4f} (tol {2 * lc['max_abs_diff']:.4f}), mean abs "
          f"{s['mean_abs_diff']:.4f} (tol {2 * lc['mean_abs_diff']:.4f}), top-1 at clear positions "
          f"{s['top1_agreement_clear_positions']:.3f} of {s['n_clear_positions']}, max pick gap "
          f"{s['max_pick_gap']:.3f}; disagree at rows {s['disagreeing_rows']}\n"
          f"    llama.cpp vs reference: max abs {lc['max_abs_diff']:.4f}, mean abs "
          f"{lc['mean_abs_diff']:.4f}")
    assert s["max_abs_diff"] <= min(TOL["max_abs_diff"], 2 * lc["max_abs_diff"]), s
    assert s["mean_abs_diff"] <= min(TOL["mean_abs_diff"], 2 * lc["mean_abs_diff"]), s
    assert s["top1_agreement_clear_positions"] >= TOL["top1_agreement_clear_positions"], s
    # Like the diff bounds above: within twice llama.cpp's own worst pick on the same case
    # (Hearth's pick order depends on the gemm path: 0.98 with the default kernels, where
    # llama.cpp's worst is 0.65).
    assert s["max_pick_gap"] <= max(TIE_MARGIN, 2 * lc["max_pick_gap"]), s
    assert s["full_argmax_in_reference_top"], s


def test_long_case_would_catch_a_missing_window():
    """The 600-token case only tests the sliding window if removing the window moves the
    reference's logits past position 512 by much more than the tolerance (and before it,
    not at all)."""
    c = next(c for c in G["logits_cases"] if c["name"] == "long_window")
    assert max(c["rows"]) >= 512 + 64
    tol = 2 * c["llama_cpp_vs_reference_stored_columns"]["max_abs_diff"]  # this case's bound
    assert c["reference_without_window_max_abs_diff_past_window"] > 3 * tol, c
    assert c["reference_without_window_max_abs_diff_before_window"] < 1e-6, c


# ---------------------------------------------------------------- (ii) greedy
#
# As in test_forward.py: exact equality with llama.cpp holds up to the first step whose
# top-2 logits are closer than the noise of 8-bit activation rounding. Hearth's ids must
# equal llama.cpp's up to its first end-of-generation token, or differ first at a step
# where both llama.cpp's and the float64 reference's top-2 gap are below GREEDY_TIE_MARGIN.
# That is 1.0 here, not test_forward.py's 0.5: on this model llama.cpp itself picks a
# token 0.649 below the reference's best (chat_capital logits case), and Hearth parts
# from llama.cpp on the planets list at a step with gaps 0.72 (llama.cpp) / 0.51
# (reference), "10. Uranus" for "10. Earth": the 8-bit activation noise on a logit of
# this model is larger (max abs diff 1-3.4 vs the reference) than on SmolLM2.
GREEDY_TIE_MARGIN = 1.0


def _first_difference(a: list, b: list) -> int:
    return next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))


@pytest.mark.parametrize("prompt", G["prompts"], ids=[p["name"] for p in G["prompts"]])
def test_greedy_matches_llama_cpp(hearth, model, prompt):
    n = len(prompt["generated_ids"])
    r = _run([hearth, "generate", model, *CTX, "--prompt-ids", " ".join(map(str, prompt["prompt_ids"])),
              "--temp", "0", "--repeat-penalty", "1", "--max-tokens", str(n), "--output-ids"])
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    got = [int(t) for t in lines[-1].split()] if lines else []
    gold, k = prompt["generated_ids"], prompt["first_eog_index"]
    accepted = [gold] if k is None else [gold[:k], gold[:k + 1]]  # stops at EOG, printed or not
    if got in accepted:
        print(f"\n[{prompt['name']}] greedy: {len(got)} ids equal llama.cpp's")
        return
    exp = accepted[-1]
    i = _first_difference(got, exp)
    where = (f"[{prompt['name']}] differs from llama.cpp at step {i}\n got: {got}\n exp: {exp}")
    print(f"\n{where}")
    assert i < len(got) and i < len(exp), f"one is a prefix of the other: {where}"
    lm, rm = prompt["step_top2_margins"][i], prompt["reference_step_top2_margins"][i]
    assert lm < GREEDY_TIE_MARGIN and rm < GREEDY_TIE_MARGIN, (
        f"diverged where the top-2 gap is {lm:.3f} (llama.cpp) / {rm:.3f} (reference), "
        f"no near-tie: {where}")


# ---------------------------------------------------------------- (iii) chat fallback


def test_run_uses_the_gemma_template_fallback(hearth, model):
    """The file has no tokenizer.chat_template; `hearth run` must render Google's Gemma
    template (one <bos>, <start_of_turn>user ... <start_of_turn>model). Its answer must
    be the text `hearth generate` gives from the golden's chat_capital prompt ids (the
    template rendered by jinja2, tokenized by llama.cpp), whose ids (ii) compares with
    llama.cpp's. Both are Hearth on the same ids, so near-ties cannot part them."""
    p = next(p for p in G["prompts"] if p["name"] == "chat_capital")
    assert p["prompt_ids"][0] == 2 and p["prompt_ids"].count(2) == 1, "golden prompt: one <bos>"
    n = 16
    run = _run([hearth, "run", model, *CTX, "--no-history", "-p", "What is the capital of France?",
                "--temp", "0", "-n", str(n)])
    gen = _run([hearth, "generate", model, *CTX, "--prompt-ids", " ".join(map(str, p["prompt_ids"])),
                "--temp", "0", "-n", str(n)])
    print(f"\n[run] {run.stdout!r}\n[generate from the golden's prompt ids] {gen.stdout!r}\n"
          f"[llama.cpp, {len(p['generated_ids'])} tokens] {p['generated_text']!r}")
    assert run.stdout.strip() == gen.stdout.strip()
    assert run.stdout.strip(), "empty answer"


# ---------------------------------------------------------------- (iv) a fact


def test_generate_knows_a_capital(hearth, model):
    """The packaged 270M is the pretrained model (no chat tuning): a plain completion."""
    r = _run([hearth, "generate", model, *CTX, "-p", "The capital of France is Paris. The capital of "
              "Germany is", "--temp", "0", "-n", "4"])
    print(f"\n[generate] {r.stdout!r}")
    assert "Berlin" in r.stdout, r.stdout


# ---------------------------------------------------------------- (v) tiny files


def tiny_gemma3(path: Path, *, n_layer: int = 7, window: int = 4, pattern: int | None = None,
                base_swa: float | None = None, cap: float | None = None,
                skip_key: str | None = None, skip_tensor: str | None = None) -> Path:
    """A random-weight F32 gemma3 GGUF: d=32, 2 heads of 16, 1 KV head, byte vocabulary."""
    w = gguf.GGUFWriter(str(path), "gemma3")
    d, ff, hd, vocab = 32, 64, 16, 256 + 3
    keys = {
        "block_count": lambda: w.add_block_count(n_layer),
        "context_length": lambda: w.add_context_length(64),
        "embedding_length": lambda: w.add_embedding_length(d),
        "feed_forward_length": lambda: w.add_feed_forward_length(ff),
        "head_count": lambda: w.add_head_count(2),
        "head_count_kv": lambda: w.add_head_count_kv(1),
        "key_length": lambda: w.add_key_length(hd),
        "value_length": lambda: w.add_value_length(hd),
        "rms_eps": lambda: w.add_layer_norm_rms_eps(1e-6),
        "freq_base": lambda: w.add_rope_freq_base(1e6),
        "sliding_window": lambda: w.add_sliding_window(window),
    }
    for k, add in keys.items():
        if k != skip_key:
            add()
    if pattern is not None:
        w.add_sliding_window_pattern(pattern)
    if base_swa is not None:
        w.add_rope_freq_base_swa(base_swa)
    if cap is not None:
        w.add_float32("gemma3.final_logit_softcapping", cap)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(gguf_bytes_to_unicode() + ["<start_of_turn>", "<end_of_turn>", "ab"])
    w.add_token_types([1] * 256 + [3, 3, 1])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)
    rng = np.random.default_rng(3)
    mat = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    norm = lambda n: (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    tensors = {"token_embd.weight": mat(vocab, d) * 0.3, "output_norm.weight": norm(d)}
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors.update({
            p + "attn_norm.weight": norm(d), p + "attn_q.weight": mat(2 * hd, d),
            p + "attn_k.weight": mat(hd, d), p + "attn_v.weight": mat(hd, d),
            p + "attn_q_norm.weight": norm(hd), p + "attn_k_norm.weight": norm(hd),
            p + "attn_output.weight": mat(d, 2 * hd), p + "post_attention_norm.weight": norm(d),
            p + "ffn_norm.weight": norm(d), p + "ffn_gate.weight": mat(ff, d),
            p + "ffn_up.weight": mat(ff, d), p + "ffn_down.weight": mat(d, ff),
            p + "post_ffw_norm.weight": norm(d)})
    for name, t in tensors.items():
        if name != skip_tensor:
            w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


TINY_IDS = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33]  # 14 > window 4


@pytest.mark.parametrize("variant", [
    {},  # default period 6: layer 5 global, local base 10000
    {"pattern": 3, "base_swa": 500.0, "cap": 3.0},  # layers 2, 5 global; softcapped logits
], ids=["defaults", "pattern3_swa_base_softcap"])
def test_tiny_gemma3_matches_numpy_reference(hearth, tmp_path, variant):
    path = tiny_gemma3(tmp_path / "tiny.gguf", **variant)
    out = tmp_path / "logits.f32"
    _run([hearth, "eval", path, "-c", "64", "--ids", " ".join(map(str, TINY_IDS)), "--logits-out", out])
    got = np.fromfile(out, dtype="<f4").reshape(len(TINY_IDS), -1).astype(np.float64)
    m = gemma3_numpy.Gemma3Weights(str(path))
    # K and V rounded to f16 as Hearth's cache holds them (f32 everywhere else).
    ref = gemma3_numpy.forward(m, TINY_IDS, kv_f16=True).astype(np.float64)
    no_window = gemma3_numpy.forward(m, TINY_IDS, sliding=False, kv_f16=True).astype(np.float64)
    scale = np.abs(ref).max()
    err = np.abs(got - ref).max() / scale
    window_effect = np.abs(no_window - ref)[m.window:].max() / scale
    print(f"\n[tiny {variant}] max |hearth - reference| / max |reference| = {err:.2e}; "
          f"removing the window would move logits by {window_effect:.2e}")
    # F32 weights: Hearth's F32 path does not quantize activations, so only float32
    # rounding separates it from the float64 reference (measured ~1e-6).
    assert err < 1e-3
    assert window_effect > 100 * 1e-3, "the tiny case would not notice a missing window"
    if variant.get("cap"):
        assert np.abs(got).max() <= variant["cap"] + 1e-4


@pytest.mark.parametrize("broken,needle", [
    ({"skip_key": "sliding_window"}, "sliding_window"),
    ({"skip_tensor": "blk.3.post_ffw_norm.weight"}, "blk.3.post_ffw_norm.weight"),
    ({"skip_tensor": "blk.0.attn_q_norm.weight"}, "blk.0.attn_q_norm.weight"),
    ({"window": 0}, "sliding_window"),
    ({"pattern": 0}, "sliding_window_pattern"),
], ids=["no_window_key", "no_post_ffw_norm", "no_q_norm", "zero_window", "zero_pattern"])
def test_broken_gemma3_file_is_a_clean_error(hearth, tmp_path, broken, needle):
    path = tiny_gemma3(tmp_path / "broken.gguf", **broken)
    r = run_hearth("eval", path, "-c", "64", "--ids", "256 72", "--logits-out", tmp_path / "x.f32")
    expect_error(r, needle)
