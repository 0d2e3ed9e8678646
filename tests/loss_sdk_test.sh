#!/bin/sh
# The plugin SDK end to end: install the SDK of a built tree into a temporary prefix, build
# examples/loss_plugin against it as an outside project would, check that the plugin exports the
# three plugin symbols, run the example's own self-check, and train the toy model with it through
# `prefengine run`.
# usage: loss_sdk_test.sh <cmake> <prefengine build dir> <prefengine source dir> [<prefengine>]
# Without a built prefengine executable the last step is skipped (exit 77, ctest's SKIP).
set -eu
cmake=$1
build=$2
source=$3
engine=${4:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/prefengine-sdk.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

"$cmake" --install "$build" --prefix "$work/prefix" --component sdk

launcher=""
if command -v ccache >/dev/null 2>&1; then launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
# Only the prefix: nothing from the source or build tree may leak into the outside project.
"$cmake" -S "$source/examples/loss_plugin" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF $launcher
"$cmake" --build "$work/build" -j1

plugin="$work/build/robust_dpo.so"
test -f "$plugin" || { echo "no $plugin"; exit 1; }
for symbol in prefengine_plugin_abi_version prefengine_plugin_info prefengine_plugin_create; do
  if ! nm -D --defined-only "$plugin" | grep -qw "$symbol"; then
    echo "$plugin does not export $symbol"
    exit 1
  fi
done
echo "robust_dpo.so exports the three plugin symbols"

"$work/build/robust_dpo_check"

if [ -z "$engine" ] || [ ! -x "$engine" ]; then
  echo "SKIP: no prefengine executable built (${engine:-none given}); the engine run was not tested"
  exit 77
fi

# Short toy run: SFT, then robust_dpo from the plugin directory named in the experiment file.
data="$source/configs/toy/data"
cat > "$work/robust_dpo.yaml" <<YAML
name: sdk-robust-dpo
seed: 0
threads: 1
plugin_paths: [$work/build]
model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 16, layers: 3}
stages:
  - {name: sft, kind: sft, data: {path: $data/sft_scenario1.jsonl},
     optimizer: {name: adam, lr: 1.0e-2}, batch_size: 4, steps: 50, log_every: 25}
  - {name: robust, kind: pairwise, loss: {plugin: robust_dpo, beta: 0.1, label_noise: 0.1},
     reference: frozen_copy, data: {path: $data/pairs.jsonl},
     optimizer: {name: adam, lr: 1.0e-3}, batch_size: 16, steps: 50, log_every: 25}
YAML
"$engine" run "$work/robust_dpo.yaml" --output "$work/run" --log-level warn
last=$(tail -n 1 "$work/run/metrics.jsonl")
echo "$last"
case "$last" in
  *'"stage":"robust"'*'"rewards/accuracies"'*) ;;
  *) echo "the last metrics row is not robust_dpo's"; exit 1 ;;
esac
echo "prefengine run trained the toy model with robust_dpo"
