// NCCL smoke test for a GPU host: every rank fills a device buffer with (rank + 1), all-reduces it
// through prefengine's NCCL backend and checks that each element is 1 + 2 + ... + WORLD_SIZE.
// One rank:  build/bench/nccl_smoke
// N ranks:   torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) per process.
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include "engine/dist/communicator.h"
#include "engine/dist/nccl_communicator.h"

int main() {
  try {
    const prefengine::DistributedEnv env = prefengine::DistributedEnv::from_environment();
    prefengine::NcclCommunicator comm(env, std::chrono::seconds(60));
    const int64_t n = 1 << 20;
    std::vector<float> host(n, static_cast<float>(env.rank + 1));
    float* device = nullptr;
    if (cudaMalloc(&device, n * sizeof(float)) != cudaSuccess) throw std::runtime_error("cudaMalloc failed");
    cudaMemcpy(device, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    comm.all_reduce_sum_device(device, n, c10::ScalarType::Float);
    cudaMemcpy(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(device);
    const float expected = env.world_size * (env.world_size + 1) / 2.0f;
    int64_t wrong = 0;
    for (float v : host) wrong += v != expected;
    // The CPU-tensor path (staged through the device) too.
    at::Tensor cpu = at::full({1000}, static_cast<float>(env.rank + 1));
    comm.all_reduce_sum(cpu);
    wrong += (cpu != expected).sum().item<int64_t>();
    std::printf("nccl_smoke: rank %d of %d on device %d: %s (expected %g, %lld wrong elements)\n", env.rank,
                env.world_size, comm.device(), wrong == 0 ? "OK" : "FAILED", expected, static_cast<long long>(wrong));
    return wrong == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nccl_smoke: %s\n", e.what());
    return 1;
  }
}
