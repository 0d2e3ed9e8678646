#include "math/answer_normalizer.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <vector>

#include "common/utf8.h"
#include "math/answer_extractor.h"

namespace prefengine::plugins::graders {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  size_t at = 0;
  while ((at = s.find(from, at)) != std::string::npos) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
}

bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// Removes the command `cmd` (e.g. "\left") where it is not the prefix of a longer command.
void remove_command(std::string& s, std::string_view cmd) {
  size_t at = 0;
  while ((at = s.find(cmd, at)) != std::string::npos) {
    const size_t after = at + cmd.size();
    if (after < s.size() && is_alpha(s[after])) {
      at = after;
      continue;
    }
    s.erase(at, cmd.size());
  }
}

// Words that name a unit or a counted thing: dropped after a number.
const std::set<std::string>& unit_words() {
  static const std::set<std::string> kUnits = {
      "unit", "units", "square", "sq", "cubic", "feet", "foot", "ft", "inch", "inches", "in",
      "yard", "yards", "mile", "miles", "mph", "cm", "mm", "km", "m", "meter", "meters", "metre",
      "metres", "hour", "hours", "hr", "hrs", "minute", "minutes", "min", "mins", "second",
      "seconds", "sec", "secs", "s", "day", "days", "week", "weeks", "month", "months", "year",
      "years", "dollar", "dollars", "cent", "cents", "degree", "degrees", "point", "points",
      "way", "ways", "integer", "integers", "digit", "digits", "student", "students", "people",
      "pound", "pounds", "lb", "lbs", "gram", "grams", "g", "kg", "liter", "liters", "litre",
      "litres", "ml", "l", "percent", "times", "edges", "meals", "tickets", "multiples",
      "sides", "side", "cups", "cup", "ounces", "oz", "gallons", "blocks", "boxes", "pages"};
  return kUnits;
}

// Unwraps \text{...}, \textbf{...}, \mathrm{...}, \mbox{...}; a wrapped run of letters right
// after a number is a unit and is dropped.
void unwrap_text_commands(std::string& s) {
  static const std::vector<std::string_view> kCommands = {"\\text", "\\textbf", "\\textit",
                                                          "\\mathrm", "\\mbox", "\\textnormal",
                                                          "\\mathbf", "\\operatorname"};
  bool changed = true;
  while (changed) {
    changed = false;
    for (std::string_view cmd : kCommands) {
      const size_t at = s.find(std::string(cmd) + "{");
      if (at == std::string::npos) continue;
      const size_t open = at + cmd.size();
      int depth = 0;
      size_t close = std::string::npos;
      for (size_t i = open; i < s.size(); ++i) {
        if (s[i] == '{') ++depth;
        if (s[i] == '}' && --depth == 0) {
          close = i;
          break;
        }
      }
      if (close == std::string::npos) {
        s.erase(at, cmd.size());  // unbalanced: drop the command name only
        changed = true;
        continue;
      }
      std::string inner = s.substr(open + 1, close - open - 1);
      size_t before = at;
      while (before > 0 && s[before - 1] == ' ') --before;
      const bool after_number = before > 0 && (is_digit(s[before - 1]) || s[before - 1] == '}');
      const bool letters = !inner.empty() && std::all_of(inner.begin(), inner.end(), [](char c) {
        return is_alpha(c) || c == ' ' || c == '^' || c == '.' || c == '2' || c == '3';
      });
      size_t end = close + 1;
      if (after_number && letters) {
        inner.clear();
        // A unit's power goes with it: \text{cm}^2.
        for (std::string_view sup : {"^{2}", "^{3}", "^2", "^3"}) {
          if (s.compare(end, sup.size(), sup) == 0) {
            end += sup.size();
            break;
          }
        }
      }
      s.replace(at, end - at, inner);
      changed = true;
    }
  }
}

