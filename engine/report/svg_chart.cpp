#include "engine/report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace prefengine {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kLegendWidth = 190;         // px reserved right of the plot when a legend is drawn
constexpr std::size_t kLegendChars = 28;  // longer legend labels are cut (full text in <title>)

std::string fmt(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

// Pixel coordinates with one decimal: enough for a screen, short enough for big charts.
std::string px(double value) { return fmt("%.1f", value); }

// floor(a / b) for integers of any sign, b > 0.
long floor_div(long a, long b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
long ceil_div(long a, long b) { return -floor_div(-a, b); }

bool drawable(double x, double y, bool log_axis) {
  return std::isfinite(x) && std::isfinite(y) && (!log_axis || y > 0.0);
}

}  // namespace

void ChartOptions::validate() const {
  if (width < 200) {
    throw std::invalid_argument("ChartOptions.width must be >= 200 px, got " +
                                std::to_string(width));
  }
  if (height < 120) {
    throw std::invalid_argument("ChartOptions.height must be >= 120 px, got " +
                                std::to_string(height));
  }
  if (max_ticks < 3) {
    throw std::invalid_argument("ChartOptions.max_ticks must be >= 3, got " +
                                std::to_string(max_ticks));
  }
}

const std::string& palette_color(std::size_t i) {
  static const std::vector<std::string> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                    "#bcbd22", "#17becf"};
  return kPalette[i % kPalette.size()];
}

std::size_t palette_size() { return 10; }

double nice_number(double x, bool round) {
  if (!(x > 0.0) || !std::isfinite(x)) {
    throw std::invalid_argument("nice_number needs a finite x > 0, got " + fmt("%g", x));
  }
  const double exponent = std::floor(std::log10(x));
  const double power = std::pow(10.0, exponent);
  const double fraction = x / power;  // in [1, 10)
  double nice;
  if (round) {
    nice = fraction < 1.5 ? 1.0 : fraction < 3.0 ? 2.0 : fraction < 7.0 ? 5.0 : 10.0;
  } else {
    // A tiny tolerance so that x = 2 stays 2 despite x / power = 2.0000000000000004.
    const double f = fraction * (1.0 - 1e-12);
    nice = f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0;
  }
  return nice * power;
}

std::vector<double> linear_ticks(double lo, double hi, std::size_t max_ticks) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
    throw std::invalid_argument("linear_ticks needs finite lo <= hi, got [" + fmt("%g", lo) + ", " +
                                fmt("%g", hi) + "]");
  }
  // A range across zero needs 3 zero-anchored ticks however coarse the step (-s, 0, s).
  if (max_ticks < 3) throw std::invalid_argument("linear_ticks needs max_ticks >= 3");
  if (lo == hi) {
    const double pad = lo == 0.0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  double step = nice_number((hi - lo) / static_cast<double>(max_ticks - 1), /*round=*/true);
  for (;;) {
    const double first = std::floor(lo / step + 1e-9);
    const double last = std::ceil(hi / step - 1e-9);
    const double count = last - first + 1.0;
    if (count <= static_cast<double>(max_ticks)) {
      std::vector<double> ticks;
      for (double k = first; k <= last + 0.5; k += 1.0) {
        double value = k * step;
        if (std::abs(value) < step * 1e-9) value = 0.0;  // no "-0" or "5.55e-17" labels
        ticks.push_back(value);
      }
      return ticks;
    }
    step = nice_number(step * 1.5, /*round=*/false);  // the next nice step up
  }
}

std::vector<double> log_ticks(double lo, double hi, std::size_t max_ticks) {
  if (!(lo > 0.0) || !std::isfinite(lo) || !std::isfinite(hi) || lo > hi) {
    throw std::invalid_argument("log_ticks needs finite 0 < lo <= hi, got [" + fmt("%g", lo) +
                                ", " + fmt("%g", hi) + "]");
  }
  // Decades across 10^0 need 3 ticks however coarse the step (10^-s, 1, 10^s).
  if (max_ticks < 3) throw std::invalid_argument("log_ticks needs max_ticks >= 3");
  // The epsilon keeps exact powers of ten on their decade despite log10 rounding.
  long k_lo = static_cast<long>(std::floor(std::log10(lo) + 1e-9));
  long k_hi = static_cast<long>(std::ceil(std::log10(hi) - 1e-9));
  if (k_hi <= k_lo) k_hi = k_lo + 1;
  for (long step = 1;; ++step) {
    const long first = floor_div(k_lo, step);
    const long last = ceil_div(k_hi, step);
    if (static_cast<std::size_t>(last - first + 1) <= max_ticks) {
      std::vector<double> ticks;
      for (long k = first; k <= last; ++k) ticks.push_back(std::pow(10.0, k * step));
      return ticks;
    }
  }
}

