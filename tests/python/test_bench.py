"""`hearth bench`: the JSON report's shape, the --parallel and --depth tests, and bad arguments.

Speeds are not asserted (they live in BENCHMARKS.md); only that each test ran and reported
positive rates. Environment as in test_forward.py (HEARTH_BIN, HEARTH_MODELS).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("HEARTH_BIN", REPO / "build" / "hearth"))
MODEL_DIR = Path(os.environ.get("HEARTH_MODELS", Path.home() / ".local/share/hearth/models"))
MODEL = MODEL_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "bench", *args], capture_output=True, text=True, timeout=300)


def test_json_report_has_each_test_and_repetition():
    r = bench(str(MODEL), "-p", "16", "-n", "4", "-r", "2", "-t", "2", "--json", "-q")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["threads"] == 2 and j["isa"]
    tests = {t["test"]: t for t in j["tests"]}
    assert set(tests) == {"pp16", "tg4"}
    for t in tests.values():
        assert len(t["tokens_per_s"]) == 2 and all(v > 0 for v in t["tokens_per_s"])
        assert t["mean"] > 0


def test_parallel_decode_counts_every_sequence():
    r = bench(str(MODEL), "-p", "0", "-n", "4", "--parallel", "3", "-r", "1", "--json", "-q")
    assert r.returncode == 0, r.stderr
    (t,) = json.loads(r.stdout)["tests"]
    assert t["test"] == "tg4x3" and t["n_tokens"] == 12 and t["tokens_per_s"][0] > 0


def test_depth_starts_each_test_after_cached_tokens():
    # llama-bench's -d: the cache holds 40 tokens (evaluated untimed) when each test starts.
    r = bench(str(MODEL), "-p", "8", "-n", "4", "-d", "40", "-r", "1", "--json", "-q")
    assert r.returncode == 0, r.stderr
    tests = {t["test"]: t for t in json.loads(r.stdout)["tests"]}
    assert set(tests) == {"pp8@d40", "tg4@d40"}
    assert all(t["mean"] > 0 for t in tests.values())


def test_progress_goes_to_stderr_and_table_to_stdout():
    r = bench(str(MODEL), "-p", "8", "-n", "0", "-r", "1")
    assert r.returncode == 0, r.stderr
    assert "pp8" in r.stdout and "rep 1/1" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["-p", "0", "-n", "0"], "nothing to measure"),
    (["--parallel", "0"], "--parallel 0 is out of range"),
    (["--parallel", "65"], "--parallel 65 is out of range"),
    (["-r", "0"], "--reps 0 is out of range"),
    (["-t", "-1"], "--threads -1 is out of range"),
    (["-p", "-5"], "must not be negative"),
    (["-d", "-1"], "--depth must not be negative"),
    (["-d", "8", "--parallel", "2"], "--depth works with --parallel 1 only"),
    (["-d", "9000", "-p", "0", "-n", "8"], "do not fit in this model's training context"),
    (["--roofline", "-n", "0"], "--roofline measures the decode test"),
    (["--roofline", "--parallel", "2"], "--roofline measures the decode test"),
])
def test_bad_arguments_are_one_line_errors(args, needle):
    r = bench(str(MODEL), *args)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_roofline_sets_each_token_against_the_bandwidth_around_it():
    r = bench(str(MODEL), "-p", "0", "-n", "3", "-r", "2", "-t", "2", "--roofline", "--json", "-q")
    assert r.returncode == 0, r.stderr
    rl = json.loads(r.stdout)["roofline"]
    # Every weight matrix once per token: the default model's tied head and 30 layers make
    # up most of the 94 MB file.
    size = MODEL.stat().st_size
    assert 0.5 * size < rl["weight_bytes_per_token"] <= size
    assert len(rl["shares"]) == len(rl["bandwidth_gb_per_s"]) == 6
    assert all(s > 0 for s in rl["shares"]) and all(b > 0 for b in rl["bandwidth_gb_per_s"])
    # The summary is of these very tokens.
    assert rl["min_share"] == min(rl["shares"]) and rl["max_share"] == max(rl["shares"])
    assert rl["median_share"] == pytest.approx(statistics.median(rl["shares"]), rel=1e-12)
    assert rl["median_bandwidth_gb_per_s"] == pytest.approx(statistics.median(rl["bandwidth_gb_per_s"]), rel=1e-12)
    table = bench(str(MODEL), "-p", "0", "-n", "2", "-r", "1", "-t", "2", "--roofline", "-q")
    assert table.returncode == 0 and "roofline:" in table.stdout and "% median" in table.stdout


def test_missing_model_is_a_clear_error(tmp_path):
    r = bench(str(tmp_path / "nope.gguf"))
    assert r.returncode != 0 and r.stderr.strip() and "Traceback" not in r.stderr


def test_memory_probe_reports_bandwidth():
    r = bench("--memory", "--memory-mib", "64", "-t", "1", "--json", "-q")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["test"] == "memory_read" and len(j["gb_per_s"]) == 5 and j["best_gb_per_s"] > 0