// Drops unit words (and a trailing ^2 / ^3) that follow a number.
std::string drop_trailing_units(const std::string& s) {
  std::string out = s;
  while (true) {
    std::string t(trim(out));
    // Strip ^2, ^{2}, ^3 after a word.
    size_t end = t.size();
    for (std::string_view sup : {"^{2}", "^{3}", "^2", "^3"}) {
      if (end >= sup.size() && t.compare(end - sup.size(), sup.size(), sup) == 0 &&
          end > sup.size() && is_alpha(t[end - sup.size() - 1])) {
        end -= sup.size();
        break;
      }
    }
    size_t start = end;
    while (start > 0 && is_alpha(t[start - 1])) --start;
    if (start == end || (start > 0 && t[start - 1] == '\\')) return t;
    const std::string word = ascii_lower(t.substr(start, end - start));
    std::string head(trim(std::string_view(t).substr(0, start)));
    if (unit_words().count(word) == 0 || head.empty()) return t;
    const char last = head.back();
    if (!is_digit(last) && last != '}' && !is_alpha(last)) return t;
    // "2 square feet": strip word by word while something numeric stays in front.
    if (std::none_of(head.begin(), head.end(), is_digit)) return t;
    // A word glued to a variable ("3x" + "in") is not a unit: demand a space or a digit before.
    if (is_alpha(last) && t[start - 1] != ' ') return t;
    if (is_digit(last) && word.size() == 1 && t[start - 1] != ' ') return t;  // 5m could be 5*m
    out = head;
  }
}

// \frac12 -> \frac{1}{2}, \frac1{b} -> \frac{1}{b}, \sqrt3 -> \sqrt{3}.
void brace_shorthands(std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 5, "\\frac") == 0 && (i + 5 >= s.size() || !is_alpha(s[i + 5]))) {
      out += "\\frac";
      i += 5;
      for (int arg = 0; arg < 2 && i < s.size(); ++arg) {
        if (s[i] == '{') {
          int depth = 0;
          size_t j = i;
          for (; j < s.size(); ++j) {
            if (s[j] == '{') ++depth;
            if (s[j] == '}' && --depth == 0) break;
          }
          out += s.substr(i, j - i + 1);
          i = j + 1;
        } else {
          out += '{';
          out += s[i];
          out += '}';
          ++i;
        }
      }
      continue;
    }
    if (s.compare(i, 5, "\\sqrt") == 0 && i + 5 < s.size() && s[i + 5] != '{' &&
        s[i + 5] != '[' && !is_alpha(s[i + 5])) {
      out += "\\sqrt{";
      out += s[i + 5];
      out += '}';
      i += 6;
      continue;
    }
    out += s[i++];
  }
  s = out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

// "1,234,567.5" -> "1234567.5"; anything else unchanged.
std::string drop_thousands_separators(const std::string& s) {
  const size_t start = (!s.empty() && s[0] == '-') ? 1 : 0;
  const size_t dot = s.find('.');
  const std::string int_part = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
  if (int_part.find(',') == std::string::npos) return s;
  std::vector<std::string> groups;
  size_t from = 0;
  while (true) {
    const size_t comma = int_part.find(',', from);
    groups.push_back(int_part.substr(from, comma == std::string::npos ? std::string::npos : comma - from));
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  if (groups[0].empty() || groups[0].size() > 3 || !all_digits(groups[0])) return s;
  for (size_t k = 1; k < groups.size(); ++k) {
    if (groups[k].size() != 3 || !all_digits(groups[k])) return s;
  }
  if (dot != std::string::npos && !all_digits(s.substr(dot + 1))) return s;
  std::string out = s.substr(0, start);
  for (const auto& g : groups) out += g;
  if (dot != std::string::npos) out += s.substr(dot);
  return out;
}

// Repeating decimals to exact fractions: "0.\overline{3}" -> "\frac{3}{9}",
// "1.2\overline{36}" -> "\frac{1224}{990}" (x = (digits with one period - digits without it) /
// (10^fixed * (10^period - 1))). Other \overline{...} lose the command, as in Minerva.
std::string repeating_decimals(const std::string& s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t at = s.find("\\overline{", i);
    if (at == std::string::npos) break;
    const size_t open = at + 9;
    const size_t close = s.find('}', open);
    if (close == std::string::npos) break;
    const std::string period = s.substr(open + 1, close - open - 1);
    // Walk back over "digits.digits" right before the command.
    size_t start = at;
    while (start > i && is_digit(s[start - 1])) --start;
    const size_t fixed_digits = at - start;
    const bool dot = start > i && s[start - 1] == '.';
    size_t int_start = dot ? start - 1 : start;
    while (dot && int_start > i && is_digit(s[int_start - 1])) --int_start;
    // At most 18 digits in all, so that the integers below fit in 64 bits.
    const bool numeric = dot && all_digits(period) && period.size() <= 9 && fixed_digits <= 6 &&
                         (start - 1 - int_start) + fixed_digits + period.size() <= 18;
    if (!numeric) {
      out += s.substr(i, at - i) + period;
      i = close + 1;
      continue;
    }
    const std::string int_part = s.substr(int_start, start - 1 - int_start);
    const std::string fixed = s.substr(start, fixed_digits);
    const long long without = std::stoll("0" + int_part + fixed);
    const long long with = std::stoll("0" + int_part + fixed + period);
    long long den = 1;
    for (size_t k = 0; k < period.size(); ++k) den *= 10;
    den -= 1;
    for (size_t k = 0; k < fixed_digits; ++k) den *= 10;
    out += s.substr(i, int_start - i);
    out += "\\frac{" + std::to_string(with - without) + "}{" + std::to_string(den) + "}";
    i = close + 1;
  }
  out += s.substr(std::min(i, s.size()));
  return out;
}

