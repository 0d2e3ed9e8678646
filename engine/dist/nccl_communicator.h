#pragma once
// The NCCL backend (built only when CMake finds nccl.h and libnccl; PREFENGINE_WITH_NCCL).
//
// CUDA tensors are reduced in place on the device. CPU tensors (this LibTorch is CPU-only) are
// staged through a device buffer, so the backend also works for a CPU-built engine on a GPU host.
// The raw-pointer form serves programs that own device memory themselves (bench/nccl_smoke.cpp).
// Every wait polls with a deadline and aborts the communicator when the timeout passes, so a dead
// or hung peer is an error, not a hang.
#include <chrono>
#include <cstdint>
#include <memory>

#include <c10/core/ScalarType.h>

#include "engine/dist/communicator.h"

namespace prefengine {

class NcclCommunicator final : public Communicator {
 public:
  // Picks device LOCAL_RANK % devices, exchanges the ncclUniqueId through a TCPStore (when
  // WORLD_SIZE > 1) and creates the communicator. Throws std::runtime_error when there is no
  // usable GPU, naming what CUDA reported.
  NcclCommunicator(const DistributedEnv& env, std::chrono::milliseconds timeout);
  ~NcclCommunicator() override;

  int rank() const override;
  int world_size() const override;
  std::string backend() const override { return "nccl"; }
  int device() const;

  using Communicator::all_reduce_sum;
  void all_reduce_sum(std::vector<at::Tensor>& tensors) override;
  at::Tensor all_gather(const at::Tensor& tensor) override;
  void broadcast(at::Tensor& tensor, int root) override;
  void barrier() override;

  // Sums `count` elements of `type` at `device_buffer` (memory on device()) across ranks, in place,
  // and waits for the result.
  void all_reduce_sum_device(void* device_buffer, int64_t count, c10::ScalarType type);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace prefengine
