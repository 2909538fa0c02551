"""A full disk during import, history export and vault writes: a clear one-line error that names
the cause, nothing half-written, and what was there before still intact.

Each test mounts its own small tmpfs (root only; skipped otherwise) and fills it by writing a
file until ENOSPC; the tmpfs is unmounted in a finally. The tiny random-weight model of
test_cli.py stands in for real models, except for the import that must not fit (the default
model, 94 MB, onto 2 MB).
"""
from __future__ import annotations

import errno
import os
import pty
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from test_cli import BIN, MODEL, fork_pty, read_until, tiny_llama

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs (CI runs as root)"),
]
ENOSPC_WORDS = os.strerror(errno.ENOSPC)  # "No space left on device"


@pytest.fixture
def disk(tmp_path):
    """A 2 MiB tmpfs, unmounted (lazily if something still holds it) when the test ends."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M,mode=0700", "hearth-test", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path) -> Path:
    """Writes zeros until the file system is full; returns the filler (delete it to free)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        block = b"\0" * 4096
        try:
            while True:
                f.write(block)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    assert os.statvfs(disk).f_bavail == 0
    return filler


def hearth(home: Path, *args, timeout: float = 120):
    e = dict(os.environ, HEARTH_HOME=str(home), HEARTH_MODELS=str(home / "models"))
    e.pop("HEARTH_PASSPHRASE", None)
    return subprocess.run([str(BIN), *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, env=e)


def ok(r) -> str:
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def one_line_error(r, *needles: str) -> str:
    err = r.stderr.decode()
    lines = [l for l in err.splitlines() if l.strip()]
    assert r.returncode == 1, f"rc={r.returncode}: {err}"
    assert len(lines) == 1 and lines[0].startswith("hearth: error: "), err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    return err


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)")
def test_import_larger_than_the_free_space(disk, tmp_path):
    home = disk
    tiny = tiny_llama(tmp_path / "tiny.gguf")
    ok(hearth(home, "import", tiny, "--name", "tiny"))
    before = all_files(home)
    free_before = os.statvfs(disk).f_bavail

    r = hearth(home, "import", MODEL, "--name", "big")
    one_line_error(r, ENOSPC_WORDS, "nothing was stored")
    assert r.stdout.strip() == b""
    assert all_files(home) == before, "a temporary, partial blob or manifest was left behind"
    assert os.statvfs(disk).f_bavail == free_before, "space still held by a deleted-but-open file"
    listing = ok(hearth(home, "list"))
    assert "tiny" in listing and "big" not in listing
    assert "ok" in ok(hearth(home, "verify", "tiny")).lower()
    ok(hearth(home, "generate", "tiny", "-p", "ab", "-n", "2", "--temp", "0"))


def test_import_whose_manifest_does_not_fit_leaves_no_blob(disk, tmp_path):
    home = disk
    ok(hearth(home, "import", tiny_llama(tmp_path / "old.gguf", n_layer=2), "--name", "old"))
    before = all_files(home)
    tiny = tiny_llama(tmp_path / "tiny.gguf")
    filler = fill(disk)
    pages = -(-tiny.stat().st_size // 4096)
    os.truncate(filler, filler.stat().st_size - pages * 4096)  # room for the blob, not the manifest

    r = hearth(home, "import", tiny, "--name", "tiny")
    one_line_error(r, ENOSPC_WORDS, "manifests/tiny.json")
    assert all_files(home) == before | {"filler"}, "the blob outlived its failed manifest"
    filler.unlink()
    assert "old" in ok(hearth(home, "list")) and "ok" in ok(hearth(home, "verify", "old")).lower()


def test_history_export_onto_a_full_disk(disk, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    tiny = tiny_llama(tmp_path / "tiny.gguf", ctx=256)
    ok(hearth(home, "run", tiny, "-p", "remember the lighthouse", "-n", "3", "--temp", "0"))
    previous = disk / "export.json"
    previous.write_text('{"previous": "export"}\n')
    filler = fill(disk)

    r = hearth(home, "history", "export", "-o", previous)
    one_line_error(r, ENOSPC_WORDS, str(previous))
    assert previous.read_text() == '{"previous": "export"}\n', "the previous export was damaged"
    r = hearth(home, "history", "export", "-o", disk / "new.json")
    one_line_error(r, ENOSPC_WORDS)
    assert all_files(disk) == {"export.json", "filler"}, "a partial or temporary export was left"

    filler.unlink()
    ok(hearth(home, "history", "export", "-o", disk / "new.json"))
    assert "remember the lighthouse" in (disk / "new.json").read_text()


def test_vault_on_a_full_disk_keeps_every_committed_turn(disk, tmp_path):
    home = disk
    tiny = tiny_llama(tmp_path / "tiny.gguf", ctx=256)
    ok(hearth(home, "run", tiny, "-p", "first turn", "-n", "3", "--temp", "0"))

    # Starting on a full disk: a clear error that names the cause (not "damaged"), before
    # any answer.
    filler = fill(disk)
    r = hearth(home, "run", tiny, "-p", "never stored", "-n", "3")
    err = one_line_error(r, ENOSPC_WORDS)
    assert "damaged" not in err and r.stdout.strip() == b""
    for cmd in (["history", "list"], ["history", "export"]):  # not "nothing saved"
        one_line_error(hearth(home, *cmd), ENOSPC_WORDS)
    filler.unlink()

    # A chat whose turn cannot be written: the failure is reported, the chat goes on.
    pid, fd = fork_pty()
    if pid == 0:
        os.environ.update(HEARTH_HOME=str(home), HEARTH_MODELS=str(home / "models"))
        os.environ.pop("HEARTH_PASSPHRASE", None)
        os.execv(str(BIN), [str(BIN), "run", str(tiny), "-n", "3", "--temp", "0"])
    filler = None
    try:
        read_until(fd, b">>> ", 60)
        os.write(fd, b"second turn\n")
        read_until(fd, b">>> ", 60)
        filler = fill(disk)
        os.write(fd, b"third turn\n")
        out = read_until(fd, b">>> ", 60).decode("utf-8", "replace")
        assert "this turn was not saved to the history" in out and ENOSPC_WORDS in out, out
        os.write(fd, b"/exit\n")
        deadline = time.time() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
                break
            assert time.time() < deadline, "hearth run did not exit"
            time.sleep(0.1)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.close(fd)

    filler.unlink()
    export = ok(hearth(home, "history", "export"))
    assert "first turn" in export and "second turn" in export
    assert "third turn" not in export and "never stored" not in export
    ok(hearth(home, "audit", "verify"))
    with sqlite3.connect(f"file:{home / 'vault.db'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
