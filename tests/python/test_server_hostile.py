"""hearth serve against hostile connections: slowloris-style sockets (silent, half a header,
a byte at a time), more connections than the server serves at once, 1,000 rapid
connect/disconnects, oversized heads, chunked and compressed uploads, long keep-alive runs.

What must hold (see src/app/server_connection.h): a normal request still succeeds while the
slow sockets are open; every slow socket is closed within --read-timeout (408 when part of a
request had arrived); a connection beyond --max-connections gets a 503 at once; afterwards
no connection or slot is left behind. The servers use short timeouts so the file runs in
seconds.
"""
from __future__ import annotations

import gzip
import json
import select
import socket
import subprocess
import threading
import time

import pytest

from test_server import BIN, MODEL, MODEL_ID, Server  # noqa: F401 - same skips and server helper

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]

READ_TIMEOUT = 6.0  # --read-timeout of the module's server: long enough for one request on a busy CI box
SLACK = 3.0  # a loaded CI machine may be late by this much


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hearth_hostile"), "--ctx", "256", "--parallel", "1",
               "--queue", "4", "--max-connections", "200", "--read-timeout", str(READ_TIMEOUT))
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.proc.stderr.read()


def completion(server, timeout: float = 30) -> tuple[int, dict]:
    body = json.dumps({"model": MODEL_ID, "prompt": "The sky is", "max_tokens": 4, "temperature": 0})
    status, _, data = server.request("POST", "/v1/completions", body, timeout=timeout)
    return status, json.loads(data)


def health(server) -> dict:
    status, _, data = server.request("GET", "/health", auth=False, timeout=10)
    assert status == 200
    return json.loads(data)


def metric(server, name: str) -> float:
    status, _, data = server.request("GET", "/metrics", timeout=10)
    assert status == 200
    for line in data.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {what}")
        time.sleep(0.1)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def is_open(s: socket.socket) -> bool:
    """True while the server has neither closed nor answered this socket."""
    p = select.poll()
    p.register(s, select.POLLIN)
    return not p.poll(0)  # readable: an answer, end of stream or a reset


