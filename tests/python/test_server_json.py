"""JSON mode through hearth serve: OpenAI's response_format {"type": "json_object"} with the
official `openai` client, Ollama's "format": "json" over plain HTTP. The answer must be a JSON
object that json.loads accepts, greedy and sampled, streamed and not; unsupported structured
output (JSON schemas) is a clear 400. One server for the module; answers are bounded by
max_tokens (a generation cut by it would end with finish_reason "length" and fail the test).
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
    assert r.choices[0].finish_reason == "stop", f"cut off: {text!r}"
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
    assert text.lstrip().startswith("{")
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
    assert lines[-1]["done"] and lines[-1]["done_reason"] == "stop"
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
