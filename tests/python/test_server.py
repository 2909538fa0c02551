"""hearth serve end to end: the official `openai` client, Ollama's API over plain HTTP,
the safety checks (key, Host, body limits), hostile input, concurrency and disconnects.

One server per module on a free loopback port with a temporary HEARTH_HOME (so the API
key is created fresh); the model comes from HEARTH_MODELS as in test_cli.py. Answers are
short (max_tokens <= 16, temperature 0) to keep the run fast.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("HEARTH_BIN", REPO / "build" / "hearth"))
MODEL_DIR = Path(os.environ.get("HEARTH_MODELS", Path.home() / ".local/share/hearth/models"))
MODEL = MODEL_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = MODEL.stem

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]


class Server:
    def __init__(self, home: Path, *args: str):
        env = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(MODEL_DIR))
        self.proc = subprocess.Popen([str(BIN), "serve", "--port", "0", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, f"no URL in {line!r}; stderr: {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.port = int(m.group(1))
        self.key = (home / "api_key").read_text().strip()
        self.base = f"http://127.0.0.1:{self.port}"
        self.home = home

    def client(self, **kw) -> "openai.OpenAI":
        return openai.OpenAI(base_url=self.base + "/v1", api_key=self.key, max_retries=0, timeout=60, **kw)

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None,
                auth: bool = True, timeout: float = 60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = f"Bearer {self.key}"
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, dict(r.getheaders()), data

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("hearth_home")
    s = Server(home, "--ctx", "512", "--parallel", "2", "--queue", "8", "--timeout", "60")
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.proc.stderr.read()


def chat_body(content: str = "Say hello.", **extra) -> dict:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": content}], "max_tokens": 8,
            "temperature": 0, **extra}


def error_of(status_and_body) -> tuple[int, dict]:
    status, _, data = status_and_body
    return status, json.loads(data)


# --- start-up, key ---------------------------------------------------------------------

def test_key_file_is_private_and_cli_shows_it(server):
    home = server.home
    mode = stat.S_IMODE((home / "api_key").stat().st_mode)
    assert mode == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", server.key)
    r = subprocess.run([str(BIN), "key", "show"], env=dict(os.environ, HEARTH_HOME=str(home)),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == server.key


def test_key_rotate_writes_a_new_key(tmp_path):
    env = dict(os.environ, HEARTH_HOME=str(tmp_path))
    first = subprocess.run([str(BIN), "key", "show"], env=env, capture_output=True, text=True, timeout=30)
    second = subprocess.run([str(BIN), "key", "rotate"], env=env, capture_output=True, text=True, timeout=30)
    assert first.returncode == 0 and second.returncode == 0
    assert re.fullmatch(r"[0-9a-f]{64}", second.stdout.strip())
    assert first.stdout.strip() != second.stdout.strip()
    assert (tmp_path / "api_key").read_text().strip() == second.stdout.strip()
    assert stat.S_IMODE((tmp_path / "api_key").stat().st_mode) == 0o600


def test_refuses_bad_listen_address(tmp_path):
    env = dict(os.environ, HEARTH_HOME=str(tmp_path), HEARTH_MODELS=str(MODEL_DIR))
    r = subprocess.run([str(BIN), "serve", "--listen", "203.0.113.7", "--port", "0"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "hearth: error: cannot bind 203.0.113.7" in r.stderr


# --- OpenAI API through the official client --------------------------------------------

def test_models(server):
    models = server.client().models.list()
    assert [m.id for m in models.data] == [MODEL_ID]


def test_chat_non_stream(server):
    r = server.client().chat.completions.create(
        model=MODEL_ID, messages=[{"role": "system", "content": "You are brief."},
                                  {"role": "user", "content": "What is the capital of France?"}],
        max_tokens=8, temperature=0, seed=1)
    c = r.choices[0]
    assert c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 5 and 1 <= r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_matches_non_stream(server):
    cl = server.client()
    messages = [{"role": "user", "content": "Name a colour."}]
    full = cl.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=8, temperature=0)
    chunks = list(cl.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=8, temperature=0,
                                             stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == full.choices[0].message.content
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_max_tokens_gives_length(server):
    r = server.client().chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Count from one to one hundred."}],
        max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_stop_string(server):
    cl = server.client()
    base = cl.completions.create(model=MODEL_ID, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0)
    text = base.choices[0].text
    assert len(text) > 3
    stop = text.strip()[:2]
    r = cl.completions.create(model=MODEL_ID, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[stop])
    assert stop not in r.choices[0].text and r.choices[0].finish_reason == "stop"


def test_completions_stream_and_not(server):
    cl = server.client()
    r = cl.completions.create(model=MODEL_ID, prompt="The sky is", max_tokens=6, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens <= 6
    parts = list(cl.completions.create(model=MODEL_ID, prompt="The sky is", max_tokens=6, temperature=0,
                                       stream=True))
    assert "".join(p.choices[0].text for p in parts) == r.choices[0].text


def test_seed_reproducible(server):
    cl = server.client()
    kw = dict(model=MODEL_ID, messages=[{"role": "user", "content": "Tell me a word."}], max_tokens=8,
              temperature=1.0, seed=1234, presence_penalty=0.5, frequency_penalty=0.5, top_p=0.9)
    a = cl.chat.completions.create(**kw).choices[0].message.content
    b = cl.chat.completions.create(**kw).choices[0].message.content
    assert a == b


# --- errors ------------------------------------------------------------------------------

def test_401_without_or_with_wrong_key(server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base + "/v1", api_key="wrong", max_retries=0).models.list()
    status, body = error_of(server.request("GET", "/v1/models", auth=False))
    assert status == 401 and body["error"]["message"]
    status, body = error_of(server.request("POST", "/api/chat", json.dumps(chat_body()), auth=False))
    assert status == 401 and "error" in body
    status, _, _ = server.request("GET", "/metrics", auth=False)
    assert status == 401


def test_403_bad_host(server):
    for host in ("evil.example", "evil.example:%d" % server.port, "localhost.evil.example"):
        status, body = error_of(server.request("GET", "/v1/models", headers={"Host": host}))
        assert status == 403 and "rebinding" in body["error"]["message"]
    for host in ("localhost:%d" % server.port, "127.0.0.1", "[::1]:%d" % server.port):
        status, _, _ = server.request("GET", "/v1/models", headers={"Host": host})
        assert status == 200, host


def test_no_cors_header(server):
    _, headers, _ = server.request("GET", "/v1/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "not valid JSON"),
    (b"[]", "JSON object"),
    (b"", "not valid JSON"),
    (b'{"model": "%s"}' % MODEL_ID.encode(), "'messages' is required"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', "'model' is required"),
    (b'{"model": "%s", "messages": "hi"}' % MODEL_ID.encode(), "must be a list"),
    (b'{"model": "%s", "messages": [{"role": "wizard", "content": "hi"}]}' % MODEL_ID.encode(), "role"),
    (b'{"model": "%s", "messages": [{"role": "user", "content": 5}]}' % MODEL_ID.encode(), "content"),
    (json.dumps(chat_body(temperature="hot")).encode(), "'temperature' must be a number"),
    (json.dumps(chat_body(max_tokens=-1)).encode(), "max_tokens"),
    (json.dumps(chat_body(max_tokens=1e300)).encode(), "max_tokens"),
    (json.dumps(chat_body(max_tokens=99999999999999999999999)).encode(), "max_tokens"),
    (json.dumps(chat_body(stop=[1, 2])).encode(), "stop"),
    (json.dumps(chat_body(stream="yes")).encode(), "stream"),
    (b'{"model": "a", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "UTF-8"),
    (b'{"model": "a", "messages": [{"role": "user", "content": "\\ud800"}]}', "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "nests deeper"),
])
def test_400_bad_requests(server, body, needle):
    status, resp = error_of(server.request("POST", "/v1/chat/completions", body))
    assert status == 400, resp
    assert needle in resp["error"]["message"], resp
    assert resp["error"]["type"] == "invalid_request_error"


def test_400_through_the_client(server):
    with pytest.raises(openai.BadRequestError):
        server.client().chat.completions.create(model=MODEL_ID, messages=[], max_tokens=4)


def test_404_unknown_model_and_route(server):
    with pytest.raises(openai.NotFoundError):
        server.client().chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    status, body = error_of(server.request("GET", "/v1/nothing"))
    assert status == 404 and "no such endpoint" in body["error"]["message"]


def test_413_ten_megabyte_body(server):
    status, body = error_of(server.request("POST", "/v1/chat/completions", b"x" * (10 * 1024 * 1024)))
    assert status == 413 and "larger than" in body["error"]["message"]
    status, _, _ = server.request("POST", "/v1/chat/completions", json.dumps(chat_body()))
    assert status == 200


def test_prompt_longer_than_context(server):
    status, body = error_of(server.request("POST", "/v1/completions",
                                           json.dumps({"model": MODEL_ID, "prompt": "word " * 2000,
                                                       "max_tokens": 4})))
    assert status == 400 and "context" in body["error"]["message"]


# --- Ollama API over plain HTTP ------------------------------------------------------------

def test_ollama_tags_and_show(server):
    status, _, data = server.request("GET", "/api/tags")
    assert status == 200 and json.loads(data)["models"][0]["name"] == MODEL_ID
    status, _, data = server.request("POST", "/api/show", json.dumps({"model": MODEL_ID}))
    assert status == 200 and "template" in json.loads(data)
    status, _, data = server.request("POST", "/api/show", json.dumps({"model": "llama3"}))
    assert status == 404 and "error" in json.loads(data)


def test_ollama_chat_stream(server):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Say hi."}],
            "options": {"temperature": 0, "num_predict": 6}}
    status, headers, data = server.request("POST", "/api/chat", json.dumps(body))
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(l) for l in data.decode().splitlines() if l.strip()]
    assert all(not l["done"] for l in lines[:-1]) and lines[-1]["done"]
    final = lines[-1]
    assert final["eval_count"] <= 6 and final["prompt_eval_count"] >= 0 and final["done_reason"] in ("stop", "length")
    text = "".join(l["message"]["content"] for l in lines)
    body["stream"] = False
    status, _, data = server.request("POST", "/api/chat", json.dumps(body))
    one = json.loads(data)
    assert status == 200 and one["done"] and one["message"]["content"] == text


def test_ollama_generate(server):
    body = {"model": MODEL_ID, "prompt": "Why is the sky blue?", "stream": False,
            "options": {"temperature": 0, "num_predict": 5}}
    status, _, data = server.request("POST", "/api/generate", json.dumps(body))
    r = json.loads(data)
    assert status == 200 and r["done"] and r["response"] and r["eval_count"] <= 5
    status, _, data = server.request("POST", "/api/generate", json.dumps({**body, "options": {"num_predict": "x"}}))
    assert status == 400 and "num_predict" in json.loads(data)["error"]


# --- health, metrics --------------------------------------------------------------------

def test_health_and_metrics_without_prompt_text(server):
    secret = "zebra-secret-prompt-9731"
    server.client().chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": secret}],
                                            max_tokens=2, temperature=0)
    status, _, data = server.request("GET", "/health", auth=False)
    assert status == 200 and json.loads(data)["status"] == "ok"
    status, headers, data = server.request("GET", "/metrics")
    text = data.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'hearth_http_requests_total{route="/v1/chat/completions",status="200"}' in text
    assert "hearth_generated_tokens_total" in text and "hearth_queue_depth 0" in text
    assert secret not in text


# --- concurrency, disconnects, hostile connections ---------------------------------------

def test_four_simultaneous_streams(server):
    results, errors = {}, []

    def run(i):
        try:
            cl = server.client()
            stream = cl.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": f"Say {i}."}],
                                                max_tokens=8, temperature=0, stream=True)
            results[i] = [c for c in stream]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 4
    for chunks in results.values():
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def raw_stream_and_drop(port: int, key: str, after_bytes: int = 200):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = json.dumps({"model": MODEL_ID, "messages": [{"role": "user", "content": "Write a long story."}],
                       "max_tokens": 400, "temperature": 0, "stream": True}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" +
              body)
    got = b""
    while len(got) < after_bytes:
        chunk = s.recv(4096)
        assert chunk, "server closed the stream early"
        got += chunk
    s.close()
    return got


def wait_idle(server, timeout: float = 10.0) -> dict:
    deadline = time.time() + timeout
    while True:
        h = json.loads(server.request("GET", "/health", auth=False)[2])
        if h["slots_busy"] == 0 and h["queued"] == 0 or time.time() > deadline:
            return h


def test_disconnect_mid_stream_frees_the_slot(server):
    got = raw_stream_and_drop(server.port, server.key, after_bytes=600)
    assert b"200 OK" in got and b"data: " in got
    h = wait_idle(server)
    assert h["slots_busy"] == 0, f"a dropped stream keeps its slot: {h}"
    status, _, _ = server.request("POST", "/v1/chat/completions", json.dumps(chat_body()))
    assert status == 200


def test_rapid_connect_disconnect_then_success(server):
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if i % 3 == 1:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        elif i % 3 == 2:
            s.sendall(b"GET /health HTTP/1.1\r\n")
        s.close()
    # The server may still be closing the burst's connections (each counts against
    # --max-connections until its handler sees the close), so a 503 "server_busy" right
    # after it is fair; what must hold is that it recovers, within a few seconds.
    deadline = time.monotonic() + 10
    while True:
        status, _, data = server.request("POST", "/v1/chat/completions", json.dumps(chat_body()))
        if status != 503 or time.monotonic() > deadline:
            break
        assert json.loads(data)["error"]["type"] == "server_busy", data
        time.sleep(0.1)
    assert status == 200 and json.loads(data)["choices"][0]["message"]["content"]


def test_queue_full_gives_503(tmp_path):
    s = Server(tmp_path, "--ctx", "256", "--parallel", "1", "--queue", "0", "--threads", "1")
    try:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        body = json.dumps({"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 200, "temperature": 0,
                           "stream": True}).encode()
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + s.key.encode() +
                     b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while b"data: " not in got:  # the only slot is busy now
            chunk = sock.recv(4096)
            assert chunk
            got += chunk
        status, body503 = error_of(s.request("POST", "/v1/completions",
                                             json.dumps({"model": MODEL_ID, "prompt": "Hi", "max_tokens": 2})))
        assert status == 503 and "busy" in body503["error"]["message"]
        with pytest.raises(openai.InternalServerError):
            s.client().completions.create(model=MODEL_ID, prompt="Hi", max_tokens=2)
        sock.close()
        assert wait_idle(s)["slots_busy"] == 0
        status, _, _ = s.request("POST", "/v1/completions", json.dumps({"model": MODEL_ID, "prompt": "Hi",
                                                                         "max_tokens": 2}))
        assert status == 200
    finally:
        s.stop()


def test_ctrl_c_during_a_stream_stops_promptly(tmp_path):
    s = Server(tmp_path, "--ctx", "512", "--parallel", "1", "--threads", "1")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    body = json.dumps({"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 500, "temperature": 0,
                       "stream": True}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + s.key.encode() +
                 b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data: " not in got:
        got += sock.recv(4096)
    t0 = time.time()
    s.stop()
    assert s.proc.returncode == 0 and time.time() - t0 < 10
    sock.close()


def test_continuing_a_conversation_reuses_its_slot_cache(server):
    # Two slots: the follow-up must be routed to the slot that holds the first turn, so only
    # the new tokens are evaluated (Ollama's prompt_eval_count counts evaluated tokens).
    first = [{"role": "user", "content": "Tell me about the moon in one sentence, please."}]
    opts = {"temperature": 0, "num_predict": 8}
    status, _, data = server.request("POST", "/api/chat", json.dumps({"model": MODEL_ID, "messages": first,
                                                                      "stream": False, "options": opts}))
    r1 = json.loads(data)
    assert status == 200
    # Another conversation in between takes the other slot (or this one, if it was idle).
    server.request("POST", "/api/chat", json.dumps({"model": MODEL_ID, "stream": False, "options": opts,
                                                    "messages": [{"role": "user", "content": "Hi there."}]}))
    follow = first + [r1["message"], {"role": "user", "content": "And the sun?"}]
    status, _, data = server.request("POST", "/api/chat", json.dumps({"model": MODEL_ID, "messages": follow,
                                                                      "stream": False, "options": opts}))
    r2 = json.loads(data)
    assert status == 200
    assert r2["prompt_eval_count"] < 20, f"the first turn was evaluated again: {r2['prompt_eval_count']} tokens"
