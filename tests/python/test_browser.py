"""The chat page in a real browser: Debian's Chromium (headless), driven by Playwright for
Python, against `hearth serve` with the default model.

It enters the key once, picks the model from /v1/models, watches a streamed reply grow,
stops a long answer, starts a new chat, checks that the system prompt and the conversation
go into the request, feeds hostile Markdown through the page's own streaming path, checks
the copy button, a phone-sized screen, the CSP header and that no request leaves the
server's origin. Screenshots go to $HEARTH_ARTIFACTS (default tests/python/artifacts/).

Chromium runs as root in CI, hence --no-sandbox; Playwright never downloads a browser here
(executable_path points at Debian's). If Chromium cannot start the test fails with the
reason: it is not skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_server import BIN, MODEL, MODEL_ID, REPO, Server  # noqa: F401 - same skips and helper

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("HEARTH_ARTIFACTS", REPO / "tests" / "python" / "artifacts"))
TIMEOUT_MS = 120_000  # a loaded 2-core CI machine runs the model and the browser together

pytestmark = [
    pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built"),
    pytest.mark.skipif(not MODEL.exists(), reason=f"{MODEL} missing (scripts/fetch_models.py)"),
    pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                       reason=f"{CHROMIUM} missing (scripts/setup.sh installs Debian's chromium)"),
]

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root; Chromium's sandbox refuses root
    "--disable-dev-shm-usage",  # containers often have a small /dev/shm
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hearth_browser"), "--ctx", "768", "--parallel", "2")
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.proc.stderr.read()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # The browser must be Debian's (the version `chromium --version` reports), not one that
    # Playwright downloaded.
    debian = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60).stdout
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        assert b.version and b.version in debian, (b.version, debian)
        yield b
        b.close()


class Page:
    """A browser context on the server's page that records every request it makes."""

    def __init__(self, browser, server, **context_args):
        self.server = server
        self.context = browser.new_context(**context_args)
        self.requests: list[str] = []
        self.chat_bodies: list[dict] = []
        self.dialogs: list[str] = []
        self.context.on("request", self._on_request)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.response = self.page.goto(server.base + "/")

    def _on_request(self, request):
        self.requests.append(request.url)
        if request.url.endswith("/v1/chat/completions") and request.post_data:
            self.chat_bodies.append(json.loads(request.post_data))

    def enter_key(self):
        self.page.wait_for_selector("#key", state="visible")
        self.page.fill("#key", self.server.key)
        self.page.click("#keyform button[type=submit]")
        self.page.wait_for_selector("#prompt", state="visible")
        self.page.wait_for_function("document.querySelector('#model').options.length > 0")

    def watch_last_answer(self):
        """Records the length of the newest answer's text each time the page changes it:
        every earlier value of its data-raw attribute (a fast server's events can arrive in one
        chunk and be applied in one task, which the observer then reports at once), then the
        current one."""
        self.page.evaluate("""() => {
            window.__lengths = [];
            new MutationObserver((records) => {
                const a = document.querySelectorAll('#log .assistant');
                if (!a.length) return;
                const last = a[a.length - 1];
                for (const r of records)
                    if (r.type === 'attributes' && r.attributeName === 'data-raw' && r.target === last)
                        window.__lengths.push((r.oldValue || '').length);
                window.__lengths.push(last.dataset.raw.length);
            }).observe(document.querySelector('#log'),
                       {subtree: true, childList: true, attributes: true, attributeOldValue: true});
        }""")

    def send(self, text: str):
        """Sends a prompt and waits until its answer has started (a new assistant entry).
        Stop shows only while a stream runs, and a short real answer (a few tokens at
        ~400 tokens/s) or a mocked one can come and go between two polls, so its visibility
        is checked where a long answer is running (the Stop step below)."""
        count = "() => document.querySelectorAll('#log .assistant').length"
        before = self.page.evaluate(count)
        self.page.fill("#prompt", text)
        self.page.press("#prompt", "Enter")
        self.page.wait_for_function(f"({count})() > {before}")

    def wait_done(self):
        self.page.wait_for_selector("#send", state="visible")

    def last_answer(self) -> str:
        return self.page.evaluate(
            "() => { const a = document.querySelectorAll('#log .assistant');"
            " return a.length ? a[a.length - 1].dataset.raw : null; }")

    def screenshot(self, name: str):
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)

    def assert_same_origin(self):
        assert self.requests, "no request recorded"
        foreign = [u for u in self.requests if not u.startswith(self.server.base + "/")]
        assert not foreign, f"requests to other hosts: {foreign}"

    def close(self):
        self.context.close()


