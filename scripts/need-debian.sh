#!/usr/bin/env bash
# need-debian.sh COMMAND PACKAGE: makes sure COMMAND is on the PATH, installing Debian's
# PACKAGE with apt-get when it is not (as root, or with passwordless sudo). Used by the
# test command for the tools its tests drive (luacheck, tmux). Exits 1 with one line
# saying what to install when it cannot.
set -euo pipefail
command_name="$1"
package="$2"
command -v "$command_name" >/dev/null 2>&1 && exit 0
sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo=(sudo -n)
fi
install() {
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$package" >/dev/null 2>&1
}
# A fresh machine may have no package lists yet: update once, then try again.
if ! command -v apt-get >/dev/null 2>&1 \
  || ! { install || { "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 && install; }; } \
  || ! command -v "$command_name" >/dev/null 2>&1; then
  echo "$command_name is missing and 'apt-get install $package' failed (needs apt and root): install $package" >&2
  exit 1
fi
