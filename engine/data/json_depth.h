#pragma once
// A JSONL line nested thousands of levels deep parses, but printing or walking it recurses once a
// level and overflows the stack (a crash, not an error): the readers refuse such a line first.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace prefengine {

constexpr int64_t kMaxJsonDepth = 256;

// The deepest nesting of [ and { in `text`, outside strings.
inline int64_t json_nesting_depth(const std::string& text) {
  int64_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// std::invalid_argument "<where>: JSON nested N levels deep, expected at most 256".
inline void check_json_depth(const std::string& line, const std::string& where) {
  const int64_t depth = json_nesting_depth(line);
  if (depth > kMaxJsonDepth) {
    throw std::invalid_argument(where + ": JSON nested " + std::to_string(depth) + " levels deep, expected at most " +
                                std::to_string(kMaxJsonDepth));
  }
}

}  // namespace prefengine