bool auto_log_scale(const std::vector<ChartSeries>& series) {
  double min_positive = std::numeric_limits<double>::infinity();
  double max_positive = 0.0;
  for (const auto& s : series) {
    for (double v : s.y) {
      if (!std::isfinite(v)) continue;
      if (v < 0.0) return false;
      if (v > 0.0) {
        min_positive = std::min(min_positive, v);
        max_positive = std::max(max_positive, v);
      }
    }
  }
  return max_positive > 0.0 && max_positive / min_positive > 100.0;
}

AxisScale::AxisScale(double domain_lo, double domain_hi, double pixel_lo, double pixel_hi, bool log)
    : lo_(domain_lo), hi_(domain_hi), pixel_lo_(pixel_lo), pixel_hi_(pixel_hi), log_(log) {
  if (log_ && !(domain_lo > 0.0 && domain_hi > 0.0)) {
    throw std::invalid_argument("AxisScale: a log scale needs a positive domain, got [" +
                                fmt("%g", domain_lo) + ", " + fmt("%g", domain_hi) + "]");
  }
  if (log_) {
    lo_ = std::log10(domain_lo);
    hi_ = std::log10(domain_hi);
  }
}

double AxisScale::map(double value) const {
  if (log_) {
    if (!(value > 0.0)) return kNaN;
    value = std::log10(value);
  }
  if (hi_ == lo_) return 0.5 * (pixel_lo_ + pixel_hi_);
  return pixel_lo_ + (value - lo_) / (hi_ - lo_) * (pixel_hi_ - pixel_lo_);
}

