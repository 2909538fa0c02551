"""No prompt or answer text in any log unless --log-content: a canary phrase, random per run,
goes through `hearth run -p` and through `hearth serve`'s OpenAI and Ollama chats (streamed
and not); then every log and every file Hearth may write is searched for it, raw bytes:
run's stderr, serve's stdout and stderr, and every file under HEARTH_HOME and under a fresh
HOME (config, cache, state: the vault db and its WAL, the audit log, the key files) while
serve still runs (the WAL is live) and after it stopped.

The vault must hold the conversation (`hearth history export` shows the canary), encrypted,
so the raw-byte search of vault.db means something. Positive control: `serve --log-content`
writes the canary and the answer to stderr, in lines marked [content], and nowhere else.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from test_cli import BIN, MODEL

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]


@pytest.fixture
def env(tmp_path):
    """HEARTH_HOME and HOME both fresh: any file Hearth writes lands in one of them."""
    home, user = tmp_path / "hearth_home", tmp_path / "user_home"
    home.mkdir()
    user.mkdir()
    e = {k: v for k, v in os.environ.items() if not k.startswith("XDG_") and k != "HEARTH_PASSPHRASE"}
    e.update(HEARTH_HOME=str(home), HOME=str(user), HEARTH_MODELS=str(MODEL.parent))
    return e


def files_holding(roots: list[Path], needle: bytes) -> list[str]:
    """Every file under `roots` whose raw bytes contain `needle`."""
    hits = []
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink() and needle in p.read_bytes():
                hits.append(str(p))
    return hits


class Serve:
    def __init__(self, env: dict, logs: Path, *flags: str):
        self.out, self.err = logs / "serve.out", logs / "serve.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([str(BIN), "serve", str(MODEL), "--port", "0", "--ctx", "512", *flags],
                                         env=env, stdout=out, stderr=err)
        self.port = None
        for _ in range(600):
            m = re.search(rb"http://127\.0\.0\.1:(\d+)/", self.out.read_bytes())
            if m:
                self.port = int(m.group(1))
                break
            assert self.proc.poll() is None, self.err.read_text()
            time.sleep(0.05)
        assert self.port, f"serve did not start: {self.err.read_text()}"
        self.key = (Path(env["HEARTH_HOME"]) / "api_key").read_text().strip()

    def post(self, path: str, body: dict) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.key}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()

    def chats(self, canary: str) -> list[str]:
        """The canary through each chat endpoint; returns the answers."""
        msgs = [{"role": "system", "content": f"The secret is {canary}."},
                {"role": "user", "content": f"Repeat this code word exactly: {canary}"}]
        model = MODEL.stem
        answers = []
        r = json.loads(self.post("/v1/chat/completions", {"model": model, "messages": msgs, "max_tokens": 16,
                                                          "temperature": 0}))
        answers.append(r["choices"][0]["message"]["content"])
        sse = self.post("/v1/chat/completions", {"model": model, "messages": msgs, "max_tokens": 16,
                                                 "temperature": 0, "stream": True}).decode()
        answers.append("".join(json.loads(l[6:])["choices"][0]["delta"].get("content", "")
                               for l in sse.splitlines() if l.startswith("data: {")))
        r = json.loads(self.post("/api/chat", {"model": model, "messages": msgs, "stream": False,
                                               "options": {"num_predict": 16, "temperature": 0}}))
        answers.append(r["message"]["content"])
        nd = self.post("/api/generate", {"model": model, "prompt": f"Repeat: {canary}",
                                         "options": {"num_predict": 16, "temperature": 0}}).decode()
        answers.append("".join(json.loads(l).get("response", "") for l in nd.splitlines() if l.strip()))
        assert all(a.strip() for a in answers), answers
        return answers

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            assert self.proc.wait(timeout=30) == 0, self.err.read_text()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def test_no_prompt_or_answer_text_in_any_log_unless_log_content(env, tmp_path):
    canary = f"canary-{secrets.token_hex(8)}"
    roots = [Path(env["HEARTH_HOME"]), Path(env["HOME"])]
    logs = tmp_path / "logs"
    logs.mkdir()

    run = subprocess.run([str(BIN), "run", str(MODEL), "-p", f"Remember the code word {canary}.", "-n", "16",
                          "--temp", "0"], env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr.decode()
    (logs / "run.err").write_bytes(run.stderr)
    run_answer = run.stdout.decode().strip()
    assert run_answer

    serve = Serve(env, logs)
    try:
        answers = serve.chats(canary)
        live = files_holding(roots, canary.encode())  # the WAL may be live now
    finally:
        serve.stop()
    assert live == [], f"the canary is in files while serve runs: {live}"
    # Answers long enough not to match by chance (the model may echo the canary: covered above).
    texts = [canary] + [a for a in [run_answer, *answers] if len(a.strip()) >= 12]
    for text in texts:
        hits = files_holding(roots + [logs], text.encode())
        assert hits == [], f"{text!r} found in {hits}"

    # The conversation is in the vault (encrypted), so its absence from the raw bytes means something.
    export = subprocess.run([str(BIN), "history", "export"], env=env, capture_output=True, timeout=60)
    assert export.returncode == 0, export.stderr.decode()
    assert canary in export.stdout.decode()
    assert (Path(env["HEARTH_HOME"]) / "vault.db").exists()

    # Positive control: with --log-content the same search finds prompt and answer in serve's
    # stderr, marked, and still nowhere else.
    control = tmp_path / "control"
    control.mkdir()
    serve = Serve(env, control, "--log-content")
    try:
        answers = serve.chats(canary)
    finally:
        serve.stop()
    assert files_holding([control], canary.encode()) == [str(control / "serve.err")]
    lines = serve.err.read_text().splitlines()
    prompts = [l for l in lines if l.startswith("hearth: [content] ") and " prompt: " in l]
    replies = [l for l in lines if l.startswith("hearth: [content] ") and " answer: " in l]
    assert len(prompts) == 4 and all(canary in l for l in prompts), lines
    logged = [json.loads(l.split(" answer: ", 1)[1]) for l in replies]
    assert logged == answers, (logged, answers)
    assert files_holding(roots, canary.encode()) == []
