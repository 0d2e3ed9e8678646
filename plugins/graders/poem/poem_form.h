#pragma once
// What a poem prompt asks for: the form (绝句/律诗, 五言/七言) and the title.
#include <optional>
#include <string>
#include <string_view>

namespace prefengine::plugins::graders {

// What a prompt asks for.
struct PoemForm {
  std::optional<int> rows;             // 4 (绝句) or 8 (律诗); nullopt when not named
  std::optional<int> chars;            // 5 (五言) or 7 (七言); nullopt when not named
  bool title_asked = false;            // the prompt asks for a title (题目, 标题, 为题, title)
  std::optional<std::string> title;    // the title it names (题为《X》, 以《X》为题), UTF-8
};

PoemForm requested_form(std::string_view prompt);

}  // namespace prefengine::plugins::graders
