// A grader for tests: score = 1 + (the sum of the response's bytes mod 5), so that random samples
// score differently; every response to a prompt that contains "TIE" scores 3 (all tied). A
// response containing "REFUSE" is refused (std::invalid_argument). Tests recompute the scores.
#include <stdexcept>
#include <string>

#include "prefengine/grader.h"

namespace {
class ChecksumGrader : public prefengine::Grader {
 public:
  explicit ChecksumGrader(prefengine::PluginOptions& /*options*/) {}
  prefengine::GradeResult grade(const prefengine::GradeInput& input) const override {
    if (input.response.find("REFUSE") != std::string::npos) throw std::invalid_argument("refused");
    prefengine::GradeResult r;
    if (input.prompt.find("TIE") != std::string::npos) {
      r.score = 3;
    } else {
      unsigned sum = 0;
      for (unsigned char c : input.response) sum += c;
      r.score = 1 + static_cast<double>(sum % 5);
    }
    r.dimensions = {{"checksum", r.score}};
    return r;
  }
  std::vector<std::string> dimensions() const override { return {"checksum"}; }
  double min_score() const override { return 1; }
  double max_score() const override { return 5; }
};
}  // namespace

PREFENGINE_PLUGIN("checksum", prefengine::PluginKind::kGrader, ChecksumGrader, "test grader: a checksum of the response")
