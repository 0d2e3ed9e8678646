// libFuzzer target: the math answer extractor and everything behind it (normaliser, evaluator,
// equivalence, arithmetic check) must never crash, hang or read out of bounds on any input.
// Built by scripts/fuzz.sh, or by CMake with -DPREFENGINE_BUILD_FUZZERS=ON and clang++.
#include <cstddef>
#include <cstdint>
#include <string>

#include "math/answer_equivalence.h"
#include "math/answer_extractor.h"
#include "math/answer_normalizer.h"
#include "math/arithmetic_check.h"
#include "math/math_expression.h"

namespace g = prefengine::plugins::graders;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto boxed = g::extract_boxed(text);
  const auto answer = g::extract_final_answer(text);
  if (boxed && answer && boxed->size() > text.size()) __builtin_trap();
  // The first line against the rest: two arbitrary answers compared.
  const size_t nl = text.find('\n');
  const std::string left = text.substr(0, nl);
  const std::string right = nl == std::string::npos ? text : text.substr(nl + 1);
  (void)g::answers_equivalent(left, right);
  const std::string normalized = g::normalize_answer(text);
  (void)g::evaluate_expression(normalized, 1);
  (void)g::evaluate_expression(text, 0);
  (void)g::check_arithmetic(text);
  (void)g::working_tokens(text);
  return 0;
}