def read_until_closed(s: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the socket, and when it closed it."""
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"the server kept the socket open for {timeout} s; got {got[:200]!r}")
    return got, time.monotonic()


class Trickler(threading.Thread):
    """Sends one byte to each socket every `interval` seconds (faster than any per-read
    timeout would notice), until the server closes it or stop() is called."""

    def __init__(self, socks: list[socket.socket], data: bytes, interval: float = 0.5):
        super().__init__(daemon=True)
        self.socks, self.data, self.interval = socks, data, interval
        self.stopped = threading.Event()

    def run(self):
        live = list(self.socks)
        i = 0
        while live and not self.stopped.wait(self.interval):
            byte = self.data[i % len(self.data): i % len(self.data) + 1]
            i += 1
            for s in list(live):
                try:
                    s.send(byte)
                except OSError:
                    live.remove(s)

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)


def test_slow_sockets_neither_starve_the_server_nor_stay_open(server):
    port = server.port
    silent = [connect(port) for _ in range(40)]
    half_head = [connect(port) for _ in range(40)]
    for s in half_head:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    slow_head = [connect(port) for _ in range(20)]
    slow_body = [connect(port) for _ in range(20)]
    for s in slow_body:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                  + server.key.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{")
    opened = time.monotonic()
    tricklers = [Trickler(slow_head, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 4000),
                 Trickler(slow_body, b'"prompt": "' + b"b" * 4000)]
    for t in tricklers:
        t.start()
    slow = silent + half_head + slow_head + slow_body

    # A normal request is served while all 120 slow sockets are held open (with one thread per
    # connection and no per-request deadline, as before, it waited for them).
    status, body = completion(server, timeout=READ_TIMEOUT)
    assert status == 200 and body["choices"][0]["text"]
    h = health(server)
    still_open = sum(is_open(s) for s in slow)
    assert still_open == len(slow), f"only {still_open} of {len(slow)} slow sockets were still open"
    assert h["connections"] >= len(slow) + 1, h

    # Each slow socket is closed by the server within the read timeout (+ slack).
    answers = {}
    for name, group in (("silent", silent), ("half_head", half_head), ("slow_head", slow_head),
                        ("slow_body", slow_body)):
        answers[name] = []
        for s in group:
            got, closed_at = read_until_closed(s, timeout=READ_TIMEOUT + SLACK)
            assert closed_at - opened < READ_TIMEOUT + SLACK
            answers[name].append(got)
            s.close()
    for t in tricklers:
        t.stop()
    assert all(a == b"" for a in answers["silent"]), "a silent connection got an answer"
    for name in ("half_head", "slow_head", "slow_body"):
        for got in answers[name]:
            assert got.startswith(b"HTTP/1.1 408 "), f"{name}: {got[:200]!r}"
            assert b"request_timeout" in got

    # Nothing is left behind: one connection (this /health request), no busy slot.
    h = wait_for(lambda: (lambda x: x if x["connections"] == 1 else None)(health(server)), SLACK,
                 "all slow connections released")
    assert h["slots_busy"] == 0 and h["queued"] == 0
    assert metric(server, "hearth_http_connections_timed_out_total") >= 80
    assert completion(server)[0] == 200


def test_a_thousand_rapid_connect_disconnects(server):
    before = metric(server, "hearth_http_connections_refused_total")
    full = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for i in range(1000):
        s = connect(server.port)
        kind = i % 5
        if kind == 1:
            s.sendall(full[:17])  # half a request line
        elif kind == 2:
            s.sendall(full)  # a whole request, gone before the answer
        elif kind == 3:  # reset instead of close
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        elif kind == 4:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        s.close()
    status, body = completion(server)
    assert status == 200 and body["choices"][0]["text"]
    h = wait_for(lambda: (lambda x: x if x["connections"] == 1 else None)(health(server)),
                 READ_TIMEOUT + SLACK, "connections released after 1,000 connect/disconnects")
    assert h["slots_busy"] == 0 and h["queued"] == 0
    # Usually none is refused, but on a loaded 2-core machine the accept loop can get
    # --max-connections ahead of the workers that notice the closes (12 of 1,000 in one CI
    # run): those get the limit's 503, which is correct, and are counted, never lost.
    refused = metric(server, "hearth_http_connections_refused_total") - before
    print(f"\nrefused during the burst: {refused:.0f} of 1000")
    assert 0 <= refused < 1000
    assert server.proc.poll() is None


def test_connections_beyond_the_limit_get_503_at_once(tmp_path):
    s = Server(tmp_path, "--ctx", "256", "--parallel", "1", "--queue", "1", "--max-connections", "6",
               "--read-timeout", "2")
    try:
        held = [connect(s.port) for _ in range(5)]
        wait_for(lambda: health(s)["connections"] == 6, 5, "five held connections counted")
        time.sleep(0.3)  # the /health connection's thread is free again
        held.append(connect(s.port))  # the sixth: now every connection thread is taken
        time.sleep(0.3)
        assert is_open(held[-1])
        extra = connect(s.port)
        t0 = time.monotonic()
        got, closed_at = read_until_closed(extra, timeout=5)
        assert closed_at - t0 < 1.0, "the refused connection was not answered at once"
        assert got.startswith(b"HTTP/1.1 503 "), got[:200]
        body = json.loads(got.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["type"] == "server_busy" and "6 open connections" in body["error"]["message"]
        # The held ones are closed at the read timeout; then the server serves again.
        for h in held:
            read_until_closed(h, timeout=2 + SLACK)
            h.close()
        status, body = completion(s)
        assert status == 200
        assert metric(s, "hearth_http_connections_refused_total") >= 1
    finally:
        s.stop()


def raw_exchange(server, request: bytes, timeout: float = 10) -> bytes:
    s = connect(server.port)
    try:
        s.sendall(request)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before the whole (refused) body was sent
    got, _ = read_until_closed(s, timeout)
    s.close()
    return got


def test_oversized_head_is_refused_and_closed(server):
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(100))  # 100 KB
    got = raw_exchange(server, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    assert health(server)["status"] == "ok"


def test_chunked_and_compressed_bodies_are_refused(server):
    auth = b"Authorization: Bearer " + server.key.encode() + b"\r\n"
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(32)) + b"0\r\n\r\n"  # 2 MB
    got = raw_exchange(server, b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                       b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert got.startswith(b"HTTP/1.1 411 "), got[:200]
    assert b"Content-Length" in got and got.count(b"HTTP/1.1") == 1  # the body was not read as requests

    # 300 KB of gzip that would become 300 MB: refused before it is inflated.
    bomb = gzip.compress(b'{"model": "x", "prompt": "' + b"a" * (300 << 20) + b'"}', 9)
    got = raw_exchange(server, b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                       b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(bomb) + bomb)
    assert got.startswith(b"HTTP/1.1 415 "), got[:200]
    rss_kb = int(next(line.split()[1] for line in open(f"/proc/{server.proc.pid}/status")
                      if line.startswith("VmHWM:")))
    assert rss_kb < 1_000_000, f"peak RSS {rss_kb} kB: the bomb was inflated"
    assert completion(server)[0] == 200


def test_a_keep_alive_connection_serves_at_most_100_requests(server):
    s = connect(server.port)
    f = s.makefile("rb")
    for i in range(100):
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status = f.readline()
        assert status.startswith(b"HTTP/1.1 200"), (i, status)
        headers = {}
        while (line := f.readline()) != b"\r\n":
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        f.read(int(headers["content-length"]))
        assert (headers.get("connection") == "close") == (i == 99), (i, headers)
    assert f.read() == b""  # closed by the server after the 100th
    s.close()


@pytest.mark.parametrize("flags, needle", [
    (["--max-connections", "10", "--parallel", "2", "--queue", "8"], "--max-connections must be 11"),
    (["--read-timeout", "0"], "--read-timeout must be"),
])
def test_bad_connection_flags(tmp_path, flags, needle):
    r = subprocess.run([str(BIN), "serve", "--port", "0", *flags], capture_output=True, text=True,
                       timeout=30, env={"HEARTH_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and needle in r.stderr, r.stderr
    assert r.stderr.startswith("hearth: error: ")
