"""Embeddings through hearth serve: POST /v1/embeddings with the official `openai` client,
Ollama's /api/embed and /api/embeddings over plain HTTP. Shape, unit norm, determinism, batch
order, base64, token input, usage counts; a sanity check of meaning (a sentence is closer to its
paraphrase than to an unrelated sentence); errors; that embedding leaves the chat slots' caches
alone; and that a client who disconnects stops its embeddings at once. The vectors are the mean-pooled, L2-normalised final hidden state of the chat
model (not a trained embedding model), so only coarse similarity is asserted.
"""
from __future__ import annotations

import base64
import json
import math
import re
import socket
import struct
import time

import pytest

from test_server import BIN, MODEL, MODEL_ID, Server, error_of

openai = pytest.importorskip("openai")

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]

CTX = 512


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hearth_home"), "--ctx", str(CTX), "--parallel", "2",
               "--no-history")
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.proc.stderr.read()


@pytest.fixture(scope="module")
def n_embd(server) -> int:
    status, _, data = server.request("POST", "/api/show", json.dumps({"model": MODEL_ID}))
    assert status == 200
    return json.loads(data)["model_info"]["embedding_length"]


def embed(server, inputs, **kw) -> list[list[float]]:
    r = server.client().embeddings.create(model=MODEL_ID, input=inputs, **kw)
    return [d.embedding for d in sorted(r.data, key=lambda d: d.index)]