// "x = 5" -> "5", "f(x)=2x" -> "2x", "a=b=c" -> "c"; anything else unchanged.
std::string strip_assignment(const std::string& part) {
  const size_t eq = part.rfind('=');
  if (eq == std::string::npos) return part;
  const std::string left(trim(std::string_view(part).substr(0, eq)));
  const bool name = !left.empty() && left.size() <= 6 &&
                    std::all_of(left.begin(), left.end(), [](char c) {
                      return is_alpha(c) || is_digit(c) || c == '_' || c == '(' || c == ')' ||
                             c == '\\' || c == '{' || c == '}' || c == ' ';
                    });
  if (name || left.find('=') != std::string::npos) return part.substr(eq + 1);
  return part;
}

}  // namespace

// Drops a run of up to four Han characters at the end of `s` when a number or a closing brace
// comes before it: "18个" -> "18", "3 只" -> "3", "12平方米" -> "12". Han text without a number in
// front ("无解") stays.
void drop_measure_words(std::string& s) {
  size_t end = s.size();
  while (end > 0 && s[end - 1] == ' ') --end;
  size_t start = end;
  size_t han = 0;
  // Han characters of the basic block are three bytes, E4-E9 lead bytes.
  while (start >= 3 && han < 4) {
    const auto lead = static_cast<unsigned char>(s[start - 3]);
    if (lead < 0xE4 || lead > 0xE9) break;
    start -= 3;
    ++han;
  }
  if (han == 0) return;
  size_t before = start;
  while (before > 0 && s[before - 1] == ' ') --before;
  if (before == 0) return;
  const char last = s[before - 1];
  if (!is_digit(last) && last != '}' && last != ')') return;
  s.erase(before, end - before);
}

