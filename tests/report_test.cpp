// Tests of engine/report: SVG charts, run summaries over seeds and the HTML report. Golden values
// are read off the fixtures in tests/data/report/ by hand (see the numbers in each metrics.jsonl).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "engine/report/html_report.h"
#include "engine/report/run_summary.h"
#include "engine/report/svg_chart.h"

namespace prefengine {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string fixture(const std::string& name) {
  return std::string(PREFENGINE_SOURCE_DIR) + "/tests/data/report/" + name;
}

std::vector<std::string> good_runs() {
  return {fixture("toy-dpo-s0"), fixture("toy-dpo-s1"), fixture("toy-ipo-s0"),
          fixture("toy-dpo-beta0.1-s0"), fixture("toy-dpo-beta0.5-s0")};
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

// A fresh directory under the build tree for files a test writes.
fs::path scratch(const std::string& name) {
  const fs::path dir = fs::path(PREFENGINE_BINARY_DIR) / "report_test_scratch" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// The points of every <polyline> in `text`, as (x, y) pairs.
std::vector<std::vector<std::pair<double, double>>> polylines(const std::string& text) {
  std::vector<std::vector<std::pair<double, double>>> lines;
  const std::regex polyline("<polyline[^>]*points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), polyline);
       it != std::sregex_iterator(); ++it) {
    std::vector<std::pair<double, double>> points;
    std::istringstream in((*it)[1].str());
    std::string pair;
    while (in >> pair) {
      const auto comma = pair.find(',');
      points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
    }
    lines.push_back(points);
  }
  return lines;
}

// The <svg ...>...</svg> element whose id is `id`.
std::string svg_by_id(const std::string& html, const std::string& id) {
  const auto at = html.find("id=\"" + id + "\"");
  if (at == std::string::npos) return "";
  const auto begin = html.rfind("<svg", at);
  const auto end = html.find("</svg>", at);
  return html.substr(begin, end + 6 - begin);
}

// ---------------------------------------------------------------------------------------------
// svg_chart

TEST(SvgChartTest, NiceNumbers) {
  EXPECT_DOUBLE_EQ(nice_number(1.4, /*round=*/true), 1.0);
  EXPECT_DOUBLE_EQ(nice_number(2.9, true), 2.0);
  EXPECT_DOUBLE_EQ(nice_number(3.2, true), 5.0);
  EXPECT_DOUBLE_EQ(nice_number(7.3, true), 10.0);
  EXPECT_DOUBLE_EQ(nice_number(0.0032, /*round=*/false), 0.005);
  EXPECT_DOUBLE_EQ(nice_number(2.0, false), 2.0);
  EXPECT_DOUBLE_EQ(nice_number(2.01, false), 5.0);
  EXPECT_DOUBLE_EQ(nice_number(6000.0, false), 10000.0);
  EXPECT_THROW(nice_number(0.0, true), std::invalid_argument);
  EXPECT_THROW(nice_number(-1.0, true), std::invalid_argument);
  EXPECT_THROW(nice_number(kNaN, true), std::invalid_argument);
}

TEST(SvgChartTest, LinearTicksHandComputed) {
  // [0, 1] in at most 6 ticks: step 1/5 = 0.2 is already nice.
  const auto unit = linear_ticks(0.0, 1.0, 6);
  ASSERT_EQ(unit.size(), 6u);
  for (std::size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * i, 1e-12);
  // Steps 1..200 in at most 8 ticks: step 20 would give 11 ticks, the next nice step is 50.
  EXPECT_EQ(linear_ticks(1.0, 200.0, 8), (std::vector<double>{0, 50, 100, 150, 200}));
  // [-0.3, 2.6]: 2.9 / 7 = 0.41 rounds to 0.5; -0.5 .. 3.0 is 8 ticks.
  const auto mixed = linear_ticks(-0.3, 2.6, 8);
  ASSERT_EQ(mixed.size(), 8u);
  EXPECT_NEAR(mixed.front(), -0.5, 1e-12);
  EXPECT_NEAR(mixed.back(), 3.0, 1e-12);
  // Zero is exactly 0, not -0 or 1e-17.
  const auto symmetric = linear_ticks(-1.0, 1.0, 5);
  ASSERT_EQ(symmetric.size(), 5u);
  EXPECT_EQ(symmetric[2], 0.0);
  EXPECT_FALSE(std::signbit(symmetric[2]));
  // A single value gets a range around it.
  const auto flat = linear_ticks(0.5, 0.5, 8);
  EXPECT_LT(flat.front(), 0.5);
  EXPECT_GT(flat.back(), 0.5);
  EXPECT_LE(flat.size(), 8u);
  EXPECT_THROW(linear_ticks(1.0, 0.0, 8), std::invalid_argument);
  EXPECT_THROW(linear_ticks(0.0, kInf, 8), std::invalid_argument);
  EXPECT_THROW(linear_ticks(0.0, 1.0, 2), std::invalid_argument);
  // Three ticks always suffice, even across zero.
  EXPECT_EQ(linear_ticks(-0.2, 60000.0, 3), (std::vector<double>{-100000, 0, 100000}));
}

TEST(SvgChartTest, LinearTicksCoverEvenlyAndStayWithinTheBound) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> exponent(-6.0, 6.0), unit(-1.0, 1.0);
  for (int trial = 0; trial < 500; ++trial) {
    const double scale = std::pow(10.0, exponent(rng));
    double lo = unit(rng) * scale, hi = unit(rng) * scale;
    if (lo > hi) std::swap(lo, hi);
    const std::size_t max_ticks = 3 + trial % 9;
    const auto ticks = linear_ticks(lo, hi, max_ticks);
    ASSERT_GE(ticks.size(), 2u);
    ASSERT_LE(ticks.size(), max_ticks) << lo << " " << hi;
    EXPECT_LE(ticks.front(), lo);
    EXPECT_GE(ticks.back(), hi);
    const double step = ticks[1] - ticks[0];
    for (std::size_t i = 1; i < ticks.size(); ++i) {
      EXPECT_NEAR(ticks[i] - ticks[i - 1], step, std::abs(step) * 1e-9);
    }
    EXPECT_NEAR(step, nice_number(step * 0.999999, /*round=*/false), step * 1e-9);  // a nice step
  }
}

TEST(SvgChartTest, LogTicksHandComputed) {
  // 1e-30 .. 0.2 spans decades -30 .. 0: steps of 1..4 decades give 31, 16, 11, 9 ticks; 5 gives 7.
  const auto wide = log_ticks(1e-30, 0.2, 8);
  ASSERT_EQ(wide.size(), 7u);
  for (std::size_t i = 0; i < wide.size(); ++i) {
    EXPECT_NEAR(std::log10(wide[i]), -30.0 + 5.0 * i, 1e-9);
  }
  const auto narrow = log_ticks(0.002, 0.5, 8);
  ASSERT_EQ(narrow.size(), 4u);
  EXPECT_NEAR(narrow.front(), 1e-3, 1e-15);
  EXPECT_NEAR(narrow.back(), 1.0, 1e-12);
  // Exact powers of ten stay on their decade; a single value gets one decade more.
  const auto single = log_ticks(1e-3, 1e-3, 8);
  ASSERT_EQ(single.size(), 2u);
  EXPECT_NEAR(single[0], 1e-3, 1e-15);
  EXPECT_NEAR(single[1], 1e-2, 1e-15);
  EXPECT_THROW(log_ticks(0.0, 1.0, 8), std::invalid_argument);
  EXPECT_THROW(log_ticks(-1.0, 1.0, 8), std::invalid_argument);
  EXPECT_THROW(log_ticks(1e-3, 1e3, 2), std::invalid_argument);
  EXPECT_EQ(log_ticks(1e-3, 1e3, 3).size(), 3u);  // 1e-3, 1, 1e3
}

TEST(SvgChartTest, AutoLogScaleNeedsMoreThanTwoDecadesOfNonNegativeValues) {
  auto series = [](std::vector<double> y) {
    ChartSeries s;
    s.y = std::move(y);
    s.x.assign(s.y.size(), 0.0);
    return std::vector<ChartSeries>{s};
  };
  EXPECT_TRUE(auto_log_scale(series({0.2, 1e-5, 1e-30})));
  EXPECT_FALSE(auto_log_scale(series({0.2, 0.01})));  // 20x
  EXPECT_FALSE(auto_log_scale(series({1.0, 0.01})));  // exactly 2 decades
  EXPECT_TRUE(auto_log_scale(series({1.0, 0.0099})));
  EXPECT_FALSE(auto_log_scale(series({-1.0, 1e-6, 1.0})));  // a negative value
  EXPECT_TRUE(auto_log_scale(series({kNaN, 0.0, 0.5, 1e-5, kInf})));
  EXPECT_FALSE(auto_log_scale(series({kNaN, 0.0})));
}

TEST(SvgChartTest, AxisScaleMapsLinearlyAndInLogSpace) {
  const AxisScale linear(0.0, 10.0, 0.0, 100.0, /*log=*/false);
  EXPECT_DOUBLE_EQ(linear.map(2.5), 25.0);
  EXPECT_DOUBLE_EQ(linear.map(10.0), 100.0);
  // Screen y grows downwards: 1e-30 at the bottom (300), 1 at the top (0).
  const AxisScale log(1e-30, 1.0, 300.0, 0.0, /*log=*/true);
  EXPECT_NEAR(log.map(1e-15), 150.0, 1e-9);
  EXPECT_NEAR(log.map(1.0), 0.0, 1e-9);
  EXPECT_NEAR(log.map(1e-30), 300.0, 1e-9);
  EXPECT_NEAR(log.map(1e-20), 200.0, 1e-9);  // 10 of 30 decades above the bottom
  EXPECT_TRUE(std::isnan(log.map(0.0)));
  EXPECT_TRUE(std::isnan(log.map(-1.0)));
  EXPECT_THROW(AxisScale(0.0, 1.0, 0, 100, /*log=*/true), std::invalid_argument);
}

TEST(SvgChartTest, TickLabelsAndEscaping) {
  EXPECT_EQ(format_tick(1e-30, /*log_axis=*/true), "1e-30");
  EXPECT_EQ(format_tick(1e6, true), "1e6");
  EXPECT_EQ(format_tick(0.01, true), "0.01");
  EXPECT_EQ(format_tick(1000.0, true), "1000");
  EXPECT_EQ(format_tick(0.25, false), "0.25");
  EXPECT_EQ(format_tick(1500.0, false), "1500");
  EXPECT_EQ(format_tick(-0.5, false), "-0.5");
  EXPECT_EQ(xml_escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
}

TEST(SvgChartTest, PointsLandOnTheirPixels) {
  // 640 x 300 without title or legend: plot from x 72 to 626 and y 256 (bottom) to 12 (top).
  ChartSeries s{"p", {0.0, 10.0}, {0.0, 1.0}, ""};
  const std::string svg = render_line_chart({s}, ChartOptions{});
  const auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_EQ(lines[0].size(), 2u);
  EXPECT_DOUBLE_EQ(lines[0][0].first, 72.0);
  EXPECT_DOUBLE_EQ(lines[0][0].second, 256.0);
  EXPECT_DOUBLE_EQ(lines[0][1].first, 626.0);
  EXPECT_DOUBLE_EQ(lines[0][1].second, 12.0);
  EXPECT_NE(svg.find("data-scale=\"linear\""), std::string::npos);
  EXPECT_NE(svg.find("stroke=\"#1f77b4\""), std::string::npos);
}

TEST(SvgChartTest, LogScaleChartPlacesDecadesEvenly) {
  // y from 1 to 1e-30: the axis is 1e-30 .. 1 and 1e-15 sits half-way (y = (12 + 256) / 2 = 134).
  ChartSeries s{"rejected", {0.0, 5.0, 10.0}, {1.0, 1e-15, 1e-30}, ""};
  const std::string svg = render_line_chart({s}, ChartOptions{});
  EXPECT_NE(svg.find("data-scale=\"log\""), std::string::npos);
  const auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_EQ(lines[0].size(), 3u);
  EXPECT_DOUBLE_EQ(lines[0][0].second, 12.0);
  EXPECT_DOUBLE_EQ(lines[0][1].first, 349.0);
  EXPECT_DOUBLE_EQ(lines[0][1].second, 134.0);
  EXPECT_DOUBLE_EQ(lines[0][2].second, 256.0);
  EXPECT_NE(svg.find(">1e-30<"), std::string::npos);  // tick labels
  EXPECT_NE(svg.find(">1e-15<"), std::string::npos);
  // Forced linear: 1e-15 lands on the bottom with 1e-30.
  ChartOptions linear;
  linear.y_scale = YScale::kLinear;
  const auto flat = polylines(render_line_chart({s}, linear));
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_DOUBLE_EQ(flat[0][1].second, 256.0);
}

TEST(SvgChartTest, NonFinitePointsAreSkippedNotDrawn) {
  ChartSeries s{"s", {1, 2, 3, 4, 5, 6, 7}, {0.1, 0.2, kNaN, 0.4, 0.5, kInf, 0.7}, ""};
  const std::string svg = render_line_chart({s}, ChartOptions{});
  const auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 2u);  // {1, 2} and {4, 5}; 7 is alone
  EXPECT_EQ(lines[0].size(), 2u);
  EXPECT_EQ(lines[1].size(), 2u);
  EXPECT_EQ(count(svg, "<circle class=\"series-point\""), 1u);
  for (const char* bad : {"nan", "inf", "NaN", "Inf"}) {
    EXPECT_EQ(svg.find(bad), std::string::npos) << bad;
  }
  // The y axis covers the finite values only: 0.1 .. 0.7 in steps of 0.1 (0.6 / 7 rounds to 0.1).
  EXPECT_NE(svg.find(">0.1</text>"), std::string::npos);
  EXPECT_NE(svg.find(">0.7</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">0.8</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">0</text>"), std::string::npos);
  // On a log axis zero is not drawable either.
  ChartSeries z{"z", {1, 2, 3, 4}, {0.5, 0.0, 1e-10, 1e-20}, ""};
  const std::string log_svg = render_line_chart({z}, ChartOptions{});
  EXPECT_NE(log_svg.find("data-scale=\"log\""), std::string::npos);
  ASSERT_EQ(polylines(log_svg).size(), 1u);
  EXPECT_EQ(polylines(log_svg)[0].size(), 2u);
  EXPECT_EQ(count(log_svg, "<circle class=\"series-point\""), 1u);
}

TEST(SvgChartTest, LegendOnlyForSeveralSeriesAndEscaped) {
  ChartSeries a{"a<b", {0, 1}, {0, 1}, ""}, b{"run & co", {0, 1}, {1, 0}, "#123456"};
  ChartOptions options;
  options.title = "probs/chosen";
  options.id = "compare-probs-chosen";
  options.css_class = "chart-compare";
  const std::string two = render_line_chart({a, b}, options);
  EXPECT_EQ(count(two, "class=\"legend-entry\""), 2u);
  EXPECT_NE(two.find("a&lt;b"), std::string::npos);
  EXPECT_NE(two.find("run &amp; co"), std::string::npos);
  EXPECT_NE(two.find("stroke=\"#123456\""), std::string::npos);
  EXPECT_NE(two.find("stroke=\"#1f77b4\""), std::string::npos);
  EXPECT_NE(two.find("class=\"chart chart-compare\" id=\"compare-probs-chosen\""),
            std::string::npos);
  EXPECT_EQ(render_line_chart({a}, options).find("legend-entry"), std::string::npos);
  // Unlabelled series have no entry; entries that do not fit are counted, not dropped silently.
  ChartSeries unlabelled{"", {0, 1}, {0.5, 0.5}, ""};
  EXPECT_EQ(count(render_line_chart({a, unlabelled}, options), "legend-entry"), 0u);
  EXPECT_EQ(count(render_line_chart({a, unlabelled, b}, options), "class=\"legend-entry\""), 2u);
  std::vector<ChartSeries> many;
  for (int i = 0; i < 20; ++i) many.push_back({"run " + std::to_string(i), {0, 1}, {0, 1}, ""});
  const std::string crowded = render_line_chart(many, options);  // (256 - 30) / 16 = 14 rows
  EXPECT_EQ(count(crowded, "class=\"legend-entry\""), 13u);
  EXPECT_NE(crowded.find(">+7 more</text>"), std::string::npos);
  EXPECT_EQ(polylines(crowded).size(), 20u);
  // Long labels lose their middle in the legend (the full text stays in the entry's <title>).
  ChartSeries long_a{"toy-dpo-beta [loss.beta=0.5] seed=0", {0, 1}, {0, 1}, ""};
  const std::string beta = "\xCE\xB2";  // two bytes in UTF-8
  std::string betas;
  for (int i = 0; i < 10; ++i) betas += beta;
  ChartSeries long_b{"x" + betas + "abcdefghijkl", {0, 1}, {1, 0}, ""};  // 33 bytes
  const std::string cut = render_line_chart({long_a, long_b}, options);
  EXPECT_NE(cut.find(">toy-dpo-beta...a=0.5] seed=0</text>"), std::string::npos) << cut;
  EXPECT_NE(cut.find("<title>toy-dpo-beta [loss.beta=0.5] seed=0</title>"), std::string::npos);
  // The 12-byte head would end inside the sixth beta and the 13-byte tail start inside the last
  // one: the cut keeps whole characters only.
  EXPECT_NE(cut.find(">x" + betas.substr(0, 10) + "...abcdefghijkl</text>"), std::string::npos);
}

TEST(SvgChartTest, EmptyChartSaysNoDataAndBadInputThrows) {
  ChartSeries empty{"e", {1, 2}, {kNaN, kNaN}, ""};
  const std::string svg = render_line_chart({empty}, ChartOptions{});
  EXPECT_NE(svg.find(">no data<"), std::string::npos);
  EXPECT_TRUE(polylines(svg).empty());
  ChartSeries ragged{"r", {1, 2, 3}, {1, 2}, ""};
  EXPECT_THROW(render_line_chart({ragged}, ChartOptions{}), std::invalid_argument);
  ChartOptions narrow;
  narrow.width = 100;
  EXPECT_THROW(render_line_chart({empty}, narrow), std::invalid_argument);
  ChartOptions low;
  low.height = 100;
  EXPECT_THROW(low.validate(), std::invalid_argument);
  EXPECT_NO_THROW(ChartOptions{}.validate());
  ChartOptions ticks;
  ticks.max_ticks = 2;
  EXPECT_THROW(ticks.validate(), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// run_summary

TEST(RunSummaryTest, LoadsARunDirectory) {
  const RunData run = load_run(fixture("toy-dpo-s0"));
  EXPECT_EQ(run.name, "toy-dpo");
  ASSERT_TRUE(run.seed.has_value());
  EXPECT_EQ(*run.seed, 0);
  EXPECT_TRUE(run.sweep_point.empty());
  EXPECT_EQ(run.status, "completed");
  EXPECT_EQ(run.rows.size(), 12u);  // 3 sft + 9 dpo
  EXPECT_EQ(run.stages, (std::vector<std::string>{"sft", "dpo"}));
  EXPECT_EQ(run.stage_methods.at("dpo"), "dpo");
  EXPECT_EQ(run.stage_methods.at("sft"), "sft");
  EXPECT_EQ(run.rows[3].stage, "dpo");
  EXPECT_EQ(run.rows[3].step, 1);
  ASSERT_TRUE(run.rows[3].global_step.has_value());
  EXPECT_EQ(*run.rows[3].global_step, 101);
  EXPECT_DOUBLE_EQ(run.rows[3].values.at("loss"), 0.693);
  EXPECT_EQ(run.label(), "toy-dpo seed=0");

  std::vector<double> steps, values;
  run.series("dpo", "probs/rejected", &steps, &values);
  ASSERT_EQ(steps.size(), 9u);
  EXPECT_DOUBLE_EQ(steps[4], 100.0);
  EXPECT_DOUBLE_EQ(values[8], 1e-25);

  const RunData sweep = load_run(fixture("toy-dpo-beta0.1-s0"));
  EXPECT_EQ(sweep.sweep_point, (std::map<std::string, std::string>{{"loss.beta", "0.1"}}));
  EXPECT_EQ(sweep.label(), "toy-dpo-beta [loss.beta=0.1] seed=0");
}

TEST(RunSummaryTest, FiguresOfTheLastStage) {
  const RunSummary s = summarize_run(load_run(fixture("toy-dpo-s0")));
  EXPECT_EQ(s.stage, "dpo");
  EXPECT_EQ(s.method, "dpo");
  EXPECT_EQ(s.last_step, 200);
  EXPECT_DOUBLE_EQ(s.peak_chosen, 0.44);
  EXPECT_DOUBLE_EQ(s.peak_chosen_step, 100.0);
  EXPECT_DOUBLE_EQ(s.final_chosen, 0.33);
  EXPECT_DOUBLE_EQ(s.final_rejected, 1e-25);
  EXPECT_DOUBLE_EQ(s.final_unseen, 0.52);
  EXPECT_DOUBLE_EQ(s.final_never_seen, 0.17);
  ASSERT_TRUE(s.steps_to_rejected_below.has_value());
  EXPECT_EQ(*s.steps_to_rejected_below, 100);  // 4e-3 at step 75, 9e-4 at step 100
  EXPECT_DOUBLE_EQ(s.final_loss, 0.006);
}

TEST(RunSummaryTest, FiguresOfAChosenStage) {
  SummaryOptions options;
  options.stage = "sft";
  const RunSummary s = summarize_run(load_run(fixture("toy-dpo-s0")), options);
  EXPECT_EQ(s.method, "sft");
  EXPECT_DOUBLE_EQ(s.peak_chosen, 0.20);
  EXPECT_DOUBLE_EQ(s.peak_chosen_step, 100.0);
  EXPECT_FALSE(s.steps_to_rejected_below.has_value());
  EXPECT_DOUBLE_EQ(s.final_loss, 0.95);
  options.stage = "ppo";
  try {
    summarize_run(load_run(fixture("toy-dpo-s0")), options);
    FAIL() << "expected an unknown-stage error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no stage 'ppo'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sft, dpo"), std::string::npos) << e.what();
  }
}

TEST(RunSummaryTest, NullsAndMissingMetricsAndNeverCrossing) {
  // toy-ipo-s0: the step-100 loss is null, the step-150 row has no probs/unseen, and
  // probs/rejected ends at 0.03.
  const RunSummary s = summarize_run(load_run(fixture("toy-ipo-s0")));
  EXPECT_EQ(s.stage, "pairwise");
  EXPECT_EQ(s.method, "ipo");
  EXPECT_EQ(s.status, "failed");
  EXPECT_DOUBLE_EQ(s.peak_chosen, 0.39);
  EXPECT_DOUBLE_EQ(s.peak_chosen_step, 150.0);
  EXPECT_DOUBLE_EQ(s.final_chosen, 0.38);
  EXPECT_DOUBLE_EQ(s.final_unseen, 0.40);
  EXPECT_DOUBLE_EQ(s.final_loss, 2.8);
  EXPECT_FALSE(s.steps_to_rejected_below.has_value());
  SummaryOptions loose;
  loose.rejected_threshold = 0.05;
  const RunSummary l = summarize_run(load_run(fixture("toy-ipo-s0")), loose);
  ASSERT_TRUE(l.steps_to_rejected_below.has_value());
  EXPECT_EQ(*l.steps_to_rejected_below, 150);
  for (double bad : {0.0, 1.0, -0.1, kNaN}) {
    SummaryOptions o;
    o.rejected_threshold = bad;
    EXPECT_THROW(o.validate(), std::invalid_argument) << bad;
  }
}

TEST(RunSummaryTest, MeanAndSampleStd) {
  const Stat two = mean_std({0.44, 0.48});
  EXPECT_EQ(two.n, 2);
  EXPECT_NEAR(two.mean, 0.46, 1e-15);
  EXPECT_NEAR(two.std, 0.028284271247461905, 1e-15);  // |0.48 - 0.44| / sqrt(2)
  const Stat four = mean_std({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(four.mean, 2.5);
  EXPECT_NEAR(four.std, 1.2909944487358056, 1e-15);  // sqrt(5 / 3)
  const Stat one = mean_std({kNaN, 5.0});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 5.0);
  EXPECT_TRUE(std::isnan(one.std));
  EXPECT_EQ(mean_std({}).n, 0);
  EXPECT_EQ(format_stat(mean_std({})), "n/a");
  EXPECT_EQ(format_stat(one), "5.00");
  EXPECT_EQ(format_stat(two), "0.460 ± 0.0283");
  EXPECT_EQ(format_stat(mean_std({1e-25, 3e-24})), "1.55e-24 ± 2.05e-24");
}

TEST(RunSummaryTest, GroupsRunsThatDifferOnlyBySeed) {
  std::vector<RunSummary> runs;
  for (const auto& dir : good_runs()) runs.push_back(summarize_run(load_run(dir)));
  const auto groups = group_over_seeds(runs);
  ASSERT_EQ(groups.size(), 4u);  // toy-dpo (seeds 0, 1), toy-ipo, two sweep points
  const SummaryGroup& dpo = groups[0];
  EXPECT_EQ(dpo.name, "toy-dpo");
  EXPECT_EQ(dpo.seeds, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(dpo.dirs.size(), 2u);
  EXPECT_EQ(dpo.failed, 0);
  // Seed 0 and seed 1 by hand: peaks 0.44 @ 100 and 0.48 @ 125, finals 0.33 and 0.37, ...
  EXPECT_NEAR(dpo.peak_chosen.mean, 0.46, 1e-12);
  EXPECT_NEAR(dpo.peak_chosen.std, 0.02828427124746, 1e-12);
  EXPECT_NEAR(dpo.peak_chosen_step.mean, 112.5, 1e-12);
  EXPECT_NEAR(dpo.peak_chosen_step.std, 17.67766952966369, 1e-9);  // 25 / sqrt(2)
  EXPECT_NEAR(dpo.final_chosen.mean, 0.35, 1e-12);
  EXPECT_NEAR(dpo.final_rejected.mean, 1.55e-24, 1e-36);
  EXPECT_NEAR(dpo.final_unseen.mean, 0.50, 1e-12);
  EXPECT_NEAR(dpo.final_unseen.std, 0.02828427124746, 1e-12);
  EXPECT_NEAR(dpo.final_never_seen.mean, 0.16, 1e-12);
  EXPECT_NEAR(dpo.final_never_seen.std, 0.01414213562373, 1e-12);
  EXPECT_EQ(dpo.reached, 2);
  EXPECT_NEAR(dpo.steps_to_rejected_below.mean, 112.5, 1e-12);  // steps 100 and 125
  EXPECT_NEAR(dpo.final_loss.mean, 0.007, 1e-15);
  EXPECT_NEAR(dpo.final_loss.std, 0.001414213562373, 1e-12);

  EXPECT_EQ(groups[1].name, "toy-ipo");
  EXPECT_EQ(groups[1].failed, 1);
  EXPECT_EQ(groups[1].reached, 0);
  EXPECT_EQ(groups[2].sweep_point.at("loss.beta"), "0.1");
  EXPECT_EQ(groups[2].reached, 1);
  EXPECT_DOUBLE_EQ(groups[2].steps_to_rejected_below.mean, 100.0);  // 2e-4 at step 100
  EXPECT_DOUBLE_EQ(groups[2].peak_chosen.mean, 0.42);
  EXPECT_EQ(groups[3].sweep_point.at("loss.beta"), "0.5");
  EXPECT_EQ(groups[3].reached, 0);  // ends at 1.5e-3
  EXPECT_DOUBLE_EQ(groups[3].peak_chosen_step.mean, 200.0);
}

TEST(RunSummaryTest, MarkdownAndCsvTables) {
  std::vector<RunSummary> runs;
  for (const auto& dir : good_runs()) runs.push_back(summarize_run(load_run(dir)));
  const auto groups = group_over_seeds(runs);
  const std::string md = summary_markdown(groups);
  std::vector<std::string> lines;
  std::istringstream in(md);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 6u);  // header, rule, 4 groups
  EXPECT_EQ(
      lines[0],
      "| run | method | sweep point | seeds | peak p(chosen) | step of peak | final p(chosen) "
      "| final p(rejected) | final p(unseen) | final p(never seen) | steps to p(rejected) < "
      "0.001 | final loss |");
  EXPECT_EQ(lines[2],
            "| toy-dpo | dpo | - | 0, 1 | 0.460 ± 0.0283 | 112 ± 17.7 | 0.350 ± 0.0283 "
            "| 1.55e-24 ± 2.05e-24 | 0.500 ± 0.0283 | 0.160 ± 0.0141 | 112 ± 17.7 "
            "| 0.00700 ± 0.00141 |");
  EXPECT_EQ(lines[3],
            "| toy-ipo | ipo | - | 0 (1 failed) | 0.390 | 150 | 0.380 | 0.0300 | 0.400 | 0.190 "
            "| never | 2.80 |");
  EXPECT_NE(lines[4].find("| toy-dpo-beta | dpo | loss.beta=0.1 | 0 | 0.420 | 100 |"),
            std::string::npos);

  const std::string csv = summary_csv(groups);
  std::vector<std::vector<std::string>> rows;
  std::istringstream csv_in(csv);
  for (std::string line; std::getline(csv_in, line);) {
    std::vector<std::string> cells;
    std::stringstream cell_in(line);
    for (std::string cell; std::getline(cell_in, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    rows.push_back(cells);
  }
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& row : rows) EXPECT_EQ(row.size(), rows[0].size());
  auto column = [&](const std::string& name) {
    for (std::size_t c = 0; c < rows[0].size(); ++c) {
      if (rows[0][c] == name) return c;
    }
    ADD_FAILURE() << "no column " << name;
    return std::size_t{0};
  };
  EXPECT_NEAR(std::stod(rows[1][column("peak_chosen_mean")]), 0.46, 1e-15);
  EXPECT_NEAR(std::stod(rows[1][column("final_loss_std")]), 0.001414213562373, 1e-12);
  EXPECT_EQ(rows[1][column("seeds")], "0;1");
  EXPECT_EQ(rows[1][column("stage")], "dpo");
  EXPECT_EQ(rows[2][column("failed")], "1");
  EXPECT_EQ(rows[2][column("rejected_below_runs")], "0");
  EXPECT_EQ(rows[2][column("steps_to_rejected_below_mean")], "");
  EXPECT_EQ(rows[2][column("peak_chosen_std")], "");  // one seed: no std
  EXPECT_EQ(rows[3][column("sweep_point")], "loss.beta=0.1");
}

TEST(RunSummaryTest, WriteSummaryWritesMarkdownAndCsv) {
  const fs::path out = scratch("summary") / "nested";
  const auto groups = write_summary(good_runs(), out.string());
  EXPECT_EQ(groups.size(), 4u);
  EXPECT_EQ(read_file(out / "summary.md"), summary_markdown(groups));
  EXPECT_EQ(read_file(out / "summary.csv"), summary_csv(groups));
  const std::string runs = read_file(out / "runs.csv");
  std::vector<std::string> lines;
  std::istringstream in(runs);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 6u);  // header + 5 runs
  EXPECT_EQ(lines[0].rfind("dir,name,method,stage,sweep_point,seed,status,last_step,", 0), 0u);
  // toy-dpo-s1 by hand: peak 0.48 at 125, finals 0.37, 3e-24, 0.48, 0.15, below 1e-3 at 125.
  EXPECT_EQ(lines[2], fixture("toy-dpo-s1") +
                          ",toy-dpo,dpo,dpo,,1,completed,200,0.47999999999999998,125,"
                          "0.37,3e-24,0.47999999999999998,0.14999999999999999,"
                          "125,0.0080000000000000002,,,,");  // no language-model figures
  EXPECT_EQ(lines[3], fixture("toy-ipo-s0") +
                          ",toy-ipo,ipo,pairwise,,0,failed,200,0.39000000000000001,150,"
                          "0.38,0.029999999999999999,0.40000000000000002,0.19,,2.7999999999999998,,,,");
}

// Two seeds of a language-model DPO run: per-token log-probs and graded eval, no probs/*.
std::vector<std::string> lm_runs() {
  std::vector<std::string> dirs;
  const double chosen[2] = {-1.5, -1.7}, rejected[2] = {-2.5, -2.9}, score[2] = {3.0, 4.0};
  for (int seed = 0; seed < 2; ++seed) {
    const fs::path dir = scratch("lm-s" + std::to_string(seed));
    write_file(dir / "config.yaml", "name: lm-dpo\nseed: " + std::to_string(seed) + "\n");
    write_file(dir / "run.json", "{\"status\": \"completed\"}");
    std::string lines;
    for (int step = 1; step <= 2; ++step) {
      const double k = step == 2 ? 1 : 0;  // the second row's values are the final ones
      lines += "{\"stage\": \"dpo\", \"step\": " + std::to_string(step) +
               ", \"loss\": 0.5, \"logps/chosen_per_token\": " + std::to_string(k * chosen[seed] - (1 - k)) +
               ", \"logps/rejected_per_token\": " + std::to_string(k * rejected[seed] - (1 - k)) +
               ", \"eval/score_mean\": " + std::to_string(k * score[seed] + (1 - k)) +
               ", \"eval/accuracy\": " + std::to_string(0.25 * k * (seed + 1)) + "}\n";
    }
    write_file(dir / "metrics.jsonl", lines);
    dirs.push_back(dir.string());
  }
  return dirs;
}

TEST(RunSummaryTest, LanguageModelRunsGetTheirOwnColumns) {
  std::vector<RunSummary> runs;
  for (const auto& dir : lm_runs()) runs.push_back(summarize_run(load_run(dir)));
  EXPECT_DOUBLE_EQ(runs[1].final_rejected_per_token, -2.9);
  EXPECT_DOUBLE_EQ(runs[1].final_eval_accuracy, 0.5);
  std::istringstream in(summary_markdown(group_over_seeds(runs)));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u);
  // No probability columns (no run logs one); mean ± sample std by hand: chosen -1.6 ± 0.141,
  // rejected -2.7 ± 0.283, score 3.5 ± 0.707, accuracy 0.375 ± 0.177.
  EXPECT_EQ(lines[0], "| run | method | sweep point | seeds | final logp/token chosen | final logp/token rejected "
                      "| final eval score | final eval accuracy | final loss |");
  EXPECT_EQ(lines[1], "|---|---|---|---|--:|--:|--:|--:|--:|");
  EXPECT_EQ(lines[2], "| lm-dpo | - | - | 0, 1 | -1.60 ± 0.141 | -2.70 ± 0.283 | 3.50 ± 0.707 | 0.375 ± 0.177 "
                      "| 0.500 ± 0 |");
  // With a toy run beside them: both sets of columns.
  runs.push_back(summarize_run(load_run(fixture("toy-dpo-s0"))));
  const std::string both = summary_markdown(group_over_seeds(runs));
  EXPECT_NE(both.find("| final p(never seen) | steps to p(rejected) < 0.001 | final logp/token chosen |"), std::string::npos)
      << both;
}

TEST(RunSummaryTest, BadMetricsLineNamesFileAndLine) {
  const std::string path = fixture("bad-metrics") + "/metrics.jsonl";
  try {
    load_run(fixture("bad-metrics"));
    FAIL() << "expected an error for the cut-off third line";
  } catch (const std::invalid_argument& e) {
    // Line 3 is '{"stage": "dpo", "step": 3, "loss": 0.6' (39 bytes): it ends at column 40.
    EXPECT_EQ(std::string(e.what()),
              path +
                  ":3:40: not valid JSON: syntax error while parsing object - unexpected end of "
                  "input; expected '}'");
  }
  const fs::path dir = scratch("bad_lines");
  const std::string good = "{\"stage\": \"dpo\", \"step\": 1, \"loss\": 0.5}\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[1, 2]", "expected a JSON object"},
      {"{\"step\": 2, \"loss\": NaN}", "not valid JSON"},
      {"{\"stage\": \"dpo\", \"loss\": 0.5}", "no \"step\" field"},
      {"{\"stage\": \"dpo\", \"step\": \"ten\"}", "\"step\" must be an integer"},
      {"{\"stage\": \"dpo\", \"step\": 2.5}", "\"step\" must be an integer"},
      {"{\"stage\": 3, \"step\": 2}", "\"stage\" must be a string"},
      {"{\"stage\": \"dpo\", \"step\": 2, \"global_step\": null}", "\"global_step\" must be"},
  };
  for (const auto& [line, message] : cases) {
    const fs::path file = dir / "metrics.jsonl";
    write_file(file, good + "\n" + line + "\n");  // the blank line 2 is skipped, not an error
    try {
      read_metrics_jsonl(file.string());
      ADD_FAILURE() << "no error for " << line;
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind(file.string() + ":3:", 0), 0u) << what;
      EXPECT_NE(what.find(message), std::string::npos) << what;
    }
  }
  // Non-finite values spelt as strings, and non-metric strings.
  write_file(dir / "metrics.jsonl",
             "{\"step\": 1, \"loss\": \"nan\", \"probs/rejected\": \"-inf\", \"note\": \"x\"}\n");
  const auto rows = read_metrics_jsonl((dir / "metrics.jsonl").string());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].stage, "");
  EXPECT_TRUE(std::isnan(rows[0].values.at("loss")));
  EXPECT_EQ(rows[0].values.at("probs/rejected"), -kInf);
  EXPECT_EQ(rows[0].values.count("note"), 0u);
}

