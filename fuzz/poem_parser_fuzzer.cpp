// libFuzzer target: the poem parser, the prompt's form, the pinyin parser and the Unihan line
// reader must never crash on any input; invalid UTF-8 may only raise std::invalid_argument.
// Built by scripts/fuzz.sh, or by CMake with -DPREFENGINE_BUILD_FUZZERS=ON and clang++.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "poem/pinyin.h"
#include "poem/poem_form.h"
#include "poem/poem_parser.h"
#include "poem/unihan_readings.h"

namespace g = prefengine::plugins::graders;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const g::ParsedPoem poem = g::parse_poem(text);
    for (const auto& line : poem.lines) {
      if (line.empty()) __builtin_trap();  // the parser never yields an empty line
    }
  } catch (const std::invalid_argument&) {
  }
  if (const auto syllable = g::parse_pinyin(text)) {
    const int group = g::xinyun_group(*syllable);
    if (group < 0 || group > 14) __builtin_trap();
  }
  const g::PoemForm form = g::requested_form(text);
  if (form.rows && *form.rows != 4 && *form.rows != 8) __builtin_trap();
  const auto table = g::UnihanReadings::from_text(text);
  (void)table->readings(U'流');
  return 0;
}
