"""History for hearth serve: finished chats through the OpenAI and Ollama APIs are stored,
encrypted, in the vault and show up in `hearth history list/show`; a conversation that comes
back with its earlier turns stays one conversation; `--no-history` keeps nothing; a vault with
a passphrase needs HEARTH_PASSPHRASE (serve never prompts) or fails at start with a message
that says so. Each test has its own HEARTH_HOME.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from test_server import BIN, MODEL, MODEL_DIR, MODEL_ID, Server

openai = pytest.importorskip("openai")

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]

CANARY = "walrus-canary-5127 my secret diary"


def hearth(home: Path, *args, env: dict | None = None):
    e = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(MODEL_DIR), HEARTH_TEST_WEAK_KDF="1")
    e.pop("HEARTH_PASSPHRASE", None)
    e.update(env or {})
    return subprocess.run([str(BIN), *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, env=e)


def ok(r) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout


def vault_bytes(home: Path) -> bytes:
    return b"".join((home / n).read_bytes() if (home / n).exists() else b""
                    for n in ["vault.db", "vault.db-wal"])


def serve(home: Path, monkeypatch, *args: str, passphrase: str | None = None) -> Server:
    monkeypatch.delenv("HEARTH_PASSPHRASE", raising=False)
    if passphrase is not None:
        monkeypatch.setenv("HEARTH_PASSPHRASE", passphrase)
    return Server(home, "--ctx", "512", "--parallel", "1", *args)


def stop(s: Server):
    s.stop()
    assert s.proc.returncode == 0, s.proc.stderr.read()


def test_chats_are_stored_encrypted_and_listed(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    s = serve(home, monkeypatch)
    try:
        cl = s.client()
        first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": CANARY}]
        r = cl.chat.completions.create(model=MODEL_ID, messages=first, max_tokens=8, temperature=0)
        answer = r.choices[0].message.content
        # The same conversation comes back with its answer and a new question (as chat UIs do):
        # appended to the stored conversation, not a new one.
        follow = first + [{"role": "assistant", "content": answer}, {"role": "user", "content": "And then?"}]
        stream = cl.chat.completions.create(model=MODEL_ID, messages=follow, max_tokens=8, temperature=0,
                                            stream=True)
        second = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        # An Ollama chat (streamed NDJSON) is a conversation of its own.
        status, _, _ = s.request("POST", "/api/chat", json.dumps(
            {"model": MODEL_ID, "messages": [{"role": "user", "content": "Ollama says hi"}],
             "options": {"temperature": 0, "num_predict": 4}}))
        assert status == 200
        # Completions are not chats: nothing stored for them.
        cl.completions.create(model=MODEL_ID, prompt="plain completion text", max_tokens=3)
    finally:
        stop(s)

    assert CANARY.encode() not in vault_bytes(home)
    listing = ok(hearth(home, "history", "list"))
    assert CANARY[:20] in listing and "Ollama says hi" in listing
    assert "plain completion" not in listing
    doc = json.loads(ok(hearth(home, "history", "export", "--format", "json")))
    convs = {c["title"]: c for c in doc["conversations"]}
    assert len(convs) == 2
    conv = next(c for t, c in convs.items() if t.startswith(CANARY[:20]))
    assert conv["system"] == "Be brief." and conv["model"] == "file:" + MODEL.name
    assert [(m["role"], m["text"]) for m in conv["messages"]] == [
        ("user", CANARY), ("assistant", answer), ("user", "And then?"), ("assistant", second)]
    shown = ok(hearth(home, "history", "show", str(conv["id"])))
    assert f"[user] {CANARY}" in shown and "[assistant]" in shown
    audit = (home / "audit.log").read_text()
    assert audit.count("conversation_stored") == 2 and "model_loaded" in audit
    assert CANARY not in audit and "Ollama says hi" not in audit
    assert "ok (" in ok(hearth(home, "audit", "verify"))


def test_no_history_keeps_nothing(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    s = serve(home, monkeypatch, "--no-history")
    try:
        s.client().chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": CANARY}], max_tokens=4, temperature=0)
        status, _, _ = s.request("POST", "/api/chat", json.dumps(
            {"model": MODEL_ID, "stream": False, "messages": [{"role": "user", "content": CANARY}],
             "options": {"num_predict": 3}}))
        assert status == 200
    finally:
        stop(s)
    assert not (home / "vault.db").exists() and not (home / "audit.log").exists()
    assert "no saved conversations" in ok(hearth(home, "history", "list"))


def test_passphrase_vault_needs_hearth_passphrase(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    ok(hearth(home, "vault", "passwd", env={"HEARTH_NEW_PASSPHRASE": "pw-serve"}))
    # Without the passphrase serve refuses to start (it never prompts) and says what to do.
    r = hearth(home, "serve", "--port", "0")
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("hearth: error:") and "HEARTH_PASSPHRASE" in err and "--no-history" in err
    # A wrong one fails too, with nothing written.
    r = hearth(home, "serve", "--port", "0", env={"HEARTH_PASSPHRASE": "wrong"})
    assert r.returncode == 1 and "hearth: error:" in r.stderr
    # With it, the chat is stored and readable with the same passphrase.
    monkeypatch.setenv("HEARTH_TEST_WEAK_KDF", "1")
    s = serve(home, monkeypatch, passphrase="pw-serve")
    try:
        s.client().chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": CANARY}], max_tokens=4, temperature=0)
    finally:
        stop(s)
    assert CANARY[:20] in ok(hearth(home, "history", "list", env={"HEARTH_PASSPHRASE": "pw-serve"}))
    # --no-history starts without the passphrase.
    s = serve(home, monkeypatch, "--no-history")
    stop(s)
