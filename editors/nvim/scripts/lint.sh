#!/usr/bin/env bash
# Lints the Neovim plugin's Lua (lua/ and plugin/) with luacheck and its .luacheckrc;
# any warning fails. Installs Debian's lua-check with apt-get when luacheck is missing.
set -euo pipefail

nvim_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bash "$nvim_dir/../../scripts/need-debian.sh" luacheck lua-check

color=()
[ -t 1 ] || color=(--no-color)
cd "$nvim_dir"
exec luacheck --quiet "${color[@]}" lua plugin
