#!/usr/bin/env python3
"""Tokenizes a corpus of varied byte strings with llama.cpp (through llama-cpp-python) for
each packaged model and writes tests/data/tokenizer/<model>.json, the reference for
tests/engine/tokenizer_test.cpp.

Run with the reference venv:
  /root/.cache/hearth-refenv/bin/python scripts/golden/make_tokenizer_golden.py

For every corpus string (stored as base64 of its bytes, since some are invalid UTF-8) and
every (add_special, parse_special) pair, `ids` is llama_tokenize(). For the ids of
(add_special=True, parse_special=True) the file also holds llama_detokenize() with
remove_special=False and unparse_special False / True (base64), and the corpus holds a
sample of single-token pieces (llama_token_to_piece, lstrip 0, special False / True).

It also writes tests/data/tokenizer/smollm2_pre_variants.json: the same corpus tokenized
with SmolLM2's vocabulary and merges under other pre-tokenizers (tokenizer.ggml.pre set
through llama.cpp's kv_overrides), so each pre-tokenizer's splitting is checked too.

Model directory: $HEARTH_MODELS, else ~/.local/share/hearth/models.
"""
import base64
import ctypes
import json
import os
import pathlib
import random

import llama_cpp

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "tokenizer"
MODELS_DIR = pathlib.Path(os.environ.get("HEARTH_MODELS",
                                         pathlib.Path.home() / ".local/share/hearth/models"))
MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}

# tokenizer.ggml.pre values checked with SmolLM2's vocabulary besides its own 'smollm'.
PRE_VARIANTS = ["llama-bpe", "qwen2", "gpt-2", "default", "starcoder"]


def corpus():
    s = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t\tx", "a\tb", "a \tb",
        "Hello", "Hello world", " Hello world", "Hello  world", "Hello world!", "hello, world.",
        "The quick brown fox jumps over the lazy dog.",
        "I'm sure you'll see it's what we've done, they're here and I'd go. DON'T SHOUT'S",
        "it 's a ' quoted ' word ?", "Mr. Smith paid $3.50 for 2 apples; e.g. 10% off!",
        "Question? Answer! Dots... commas, ,semicolons;",
        "    leading spaces", "trailing spaces    ", "mixed \t whitespace \n\n\t here  ",
        "line1\nline2\r\nline3\rline4", "\n\n\n\n\n\n", "\t\t\t\t", "  \n  \n  ",
        "0", "1", "12", "123", "1234", "12345", "123456789", "3.14159265358979",
        "1,000,000", "-42", "+7e-10", "0x1F2E3D", "2024-01-15T12:34:56Z", "99 bottles",
        "٣٤٥ Arabic-Indic digits", "Ⅻ roman ½ ¾ ² ³ numbers", "１２３ fullwidth",
        "".join(str(i) for i in range(60)),
        "def foo(x):\n    return x * 2\n",
        "int main(int argc, char** argv) {\n\tprintf(\"%d\\n\", argc);\n\treturn 0;\n}\n",
        "fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!(\"{:?}\", v); }",
        "const f = async (a, b) => { await fetch(`/api/${a}?b=${b}`); };",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
        "<html><body><div class=\"x\">Hi &amp; bye</div></body></html>",
        "#include <vector>\ntemplate <typename T> T max(T a, T b) { return a > b ? a : b; }",
        "if x == 1 && y != 2 || !z { a += 1; b -= 2; c <<= 3; }",
        "    if (a) {\n        b();\n    }\n",
        "import numpy as np\narr = np.zeros((3, 4), dtype=np.float32)\n",
        "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
        "$ ls -la /usr/bin | grep -E '^-rwx' > out.txt 2>&1",
        "a=b+c*d/e-f%g^h&i|j~k", "__init__ __name__ self.__dict__", "snake_case camelCase PascalCase",
        "https://example.com/path?query=1&x=y#frag", "user@example.org",
        "café résumé naïve façade", "Ångström Øre Æsir", "e\u0301 a\u0300 o\u0308 (combining)",
        "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u0357",
        "Straße groß ß ẞ", "İstanbul ıi", "Ελληνικά γράμματα", "Русский текст, привет!",
        "日本語のテキストです。", "中文文本，你好世界！", "한국어 텍스트입니다", "ภาษาไทย", "हिन्दी पाठ",
        "العربية نص مرحبا", "עברית שלום", "مرحبا 123 hello", "Tiếng Việt có dấu",
        "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇯🇵", "I ❤️ NY", "emoji😀inside", " 🤖 robot",
        "∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷", "→ ← ↑ ↓ ⇒", "© ® ™ § ¶ † ‡", "€ £ ¥ ₹ ₿", "«quotes» „German“ ‘single’",
        "\u00a0non-breaking\u00a0space", "\u2003em space\u2009thin", "zero\u200bwidth\u200djoiner",
        "\u3000ideographic space", "line\u2028separator\u2029para", "soft\u00adhyphen",
        "\x00", "a\x00b", "\x01\x02\x03\x1f\x7f", "bell\x07 esc\x1b[31m", "\x0b\x0c", "\x85next line",
        "\ufeffBOM start", "\ufffd replacement", "\ue000 private use", "\U0010fffd plane 16",
        "\U0001d400\U0001d401 math bold", "\u0378 unassigned",
        "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>\n",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
        "text<|im_end|>more", "<|im_start|><|im_start|>", "<|im_start", "|im_start|>", "< |im_start| >",
        "<bos>", "<eos>", "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
        "<start_of_turn>", "<end_of_turn>", "x<end_of_turn>y", "<pad>", "<unk>", "<mask>",
        "<s>", "</s>", "<s> hi </s>", "<unused0>", "<start_of_image>", "[INST] hi [/INST]",
        "<|eot_id|>", "<think>reasoning</think>", "<tool_call>{}</tool_call>",
        "<0x41>", "<0x0A>", "▁", "▁▁x", "a▁b",
        "ĠHello Ċ", "ÃĥÂ", "a" * 300, "ab" * 100, " " * 50, "\n" * 40, "=" * 80,
        "-" * 33, "." * 17, "!!!???", "...", "—", "–", "…", "''", "\"\"", "``", "'''",
        "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "don't", "DON'T", "o'clock",
        "A", "a", "Z", "z", "~", "`", "|", "\\", "\\n", "\\\\", "{}", "[]", "()",
        "x" * 1000 + " end",
    ]
    # Invalid or unusual UTF-8 (as bytes). Lead bytes F5..F7 are left out: llama.cpp decodes
    # them to code points above U+10FFFF and then throws out of llama_tokenize.
    b = [
        b"\xff", b"\xfe\xff", b"\x80", b"\xbf\x80", b"abc\xffdef", b"\xc3", b"\xc3(", b"caf\xc3",
        b"\xe2\x82", b"\xe2\x82x", b"\xf0\x9f\x98", b"\xf0\x9f\x98 smile", b"\xed\xa0\x80",
        b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80",
        b"ok \x80\x81\x82 ok", b"\x9f\x98\x80", b"\xf0\x28\x8c\xbc", b"<|im_start|>\xff<|im_end|>",
        b"\xe6\x97\xa5\xe6\x9c", b"a\xc2\xa0b\xa0", b"1\xff2\xfe3",
    ]
    rnd = random.Random(1234)
    pieces = ["the", " of", "42", "\n", "  ", "é", "字", "😀", "<|im_end|>", "<end_of_turn>", "!",
              "'s", "\t", "ab", "Ω", "７", "​", "x1", " ", "<s>", "▁"]
    for _ in range(40):
        s.append("".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 25))))
    for _ in range(12):
        bs = bytes(rnd.randint(0, 255) for _ in range(rnd.randint(1, 20)))
        # keep only byte strings llama.cpp survives (no lead bytes 0xF5..0xF7)
        bs = bytes(c for c in bs if not (0xF5 <= c <= 0xF7))
        b.append(bs)
    out = [x.encode("utf-8", "surrogatepass") for x in s] + b
    seen, uniq = set(), []
    for x in out:
        if x not in seen:
            seen.add(x)
            uniq.append(x)
    return uniq


