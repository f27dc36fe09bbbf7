#!/usr/bin/env bash
# Installs everything and runs every test: lint and types in all three languages
# (TypeScript's run with the VS Code tests), the Python suite (server,
# Claude and OpenAI backends, Neovim plugin in a real headless Neovim), and the VS Code
# extension (Node tests, packaging, and a real VS Code in a browser). Fails if any fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
echo "== lint and types (Python: ruff, mypy strict on dave_lsp; Lua: luacheck)"
.venv/bin/ruff check dave_lsp tests bench
.venv/bin/ruff format --check dave_lsp tests bench
.venv/bin/mypy
bash editors/nvim/scripts/lint.sh
echo "== python tests (server, backends, neovim)"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
echo "== vs code extension"
DAVE_LSP_PYTHON="$ROOT/.venv/bin/python" bash editors/vscode/scripts/test.sh
