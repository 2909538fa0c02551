#!/usr/bin/env python3
"""Renders every tests/data/templates/*.jinja with a set of conversations into
tests/data/templates/golden.json, the reference for tests/engine/chat_template_test.cpp.

Run with the reference venv:  /root/.cache/hearth-refenv/bin/python scripts/golden/make_template_golden.py

Environment: the one transformers' apply_chat_template builds (transformers
utils/chat_template_utils.py, _compile_jinja_template): ImmutableSandboxedEnvironment with
trim_blocks=True, lstrip_blocks=True, the loopcontrols extension, raise_exception and
strftime_now globals, and tojson overridden by a plain json.dumps (ensure_ascii=False,
keys in insertion order, no HTML escaping) -- the text the models were trained on.

Where each template came from (byte-exact copies of the published chat_template):
  smollm2-135m-instruct.jinja   key tokenizer.chat_template of
                                SmolLM2-135M-Instruct.Q4_1.gguf (read with the gguf package)
  gemma-3-it.jinja              google/gemma-3-*-it tokenizer_config.json, as served by the
                                Hugging Face API for ggml-org/gemma-3-12b-it-GGUF (gguf.chat_template)
  llama-3.1-instruct.jinja      meta-llama/Llama-3.1-8B-Instruct tokenizer_config.json, as embedded
                                in a public training script (liger-kernel distillation example)
  qwen2.5-instruct.jinja        Qwen/Qwen2.5-*-Instruct tokenizer_config.json (with the tools
                                section), as embedded in a public llama.cpp NixOS config
  mistral-7b-instruct-v0.1.jinja  mistralai/Mistral-7B-Instruct-v0.1 tokenizer_config.json, as
                                shipped in llama-cpp-python llama_chat_format.py
                                (MISTRAL_INSTRUCT_CHAT_TEMPLATE)
  phi-3-mini-instruct.jinja     microsoft/Phi-3-mini-4k-instruct tokenizer_config.json (2024-05-08),
                                as quoted in guidance-ai/guidance chat templates
"""
import json
import pathlib
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.sandbox

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "tests" / "data" / "templates"

TOKENS = {
    "smollm2-135m-instruct": ("<|im_start|>", "<|im_end|>"),
    "gemma-3-it": ("<bos>", "<eos>"),
    "llama-3.1-instruct": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2.5-instruct": ("", "<|im_end|>"),
    "mistral-7b-instruct-v0.1": ("<s>", "</s>"),
    "phi-3-mini-instruct": ("<s>", "<|endoftext|>"),
}


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def u(c):
    return {"role": "user", "content": c}


def a(c):
    return {"role": "assistant", "content": c}


def s(c):
    return {"role": "system", "content": c}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather <now> & 'later' in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City, e.g. Zürich"},
                           "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "single_user": [u("Hello!")],
    "system_user": [s("You are terse."), u("What is 2+2?")],
    "multi_turn": [u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")],
    "system_multi_turn": [s("Be kind."), u("Hi"), a("Hey."), u("Bye"), a("Goodbye!")],
    "empty_content": [u("")],
    "unicode": [u("Grüß dich — 你好 🌍 ¿qué tal?"), a("Très bien ✓"), u("ok")],
    "jinja_looking": [u("{{ x }} {% if y %}z{% endif %} {# c #}"), a("{{ raise_exception('no') }}"),
                      u("\n  spaced  \n")],
    "alternation_broken": [u("one"), u("two")],
    "starts_with_assistant": [a("I speak first"), u("ok")],
}

TOOL_CONVERSATIONS = {
    "tools_call": (
        [s("Use tools."), u("Weather in Paris?"),
         {"role": "assistant", "content": "",
          "tool_calls": [{"type": "function", "function": {"name": "get_weather",
                                                           "arguments": {"city": "Paris", "days": 2}}}]},
         {"role": "tool", "content": "{\"temp\": 21.5}"}],
        [WEATHER_TOOL]),
    "tools_no_system": ([u("Weather in Zürich?")], [WEATHER_TOOL]),
}


# Small templates, one feature each, rendered by jinja2 as the byte-exact reference for the
# interpreter's unit behaviour (name, source, context).
D = {"messages": [u("Hi"), a("Yo")], "n": 7, "f": 2.5, "s": "  Hello World  ", "xs": [3, 1, 2],
     "d": {"b": 1, "a": [1, "x", None, True]}, "e": "", "none": None, "t": True}
