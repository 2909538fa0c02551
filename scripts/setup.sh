#!/usr/bin/env bash
# Installs what Hearth needs to build and test on Debian 12: compilers and libraries from
# apt, a Python virtual environment (.venv) with the test tools, and nothing else.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libfmt-dev
  libpcre2-dev libutf8proc-dev libsodium-dev libsqlite3-dev libcpp-httplib-dev python3 python3-venv python3-pip
  libseccomp-dev libtomlplusplus-dev libcurl4-openssl-dev
  # test tools: a real browser for the web page test, load generator, packet capture,
  # network namespaces, and certificates for the HTTPS pull test
  chromium wrk tcpdump iproute2 openssl
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python is for tests, references and model fetching only; never in Hearth's runtime path.
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -m pip install --disable-pip-version-check -q -r tests/python/requirements.txt; then
  echo "setup: pip install failed (is PyPI reachable?)" >&2
  exit 1
fi
