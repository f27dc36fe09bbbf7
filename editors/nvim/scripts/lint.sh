#!/usr/bin/env bash
# Lints the Neovim plugin's Lua (lua/ and plugin/) with luacheck and its .luacheckrc;
# any warning fails. Installs Debian's lua-check with apt-get when luacheck is missing.
set -euo pipefail

nvim_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v luacheck >/dev/null 2>&1; then
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  fi
  install() {
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq lua-check >/dev/null 2>&1
  }
  # A fresh machine may have no package lists yet: update once, then try again.
  if ! command -v apt-get >/dev/null 2>&1 \
    || ! { install || { "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 && install; }; } \
    || ! command -v luacheck >/dev/null 2>&1; then
    echo "lint.sh: luacheck is missing and 'apt-get install lua-check' failed (needs apt and root); install luacheck" >&2
    exit 1
  fi
fi

color=()
[ -t 1 ] || color=(--no-color)
cd "$nvim_dir"
exec luacheck --quiet "${color[@]}" lua plugin
