// The chat page at GET /: HTML, CSS and JavaScript compiled into the binary, served from
// this server only. The Content-Security-Policy (default-src 'self') lets the browser load
// nothing from any other host and run no inline script; model output is HTML-escaped
// before the page adds its own Markdown tags (see renderMarkdown in chat.js).
#include "app/server_routes.h"

namespace hearth::app {
namespace {

constexpr const char* kIndexHtml = R"page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hearth</title>
<link rel="stylesheet" href="/chat.css">
<script src="/chat.js" defer></script>
</head>
<body>
<header>
  <strong>Hearth</strong>
  <select id="model" aria-label="Model"></select>
  <button id="new" type="button">New chat</button>
  <button id="settings" type="button" aria-expanded="false">Settings</button>
</header>
<section id="panel" hidden>
  <label>System prompt <textarea id="system" rows="3" placeholder="(the model's default)"></textarea></label>
  <button id="forget" type="button">Forget the API key</button>
</section>
<main id="log" aria-live="polite"></main>
<form id="keyform" hidden>
  <p>This page talks only to this Hearth server. Paste its API key (<code>hearth key show</code>); it stays in this browser.</p>
  <input id="key" type="password" autocomplete="off" placeholder="API key" aria-label="API key">
  <button type="submit">Save</button>
  <p id="keyerror" class="error"></p>
</form>
<form id="ask">
  <textarea id="prompt" rows="2" placeholder="Message (Enter sends, Shift+Enter for a new line)" aria-label="Message"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" hidden>Stop</button>
</form>
</body>
</html>
)page";

constexpr const char* kChatCss = R"page(* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; font: 16px/1.5 system-ui, sans-serif; background: #faf8f5; color: #222; }
header { display: flex; gap: .5rem; align-items: center; padding: .5rem; border-bottom: 1px solid #ddd; flex-wrap: wrap; }
header strong { margin-right: auto; }
select, button, textarea, input { font: inherit; }
button { padding: .35rem .8rem; border: 1px solid #bbb; border-radius: 6px; background: #fff; cursor: pointer; }
button:hover { background: #f0ece6; }
#panel { padding: .5rem; border-bottom: 1px solid #ddd; }
#panel label { display: block; }
#panel textarea { width: 100%; }
main { flex: 1; overflow-y: auto; padding: .75rem; }
.msg { max-width: 48rem; margin: 0 auto .75rem; padding: .5rem .75rem; border-radius: 8px; position: relative; overflow-wrap: anywhere; }
.user { background: #e8f0fe; }
.assistant { background: #fff; border: 1px solid #e5e0d8; }
.msg pre { background: #f4f1ec; padding: .5rem; overflow-x: auto; border-radius: 6px; }
.msg code { font-family: ui-monospace, monospace; font-size: .9em; }
.copy { position: absolute; top: .25rem; right: .25rem; font-size: .75rem; padding: .1rem .4rem; }
.error { color: #a00; }
form { display: flex; gap: .5rem; padding: .5rem; border-top: 1px solid #ddd; max-width: 50rem; width: 100%; margin: 0 auto; flex-wrap: wrap; }
#prompt, #key { flex: 1; min-width: 10rem; padding: .4rem; }
#keyform p { flex-basis: 100%; margin: .25rem 0; }
@media (max-width: 480px) { body { font-size: 15px; } header { padding: .35rem; } .msg { padding: .4rem .5rem; } }
)page";

constexpr const char* kChatJs = R"page("use strict";
// Hearth chat page: talks only to the server that served it (CSP default-src 'self').
const $ = (id) => document.getElementById(id);
const state = { messages: [], controller: null };

function apiKey() { return localStorage.getItem("hearth_api_key") || ""; }

// Markdown, safely: every piece of model text is HTML-escaped before any tag of ours is
// added, so the output can never carry markup or script of its own.
function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
          .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}
function inline(s) {
  return escapeHtml(s)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
}
function renderMarkdown(text) {
  const out = [];
  const parts = text.split(/```/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {  // inside a fence; the first line may name the language
      const body = part.replace(/^[^\n]*\n/, "");
      out.push("<pre><code>" + escapeHtml(body) + "</code></pre>");
      return;
    }
    let list = null;
    for (const line of part.split("\n")) {
      const m = line.match(/^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/);
      if (m) {
        const kind = m[1] ? "ul" : "ol";
        if (list !== kind) { if (list) out.push(`</${list}>`); out.push(`<${kind}>`); list = kind; }
        out.push("<li>" + inline(m[3]) + "</li>");
        continue;
      }
      if (list) { out.push(`</${list}>`); list = null; }
      const h = line.match(/^(#{1,6})\s+(.*)$/);
      if (h) out.push(`<p><strong>${inline(h[2])}</strong></p>`);
      else if (line.trim()) out.push("<p>" + inline(line) + "</p>");
    }
    if (list) out.push(`</${list}>`);
  });
  return out.join("");
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const body = document.createElement("div");
  div.appendChild(body);
  if (role === "assistant") {
    const copy = document.createElement("button");
    copy.className = "copy"; copy.type = "button"; copy.textContent = "Copy";
    copy.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(div.dataset.raw || ""));
    div.appendChild(copy);
  }
  setText(div, text);
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}
function setText(div, text) {
  div.dataset.raw = text;
  const body = div.firstChild;
  if (div.classList.contains("assistant")) body.innerHTML = renderMarkdown(text);
  else body.textContent = text;
}
function showError(message) {
  const div = document.createElement("div");
  div.className = "msg error";
  div.textContent = message;
  $("log").appendChild(div);
}

async function api(path, options = {}) {
  options.headers = Object.assign({ "Authorization": "Bearer " + apiKey(), "Content-Type": "application/json" },
                                  options.headers || {});
  const res = await fetch(path, options);
  if (res.status === 401) { askKey("The server did not accept the key."); throw new Error("unauthorized"); }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error.message || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

async function loadModels() {
  const res = await api("/v1/models");
  const data = await res.json();
  const sel = $("model");
  sel.textContent = "";
  for (const m of data.data) {
    const o = document.createElement("option");
    o.value = m.id; o.textContent = m.id;
    sel.appendChild(o);
  }
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
}

async function send(text) {
  const conversation = state.messages;  // "New chat" replaces the array
  conversation.push({ role: "user", content: text });
  addMessage("user", text);
  const div = addMessage("assistant", "");
  const system = $("system").value.trim();
  const messages = (system ? [{ role: "system", content: system }] : []).concat(conversation);
  state.controller = new AbortController();
  busy(true);
  let answer = "";
  try {
    const res = await api("/v1/chat/completions", {
      method: "POST", signal: state.controller.signal,
      body: JSON.stringify({ model: $("model").value, messages, stream: true }),
    });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        const delta = j.choices && j.choices[0] && j.choices[0].delta;
        if (delta && delta.content) { answer += delta.content; setText(div, answer); }
      }
      $("log").scrollTop = $("log").scrollHeight;
    }
  } catch (e) {
    if (e.name !== "AbortError" && e.message !== "unauthorized") showError(e.message);
  } finally {
    conversation.push({ role: "assistant", content: answer });
    state.controller = null;
    busy(false);
  }
}

function askKey(message) {
  $("keyform").hidden = false;
  $("ask").hidden = true;
  $("keyerror").textContent = message || "";
  $("key").focus();
}

function start() {
  $("keyform").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    localStorage.setItem("hearth_api_key", $("key").value.trim());
    $("key").value = "";
    try {
      await loadModels();
      $("keyform").hidden = true;
      $("ask").hidden = false;
      $("prompt").focus();
    } catch (e) { if (e.message !== "unauthorized") askKey(e.message); }
  });
  $("ask").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || state.controller) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("ask").requestSubmit(); }
  });
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("new").addEventListener("click", () => {
    if (state.controller) state.controller.abort();
    state.messages = [];
    $("log").textContent = "";
  });
  $("settings").addEventListener("click", () => {
    $("panel").hidden = !$("panel").hidden;
    $("settings").setAttribute("aria-expanded", String(!$("panel").hidden));
  });
  $("forget").addEventListener("click", () => { localStorage.removeItem("hearth_api_key"); askKey(); });
  if (!apiKey()) askKey();
  else loadModels().catch((e) => { if (e.message !== "unauthorized") showError(e.message); });
}
start();
)page";

constexpr const char* kCsp =
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src "
    "'none'";

void serve(httplib::Response& res, const char* body, const char* type) {
  res.set_header("Content-Security-Policy", kCsp);
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Cache-Control", "no-cache");
  res.set_content(body, type);
}

}  // namespace

void register_page_routes(httplib::Server& http) {
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    serve(res, kIndexHtml, "text/html; charset=utf-8");
  });
  http.Get("/chat.css", [](const httplib::Request&, httplib::Response& res) {
    serve(res, kChatCss, "text/css; charset=utf-8");
  });
  http.Get("/chat.js", [](const httplib::Request&, httplib::Response& res) {
    serve(res, kChatJs, "text/javascript; charset=utf-8");
  });
}

}  // namespace hearth::app