def test_chat_streams_stops_and_starts_anew(browser, server):
    p = Page(browser, server, viewport={"width": 1280, "height": 800})
    try:
        csp = p.response.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'"), csp
        p.enter_key()
        assert p.page.evaluate("localStorage.getItem('hearth_api_key')") == server.key
        assert p.page.input_value("#model") == MODEL_ID

        # The key is asked once: a reload goes straight to the chat.
        p.page.reload()
        p.page.wait_for_function("document.querySelector('#model').options.length > 0")
        assert p.page.is_hidden("#keyform") and p.page.is_visible("#prompt")

        # A streamed reply arrives in pieces.
        p.watch_last_answer()
        p.send("Say hello in one short sentence.")
        p.wait_done()
        answer = p.last_answer()
        lengths = p.page.evaluate("window.__lengths")
        grew = sorted({n for n in lengths if n > 0})
        assert answer and len(grew) >= 3, f"no streaming seen: lengths {lengths}, answer {answer!r}"
        assert grew[-1] == len(answer)
        p.screenshot("chat-streamed.png")

        # The conversation goes back with the next message.
        p.send("Thank you.")
        p.wait_done()
        msgs = p.chat_bodies[-1]["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"], msgs
        assert msgs[1]["content"] == answer and p.chat_bodies[-1]["model"] == MODEL_ID
        assert p.chat_bodies[-1]["stream"] is True

        # Stop during a long answer: the page stops growing and the server frees the slot.
        p.send("Write a very long story about a dragon and a lighthouse keeper, in ten chapters.")
        # One condition, read at one moment: the answer has grown and Stop shows (two
        # separate checks raced with the stream's end in CI).
        p.page.wait_for_function(
            "() => { const a = document.querySelectorAll('#log .assistant');"
            " return a[a.length - 1].dataset.raw.length > 40 && !document.getElementById('stop').hidden; }")
        p.page.click("#stop")
        p.wait_done()
        stopped_at = len(p.last_answer())
        time.sleep(1.5)
        assert len(p.last_answer()) == stopped_at, "text kept arriving after Stop"
        deadline = time.time() + 15
        while json.loads(server.request("GET", "/health", auth=False)[2])["slots_busy"]:
            assert time.time() < deadline, "the stopped generation still holds a slot"
            time.sleep(0.2)
        p.screenshot("chat-stopped.png")

        # New chat: empty log; the next request carries only the system prompt and the new message.
        p.page.click("#new")
        assert p.page.evaluate("document.querySelectorAll('#log .msg').length") == 0
        p.page.click("#settings")
        p.page.fill("#system", "You are a pirate. Answer in one word.")
        p.send("Who are you?")
        p.wait_done()
        msgs = p.chat_bodies[-1]["messages"]
        assert msgs == [{"role": "system", "content": "You are a pirate. Answer in one word."},
                        {"role": "user", "content": "Who are you?"}], msgs
        assert p.last_answer()
        p.screenshot("chat-new-with-system-prompt.png")
        p.assert_same_origin()
        assert not p.dialogs
    finally:
        p.close()


