#!/usr/bin/env bash
# The ACP TypeScript SDK's client against `dave-lsp acp`: installs the locked SDK,
# then runs node's test runner (its summary ends with "# pass N" / "# fail N").
# DAVE_LSP_PYTHON picks the Python that has dave-lsp (default: the repo's .venv).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
node --test --test-reporter=spec acp_client.test.mjs
