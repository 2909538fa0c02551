"""The sandbox from outside: `hearth serve` and `hearth run -p` confine themselves once start-up
is done and still answer; the server reports its sandbox in the startup line and GET /health;
a kernel without Landlock or seccomp is said in one line, and --require-sandbox (or the
config's require_sandbox) makes it fatal.

What the kernel supports is asked here directly (landlock_create_ruleset, seccomp), so the
expectations follow the machine. A kernel without a feature is simulated by starting Hearth
under a small seccomp filter (installed in the child before exec) that makes that feature's
system call fail with ENOSYS, as it does on a kernel built without it.
"""
from __future__ import annotations

import ctypes
import http.client
import json
import os
import re
import signal
import struct
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

# x86_64 system-call numbers and the seccomp/prctl constants used below.
NR_SECCOMP = 317
NR_LANDLOCK_CREATE_RULESET = 444
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
ENOSYS = 38

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def kernel_landlock_abi() -> int:
    abi = libc.syscall(ctypes.c_long(NR_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                       ctypes.c_uint32(1))
    return abi if abi > 0 else 0


def kernel_has_seccomp() -> bool:
    action = ctypes.c_uint32(SECCOMP_RET_ERRNO)
    return libc.syscall(ctypes.c_long(NR_SECCOMP), ctypes.c_uint(SECCOMP_GET_ACTION_AVAIL),
                        ctypes.c_uint(0), ctypes.byref(action)) == 0


ABI = kernel_landlock_abi()
SECCOMP = kernel_has_seccomp()
FULL = ABI >= 4 and SECCOMP


def without(nr: int):
    """A preexec_fn: in the child, make system call `nr` fail with ENOSYS from now on."""
    def install():
        # sock_filter {u16 code; u8 jt; u8 jf; u32 k}: load the call number, compare, answer.
        prog = b"".join([
            struct.pack("HBBI", 0x20, 0, 0, 0),  # BPF_LD|BPF_W|BPF_ABS: seccomp_data.nr
            struct.pack("HBBI", 0x15, 0, 1, nr),  # BPF_JMP|BPF_JEQ|BPF_K
            struct.pack("HBBI", 0x06, 0, 0, SECCOMP_RET_ERRNO | ENOSYS),  # BPF_RET
            struct.pack("HBBI", 0x06, 0, 0, SECCOMP_RET_ALLOW),
        ])
        buf = ctypes.create_string_buffer(prog, len(prog))

        class Fprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        fprog = Fprog(len(prog) // 8, ctypes.addressof(buf))
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
                libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog)) != 0:
            raise OSError(ctypes.get_errno(), "cannot install the test's seccomp filter")
    return install


def env_for(home: Path, **extra) -> dict:
    return dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(MODEL_DIR), **extra)


def run(home: Path, *args: str, preexec=None, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], env=env_for(home, **extra), capture_output=True,
                          text=True, timeout=120, preexec_fn=preexec)


def sandbox_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if "sandbox" in l]


