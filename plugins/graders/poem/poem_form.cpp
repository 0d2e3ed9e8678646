#include "poem/poem_form.h"

#include "common/utf8.h"

namespace prefengine::plugins::graders {
namespace {

bool contains(std::string_view s, std::string_view w) { return s.find(w) != std::string_view::npos; }

}  // namespace

PoemForm requested_form(std::string_view prompt) {
  PoemForm form;
  const std::string lower = ascii_lower(prompt);
  if (contains(prompt, "绝句") || contains(prompt, "五绝") || contains(prompt, "七绝") ||
      contains(lower, "quatrain")) {
    form.rows = 4;
  } else if (contains(prompt, "律诗") || contains(prompt, "五律") || contains(prompt, "七律") ||
             contains(lower, "regulated verse") || contains(lower, "eight-line")) {
    form.rows = 8;
  }
  if (contains(prompt, "五言") || contains(prompt, "五绝") || contains(prompt, "五律") ||
      contains(lower, "five-character") || contains(lower, "5-character")) {
    form.chars = 5;
  } else if (contains(prompt, "七言") || contains(prompt, "七绝") || contains(prompt, "七律") ||
             contains(lower, "seven-character") || contains(lower, "7-character")) {
    form.chars = 7;
  }
  form.title_asked = contains(prompt, "题目") || contains(prompt, "标题") ||
                     contains(prompt, "题为") || contains(prompt, "为题") ||
                     contains(lower, "title");
  // A named title: 题为《X》, 题目为《X》, 题目是《X》, 标题为《X》, 以《X》为题.
  size_t open = 0;
  while ((open = prompt.find("《", open)) != std::string_view::npos) {
    const size_t close = prompt.find("》", open);
    if (close == std::string_view::npos) break;
    const std::string_view before = prompt.substr(0, open);
    const std::string_view after = prompt.substr(close + std::string_view("》").size());
    const auto ends = [&](std::string_view w) {
      return before.size() >= w.size() && before.substr(before.size() - w.size()) == w;
    };
    if (ends("题为") || ends("题目为") || ends("题目是") || ends("标题为") || ends("标题是") ||
        ends("题目：") || ends("标题：") || after.rfind("为题", 0) == 0) {
      const size_t from = open + std::string_view("《").size();
      form.title = std::string(trim(prompt.substr(from, close - from)));
      form.title_asked = true;
      break;
    }
    open = close;
  }
  return form;
}

}  // namespace prefengine::plugins::graders
