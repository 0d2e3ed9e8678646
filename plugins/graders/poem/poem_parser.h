#pragma once
// Splitting a generated Chinese poem into its title, its author line, its verse lines and the
// text around it that is not part of the poem.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefengine::plugins::graders {

struct ParsedPoem {
  std::optional<std::u32string> title;   // the title, when the text gives one
  std::optional<std::u32string> author;  // an author line ("唐代 · 孟浩然", "——李白"), as written
  std::vector<std::u32string> lines;     // the Han characters of each verse line, in order
  std::vector<std::string> extra;        // rows that are neither title, author nor verse (a chat
                                         // preamble or closing remark, notes), UTF-8, in order
};

// Reads a poem. Each row (line of text, markdown marks * # > stripped) is one of:
//   - chat text, kept in `extra`: a row ending in a colon ("好的，以下是一首五言绝句："), a row
//     with a clause of 10 or more Han characters (prose, not verse), a row with a chat phrase
//     (好的, 以下是, 下面是, 为您, 希望你, 喜欢, 这首诗, 此诗, 全诗, 注释, 赏析, 译文, 解析), or a row
//     with Latin words;
//   - the title: the first row that is not chat, when it holds 《...》 (the rest of the row, an
//     author, is dropped), starts with 题目/标题/题/Title and a colon, or has no punctuation and
//     later rows are punctuated or it differs in length from the next row;
//   - an author line: starting with a dash (——李白) or 作者, with a middle dot and at most 8 Han
//     characters (唐代 · 孟浩然), a dynasty in brackets ((唐)王之涣, [唐] 李白), or a short
//     unpunctuated row right under the title followed by punctuated verse;
//   - verse: split at clause punctuation (，。！？；：、 and ASCII forms) and at spaces between
//     Han characters; only Han characters are kept, segments without any are dropped.
// Throws std::invalid_argument for invalid UTF-8.
ParsedPoem parse_poem(std::string_view text);

}  // namespace prefengine::plugins::graders
