"""Model signatures and the config file through the CLI: keygen, sign, trust, the `signed`
column of `hearth list`, `hearth verify`, and require_signed = true refusing unsigned,
untrusted, tampered, copied and out-of-store models with a message that says how to fix it.
Also the config file's keys as the commands use them. Tiny random-weight models, each test
in its own HEARTH_HOME and config file."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_cli import BIN, expect_error, tiny_llama

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

KEY_RE = re.compile(r"ed25519:[0-9a-f]{64}")


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


def hearth(home: Path, *args, config: str | None = None, timeout: float = 120):
    cfg = home / "config.toml"
    if config is not None:
        cfg.write_text(config)
    env = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(home / "models"),
               HEARTH_CONFIG=str(cfg))
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


def out(r) -> str:
    return r.stdout.decode() + r.stderr.decode()


def signed_column(home: Path, name: str) -> str:
    r = hearth(home, "list")
    assert r.returncode == 0, out(r)
    lines = r.stdout.decode().splitlines()
    cols = lines[0].split()
    assert "SIGNED" in cols, lines[0]
    start = lines[0].index("SIGNED")
    for line in lines[1:]:
        if line.split()[0] == name:
            return line[start:].split()[0]
    raise AssertionError(f"{name} not listed: {r.stdout.decode()}")


def setup_model(home: Path, tmp_path: Path, name: str = "tiny") -> Path:
    m = tiny_llama(tmp_path / "tiny.gguf")
    r = hearth(home, "import", m, "--name", name)
    assert r.returncode == 0, out(r)
    return m


def keygen(home: Path) -> str:
    r = hearth(home, "keygen")
    assert r.returncode == 0, out(r)
    key = r.stdout.decode().strip()
    assert KEY_RE.fullmatch(key), key
    return key


def test_keygen_sign_trust_and_list_column(home, tmp_path):
    setup_model(home, tmp_path)
    assert signed_column(home, "tiny") == "unsigned"
    r = hearth(home, "sign", "tiny")
    expect_error(r, "hearth keygen")
    key = keygen(home)
    assert (home / "signing.key").stat().st_mode & 0o777 == 0o600
    assert key not in (home / "signing.key").read_text()  # the secret, not the public key
    r = hearth(home, "keygen")
    expect_error(r, "--force")
    r = hearth(home, "sign", "tiny")
    assert r.returncode == 0 and key in out(r), out(r)
    assert (home / "manifests" / "tiny.sig").exists()
    assert signed_column(home, "tiny") == "untrusted"
    r = hearth(home, "trust", "add", key, "--name", "me")
    assert r.returncode == 0, out(r)
    assert signed_column(home, "tiny") == "trusted"
    r = hearth(home, "trust", "list")
    assert key in r.stdout.decode() and "me" in r.stdout.decode()
    r = hearth(home, "verify", "tiny")
    assert r.returncode == 0 and "signature: trusted, by " + key in out(r), out(r)
    r = hearth(home, "trust", "rm", "me")
    assert r.returncode == 0, out(r)
    assert signed_column(home, "tiny") == "untrusted"
    r = hearth(home, "rm", "tiny")
    assert r.returncode == 0 and not (home / "manifests" / "tiny.sig").exists()


def test_trust_rejects_bad_keys(home):
    for bad in ["ed25519:abc", "abcd" * 16, "ed25519:" + "g" * 64, "rsa:" + "0" * 64]:
        expect_error(hearth(home, "trust", "add", bad), "not a public key")
    expect_error(hearth(home, "trust", "rm", "nobody"), "not a trusted key")
    expect_error(hearth(home, "trust", "add", "ed25519:" + "0" * 64, "--name", "a\x01b"),
                 "control characters")


def test_require_signed_refuses_until_signed_and_trusted(home, tmp_path):
    m = setup_model(home, tmp_path)
    policy = "require_signed = true\n"
    gen = ("generate", "tiny", "-p", "ab", "-n", "1", "--temp", "0")
    r = hearth(home, *gen, config=policy)
    expect_error(r, "model 'tiny' is unsigned and require_signed = true in")
    assert "hearth sign tiny" in out(r)
    key = keygen(home)
    assert hearth(home, "sign", "tiny").returncode == 0
    r = hearth(home, *gen)
    expect_error(r, "is untrusted")
    assert f"hearth trust add {key}" in out(r)
    assert hearth(home, "trust", "add", key).returncode == 0
    r = hearth(home, *gen)
    assert r.returncode == 0, out(r)
    # The same file by path (outside the store) is refused, with how to fix it.
    r = hearth(home, "generate", m, "-p", "ab", "-n", "1")
    expect_error(r, "not a signed model in the store")
    assert "hearth import" in out(r)
    # Without the policy the path loads.
    r = hearth(home, "generate", m, "-p", "ab", "-n", "1", config="require_signed = false\n")
    assert r.returncode == 0, out(r)


def test_tampered_signature_refuses_and_verify_says_invalid(home, tmp_path):
    setup_model(home, tmp_path)
    key = keygen(home)
    assert hearth(home, "trust", "add", key).returncode == 0
    assert hearth(home, "sign", "tiny").returncode == 0
    sig_path = home / "manifests" / "tiny.sig"
    sig = json.loads(sig_path.read_text())
    s = sig["signatures"][0]["signature"]
    sig["signatures"][0]["signature"] = ("1" if s[0] == "0" else "0") + s[1:]
    sig_path.write_text(json.dumps(sig))
    assert signed_column(home, "tiny") == "INVALID"
    r = hearth(home, "verify", "tiny")
    assert r.returncode == 2 and "INVALID" in out(r) and "does not verify" in out(r), out(r)
    r = hearth(home, "generate", "tiny", "-p", "ab", "-n", "1", config="require_signed = true\n")
    expect_error(r, "is INVALID")


def test_signature_of_another_model_does_not_transfer(home, tmp_path):
    setup_model(home, tmp_path, "a")
    setup_model(home, tmp_path, "b")  # the same bytes under another name
    key = keygen(home)
    assert hearth(home, "trust", "add", key).returncode == 0
    assert hearth(home, "sign", "a").returncode == 0
    shutil.copy(home / "manifests" / "a.sig", home / "manifests" / "b.sig")
    assert signed_column(home, "a") == "trusted"
    assert signed_column(home, "b") == "INVALID"
    r = hearth(home, "generate", "b", "-p", "ab", "-n", "1", config="require_signed = true\n")
    expect_error(r, "model 'b' is INVALID")


def test_new_version_needs_a_new_signature(home, tmp_path):
    setup_model(home, tmp_path)
    key = keygen(home)
    assert hearth(home, "trust", "add", key).returncode == 0
    assert hearth(home, "sign", "tiny").returncode == 0
    m2 = tiny_llama(tmp_path / "tiny2.gguf", ctx=128)  # other bytes
    assert hearth(home, "import", m2, "--name", "tiny").returncode == 0
    assert signed_column(home, "tiny") == "unsigned"
    assert hearth(home, "rollback", "tiny").returncode == 0
    assert signed_column(home, "tiny") == "trusted"


def test_bad_config_is_one_line_naming_key_and_line(home, tmp_path):
    setup_model(home, tmp_path)
    r = hearth(home, "generate", "tiny", "-p", "ab", "-n", "1",
               config="threads = 2\n\n[serve]\nprot = 80\n")
    expect_error(r, "config.toml:4: key 'serve.prot' is not a setting")
    r = hearth(home, "generate", "tiny", "-p", "ab", "-n", "1", config="require_signed = 'yes'\n")
    expect_error(r, "config.toml:1: key 'require_signed' must be true or false, not a string")
    r = hearth(home, "generate", "tiny", "-p", "ab", "-n", "1", config="ctx = [\n")
    expect_error(r, "not valid TOML")
    r = hearth(home, "doctor", "--no-hash", config="bogus = 1\n")
    assert "key 'bogus' is not a setting" in out(r), out(r)


def test_doctor_names_the_config_file_and_policy(home):
    cfg = home / "config.toml"
    r = hearth(home, "doctor", "--no-hash")
    assert f"{cfg} (not present: every default)" in out(r), out(r)
    assert "not required (require_signed = false)" in out(r)
    r = hearth(home, "doctor", "--no-hash", config="require_signed = true\n")
    assert f"{cfg} (read)" in out(r) and "REQUIRED (require_signed = true)" in out(r), out(r)
    assert "only `hearth pull URL`" in out(r)


def test_default_model_from_config(home, tmp_path):
    setup_model(home, tmp_path)
    (home / "models").mkdir()  # empty: no built-in default model
    r = hearth(home, "generate", "-p", "ab", "-n", "1", config="")
    expect_error(r, "default model")
    r = hearth(home, "generate", "-p", "ab", "-n", "1", "--temp", "0",
               config='default_model = "tiny"\n')
    assert r.returncode == 0, out(r)


def serve_banner(home: Path, *flags, config: str) -> str:
    (home / "config.toml").write_text(config)
    env = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(home / "models"),
               HEARTH_CONFIG=str(home / "config.toml"))
    p = subprocess.Popen([str(BIN), "serve", "tiny", *flags], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 60
        text = ""
        while time.time() < deadline and "serving" not in text:
            line = p.stdout.readline().decode()
            if not line:
                break
            text += line
        return text
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)


def test_serve_takes_port_parallel_threads_ctx_from_config_and_flags_win(home, tmp_path):
    setup_model(home, tmp_path)
    cfg = "ctx = 32\nthreads = 1\n[serve]\nport = 0\nparallel = 1\n"
    text = serve_banner(home, config=cfg)
    assert "(1 slots x 1 threads" in text and "context 32 tokens" in text, text
    assert not re.search(r":11435/", text), text  # port 0 from the config: any free port
    text = serve_banner(home, "--parallel", "2", "--ctx", "16", config=cfg)
    assert "(2 slots" in text and "context 16 tokens" in text, text
