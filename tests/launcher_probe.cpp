// A stand-in for prefengine-engine in tests/launcher_test.cpp: reports what the launcher handed
// it. Prints its pid, each argument as "arg <i> <length> <bytes>", the runtime variables
// ("env NAME=value" or "env NAME unset") and what it read from stdin ("stdin <bytes>"); then exits
// with $PROBE_EXIT or raises signal $PROBE_SIGNAL.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>

#include <unistd.h>

int main(int argc, char** argv) {
  std::cout << "pid " << getpid() << "\n";
  for (int i = 0; i < argc; ++i) std::cout << "arg " << i << " " << std::string(argv[i]).size() << " " << argv[i] << "\n";
  for (const char* name : {"OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "LD_LIBRARY_PATH", "PREFENGINE_NO_REEXEC"}) {
    const char* value = std::getenv(name);
    if (value != nullptr) std::cout << "env " << name << "=" << value << "\n";
    else std::cout << "env " << name << " unset\n";
  }
  if (std::getenv("PROBE_READ_STDIN") != nullptr) {
    const std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    std::cout << "stdin " << in << "\n";
  }
  std::cout.flush();
  if (const char* sig = std::getenv("PROBE_SIGNAL")) {
    std::signal(std::atoi(sig), SIG_DFL);
    std::raise(std::atoi(sig));
  }
  const char* code = std::getenv("PROBE_EXIT");
  return code != nullptr ? std::atoi(code) : 0;
}
