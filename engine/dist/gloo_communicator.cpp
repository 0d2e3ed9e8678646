// The gloo backend: LibTorch's c10d TCPStore for the rendezvous and ProcessGroupGloo for the
// collectives, both bounded by the configured timeout, so a dead or hung peer is an error here
// rather than a hang.
#include <cstdlib>
#include <stdexcept>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "engine/dist/communicator.h"
#include "engine/dist/rendezvous.h"

namespace prefengine {
namespace {

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::shared_ptr<::gloo::transport::Device> create_device(const DistributedEnv& env) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  // Every rank on one host: stay on the loopback interface, whatever the host name resolves to.
  if (is_loopback(env.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const DistributedEnv& env, std::chrono::milliseconds timeout)
      : env_(env), timeout_(timeout) {
    store_ = connect_store(env, timeout, "gloo");
    tracker_ = std::make_unique<PeerTracker>(store_, env);
    try {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(create_device(env));
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, env.rank, env.world_size, options);
    } catch (const std::exception& e) {
      throw rendezvous_error(env, "gloo", timeout, "connecting the gloo process group: " + describe_exception(e));
    }
  }

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  std::string backend() const override { return "gloo"; }

  void all_reduce_sum(std::vector<at::Tensor>& tensors) override {
    std::vector<c10::intrusive_ptr<c10d::Work>> pending;
    std::vector<std::vector<at::Tensor>> arguments(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      check_contiguous(tensors[i], "all_reduce");
      arguments[i] = {tensors[i]};
    }
    run("all_reduce", [&] {
      for (auto& argument : arguments) pending.push_back(group_->allreduce(argument));
      for (auto& work : pending) work->wait();
    });
  }

  at::Tensor all_gather(const at::Tensor& tensor) override {
    std::vector<at::Tensor> input{tensor.contiguous()};
    std::vector<std::vector<at::Tensor>> output(1);
    for (int r = 0; r < env_.world_size; ++r) output[0].push_back(at::empty_like(input[0]));
    run("all_gather", [&] { group_->allgather(output, input)->wait(); });
    return at::cat(output[0]);
  }

  void broadcast(at::Tensor& tensor, int root) override {
    check_contiguous(tensor, "broadcast");
    std::vector<at::Tensor> argument{tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    run("broadcast", [&] { group_->broadcast(argument, options)->wait(); });
  }

  void barrier() override {
    run("barrier", [&] { group_->barrier()->wait(); });
  }

 private:
  std::string context() const { return rank_context(env_, "gloo"); }
  std::string seconds() const { return format_seconds(timeout_); }

  static void check_contiguous(const at::Tensor& tensor, const char* op) {
    if (!tensor.is_contiguous()) throw std::invalid_argument(std::string(op) + ": expected a contiguous tensor");
  }

  template <typename F>
  void run(const char* op, F&& body) {
    try {
      tracker_->enter_collective();
      body();
    } catch (const std::exception& e) {
      const std::string peers = tracker_->describe();
      throw std::runtime_error(context() + ": " + op + " failed: " + describe_exception(e) + " -- " +
                               (peers.empty() ? "another rank died, or stopped responding" : peers + ": it died, or stopped responding") +
                               " for longer than distributed.timeout_s (" + seconds() + ")");
    }
  }

  DistributedEnv env_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::unique_ptr<PeerTracker> tracker_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;  // after store_: destroyed first
};

}  // namespace

std::unique_ptr<Communicator> make_gloo_communicator(const DistributedEnv& env, std::chrono::milliseconds timeout) {
  return std::make_unique<GlooCommunicator>(env, timeout);
}

}  // namespace prefengine
