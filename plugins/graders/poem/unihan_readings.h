#pragma once
// Mandarin readings of Han characters from Unihan (Unihan_Readings.txt, as Debian's unicode-data
// ships it, bzip2-compressed). A character's readings are the union of its kMandarin,
// kHanyuPinlu, kXHC1983 and kTGHZ2013 values: kMandarin alone gives one reading (看 kàn only),
// the two modern dictionaries add the other common ones (看 kān), which polyphonic characters in
// verse need.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "poem/pinyin.h"

namespace prefengine::plugins::graders {

inline constexpr const char* kDefaultUnihanReadingsPath = "/usr/share/unicode/Unihan_Readings.txt.bz2";

class UnihanReadings {
 public:
  // Loads `path` (.bz2 or plain text). Throws std::runtime_error when it cannot be read.
  static std::shared_ptr<const UnihanReadings> load(const std::string& path);
  // The table for `path`, loaded on first use and cached for the process (thread-safe).
  static std::shared_ptr<const UnihanReadings> cached(const std::string& path);
  // A table from Unihan-format text (for tests and fuzzing).
  static std::shared_ptr<const UnihanReadings> from_text(const std::string& text);

  // The distinct readings of `c`; empty when Unihan has none.
  const std::vector<Syllable>& readings(char32_t c) const;
  size_t size() const { return table_.size(); }

 private:
  void add_line(std::string_view line);
  std::unordered_map<char32_t, std::vector<Syllable>> table_;
};

}  // namespace prefengine::plugins::graders
