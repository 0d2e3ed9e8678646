#pragma once
// Self-contained SVG line charts for the HTML report: nice linear ticks, log-scale axes for values
// that span decades (probs/rejected falls from ~0.2 to 1e-30 and below), polylines that skip
// non-finite points, and a legend. Pure C++ (no torch, no scripts, no external fonts).
//
//   std::string svg = render_line_chart(series, options);
//
// Every chart is one <svg class="chart ..."> element; each finite run of points of a series is one
// <polyline class="series" data-series="i" points="x,y ...">; an isolated finite point is a
// <circle>.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace prefengine {

// One line of a chart: y[i] is drawn at x[i]; x and y must have the same length.
struct ChartSeries {
  std::string label;      // legend text (escaped on output); empty: no legend entry
  std::vector<double> x;  // abscissae, e.g. training steps
  std::vector<double> y;  // ordinates; NaN/Inf (and <= 0 on a log axis) are skipped, not drawn
  std::string color;      // CSS colour; empty: the palette colour of the series' index
};

enum class YScale {
  kAuto,    // log when all finite values are >= 0 and the positive ones span more than 2 decades
  kLinear,  // always linear
  kLog,     // always log10 (values <= 0 are skipped)
};

// How one chart looks; every field has a usable default.
struct ChartOptions {
  std::string title;               // drawn above the plot; empty: none
  std::string x_label = "step";    // axis label under the x axis
  std::string y_label;             // axis label left of the y axis; empty: none
  std::string css_class;           // extra classes on the <svg> after "chart"
  std::string id;                  // the <svg>'s id attribute; empty: none
  std::string data_metric;         // value of the data-metric attribute; empty: none
  std::string data_run;            // value of the data-run attribute; empty: none
  int width = 640;                 // total width in px, legend included
  int height = 300;                // total height in px
  YScale y_scale = YScale::kAuto;  // see YScale
  bool legend = true;              // draw a legend when more than one series has a label
  std::vector<std::pair<double, std::string>> x_markers;  // dashed vertical lines with labels
                                                          // (x, text), e.g. where stages start
  std::size_t max_ticks = 8;  // upper bound on the number of ticks per axis (>= 3)
  void validate() const;      // throws std::invalid_argument naming the bad field
};

// The palette colour for series index i (Tableau 10, repeating).
const std::string& palette_color(std::size_t i);
// Number of distinct palette colours.
std::size_t palette_size();

// Heckbert's "nice number": a number of the form {1,2,5,10} x 10^k close to x (x > 0). With
// round=true the nearest such number, else the smallest one >= x.
double nice_number(double x, bool round);

// Ticks of a linear axis covering [lo, hi]: multiples of a nice step, the first <= lo, the last >=
// hi, at most max_ticks of them (max_ticks >= 3). lo == hi gets a range of +-10% (+-1 at 0) around
// it.
std::vector<double> linear_ticks(double lo, double hi, std::size_t max_ticks);

// Ticks of a log10 axis covering [lo, hi] (0 < lo <= hi): powers of ten 10^k, k a multiple of a
// step chosen so that there are at most max_ticks (>= 3); the first <= lo, the last >= hi.
std::vector<double> log_ticks(double lo, double hi, std::size_t max_ticks);

// Whether kAuto picks a log axis for these values (see YScale::kAuto).
bool auto_log_scale(const std::vector<ChartSeries>& series);

// Maps a data value to a pixel coordinate: [domain_lo, domain_hi] -> [pixel_lo, pixel_hi], linearly
// or in log10 space. A log scale needs 0 < domain_lo < domain_hi; map() of a value <= 0 is NaN.
class AxisScale {
 public:
  AxisScale(double domain_lo, double domain_hi, double pixel_lo, double pixel_hi, bool log);
  double map(double value) const;
  bool log() const { return log_; }

 private:
  double lo_, hi_, pixel_lo_, pixel_hi_;
  bool log_;
};

// Tick label text: "0.25", "1500", "1e-30", "1e+06".
std::string format_tick(double value, bool log_axis);

// Escapes &, <, >, " and ' for XML/HTML text and attribute values.
std::string xml_escape(const std::string& text);

// The whole chart as one <svg> element. Throws std::invalid_argument if a series' x and y differ in
// length or the options are invalid. A chart without any drawable point shows "no data".
std::string render_line_chart(const std::vector<ChartSeries>& series, const ChartOptions& options);

}  // namespace prefengine
