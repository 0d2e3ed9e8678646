#include "engine/metrics/early_warning.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "engine/metrics/metrics_logger.h"

namespace prefengine {
namespace {

std::string format(double value) {
  std::ostringstream out;
  out.precision(4);
  out << value;
  return out.str();
}

}  // namespace

EarlyWarningOptions EarlyWarningOptions::read(PluginOptions& o) {
  EarlyWarningOptions w;
  w.on_3d = o.get_choice("on_3d", w.on_3d, {"warn", "checkpoint", "stop", "off"});
  w.ratio_log10 = o.get_double("warn_3d.ratio_log10", w.ratio_log10, 0, 1e6, /*min_exclusive=*/true);
  w.chosen_drop = o.get_double("warn_3d.chosen_drop", w.chosen_drop, 0, 1, /*min_exclusive=*/true);
  w.min_drop_probs = o.get_double("warn_3d.min_drop_probs", w.min_drop_probs, 0, 1);
  w.min_drop_logps = o.get_double("warn_3d.min_drop_logps", w.min_drop_logps, 0, 1e6);
  w.unseen_rise = o.get_double("warn_3d.unseen_rise", w.unseen_rise, 0, 1, /*min_exclusive=*/true);
  w.off_data_rise = o.get_double("warn_3d.off_data_rise", w.off_data_rise, 0, 1e6, /*min_exclusive=*/true);
  w.patience = o.get_int("warn_3d.patience", w.patience, 1, 1 << 20);
  return w;
}

nlohmann::json ThreeDWarning::to_json() const {
  return {{"property", property}, {"onset_step", onset}, {"step", step}, {"detail", detail}};
}

bool ThreeDWatch::advance(Watch& watch, bool holds, int64_t step) const {
  if (watch.done) return false;
  if (!holds) {
    watch.run = 0;
    return false;
  }
  if (watch.run == 0) watch.onset = step;
  ++watch.run;
  if (watch.run < options_.patience) return false;
  watch.done = true;
  return true;
}

std::vector<ThreeDWarning> ThreeDWatch::observe(const MetricsRow& row) {
  std::vector<ThreeDWarning> out;
  auto fire = [&](const char* property, const Watch& watch, const std::string& detail) {
    out.push_back({property, watch.onset, row.step, detail});
    fired_.push_back(out.back());
  };

  if (const double* ratio = row.find("grad/ratio_log10")) {
    if (advance(drastic_, *ratio >= options_.ratio_log10, row.step)) {
      fire("drastic_drop", drastic_,
           "grad/ratio_log10 " + format(*ratio) + " >= " + format(options_.ratio_log10) +
               ": the rejected side's gradient is that many orders of magnitude above the chosen side's");
    }
  }

  const double* probs = row.find("probs/chosen");
  const double* chosen = probs != nullptr ? probs : row.find("logps/chosen_per_token");
  if (chosen != nullptr && std::isfinite(*chosen)) {
    const double* margin = row.find("rewards/margins");
    if (std::isnan(chosen_first_)) chosen_first_ = *chosen;
    if (*chosen > chosen_peak_) {
      chosen_peak_ = *chosen;
      margin_at_peak_ = margin != nullptr ? *margin : std::nan("");
    }
    const double min_drop = probs != nullptr ? options_.min_drop_probs : options_.min_drop_logps;
    const double needed = std::max(options_.chosen_drop * (chosen_peak_ - chosen_first_), min_drop);
    const bool margin_grows = margin == nullptr || std::isnan(margin_at_peak_) || *margin > margin_at_peak_;
    if (advance(degradation_, chosen_peak_ - *chosen >= needed && margin_grows, row.step)) {
      fire("degradation", degradation_,
           std::string(probs != nullptr ? "probs/chosen " : "logps/chosen_per_token ") + format(*chosen) +
               " is " + format(chosen_peak_ - *chosen) + " below its peak " + format(chosen_peak_) +
               " while rewards/margins still grows");
    }
  }

  const double* unseen = row.find("probs/unseen");
  const double* spread = unseen != nullptr ? unseen : row.find("dispersion/off_data_per_token");
  if (spread != nullptr && std::isfinite(*spread)) {
    spread_min_ = std::min(spread_min_, *spread);
    const double rise = unseen != nullptr ? options_.unseen_rise : options_.off_data_rise;
    if (advance(dispersion_, *spread - spread_min_ >= rise, row.step)) {
      fire("dispersion", dispersion_,
           std::string(unseen != nullptr ? "probs/unseen " : "dispersion/off_data_per_token ") + format(*spread) +
               " is " + format(*spread - spread_min_) + " above its minimum " + format(spread_min_) +
               ": mass is moving off the preference data");
    }
  }
  return out;
}

}  // namespace prefengine