HOSTILE = ("Here is **bold**, *emphasis* and `code`:\n"
           "- one\n- two\n1. first\n2. second\n"
           "```js\nconsole.log('<b>not bold</b>');\n```\n"
           "<script>window.__xss = 'script'</script>\n"
           "<img src=x onerror=\"window.__xss = 'img'\">\n"
           "[link](javascript:window.__xss='link') <a href=\"javascript:window.__xss='a'\">a</a>\n"
           "<svg onload=\"window.__xss = 'svg'\"></svg> <iframe src=\"/\"></iframe>\n"
           "**<img src=y onerror=\"window.__xss = 'bold-img'\">** `<style>body{display:none}</style>`")


def sse(pieces: list[str]) -> str:
    events = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
              for piece in pieces]
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def test_model_output_cannot_inject_html_or_script(browser, server):
    p = Page(browser, server, viewport={"width": 1280, "height": 800})
    try:
        p.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base)
        p.enter_key()
        # The model's stream is replaced by crafted output, cut mid-tag, so the page's whole
        # path (SSE parsing, accumulation, Markdown, DOM) sees it.
        pieces = [HOSTILE[i:i + 7] for i in range(0, len(HOSTILE), 7)]
        p.page.route("**/v1/chat/completions", lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=sse(pieces)))
        p.page.evaluate("window.__xss = null")
        p.send("Show me some Markdown.")
        p.wait_done()
        assert p.last_answer() == HOSTILE
        p.page.wait_for_timeout(500)  # give any injected handler time to run
        assert p.page.evaluate("window.__xss") is None
        answer = p.page.locator("#log .assistant").last
        dom = answer.evaluate("""(el) => {
            const body = el.firstChild;
            const tags = [...body.querySelectorAll('*')].map(e => e.tagName.toLowerCase());
            const attrs = [...body.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name));
            return {tags: [...new Set(tags)], attrs, text: body.textContent};
        }""")
        assert set(dom["tags"]) <= {"p", "strong", "em", "code", "pre", "ul", "ol", "li"}, dom
        assert not dom["attrs"], dom
        # It did render the Markdown it was meant to.
        assert {"strong", "em", "code", "pre", "ul", "ol", "li"} <= set(dom["tags"]), dom
        assert "<script>window.__xss" in dom["text"] and "console.log('<b>not bold</b>');" in dom["text"]
        assert not p.dialogs
        p.screenshot("chat-hostile-markdown.png")

        # Copy puts the raw text on the clipboard.
        answer.locator(".copy").click()
        assert p.page.evaluate("navigator.clipboard.readText()") == HOSTILE

        # The CSP is in force in the browser: a request to another host is blocked.
        blocked = p.page.evaluate("""async () => {
            const seen = new Promise(r => document.addEventListener('securitypolicyviolation',
                                                                    e => r(e.blockedURI), {once: true}));
            try { await fetch('http://198.51.100.7/leak'); } catch (e) {}
            return await seen;
        }""")
        assert blocked.startswith("http://198.51.100.7"), blocked
        p.assert_same_origin()
    finally:
        p.close()


def test_phone_sized_screen(browser, server):
    p = Page(browser, server, viewport={"width": 375, "height": 667}, is_mobile=True,
             has_touch=True, device_scale_factor=2)
    try:
        p.enter_key()
        wide = "```\n" + "x" * 400 + "\n```\n" + "y" * 400
        p.page.route("**/v1/chat/completions", lambda route: route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body=sse([wide])))
        p.send("Long lines, please.")
        p.wait_done()
        for sel in ("#prompt", "#send", "#model", "#new"):
            box = p.page.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, (sel, box)
        assert p.page.locator("#send").bounding_box()["y"] + 10 <= 667, "send button below the screen"
        scroll = p.page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert scroll[0] <= scroll[1], f"horizontal scroll on a phone: {scroll}"
        p.screenshot("chat-phone.png")
        p.assert_same_origin()
    finally:
        p.close()
