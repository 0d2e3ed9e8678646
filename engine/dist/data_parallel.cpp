#include "engine/dist/data_parallel.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include "engine/metrics/metrics_logger.h"
#include "engine/train/interrupt.h"

namespace prefengine {

DataParallel::DataParallel(std::unique_ptr<Communicator> communicator, const DistributedOptions& options)
    : communicator_(std::move(communicator)), options_(options) {
  if (const char* fault = std::getenv("PREFENGINE_TEST_FAULT"); fault && *fault) {
    char mode[16] = {0};
    long long step = 0;
    if (std::sscanf(fault, "%d:%lld:%15s", &fault_rank_, &step, mode) != 3 ||
        (std::strcmp(mode, "exit") != 0 && std::strcmp(mode, "kill") != 0 && std::strcmp(mode, "hang") != 0 &&
         std::strcmp(mode, "sigint") != 0 && std::strcmp(mode, "sigterm") != 0 && std::strcmp(mode, "wait") != 0)) {
      throw std::invalid_argument(std::string("PREFENGINE_TEST_FAULT: expected RANK:STEP:exit|kill|hang|sigint|sigterm|wait, got '") +
                                  fault + "'");
    }
    fault_step_ = step;
    fault_mode_ = mode;
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::check_batch_size(int64_t batch_size, const std::string& where) const {
  if (batch_size % world_size() != 0) {
    throw std::invalid_argument(where + ": batch_size " + std::to_string(batch_size) +
                                " is the global batch and must split evenly over WORLD_SIZE " +
                                std::to_string(world_size()) + " ranks");
  }
}

at::Tensor DataParallel::shard(const at::Tensor& global_index) const {
  if (world_size() == 1) return global_index;
  const int64_t local = global_index.numel() / world_size();
  return global_index.slice(0, rank() * local, (rank() + 1) * local);
}

std::vector<int64_t> DataParallel::shard(const std::vector<int64_t>& global_index) const {
  if (world_size() == 1) return global_index;
  const size_t local = global_index.size() / static_cast<size_t>(world_size());
  const auto begin = global_index.begin() + static_cast<std::ptrdiff_t>(rank() * local);
  return std::vector<int64_t>(begin, begin + static_cast<std::ptrdiff_t>(local));
}

void DataParallel::average_gradients(at::Tensor& grads) {
  if (world_size() == 1) return;
  const auto start = std::chrono::steady_clock::now();
  const int64_t bucket = std::max<int64_t>(
      1, static_cast<int64_t>(options_.bucket_mb * 1024.0 * 1024.0) / static_cast<int64_t>(grads.element_size()));
  std::vector<at::Tensor> buckets;
  for (int64_t start = 0; start < grads.numel(); start += bucket) {
    buckets.push_back(grads.narrow(0, start, std::min(bucket, grads.numel() - start)));
  }
  communicator_->all_reduce_sum(buckets);
  grads.div_(static_cast<double>(world_size()));
  all_reduce_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++all_reduce_calls_;
}

void DataParallel::broadcast_parameters(at::Tensor& values) {
  if (world_size() == 1) return;
  at::NoGradGuard no_grad;
  communicator_->broadcast(values, /*root=*/0);
}

void DataParallel::broadcast_module(torch::nn::Module& module) {
  if (world_size() == 1) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors;
  for (const auto& p : module.parameters(/*recurse=*/true)) tensors.push_back(p);
  for (const auto& b : module.buffers(/*recurse=*/true)) tensors.push_back(b);
  if (tensors.empty()) return;
  // One buffer per dtype would be more general; the engine's parameters are fp32.
  std::vector<at::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}).to(at::kDouble));
  at::Tensor all = at::cat(flat);
  communicator_->broadcast(all, /*root=*/0);
  int64_t offset = 0;
  for (auto& t : tensors) {
    const int64_t n = t.numel();
    t.detach().copy_(all.narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
}

void DataParallel::check_replicas(const at::Tensor& values, const std::string& where) {
  if (world_size() == 1) return;
  // Bit patterns, not float sums: replicas must be identical, not merely close.
  const at::Tensor bits = values.detach().contiguous().view(at::kInt).to(at::kLong);
  const at::Tensor mine = at::stack({bits.sum(), (bits * (at::arange(bits.numel(), at::kLong) % 7919 + 1)).sum()});
  const at::Tensor all = communicator_->all_gather(mine).view({world_size(), 2});
  for (int r = 1; r < world_size(); ++r) {
    if (!at::equal(all[r], all[0])) {
      throw std::runtime_error(where + ": the parameters on rank " + std::to_string(r) +
                               " differ from rank 0's; the data-parallel replicas have diverged");
    }
  }
}

void DataParallel::reduce_means(MetricsRow& row, double rows) {
  if (world_size() == 1 || row.values.empty()) return;
  std::vector<double> sums;
  for (const auto& [name, value] : row.values) sums.push_back(value * rows);
  sums.push_back(rows);
  at::Tensor buffer = at::tensor(sums, at::kDouble);
  communicator_->all_reduce_sum(buffer);
  const double total_rows = buffer[-1].item<double>();
  for (size_t i = 0; i < row.values.size(); ++i) row.values[i].second = buffer[i].item<double>() / total_rows;
}

at::Tensor DataParallel::gather_rows(const at::Tensor& rows) {
  if (world_size() == 1) return rows;
  return communicator_->all_gather(rows.contiguous());
}

at::Tensor DataParallel::sharded_rows(int64_t n, const std::function<at::Tensor(int64_t, int64_t)>& fn) {
  if (world_size() == 1) return fn(0, n).to(at::kFloat);
  const int64_t per_rank = (n + world_size() - 1) / world_size();
  const int64_t begin = std::min<int64_t>(n, rank() * per_rank);
  const int64_t end = std::min<int64_t>(n, begin + per_rank);
  at::Tensor padded = at::zeros({per_rank}, at::kFloat);
  if (end > begin) {
    const at::Tensor mine = fn(begin, end).to(at::kFloat).reshape({-1});
    if (mine.numel() != end - begin) {
      throw std::logic_error("sharded_rows: expected " + std::to_string(end - begin) + " values, got " +
                             std::to_string(mine.numel()));
    }
    padded.narrow(0, 0, end - begin).copy_(mine);
  }
  return communicator_->all_gather(padded).narrow(0, 0, n).clone();
}

int DataParallel::agree_on_signal(int signal) {
  if (world_size() == 1) return signal;
  const at::Tensor all = communicator_->all_gather(at::tensor({static_cast<int64_t>(signal)}, at::kLong));
  for (int r = 0; r < world_size(); ++r) {
    if (const int64_t s = all[r].item<int64_t>()) return static_cast<int>(s);
  }
  return 0;
}

void DataParallel::maybe_inject_fault(int64_t global_step) const {
  if (fault_rank_ != rank() || global_step != fault_step_) return;
  std::fprintf(stderr, "PREFENGINE_TEST_FAULT: rank %d at step %lld: %s\n", rank(),
               static_cast<long long>(global_step), fault_mode_.c_str());
  std::fflush(stderr);
  if (fault_mode_ == "exit") std::_Exit(3);
  if (fault_mode_ == "kill") std::raise(SIGKILL);
  if (fault_mode_ == "sigint") std::raise(SIGINT);
  if (fault_mode_ == "sigterm") std::raise(SIGTERM);
  if (fault_mode_ == "sigint" || fault_mode_ == "sigterm") return;
  if (fault_mode_ == "wait") {
    while (pending_interrupt() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return;
  }
  for (;;) ::pause();  // hang: alive, sockets open, never answering
}

}  // namespace prefengine
