#!/usr/bin/env bash
# Installs dave-lsp and runs the headless demo: the real server, the real bundled Claude
# Code CLI, and the shipped scripted model on 127.0.0.1 (no API key, no network).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
WORK="$(mktemp -d -t dave-demo-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
echo "== dave-lsp demo in $WORK: a question, a tool that asks permission, a follow-up" >&2
printf '%s\n' "hello from the demo" "write notes.txt Hello from dave-lsp" "recall" |
  "$ROOT/.venv/bin/dave-lsp" chat --demo --yes --cwd "$WORK"
echo "== notes.txt now holds: $(cat "$WORK/notes.txt")" >&2
