"""The chat page hearth serve shows at /: served from the binary with a strict CSP, no
reference to any other host, and Markdown rendering that cannot pass model output through
as HTML (checked by running the page's own renderMarkdown in Node, when Node is present).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from test_server import Server, BIN, MODEL  # noqa: F401 - same skips and server helper

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
]


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hearth_page"), "--ctx", "256", "--parallel", "1")
    yield s
    s.stop()


def get(server, path):
    return server.request("GET", path, auth=False)


def test_page_and_assets_are_served_without_a_key_under_csp(page_server):
    for path, ctype in (("/", "text/html"), ("/chat.js", "text/javascript"), ("/chat.css", "text/css")):
        status, headers, body = get(page_server, path)
        assert status == 200 and headers["Content-Type"].startswith(ctype)
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        text = body.decode()
        assert not re.search(r"https?://", text), f"{path} refers to another host"
        assert "@import" not in text and "url(" not in text
    html = get(page_server, "/")[2].decode()
    assert '<script src="/chat.js"' in html and "<script>" not in html  # no inline script (CSP)
    assert 'name="viewport"' in html


def test_page_needs_an_allowed_host(page_server):
    status, _, _ = page_server.request("GET", "/", auth=False, headers={"Host": "evil.example"})
    assert status == 403


HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "**<b>bold</b>** and *<i>em</i>*",
    "`<a href=javascript:alert(1)>x</a>`",
    "```html\n<iframe src=//evil></iframe>\n```",
    "- <svg onload=alert(1)>\n1. \"quoted\" 'single' &amp;",
    "# <style>body{}</style>",
]


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_markdown_rendering_escapes_model_output(page_server):
    js = get(page_server, "/chat.js")[2].decode()
    start, end = js.index("function escapeHtml"), js.index("function addMessage")
    script = js[start:end] + "\nconst inputs = JSON.parse(process.argv[1]);\n" \
        "console.log(JSON.stringify(inputs.map(renderMarkdown)));\n"
    r = subprocess.run(["node", "-e", script, json.dumps(HOSTILE + ["**b** *e* `c`\n- one\n- two"])],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    outputs = json.loads(r.stdout)
    allowed = {"p", "strong", "em", "code", "pre", "ul", "ol", "li"}
    for src, html in zip(HOSTILE, outputs):
        tags = set(re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", html))
        assert tags <= allowed, f"{src!r} -> {html!r}"
        bare = re.sub(r"</?(p|strong|em|code|pre|ul|ol|li)>", "", html)
        assert "<" not in bare and ">" not in bare, f"{src!r} -> {html!r}"
    assert outputs[-1] == ("<p><strong>b</strong> <em>e</em> <code>c</code></p><ul><li>one</li><li>two</li></ul>")
