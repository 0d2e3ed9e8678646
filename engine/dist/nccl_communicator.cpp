#include "engine/dist/nccl_communicator.h"

#include <cstring>
#include <stdexcept>
#include <thread>

#include <ATen/ATen.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include "engine/dist/rendezvous.h"

namespace prefengine {
namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Float: return ncclFloat32;
    case c10::ScalarType::Double: return ncclFloat64;
    case c10::ScalarType::Half: return ncclFloat16;
    case c10::ScalarType::BFloat16: return ncclBfloat16;
    case c10::ScalarType::Int: return ncclInt32;
    case c10::ScalarType::Long: return ncclInt64;
    case c10::ScalarType::Char: return ncclInt8;
    case c10::ScalarType::Byte: return ncclUint8;
    default: throw std::invalid_argument(std::string("nccl: unsupported dtype ") + c10::toString(type));
  }
}

}  // namespace

bool nccl_compiled_in() { return true; }

struct NcclCommunicator::State {
  DistributedEnv env;
  std::chrono::milliseconds timeout{};
  int device = 0;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  void* staging = nullptr;  // device buffer for CPU tensors
  size_t staging_bytes = 0;
  bool aborted = false;
  c10::intrusive_ptr<c10d::Store> store;  // more than one rank: the rendezvous store
  std::unique_ptr<PeerTracker> tracker;   // and who fell behind, when something fails

  std::string context() const { return rank_context(env, "nccl"); }

  void check_cuda(cudaError_t status, const char* what) const {
    if (status != cudaSuccess) {
      throw std::runtime_error(context() + ": " + what + ": " + cudaGetErrorName(status) + " (" +
                               cudaGetErrorString(status) + ")");
    }
  }

  [[noreturn]] void fail(const std::string& op, const std::string& why) {
    if (comm && !aborted) {
      ncclCommAbort(comm);  // frees the communicator and stops its kernels
      aborted = true;
      comm = nullptr;
    }
    const std::string peers = tracker ? tracker->describe() : "";
    throw std::runtime_error(context() + ": " + op + " failed: " + why + " -- " +
                             (peers.empty() ? "another rank died, or stopped responding" : peers + ": it died, or stopped responding") +
                             " for longer than distributed.timeout_s (" + format_seconds(timeout) + ")");
  }

  // Non-blocking communicators return ncclInProgress; poll until the call has really happened.
  void settle(ncclResult_t result, const std::string& op) {
    const auto deadline = Clock::now() + timeout;
    while (result == ncclInProgress) {
      if (Clock::now() > deadline) fail(op, "NCCL did not finish within the timeout");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ncclCommGetAsyncError(comm, &result);
    }
    if (result != ncclSuccess) {
      fail(op, std::string(ncclGetErrorString(result)) + ": " + (comm ? ncclGetLastError(comm) : ""));
    }
  }

  void wait(const std::string& op) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const cudaError_t status = cudaStreamQuery(stream);
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) fail(op, std::string("CUDA: ") + cudaGetErrorString(status));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        fail(op, std::string(ncclGetErrorString(async)) + ": " + ncclGetLastError(comm));
      }
      if (Clock::now() > deadline) fail(op, "no result within the timeout");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void* staging_buffer(size_t bytes) {
    if (bytes > staging_bytes) {
      if (staging) cudaFree(staging);
      staging = nullptr;
      check_cuda(cudaMalloc(&staging, bytes), "cudaMalloc of the staging buffer");
      staging_bytes = bytes;
    }
    return staging;
  }

  // Before every collective.
  void begin(const std::string& op) {
    if (aborted) throw std::runtime_error(context() + ": " + op + ": the communicator was aborted by an earlier failure");
    if (tracker) tracker->enter_collective();
  }
};

NcclCommunicator::NcclCommunicator(const DistributedEnv& env, std::chrono::milliseconds timeout)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.env = env;
  s.timeout = timeout;
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    throw std::runtime_error(
        s.context() + ": no usable CUDA device on this host (cudaGetDeviceCount: " +
        (status != cudaSuccess ? std::string(cudaGetErrorName(status)) + ", " + cudaGetErrorString(status)
                               : std::string("0 devices")) +
        "); the NCCL backend needs a GPU: use distributed.backend gloo for CPU runs");
  }
  s.device = env.local_rank % devices;
  s.check_cuda(cudaSetDevice(s.device), "cudaSetDevice");

  ncclUniqueId id;
  if (env.world_size == 1) {
    s.settle(ncclGetUniqueId(&id), "ncclGetUniqueId");
  } else {
    s.store = connect_store(env, timeout, "nccl");
    auto& store = s.store;
    const std::string key = "nccl_unique_id";
    if (env.rank == 0) {
      s.settle(ncclGetUniqueId(&id), "ncclGetUniqueId");
      const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
      store->set(key, std::vector<uint8_t>(bytes, bytes + sizeof id));
    }
    std::vector<uint8_t> bytes;
    try {
      bytes = store->get(key);  // waits up to the store's timeout
    } catch (const std::exception& e) {
      throw rendezvous_error(env, "nccl", timeout, "no ncclUniqueId from rank 0: " + describe_exception(e));
    }
    if (bytes.size() != sizeof id) throw std::runtime_error(s.context() + ": malformed ncclUniqueId in the store");
    std::memcpy(&id, bytes.data(), sizeof id);
    s.tracker = std::make_unique<PeerTracker>(s.store, env);
  }
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so that init and collectives can be timed out and aborted
  s.settle(ncclCommInitRankConfig(&s.comm, env.world_size, id, env.rank, &config), "ncclCommInitRankConfig");
  s.check_cuda(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
}