std::string format_tick(double value, bool log_axis) {
  if (log_axis && value > 0.0) {
    const double k = std::round(std::log10(value));
    if (std::abs(value / std::pow(10.0, k) - 1.0) < 1e-9) {
      if (k >= -3 && k <= 3) return fmt("%g", value);
      return "1e" + std::to_string(static_cast<long>(k));
    }
    return fmt("%.3g", value);
  }
  return fmt("%.6g", value);
}

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_line_chart(const std::vector<ChartSeries>& series, const ChartOptions& options) {
  options.validate();
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (series[i].x.size() != series[i].y.size()) {
      throw std::invalid_argument("render_line_chart: series " + std::to_string(i) + " ('" +
                                  series[i].label + "') has " + std::to_string(series[i].x.size()) +
                                  " x values but " + std::to_string(series[i].y.size()) +
                                  " y values");
    }
  }
  const bool log_axis = options.y_scale == YScale::kLog ||
                        (options.y_scale == YScale::kAuto && auto_log_scale(series));

  // Data ranges over the points that will be drawn.
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  std::size_t points = 0;
  for (const auto& s : series) {
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!drawable(s.x[i], s.y[i], log_axis)) continue;
      x_min = std::min(x_min, s.x[i]);
      x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
      ++points;
    }
  }
  const bool has_data = points > 0;
  if (!has_data) {
    x_min = 0.0, x_max = 1.0;
    y_min = log_axis ? 0.1 : 0.0;
    y_max = 1.0;
  }

  // Layout.
  std::vector<std::size_t> entries;  // series with a legend entry: those with a label
  for (std::size_t si = 0; si < series.size(); ++si) {
    if (!series[si].label.empty()) entries.push_back(si);
  }
  const bool legend = options.legend && entries.size() > 1;
  const double left = 72.0;
  const double right = options.width - 14.0 - (legend ? kLegendWidth : 0);
  const double top = options.title.empty() ? 12.0 : 30.0;
  const double bottom = options.height - 44.0;

  // The y axis spans whole ticks; the x axis spans the data (steps) with ticks inside it.
  const std::vector<double> y_ticks = log_axis ? log_ticks(y_min, y_max, options.max_ticks)
                                               : linear_ticks(y_min, y_max, options.max_ticks);
  const AxisScale y_scale(y_ticks.front(), y_ticks.back(), bottom, top, log_axis);
  if (x_min == x_max) {
    x_min -= 0.5;
    x_max += 0.5;
  }
  std::vector<double> x_ticks;
  {
    const double tolerance = (x_max - x_min) * 1e-9;
    for (double t : linear_ticks(x_min, x_max, options.max_ticks)) {
      if (t >= x_min - tolerance && t <= x_max + tolerance) x_ticks.push_back(t);
    }
  }
  const AxisScale x_scale(x_min, x_max, left, right, /*log=*/false);

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart"
      << (options.css_class.empty() ? "" : " " + xml_escape(options.css_class)) << "\"";
  if (!options.id.empty()) svg << " id=\"" << xml_escape(options.id) << "\"";
  if (!options.data_metric.empty()) {
    svg << " data-metric=\"" << xml_escape(options.data_metric) << "\"";
  }
  if (!options.data_run.empty()) svg << " data-run=\"" << xml_escape(options.data_run) << "\"";
  svg << " data-scale=\"" << (log_axis ? "log" : "linear") << "\" width=\"" << options.width
      << "\" height=\"" << options.height << "\" viewBox=\"0 0 " << options.width << ' '
      << options.height << "\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\n";
  if (!options.title.empty()) svg << "<title>" << xml_escape(options.title) << "</title>\n";
  svg << "<rect class=\"background\" x=\"0\" y=\"0\" width=\"" << options.width << "\" height=\""
      << options.height << "\" fill=\"#ffffff\"/>\n";
  if (!options.title.empty()) {
    svg << "<text class=\"chart-title\" x=\"" << px(left) << "\" y=\"18\" font-size=\"13\""
        << " font-weight=\"bold\" fill=\"#222222\">" << xml_escape(options.title) << "</text>\n";
  }

  // Grid, ticks and labels.
  svg << "<g class=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
  for (double t : y_ticks) {
    const double y = y_scale.map(t);
    svg << "<line x1=\"" << px(left) << "\" y1=\"" << px(y) << "\" x2=\"" << px(right) << "\" y2=\""
        << px(y) << "\"/>\n";
  }
  for (double t : x_ticks) {
    const double x = x_scale.map(t);
    svg << "<line x1=\"" << px(x) << "\" y1=\"" << px(top) << "\" x2=\"" << px(x) << "\" y2=\""
        << px(bottom) << "\"/>\n";
  }
  svg << "</g>\n<g class=\"axes\" fill=\"#333333\">\n";
  svg << "<rect x=\"" << px(left) << "\" y=\"" << px(top) << "\" width=\"" << px(right - left)
      << "\" height=\"" << px(bottom - top) << "\" fill=\"none\" stroke=\"#555555\"/>\n";
  for (double t : y_ticks) {
    const double y = y_scale.map(t);
    svg << "<line class=\"tick\" x1=\"" << px(left - 4) << "\" y1=\"" << px(y) << "\" x2=\""
        << px(left) << "\" y2=\"" << px(y) << "\" stroke=\"#555555\"/>"
        << "<text class=\"tick-label y\" x=\"" << px(left - 6) << "\" y=\"" << px(y + 4)
        << "\" text-anchor=\"end\">" << xml_escape(format_tick(t, log_axis)) << "</text>\n";
  }
  for (double t : x_ticks) {
    const double x = x_scale.map(t);
    svg << "<line class=\"tick\" x1=\"" << px(x) << "\" y1=\"" << px(bottom) << "\" x2=\"" << px(x)
        << "\" y2=\"" << px(bottom + 4) << "\" stroke=\"#555555\"/>"
        << "<text class=\"tick-label x\" x=\"" << px(x) << "\" y=\"" << px(bottom + 16)
        << "\" text-anchor=\"middle\">" << xml_escape(format_tick(t, false)) << "</text>\n";
  }
  svg << "<text class=\"axis-label x\" x=\"" << px(0.5 * (left + right)) << "\" y=\""
      << px(bottom + 34) << "\" text-anchor=\"middle\">" << xml_escape(options.x_label)
      << "</text>\n";
  const std::string y_label = options.y_label.empty()
                                  ? (log_axis ? "log scale" : "")
                                  : options.y_label + (log_axis ? " (log scale)" : "");
  if (!y_label.empty()) {
    const double cy = 0.5 * (top + bottom);
    svg << "<text class=\"axis-label y\" x=\"14\" y=\"" << px(cy)
        << "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " << px(cy) << ")\">"
        << xml_escape(y_label) << "</text>\n";
  }
  svg << "</g>\n";

  for (const auto& [x_value, text] : options.x_markers) {
    if (!std::isfinite(x_value) || x_value < x_min || x_value > x_max) continue;
    const double x = x_scale.map(x_value);
    svg << "<line class=\"x-marker\" x1=\"" << px(x) << "\" y1=\"" << px(top) << "\" x2=\"" << px(x)
        << "\" y2=\"" << px(bottom) << "\" stroke=\"#888888\" stroke-dasharray=\"4 3\"/>"
        << "<text class=\"x-marker-label\" x=\"" << px(x + 3) << "\" y=\"" << px(top + 11)
        << "\" fill=\"#555555\">" << xml_escape(text) << "</text>\n";
  }

  // Lines: each maximal run of drawable points is one polyline, so that a NaN leaves a gap.
  svg << "<g class=\"plot\" fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\">\n";
  if (!has_data) {
    svg << "<text class=\"no-data\" x=\"" << px(0.5 * (left + right)) << "\" y=\""
        << px(0.5 * (top + bottom))
        << "\" text-anchor=\"middle\" fill=\"#888888\">no data</text>\n";
  }
  for (std::size_t si = 0; si < series.size(); ++si) {
    const ChartSeries& s = series[si];
    const std::string color = xml_escape(s.color.empty() ? palette_color(si) : s.color);
    std::vector<std::pair<double, double>> run;
    auto flush = [&]() {
      if (run.size() == 1) {
        svg << "<circle class=\"series-point\" data-series=\"" << si << "\" cx=\""
            << px(run[0].first) << "\" cy=\"" << px(run[0].second) << "\" r=\"2.5\" fill=\""
            << color << "\"/>\n";
      } else if (run.size() > 1) {
        svg << "<polyline class=\"series\" data-series=\"" << si << "\" stroke=\"" << color
            << "\" points=\"";
        for (std::size_t i = 0; i < run.size(); ++i) {
          svg << (i ? " " : "") << px(run[i].first) << ',' << px(run[i].second);
        }
        svg << "\"/>\n";
      }
      run.clear();
    };
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (drawable(s.x[i], s.y[i], log_axis)) {
        run.emplace_back(x_scale.map(s.x[i]), y_scale.map(s.y[i]));
      } else {
        flush();
      }
    }
    flush();
  }
  svg << "</g>\n";

  if (legend) {
    svg << "<g class=\"legend\">\n";
    const double lx = right + 12.0;
    const std::size_t rows = static_cast<std::size_t>((bottom - top) / 16.0);
    for (std::size_t e = 0; e < entries.size(); ++e) {
      const std::size_t si = entries[e];
      const double ly = top + 8.0 + 16.0 * static_cast<double>(e);
      if (e + 1 == rows && entries.size() > rows) {  // no room for the rest: say how many
        svg << "<text class=\"legend-more\" x=\"" << px(lx) << "\" y=\"" << px(ly + 4)
            << "\" fill=\"#555555\">+" << entries.size() - e << " more</text>\n";
        break;
      }
      std::string label = series[si].label;
      if (label.size() > kLegendChars) {
        // Cut the middle: run labels differ at the end (sweep point, seed) as often as at the
        // start.
        std::size_t head = (kLegendChars - 3) / 2;
        std::size_t tail_start = label.size() - (kLegendChars - 3 - head);
        // Never split a UTF-8 sequence: back up / move on over continuation bytes.
        auto continuation = [&](std::size_t i) { return (label[i] & 0xC0) == 0x80; };
        while (head > 0 && continuation(head)) --head;
        while (tail_start < label.size() && continuation(tail_start)) ++tail_start;
        label = label.substr(0, head) + "..." + label.substr(tail_start);
      }
      const std::string color =
          xml_escape(series[si].color.empty() ? palette_color(si) : series[si].color);
      svg << "<g class=\"legend-entry\"><title>" << xml_escape(series[si].label) << "</title>"
          << "<line x1=\"" << px(lx) << "\" y1=\"" << px(ly) << "\" x2=\"" << px(lx + 18)
          << "\" y2=\"" << px(ly) << "\" stroke=\"" << color << "\" stroke-width=\"3\"/>"
          << "<text x=\"" << px(lx + 24) << "\" y=\"" << px(ly + 4) << "\" fill=\"#222222\">"
          << xml_escape(label) << "</text></g>\n";
    }
    svg << "</g>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace prefengine
