"""The model store: import checks and hashes, list/verify/rm/rollback, tampering refuses to load,
names and manifests cannot reach outside the store. Uses tiny random-weight models, each test
in its own HEARTH_HOME."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from test_cli import BIN, tiny_llama

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    h.mkdir()
    return h


def hearth(home: Path, *args, stdin: bytes = b""):
    env = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(home / "models"))
    return subprocess.run([str(BIN), *map(str, args)], input=stdin, capture_output=True, timeout=120, env=env)


def out(r) -> str:
    return r.stdout.decode() + r.stderr.decode()


def test_import_hashes_and_lists(home, tmp_path):
    m = tiny_llama(tmp_path / "tiny.gguf")
    r = hearth(home, "import", m, "--name", "tiny")
    assert r.returncode == 0, out(r)
    sha = hashlib.sha256(m.read_bytes()).hexdigest()
    assert sha in r.stdout.decode()
    assert (home / "blobs" / f"sha256-{sha}").read_bytes() == m.read_bytes()
    man = json.loads((home / "manifests" / "tiny.json").read_text())
    v = man["versions"][-1]
    assert (v["name"] if "name" in v else man["name"]) == "tiny"
    assert v["sha256"] == sha and v["size"] == m.stat().st_size and v["architecture"] == "llama"
    assert v["quantization"] == "F32" and v["source"] == str(m)
    r = hearth(home, "list")
    assert r.returncode == 0 and "tiny" in r.stdout.decode() and "yes" in r.stdout.decode()
    r = hearth(home, "generate", "tiny", "-p", "ab", "-n", "2", "--temp", "0")
    assert r.returncode == 0, out(r)


def test_import_rejects_non_gguf_and_bad_names(home, tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a model at all")
    r = hearth(home, "import", bad, "--name", "x")
    assert r.returncode == 1 and "GGUF" in out(r)
    m = tiny_llama(tmp_path / "tiny.gguf")
    for name in ["../evil", "a/b", "..", ".hidden", "x" * 65]:
        r = hearth(home, "import", m, "--name", name)
        assert r.returncode != 0, name
    assert not (home / "evil.json").exists() and not (home / "manifests" / "evil.json").exists()


def test_tampered_model_refuses_to_load_until_it_matches(home, tmp_path):
    m = tiny_llama(tmp_path / "tiny.gguf")
    assert hearth(home, "import", m, "--name", "tiny").returncode == 0
    sha = hashlib.sha256(m.read_bytes()).hexdigest()
    blob = home / "blobs" / f"sha256-{sha}"
    original = blob.read_bytes()
    os.chmod(blob, 0o600)
    data = bytearray(original)
    data[-1] ^= 0x01  # a weight byte: the file still parses
    blob.write_bytes(bytes(data))
    r = hearth(home, "generate", "tiny", "-p", "ab", "-n", "1")
    assert r.returncode == 1 and "no longer matches" in out(r)
    assert "NO" in hearth(home, "list").stdout.decode()
    r = hearth(home, "verify", "tiny")
    assert r.returncode == 2 and "CHANGED" in out(r)
    blob.write_bytes(original)  # restored: still refused until verified
    assert hearth(home, "generate", "tiny", "-p", "ab", "-n", "1").returncode == 1
    r = hearth(home, "verify")
    assert r.returncode == 0 and "tiny: ok" in out(r)
    assert hearth(home, "generate", "tiny", "-p", "ab", "-n", "1").returncode == 0


def test_new_version_and_rollback(home, tmp_path):
    a = tiny_llama(tmp_path / "a.gguf", n_layer=1)
    b = tiny_llama(tmp_path / "b.gguf", n_layer=2)
    sha_a = hashlib.sha256(a.read_bytes()).hexdigest()
    sha_b = hashlib.sha256(b.read_bytes()).hexdigest()
    assert hearth(home, "import", a, "--name", "m").returncode == 0
    r = hearth(home, "import", b, "--name", "m")
    assert r.returncode == 0 and "version 2" in r.stdout.decode()
    assert (home / "blobs" / f"sha256-{sha_a}").exists()
    r = hearth(home, "rollback", "m")
    assert r.returncode == 0 and "version 1" in r.stdout.decode()
    assert not (home / "blobs" / f"sha256-{sha_b}").exists()
    r = hearth(home, "rollback", "m")
    assert r.returncode == 1 and "no previous version" in out(r)
    assert hearth(home, "rm", "m").returncode == 0
    assert not (home / "blobs" / f"sha256-{sha_a}").exists()
    assert hearth(home, "rm", "m").returncode == 1


def test_manifest_pointing_outside_the_store_is_rejected(home, tmp_path):
    m = tiny_llama(tmp_path / "tiny.gguf")
    assert hearth(home, "import", m, "--name", "tiny").returncode == 0
    p = home / "manifests" / "tiny.json"
    man = json.loads(p.read_text())
    man["versions"][-1]["blob"] = "../../../etc/passwd"
    p.write_text(json.dumps(man))
    r = hearth(home, "generate", "tiny", "-p", "ab", "-n", "1")
    assert r.returncode == 1 and "points elsewhere" in out(r)
    man["versions"][-1]["blob"] = "blobs/sha256-" + man["versions"][-1]["sha256"]
    man["versions"][-1]["sha256"] = "../../x"
    p.write_text(json.dumps(man))
    r = hearth(home, "verify", "tiny")
    assert r.returncode == 1 and "64 hex" in out(r)
