"""History, vault, audit and doctor from the command line: `hearth run` keeps each finished turn
encrypted unless --no-history; list/show/export/forget; passphrase handling; the audit log
catches tampering; doctor reports. Tiny random-weight model, each test in its own HEARTH_HOME."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from test_cli import BIN, tiny_llama

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")
CANARY = "zebra-canary-4411 my bank PIN"


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("m") / "tiny.gguf")


def hearth(home: Path, *args, env: dict | None = None):
    e = dict(os.environ, HEARTH_HOME=str(home), HEARTH_TEST_WEAK_KDF="1")
    e.pop("HEARTH_PASSPHRASE", None)
    e.update(env or {})
    return subprocess.run([str(BIN), *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=120, env=e)


def ok(r) -> str:
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def vault_bytes(home: Path) -> bytes:
    """The database and its WAL; a missing WAL reads as empty (the -shm file is an index SQLite
    rebuilds, with no records)."""
    return b"".join((home / n).read_bytes() if (home / n).exists() else b"" for n in ["vault.db", "vault.db-wal"])


def test_run_stores_turns_encrypted_and_no_history_keeps_nothing(home, model):
    ok(hearth(home, "run", model, "-p", CANARY, "-n", "3", "--no-history"))
    assert not (home / "vault.db").exists()
    assert "no saved conversations" in ok(hearth(home, "history", "list"))
    r = hearth(home, "history", "export")
    assert r.returncode == 1 and b"no vault" in r.stderr
    assert not (home / "vault.db").exists()  # reading commands leave no vault behind
    ok(hearth(home, "run", model, "-p", CANARY, "-n", "3", "--temp", "0"))
    assert CANARY.encode() not in vault_bytes(home)
    listing = ok(hearth(home, "history", "list"))
    assert CANARY[:20] in listing
    shown = ok(hearth(home, "history", "show", "1"))
    assert f"[user] {CANARY}" in shown and "[assistant]" in shown
    doc = json.loads(ok(hearth(home, "history", "export", "--format", "json")))
    assert doc["format"] == "hearth-history-export-v1"
    (conv,) = doc["conversations"]
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][0]["text"] == CANARY and conv["model"] == "file:tiny.gguf"
    out = home / "export.json"
    ok(hearth(home, "history", "export", "-o", out))
    assert json.loads(out.read_text())["conversations"][0]["id"] == 1 and (out.stat().st_mode & 0o777) == 0o600
    audit = (home / "audit.log").read_text()
    assert CANARY not in audit and "model_loaded" in audit and "history_exported" in audit
    assert "ok (" in ok(hearth(home, "audit", "verify"))


def test_forget_and_forget_all(home, model):
    for _ in range(3):
        ok(hearth(home, "run", model, "-p", CANARY, "-n", "2"))
    assert "forgot 1 conversation(s), 2 message(s)" in ok(hearth(home, "history", "forget", "2"))
    ids = [l.split()[0] for l in ok(hearth(home, "history", "list")).splitlines()[1:]]
    assert sorted(ids) == ["1", "3"]
    r = hearth(home, "history", "forget", "2")
    assert r.returncode == 1 and b"no conversation 2" in r.stderr
    ok(hearth(home, "history", "forget", "--all"))
    assert "no saved conversations" in ok(hearth(home, "history", "list"))
    assert hearth(home, "history", "forget").returncode == 1  # neither id nor --all


def test_passphrase_wrong_missing_and_passwd(home, model):
    ok(hearth(home, "run", model, "-p", "hello", "-n", "2"))
    assert (home / "vault.key").exists()
    ok(hearth(home, "vault", "passwd", env={"HEARTH_NEW_PASSPHRASE": "pw1"}))
    assert not (home / "vault.key").exists()
    before = vault_bytes(home) + (home / "audit.log").read_bytes()
    r = hearth(home, "run", model, "-p", "hello", "-n", "2", env={"HEARTH_PASSPHRASE": "nope"})
    assert r.returncode == 1 and b"wrong passphrase" in r.stderr and r.stdout == b""
    r = hearth(home, "history", "list")  # no terminal, no variable
    assert r.returncode == 1 and b"HEARTH_PASSPHRASE" in r.stderr
    assert vault_bytes(home) + (home / "audit.log").read_bytes() == before
    assert "hello" in ok(hearth(home, "history", "list", env={"HEARTH_PASSPHRASE": "pw1"}))
    ok(hearth(home, "run", model, "-p", "again", "-n", "2", env={"HEARTH_PASSPHRASE": "pw1"}))
    ok(hearth(home, "vault", "passwd", env={"HEARTH_PASSPHRASE": "pw1", "HEARTH_NEW_PASSPHRASE": ""}))
    assert (home / "vault.key").stat().st_mode & 0o777 == 0o600
    assert "again" in ok(hearth(home, "history", "list"))


def test_audit_verify_catches_edits(home, model):
    ok(hearth(home, "run", model, "-p", "one", "-n", "2"))
    ok(hearth(home, "run", model, "-p", "two", "-n", "2"))
    log = home / "audit.log"
    good = log.read_bytes()
    lines = good.splitlines(keepends=True)
    assert len(lines) >= 5
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    for bad in [bytes(flipped), b"".join(lines[:2] + lines[3:]), b"".join([lines[0], lines[2], lines[1]] + lines[3:]),
                b"".join(lines[:-1])]:
        log.write_bytes(bad)
        r = hearth(home, "audit", "verify")
        assert r.returncode == 2 and b"TAMPERED" in r.stdout, bad
    log.write_bytes(good)
    ok(hearth(home, "audit", "verify"))


def test_doctor(home, model):
    ok(hearth(home, "import", model, "--name", "tiny"))
    ok(hearth(home, "run", "tiny", "-p", "hi", "-n", "2"))
    out = ok(hearth(home, "doctor"))
    assert "1 conversations" in out and "key file" in out and "mode 0600" in out
    assert "tiny" in out and "matches sha256" in out and "telemetry" in out and "127.0.0.1" in out
    assert "sha256:" in (home / "audit.log").read_text()  # the store model is logged by hash
    os.chmod(home / "vault.key", 0o644)
    r = hearth(home, "doctor")
    assert r.returncode == 2 and b"TOO OPEN" in r.stdout


def test_run_confined_still_answers_and_stores(home, model):
    doctor = hearth(home, "doctor", "--no-hash").stdout.decode()
    r = hearth(home, "run", model, "-p", "hi", "-n", "2", "--require-sandbox")
    if "INCOMPLETE" in doctor:  # a kernel without Landlock, its network rules or seccomp
        assert r.returncode == 1 and b"--require-sandbox" in r.stderr
        return
    assert re.search(r"state +complete", doctor)
    ok(r)  # the turn is stored after confinement: the data dir stays writable
    assert "hi" in ok(hearth(home, "history", "list"))
    assert '"confined":true' in (home / "audit.log").read_text()
