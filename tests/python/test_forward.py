"""End-to-end checks of Hearth's llama forward pass against independent references.

  (i)   `hearth eval` logits vs the NumPy reference (scripts/reference/llama_numpy.py)
  (ii)  `hearth generate --temp 0` greedy ids vs llama.cpp's (tests/data/forward/greedy_smollm2.json)
  (iii) `hearth run -s SYSTEM -p "What is the capital of France?" --temp 0` mentions Paris

Environment: HEARTH_BIN (default <repo>/build/hearth), HEARTH_MODELS (default
~/.local/share/hearth/models). Skips when the binary or the model is missing, or
when the model file is not the one the goldens were made from (sha256 differs).

    pip install -r tests/python/requirements.txt
    HEARTH_BIN=build/hearth python -m pytest -s tests/python/test_forward.py

Regenerate the golden with scripts/golden/make_forward_golden.py (needs llama-cpp-python).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "reference"))
import llama_numpy  # noqa: E402

GOLDEN = REPO / "tests" / "data" / "forward" / "greedy_smollm2.json"
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TIMEOUT_S = 300
COMMON_FLAGS = ["-c", "512"]

with open(GOLDEN) as f:
    G = json.load(f)

# Tolerances, derived in make_forward_golden.py from llama.cpp's own deviation from
# the float64 NumPy reference on the same four cases (llama.cpp: max abs diff
# 0.66-1.42, mean 0.18-0.21 on a logit range of ~70). Hearth rounds activations to
# 8 bits per 32-value block before every quantized matmul, exactly as llama.cpp
# does, so its error budget is of the same size; we allow 2x llama.cpp's worst:
#   max abs diff  <= 2.83   (about 4% of the logit range; a wrong rope base or pair
#                            layout gives >10, a missing norm or wrong weight far more)
#   mean abs diff <= 0.42   (the tighter check: it averages ~2M logits per case)
# Top-1 agreement: llama.cpp itself disagrees with the reference at 4 of 122
# positions, each a near-tie (reference top-2 gap 0.04-0.13). So we require top-1
# agreement >= 98% at positions whose reference top-2 gap is >= 0.5 (llama.cpp:
# 100%), and at every position that Hearth's pick is within 0.5 of the reference's
# best logit (llama.cpp's worst: 0.13).
TOL = G["logits_tolerances"]
MAX_ABS_TOL = TOL["max_abs_diff"]
MEAN_ABS_TOL = TOL["mean_abs_diff"]
TIE_MARGIN = TOL["tie_margin"]
TOP1_CLEAR_MIN = TOL["top1_agreement_clear_positions"]


def _hearth_bin() -> Path:
    p = Path(os.environ.get("HEARTH_BIN", REPO / "build" / "hearth"))
    return p if p.is_absolute() else REPO / p


def _model_path() -> Path:
    d = os.environ.get("HEARTH_MODELS") or str(Path.home() / ".local" / "share" / "hearth" / "models")
    return Path(d) / MODEL_NAME


@pytest.fixture(scope="module")
def hearth() -> Path:
    b = _hearth_bin()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.skip(f"Hearth binary not found at {b} (set HEARTH_BIN)")
    return b


@pytest.fixture(scope="module")
def model() -> Path:
    m = _model_path()
    if not m.is_file():
        pytest.skip(f"model {m} not found (set HEARTH_MODELS; scripts/fetch_models.py fetches it)")
    h = hashlib.sha256()
    with open(m, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != G["model_sha256"]:
        pytest.skip(f"{m} has sha256 {h.hexdigest()}, the goldens were made from {G['model_sha256']}")
    return m


def _run(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {TIMEOUT_S}s: {' '.join(map(str, args))}")


def _check_rc(r: subprocess.CompletedProcess, what: str) -> None:
    assert r.returncode == 0, (f"{what} exited with {r.returncode}\n"
                               f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}")


# ---------------------------------------------------------------- (i) logits


def logit_stats(got: np.ndarray, ref: np.ndarray) -> dict:
    """Same statistics as make_forward_golden.compare (which measured llama.cpp)."""
    got = got.astype(np.float64)
    ref = ref.astype(np.float64)
    d = np.abs(got - ref)
    pick = np.argmax(got, -1)
    agree = pick == np.argmax(ref, -1)
    top2 = np.sort(ref, -1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) >= TIE_MARGIN
    pick_gap = ref.max(-1) - ref[np.arange(len(ref)), pick]
    return {
        "max_abs_diff": float(d.max()),
        "mean_abs_diff": float(d.mean()),
        "top1_agreement": float(agree.mean()),
        "top1_agreement_clear_positions": float(agree[clear].mean()) if clear.any() else 1.0,
        "n_clear_positions": int(clear.sum()),
        "max_pick_gap": float(pick_gap.max()),
        "disagreeing_positions": np.nonzero(~agree)[0].tolist(),
    }


@pytest.mark.parametrize("case", G["logits_cases"], ids=[c["name"] for c in G["logits_cases"]])
def test_logits_match_numpy_reference(hearth, model, case, tmp_path):
    ids = case["ids"]
    out = tmp_path / "logits.f32"
    r = _run([hearth, "eval", model, *COMMON_FLAGS, "--ids", " ".join(map(str, ids)),
              "--logits-out", out])
    _check_rc(r, "hearth eval")
    assert out.is_file(), f"hearth eval wrote no {out}\nstderr: {r.stderr[-2000:]}"
    raw = np.fromfile(out, dtype="<f4")
    ref = llama_numpy.logits_for(str(model), ids)  # weights cached per process
    assert raw.size == ref.size, (f"logits file has {raw.size} floats, expected "
                                  f"{len(ids)} x {ref.shape[1]} = {ref.size}")
    got = raw.reshape(ref.shape)
    assert np.all(np.isfinite(got)), "non-finite logits"
    s = logit_stats(got, ref)
    lc = case["llama_cpp_vs_numpy_reference"]
    print(f"\n[{case['name']}: {len(ids)} tokens] hearth vs numpy reference: "
          f"max abs {s['max_abs_diff']:.4f} (tol {MAX_ABS_TOL}), mean abs {s['mean_abs_diff']:.4f} "
          f"(tol {MEAN_ABS_TOL}), top-1 {s['top1_agreement']:.3f} "
          f"(clear positions {s['top1_agreement_clear_positions']:.3f} of {s['n_clear_positions']}), "
          f"max pick gap {s['max_pick_gap']:.3f}; disagree at {s['disagreeing_positions']}")
    print(f"    llama.cpp vs numpy reference: max abs {lc['max_abs_diff']:.4f}, mean abs "
          f"{lc['mean_abs_diff']:.4f}, top-1 {lc['top1_agreement']:.3f}")
    assert s["max_abs_diff"] <= MAX_ABS_TOL, s
    assert s["mean_abs_diff"] <= MEAN_ABS_TOL, s
    assert s["top1_agreement_clear_positions"] >= TOP1_CLEAR_MIN, s
    assert s["max_pick_gap"] <= TIE_MARGIN, s


# ---------------------------------------------------------------- (ii) greedy
#
# Exact 64-token equality with llama.cpp holds only until the first step where the top
# two logits are closer than the ~0.2 noise that 8-bit activation rounding puts on
# every logit: there, two correct runtimes with different summation orders may pick
# different tokens, and the texts part ways. The NumPy reference itself, fed
# llama.cpp's tokens, picks another token than llama.cpp at 10 of 320 steps, all
# near-ties. So by default the test asserts:
#   * Hearth's ids equal llama.cpp's up to the first step where they differ, and
#     llama.cpp's top-2 gap at that step is < tie_margin (0.5), i.e. a near-tie;
#   * every token Hearth generated is, given Hearth's own prefix, the NumPy
#     reference's argmax or within tie_margin of it (teacher-forced check), and if
#     Hearth stopped early, an end-of-generation token is (near-)top at that point.
# HEARTH_STRICT_GREEDY=1 asks for exact equality with llama.cpp instead.
STRICT_GREEDY = os.environ.get("HEARTH_STRICT_GREEDY") == "1"


@pytest.mark.parametrize("prompt", G["prompts"], ids=[p["name"] for p in G["prompts"]])
def test_greedy_matches_llama_cpp(hearth, model, prompt):
    n = len(prompt["generated_ids"])
    r = _run([hearth, "generate", model, *COMMON_FLAGS,
              "--prompt-ids", " ".join(map(str, prompt["prompt_ids"])),
              "--temp", "0", "--repeat-penalty", "1", "--max-tokens", str(n), "--output-ids"])
    _check_rc(r, "hearth generate")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines, f"hearth generate printed no ids\nstderr: {r.stderr[-2000:]}"
    got = [int(t) for t in lines[-1].split()]
    assert got, "hearth generate printed an empty id line"
    gold = prompt["generated_ids"]
    eog = set(G["eog_ids"])
    # The golden runs on through end-of-generation tokens; Hearth stops there (and may
    # or may not print the EOG token itself), so compare with the prefix up to it.
    k = prompt["first_eog_index"]
    accepted = [gold] if k is None else [gold[:k], gold[:k + 1]]
    name = prompt["name"]
    if got in accepted:
        print(f"\n[{name}] greedy: {len(got)} ids equal llama.cpp's")
        return
    exp = accepted[-1]
    i = next((j for j in range(min(len(got), len(exp))) if got[j] != exp[j]), min(len(got), len(exp)))
    margins = prompt["step_top2_margins"]
    m = margins[i] if i < len(margins) else None
    where = (f"[{name}] greedy ids differ from llama.cpp's at step {i} (got {len(got)} ids, "
             f"expected {len(exp)}); llama.cpp's top-2 logit gap there: "
             f"{'n/a' if m is None else f'{m:.3f}'}\n got: {got}\n exp: {exp}")
    print(f"\n{where}")
    if STRICT_GREEDY:
        pytest.fail(where)
    assert i < len(got) and i < len(exp), f"one sequence is a prefix of the other, not an EOG stop: {where}"
    assert m is not None and m < TIE_MARGIN, f"diverged at a step that is no near-tie: {where}"

    # Teacher-forced check of Hearth's own continuation against the NumPy reference.
    ids = prompt["prompt_ids"] + got
    ref = llama_numpy.logits_for(str(model), ids)[len(prompt["prompt_ids"]) - 1:].astype(np.float64)
    best = ref.max(-1)
    gaps = best[:-1] - ref[np.arange(len(got)), got]
    worst = int(np.argmax(gaps))
    print(f"    reference check of Hearth's {len(got)} tokens: {int(np.sum(gaps == 0))} are the "
          f"reference argmax, largest gap {gaps[worst]:.3f} at step {worst}")
    assert gaps[worst] <= TIE_MARGIN, (f"[{name}] Hearth's token {got[worst]} at step {worst} is "
                                       f"{gaps[worst]:.3f} below the reference's best logit")
    if len(got) < n and got[-1] not in eog:
        eog_gap = best[-1] - max(ref[-1, e] for e in eog)
        assert eog_gap <= TIE_MARGIN, (f"[{name}] Hearth stopped after {len(got)} tokens, but no "
                                       f"end-of-generation token is near the top (gap {eog_gap:.3f})")


# ---------------------------------------------------------------- (iii) chat
#
# With the template's default system prompt the Q4_1 SmolLM2 is at a near-tie on the
# first answer token (gap 0.09) and llama.cpp itself answers "L'Étoile, la Cité, ...";
# with this system prompt every greedy step up to "Paris" has a top-2 gap >= 1.38
# (recorded in the golden's run_paris), so a correct runtime answers Paris.
RUN_PARIS_SYSTEM = "You are a helpful assistant. Answer in one sentence."


def test_run_answers_paris(hearth, model):
    r = _run([hearth, "run", model, *COMMON_FLAGS, "-s", RUN_PARIS_SYSTEM,
              "-p", "What is the capital of France?", "--temp", "0", "-n", "64"])
    _check_rc(r, "hearth run")
    print(f"\n[run] {r.stdout.strip()!r}")
    assert "Paris" in r.stdout, f"answer does not mention Paris: {r.stdout!r}"