TEST(RunSummaryTest, MissingFilesAndBadConfigs) {
  EXPECT_THROW(load_run(fixture("no-such-run")), std::runtime_error);
  EXPECT_THROW(read_metrics_jsonl(fixture("no-such-run") + "/metrics.jsonl"), std::runtime_error);
  const fs::path dir = scratch("bad_config");
  write_file(dir / "metrics.jsonl", "{\"stage\": \"dpo\", \"step\": 1, \"loss\": 0.5}\n");
  try {
    load_run(dir.string());
    FAIL() << "expected a missing config.yaml error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("config.yaml"), std::string::npos) << e.what();
  }
  write_file(dir / "config.yaml", "seed: 0\n");
  try {
    load_run(dir.string());
    FAIL() << "expected a missing name error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no top-level `name:`"), std::string::npos) << e.what();
  }
  write_file(dir / "config.yaml", "name: x\nseed: [0,\n");
  try {
    load_run(dir.string());
    FAIL() << "expected a YAML syntax error";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind((dir / "config.yaml").string() + ":", 0), 0u) << e.what();
  }
  write_file(dir / "config.yaml", "name: x\nsweep_point: 3\n");
  EXPECT_THROW(load_run(dir.string()), std::invalid_argument);
  // Without run.json the status is unknown, not an error.
  write_file(dir / "config.yaml", "name: x\n");
  EXPECT_EQ(load_run(dir.string()).status, "unknown");
  write_file(dir / "run.json", "{\"status\": ");
  EXPECT_THROW(load_run(dir.string()), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// html_report

TEST(HtmlReportTest, OneChartPerMetricAndRunPlusOverlays) {
  std::vector<RunData> runs;
  for (const auto& dir : good_runs()) runs.push_back(load_run(dir));
  const ReportOptions options;
  const auto metrics = report_metrics(runs, options);
  EXPECT_EQ(metrics, (std::vector<std::string>{"probs/chosen", "probs/rejected", "probs/unseen",
                                               "probs/never_seen", "grad/chosen_log10",
                                               "grad/rejected_log10", "grad/ratio_log10", "loss",
                                               "rewards/accuracies", "rewards/margins"}));
  // a trailing * adds every metric with that prefix; a name adds itself once
  ReportOptions extra;
  extra.extra_metrics = {"loss", "rewards/*", "grad_norm"};
  auto with_extra = metrics;
  with_extra.push_back("grad_norm");
  EXPECT_EQ(report_metrics(runs, extra), with_extra);
  const std::string html = render_html_report(runs, options);
  // 10 overlays + 5 runs x (1 probability overlay + 10 metrics).
  EXPECT_EQ(count(html, "<svg "), 10u + 5u * 11u);
  EXPECT_EQ(count(html, "class=\"chart chart-compare\""), 10u);
  EXPECT_EQ(count(html, "class=\"chart chart-probs\""), 5u);
  EXPECT_EQ(count(html, "class=\"chart chart-run\""), 50u);
  for (const auto& metric : metrics) {
    EXPECT_EQ(count(html, "data-metric=\"" + metric + "\""), 6u) << metric;
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(count(html, "data-run=\"" + std::to_string(i) + "\""), 11u) << i;
  }
  // Overlays have one line per run; runs that differ only by seed share a colour and a legend
  // entry: 4 groups, toy-dpo seeds 0 and 1 both in the first colour.
  const std::string compare = svg_by_id(html, "compare-probs-chosen");
  ASSERT_FALSE(compare.empty());
  EXPECT_EQ(polylines(compare).size(), 5u);
  EXPECT_EQ(count(compare, "class=\"legend-entry\""), 4u);
  EXPECT_NE(compare.find("<title>toy-dpo seeds=0,1</title>"), std::string::npos);
  EXPECT_NE(compare.find("<title>toy-dpo-beta [loss.beta=0.5] seed=0</title>"), std::string::npos);
  EXPECT_EQ(count(compare, "<polyline class=\"series\" data-series=\"0\" stroke=\"#1f77b4\""), 1u);
  EXPECT_EQ(count(compare, "<polyline class=\"series\" data-series=\"1\" stroke=\"#1f77b4\""), 1u);
  EXPECT_EQ(count(compare, "<polyline class=\"series\" data-series=\"4\" stroke=\"#d62728\""), 1u);
  // The per-run charts use the same colours.
  EXPECT_NE(svg_by_id(html, "run1-loss").find("stroke=\"#1f77b4\""), std::string::npos);
  EXPECT_NE(svg_by_id(html, "run2-loss").find("stroke=\"#ff7f0e\""), std::string::npos);
  // Without seeds to group, every run has its own colour and entry.
  const std::vector<RunData> pair = {runs[0], runs[2]};
  const std::string ungrouped = svg_by_id(render_html_report(pair, options), "compare-loss");
  EXPECT_EQ(count(ungrouped, "class=\"legend-entry\""), 2u);
  EXPECT_NE(ungrouped.find("<title>toy-dpo seed=0</title>"), std::string::npos);
  EXPECT_NE(ungrouped.find("stroke=\"#ff7f0e\""), std::string::npos);
  // probs/rejected (0.2 -> 1e-25) is drawn on a log axis, probs/chosen on a linear one.
  EXPECT_NE(svg_by_id(html, "run0-probs-rejected").find("data-scale=\"log\""), std::string::npos);
  EXPECT_NE(svg_by_id(html, "run0-probs-chosen").find("data-scale=\"linear\""), std::string::npos);
  EXPECT_NE(svg_by_id(html, "run0-probs").find("data-scale=\"log\""), std::string::npos);
  // Run 0's probs/chosen: 9 dpo rows, one polyline; its peak (0.44) is the highest point.
  const auto chosen = polylines(svg_by_id(html, "run0-probs-chosen"));
  ASSERT_EQ(chosen.size(), 1u);
  ASSERT_EQ(chosen[0].size(), 9u);
  EXPECT_DOUBLE_EQ(chosen[0].front().first, 72.0);
  EXPECT_DOUBLE_EQ(chosen[0].back().first, 626.0);
  std::size_t top = 0;
  for (std::size_t i = 0; i < chosen[0].size(); ++i) {
    if (chosen[0][i].second < chosen[0][top].second) top = i;
  }
  EXPECT_EQ(top, 4u);  // step 100
  // The ipo run logs no gradients: its grad charts say so.
  EXPECT_NE(svg_by_id(html, "run2-grad-ratio_log10").find(">no data<"), std::string::npos);
  // Every drawn point lies inside its chart.
  for (const auto& line : polylines(html)) {
    EXPECT_GE(line.size(), 2u);
    for (const auto& [x, y] : line) {
      EXPECT_TRUE(x >= 72.0 && x <= 626.0) << x;
      EXPECT_TRUE(y >= 12.0 && y <= 256.0) << y;
    }
  }
  // The summary table is there.
  EXPECT_NE(html.find("<table class=\"summary\">"), std::string::npos);
  EXPECT_NE(html.find("<td>0.460 ± 0.0283</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>never</td>"), std::string::npos);
}

TEST(HtmlReportTest, SelfContained) {
  std::vector<RunData> runs;
  for (const auto& dir : good_runs()) runs.push_back(load_run(dir));
  std::string html = render_html_report(runs, ReportOptions{});
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  // The only http: is the SVG namespace name, which is never fetched.
  std::size_t pos = 0;
  while ((pos = html.find("http", pos)) != std::string::npos) {
    EXPECT_EQ(html.compare(pos, 26, "http://www.w3.org/2000/svg"), 0) << html.substr(pos, 40);
    pos += 4;
  }
}

TEST(HtmlReportTest, SingleRunStageChoiceThinningAndExtraMetrics) {
  const std::vector<RunData> runs = {load_run(fixture("toy-dpo-s0"))};
  ReportOptions options;
  const std::string one = render_html_report(runs, options);
  EXPECT_EQ(one.find("chart-compare"), std::string::npos);  // nothing to compare
  EXPECT_EQ(count(one, "<svg "), 11u);

  options.stage = "sft";  // sft logs loss and probs only
  const std::string sft = render_html_report(runs, options);
  EXPECT_EQ(count(sft, "<svg "), 1u + 5u);
  EXPECT_EQ(polylines(svg_by_id(sft, "run0-loss"))[0].size(), 3u);

  options = ReportOptions{};
  options.max_points = 3;  // 9 points -> steps 1, 125, 200 (stride 5, then the last)
  const auto thinned = polylines(svg_by_id(render_html_report(runs, options), "run0-loss"));
  ASSERT_EQ(thinned.size(), 1u);
  ASSERT_EQ(thinned[0].size(), 3u);
  EXPECT_DOUBLE_EQ(thinned[0][0].first, 72.0);
  EXPECT_DOUBLE_EQ(thinned[0][2].first, 626.0);

  options = ReportOptions{};
  options.extra_metrics = {"logps/chosen"};
  EXPECT_EQ(report_metrics(runs, options).back(), "logps/chosen");
  EXPECT_NE(render_html_report(runs, options).find("id=\"run0-logps-chosen\""), std::string::npos);

  options = ReportOptions{};
  options.max_points = 1;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options = ReportOptions{};
  options.chart_width = 50;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options = ReportOptions{};
  options.chart_height = 50;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options = ReportOptions{};
  options.rejected_threshold = 2.0;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  EXPECT_THROW(render_html_report({}, ReportOptions{}), std::invalid_argument);
}

TEST(RunSummaryTest, GlobalPositionsAcrossStages) {
  // toy-dpo-s0 logs global_step: sft 1, 50, 100; dpo 101 .. 300.
  const RunData run = load_run(fixture("toy-dpo-s0"));
  const auto x = run.global_positions();
  ASSERT_EQ(x.size(), 12u);
  EXPECT_EQ(x[2], 100.0);
  EXPECT_EQ(x[3], 101.0);
  EXPECT_EQ(x[11], 300.0);
  EXPECT_EQ(run.stage_starts(), (std::vector<std::pair<double, std::string>>{{101.0, "dpo"}}));
  std::vector<double> positions, values;
  run.series_all_stages("probs/chosen", &positions, &values);
  ASSERT_EQ(positions.size(), 12u);
  EXPECT_DOUBLE_EQ(values[0], 0.10);
  EXPECT_DOUBLE_EQ(values[11], 0.33);
  run.series_all_stages("grad/ratio_log10", &positions, &values);  // dpo only
  EXPECT_EQ(positions.size(), 9u);
  EXPECT_EQ(positions.front(), 101.0);
  // Without global_step each stage continues from the furthest position before it.
  RunData bare;
  for (const auto& [stage, step] : std::vector<std::pair<std::string, int64_t>>{
           {"sft", 1}, {"sft", 50}, {"dpo", 1}, {"dpo", 20}, {"ppo", 5}}) {
    MetricRow row;
    row.stage = stage;
    row.step = step;
    bare.rows.push_back(row);
  }
  EXPECT_EQ(bare.global_positions(), (std::vector<double>{1, 50, 51, 70, 75}));
  EXPECT_EQ(bare.stage_starts(),
            (std::vector<std::pair<double, std::string>>{{51.0, "dpo"}, {75.0, "ppo"}}));
}

TEST(HtmlReportTest, AllStagesAgainstTheGlobalStep) {
  const std::vector<RunData> runs = {load_run(fixture("toy-dpo-s0")),
                                     load_run(fixture("toy-dpo-s1"))};
  ReportOptions options;
  options.all_stages = true;
  const std::string html = render_html_report(runs, options);
  // probs/chosen over both stages: 12 points from global step 1 (x 72) to 300 (x 626).
  const std::string chart = svg_by_id(html, "run0-probs-chosen");
  const auto lines = polylines(chart);
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_EQ(lines[0].size(), 12u);
  EXPECT_DOUBLE_EQ(lines[0].front().first, 72.0);
  EXPECT_DOUBLE_EQ(lines[0].back().first, 626.0);
  // The dpo stage starts at global step 101: x = 72 + 100 / 299 * 554 = 257.28.
  EXPECT_EQ(count(chart, "<line class=\"x-marker\""), 1u);
  EXPECT_NE(chart.find("<line class=\"x-marker\" x1=\"257.3\""), std::string::npos);
  EXPECT_NE(chart.find(">dpo</text>"), std::string::npos);
  EXPECT_NE(chart.find(">global step</text>"), std::string::npos);
  EXPECT_NE(html.find("(all stages, completed)"), std::string::npos);
  // Comparison charts have no stage markers (the runs' stages need not line up).
  EXPECT_EQ(svg_by_id(html, "compare-probs-chosen").find("x-marker"), std::string::npos);
  // The summary still covers the last stage.
  EXPECT_NE(html.find("<td>0.460 ± 0.0283</td>"), std::string::npos);
  // Without the option nothing is marked.
  EXPECT_EQ(render_html_report(runs, ReportOptions{}).find("x-marker"), std::string::npos);
}

TEST(HtmlReportTest, WriteHtmlReportWritesTheFileAndReportsBadRuns) {
  const fs::path out = scratch("html") / "sub" / "report.html";
  write_html_report(good_runs(), out.string());
  const std::string page = read_file(out);
  EXPECT_EQ(count(page, "<svg "), 65u);
  std::vector<RunData> runs;
  for (const auto& dir : good_runs()) runs.push_back(load_run(dir));
  EXPECT_EQ(page, render_html_report(runs, ReportOptions{}));
  try {
    write_html_report({fixture("toy-dpo-s0"), fixture("bad-metrics")}, out.string());
    FAIL() << "expected the bad metrics line";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bad-metrics/metrics.jsonl:3:"), std::string::npos);
  }
}

}  // namespace
}  // namespace prefengine
