"""Proof that nothing leaves the machine: Hearth's main flows run inside a network namespace
whose only way out is a veth pair watched by tcpdump, and not one packet may leave.

Set-up (root only): a namespace with loopback up and one veth end (10.213.x.2/30) whose
default route goes through the host end (10.213.x.1), IPv6 off on both ends (so the kernel's
own router solicitations and duplicate-address probes do not appear). tcpdump records every
packet the host end receives (-Q in: what left the namespace) from before the first Hearth
command. The host's resolver (/etc/resolv.conf) stays as it is, so a DNS lookup by Hearth
would leave through the veth and be caught too.

Inside the namespace (this file run as a script with `ip netns exec`): `hearth import` of
the default model, `hearth run -p`, `hearth serve` with chats through the OpenAI API
(streamed and not) and the Ollama API (chat and generate), the web page and its assets
over plain HTTP, `hearth history export`, `hearth doctor`, `hearth list`, `hearth verify`.

A real browser is left out: headless Chromium loading the page in such a namespace, even
with --disable-background-networking --disable-component-update --disable-sync and more, was
seen looking up clients2.google.com, update.googleapis.com, accounts.google.com and
content-autofill.googleapis.com within 2 s. Silencing it with resolver rules would also hide
any request the page made. The page and its assets are fetched here over HTTP, and the
page's own tests check it references no other host.

Positive control: after the flows, a TCP connect from inside the namespace to the host end
of the veth must appear in the same capture. Every packet in the capture must come after
that control started, so the count during the Hearth flows is zero.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from test_cli import BIN, MODEL
CONTROL_PORT = 9  # discard: nothing listens on the host end, which answers with a reset


# --- the flows, run inside the namespace ----------------------------------------------------

def _hearth(home: Path, *args: str, timeout: float = 120, ok: tuple[int, ...] = (0,)) -> str:
    env = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(home / "models"))
    r = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode not in ok:
        raise SystemExit(f"hearth {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


def _http(port: int, method: str, path: str, key: str = "", body: dict | None = None) -> bytes:
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=json.dumps(body).encode() if body else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    if r.status != 200:
        raise SystemExit(f"{method} {path}: HTTP {r.status}: {data[:300]!r}")
    return data


def interrupt(proc: subprocess.Popen, timeout: float) -> None:
    """SIGINT (how serve and tcpdump are stopped cleanly), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_flows(home: Path) -> None:
    """Every step must succeed; the caller checks the capture."""
    _hearth(home, "import", str(MODEL), "--name", "smollm")
    answer = _hearth(home, "run", "smollm", "-p", "Say hello.", "-n", "8", "--temp", "0")
    assert answer.strip(), "run -p gave no answer"
    env = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(home / "models"))
    serve = subprocess.Popen([str(BIN), "serve", "smollm", "--port", "0", "--ctx", "512"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = serve.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            raise SystemExit(f"serve did not start: {line!r} {serve.stderr.read() if serve.poll() is not None else ''}")
        port = int(m.group(1))
        key = (home / "api_key").read_text().strip()
        page = _http(port, "GET", "/").decode()
        for asset in re.findall(r'(?:src|href)="(/[^"]*)"', page):
            _http(port, "GET", asset)
        _http(port, "GET", "/chat.js")
        _http(port, "GET", "/chat.css")
        model = json.loads(_http(port, "GET", "/v1/models", key))["data"][0]["id"]
        _http(port, "GET", "/api/tags", key)
        msgs = [{"role": "user", "content": "Say hello."}]
        r = json.loads(_http(port, "POST", "/v1/chat/completions", key,
                             {"model": model, "messages": msgs, "max_tokens": 8, "temperature": 0}))
        assert r["choices"][0]["message"]["content"], r
        sse = _http(port, "POST", "/v1/chat/completions", key,
                    {"model": model, "messages": msgs, "max_tokens": 8, "stream": True})
        assert b"[DONE]" in sse, sse[-200:]
        r = json.loads(_http(port, "POST", "/api/chat", key,
                             {"model": model, "messages": msgs, "stream": False,
                              "options": {"num_predict": 8, "temperature": 0}}))
        assert r["message"]["content"], r
        nd = _http(port, "POST", "/api/generate", key,
                   {"model": model, "prompt": "Say hello.", "options": {"num_predict": 8}})
        assert b'"done":true' in nd.replace(b" ", b""), nd[-200:]
    finally:
        interrupt(serve, 20)
    if serve.returncode != 0:
        raise SystemExit(f"serve exited {serve.returncode}: {serve.stderr.read()}")
    export = home / "export.json"
    _hearth(home, "history", "export", "-o", str(export))
    assert json.loads(export.read_text()), "empty export"
    _hearth(home, "history", "list")
    _hearth(home, "doctor", ok=(0, 2))  # 2: it found something to warn about; still no network
    _hearth(home, "list")
    _hearth(home, "verify", "smollm")


def control_connect(host: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, CONTROL_PORT))
    except OSError:
        pass  # refused or timed out: the SYN was sent either way
    finally:
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "flows":
        run_flows(Path(sys.argv[2]))
    elif sys.argv[1] == "control":
        control_connect(sys.argv[2])
    sys.exit(0)


# --- the test, run by pytest on the host ----------------------------------------------------

import pytest  # noqa: E402  (the script part above runs without pytest)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and packet capture); CI runs as root"
    if not shutil.which("ip") or not shutil.which("tcpdump"):
        return "needs iproute2 and tcpdump (scripts/setup.sh installs them)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` is not available on this machine"
    return None


pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


def _sh(*args: str) -> None:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")


class Netns:
    """A namespace whose only way out is a veth pair; removed (with the pair) on close."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.name = f"hearth-nonet-{tag}"
        self.host_if, self.ns_if = f"hnh{tag}", f"hnn{tag}"
        subnet = f"10.213.{os.getpid() % 250}"
        self.host_ip, self.ns_ip = f"{subnet}.1", f"{subnet}.2"

    def create(self) -> None:
        _sh("ip", "netns", "add", self.name)
        _sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _sh("sysctl", "-qw", f"net.ipv6.conf.{self.host_if}.disable_ipv6=1")
        _sh("ip", "link", "set", self.ns_if, "netns", self.name)
        _sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _sh("ip", "link", "set", self.host_if, "up")
        x = ["ip", "netns", "exec", self.name]
        _sh(*x, "sysctl", "-qw", f"net.ipv6.conf.{self.ns_if}.disable_ipv6=1")
        _sh(*x, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        _sh(*x, "ip", "link", "set", self.ns_if, "up")
        _sh(*x, "ip", "link", "set", "lo", "up")
        _sh(*x, "ip", "route", "add", "default", "via", self.host_ip)

    def close(self) -> None:
        # Deleting the namespace destroys its veth end and with it the pair.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *args], capture_output=True,
                              text=True, timeout=timeout)


@pytest.fixture
def netns():
    ns = Netns()
    try:
        ns.create()
        yield ns
    finally:
        ns.close()


@pytest.fixture
def capture(netns, tmp_path):
    """tcpdump on the host end, packets entering it from the namespace; stopped on exit.

    --immediate-mode: without it libpcap hands packets over a buffer block at a time (up to
    1 s late), and packets still in the block when tcpdump is interrupted were never written:
    the positive control was then missing from the capture in most runs."""
    pcap, err = tmp_path / "veth.pcap", tmp_path / "tcpdump.err"
    with open(err, "w") as errf:
        proc = subprocess.Popen(["tcpdump", "-i", netns.host_if, "-Q", "in", "-n", "-U", "--immediate-mode",
                                 "-w", str(pcap)],
                                stdout=subprocess.DEVNULL, stderr=errf)
    try:
        deadline = time.monotonic() + 10
        while "listening on" not in err.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tcpdump did not start: {err.read_text()}")
            time.sleep(0.05)
        yield proc, pcap
    finally:
        interrupt(proc, 10)


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """(timestamp, frame) of each packet in a classic pcap file (what tcpdump -w writes)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian, scale = {0xa1b2c3d4: ("<", 1e-6), 0xa1b23c4d: ("<", 1e-9),
                     0xd4c3b2a1: (">", 1e-6), 0x4d3cb2a1: (">", 1e-9)}[magic]
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        out.append((sec + frac * scale, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def describe(frame: bytes) -> str:
    ethertype = struct.unpack(">H", frame[12:14])[0]
    if ethertype == 0x0806:
        return "ARP " + ".".join(map(str, frame[38:42]))
    if ethertype == 0x0800:
        ip = frame[14:]
        proto, dst = ip[9], ".".join(map(str, ip[16:20]))
        port = struct.unpack(">H", ip[(ip[0] & 15) * 4 + 2:(ip[0] & 15) * 4 + 4])[0] if proto in (6, 17) else 0
        return f"IPv4 proto {proto} to {dst}:{port}"
    return f"ethertype 0x{ethertype:04x}"


def test_main_flows_send_no_packet(netns, capture, tmp_path):
    proc, pcap = capture
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    flows = netns.run(sys.executable, __file__, "flows", str(home), timeout=180)
    assert flows.returncode == 0, f"the flows failed inside the namespace:\n{flows.stdout}\n{flows.stderr}"
    time.sleep(0.5)  # anything Hearth left in flight reaches the capture

    control_start = time.time()
    control = netns.run(sys.executable, __file__, "control", netns.host_ip, timeout=30)
    assert control.returncode == 0, control.stderr
    time.sleep(0.5)
    interrupt(proc, 10)

    packets = read_pcap(pcap)
    during_flows = [describe(f) for ts, f in packets if ts < control_start]
    assert during_flows == [], f"packets left the namespace while Hearth ran: {during_flows}"
    control_seen = [d for _, f in packets if (d := describe(f)).endswith(f"{netns.host_ip}:{CONTROL_PORT}")]
    assert control_seen, ("the positive control (a TCP connect from the namespace) was not captured, "
                          f"so the capture proves nothing; captured: {[describe(f) for _, f in packets]}")
