"""JSON mode through hearth serve: OpenAI's response_format {"type": "json_object"} with the
official `openai` client, Ollama's "format": "json" over plain HTTP. The answer must be a JSON
object that json.loads accepts, greedy and sampled, streamed and not; unsupported structured
output (JSON schemas) is a clear 400. One server for the module; answers are bounded by
max_tokens. A greedy answer is the same on every machine (its logits are the same bits on
every ISA), so it must finish and parse. Whether a sampled answer finishes within max_tokens
is the seed's luck, so for those the test asserts what the constraint guarantees: the answer
parses whenever finish_reason is "stop", and a cut-off answer is still the start of a JSON
object.
"""
from __future__ import annotations

import json

import pytest

from test_server import BIN, MODEL, MODEL_ID, Server, error_of

openai = pytest.importorskip("openai")

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]

SYSTEM = "You reply with a JSON object only."
PROMPTS = [
    "Describe a cat as a JSON object with name, age and colour.",
    "Return a JSON object with the keys city and country for Paris.",
    "Give the name and age of a person as JSON.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hearth_home"), "--ctx", "1024", "--parallel", "2",
               "--timeout", "120", "--no-history")
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.proc.stderr.read()


class _Incomplete(Exception):
    """The text ended where more JSON was expected."""


def is_json_object_prefix(text: str) -> bool:
    """Whether `text` is the start of some JSON object (RFC 8259): every character read so
    far is allowed where it stands, and the text may stop anywhere, mid-string included."""
    i = 0
    n = len(text)

    def ws():
        nonlocal i
        while i < n and text[i] in " \t\r\n":
            i += 1

    def need():
        if i >= n:
            raise _Incomplete

    def literal(word):
        nonlocal i
        for ch in word:
            need()
            if text[i] != ch:
                raise ValueError(f"bad literal at {i}")
            i += 1

    def string():
        nonlocal i
        literal('"')
        while True:
            need()
            ch = text[i]
            i += 1
            if ch == '"':
                return
            if ch == "\\":
                need()
                esc = text[i]
                i += 1
                if esc == "u":
                    for _ in range(4):
                        need()
                        if text[i] not in "0123456789abcdefABCDEF":
                            raise ValueError(f"bad \\u escape at {i}")
                        i += 1
                elif esc not in '"\\/bfnrt':
                    raise ValueError(f"bad escape at {i}")
            elif ord(ch) < 0x20:
                raise ValueError(f"control character in string at {i}")

    def number():
        nonlocal i
        start = i
        while i < n and text[i] in "+-0123456789.eE":
            i += 1
        body = text[start:i]
        if i == n:  # may go on: check that some completion is a number
            if not any(_is_number(body + tail) for tail in ("", "0", "1", "e1", "0e1")):
                raise ValueError(f"bad number at {start}")
            raise _Incomplete
        if not _is_number(body):
            raise ValueError(f"bad number at {start}")

    def value():
        ws()
        need()
        ch = text[i]
        if ch == "{":
            obj()
        elif ch == "[":
            arr()
        elif ch == '"':
            string()
        elif ch in "-0123456789":
            number()
        else:
            for word in ("true", "false", "null"):
                if word.startswith(ch):
                    literal(word)
                    return
            raise ValueError(f"unexpected {ch!r} at {i}")

    def obj():
        nonlocal i
        literal("{")
        ws()
        need()
        if text[i] == "}":
            i += 1
            return
        while True:
            ws()
            string()
            ws()
            literal(":")
            value()
            ws()
            need()
            if text[i] == "}":
                i += 1
                return
            literal(",")

    def arr():
        nonlocal i
        literal("[")
        ws()
        need()
        if text[i] == "]":
            i += 1
            return
        while True:
            value()
            ws()
            need()
            if text[i] == "]":
                i += 1
                return
            literal(",")

    try:
        ws()
        obj()
        ws()
        return i == n
    except _Incomplete:
        return True
    except ValueError:
        return False


def _is_number(s: str) -> bool:
    import re
    return re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", s) is not None


def test_json_prefix_checker_accepts_prefixes_and_rejects_bad_text():
    whole = '{"name": "John Doe", "age": [1, -2.5e3, true, null], "x": {"y": "\\u00e9"}}'
    for k in range(len(whole) + 1):
        assert is_json_object_prefix(whole[:k]), whole[:k]
    for bad in ['{"name": "John"!', '{"a": 1}}', '{"a" 1}', '[1]', '{"a": tru e}',
                '{"a": 01}', '{"a": "\\x"}', 'x']:
        assert not is_json_object_prefix(bad), bad


