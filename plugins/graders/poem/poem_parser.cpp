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

bool contains(std::u32string_view s, std::u32string_view w) {
  return s.find(w) != std::u32string_view::npos;
}

std::u32string_view trim32(std::u32string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Markdown emphasis, headings and quotes around a row: "**《春晓》**", "## 春晓", "> 春眠不觉晓".
std::u32string_view strip_markdown(std::u32string_view s) {
  s = trim32(s);
  while (!s.empty() && (s.front() == U'*' || s.front() == U'#' || s.front() == U'>' ||
                        s.front() == U'_' || is_space(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == U'*' || s.back() == U'_' || is_space(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

bool starts_with(std::u32string_view s, std::u32string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// The first clause of a row: up to its first clause punctuation.
std::u32string_view first_clause(std::u32string_view s) {
  const auto it = std::find_if(s.begin(), s.end(), is_clause_punctuation);
  return s.substr(0, static_cast<size_t>(it - s.begin()));
}

// The longest run of Han characters between clause punctuation and spaces.
size_t longest_clause(std::u32string_view s) {
  size_t best = 0, run = 0;
  for (char32_t c : s) {
    if (is_clause_punctuation(c) || is_space(c)) {
      run = 0;
    } else if (is_han(c)) {
      best = std::max(best, ++run);
    }
  }
  return best;
}

bool is_chat(std::u32string_view row) {
  if (starts_with(row, U"Title") || starts_with(row, U"title")) return false;  // a title label
  if (row.back() == U'：' || row.back() == U':') return true;
  if (longest_clause(row) >= 10) return true;
  static const std::u32string_view kPhrases[] = {
      U"好的", U"以下是", U"下面是", U"为您", U"为你", U"希望你", U"希望您", U"喜欢",
      U"这首诗", U"此诗", U"本诗", U"全诗", U"注释", U"赏析", U"译文", U"解析", U"创作背景"};
  for (std::u32string_view p : kPhrases) {
    if (contains(row, p)) return true;
  }
  // Latin words (an English remark; pinyin or a "Title:" label is handled before).
  size_t letters = 0;
  for (char32_t c : row) letters += (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') ? 1 : 0;
  return letters >= 4;
}

bool is_dynasty(char32_t c) {
  return std::u32string_view(U"唐宋元明清汉晋魏隋秦周梁陈齐").find(c) != std::u32string_view::npos;
}

bool is_author(std::u32string_view row) {
  if (starts_with(row, U"—") || starts_with(row, U"-") || starts_with(row, U"作者")) return true;
  if (has_clause_punctuation(row)) return false;
  const size_t han = han_only(row).size();
  if (han == 0 || han > 8) return false;
  for (char32_t dot : {U'·', U'•', U'・', U'‧', U'∙'}) {
    if (row.find(dot) != std::u32string_view::npos) return true;
  }
  // (唐)王之涣, （唐）王之涣, [唐] 李白, 【唐】李白, 〔唐〕李白.
  if (row.size() >= 3 && std::u32string_view(U"(（[【〔").find(row[0]) != std::u32string_view::npos &&
      is_dynasty(row[1])) {
    return true;
  }
  // 唐 李白, 唐代 李白.
  return han <= 6 && is_dynasty(row[0]) && row.size() > 2 &&
         (is_space(row[1]) || ((row[1] == U'代' || row[1] == U'朝') && is_space(row[2])));
}

// The verse lines of one clause: its Han characters, split at spaces when every piece has at
// least four ("床前明月光 疑是地上霜" is two lines, "白日 依山尽" one); empty without Han.
std::vector<std::u32string> split_at_spaces(std::u32string_view clause) {
  std::vector<std::u32string> pieces;
  std::u32string current;
  for (char32_t c : clause) {
    if (is_space(c)) {
      if (!current.empty()) pieces.push_back(std::move(current));
      current.clear();
    } else if (is_han(c)) {
      current.push_back(c);
    }
  }
  if (!current.empty()) pieces.push_back(std::move(current));
  const bool lines = pieces.size() > 1 && std::all_of(pieces.begin(), pieces.end(), [](const auto& p) {
    return p.size() >= 4;
  });
  if (lines || pieces.size() <= 1) return pieces;
  std::u32string joined;
  for (const auto& p : pieces) joined += p;
  return {joined};
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
      const auto row = strip_markdown(std::u32string_view(all).substr(from, to - from));
      if (!row.empty()) rows.push_back(row);
      from = to + 1;
    }
  }
  ParsedPoem poem;
  size_t first = 0;
  // A chat preamble before the poem.
  while (first < rows.size() && is_chat(rows[first])) poem.extra.push_back(encode_utf8(rows[first++]));
  size_t first_body = first;
  if (first < rows.size()) {
    const std::u32string_view head = rows[first];
    const size_t open = head.find(U'《');
    const size_t close = open == std::u32string_view::npos ? open : head.find(U'》', open);
    // 《...》 opens the row (verse before it, as in "……思故乡。——李白《静夜思》", is no title row).
    if (open != std::u32string_view::npos && close != std::u32string_view::npos &&
        han_only(head.substr(0, open)).empty()) {
      poem.title = std::u32string(trim32(head.substr(open + 1, close - open - 1)));
      first_body = first + 1;
      // "《静夜思》 李白", "《春晓》——孟浩然": the rest of the row is the author.
      const std::u32string_view rest = trim32(head.substr(close + 1));
      if (!han_only(rest).empty()) poem.author = std::u32string(rest);
    } else {
      for (std::u32string_view label : {U"题目", U"标题", U"题", U"Title", U"title"}) {
        if (!starts_with(head, label)) continue;
        std::u32string_view rest = trim32(head.substr(label.size()));
        if (rest.empty() || (rest.front() != U'：' && rest.front() != U':')) continue;
        poem.title = std::u32string(trim32(rest.substr(1)));
        first_body = first + 1;
        break;
      }
    }
    if (!poem.title && first + 1 < rows.size() && !has_clause_punctuation(head) &&
        !is_author(head)) {
      const std::u32string head_han = han_only(head);
      const std::u32string next_han = han_only(first_clause(rows[first + 1]));
      const bool punctuated_verse = std::any_of(rows.begin() + first + 1, rows.end(), [](auto row) {
        return has_clause_punctuation(row) && !is_chat(row);
      });
      const bool spaced = head.find(U' ') != std::u32string_view::npos ||
                          head.find(U'\u3000') != std::u32string_view::npos;
      if (!head_han.empty() && head_han.size() <= 12 && !spaced &&
          (punctuated_verse || head_han.size() != next_han.size())) {
        poem.title = head_han;
        first_body = first + 1;
      }
    }
  }
  // An author line under the title: by its form, or short, unpunctuated and followed by verse.
  if (first_body < rows.size() && !poem.author) {
    const std::u32string_view row = rows[first_body];
    const bool short_name = poem.title && first_body + 1 < rows.size() &&
                            !has_clause_punctuation(row) && han_only(row).size() <= 4 &&
                            has_clause_punctuation(rows[first_body + 1]);
    if (is_author(row) || short_name) {
      poem.author = std::u32string(row);
      ++first_body;
    }
  }
  for (size_t r = first_body; r < rows.size(); ++r) {
    const std::u32string_view row = rows[r];
    if (is_author(row)) {
      if (!poem.author) {
        poem.author = std::u32string(row);
      } else {
        poem.extra.push_back(encode_utf8(row));
      }
      continue;
    }
    if (is_chat(row)) {
      poem.extra.push_back(encode_utf8(row));
      continue;
    }
    size_t from = 0;
    while (from <= row.size()) {
      // "……低头思故乡。——李白《静夜思》": a dash starts an author at the end of the row.
      const std::u32string_view clause_start = trim32(row.substr(std::min(from, row.size())));
      if (!clause_start.empty() && (clause_start.front() == U'—' || clause_start.front() == U'-')) {
        if (!poem.author) {
          poem.author = std::u32string(clause_start);
        } else {
          poem.extra.push_back(encode_utf8(clause_start));
        }
        break;
      }
      size_t to = from;
      while (to < row.size() && !is_clause_punctuation(row[to])) ++to;
      for (auto& line : split_at_spaces(row.substr(from, to - from))) {
        poem.lines.push_back(std::move(line));
      }
      from = to + 1;
    }
  }
  return poem;
}

}  // namespace prefengine::plugins::graders
