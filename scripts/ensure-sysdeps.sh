#!/usr/bin/env bash
# Make sure the Debian/Ubuntu packages vol3d needs are present: Qt's XCB platform plugin
# libraries, Mesa GL (llvmpipe when there is no GPU) and, for `make test`, Xvfb.
# Installs them when we can (root or password-less sudo); otherwise prints the one
# command to run and fails.
set -euo pipefail
mode=${1:-run}   # run | test

pkgs=(libgl1 libegl1 libglx-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-cursor0
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
      libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 libfontconfig1 libdbus-1-3
      python3-venv)
[ "$mode" = test ] && pkgs+=(xvfb xauth)

command -v dpkg-query >/dev/null 2>&1 || { echo "ensure-sysdeps: not a Debian/Ubuntu system; skipping package check" >&2; exit 0; }

missing=()
for p in "${pkgs[@]}"; do
  # python3-venv is only needed when the interpreter cannot make a venv by itself
  if [ "$p" = python3-venv ] && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" = 0 ]; then
  echo "ensure-sysdeps: installing ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive $cmd -qq) >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "ensure-sysdeps: installing ${missing[*]} with sudo"
  (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive $cmd -qq) >/dev/null
else
  echo "vol3d needs system packages that are missing. Run this once, then try again:" >&2
  echo "    sudo apt-get update && sudo $cmd" >&2
  exit 1
fi
