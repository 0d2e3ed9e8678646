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
  std::optional<size_t> minimum;      // the fewest characters/words allowed; nullopt when unstated
  std::vector<std::string> keywords;  // the keywords the prompt requires, UTF-8
};

// The phrasings read (Arabic or Chinese numerals; unit 字/个字/个汉字/word(s), or 字数/word count
// before the number):
//   at most N      不超过N个字, N字以内, 限N字, 字数不超过N, within/at most/no more than N words,
//                  a bare "N个字" / "N words" / "a N-word slogan"
//   at most N-1    少于N个字, 低于N个字, fewer than/less than/under N words
//   from N to M    N到M个字, N至M字, N-M字, N～M字, N to M words, between N and M words
//   at least N     不少于N个字, 至少N个字, 最少N字, N个字以上, at least/no fewer than N words
//   about N        N字左右, 约N个字, about/around/roughly N words: N-N/5 to N+N/5
// A number right after a closing quote names a keyword's length ("需出现「环保」二字"), not the
// slogan's, and is skipped.
SloganRequest read_slogan_request(std::string_view prompt);

// Han characters plus runs of ASCII letters and digits (English words and numbers).
size_t slogan_length(std::string_view text);

}  // namespace prefengine::plugins::graders
