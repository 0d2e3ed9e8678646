#pragma once
// The slogan grader: four dimensions in [0, 1], the score is their mean.
//   word_count    1 within the prompt's limit (Chinese counted in characters, English in words:
//                 "不超过N个字", "N字以内", "限N字", "within N words", "at most N words",
//                 "N words"; "少于N" / "fewer than N" / "under N" mean at most N-1); over it,
//                 1 - excess/limit down to 0; under a minimum ("8到12个字", "至少8个字"),
//                 1 - shortfall/minimum; 1 when the prompt states no length; 0 when empty
// An empty response scores 0 on every dimension.
//   keywords      the share of required keywords present: those of the options and those the
//                 prompt quotes after 包含/包括/含有/带有/出现/include/contain/mention/use
//   banned_words  1 when no banned word occurs (default: the absolute terms China's advertising
//                 law bans, 最佳, 第一, 国家级, ...), else 0
//   repetition    1 when no phrase repeats (two Han characters, or two English words, occurring
//                 twice), else 0
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prefengine/grader.h"
#include "slogan/slogan_request.h"

namespace prefengine::plugins::graders {

// The default banned words: absolute terms banned in Chinese advertising.
const std::vector<std::string>& default_banned_words();

struct SloganGraderOptions {
  std::vector<std::string> banned_words = default_banned_words();  // matched case-insensitively
  std::vector<std::string> required_keywords;  // required in every slogan, besides the prompt's
  size_t min_repeat_chars = 2;  // a repeated run of this many Han characters is a repeated phrase
  size_t min_repeat_words = 2;  // a repeated run of this many English words is a repeated phrase
  void validate() const;        // throws std::invalid_argument for empty words or a length < 1
};

class SloganGrader : public Grader {
 public:
  // keys: banned_words, required_keywords, min_repeat_chars, min_repeat_words
  explicit SloganGrader(PluginOptions& options);
  explicit SloganGrader(SloganGraderOptions options);

  GradeResult grade(const GradeInput& input) const override;
  std::vector<std::string> dimensions() const override;

 private:
  SloganGraderOptions options_;
};

}  // namespace prefengine::plugins::graders
