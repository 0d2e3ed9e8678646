#pragma once
// Collectives across the ranks of a data-parallel run, behind one interface with three backends:
// a single process (no-ops), gloo through LibTorch's c10d (CPU tensors) and NCCL (GPU).
//
// Ranks find each other by the torchrun / SLURM conventions: RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR and MASTER_PORT (SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID when RANK is unset),
// so torchrun-style launchers, srun and `prefengine run --nproc N` all work.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "engine/dist/distributed_options.h"

namespace prefengine {

// Where this process sits in the run, read from the environment.
struct DistributedEnv {
  int rank = 0;                        // 0 .. world_size-1
  int world_size = 1;                  // processes in the run
  int local_rank = 0;                  // rank on this node (picks the GPU)
  std::string master_addr = "127.0.0.1";  // the host of rank 0's rendezvous store
  int master_port = 29500;             // its TCP port

  // Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (falling back to SLURM's
  // variables). Throws std::invalid_argument naming a malformed variable.
  static DistributedEnv from_environment();
};

class Communicator {
 public:
  virtual ~Communicator();

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;

  // Sums each tensor across ranks, in place. Every rank passes the same shapes in the same order;
  // the collectives are issued together and waited for together. Throws std::runtime_error when a
  // peer dies or the timeout passes.
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors) = 0;
  // Every rank's `tensor` (the same shape on every rank) stacked along dim 0 in rank order.
  virtual at::Tensor all_gather(const at::Tensor& tensor) = 0;
  // Copies `root`'s tensor into every rank's `tensor`, in place.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  virtual void barrier() = 0;

  void all_reduce_sum(at::Tensor& tensor) {
    std::vector<at::Tensor> one{tensor};
    all_reduce_sum(one);
  }
};

// A world of one: every collective returns its input.
std::unique_ptr<Communicator> make_single_process_communicator();

// gloo through c10d: rank 0 hosts a TCPStore at master_addr:master_port, every rank builds a
// ProcessGroupGloo on it. `timeout` bounds the rendezvous and every collective.
std::unique_ptr<Communicator> make_gloo_communicator(const DistributedEnv& env, std::chrono::milliseconds timeout);

// NCCL with the ncclUniqueId exchanged through a TCPStore; device LOCAL_RANK % devices.
// Throws std::runtime_error when the engine was built without NCCL or there is no usable GPU.
std::unique_ptr<Communicator> make_nccl_communicator(const DistributedEnv& env, std::chrono::milliseconds timeout);

// True when this build has the NCCL backend.
bool nccl_compiled_in();

// The communicator the options and environment ask for: single process when WORLD_SIZE is 1 (or
// unset), otherwise options.backend (auto = gloo).
std::unique_ptr<Communicator> create_communicator(const DistributedOptions& options,
                                                  const DistributedEnv& env = DistributedEnv::from_environment());

// c10d errors carry a C++ backtrace in what(); this is the message without it.
std::string describe_exception(const std::exception& e);

}  // namespace prefengine
