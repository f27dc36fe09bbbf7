#!/usr/bin/env bash
# Builds the release artifacts into dist/ (issue 28): the dave-lsp wheel and sdist,
# and the VS Code extension (dist/dave-lsp-<version>.vsix) with that wheel inside, from
# which the extension installs its own server. Needs the project's venv (setuptools;
# scripts/setup.sh makes it) and Node 20 with editors/vscode's npm packages (npm ci).
# PYTHON overrides the Python that builds (default: .venv/bin/python, else python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
export npm_config_loglevel="${npm_config_loglevel:-error}"

step() { printf '\n== %s\n' "$*"; }
start=$SECONDS
mkdir -p dist
# Only this version's artifacts: an older wheel left in dist/ must not ship.
rm -f dist/dave_lsp-*.whl dist/dave_lsp-*.tar.gz dist/dave-lsp-*.vsix

step "wheel and sdist (setuptools' PEP 517 hooks; no network)"
# A stale build/lib would carry deleted modules into the wheel.
rm -rf build/lib build/bdist.*
wheel="$("$python" -c 'import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))' dist 2>/dev/null | tail -1)"
sdist="$("$python" -c 'import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))' dist 2>/dev/null | tail -1)"
echo "dist/$wheel"
echo "dist/$sdist"

step "VS Code extension with the wheel inside"
cd editors/vscode
if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi
DAVE_WHEEL="$root/dist/$wheel" npm run --silent package
version="$(node -p 'require("./package.json").version')"
cp dave-lsp.vsix "$root/dist/dave-lsp-$version.vsix"
cd "$root"
echo "dist/dave-lsp-$version.vsix"

step "done in $((SECONDS - start)) s"
ls -l dist/