INLINE = [
    ("text_only", "plain text\n", {}),
    ("comment", "a{# c #}b", {}),
    ("ws_control", "a  {{- 'x' -}}  b {%- if t %} c {% endif -%}  d", D),
    ("trim_blocks", "{% if t %}\n  yes\n{% endif %}\nafter\n", D),
    ("lstrip_blocks", "x\n    {% if t %}\n    y\n    {% endif %}\nz", D),
    ("lstrip_plus", "x\n    {%+ if t %}y{% endif %}", D),
    ("arith", "{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 - 0.5 }}", {}),
    ("float_repr", "{{ 0.1 + 0.2 }} {{ 1e20 * 10 }} {{ 1.0 }} {{ 3 / 3 }} {{ 1e-5 }} {{ 123456789.0 * 1000000 }} {{ f }}", D),
    ("concat", "{{ 'a' ~ 1 ~ none ~ t }} {{ 'a' + 'b' }} {{ [1] + [2, 3] }}", D),
    ("compare", "{{ 1 < 2 }} {{ 'a' == 'a' }} {{ 1 == 1.0 }} {{ 2 >= 3 }} {{ 1 != 2 }} {{ none == none }}", D),
    ("logic", "{{ t and 'x' }} {{ e or 'fallback' }} {{ not t }} {{ e and 'x' }}|{{ none or e }}|", D),
    ("in_op", "{{ 'a' in 'cat' }} {{ 2 in xs }} {{ 'b' in d }} {{ 'z' not in d }}", D),
    ("ternary", "{{ 'yes' if t else 'no' }} {{ 'yes' if e else 'no' }} [{{ 'only' if e }}]", D),
    ("str_values", "{{ t }} {{ none }} {{ xs }} {{ d }} {{ ['a', \"b'c\"] }} {{ (1, 2) }} {{ {'k': 'v'} }}", D),
    ("undefined", "[{{ nope }}] {{ nope is defined }} {{ nope is undefined }} {{ nope | default('dflt') }} {{ e | default('x') }} {{ e | default('x', true) }} {{ nope | length }}", D),
    ("for_loop", "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}:{{ x }} {% endfor %}", D),
    ("for_else", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}", D),
    ("for_filter", "{% for x in xs if x > 1 %}{{ x }}{{ loop.index }}{{ loop.last }} {% endfor %}", D),
    ("for_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", D),
    ("for_unpack", "{% for a, b in [(1, 2), [3, 4]] %}{{ a }}{{ b }}{% endfor %}", D),
    ("loop_previtem", "{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }}|{{ loop.cycle('a', 'b') }} {% endfor %}", D),
    ("nested_loop", "{% for x in [1, 2] %}{% for y in [3, 4] %}{{ loop.index }}{{ x }}{{ y }} {% endfor %}{{ loop.index }}{% endfor %}", D),
    ("loop_controls", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", D),
    ("range", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }}", D),
    ("if_elif", "{% for x in xs %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}other{% endif %} {% endfor %}", D),
    ("set_scoping", "{% set v = 1 %}{% for x in xs %}{% set v = x %}{% endfor %}{{ v }}", D),
    ("namespace", "{% set ns = namespace(v=1, w='a') %}{% for x in xs %}{% set ns.v = ns.v + x %}{% endfor %}{{ ns.v }}{{ ns.w }}", D),
    ("set_block", "{% set blk %}inner {{ n }}{% endset %}[{{ blk }}]", D),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", D),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet(name='Cy') }}", D),
    ("macro_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ n }}{% endcall %}", D),
    ("slicing", "{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ xs[-1] }} {{ 'abc'[0] }} {{ xs[::2] }}", D),
    ("subscript_attr", "{{ d.b }} {{ d['a'][1] }} {{ messages[0].role }} {{ messages[1]['content'] }} [{{ d.zz }}] {{ d.get('b') }} {{ d.get('q', 'dq') }} {{ d.get('q') }}", D),
    ("str_methods", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.upper() }}|{{ s.lower() }}|{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'ab'.startswith('a') }}|{{ 'ab'.endswith('a') }}|{{ 'hello world'.title() }}|{{ 'aXbX'.replace('X', '-') }}|{{ 'hello'.find('l') }}|{{ 'xxhixx'.strip('x') }}|{{ 'a b'.split(' ', 1) }}|{{ 'Hi'.capitalize() }}|{{ '{} and {}'.format(1, 'b') }}", D),
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}", D),
    ("filters_str", "{{ s | trim }}|{{ s | upper }}|{{ s | lower }}|{{ 'hELLO wORLD' | capitalize }}|{{ 'hello wORLD-x' | title }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'abc' | length }}|{{ 'x' | string }}|{{ 12 | string }}", D),
    ("filters_list", "{{ xs | first }} {{ xs | last }} {{ xs | length }} {{ xs | count }} {{ xs | join(', ') }} {{ xs | join }} {{ xs | sort }} {{ xs | sort(reverse=true) }} {{ [1, 2, 1, 3] | unique | list }} {{ 'abc' | list }} {{ xs | reverse | list }}", D),
    ("filters_num", "{{ '42' | int }} {{ '4.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.7 | int }} {{ 'x' | int }} {{ 7 | float }}", D),
    ("filters_attr", "{{ messages | map(attribute='role') | list }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'eq', 'user') | map(attribute='content') | join }}", D),
    ("select_reject", "{{ [0, 1, 2, 3, 4] | select('odd') | list }} {{ [0, 1, 2, 3, 4] | reject('even') | list }} {{ [0, '', 'a', none] | select | list }} {{ ['a', 'b', 'c'] | reject('equalto', 'b') | list }}", D),
    ("map_filter", "{{ ['a', 'b'] | map('upper') | list }} {{ ['1', '2'] | map('int') | sum }}", D),
    ("dictsort_items", "{{ d | items | list }} {{ d | dictsort }}", D),
    ("tojson", "{{ d | tojson }} {{ 'a<b>&\\'\"é' | tojson }} {{ [1.5, none, true] | tojson }}", D),
    ("tojson_indent", "{{ d | tojson(indent=2) }}\n{{ {'x': [], 'y': {}} | tojson(indent=4) }}", D),
    ("indent", "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(4, true) }}", D),
    ("tests", "{{ none is none }} {{ 'x' is string }} {{ 1 is number }} {{ 1.5 is number }} {{ t is number }} {{ d is mapping }} {{ xs is iterable }} {{ 'x' is iterable }} {{ xs is sequence }} {{ 3 is odd }} {{ 3 is even }} {{ t is true }} {{ 1 is true }} {{ false is false }} {{ 2 is eq 2 }} {{ 'a' is in 'abc' }} {{ n is not none }} {{ d is string }} {{ 3 is divisibleby 3 }}", D),
    ("string_escapes", "{{ 'tab\\there' }}|{{ \"q\\\"q\" }}|{{ 'it\\'s' }}|{{ '\\u00e9\\x41' }}", D),
    ("raise", "before{{ raise_exception('custom failure') }}", D),
    ("raw_block", "{% raw %}{{ not parsed }}{% endraw %}", D),
    ("filter_block", "{% filter upper %}shout {{ n }}{% endfilter %}", D),
    ("list_dict_literals", "{{ [1, 'a', [2]] | length }} {{ {'a': 1, 'b': 2}['b'] }} {{ {'a': 1}.a }} {{ () | length }}", D),
    ("is_filters_chain", "{{ (messages | last).content | upper }}{{ messages[-1]['role'] | length }}", D),
    ("whitespace_inline", "  {% if t %}x{% endif %}  \n{% for i in xs %}\n  {{ i }}\n{% endfor %}\n", D),
    ("unicode_text", "é{{ '你好' | length }}{{ '🌍x'[1] }}{{ 'ÉCOLE' | lower }}", D),
    ("int_ops", "{{ 10 / 4 }} {{ 10 // 4 }} {{ 2 * 'ab' }} {{ 'ab' * 2 }} {{ [0] * 3 }} {{ 5 - 10 }} {{ 2 ** -1 }}", D),
]


