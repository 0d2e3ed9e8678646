#include "engine/train/interrupt.h"

#include <csignal>

namespace prefengine {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_interrupt(int signal) {
  // Async-signal-safe: one store, or on a repeated signal the default action.
  if (g_signal == signal) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  if (g_signal == 0) g_signal = signal;
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int pending_interrupt() { return g_signal; }

void clear_interrupt() { g_signal = 0; }

std::string signal_name(int signal) {
  if (signal == SIGINT) return "SIGINT";
  if (signal == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(signal);
}

void throw_if_interrupted(const std::string& where) {
  if (const int signal = pending_interrupt()) {
    throw Interrupted(signal, -1, "interrupted by " + signal_name(signal) + " " + where);
  }
}

}  // namespace prefengine
