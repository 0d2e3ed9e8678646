#pragma once
// The 3D early warning of a pairwise stage: watches the metrics rows the stage already logs and
// says when each of the paper's three properties sets in (docs/algorithms.md, "3D early warning"):
//   drastic_drop  grad/ratio_log10 >= ratio_log10: the rejected side's gradient |dL/dpi_l| is that
//                 many orders of magnitude above the chosen side's (Corollary 1: pi_w / pi_l);
//   degradation   the chosen measure (probs/chosen, else logps/chosen_per_token) has fallen from its
//                 peak by at least max(chosen_drop * (peak - first value), min_drop) while
//                 rewards/margins is still above its value at that peak (the margin grows by
//                 pushing both sides down);
//   dispersion    the mass off the preference data rises: probs/unseen at least unseen_rise above
//                 its minimum, else dispersion/off_data_per_token at least off_data_rise above its
//                 minimum.
// A property fires once, when its condition has held on `patience` consecutive rows; its onset is
// the first of those rows.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "prefengine/plugin_options.h"

namespace prefengine {

struct MetricsRow;

struct EarlyWarningOptions {
  std::string on_3d = "warn";      // warn (a line and run.json), checkpoint (also keep the weights of
                                   // the row before the onset), stop (also end the stage), off
  double ratio_log10 = 3.0;        // drastic_drop threshold on grad/ratio_log10
  double chosen_drop = 0.05;       // degradation: the share of the chosen's gain given back
  double min_drop_probs = 0.01;    // degradation: the least fall of probs/chosen
  double min_drop_logps = 0.05;    // degradation: the least fall of logps/chosen_per_token (nats/token)
  double unseen_rise = 0.05;       // dispersion: rise of probs/unseen above its minimum
  double off_data_rise = 0.1;      // dispersion: rise of dispersion/off_data_per_token above its minimum
  int64_t patience = 2;            // consecutive rows a condition must hold

  // Reads `on_3d` and `warn_3d.*` from a stage block.
  static EarlyWarningOptions read(PluginOptions& o);
  bool enabled() const { return on_3d != "off"; }
};

struct ThreeDWarning {
  std::string property;  // drastic_drop, degradation or dispersion
  int64_t onset = 0;     // the stage step of the first row of the run that fired it
  int64_t step = 0;      // the stage step at which it fired
  std::string detail;    // the values that fired it, for the warning line

  nlohmann::json to_json() const;
};

class ThreeDWatch {
 public:
  explicit ThreeDWatch(EarlyWarningOptions options) : options_(options) {}
  // Looks at one metrics row (in step order); returns the warnings that fire on it.
  std::vector<ThreeDWarning> observe(const MetricsRow& row);
  const std::vector<ThreeDWarning>& fired() const { return fired_; }

 private:
  struct Watch {
    bool done = false;
    int64_t run = 0;        // consecutive rows the condition has held
    int64_t onset = 0;      // the first of them
  };
  // Advances `watch` with this row's condition; true when the property fires now.
  bool advance(Watch& watch, bool holds, int64_t step) const;

  EarlyWarningOptions options_;
  Watch drastic_, degradation_, dispersion_;
  double chosen_first_ = std::numeric_limits<double>::quiet_NaN();
  double chosen_peak_ = -std::numeric_limits<double>::infinity();
  double margin_at_peak_ = std::numeric_limits<double>::quiet_NaN();
  double spread_min_ = std::numeric_limits<double>::infinity();
  std::vector<ThreeDWarning> fired_;
};

}  // namespace prefengine
