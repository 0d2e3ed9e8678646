#include "engine/dist/rendezvous.h"

#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace prefengine {

std::string rank_context(const DistributedEnv& env, const std::string& backend) {
  return "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + " (" + backend + ")";
}

std::string format_seconds(std::chrono::milliseconds timeout) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", static_cast<double>(timeout.count()) / 1000.0);
  return text;
}

c10::intrusive_ptr<c10d::Store> connect_store(const DistributedEnv& env, std::chrono::milliseconds timeout,
                                              const std::string& backend) {
  // torchrun's agent already hosts a store at MASTER_PORT and says so; every rank joins it then.
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  const bool agent_store = agent && std::string(agent) == "True";
  const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = env.rank == 0 && !agent_store;
  options.numWorkers = static_cast<std::size_t>(env.world_size);
  options.waitWorkers = !agent_store;
  options.timeout = timeout;
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    // Our keys apart from the agent's, and from an earlier attempt's after an elastic restart.
    return c10::make_intrusive<c10d::PrefixStore>(
        "prefengine/attempt_" + std::string(restart && *restart ? restart : "0"), store);
  } catch (const std::exception& e) {
    const std::string message = describe_exception(e);
    if (options.isServer && message.find("Address already in use") != std::string::npos) {
      throw std::runtime_error(rank_context(env, backend) + ": MASTER_PORT " + std::to_string(env.master_port) +
                               " is already in use on this host, so rank 0 cannot start the rendezvous store at " +
                               where + " (another run? choose another MASTER_PORT or --master-port)");
    }
    throw rendezvous_error(env, backend, timeout, message);
  }
}

std::runtime_error rendezvous_error(const DistributedEnv& env, const std::string& backend,
                                    std::chrono::milliseconds timeout, const std::string& detail) {
  return std::runtime_error(rank_context(env, backend) + ": rendezvous at " + env.master_addr + ":" +
                            std::to_string(env.master_port) + " failed within " + format_seconds(timeout) +
                            " (are all " + std::to_string(env.world_size) +
                            " ranks running, with the same MASTER_ADDR and MASTER_PORT?): " + detail);
}

namespace {
std::string progress_key(int rank) { return "collectives/" + std::to_string(rank); }

std::mutex g_stopped_mutex;
std::vector<int> g_stopped_ranks;

void note_stopped_ranks(std::vector<int> ranks) {
  std::lock_guard<std::mutex> lock(g_stopped_mutex);
  g_stopped_ranks = std::move(ranks);
}

struct Diagnosis {
  std::string text;
  std::vector<int> stopped;
};
}  // namespace

std::vector<int> stopped_peers() {
  std::lock_guard<std::mutex> lock(g_stopped_mutex);
  return g_stopped_ranks;
}

PeerTracker::PeerTracker(c10::intrusive_ptr<c10d::Store> store, const DistributedEnv& env)
    : store_(std::move(store)), env_(env) {}

void PeerTracker::enter_collective() {
  ++sequence_;
  store_->add(progress_key(env_.rank), 1);  // add never blocks on a missing key, unlike get
}

std::string PeerTracker::describe(std::chrono::milliseconds budget) const {
  // On a thread of its own: a store on a frozen rank 0 would block for the whole store timeout.
  auto answer = std::make_shared<std::promise<Diagnosis>>();
  std::future<Diagnosis> result = answer->get_future();
  std::thread([store = store_, env = env_, own = sequence_, answer] {
    Diagnosis d;
    try {
      for (int r = 0; r < env.world_size; ++r) {
        if (r == env.rank) continue;
        const int64_t theirs = store->add(progress_key(r), 0);
        if (theirs < own) {
          d.text += (d.text.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) +
                    " stopped at collective " + std::to_string(theirs) + " while this rank is at " + std::to_string(own);
          d.stopped.push_back(r);
        }
      }
    } catch (const std::exception& e) {
      d.text = "the rendezvous store on rank 0 does not answer, so rank 0 is gone (" + describe_exception(e) + ")";
      d.stopped = {0};
    }
    answer->set_value(d);
  }).detach();
  if (result.wait_for(budget) != std::future_status::ready) {
    note_stopped_ranks({0});
    return "the rendezvous store on rank 0 did not answer within " + format_seconds(budget) + ", so rank 0 hangs or is gone";
  }
  Diagnosis d = result.get();
  note_stopped_ranks(d.stopped);
  return d.text;
}

}  // namespace prefengine
