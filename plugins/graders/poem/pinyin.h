#pragma once
// Tone-marked pinyin syllables ("zhōng", "lǜ") and the rhyme groups of the modern 中华新韵.
#include <optional>
#include <string>
#include <string_view>

namespace prefengine::plugins::graders {

struct Syllable {
  std::string initial;  // "zh", "b", ... ; empty for zero-initial syllables
  std::string final;    // normalised final: y/w spelled out ("you" -> "iou"), ü written "v"
  int tone = 5;         // 1-4, 5 for the neutral tone
};

// Parses one tone-marked syllable (also accepts "v" or "u:" for ü and a trailing tone digit);
// nullopt for anything that is not a pinyin syllable.
std::optional<Syllable> parse_pinyin(std::string_view syllable);

// Level (平) tones are the modern first and second tones; oblique (仄) the third and fourth.
// The neutral tone counts as neither.
inline bool is_level_tone(int tone) { return tone == 1 || tone == 2; }
inline bool is_oblique_tone(int tone) { return tone == 3 || tone == 4; }

// The rhyme group (1-14) of 中华新韵: 1麻 2波 3皆 4开 5微 6豪 7尤 8寒 9文 10唐 11庚 12齐 13支 14姑;
// 0 for finals in none of them (the syllabic m, n, ng).
int xinyun_group(const Syllable& syllable);

// The name of a group, e.g. "尤" for 7; "?" for 0.
const char* xinyun_group_name(int group);

}  // namespace prefengine::plugins::graders
