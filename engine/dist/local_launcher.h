#pragma once
// `prefengine run --nproc N`: starts N ranks of this executable on this host with the torchrun
// variables set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1,
// MASTER_PORT), waits for all, and when one fails stops the others and says which rank failed and how.
#include <string>
#include <vector>

namespace prefengine {

struct LaunchOptions {
  int nproc = 1;                  // ranks to start
  int master_port = 0;            // the rendezvous port; 0 = pick a free one
  std::vector<std::string> args;  // each rank's arguments after the executable's name
  std::vector<std::pair<std::string, std::string>> env;  // extra environment for every rank
  double grace_s = 10;            // after a failure, seconds the others get after SIGTERM before SIGKILL
};

// Returns 0 when every rank exited with status 0. SIGINT/SIGTERM to the launcher is forwarded to
// every rank (each in a process group of its own, so a terminal's Ctrl-C reaches them once);
// ranks that then stop at a step boundary (exit 128 + the signal) are not failures, and the
// launcher returns 128 + the signal. A second signal is forwarded too and ranks that still run
// after grace_s are killed. Otherwise throws std::runtime_error naming the first rank that failed
// (exit status or signal), or, when that rank failed waiting for a rank that stopped responding
// (a hung rank), the rank that stopped; the others are killed.
int launch_local_ranks(const LaunchOptions& options);

// In a rank started by launch_local_ranks: records this process's error, and the peers it found
// had stopped responding (engine/dist/rendezvous.h stopped_peers), for the launcher's message.
// Does nothing in a process the launcher did not start.
void report_error_to_launcher(const std::string& message);

// A TCP port on 127.0.0.1 that nothing listens on right now.
int find_free_port();
// Throws std::runtime_error when something already listens on `port` at 127.0.0.1.
void check_port_free(int port);

}  // namespace prefengine
