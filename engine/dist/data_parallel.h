#pragma once
// Data parallelism for the training loop, on top of a Communicator:
//  - every rank draws the same global batch (the same seeded sampler) and keeps its own contiguous,
//    disjoint slice, so N ranks together see exactly what one rank sees with the same batch_size;
//  - the flat gradient is summed in buckets and divided by the world size before the optimizer
//    step, so every rank applies the same update to the same weights;
//  - logged metrics are reduced over ranks (means weighted by rows), so rank 0 writes global values;
//  - work over all rows (reference log-probs) is split into shards and gathered.
#include <cstdint>
#include <functional>
#include <vector>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "engine/dist/communicator.h"
#include "engine/dist/distributed_options.h"

namespace prefengine {

struct MetricsRow;
}  // namespace prefengine
namespace torch::nn {
class Module;
}
namespace prefengine {

class DataParallel {
 public:
  DataParallel(std::unique_ptr<Communicator> communicator, const DistributedOptions& options);
  ~DataParallel();

  int rank() const { return communicator_->rank(); }
  int world_size() const { return communicator_->world_size(); }
  // Rank 0 alone writes the run directory: metrics, logs, checkpoints, run.json.
  bool is_writer() const { return rank() == 0; }
  Communicator& communicator() { return *communicator_; }

  // Throws std::invalid_argument naming the stage when batch_size does not split evenly.
  void check_batch_size(int64_t batch_size, const std::string& where) const;
  // This rank's slice of a global batch of row indices.
  at::Tensor shard(const at::Tensor& global_index) const;
  std::vector<int64_t> shard(const std::vector<int64_t>& global_index) const;

  // Sums the flat gradient over ranks in buckets of bucket_mb and divides by the world size.
  void average_gradients(at::Tensor& grads);
  // Wall time spent in average_gradients so far (waiting for the slowest rank included), and calls.
  double all_reduce_seconds() const { return all_reduce_seconds_; }
  int64_t all_reduce_calls() const { return all_reduce_calls_; }
  // Gives every rank rank 0's parameter values (they start equal by seeding; this makes it sure).
  void broadcast_parameters(at::Tensor& values);
  // The same for every parameter and buffer of a module, in one collective: called before a stage
  // copies its reference model, so that policy and reference are rank 0's on every rank.
  void broadcast_module(torch::nn::Module& module);
  // Throws std::runtime_error when the parameters are no longer bit-identical on every rank.
  void check_replicas(const at::Tensor& values, const std::string& where);

  // Every value in `row` is a mean over `rows` local rows; replaces each with the mean over all
  // ranks' rows. Every rank must hold the same names in the same order.
  void reduce_means(MetricsRow& row, double rows);
  // The 1-D tensor of every rank's rows, in rank order (every rank passes the same length).
  at::Tensor gather_rows(const at::Tensor& rows);
  // fn(begin, end) -> a 1-D float tensor of end-begin values; each rank computes a contiguous shard
  // of [0, n) and every rank gets all n values back, in order.
  at::Tensor sharded_rows(int64_t n, const std::function<at::Tensor(int64_t, int64_t)>& fn);

  // The first nonzero of every rank's `signal`, in rank order (a one-element all-gather when
  // world_size > 1): every rank calls it at the same step boundary and so stops at the same step.
  int agree_on_signal(int signal);

  // Tests only: PREFENGINE_TEST_FAULT=RANK:STEP:MODE makes rank RANK, after optimizer step STEP,
  // exit (status 3), kill itself (SIGKILL), hang (sleep forever with its sockets open), send
  // itself SIGINT or SIGTERM (sigint, sigterm), or wait until a signal arrives (wait).
  void maybe_inject_fault(int64_t global_step) const;

 private:
  std::unique_ptr<Communicator> communicator_;
  DistributedOptions options_;
  double all_reduce_seconds_ = 0;
  int64_t all_reduce_calls_ = 0;
  int fault_rank_ = -1;
  int64_t fault_step_ = 0;
  std::string fault_mode_;
};

}  // namespace prefengine
