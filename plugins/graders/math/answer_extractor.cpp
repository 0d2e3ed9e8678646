#include "math/answer_extractor.h"

#include <cctype>
#include <vector>

#include "common/utf8.h"

namespace prefengine::plugins::graders {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The contents of the brace group that opens at `open` (text[open] == '{'), or nullopt.
std::optional<std::string> brace_group(std::string_view text, size_t open) {
  int depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {  // \{ and \} do not count
      ++i;
      continue;
    }
    if (text[i] == '{') {
      ++depth;
    } else if (text[i] == '}') {
      if (--depth == 0) return std::string(text.substr(open + 1, i - open - 1));
    }
  }
  return std::nullopt;
}

// The last occurrence of any of `needles` in `haystack` (already lower-cased): start and length.
std::optional<std::pair<size_t, size_t>> last_marker(std::string_view haystack,
                                                     const std::vector<std::string_view>& needles) {
  std::optional<std::pair<size_t, size_t>> best;
  for (std::string_view needle : needles) {
    const size_t at = haystack.rfind(needle);
    if (at == std::string_view::npos) continue;
    // Prefer the later marker; at one position prefer the longer one.
    if (!best || at > best->first || (at == best->first && needle.size() > best->second)) {
      best = std::make_pair(at, needle.size());
    }
  }
  return best;
}

// The answer that follows a marker: a $...$ span, or the text up to the end of the line or of
// the sentence (a full stop followed by a space or the end).
std::optional<std::string> answer_after(std::string_view rest) {
  rest = trim(rest);
  // ": 5", "** 5" (markdown bold around the marker).
  while (!rest.empty() && (rest.front() == ':' || rest.front() == ' ' || rest.front() == '*')) {
    rest.remove_prefix(1);
  }
  if (rest.empty()) return std::nullopt;
  if (const auto boxed = extract_boxed(rest)) return boxed;
  if (rest.front() == '$') {
    const bool dbl = rest.size() > 1 && rest[1] == '$';
    const size_t from = dbl ? 2 : 1;
    const size_t close = rest.find('$', from);
    if (close != std::string_view::npos) {
      const std::string_view inner = trim(rest.substr(from, close - from));
      if (!inner.empty()) return std::string(inner);
    }
  }
  size_t end = rest.find('\n');
  if (end == std::string_view::npos) end = rest.size();
  std::string_view line = rest.substr(0, end);
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '.' && (i + 1 == line.size() || line[i + 1] == ' ')) {
      line = line.substr(0, i);
      break;
    }
  }
  // "。" ends a Chinese sentence.
  const size_t stop = line.find("。");
  if (stop != std::string_view::npos) line = line.substr(0, stop);
  line = trim(line);
  while (!line.empty() && (line.back() == '*' || line.back() == '.')) line.remove_suffix(1);
  line = trim(line);
  if (line.empty()) return std::nullopt;
  return std::string(line);
}

// The last number in `text`: -?digits with optional thousands separators, decimals, or a/b.
std::optional<std::string> last_number(std::string_view text) {
  size_t i = text.size();
  while (i > 0) {
    --i;
    if (!is_digit(text[i])) continue;
    size_t end = i + 1;
    size_t start = i;
    auto numeric = [&](char c) { return is_digit(c) || c == '.' || c == ',' || c == '/'; };
    while (start > 0 && numeric(text[start - 1])) --start;
    // Trim separators that are punctuation, not part of the number.
    while (start < end && !is_digit(text[start]) && text[start] != '.') ++start;
    while (end > start && !is_digit(text[end - 1])) --end;
    if (start > 0 && text[start - 1] == '-') --start;
    // Inside \frac{a}{b} (or \dfrac, \tfrac): the whole fraction is the number.
    const size_t frac = text.rfind("frac{", start);
    if (frac != std::string_view::npos && start - frac < 40) {
      size_t cmd = std::string_view::npos;
      if (frac >= 1 && text[frac - 1] == '\\') {
        cmd = frac - 1;
      } else if (frac >= 2 && (text[frac - 1] == 'd' || text[frac - 1] == 't') &&
                 text[frac - 2] == '\\') {
        cmd = frac - 2;
      }
      const size_t numerator_open = frac + 4;
      const auto numerator = cmd == std::string_view::npos ? std::nullopt
                                                           : brace_group(text, numerator_open);
      const size_t denominator_open = numerator ? numerator_open + numerator->size() + 2 : 0;
      if (numerator && denominator_open < text.size() && text[denominator_open] == '{') {
        if (const auto denominator = brace_group(text, denominator_open)) {
          const size_t frac_end = denominator_open + denominator->size() + 2;
          if (frac_end >= end) {  // the number lies inside the fraction
            const size_t from = (cmd > 0 && text[cmd - 1] == '-') ? cmd - 1 : cmd;
            return std::string(text.substr(from, frac_end - from));
          }
        }
      }
    }
    std::string number(text.substr(start, end - start));
    // "1,234" keeps its separators for the normaliser; "3, 4" was cut at the space already.
    return number;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> extract_boxed(std::string_view text) {
  static const std::vector<std::string_view> kCommands = {"\\boxed", "\\fbox"};
  std::optional<std::pair<size_t, size_t>> last;
  for (std::string_view cmd : kCommands) {
    size_t from = 0;
    while (true) {
      const size_t at = text.find(cmd, from);
      if (at == std::string_view::npos) break;
      const size_t after = at + cmd.size();
      // \boxed must not be the prefix of a longer command name.
      if (after >= text.size() || !std::isalpha(static_cast<unsigned char>(text[after]))) {
        if (!last || at > last->first) last = std::make_pair(at, after);
      }
      from = at + 1;
    }
  }
  if (!last) return std::nullopt;
  size_t i = last->second;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i >= text.size()) return std::nullopt;
  if (text[i] == '{') return brace_group(text, i);
  // "\boxed 5": up to the next space or dollar sign.
  if (i == last->second) return std::nullopt;
  size_t end = i;
  while (end < text.size() && text[end] != ' ' && text[end] != '$' && text[end] != '\n') ++end;
  std::string_view arg = text.substr(i, end - i);
  while (!arg.empty() && arg.back() == '.') arg.remove_suffix(1);
  if (arg.empty()) return std::nullopt;
  return std::string(arg);
}

std::optional<std::string> extract_marked_answer(std::string_view text) {
  if (auto boxed = extract_boxed(text)) return boxed;
  const std::string lower = ascii_lower(text);
  static const std::vector<std::string_view> kMarkers = {
      "final answer:", "final answer is", "the answer is", "answer:", "答案是", "答案为", "答：",
      "答案：", "####"};
  if (const auto marker = last_marker(lower, kMarkers)) {
    if (auto answer = answer_after(text.substr(marker->first + marker->second))) return answer;
  }
  return std::nullopt;
}

std::optional<std::string> extract_final_answer(std::string_view text) {
  if (auto marked = extract_marked_answer(text)) return marked;
  return last_number(text);
}

}  // namespace prefengine::plugins::graders
