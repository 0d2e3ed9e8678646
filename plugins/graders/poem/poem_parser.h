#pragma once
// Splitting a generated Chinese poem into its title and its verse lines.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefengine::plugins::graders {

struct ParsedPoem {
  std::optional<std::u32string> title;  // the title, when the text gives one
  std::vector<std::u32string> lines;    // the Han characters of each verse line, in order
};

// Reads a poem: a title is a first line holding 《...》 (the rest of that line, e.g. the author,
// is dropped), a first line starting with 题目/标题/题/Title and a colon, or a first line without
// punctuation when later lines are punctuated or it differs in length from the next line.
// Lines of verse are split at clause punctuation (，。！？；：、 and ASCII forms) and at line
// breaks; only Han characters are kept; segments without any are dropped, as are "作者..." lines,
// lines starting with a dash, and a short unpunctuated author line right under a title. Throws std::invalid_argument for invalid UTF-8.
ParsedPoem parse_poem(std::string_view text);

}  // namespace prefengine::plugins::graders
