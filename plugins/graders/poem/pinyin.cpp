#include "poem/pinyin.h"

#include <map>

#include "common/utf8.h"

namespace prefengine::plugins::graders {
namespace {

// Tone-marked vowels: base letter ('v' for ü) and tone.
bool strip_tone(char32_t c, char& base, int& tone) {
  static const std::map<char32_t, std::pair<char, int>> kMarked = {
      {U'ā', {'a', 1}}, {U'á', {'a', 2}}, {U'ǎ', {'a', 3}}, {U'à', {'a', 4}},
      {U'ē', {'e', 1}}, {U'é', {'e', 2}}, {U'ě', {'e', 3}}, {U'è', {'e', 4}},
      {U'ī', {'i', 1}}, {U'í', {'i', 2}}, {U'ǐ', {'i', 3}}, {U'ì', {'i', 4}},
      {U'ō', {'o', 1}}, {U'ó', {'o', 2}}, {U'ǒ', {'o', 3}}, {U'ò', {'o', 4}},
      {U'ū', {'u', 1}}, {U'ú', {'u', 2}}, {U'ǔ', {'u', 3}}, {U'ù', {'u', 4}},
      {U'ǖ', {'v', 1}}, {U'ǘ', {'v', 2}}, {U'ǚ', {'v', 3}}, {U'ǜ', {'v', 4}},
      {U'ü', {'v', 0}}, {U'ḿ', {'m', 2}}, {U'ń', {'n', 2}}, {U'ň', {'n', 3}},
      {U'ǹ', {'n', 4}}, {U'ê', {'e', 0}}, {U'ế', {'e', 2}}, {U'ề', {'e', 4}}};
  if (c < 0x80) {
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
    if (c < 'a' || c > 'z') return false;
    base = static_cast<char>(c);
    tone = 0;
    return true;
  }
  const auto it = kMarked.find(c);
  if (it == kMarked.end()) return false;
  base = it->second.first;
  tone = it->second.second;
  return true;
}

}  // namespace

std::optional<Syllable> parse_pinyin(std::string_view text) {
  if (!is_valid_utf8(text) || text.empty() || text.size() > 32) return std::nullopt;
  std::string plain;
  int tone = 0;
  const std::u32string chars = decode_utf8(text);
  for (size_t i = 0; i < chars.size(); ++i) {
    const char32_t c = chars[i];
    if (c >= '1' && c <= '5' && i + 1 == chars.size()) {
      tone = static_cast<int>(c - '0');
      continue;
    }
    if (c == 0x0304 || c == 0x0301 || c == 0x030C || c == 0x0300) {  // combining marks
      tone = c == 0x0304 ? 1 : c == 0x0301 ? 2 : c == 0x030C ? 3 : 4;
      continue;
    }
    if (c == ':' && !plain.empty() && plain.back() == 'u') {
      plain.back() = 'v';
      continue;
    }
    char base = 0;
    int t = 0;
    if (!strip_tone(c, base, t)) return std::nullopt;
    if (t != 0) tone = t;
    plain.push_back(base);
  }
  if (plain.empty()) return std::nullopt;
  Syllable s;
  s.tone = tone == 0 ? 5 : tone;
  std::string rest = plain;
  for (const char* ini : {"zh", "ch", "sh"}) {
    if (rest.rfind(ini, 0) == 0) {
      s.initial = ini;
      rest = rest.substr(2);
      break;
    }
  }
  if (s.initial.empty() && rest.size() > 1 &&
      std::string("bpmfdtnlgkhjqxrzcsyw").find(rest[0]) != std::string::npos) {
    s.initial = rest.substr(0, 1);
    rest = rest.substr(1);
  }
  if (rest.empty()) return std::nullopt;
  if (s.initial == "y") {
    s.initial.clear();
    if (rest[0] == 'i') {
    } else if (rest[0] == 'u' || rest[0] == 'v') {
      rest = "v" + rest.substr(1);
    } else {
      rest = "i" + rest;
    }
  } else if (s.initial == "w") {
    s.initial.clear();
    if (rest[0] != 'u') rest = "u" + rest;
  }
  if ((s.initial == "j" || s.initial == "q" || s.initial == "x") && rest[0] == 'u') rest[0] = 'v';
  if (rest == "ui") rest = "uei";
  if (rest == "iu") rest = "iou";
  if (rest == "un") rest = "uen";
  s.final = rest;
  static const char* kFinals[] = {"a", "ia", "ua", "o", "uo", "e", "ie", "ve", "ai", "uai", "ei",
                                  "uei", "ao", "iao", "ou", "iou", "an", "ian", "uan", "van", "en",
                                  "in", "uen", "vn", "ang", "iang", "uang", "eng", "ing", "ueng",
                                  "ong", "iong", "i", "er", "v", "u", "m", "n", "ng", "io", "ue"};
  for (const char* f : kFinals) {
    if (s.final == f) {
      if (s.final == "ue") s.final = "ve";  // "lue" spelled without the diaeresis
      return s;
    }
  }
  return std::nullopt;
}

int xinyun_group(const Syllable& s) {
  static const std::map<std::string, int> kGroups = {
      {"a", 1},    {"ia", 1},   {"ua", 1},    {"o", 2},    {"uo", 2},    {"e", 2},   {"io", 2},
      {"ie", 3},   {"ve", 3},   {"ai", 4},    {"uai", 4},  {"ei", 5},    {"uei", 5}, {"ao", 6},
      {"iao", 6},  {"ou", 7},   {"iou", 7},   {"an", 8},   {"ian", 8},   {"uan", 8}, {"van", 8},
      {"en", 9},   {"in", 9},   {"uen", 9},   {"vn", 9},   {"ang", 10},  {"iang", 10},
      {"uang", 10}, {"eng", 11}, {"ing", 11}, {"ueng", 11}, {"ong", 11}, {"iong", 11},
      {"er", 12},  {"v", 12},   {"u", 14}};
  if (s.final == "i") {
    static const char* kSibilants[] = {"zh", "ch", "sh", "r", "z", "c", "s"};
    for (const char* ini : kSibilants) {
      if (s.initial == ini) return 13;  // the apical vowel of zhi, chi, shi, ri, zi, ci, si
    }
    return 12;
  }
  const auto it = kGroups.find(s.final);
  return it == kGroups.end() ? 0 : it->second;
}

const char* xinyun_group_name(int group) {
  static const char* kNames[] = {"?",  "麻", "波", "皆", "开", "微", "豪", "尤",
                                 "寒", "文", "唐", "庚", "齐", "支", "姑"};
  return group >= 0 && group <= 14 ? kNames[group] : "?";
}

}  // namespace prefengine::plugins::graders
