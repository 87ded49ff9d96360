#!/usr/bin/env bash
# Installs the Debian packages wattmoe needs to build and test (idempotent; skips what is present).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libopenblas-dev nlohmann-json3-dev libcli11-dev libfmt-dev
      libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev python3 bible-kjv fortunes
      libcpp-httplib-dev curl python3-venv python3-dev python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
