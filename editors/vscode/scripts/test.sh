#!/usr/bin/env bash
# Every VS Code test: npm ci, typecheck, lint, package the .vsix (with the dave-lsp wheel the
# extension installs its own server from), then node --test over
# the protocol client and chat controller (real server + fake model), the webview
# (jsdom) and the package. Exits non-zero if anything fails.
# DAVE_LSP_PYTHON: the Python that runs dave-lsp (default: the repo's .venv).
# DAVE_VSCODE_E2E=0 skips the real VS Code (code-server + Chromium) test, whose
# tools scripts/e2e-setup.sh installs once into ~/.cache/dave-lsp-e2e.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export DAVE_LSP_PYTHON="${DAVE_LSP_PYTHON:-$(cd ../.. && pwd)/.venv/bin/python}"
# This machine's npmrc sets `nodedir`, which newer npm warns about on every call.
export npm_config_loglevel="${npm_config_loglevel:-error}"

step() { printf '\n== %s\n' "$*"; }
start=$SECONDS

step "npm ci"
npm ci --no-audit --no-fund

step "typecheck (tsc --noEmit)"
npx --no-install tsc --noEmit -p .

step "lint (eslint, type-aware)"
npm run --silent lint

step "package (esbuild, the server wheel into server/, vsce)"
npm run --silent package

step "build tests"
node scripts/build.mjs --tests-only

status=0
if [ "${DAVE_VSCODE_E2E:-1}" != 0 ]; then
  step "real VS Code tools: code-server and Chromium (cached; DAVE_VSCODE_E2E=0 skips)"
  if setup_out="$(bash scripts/e2e-setup.sh)"; then
    while IFS='=' read -r key value; do
      [ -n "$key" ] && export "DAVE_E2E_$key=$value"
    done <<<"$setup_out"
  else
    echo "e2e setup failed: the real-VS-Code test cannot run" >&2
    status=1
  fi
else
  echo "DAVE_VSCODE_E2E=0: the real-VS-Code test is skipped"
fi

step "node --test"
mkdir -p out
node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination=out/results.tap \
  out/test/ || status=1

passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' out/results.tap | tail -1)
failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' out/results.tap | tail -1)
skipped=$(sed -n 's/^# skipped \([0-9]*\)$/\1/p' out/results.tap | tail -1)
echo
echo "vscode: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
echo "VS Code tests took $((SECONDS - start)) s"
exit "$status"
