#!/bin/sh
# The plugin SDK end to end: install the SDK of a built tree into a temporary prefix, build
# examples/loss_plugin against it as an outside project would, check that the plugin exports the
# three plugin symbols, and run the example's own self-check.
# usage: loss_sdk_test.sh <cmake> <prefengine build dir> <prefengine source dir>
set -eu
cmake=$1
build=$2
source=$3
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
