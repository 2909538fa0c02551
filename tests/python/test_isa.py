"""One summation order per operation (shared/DESIGN.md), checked end to end: every ISA level
this CPU runs (HEARTH_ISA = scalar, avx2, avx512, avx512_vnni) gives the same logits, bit for
bit, for a prompt (the packed gemm over token tiles and a partial tile, attention over the
prompt), and the same greedy answer (one token at a time: decode's matmuls and attention
over the f16 KV cache). Run on each model the tests fetch.

Environment as in test_forward.py (HEARTH_BIN, HEARTH_MODELS).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("HEARTH_BIN", REPO / "build" / "hearth"))
MODEL_DIR = Path(os.environ.get("HEARTH_MODELS", Path.home() / ".local/share/hearth/models"))
MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")


def isa_levels() -> list[str]:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    levels = ["scalar"]
    if {"avx2", "fma", "f16c"} <= flags:
        levels.append("avx2")
        if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
            levels.append("avx512")
            if "avx512_vnni" in flags:
                levels.append("avx512_vnni")
    return levels


def model_path(name: str) -> Path:
    path = MODEL_DIR / name
    if not path.exists():
        pytest.skip(f"{path} missing (scripts/fetch_models.py)")
    return path


# 29 token ids valid in both vocabularies: three whole tiles of 8 tokens and a partial one.
IDS = " ".join(str(i) for i in [1, 504, 3458, 282, 4649, 314, 253, 1034, 30, 3202, 2730, 7, 28, 6,
                                 1, 0, 12, 15, 4000, 17, 9, 2031, 880, 41, 5, 3, 77, 1999, 600])


def assert_same_on_every_isa(name: str, args: list[str], result) -> None:
    """Runs `hearth ARGS` under each ISA level; result(stdout) must be the same for all."""
    levels = isa_levels()
    outputs = {}
    for isa in levels:
        r = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, HEARTH_ISA=isa))
        assert r.returncode == 0, r.stderr
        outputs[isa] = result(r.stdout)
    first = outputs["scalar"]
    assert (first.strip() if isinstance(first, str) else first), f"{name}: empty output"
    for isa in levels[1:]:
        assert outputs[isa] == outputs["scalar"], f"{name}: {isa} differs from scalar"


@pytest.mark.parametrize("name", MODELS)
def test_prompt_logits_identical_on_every_isa(name, tmp_path):
    model = model_path(name)
    out = tmp_path / "logits.f32"
    assert_same_on_every_isa(name, ["eval", str(model), "-c", "256", "--ids", IDS, "--logits-out", str(out)],
                             lambda _: out.read_bytes())


@pytest.mark.parametrize("name", MODELS)
def test_greedy_answer_identical_on_every_isa(name):
    model = model_path(name)
    assert_same_on_every_isa(name, ["run", str(model), "-p", "Name three colours of the sea.", "--temp", "0",
                                    "-n", "24", "--no-history"], lambda stdout: stdout)