def messages(prompt: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.8, "seed": 11},
                                      {"temperature": 1.0, "seed": 5, "top_p": 0.9}],
                         ids=["greedy", "t0.8", "t1.0"])
def test_openai_json_object_parses(server, prompt, sampling):
    r = server.client().chat.completions.create(
        model=MODEL_ID, messages=messages(prompt), response_format={"type": "json_object"},
        max_tokens=300, **sampling)
    text = r.choices[0].message.content
    finish = r.choices[0].finish_reason
    if sampling["temperature"] == 0:  # the same answer on every machine: it must finish
        assert finish == "stop", f"cut off: {text!r}"
    assert finish in ("stop", "length"), finish
    assert is_json_object_prefix(text), f"not the start of a JSON object: {text!r}"
    if finish == "stop":
        assert isinstance(json.loads(text), dict), text
        assert text.lstrip().startswith("{") and text.rstrip().endswith("}")


def test_openai_json_object_streamed(server):
    # Greedy, so the streamed answer must be exactly the non-streamed one (a token's logits
    # do not depend on how it is evaluated); that one is checked to finish and parse above.
    kw = dict(model=MODEL_ID, messages=messages(PROMPTS[0]), response_format={"type": "json_object"},
              max_tokens=300, temperature=0)
    whole = server.client().chat.completions.create(**kw).choices[0].message.content
    parts, finish = [], None
    for chunk in server.client().chat.completions.create(**kw, stream=True):
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    text = "".join(parts)
    assert len(parts) > 3, parts  # it really streamed
    assert text == whole
    assert finish == "stop" and isinstance(json.loads(text), dict), text


def test_json_mode_changes_the_answer(server):
    """Without JSON mode the same greedy request does not answer with bare JSON: the constraint
    is what makes it parse (so the tests above test something)."""
    prompt = [{"role": "user", "content": "Say hello."}]
    plain = server.client().chat.completions.create(model=MODEL_ID, messages=prompt, max_tokens=40,
                                                    temperature=0)
    with pytest.raises(ValueError):
        json.loads(plain.choices[0].message.content)
    constrained = server.client().chat.completions.create(
        model=MODEL_ID, messages=prompt, max_tokens=300, temperature=0,
        response_format={"type": "json_object"})
    # A model not asked for JSON may still ramble until max_tokens; whatever it wrote must then
    # still be the start of a JSON object.
    text = constrained.choices[0].message.content
    assert text.lstrip().startswith("{") and is_json_object_prefix(text), text
    if constrained.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)


@pytest.mark.parametrize("path,key", [("/api/chat", "message"), ("/api/generate", "response")])
def test_ollama_format_json(server, path, key):
    body = {"model": MODEL_ID, "format": "json", "stream": False,
            "options": {"temperature": 0, "num_predict": 300}}
    if path == "/api/chat":
        body["messages"] = messages(PROMPTS[1])
    else:
        body["system"], body["prompt"] = SYSTEM, PROMPTS[1]
    status, _, data = server.request("POST", path, json.dumps(body))
    assert status == 200, data
    r = json.loads(data)
    text = r[key]["content"] if key == "message" else r[key]
    assert r["done_reason"] == "stop" and isinstance(json.loads(text), dict), text


def test_ollama_format_json_streamed(server):
    body = {"model": MODEL_ID, "format": "json", "messages": messages(PROMPTS[2]),
            "options": {"temperature": 0.8, "seed": 2, "num_predict": 300}}
    status, _, data = server.request("POST", "/api/chat", json.dumps(body))
    assert status == 200
    lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    text = "".join(line["message"]["content"] for line in lines)
    # Sampled: finishing within num_predict is the seed's luck (see the module docstring).
    assert lines[-1]["done"] and lines[-1]["done_reason"] in ("stop", "length")
    assert is_json_object_prefix(text), text
    if lines[-1]["done_reason"] == "stop":
        assert isinstance(json.loads(text), dict), text


def test_unsupported_structured_output_is_400(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(
            model=MODEL_ID, messages=messages(PROMPTS[0]), max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})
    assert "json_schema" in str(e.value)
    status, body = error_of(server.request("POST", "/api/chat", json.dumps(
        {"model": MODEL_ID, "messages": messages("hi"), "format": {"type": "object"}})))
    assert status == 400 and "JSON schemas are not supported" in body["error"]
    status, body = error_of(server.request("POST", "/v1/chat/completions", json.dumps(
        {"model": MODEL_ID, "messages": messages("hi"), "response_format": "json"})))
    assert status == 400 and body["error"]["param"] == "response_format"