NcclCommunicator::~NcclCommunicator() {
  State& s = *state_;
  if (s.comm) {
    // A clean shutdown flushes outstanding work; when a peer is gone it cannot, so after the
    // timeout the communicator is aborted instead of waited for forever.
    ncclResult_t result = ncclCommFinalize(s.comm);
    const auto deadline = Clock::now() + s.timeout;
    while (result == ncclInProgress && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ncclCommGetAsyncError(s.comm, &result);
    }
    if (result == ncclSuccess) ncclCommDestroy(s.comm);
    else ncclCommAbort(s.comm);
  }
  if (s.staging) cudaFree(s.staging);
  if (s.stream) cudaStreamDestroy(s.stream);
}

int NcclCommunicator::rank() const { return state_->env.rank; }
int NcclCommunicator::world_size() const { return state_->env.world_size; }
int NcclCommunicator::device() const { return state_->device; }

void NcclCommunicator::all_reduce_sum_device(void* device_buffer, int64_t count, c10::ScalarType type) {
  State& s = *state_;
  s.begin("all_reduce");
  s.settle(ncclAllReduce(device_buffer, device_buffer, static_cast<size_t>(count), nccl_type(type), ncclSum, s.comm,
                         s.stream),
           "all_reduce");
  s.wait("all_reduce");
}

void NcclCommunicator::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  State& s = *state_;
  s.begin("all_reduce");
  // Work LibTorch queued on its own streams must finish before NCCL reads the buffers.
  s.check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  for (auto& tensor : tensors) {
    if (!tensor.is_contiguous()) throw std::invalid_argument("all_reduce: expected a contiguous tensor");
    const size_t bytes = tensor.numel() * tensor.element_size();
    const ncclDataType_t type = nccl_type(tensor.scalar_type());
    if (tensor.is_cuda()) {
      s.settle(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), type, ncclSum, s.comm, s.stream),
               "all_reduce");
      continue;
    }
    void* buffer = s.staging_buffer(bytes);
    s.check_cuda(cudaMemcpyAsync(buffer, tensor.data_ptr(), bytes, cudaMemcpyHostToDevice, s.stream), "cudaMemcpy");
    s.settle(ncclAllReduce(buffer, buffer, tensor.numel(), type, ncclSum, s.comm, s.stream), "all_reduce");
    s.check_cuda(cudaMemcpyAsync(tensor.data_ptr(), buffer, bytes, cudaMemcpyDeviceToHost, s.stream), "cudaMemcpy");
    s.wait("all_reduce");  // the staging buffer is reused by the next tensor
  }
  s.wait("all_reduce");
}

at::Tensor NcclCommunicator::all_gather(const at::Tensor& tensor) {
  State& s = *state_;
  s.begin("all_gather");
  const at::Tensor input = tensor.contiguous();
  std::vector<int64_t> sizes = input.sizes().vec();
  if (sizes.empty()) throw std::invalid_argument("all_gather: expected a tensor with at least one dimension");
  sizes[0] *= s.env.world_size;
  at::Tensor output = at::empty(sizes, input.options());
  const size_t bytes = input.numel() * input.element_size();
  const ncclDataType_t type = nccl_type(input.scalar_type());
  s.check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  if (input.is_cuda()) {
    s.settle(ncclAllGather(input.data_ptr(), output.data_ptr(), input.numel(), type, s.comm, s.stream), "all_gather");
  } else {
    auto* buffer = static_cast<char*>(s.staging_buffer(bytes * (s.env.world_size + 1)));
    char* gathered = buffer + bytes;
    s.check_cuda(cudaMemcpyAsync(buffer, input.data_ptr(), bytes, cudaMemcpyHostToDevice, s.stream), "cudaMemcpy");
    s.settle(ncclAllGather(buffer, gathered, input.numel(), type, s.comm, s.stream), "all_gather");
    s.check_cuda(cudaMemcpyAsync(output.data_ptr(), gathered, bytes * s.env.world_size, cudaMemcpyDeviceToHost, s.stream),
                 "cudaMemcpy");
  }
  s.wait("all_gather");
  return output;
}

void NcclCommunicator::broadcast(at::Tensor& tensor, int root) {
  State& s = *state_;
  s.begin("broadcast");
  if (!tensor.is_contiguous()) throw std::invalid_argument("broadcast: expected a contiguous tensor");
  const size_t bytes = tensor.numel() * tensor.element_size();
  const ncclDataType_t type = nccl_type(tensor.scalar_type());
  s.check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  if (tensor.is_cuda()) {
    s.settle(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), type, root, s.comm, s.stream), "broadcast");
  } else {
    void* buffer = s.staging_buffer(bytes);
    s.check_cuda(cudaMemcpyAsync(buffer, tensor.data_ptr(), bytes, cudaMemcpyHostToDevice, s.stream), "cudaMemcpy");
    s.settle(ncclBroadcast(buffer, buffer, tensor.numel(), type, root, s.comm, s.stream), "broadcast");
    s.check_cuda(cudaMemcpyAsync(tensor.data_ptr(), buffer, bytes, cudaMemcpyDeviceToHost, s.stream), "cudaMemcpy");
  }
  s.wait("broadcast");
}

void NcclCommunicator::barrier() {
  at::Tensor one = at::ones({1}, at::kFloat);
  std::vector<at::Tensor> tensors{one};
  all_reduce_sum(tensors);
}

std::unique_ptr<Communicator> make_nccl_communicator(const DistributedEnv& env, std::chrono::milliseconds timeout) {
  return std::make_unique<NcclCommunicator>(env, timeout);
}

}  // namespace prefengine