def b64(x: bytes) -> str:
    return base64.b64encode(x).decode("ascii")


def tokenize(vocab, text: bytes, add_special: bool, parse_special: bool):
    n_max = len(text) + 8
    buf = (llama_cpp.llama_token * n_max)()
    n = llama_cpp.llama_tokenize(vocab, text, len(text), buf, n_max, add_special, parse_special)
    assert n >= 0, n
    return list(buf[:n])


def detokenize(vocab, ids, unparse_special: bool) -> bytes:
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 64 + 64 * len(ids)
    out = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), out, size, False, unparse_special)
    assert n >= 0, n
    return out.raw[:n]


def piece(vocab, tid: int, special: bool) -> bytes:
    out = ctypes.create_string_buffer(512)
    n = llama_cpp.llama_token_to_piece(vocab, tid, out, 512, 0, special)
    assert 0 <= n <= 512, n
    return out.raw[:n]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    texts = corpus()
    for name, fname in MODELS.items():
        path = MODELS_DIR / fname
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        cases = []
        for t in texts:
            case = {"text": b64(t)}
            for add_special in (False, True):
                for parse_special in (False, True):
                    key = f"ids_{'a' if add_special else 'n'}{'p' if parse_special else 'n'}"
                    case[key] = tokenize(vocab, t, add_special, parse_special)
            ids = case["ids_ap"]
            case["detok"] = b64(detokenize(vocab, ids, False))
            case["detok_special"] = b64(detokenize(vocab, ids, True))
            cases.append(case)
        rnd = random.Random(99)
        sample = sorted(set(list(range(0, min(n_vocab, 300))) +
                            [rnd.randrange(n_vocab) for _ in range(1500)] +
                            list(range(max(0, n_vocab - 50), n_vocab))))
        pieces = [{"id": i, "piece": b64(piece(vocab, i, False)),
                   "piece_special": b64(piece(vocab, i, True))} for i in sample]
        doc = {
            "generator": "scripts/golden/make_tokenizer_golden.py",
            "llama_cpp_python_version": llama_cpp.__version__,
            "model_file": fname,
            "n_vocab": n_vocab,
            "bos": llama_cpp.llama_vocab_bos(vocab),
            "eos": llama_cpp.llama_vocab_eos(vocab),
            "eog": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
            "cases": cases,
            "pieces": pieces,
        }
        (OUT / f"{name}.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"{name}: {len(cases)} strings, {len(pieces)} pieces")
        del llm

    variants = {}
    for pre in PRE_VARIANTS:
        llm = llama_cpp.Llama(model_path=str(MODELS_DIR / MODELS["smollm2"]), vocab_only=True,
                              verbose=False, kv_overrides={"tokenizer.ggml.pre": pre})
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        variants[pre] = [{"text": b64(t),
                          "ids_nn": tokenize(vocab, t, False, False),
                          "ids_ap": tokenize(vocab, t, True, True)} for t in texts]
        del llm
    doc = {
        "generator": "scripts/golden/make_tokenizer_golden.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        "model_file": MODELS["smollm2"],
        "variants": variants,
    }
    (OUT / "smollm2_pre_variants.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"pre variants: {', '.join(PRE_VARIANTS)}")


if __name__ == "__main__":
    main()
