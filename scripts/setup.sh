#!/usr/bin/env bash
# Make the Python environment exist and match uv.lock. Safe to run again: a warm run takes ~1 s.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "[setup] installing uv"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv sync --frozen --quiet
