#!/usr/bin/env bash
# Installs everything and runs every test: lint and types in all three languages
# (TypeScript's run with the VS Code tests), the Python suite (server,
# Claude and OpenAI backends, Neovim plugin in a real headless Neovim), and the VS Code
# extension (Node tests, packaging, and a real VS Code in a browser). Fails if any fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The test extra, and serve: a real OpenAI-compatible server (transformers serve, CPU
# torch) for tests/test_openai_real_server.py.
DAVE_EXTRAS="${DAVE_EXTRAS:-test,serve}" bash scripts/setup.sh
echo "== lint and types (Python: ruff, mypy strict on dave_lsp; Lua: luacheck)"
.venv/bin/ruff check dave_lsp tests bench
.venv/bin/ruff format --check dave_lsp tests bench
.venv/bin/mypy
bash editors/nvim/scripts/lint.sh
echo "== python tests (server, backends, neovim)"
# The keystroke-safety test types into a real terminal: tmux.
bash scripts/need-debian.sh tmux tmux
# Two workers (pytest-xdist), one module's tests on one worker (their module-scoped
# servers stay shared): most of a test is waiting on a CLI or an editor, so two at once
# take about two thirds of the time on this two-core machine. DAVE_TEST_WORKERS=0 runs
# them in this process; `-n 0` among the arguments does too.
.venv/bin/python -m pytest -p no:cacheprovider -n "${DAVE_TEST_WORKERS:-2}" --dist loadscope "$@"
echo "== acp: the official ACP TypeScript SDK's client against dave-lsp acp"
DAVE_LSP_PYTHON="$ROOT/.venv/bin/python" bash tests/acp_node/run.sh
echo "== acp: acpx (a third-party ACP client, on the registry's Node 24) against dave-lsp acp"
DAVE_LSP_PYTHON="$ROOT/.venv/bin/python" bash tests/acpx/run.sh
echo "== vs code extension"
DAVE_LSP_PYTHON="$ROOT/.venv/bin/python" bash editors/vscode/scripts/test.sh
