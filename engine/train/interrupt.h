#pragma once
// SIGINT and SIGTERM during `prefengine run`: the handler only records the signal; the training
// loop looks at the record at each step boundary (after an optimizer step and its metrics row),
// writes a regular checkpoint of that step and throws Interrupted; the runner marks run.json
// "interrupted" and the CLI exits with 128 + the signal (130, 143). A second signal of the same
// kind ends the process at once (the default action), so a stuck run can still be killed.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace prefengine {

// Installs the handlers for SIGINT and SIGTERM (idempotent).
void install_interrupt_handlers();
// The signal received since the handlers were installed (the first one), or 0.
int pending_interrupt();
// Forgets a received signal (tests, and a process that handled it).
void clear_interrupt();
// "SIGINT", "SIGTERM", else "signal N".
std::string signal_name(int signal);

// The run stopped because of `signal`. global_step is the last completed step (-1 before the run
// started); the checkpoint of that step was written when checkpointed is true.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, int64_t global_step, const std::string& message)
      : std::runtime_error(message), signal_(signal), global_step_(global_step) {}
  int signal() const { return signal_; }
  int64_t global_step() const { return global_step_; }
  // What the process exits with: 128 + the signal, as a shell reports a process killed by it.
  int exit_status() const { return 128 + signal_; }

 private:
  int signal_;
  int64_t global_step_;
};

// Throws Interrupted (before the run started) when a signal has been received.
void throw_if_interrupted(const std::string& where);

}  // namespace prefengine