// Drops Han text in front of a number once the measure word is gone: "小明有 25" -> "25",
// "共 18" -> "18". Han text not followed by a number stays.
void drop_leading_han(std::string& s) {
  size_t i = 0;
  while (i + 3 <= s.size()) {
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0xE4 || lead > 0xE9) break;
    i += 3;
  }
  if (i == 0) return;
  size_t j = i;
  while (j < s.size() && s[j] == ' ') ++j;
  if (j < s.size() && (is_digit(s[j]) || s[j] == '-' || s[j] == '\\') &&
      std::none_of(s.begin() + static_cast<std::ptrdiff_t>(j), s.end(),
                   [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
    s.erase(0, j);
  }
}

std::string normalize_answer(std::string_view answer, bool keep_equations) {
  std::string s = fold_fullwidth(trim(answer));
  s = std::string(trim(s));
  replace_all(s, "。", ".");
  replace_all(s, "、", ",");
  // A matrix row break "\\\\" must not be read as "\\ " (a space): kept aside until the end.
  replace_all(s, "\\\\", "\x01");
  if (s.rfind("\\boxed", 0) == 0 || s.rfind("\\fbox", 0) == 0) {
    if (auto inner = extract_boxed(s)) s = *inner;
  }
  replace_all(s, "\n", " ");
  replace_all(s, "\r", " ");
  // Thin and negative spaces, "\ ", "~".
  for (std::string_view sp : {"\\!", "\\,", "\\;", "\\:", "\\ ", "~", "\\quad", "\\qquad"}) {
    replace_all(s, sp, " ");
  }
  replace_all(s, "{,}", ",");  // LaTeX thousands separator: 1{,}000
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  remove_command(s, "\\left");
  remove_command(s, "\\right");
  remove_command(s, "\\displaystyle");
  replace_all(s, "\\bigl", "");
  replace_all(s, "\\bigr", "");
  // Degrees and percent.
  for (std::string_view deg : {"^{\\circ}", "^\\circ", "\\circ", "°", "\\degree"}) {
    replace_all(s, deg, "");
  }
  replace_all(s, "\\%", "");
  replace_all(s, "%", "");
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  replace_all(s, "−", "-");  // U+2212 minus sign
  // Minerva's substitutions: "\text{and}" separates items; ordinals, dots and quotes go.
  replace_all(s, ",\\text{and}", ",");
  replace_all(s, "\\text{ and }", ",");
  replace_all(s, "\\text{and}", ",");
  for (std::string_view gone : {"^{\\mathrm{th}}", "^{\\text{th}}", "^{th}", "\\mathrm{th}",
                                "\\ldots", "\\dots", "\""}) {
    replace_all(s, gone, "");
  }
  replace_all(s, "\\dbinom", "\\binom");
  replace_all(s, "\\tbinom", "\\binom");
  replace_all(s, "\\langle", "(");
  replace_all(s, "\\rangle", ")");
  replace_all(s, " and ", ",");
  replace_all(s, "\\leq", "\\le");
  replace_all(s, "\\geq", "\\ge");
  replace_all(s, "\\varnothing", "\\emptyset");
  unwrap_text_commands(s);
  s = std::string(trim(s));
  while (!s.empty() && (s.back() == '.' || s.back() == ',')) s.pop_back();  // sentence stop
  drop_measure_words(s);
  drop_leading_han(s);
  s = drop_trailing_units(s);
  // "x = 5", "y=2x+1": keep the right-hand side when the left is a name; "x=2, y=3": each.
  if (!keep_equations && s.find('=') != std::string::npos) {
    std::string joined;
    size_t from = 0;
    int depth = 0;
    for (size_t i = 0; i <= s.size(); ++i) {
      const char c = i < s.size() ? s[i] : ',';
      depth += (c == '(' || c == '[' || c == '{') ? 1 : (c == ')' || c == ']' || c == '}') ? -1 : 0;
      if (c != ',' || (depth != 0 && i < s.size())) continue;
      if (!joined.empty() || from > 0) joined += ',';
      joined += strip_assignment(s.substr(from, i - from));
      from = i + 1;
    }
    s = joined;
  }
  // "x \in [1, 2]" -> "[1,2]".
  const size_t in = s.find("\\in");
  if (in != std::string::npos && in + 3 < s.size() && !is_alpha(s[in + 3])) s = s.substr(in + 3);
  // No white space from here on.
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) {
            return std::isspace(static_cast<unsigned char>(c)) != 0;
          }),
          s.end());
  replace_all(s, "\x01", "\\\\");
  brace_shorthands(s);
  s = repeating_decimals(s);
  s = drop_thousands_separators(s);
  // Leading zero: ".5" -> "0.5", "-.5" -> "-0.5".
  if (!s.empty() && s[0] == '.' && s.size() > 1 && is_digit(s[1])) s.insert(0, "0");
  if (s.size() > 2 && s[0] == '-' && s[1] == '.' && is_digit(s[2])) s.insert(1, "0");
  // Integer leading zeros: "007" -> "7".
  if (all_digits(s)) {
    const size_t nz = s.find_first_not_of('0');
    s = nz == std::string::npos ? "0" : s.substr(nz);
  }
  // "a/b" of integers -> \frac{a}{b}.
  const size_t slash = s.find('/');
  if (slash != std::string::npos && s.find('/', slash + 1) == std::string::npos) {
    const std::string a = s.substr(0, slash), b = s.substr(slash + 1);
    const std::string a_digits = (!a.empty() && a[0] == '-') ? a.substr(1) : a;
    if (all_digits(a_digits) && all_digits(b)) s = "\\frac{" + a + "}{" + b + "}";
  }
  replace_all(s, "\\infinity", "\\infty");
  if (s == "inf" || s == "infinity") s = "\\infty";
  return s;
}

}  // namespace prefengine::plugins::graders
