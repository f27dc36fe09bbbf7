#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs dave-lsp into it with its test tools.
# Sourced by demo.sh and test.sh; safe to run again (pip skips what is there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "dave-lsp needs Python 3.11 or newer as \$PYTHON (or python3); found: $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$ROOT/.venv"
fi
"$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[${DAVE_EXTRAS:-test}]"
