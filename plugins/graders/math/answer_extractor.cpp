#include "math/answer_extractor.h"

#include <algorithm>
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

namespace {

// A \boxed{...} or \fbox{...} at [start, end) with its content.
struct Box {
  size_t start;
  size_t end;
  std::string content;
};

// Every top-level box in `text`, in order (a box inside another is part of the outer one).
std::vector<Box> all_boxes(std::string_view text) {
  std::vector<Box> boxes;
  size_t from = 0;
  while (true) {
    size_t at = std::string_view::npos, cmd_size = 0;
    for (std::string_view cmd : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
      size_t k = from;
      while ((k = text.find(cmd, k)) != std::string_view::npos) {
        const size_t after = k + cmd.size();
        if (after >= text.size() || !std::isalpha(static_cast<unsigned char>(text[after]))) break;
        k = after;
      }
      if (k < at) at = k, cmd_size = cmd.size();
    }
    if (at == std::string_view::npos) break;
    size_t i = at + cmd_size;
    while (i < text.size() && text[i] == ' ') ++i;
    if (i < text.size() && text[i] == '{') {
      if (auto content = brace_group(text, i)) {
        const size_t end = i + content->size() + 2;
        boxes.push_back({at, end, std::move(*content)});
        from = end;
        continue;
      }
      break;  // never closes: nothing after it is a box either
    }
    if (i > at + cmd_size && i < text.size()) {  // "\boxed 5"
      size_t end = i;
      while (end < text.size() && text[end] != ' ' && text[end] != '$' && text[end] != '\n') ++end;
      std::string_view arg = text.substr(i, end - i);
      while (!arg.empty() && arg.back() == '.') arg.remove_suffix(1);
      if (!arg.empty()) boxes.push_back({at, end, std::string(arg)});
      from = end;
      continue;
    }
    from = at + cmd_size;
  }
  return boxes;
}

enum class Joint { kNone, kAnd, kOr };

// What joins two neighbouring boxes: nothing but spaces, $, commas and "and"/"和" (kAnd), an
// "or"/"或"/"还是" (kOr), or other text (kNone: separate statements).
Joint joint(std::string_view gap) {
  if (gap.size() > 48) return Joint::kNone;
  std::string g = ascii_lower(gap);
  for (std::string_view noise : {"\\text", "\\mathrm", "\\quad", "\\qquad", "\\,", "\\;", "、",
                                 "\\\\", "\\"}) {
    size_t at;
    while ((at = g.find(noise)) != std::string::npos) g.erase(at, noise.size());
  }
  std::string rest;
  for (char c : g) {
    if (std::string_view(" \t\r\n$,;{}()&~*").find(c) == std::string_view::npos) rest += c;
  }
  if (rest.empty() || rest == "and" || rest == "和" || rest == "与" || rest == "及" ||
      rest == "以及") {
    return Joint::kAnd;
  }
  if (rest == "or" || rest == "either" || rest == "或" || rest == "或者" || rest == "还是") {
    return Joint::kOr;
  }
  return Joint::kNone;
}

// The alternatives of a hedged answer ("either 3 or 4", "3 or 4", "3 或 4"); empty when the
// answer offers one value.
std::vector<std::string> alternatives(std::string_view answer) {
  const std::string lower = ascii_lower(answer);
  for (std::string_view sep : {" or ", "\\text{or}", "\\text{ or }", "或者", "或", "还是"}) {
    const size_t at = lower.find(sep);
    if (at == std::string::npos) continue;
    std::string head(trim(std::string_view(answer).substr(0, at)));
    if (ascii_lower(head).rfind("either ", 0) == 0) head = std::string(trim(head.substr(7)));
    const std::string tail(trim(answer.substr(at + sep.size())));
    if (head.empty() || tail.empty()) continue;
    return {head, tail};
  }
  return {};
}

bool starts_with_word(std::string_view s, std::string_view w) {
  return s.size() >= w.size() && ascii_lower(s.substr(0, w.size())) == w;
}

// "not 12; it is 15" -> "it is 15" -> "15": what follows a negated answer; nullopt when nothing
// does ("the answer is not 12.").
std::optional<std::string> after_negation(std::string_view rest) {
  size_t cut = std::string_view::npos;
  size_t skip = 0;
  for (std::string_view sep : {";", ",", " but ", "而是", "；", "，"}) {
    const size_t at = rest.find(sep);
    if (at != std::string_view::npos && at < cut) cut = at, skip = sep.size();
  }
  if (cut == std::string_view::npos) return std::nullopt;
  std::string_view tail = trim(rest.substr(cut + skip));
  for (bool changed = true; changed;) {
    changed = false;
    for (std::string_view lead : {"but ", "rather ", "instead ", "it is ", "it's ", "it must be ",
                                  "the answer is ", "而是", "是"}) {
      if (starts_with_word(tail, lead)) {
        tail = trim(tail.substr(lead.size()));
        changed = true;
      }
    }
  }
  if (tail.empty()) return std::nullopt;
  return answer_after(tail);
}

// "15, not 12", "15 (not 12)", "15 而不是 12" -> "15".
std::string drop_trailing_negation(std::string answer) {
  const std::string lower = ascii_lower(answer);
  size_t cut = std::string::npos;
  for (std::string_view sep : {", not ", " (not ", " not ", "而不是", ",不是", "，不是"}) {
    const size_t at = lower.find(sep);
    if (at != std::string::npos && at > 0 && at < cut) cut = at;
  }
  if (cut != std::string::npos) answer = std::string(trim(std::string_view(answer).substr(0, cut)));
  return answer;
}

const std::vector<std::string_view>& answer_markers() {
  static const std::vector<std::string_view> kMarkers = {
      "final answer:", "final answer is", "the answer is", "answer:", "the answers are",
      "answers:", "答案是", "答案为", "答案:", "答:", "结果是", "结果为", "答案不是", "####"};
  return kMarkers;
}

// The answer after the last answer phrase of `text` (already folded), with negation handled.
// `found` tells whether there was a marker at all.
std::optional<std::string> marked_phrase(std::string_view text, bool& found) {
  const std::string lower = ascii_lower(text);
  const auto marker = last_marker(lower, answer_markers());
  found = marker.has_value();
  if (!marker) return std::nullopt;
  std::string_view rest = text.substr(marker->first + marker->second);
  const bool negated_marker = lower.compare(marker->first, marker->second, "答案不是") == 0;
  std::string_view probe = trim(rest);
  while (!probe.empty() && (probe.front() == ':' || probe.front() == '*')) {
    probe = trim(probe.substr(1));
  }
  if (negated_marker || starts_with_word(probe, "not ") || probe.rfind("不是", 0) == 0) {
    if (!negated_marker) probe = probe.substr(probe.rfind("不是", 0) == 0 ? 6 : 4);
    return after_negation(probe);
  }
  const auto answer = answer_after(rest);
  if (!answer) return std::nullopt;
  std::string cleaned = drop_trailing_negation(*answer);
  if (cleaned.empty()) return std::nullopt;
  return cleaned;
}

// Whether the unmarked last number at `start` is one of two alternatives ("3 or 4").
bool hedged_number(std::string_view text, size_t start) {
  size_t from = start > 48 ? start - 48 : 0;
  std::string_view window = text.substr(from, start - from);
  const size_t stop = window.find_last_of(".\n");
  if (stop != std::string_view::npos) window = window.substr(stop + 1);
  const std::string lower = ascii_lower(window);
  for (std::string_view sep : {" or ", "或", "还是"}) {
    const size_t at = lower.rfind(sep);
    if (at == std::string::npos) continue;
    const std::string_view head = std::string_view(lower).substr(0, at);
    if (head.find_first_of("0123456789") != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

ExtractedAnswer extract_answer(std::string_view raw) {
  const std::string text = fold_fullwidth(raw);
  ExtractedAnswer out;
  // Alternatives are read as the list of the values offered: right only where the reference is
  // that list (both roots of an equation), wrong against a single value.
  const auto hedge = [&](std::vector<std::string> candidates) {
    out.ambiguous = true;
    out.candidates = std::move(candidates);
    out.answer.reset();
    if (out.candidates.size() > 1) {
      std::string joined;
      for (const auto& c : out.candidates) joined += (joined.empty() ? "" : ", ") + c;
      out.answer = joined;
    }
    return out;
  };
  const std::vector<Box> boxes = all_boxes(text);
  if (!boxes.empty()) {
    size_t first = boxes.size() - 1;
    bool any_or = false;
    while (first > 0) {
      const Joint j = joint(std::string_view(text).substr(boxes[first - 1].end,
                                                          boxes[first].start - boxes[first - 1].end));
      if (j == Joint::kNone) break;
      any_or = any_or || j == Joint::kOr;
      --first;
    }
    std::vector<std::string> distinct;
    for (size_t i = first; i < boxes.size(); ++i) {
      const std::string content(trim(boxes[i].content));
      if (std::find(distinct.begin(), distinct.end(), content) == distinct.end()) {
        distinct.push_back(content);
      }
    }
    if (distinct.size() > 1 && any_or) return hedge(distinct);
    if (distinct.size() == 1) {
      if (auto alt = alternatives(distinct[0]); !alt.empty()) return hedge(alt);
      out.answer = distinct[0];
      return out;
    }
    std::string joined;
    for (const auto& d : distinct) joined += (joined.empty() ? "" : ", ") + d;
    out.answer = joined;
    return out;
  }
  bool marked = false;
  if (auto answer = marked_phrase(text, marked)) {
    if (auto alt = alternatives(*answer); !alt.empty()) return hedge(alt);
    out.answer = std::move(answer);
    return out;
  }
  // A negated answer with nothing after it ("the answer is not 12.") gives no answer.
  if (marked) {
    const std::string lower = ascii_lower(text);
    const auto marker = last_marker(lower, answer_markers());
    std::string_view rest = trim(std::string_view(text).substr(marker->first + marker->second));
    while (!rest.empty() && (rest.front() == ':' || rest.front() == '*')) rest = trim(rest.substr(1));
    if (starts_with_word(rest, "not ") || rest.rfind("不是", 0) == 0 ||
        lower.compare(marker->first, marker->second, "答案不是") == 0) {
      return out;
    }
  }
  auto number = last_number(text);
  if (number) {
    const size_t at = text.rfind(*number);
    if (at != std::string::npos && hedged_number(text, at)) return hedge({*number});
  }
  out.answer = std::move(number);
  return out;
}

std::optional<std::string> extract_marked_answer(std::string_view raw) {
  const std::string text = fold_fullwidth(raw);
  if (auto boxed = extract_boxed(text)) return boxed;
  bool found = false;
  return marked_phrase(text, found);
}

std::optional<std::string> extract_final_answer(std::string_view text) {
  return extract_answer(text).answer;
}

}  // namespace prefengine::plugins::graders
