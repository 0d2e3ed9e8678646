#!/bin/sh
# The plugin SDK end to end, as an outside project uses it: build examples/loss_plugin against the
# SDK of a built prefengine tree, check that the plugin exports the four plugin symbols, run the
# example's self-check and its loader check (the plugin loaded by name through
# prefengine::plugin_loader), and, for an install, train the toy model with it through
# `prefengine run`.
# usage: loss_sdk_test.sh install|build-tree <cmake> <prefengine build dir> <prefengine source dir>
#        [<prefengine>]
#   install:    cmake --install the SDK into a temporary prefix and find it with CMAKE_PREFIX_PATH
#   build-tree: find it with -Dprefengine_DIR=<build dir>; no engine run, but a check that the
#               package refuses another LibTorch (a stand-in Torch package of version 0.0.1)
# Without a built prefengine executable the install mode's last step is skipped (exit 77, ctest's
# SKIP).
set -eu
mode=$1
cmake=$2
build=$3
source=$4
engine=${5:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/prefengine-sdk.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

case "$mode" in
  install)
    "$cmake" --install "$build" --prefix "$work/prefix" --component sdk
    # Only the prefix: nothing from the source or build tree may leak into the outside project.
    find_sdk="-DCMAKE_PREFIX_PATH=$work/prefix"
    ;;
  build-tree)
    find_sdk="-Dprefengine_DIR=$build"
    ;;
  *) echo "unknown mode '$mode' (install or build-tree)"; exit 2 ;;
esac

launcher=""
if command -v ccache >/dev/null 2>&1; then launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
"$cmake" -S "$source/examples/loss_plugin" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  "$find_sdk" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF $launcher
"$cmake" --build "$work/build" -j1
# Where the package came from: the prefix or the build tree, never the other.
found=$(sed -n 's/^prefengine_DIR:[A-Z]*=//p' "$work/build/CMakeCache.txt")
case "$mode" in
  install) expected="$work/prefix/lib/cmake/prefengine" ;;
  build-tree) expected="$build" ;;
esac
if [ "$(cd "$found" && pwd -P)" != "$(cd "$expected" && pwd -P)" ]; then
  echo "prefengine was found in $found, expected $expected"
  exit 1
fi

plugin="$work/build/libprefengine_loss_robust_dpo.so"
test -f "$plugin" || { echo "no $plugin"; exit 1; }
for symbol in prefengine_plugin_abi_version prefengine_plugin_torch_version prefengine_plugin_info \
              prefengine_plugin_create; do
  if ! nm -D --defined-only "$plugin" | grep -qw "$symbol"; then
    echo "$plugin does not export $symbol"
    exit 1
  fi
done
echo "$plugin exports the four plugin symbols"

"$work/build/robust_dpo_check"
"$work/build/robust_dpo_load_check" "$work/build"

if [ "$mode" = build-tree ]; then
  # find_package(prefengine) must refuse a LibTorch other than the SDK's: a stand-in Torch package
  # that reports version 0.0.1.
  mkdir -p "$work/fake-torch"
  echo 'set(TORCH_FOUND TRUE)' > "$work/fake-torch/TorchConfig.cmake"
  echo 'set(PACKAGE_VERSION 0.0.1)
set(PACKAGE_VERSION_COMPATIBLE TRUE)' > "$work/fake-torch/TorchConfigVersion.cmake"
  if "$cmake" -S "$source/examples/loss_plugin" -B "$work/build-fake-torch" "$find_sdk" \
       -DTorch_DIR="$work/fake-torch" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF > "$work/fake-torch.log" 2>&1; then
    echo "find_package(prefengine) accepted LibTorch 0.0.1"
    exit 1
  fi
  # CMake wraps the message: compare it on one line
  if ! tr -s ' \n' '  ' < "$work/fake-torch.log" |
       grep -q "built with LibTorch [0-9][0-9.]*, but find_package(Torch) found LibTorch 0.0.1"; then
    cat "$work/fake-torch.log"
    echo "find_package(prefengine) failed without naming both LibTorch versions"
    exit 1
  fi
  echo "find_package(prefengine) refuses LibTorch 0.0.1"
  exit 0
fi

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
