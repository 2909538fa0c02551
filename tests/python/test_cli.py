"""The hearth command line as a user meets it: help, bad input, piped prompts, Ctrl-C.

Every bad input must give a one-line `hearth: error: ...` on stderr and a non-zero exit,
never a crash (a negative return code is a signal), a hang, or output passed off as an
answer. Environment as in test_forward.py: HEARTH_BIN, HEARTH_MODELS.
"""
from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import gguf

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("HEARTH_BIN", REPO / "build" / "hearth"))
MODEL_DIR = Path(os.environ.get("HEARTH_MODELS", Path.home() / ".local/share/hearth/models"))
MODEL = MODEL_DIR / "SmolLM2-135M-Instruct.Q4_1.gguf"

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")
needs_model = pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)")


def hearth(*args, stdin: bytes | None = None, timeout: float = 120, env: dict | None = None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([str(BIN), *map(str, args)], input=stdin if stdin is not None else b"",
                          capture_output=True, timeout=timeout, env=e)


def expect_error(r, needle: str) -> None:
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode > 0, f"expected a clean failure, got rc={r.returncode}: {err}"
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines and lines[-1].startswith("hearth: error: "), err
    assert needle in err, f"'{needle}' not in: {err}"
    assert len(lines) == 1, f"error should be one line: {err}"
    assert r.stdout.strip() == b"", f"no partial answer on stdout: {r.stdout!r}"


def tiny_llama(path: Path, *, arch: str = "llama", n_layer: int = 1, ctx: int = 64) -> Path:
    """A small random-weight llama GGUF with a byte-level vocabulary."""
    w = gguf.GGUFWriter(str(path), arch)
    d, ff, vocab = 32, 64, 256 + 3
    w.add_block_count(n_layer)
    w.add_context_length(ctx)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    byte_chars = gguf_bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)] + ["<|im_start|>", "<|im_end|>", "ab"]
    w.add_token_list(tokens)
    w.add_token_types([1] * 256 + [3, 3, 1])
    w.add_token_merges(["a b"])
    w.add_eos_token_id(257)
    w.add_bos_token_id(256)
    rng = np.random.default_rng(1)
    t = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.1
    w.add_tensor("token_embd.weight", t(vocab, d))
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "attn_q.weight", t(d, d))
        w.add_tensor(p + "attn_k.weight", t(16, d))
        w.add_tensor(p + "attn_v.weight", t(16, d))
        w.add_tensor(p + "attn_output.weight", t(d, d))
        w.add_tensor(p + "ffn_norm.weight", np.ones(d, np.float32))
        w.add_tensor(p + "ffn_gate.weight", t(ff, d))
        w.add_tensor(p + "ffn_up.weight", t(ff, d))
        w.add_tensor(p + "ffn_down.weight", t(d, ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def gguf_bytes_to_unicode() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


# ---- help and basic commands -------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["run", "generate", "tokenize", "info", "eval"])
def test_every_command_has_help(cmd):
    r = hearth(cmd, "--help")
    assert r.returncode == 0
    assert b"Usage" in r.stdout or b"usage" in r.stdout.lower()
    assert b"--help" in r.stdout


def test_top_level_help_lists_commands():
    r = hearth("--help")
    assert r.returncode == 0
    for cmd in [b"run", b"generate", b"tokenize", b"info"]:
        assert cmd in r.stdout


def test_unknown_flag_is_a_usage_error():
    r = hearth("run", "--no-such-flag")
    assert r.returncode != 0 and r.returncode < 128


@needs_model
def test_info_describes_the_default_model():
    r = hearth("info")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    for field in ["architecture    llama", "parameters      134.5 M", "context length  8192", "gpt2", "Q4_1", "memory to run"]:
        assert field in out, out


@needs_model
def test_tokenize_ids_only_is_one_line():
    r = hearth("tokenize", "-p", "Hello world", "--ids")
    assert r.returncode == 0
    assert r.stdout.decode().strip() == "19556 905"


@needs_model
def test_same_seed_same_output():
    args = ["generate", "-p", "Once upon a time", "--temp", "0.9", "--seed", "42", "-n", "24", "-c", "256"]
    a, b = hearth(*args), hearth(*args)
    assert a.returncode == 0 and a.stdout == b.stdout and len(a.stdout) > 20
    c = hearth(*args[:-6], "--seed", "43", "-n", "24", "-c", "256")
    assert c.returncode == 0 and c.stdout != a.stdout


@needs_model
def test_piped_prompt_is_answered():
    r = hearth("run", "--temp", "0", "-n", "16", "-c", "512", stdin=b"Say hello.\n")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 0


@needs_model
def test_stop_string_ends_the_answer():
    r = hearth("generate", "-p", "1, 2, 3, 4,", "--temp", "0", "-n", "40", "--stop", "7", "-c", "256")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert "7" not in out and "6" in out, out


# ---- bad input -----------------------------------------------------------------------------

def test_not_a_gguf_file(tmp_path):
    p = tmp_path / "notes.gguf"
    p.write_text("hello, this is not a model\n")
    expect_error(hearth("info", p), "not a GGUF file")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    expect_error(hearth("run", p, "-p", "hi"), "not a GGUF file")


@needs_model
def test_truncated_model(tmp_path):
    p = tmp_path / "trunc.gguf"
    with open(MODEL, "rb") as f:
        p.write_bytes(f.read(5_000_000))
    expect_error(hearth("run", p, "-p", "hi"), "truncated")


def test_unknown_architecture(tmp_path):
    p = tiny_llama(tmp_path / "x.gguf", arch="mamba9")
    expect_error(hearth("info", p), "architecture 'mamba9' is not supported")


def test_unknown_tensor_type(tmp_path):
    p = tiny_llama(tmp_path / "t.gguf")
    data = bytearray(p.read_bytes())
    # The first tensor info follows the metadata: name, n_dims, dims, then the type id.
    name = b"token_embd.weight"
    i = data.index(name) + len(name)
    n_dims = int.from_bytes(data[i:i + 4], "little")
    type_at = i + 4 + 8 * n_dims
    data[type_at:type_at + 4] = (77).to_bytes(4, "little")
    p.write_bytes(bytes(data))
    expect_error(hearth("info", p), "unknown type id 77")


def test_tiny_random_model_runs(tmp_path):
    p = tiny_llama(tmp_path / "tiny.gguf")
    r = hearth("generate", p, "-p", "abc", "--temp", "0", "-n", "5", "--output-ids")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) >= 1


def test_model_larger_than_memory(tmp_path):
    # 64 layers x 16M positions x 16 floats x 2 of KV cache = 128 GiB: more than the machine has.
    p = tiny_llama(tmp_path / "huge.gguf", n_layer=64, ctx=1 << 24)
    expect_error(hearth("run", p, "-p", "hi", "--ctx", str(1 << 24)), "this machine has")


@needs_model
def test_empty_prompt():
    expect_error(hearth("run", "-p", ""), "prompt is empty")


@needs_model
def test_empty_piped_prompt():
    expect_error(hearth("run", stdin=b"\n\n"), "prompt is empty")


@needs_model
def test_invalid_utf8_on_stdin():
    expect_error(hearth("run", stdin=b"caf\xe9 \xff\xfe\n"), "not valid UTF-8")


@needs_model
@pytest.mark.parametrize("flags,needle", [
    (["--ctx", "0"], "--ctx 0"),
    (["--ctx", "100000000"], "larger than this model's training context"),
    (["--threads", "0"], "--threads 0"),
    (["--threads", "-3"], "--threads -3"),
    (["--temp", "-1"], "--temp"),
    (["--top-p", "0"], "--top-p"),
])
def test_bad_flags(flags, needle):
    expect_error(hearth("run", "-p", "hi", *flags), needle)


def test_unknown_model_name(tmp_path):
    r = hearth("run", "no-such-model", "-p", "hi")
    expect_error(r, "unknown model 'no-such-model'")


def test_missing_default_model(tmp_path):
    r = hearth("run", "-p", "hi", env={"HEARTH_MODELS": str(tmp_path)})
    expect_error(r, "fetch_models.py")


@needs_model
def test_bad_prompt_ids():
    expect_error(hearth("generate", "--prompt-ids", "1 2 x"), "token ids")
    expect_error(hearth("generate", "--prompt-ids", "99999999"), "outside the vocabulary")


# ---- interactive chat ----------------------------------------------------------------------

_unread: dict[int, bytes] = {}


def fork_pty() -> tuple[int, int]:
    """pty.fork(), forgetting any unread text kept for an earlier pty with the same fd number
    (a closed pty's fd is reused, and its leftovers must not be read as the new one's)."""
    pid, fd = pty.fork()
    if pid != 0:
        _unread.pop(fd, None)
    return pid, fd


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    """Reads from the pty until `needle` (b"" = any output) and returns the text through it;
    what follows stays for the next call, so two answers in one chunk are both seen."""
    buf = _unread.pop(fd, b"")
    end = time.time() + timeout
    while True:
        i = buf.find(needle) if needle else (0 if buf else -1)
        if i >= 0:
            cut = i + len(needle) if needle else len(buf)
            _unread[fd] = buf[cut:]
            return buf[:cut]
        if time.time() >= end:
            break
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    raise AssertionError(f"timed out waiting for {needle!r}; got {buf[-500:]!r}")


@needs_model
def test_interactive_chat_commands_and_ctrl_c():
    pid, fd = fork_pty()
    if pid == 0:
        os.execv(str(BIN), [str(BIN), "run", "--temp", "0", "-c", "1024", "-n", "400", "--repeat-penalty", "1.0"])
    try:
        read_until(fd, b">>> ", 60)
        os.write(fd, b"/help\n")
        assert b"/reset" in read_until(fd, b"Ctrl-C stops", 10)
        os.write(fd, b"Write a very long story about a dragon.\n")
        read_until(fd, b" ", 60)  # the echo of the prompt
        streamed = b""
        while len(streamed) < 120:  # let it stream for a moment
            streamed += read_until(fd, b"", 30)
        os.kill(pid, signal.SIGINT)  # Ctrl-C stops the answer, not the program
        out = read_until(fd, b">>> ", 60)
        assert b"[stopped]" in out, out[-300:]
        os.write(fd, b"/reset\n")
        read_until(fd, b"new conversation", 10)
        read_until(fd, b">>> ", 10)
        os.kill(pid, signal.SIGINT)  # Ctrl-C at the prompt does not quit either
        read_until(fd, b"use /exit or Ctrl-D", 10)
        os.write(fd, b"/exit\n")
        deadline = time.time() + 20
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
                return
            time.sleep(0.1)
        raise AssertionError("hearth run did not exit on /exit")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)
