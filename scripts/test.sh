#!/usr/bin/env bash
# Sets up (packages + build) and runs every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=${PREFENGINE_JOBS:-$(nproc)}
ctest --test-dir build --output-on-failure -j "$jobs" "$@"
