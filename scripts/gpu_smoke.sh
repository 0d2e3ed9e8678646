#!/usr/bin/env bash
# NCCL smoke test for a GPU host: one rank all-reduces a device buffer (and a CPU tensor, staged
# through the device) through prefengine's NCCL backend and checks the sum; exit 0 = OK.
#
#   scripts/gpu_smoke.sh            # picks the way by what the host has:
#   1. prefengine's Debian packages (scripts/apt-packages.txt) and CUDA + NCCL: the CMake build,
#      then build/bench/nccl_smoke and the NCCL unit test (which trains nothing, but takes the GPU
#      branch where a GPU is found).
#   2. otherwise only a LibTorch (pip's torch is enough) with CUDA's runtime and NCCL: compiles the
#      NCCL backend and bench/nccl_smoke.cpp with g++ straight against them into build-gpu-smoke/.
# Overrides: PREFENGINE_SMOKE_STANDALONE=1 forces 2; TORCH_DIR (a LibTorch root, or python's torch
# package dir), TORCH_LIB, CUDA_HOME, NCCL_ROOT (with include/nccl.h and lib/ or lib64/).
# More ranks: run one process per GPU with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${PREFENGINE_JOBS:-$(nproc)}
command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "gpu_smoke: no nvidia-smi on this host"

if [ -z "${PREFENGINE_SMOKE_STANDALONE:-}" ] && dpkg-query -W -f='${Status}' libtorch-dev 2>/dev/null | grep -q "ok installed"; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j "$jobs" --target nccl_smoke dist_test
  build/bench/nccl_smoke
  build/tests/dist_test --gtest_filter='NcclCommunicatorTest.*'
  exit 0
fi

py_path() { python3 -c "$1" 2>/dev/null || true; }
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
TORCH_DIR=${TORCH_DIR:-$(py_path 'import os, torch; print(os.path.dirname(torch.__file__))')}
[ -n "$TORCH_DIR" ] || { echo "gpu_smoke: no LibTorch found; set TORCH_DIR" >&2; exit 1; }
TORCH_INC=$TORCH_DIR/include
TORCH_LIB=${TORCH_LIB:-$TORCH_DIR/lib}
ABI=$(py_path 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
ABI=${ABI:-1}

# NCCL: NCCL_ROOT, CUDA's folder, the system, or pip's nvidia-nccl package.
NCCL_DIR=""
for d in ${NCCL_ROOT:-} "$CUDA_HOME" /usr $(py_path 'import nvidia.nccl as m; print(list(m.__path__)[0])'); do
  if [ -f "$d/include/nccl.h" ]; then NCCL_DIR=$d; break; fi
done
[ -n "$NCCL_DIR" ] || { echo "gpu_smoke: nccl.h not found; set NCCL_ROOT" >&2; exit 1; }
NCCL_SO=$(ls "$NCCL_DIR"/lib64/libnccl.so* "$NCCL_DIR"/lib/libnccl.so* "$NCCL_DIR"/lib/x86_64-linux-gnu/libnccl.so* 2>/dev/null | head -1 || true)
CUDART_SO=$(ls "$CUDA_HOME"/lib64/libcudart.so* "$CUDA_HOME"/lib/libcudart.so* 2>/dev/null | head -1 || true)
[ -n "$NCCL_SO" ] && [ -n "$CUDART_SO" ] || { echo "gpu_smoke: libnccl or libcudart not found" >&2; exit 1; }
echo "gpu_smoke: LibTorch $TORCH_DIR (lib $TORCH_LIB, C++11 ABI $ABI), NCCL $NCCL_SO, CUDA runtime $CUDART_SO"

out=build-gpu-smoke
mkdir -p "$out"
sources="engine/dist/communicator.cpp engine/dist/distributed_options.cpp engine/dist/rendezvous.cpp
         engine/dist/nccl_communicator.cpp bench/nccl_smoke.cpp"
libs="-ltorch_cpu -lc10"
# The smoke needs no gloo (and pip's LibTorch ships no gloo headers): stand in for it.
cat > "$out/no_gloo.cpp" <<'CPP'
#include <stdexcept>
#include "engine/dist/communicator.h"
namespace prefengine {
std::unique_ptr<Communicator> make_gloo_communicator(const DistributedEnv&, std::chrono::milliseconds) {
  throw std::runtime_error("gloo is not part of this smoke build");
}
}  // namespace prefengine
CPP
sources="$sources $out/no_gloo.cpp"
includes=""
for d in "$TORCH_INC" "$TORCH_INC/torch/csrc/api/include" "$NCCL_DIR/include" "$CUDA_HOME/include"; do
  [ "$d" = /usr/include ] || includes="$includes -isystem $d"  # -isystem /usr/include breaks libstdc++
done
g++ -std=c++17 -O1 -Wall -Wextra -D_GLIBCXX_USE_CXX11_ABI="$ABI" -DPREFENGINE_WITH_NCCL -I. $includes \
  $sources -o "$out/nccl_smoke" \
  -L"$TORCH_LIB" $libs "$NCCL_SO" "$CUDART_SO" -lpthread \
  -Wl,-rpath,"$TORCH_LIB" -Wl,-rpath,"$(dirname "$NCCL_SO")" -Wl,-rpath,"$(dirname "$CUDART_SO")"
"$out/nccl_smoke"
