#pragma once
// The grader interface: rule-based judges of one response (math, poem, slogan). Standard library
// only. Used for evaluation, for building preference pairs and as a rule-based reward for PPO.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "prefengine/plugin.h"

namespace prefengine {

struct GradeInput {
  std::string prompt;                    // the instruction or problem, UTF-8
  std::string response;                  // the text to grade, UTF-8
  std::optional<std::string> reference;  // the reference answer or solution, when there is one
};

struct GradeResult {
  double score = 0;                                     // total score, in [min_score, max_score]
  std::vector<std::pair<std::string, double>> dimensions;  // per-dimension scores, in order
  std::string reason;                                   // a short human-readable justification
};

class PREFENGINE_API Grader : public Plugin {
 public:
  ~Grader() override;

  // Throws std::invalid_argument for input it cannot grade (the engine records it per record).
  virtual GradeResult grade(const GradeInput& input) const = 0;

  // The dimension names grade() reports, in order.
  virtual std::vector<std::string> dimensions() const = 0;
  virtual double min_score() const { return 0; }
  virtual double max_score() const { return 1; }
};

}  // namespace prefengine