class Serve:
    """`hearth serve --port 0` with its startup lines read."""

    def __init__(self, home: Path, *args: str, preexec=None):
        self.proc = subprocess.Popen([str(BIN), "serve", "--port", "0", "--parallel", "1", *args],
                                     env=env_for(home), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
        self.lines = [self.proc.stdout.readline() for _ in range(3)]
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", self.lines[0])
        assert m, f"no URL in {self.lines!r}; stderr: {self.stop_and_stderr()}"
        self.port = int(m.group(1))
        self.key = (home / "api_key").read_text().strip()

    def request(self, method: str, path: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Authorization": f"Bearer {self.key}",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, json.loads(data)

    def chat(self) -> str:
        status, body = self.request("POST", "/v1/chat/completions", {
            "model": MODEL.stem, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]})
        assert status == 200, body
        return body["choices"][0]["message"]["content"]

    def status_of_process(self) -> dict:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return dict(l.split(":\t", 1) for l in text.splitlines() if ":\t" in l)

    def stop_and_stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read()


def test_serve_confined_keeps_serving_and_reports_its_sandbox(tmp_path):
    srv = Serve(tmp_path)
    try:
        assert srv.lines[1].startswith("hearth: sandbox: "), srv.lines
        status, health = srv.request("GET", "/health")
        assert status == 200
        sb = health["sandbox"]
        assert sb["landlock_abi"] == ABI
        assert sb["files_restricted"] == (ABI > 0)
        assert sb["tcp_refused"] == (ABI >= 4)
        assert sb["seccomp"] == SECCOMP
        assert (sb["missing"] == "") == FULL, sb
        proc = srv.status_of_process()
        if SECCOMP:
            assert proc["Seccomp"].strip() == "2" and proc["NoNewPrivs"].strip() == "1", proc
        # Confined, it still accepts new connections on the socket bound before and answers.
        first, second = srv.chat(), srv.chat()
        assert first.strip() and second.strip()
        assert srv.request("GET", "/health")[0] == 200
    finally:
        stderr = srv.stop_and_stderr()
    assert srv.proc.returncode == 0, stderr
    assert len(sandbox_lines(stderr)) == (0 if FULL else 1), stderr


def test_run_prompt_confined_answers_and_audits_the_sandbox(tmp_path):
    flags = ["--require-sandbox"] if FULL else []
    r = run(tmp_path, "run", "-p", "Say hello.", "-n", "8", "--temp", "0", *flags,
            HEARTH_PASSPHRASE="")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert len(sandbox_lines(r.stderr)) == (0 if FULL else 1), r.stderr
    audit = run(tmp_path, "audit", "show", HEARTH_PASSPHRASE="")
    events = [json.loads(l[l.index("{"):]) for l in audit.stdout.splitlines()
              if " sandbox " in l]
    assert events == [{"confined": ABI > 0, "landlock_abi": ABI, "seccomp": SECCOMP,
                       "tcp_refused": ABI >= 4}], audit.stdout


def test_doctor_shows_the_kernels_sandbox(tmp_path):
    r = run(tmp_path, "doctor", "--no-hash")
    assert r.returncode == 0, r.stdout + r.stderr
    landlock = next(l for l in r.stdout.splitlines() if l.strip().startswith("landlock"))
    seccomp = next(l for l in r.stdout.splitlines() if l.strip().startswith("seccomp"))
    state = next(l for l in r.stdout.splitlines() if l.strip().startswith("state"))
    assert (f"ABI {ABI}:" in landlock) if ABI else ("NOT AVAILABLE" in landlock)
    assert ("network rules enforced" in landlock) == (ABI >= 4)
    assert ("available: seccomp refuses (EPERM)" in seccomp) == SECCOMP
    assert ("complete" == state.split(None, 1)[1]) == FULL, state


@pytest.fixture
def simulated():
    """Skips when this kernel cannot install the test's own filter."""
    if not SECCOMP:
        pytest.skip("no seccomp in this kernel: the missing features cannot be simulated")


@pytest.mark.usefixtures("simulated")
@pytest.mark.parametrize("nr,missing", [(NR_LANDLOCK_CREATE_RULESET, "no Landlock in this kernel"),
                                        (NR_SECCOMP, "no seccomp filter")])
def test_missing_feature_is_one_line_and_require_sandbox_refuses(tmp_path, nr, missing):
    r = run(tmp_path, "run", "--no-history", "-p", "Say hello.", "-n", "4", preexec=without(nr))
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    lines = sandbox_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("hearth: note: sandbox incomplete: "), r.stderr
    assert missing in lines[0]

    r = run(tmp_path, "run", "--no-history", "--require-sandbox", "-p", "Say hello.", "-n", "4",
            preexec=without(nr))
    assert r.returncode != 0 and r.stdout == "", r.stdout
    assert re.fullmatch(r"hearth: error: --require-sandbox: .*" + missing + r".*refusing to run "
                        r"without the full sandbox\n", r.stderr), r.stderr

    config = tmp_path / "config.toml"
    config.write_text("require_sandbox = true\n")
    r = run(tmp_path, "run", "--no-history", "-p", "Say hello.", "-n", "4", preexec=without(nr),
            HEARTH_CONFIG=str(config))
    assert r.returncode != 0 and f"require_sandbox = true in {config}" in r.stderr, r.stderr

    srv = subprocess.run([str(BIN), "serve", "--port", "0", "--require-sandbox"],
                         env=env_for(tmp_path), capture_output=True, text=True, timeout=60,
                         preexec_fn=without(nr))
    assert srv.returncode != 0 and "hearth: error: --require-sandbox: " in srv.stderr, srv.stderr
    assert "serving" not in srv.stdout

    doctor = run(tmp_path, "doctor", "--no-hash", preexec=without(nr))
    assert "INCOMPLETE: " in doctor.stdout and missing in doctor.stdout, doctor.stdout


@pytest.mark.usefixtures("simulated")
def test_serve_without_landlock_still_serves_with_seccomp(tmp_path):
    srv = Serve(tmp_path, preexec=without(NR_LANDLOCK_CREATE_RULESET))
    try:
        sb = srv.request("GET", "/health")[1]["sandbox"]
        assert sb["landlock_abi"] == 0 and not sb["files_restricted"] and sb["seccomp"], sb
        assert "no Landlock" in sb["missing"]
        assert srv.chat().strip()
    finally:
        stderr = srv.stop_and_stderr()
    lines = sandbox_lines(stderr)
    assert len(lines) == 1 and "no Landlock in this kernel" in lines[0], stderr
