#pragma once
// What a slogan prompt asks for (a length limit, keywords) and how a slogan's length is counted.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefengine::plugins::graders {

// What a prompt asks of a slogan.
struct SloganRequest {
  std::optional<size_t> limit;        // the most characters/words allowed; nullopt when unstated
  std::vector<std::string> keywords;  // the keywords the prompt requires, UTF-8
};

SloganRequest read_slogan_request(std::string_view prompt);

// Han characters plus runs of ASCII letters and digits (English words and numbers).
size_t slogan_length(std::string_view text);

}  // namespace prefengine::plugins::graders
