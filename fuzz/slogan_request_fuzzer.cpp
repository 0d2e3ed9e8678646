// libFuzzer target: reading a slogan prompt (limits, Chinese numerals, quoted keywords) and
// counting a slogan must never crash; invalid UTF-8 may only raise std::invalid_argument.
// Built by scripts/fuzz.sh, or by CMake with -DPREFENGINE_BUILD_FUZZERS=ON and clang++.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "slogan/slogan_request.h"

namespace g = prefengine::plugins::graders;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const g::SloganRequest request = g::read_slogan_request(text);
    for (const auto& k : request.keywords) {
      if (k.empty()) __builtin_trap();  // quoted keywords are never empty
    }
    if (g::slogan_length(text) > size) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
