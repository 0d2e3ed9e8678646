#pragma once
// The poem grader: Chinese quatrains (绝句, 4 lines) and regulated verse (律诗, 8 lines) of 5 or 7
// characters a line, judged on five dimensions, each in [0, 1]; the score is their mean.
//   row_number     1 when the poem has the number of lines the prompt asks for (4 or 8 when the
//                  prompt names no form), else 0
//   chars_per_row  the share of lines with the asked number of characters (5 or 7; when the
//                  prompt names none, the more common of 5 and 7 among the lines)
//   rhyme          the largest share of the even lines (2, 4, 6, 8) whose last characters share
//                  one rhyme group (line 1 may rhyme too and is not required to)
//   tone_pattern   the largest share of lines (of the right length, within the form) that fit one
//                  of the four standard level/oblique schemes of the form, with the customary
//                  freedom at positions 1, 3 (and 5 in 7-character lines)
//   title          1 when the prompt asks for no title; when it does, 1 for a title (the one it
//                  names, if it names one), 0.5 for a different title, 0 for none
// Tones and rhymes come from the modern readings in Unihan; a polyphonic character fits when any
// of its readings does. Title, author line and chat text around the poem are not verse rows (see
// parse_poem). With `strict` (for rewards), any text besides the title and the verse (a chat
// preamble or closing remark, notes, an author line) makes the score 0. An empty response scores
// 0 on every dimension.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "poem/poem_form.h"
#include "poem/unihan_readings.h"
#include "prefengine/grader.h"

namespace prefengine::plugins::graders {

struct PoemGraderOptions {
  std::string rhyme_scheme = "xinyun";  // "xinyun": the 14 groups of 中华新韵; "strict": same final
  std::string readings_path = kDefaultUnihanReadingsPath;  // Unihan_Readings.txt(.bz2)
  bool strict = false;  // score 0 when the response holds more than a title and the verse
  void validate() const;  // throws std::invalid_argument for an unknown rhyme_scheme or empty path
};

class PoemGrader : public Grader {
 public:
  explicit PoemGrader(PluginOptions& options);  // keys: rhyme_scheme, readings_path, strict
  // `readings` overrides options.readings_path when given.
  explicit PoemGrader(PoemGraderOptions options,
                      std::shared_ptr<const UnihanReadings> readings = nullptr);

  GradeResult grade(const GradeInput& input) const override;
  std::vector<std::string> dimensions() const override;

 private:
  // The rhyme keys of a character: its groups (xinyun) or finals (strict).
  std::vector<std::string> rhyme_keys(char32_t c) const;
  // Whether `c` can be read with a level / an oblique tone (both when unknown).
  void tones(char32_t c, bool& level, bool& oblique) const;

  PoemGraderOptions options_;
  std::shared_ptr<const UnihanReadings> readings_;
};

}  // namespace prefengine::plugins::graders