def cos(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_shape_norm_and_usage(server, n_embd):
    r = server.client().embeddings.create(model=MODEL_ID, input=["The cat sat on the mat.", "Hello"])
    assert r.object == "list" and r.model == MODEL_ID and len(r.data) == 2
    assert [d.index for d in r.data] == [0, 1]
    for d in r.data:
        assert d.object == "embedding" and len(d.embedding) == n_embd
        assert abs(math.sqrt(sum(x * x for x in d.embedding)) - 1.0) < 1e-4
        assert all(math.isfinite(x) for x in d.embedding)
    assert r.usage.prompt_tokens == r.usage.total_tokens > 2


def test_deterministic_and_batch_equals_single(server):
    texts = ["A quiet morning by the lake.", "Stock prices fell sharply today.", "Bonjour !"]
    batch = embed(server, texts)
    again = embed(server, texts)
    single = [embed(server, t)[0] for t in texts]
    for a, b, c in zip(batch, again, single):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-6
        assert max(abs(x - y) for x, y in zip(a, c)) < 1e-6
    assert cos(batch[0], batch[1]) < 0.9999  # different texts, different vectors


def test_paraphrase_is_closer_than_unrelated(server):
    triples = [
        ("The cat is sleeping on the sofa.", "A cat naps on the couch.",
         "Interest rates were raised by the central bank."),
        ("How do I cook rice?", "What is the way to prepare rice?",
         "The train leaves from platform nine."),
        ("It is raining heavily today.", "There is a lot of rain today.",
         "She plays the violin in an orchestra."),
    ]
    for s, para, other in triples:
        v = embed(server, [s, para, other])
        assert cos(v[0], v[1]) > cos(v[0], v[2]), (s, cos(v[0], v[1]), cos(v[0], v[2]))


def test_base64_matches_float(server):
    """The client asks for base64 unless told otherwise (and decodes it); both encodings agree."""
    text = "Encode me as base64."
    floats = embed(server, text, encoding_format="float")[0]
    assert max(abs(x - y) for x, y in zip(embed(server, text)[0], floats)) < 1e-6
    r = server.client().embeddings.create(model=MODEL_ID, input=text, encoding_format="base64")
    raw = base64.b64decode(r.data[0].embedding)  # asked for explicitly, it stays a string
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(decoded) == len(floats)
    assert max(abs(x - y) for x, y in zip(decoded, floats)) < 1e-6
    status, _, data = server.request("POST", "/v1/embeddings", json.dumps({"model": MODEL_ID, "input": text}))
    assert status == 200 and isinstance(json.loads(data)["data"][0]["embedding"], list)  # float by default


def test_token_ids_as_input(server, n_embd):
    r = server.client().embeddings.create(model=MODEL_ID, input=[[504, 3437, 314], [1780]])
    assert len(r.data) == 2 and all(len(d.embedding) == n_embd for d in r.data)
    assert r.usage.prompt_tokens == 4


def test_ollama_embed_and_legacy(server, n_embd):
    status, _, data = server.request("POST", "/api/embed", json.dumps(
        {"model": MODEL_ID, "input": ["one", "two"]}))
    assert status == 200
    r = json.loads(data)
    assert r["model"] == MODEL_ID and len(r["embeddings"]) == 2
    assert all(len(e) == n_embd for e in r["embeddings"]) and r["prompt_eval_count"] > 0
    assert max(abs(x - y) for x, y in zip(r["embeddings"][0], embed(server, "one")[0])) < 1e-6
    status, _, data = server.request("POST", "/api/embeddings", json.dumps(
        {"model": MODEL_ID, "prompt": "one"}))
    assert status == 200
    assert max(abs(x - y) for x, y in zip(json.loads(data)["embedding"], r["embeddings"][0])) < 1e-6


def test_too_long_input(server):
    long_text = "word " * (CTX * 2)
    with pytest.raises(openai.BadRequestError) as e:
        server.client().embeddings.create(model=MODEL_ID, input=long_text)
    assert "context holds" in str(e.value)
    # Ollama truncates by default, and refuses with "truncate": false.
    status, _, data = server.request("POST", "/api/embed", json.dumps(
        {"model": MODEL_ID, "input": long_text}))
    assert status == 200 and json.loads(data)["prompt_eval_count"] == CTX
    status, body = error_of(server.request("POST", "/api/embed", json.dumps(
        {"model": MODEL_ID, "input": long_text, "truncate": False})))
    assert status == 400 and "context holds" in body["error"]


@pytest.mark.parametrize("body,status,needle", [
    ({"model": MODEL_ID, "input": ""}, 400, "must not be an empty string"),
    ({"model": MODEL_ID, "input": []}, 400, "must not be empty"),
    ({"model": MODEL_ID, "input": 5}, 400, "'input' must be"),
    ({"model": MODEL_ID, "input": ["a", None]}, 400, "'input[1]'"),
    ({"model": MODEL_ID}, 400, "'input' is required"),
    ({"model": MODEL_ID, "input": [[1, 10 ** 9]]}, 400, "vocabulary"),
    ({"model": MODEL_ID, "input": [-3]}, 400, "token ids"),
    ({"model": MODEL_ID, "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
    ({"model": MODEL_ID, "input": "x", "dimensions": 3}, 400, "cannot be shortened"),
    ({"model": "gpt-4", "input": "x"}, 404, "does not exist"),
])
def test_errors(server, body, status, needle):
    got, resp = error_of(server.request("POST", "/v1/embeddings", json.dumps(body)))
    assert got == status and needle in resp["error"]["message"], resp


def test_errors_through_the_client(server):
    with pytest.raises(openai.BadRequestError):
        server.client().embeddings.create(model=MODEL_ID, input="")
    with pytest.raises(openai.NotFoundError):
        server.client().embeddings.create(model="nope", input="x")
    status, body = error_of(server.request("POST", "/v1/embeddings", "{not json"))
    assert status == 400 and "not valid JSON" in body["error"]["message"]


def test_embedding_leaves_chat_caches_alone(server):
    """A conversation's follow-up still finds its cache after embeddings ran in between."""
    opts = {"temperature": 0, "num_predict": 6}
    first = [{"role": "user", "content": "Name three colours of the rainbow, please."}]
    status, _, data = server.request("POST", "/api/chat", json.dumps(
        {"model": MODEL_ID, "messages": first, "stream": False, "options": opts}))
    assert status == 200
    r1 = json.loads(data)
    embed(server, ["some unrelated text " * 20, "and more " * 30])
    follow = first + [r1["message"], {"role": "user", "content": "And one more?"}]
    status, _, data = server.request("POST", "/api/chat", json.dumps(
        {"model": MODEL_ID, "messages": follow, "stream": False, "options": opts}))
    assert status == 200
    r2 = json.loads(data)
    assert r2["prompt_eval_count"] < 20, f"the first turn was evaluated again: {r2['prompt_eval_count']}"


LONG_TEXT = " ".join(f"word{i % 97}" for i in range(150))  # about 450 tokens, under CTX


def requests_with_status(server, route: str, status: int) -> int:
    got, _, data = server.request("GET", "/metrics", timeout=10)
    assert got == 200
    m = re.search(rf'^hearth_http_requests_total{{route="{re.escape(route)}",status="{status}"}} (\d+)$',
                  data.decode(), re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def seconds_per_long_input(server) -> float:
    """How long one LONG_TEXT input takes here (the machine may be slow or busy)."""
    r = server.client().embeddings.create(model=MODEL_ID, input=LONG_TEXT)
    assert CTX * 0.6 < r.usage.prompt_tokens <= CTX, r.usage.prompt_tokens
    t0 = time.monotonic()
    embed(server, [LONG_TEXT] * 4)
    return (time.monotonic() - t0) / 4


@pytest.mark.parametrize("route", ["/v1/embeddings", "/api/embed"])
def test_disconnect_stops_the_embeddings(server, seconds_per_long_input, route):
    """A large request whose client goes away stops at once (recorded as status 499 in /metrics,
    long before the whole request could have run) and frees the context for the next one."""
    most = (1 << 20) // (len(LONG_TEXT) + 8)  # the server's default 1 MiB body limit
    n_inputs = max(40, min(most, math.ceil(60 / seconds_per_long_input)))
    whole = n_inputs * seconds_per_long_input  # what the work would take, here
    reference = embed(server, "After the disconnect.")[0]
    before = requests_with_status(server, route, 499)

    body = json.dumps({"model": MODEL_ID, "input": [LONG_TEXT] * n_inputs}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.sendall(f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.key}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    time.sleep(1 + 2 * seconds_per_long_input)  # the work has begun
    s.close()
    t_gone = time.monotonic()

    # The next request waits for the same context: it runs once the cancelled one has let go.
    after = embed(server, "After the disconnect.")[0]
    waited = time.monotonic() - t_gone
    assert max(abs(x - y) for x, y in zip(after, reference)) < 1e-6
    deadline = time.monotonic() + 10
    while requests_with_status(server, route, 499) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests_with_status(server, route, 499) == before + 1, \
        f"the dropped request was not recorded as cancelled (499) for {route}"
    assert waited < whole / 3, \
        f"the next request waited {waited:.1f} s: the dropped one ({whole:.0f} s of work) ran on"
    status, _, data = server.request("GET", "/health", auth=False, timeout=10)
    assert status == 200 and json.loads(data)["status"] == "ok"
