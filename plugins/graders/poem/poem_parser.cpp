#include "poem/poem_parser.h"

#include <algorithm>

#include "common/utf8.h"

namespace prefengine::plugins::graders {
namespace {

std::u32string han_only(std::u32string_view s) {
  std::u32string out;
  for (char32_t c : s) {
    if (is_han(c)) out.push_back(c);
  }
  return out;
}

bool has_clause_punctuation(std::u32string_view s) {
  return std::any_of(s.begin(), s.end(), is_clause_punctuation);
}

std::u32string_view trim32(std::u32string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool starts_with(std::u32string_view s, std::u32string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// The first clause of a line: up to its first clause punctuation.
std::u32string_view first_clause(std::u32string_view s) {
  const auto it = std::find_if(s.begin(), s.end(), is_clause_punctuation);
  return s.substr(0, static_cast<size_t>(it - s.begin()));
}

}  // namespace

ParsedPoem parse_poem(std::string_view text) {
  const std::u32string all = decode_utf8(text);
  std::vector<std::u32string_view> rows;
  {
    size_t from = 0;
    while (from <= all.size()) {
      size_t to = all.find(U'\n', from);
      if (to == std::u32string::npos) to = all.size();
      const auto row = trim32(std::u32string_view(all).substr(from, to - from));
      if (!row.empty()) rows.push_back(row);
      from = to + 1;
    }
  }
  ParsedPoem poem;
  size_t first_body = 0;
  if (!rows.empty()) {
    const std::u32string_view head = rows[0];
    const size_t open = head.find(U'《');
    const size_t close = open == std::u32string_view::npos ? open : head.find(U'》', open);
    if (open != std::u32string_view::npos && close != std::u32string_view::npos) {
      poem.title = std::u32string(trim32(head.substr(open + 1, close - open - 1)));
      first_body = 1;
    } else {
      for (std::u32string_view label : {U"题目", U"标题", U"题", U"Title", U"title"}) {
        if (!starts_with(head, label)) continue;
        std::u32string_view rest = trim32(head.substr(label.size()));
        if (rest.empty() || (rest.front() != U'：' && rest.front() != U':')) continue;
        poem.title = std::u32string(trim32(rest.substr(1)));
        first_body = 1;
        break;
      }
    }
    if (!poem.title && rows.size() > 1 && !has_clause_punctuation(head)) {
      const std::u32string head_han = han_only(head);
      const std::u32string next_han = han_only(first_clause(rows[1]));
      const bool punctuated_verse = std::any_of(rows.begin() + 1, rows.end(), [](auto row) {
        return has_clause_punctuation(row);
      });
      if (!head_han.empty() && head_han.size() <= 12 &&
          (punctuated_verse || head_han.size() != next_han.size())) {
        poem.title = head_han;
        first_body = 1;
      }
    }
  }
  // An author line under the title ("李白", "（唐）王之涣"): short, unpunctuated, followed by
  // punctuated verse.
  if (poem.title && first_body < rows.size() && first_body + 1 < rows.size() &&
      !has_clause_punctuation(rows[first_body]) && han_only(rows[first_body]).size() <= 4 &&
      has_clause_punctuation(rows[first_body + 1])) {
    ++first_body;
  }
  for (size_t r = first_body; r < rows.size(); ++r) {
    const std::u32string_view row = rows[r];
    if (starts_with(row, U"作者") || starts_with(row, U"—") || starts_with(row, U"-")) continue;
    size_t from = 0;
    while (from <= row.size()) {
      size_t to = from;
      while (to < row.size() && !is_clause_punctuation(row[to])) ++to;
      std::u32string line = han_only(row.substr(from, to - from));
      if (!line.empty()) poem.lines.push_back(std::move(line));
      from = to + 1;
    }
  }
  return poem;
}

}  // namespace prefengine::plugins::graders
