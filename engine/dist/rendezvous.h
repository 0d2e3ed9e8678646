#pragma once
// The rendezvous every multi-rank backend starts from: a c10d TCPStore hosted by rank 0 at
// MASTER_ADDR:MASTER_PORT, joined by every rank within the timeout.
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "engine/dist/communicator.h"

namespace prefengine {

// "rank R of W (backend)": the prefix of every distributed error message.
std::string rank_context(const DistributedEnv& env, const std::string& backend);

// Starts (rank 0) or joins the store and waits until all ranks have joined; under torchrun
// (TORCHELASTIC_USE_AGENT_STORE=True) every rank joins the agent's store instead. Keys live under
// "prefengine/attempt_<TORCHELASTIC_RESTART_COUNT>/". Throws
// std::runtime_error naming the port when it is already in use, or the address when the others do
// not come within `timeout`.
c10::intrusive_ptr<c10d::Store> connect_store(const DistributedEnv& env, std::chrono::milliseconds timeout,
                                              const std::string& backend);

// The error for ranks that did not all arrive: names the address, the timeout and the likely causes.
std::runtime_error rendezvous_error(const DistributedEnv& env, const std::string& backend,
                                    std::chrono::milliseconds timeout, const std::string& detail);

// Which rank fell behind when a collective fails. Before each collective every rank posts its
// sequence number in the store (one small round trip); a rank that died or hangs stops posting,
// so the survivors can name it. The store lives on rank 0: when it does not answer, rank 0 is the
// one that is gone.
class PeerTracker {
 public:
  PeerTracker(c10::intrusive_ptr<c10d::Store> store, const DistributedEnv& env);
  // Call before every collective, in the same order on every rank.
  void enter_collective();
  // E.g. "rank 1 stopped at collective 20 while this rank is at 21"; empty when no rank is behind.
  // Waits at most `budget` for the store.
  std::string describe(std::chrono::milliseconds budget = std::chrono::seconds(2)) const;

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  DistributedEnv env_;
  int64_t sequence_ = 0;
};

// The ranks the last PeerTracker::describe() of this process found behind (a rank 0 whose store
// does not answer included): what the `--nproc` launcher reports as the rank that stopped.
std::vector<int> stopped_peers();

// "300 s"
std::string format_seconds(std::chrono::milliseconds timeout);

}  // namespace prefengine
