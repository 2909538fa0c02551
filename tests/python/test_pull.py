"""`hearth pull` against an HTTPS server on loopback whose self-signed certificate is made
by `openssl req` for this test run: verified download with --cacert, refusal without it,
wrong hash (nothing enters the store), a download cut mid-file and then resumed with a
Range request, a server that ignores Range, a stale .part longer than the file (416), Ctrl-C keeping a resumable .part, http:// and
redirects to http:// refused, size limit and HTTP errors."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from test_cli import BIN, expect_error, tiny_llama

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        s = self.server
        s.requests.append((self.path, dict(self.headers)))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{s.server_port}/tiny.gguf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/tiny.gguf":
            self.send_error(404)
            return
        data = s.payload
        start = 0
        rng = self.headers.get("Range")
        if rng and s.honor_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(s.fake_length or len(body)))
        self.end_headers()
        if s.fake_length:
            self.close_connection = True
            return
        if s.cut_after is not None:  # send part of the body, then drop the connection
            cut, s.cut_after = s.cut_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            s.sent_part.set()
            s.release.wait(20)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d / "key.pem", "-out",
                    d / "cert.pem", "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tiny_llama(tmp_path_factory.mktemp("model") / "tiny.gguf")
    return p.read_bytes()


@pytest.fixture
def server(cert, model):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.payload = model
    srv.requests = []
    srv.honor_range = True
    srv.cut_after = None
    srv.fake_length = None
    srv.sent_part = threading.Event()
    srv.release = threading.Event()
    srv.release.set()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"https://127.0.0.1:{srv.server_port}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


def env(home: Path) -> dict:
    return dict(os.environ, HEARTH_HOME=str(home), HEARTH_CONFIG=str(home / "none.toml"))


def pull(home: Path, *args):
    return subprocess.run([str(BIN), "pull", *map(str, args)], capture_output=True, timeout=120,
                          env=env(home), stdin=subprocess.DEVNULL)


def out(r) -> str:
    return r.stdout.decode() + r.stderr.decode()


def parts(home: Path) -> list[Path]:
    return sorted((home / "blobs").glob(".pull-*.part")) if (home / "blobs").exists() else []


def manifests(home: Path) -> list[Path]:
    return sorted((home / "manifests").glob("*.json")) if (home / "manifests").exists() else []


def test_pull_with_cacert_enters_the_store(home, server, cert, model):
    sha = hashlib.sha256(model).hexdigest()
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha.upper(), "--cacert", cert[0])
    assert r.returncode == 0, out(r)
    assert f"pulled tiny version 1" in r.stdout.decode() and sha in r.stdout.decode()
    assert (home / "blobs" / f"sha256-{sha}").read_bytes() == model
    assert [p.name for p in manifests(home)] == ["tiny.json"]
    assert parts(home) == []
    assert "Range" not in server.requests[-1][1]
    # Already there: nothing is fetched again.
    n = len(server.requests)
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0])
    assert r.returncode == 0 and len(server.requests) == n, out(r)


def test_untrusted_certificate_fails_cleanly(home, server, model):
    sha = hashlib.sha256(model).hexdigest()
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha)
    expect_error(r, "certificate could not be verified")
    assert "--cacert" in out(r)
    assert manifests(home) == [] and parts(home) == []


def test_wrong_hash_leaves_nothing(home, server, cert, model):
    wrong = hashlib.sha256(b"something else").hexdigest()
    got = hashlib.sha256(model).hexdigest()
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", wrong, "--cacert", cert[0])
    expect_error(r, f"expected {wrong}, got {got}")
    assert "nothing entered the store" in out(r)
    assert manifests(home) == [] and parts(home) == []
    assert not list((home / "blobs").glob("sha256-*"))


def test_cut_download_resumes_with_range(home, server, cert, model):
    sha = hashlib.sha256(model).hexdigest()
    half = len(model) // 2
    server.cut_after = half
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0], "--name", "m")
    expect_error(r, "run the same command again to resume")
    [part] = parts(home)
    assert part.stat().st_size == half and part.read_bytes() == model[:half]
    assert manifests(home) == []
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0], "--name", "m")
    assert r.returncode == 0, out(r)
    assert server.requests[-1][1].get("Range") == f"bytes={half}-"
    assert "resumed a partial download" in r.stderr.decode()
    assert (home / "blobs" / f"sha256-{sha}").read_bytes() == model
    assert parts(home) == []


def test_server_ignoring_range_starts_over(home, server, cert, model):
    sha = hashlib.sha256(model).hexdigest()
    server.cut_after = 1000
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0])
    assert r.returncode == 1 and len(parts(home)) == 1, out(r)
    server.honor_range = False
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0])
    assert r.returncode == 0, out(r)
    assert server.requests[-1][1].get("Range") == "bytes=1000-"  # asked, answered with 200
    assert "downloaded again from the start" in r.stderr.decode()
    assert (home / "blobs" / f"sha256-{sha}").read_bytes() == model


def test_part_longer_than_the_file_starts_over(home, server, cert, model):
    sha = hashlib.sha256(model).hexdigest()
    (home / "blobs").mkdir(mode=0o700)
    (home / "blobs" / f".pull-{sha}.part").write_bytes(b"x" * (len(model) + 10))
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0])
    assert r.returncode == 0, out(r)
    assert [h.get("Range") for _, h in server.requests] == [f"bytes={len(model) + 10}-", None]
    assert "downloaded again from the start" in r.stderr.decode()
    assert (home / "blobs" / f"sha256-{sha}").read_bytes() == model and parts(home) == []


def test_right_hash_but_not_a_model_is_not_imported(home, server, cert):
    server.payload = b"GGUF" + b"\0" * 100  # not a loadable model
    sha = hashlib.sha256(server.payload).hexdigest()
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0])
    expect_error(r, "cannot import")
    assert "the download was deleted" in out(r)
    assert manifests(home) == [] and parts(home) == []
    assert not list((home / "blobs").glob("sha256-*"))


def test_ctrl_c_keeps_a_resumable_part(home, server, cert, model):
    sha = hashlib.sha256(model).hexdigest()
    half = len(model) // 2
    server.cut_after = half
    server.release.clear()  # the server stalls after half the file
    p = subprocess.Popen([str(BIN), "pull", f"{server.url}/tiny.gguf", "--sha256", sha,
                          "--cacert", str(cert[0])], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env(home))
    assert server.sent_part.wait(30)
    deadline = time.time() + 30  # wait until the bytes are on disk
    while time.time() < deadline and not (parts(home) and parts(home)[0].stat().st_size == half):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    server.release.set()
    assert p.returncode == 1 and "interrupted" in err.decode(), err
    [part] = parts(home)
    assert part.read_bytes() == model[:half]
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0])
    assert r.returncode == 0, out(r)
    assert server.requests[-1][1].get("Range") == f"bytes={half}-"


def test_http_is_refused_without_connecting(home, model):
    sha = hashlib.sha256(model).hexdigest()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        r = pull(home, f"http://127.0.0.1:{port}/tiny.gguf", "--sha256", sha)
        expect_error(r, "not an https:// URL")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert manifests(home) == [] and parts(home) == []


def test_redirect_to_http_is_refused(home, server, cert, model):
    sha = hashlib.sha256(model).hexdigest()
    r = pull(home, f"{server.url}/redirect", "--sha256", sha, "--cacert", cert[0], "--name", "x")
    expect_error(r, "refused")
    assert [p for p, _ in server.requests] == ["/redirect"]
    assert manifests(home) == [] and parts(home) == []


def test_bad_arguments_size_limit_and_http_errors(home, server, cert, model):
    sha = hashlib.sha256(model).hexdigest()
    expect_error(pull(home, f"{server.url}/tiny.gguf", "--sha256", "abc"), "not 64 hex digits")
    expect_error(pull(home, f"{server.url}/", "--sha256", sha), "give one with --name")
    expect_error(pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--name", "../x"),
                 "model name")
    expect_error(pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", "/nonexistent"),
                 "--cacert /nonexistent")
    r = pull(home, f"{server.url}/missing.gguf", "--sha256", sha, "--cacert", cert[0])
    expect_error(r, "the server answered HTTP 404")
    server.fake_length = 300 << 30
    r = pull(home, f"{server.url}/tiny.gguf", "--sha256", sha, "--cacert", cert[0])
    expect_error(r, "over the 256 GiB limit")
    assert manifests(home) == [] and parts(home) == []