def render(env, source, context):
    try:
        return {"output": env.from_string(source).render(**context)}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e)}


def main():
    env = make_env()
    cases = []
    for path in sorted(TEMPLATES.glob("*.jinja")):
        name = path.stem
        source = path.read_text(encoding="utf-8")
        bos, eos = TOKENS[name]
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (False, True):
                ctx = {"messages": messages, "add_generation_prompt": agp,
                       "bos_token": bos, "eos_token": eos}
                cases.append({"template": name, "case": f"{conv_name}/agp={int(agp)}",
                              "context": ctx, **render(env, source, ctx)})
        if name in ("qwen2.5-instruct", "llama-3.1-instruct"):
            for conv_name, (messages, tools) in TOOL_CONVERSATIONS.items():
                ctx = {"messages": messages, "tools": tools, "add_generation_prompt": True,
                       "bos_token": bos, "eos_token": eos}
                cases.append({"template": name, "case": conv_name, "context": ctx,
                              **render(env, source, ctx)})
    for name, source, ctx in INLINE:
        cases.append({"template": "inline", "case": name, "source": source, "context": ctx,
                      **render(env, source, ctx)})
    out = {"generator": "scripts/golden/make_template_golden.py",
           "jinja2_version": jinja2.__version__,
           "python": sys.version.split()[0],
           "cases": cases}
    (TEMPLATES / "golden.json").write_text(
        json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    errors = sum(1 for c in cases if "error" in c)
    print(f"{len(cases)} cases ({errors} expected errors) -> {TEMPLATES / 'golden.json'}")


if __name__ == "__main__":
    main()
