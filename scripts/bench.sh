#!/usr/bin/env bash
# Sets up (packages + build), installs Debian's python3-torch (the same LibTorch 1.13.1 and
# OpenBLAS as the engine; the Python side of every comparison) and runs every benchmark of
# bench/README.md against eager PyTorch, ending with issue 18's targets against the figures:
#   scripts/bench.sh [--repeats 3] [--only startup|toy|transformer|generation|sweep]
# About 25 minutes on 2 cores with the default repeats; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-torch
fi
exec /usr/bin/python3 bench/compare_python.py "$@"
