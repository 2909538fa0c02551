"""Continuous batching in `hearth serve`: simultaneous streams decoded in one batch.

Eight streaming chats at temperature 0 sent at the same moment all complete, and each
answer equals what the same request gives alone. The engine computes every row of a
batch independently (activations are quantized per row, attention reads only that
sequence's cache), so a sequence's logits do not depend on which others share its steps;
tests/engine/model_test.cpp (BatchedStepMatchesEachSequenceAlone) measures how close the
batched and the single-sequence logits are. Should a near-tie ever flip an argmax, this
test would report which stream and where its text diverged, not retry.

Also: a client that disconnects while others stream frees its slot at once and does not
disturb them, and with every slot busy and the queue full the server answers 503.
"""
from __future__ import annotations

import json
import threading
import time

import pytest

from test_server import MODEL_ID, Server, error_of, raw_stream_and_drop, wait_idle

openai = pytest.importorskip("openai")

PROMPTS = [
    "Name three fruits.",
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Count from one to five.",
    "Say something kind.",
    "What colour is grass?",
    "Give me a word that rhymes with cat.",
    "Describe the moon briefly.",
]
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def server8(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hearth_home"), "--ctx", "512", "--parallel", "8", "--queue", "4",
               "--timeout", "120")
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.proc.stderr.read()


def stream_chat(server: Server, content: str) -> tuple[str, str]:
    stream = server.client().chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": content}], max_tokens=MAX_TOKENS, temperature=0,
        stream=True)
    text, finish = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def all_at_once(fn, n: int) -> list:
    """Runs fn(i) for i < n in n threads released together; returns the results in order."""
    results: list = [None] * n
    gate = threading.Barrier(n)

    def run(i):
        gate.wait()
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def test_eight_simultaneous_streams_each_match_the_answer_alone(server8):
    alone = [stream_chat(server8, p) for p in PROMPTS]
    together = all_at_once(lambda i: stream_chat(server8, PROMPTS[i]), len(PROMPTS))
    for i, (a, t) in enumerate(zip(alone, together)):
        assert not isinstance(t, Exception), f"stream {i}: {t!r}"
        assert t[1] in ("stop", "length"), f"stream {i} ended with {t[1]}"
        assert a[0], f"stream {i}: empty answer"
        assert t == a, f"stream {i} ({PROMPTS[i]!r}) differs when batched:\n alone:    {a!r}\n together: {t!r}"
    # All eight were in flight at once: the metrics saw the busy slots go back to zero.
    assert wait_idle(server8)["slots_busy"] == 0


def test_disconnect_frees_its_slot_while_others_stream(server8):
    expected = stream_chat(server8, PROMPTS[1])

    def job(i):
        if i == 0:
            return raw_stream_and_drop(server8.port, server8.key, after_bytes=600)
        return stream_chat(server8, PROMPTS[1])

    out = all_at_once(job, 4)
    assert not any(isinstance(o, Exception) for o in out), out
    assert all(o == expected for o in out[1:])
    h = wait_idle(server8)
    assert h["slots_busy"] == 0 and h["queued"] == 0, f"the dropped stream kept its slot: {h}"


def test_queue_full_gives_503_and_the_server_recovers(tmp_path):
    s = Server(tmp_path, "--ctx", "256", "--parallel", "2", "--queue", "1")
    try:
        long_body = {"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 200, "temperature": 0}
        workers = []
        for _ in range(3):  # two slots busy, one queued
            t = threading.Thread(target=s.request, args=("POST", "/v1/completions", json.dumps(long_body)))
            t.start()
            workers.append(t)
        deadline = time.time() + 30
        while True:
            h = json.loads(s.request("GET", "/health", auth=False)[2])
            if h["slots_busy"] == 2 and h["queued"] == 1:
                break
            assert time.time() < deadline, f"never saw 2 busy + 1 queued: {h}"
            time.sleep(0.05)
        status, body = error_of(s.request("POST", "/v1/completions",
                                          json.dumps({"model": MODEL_ID, "prompt": "Hi", "max_tokens": 2})))
        assert status == 503 and "busy" in body["error"]["message"]
        for t in workers:
            t.join(timeout=120)
        h = wait_idle(s)
        assert h["slots_busy"] == 0 and h["queued"] == 0, h
        ok = s.request("POST", "/v1/completions", json.dumps({"model": MODEL_ID, "prompt": "Hi", "max_tokens": 2}))
        assert ok[0] == 200, ok
    finally:
        s.stop()
