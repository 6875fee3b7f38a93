#!/usr/bin/env bash
# Make the Python environment exist and match uv.lock, and the npm packages of the test tier match their
# lock files (the independent credential verifier's, tests/verifier; the official AsyncAPI parser's,
# tests/asyncapi_parser; Deque's axe-core for the accessibility tests, tests/axe); with --browser, also Debian's Chromium for the browser tests. Safe to run again: a warm run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "[setup] installing uv"
  python3 -m pip install --quiet --disable-pip-version-check uv \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages uv
fi
uv sync --frozen --quiet

# Digital Bazaar's Data Integrity verifier (tests only), pinned by its lock file; reinstalled when the lock changes.
verifier=tests/verifier
if ! command -v npm >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian's nodejs and npm for the credential verifier tests"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if command -v npm >/dev/null 2>&1; then
  if ! cmp -s "$verifier/package-lock.json" "$verifier/node_modules/.installed-lock.json"; then
    echo "[setup] installing the credential verifier's npm packages (tests/verifier)"
    npm ci --prefix "$verifier" --no-audit --no-fund --silent
    cp "$verifier/package-lock.json" "$verifier/node_modules/.installed-lock.json"
  fi
  # The official AsyncAPI parser (tests only), pinned the same way, for tests/unit/test_asyncapi_parser.py.
  parser=tests/asyncapi_parser
  if ! cmp -s "$parser/package-lock.json" "$parser/node_modules/.installed-lock.json"; then
    echo "[setup] installing the AsyncAPI parser's npm packages (tests/asyncapi_parser)"
    npm ci --prefix "$parser" --no-audit --no-fund --silent
    cp "$parser/package-lock.json" "$parser/node_modules/.installed-lock.json"
  fi
  # axe-core (tests only), pinned the same way, injected into pages by tests/e2e/test_accessibility_browser.py.
  axe=tests/axe
  if ! cmp -s "$axe/package-lock.json" "$axe/node_modules/.installed-lock.json"; then
    echo "[setup] installing axe-core for the accessibility tests (tests/axe)"
    npm ci --prefix "$axe" --no-audit --no-fund --silent
    cp "$axe/package-lock.json" "$axe/node_modules/.installed-lock.json"
  fi
else
  echo "[setup] npm is missing and cannot be installed here: the credential verifier, AsyncAPI parser and accessibility tests will be skipped" >&2
fi

if [[ "${1:-}" == "--browser" && ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian's chromium for the browser tests"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[setup] /usr/bin/chromium is missing and cannot be installed here: browser tests will be skipped" >&2
  fi
fi
