// The SVG figures of reports: round ticks, legends that stay inside the
// picture, the demo's scatter and bars, line charts and training curves.
#include "cakes/report/svg.h"

#include "report/svg_text.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace cakes::report;
using cakes::test::count;

// step is 1, 2 or 5 x 10^k; every value a whole multiple of it, one step
// apart; the ticks cover [lo, hi] with at most `n` intervals.
void expect_round_cover(double lo, double hi, int n, const Ticks& t) {
  SCOPED_TRACE(std::to_string(lo) + " .. " + std::to_string(hi));
  ASSERT_GE(t.values.size(), 2u);
  const double mantissa =
      t.step / std::pow(10.0, std::floor(std::log10(t.step)));
  EXPECT_TRUE(
      std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 ||
      std::abs(mantissa - 5) < 1e-9)
      << "step " << t.step;
  for (size_t i = 0; i < t.values.size(); ++i) {
    const double k = t.values[i] / t.step;
    EXPECT_NEAR(k, std::round(k), 1e-6) << t.values[i];
    if (i) {
      EXPECT_NEAR(t.values[i] - t.values[i - 1], t.step, t.step * 1e-9);
    }
  }
  EXPECT_LE(t.lo(), lo);
  EXPECT_GE(t.hi(), hi);
  EXPECT_LE(int(t.values.size()) - 1, n);
}

TEST(Ticks, AreRoundAndCoverTheData) {
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{
           {0, 65},
           {16, 65},
           {0, 2747},
           {687, 2747},
           {0.2, 1.38},
           {1.4192, 1.4756},
           {-3, 7},
           {-0.004, -0.001},
           {0, 1e-3},
           {0, 100},
           {1e6, 3.3e7}})
    for (int n : {3, 5, 8})
      expect_round_cover(lo, hi, n, nice_ticks(lo, hi, n));
  // The demo's axes, which used to fall on 16/32/49/65 and 687/1373/2060.
  EXPECT_EQ(
      nice_ticks(0, 65, 5).values, (std::vector<double>{0, 20, 40, 60, 80}));
  EXPECT_EQ(
      nice_ticks(0, 2747, 5).values,
      (std::vector<double>{0, 1000, 2000, 3000}));
  EXPECT_EQ(
      nice_ticks(0, 100, 5).values,
      (std::vector<double>{0, 20, 40, 60, 80, 100}));
}

TEST(Ticks, CountsStepByWholeNumbersAndEmptyRangesWiden) {
  EXPECT_EQ(nice_ticks(1, 3, 6, 1).values, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(nice_ticks(1, 1, 6, 1).values, (std::vector<double>{0, 1, 2}));
  const Ticks flat = nice_ticks(0.5, 0.5, 5);
  EXPECT_LT(flat.lo(), 0.5);
  EXPECT_GT(flat.hi(), 0.5);
  expect_round_cover(0.5, 0.5, 5, flat);
  EXPECT_THROW(nice_ticks(0, INFINITY), std::invalid_argument);
}

TEST(Ticks, LabelsCarryTheDecimalsOfTheStep) {
  EXPECT_EQ(tick_label(0.05, 0.05), "0.05");
  EXPECT_EQ(tick_label(3 * 0.1, 0.1), "0.3");
  EXPECT_EQ(tick_label(2000, 1000), "2000");
  EXPECT_EQ(tick_label(-1e-17, 0.2), "0.0");
  EXPECT_EQ(tick_label(1.5, 0.5), "1.5");
}

TEST(Legend, WrapsAndShortensWithinItsWidth) {
  Svg svg(300, 200);
  std::vector<LegendEntry> entries;
  for (const char* k :
       {"3x3x3", "1x3x3", "3x1x3", "3x3x1", "3x1x1", "1x3x1", "1x1x3"})
    entries.push_back({k, "#123456", false, ""});
  entries.push_back(
      {"runs/a/very/long/path/that/cannot/fit/in/one/row/of/the/legend/"
       "log.jsonl",
       "#000",
       true,
       "4 2"});
  const double h = legend(svg, 10, 10, 280, entries);
  EXPECT_EQ(h, legend_height(entries, 280));
  const std::string s = svg.str();
  const auto texts = cakes::test::legend_texts(s);
  ASSERT_EQ(texts.size(), entries.size());
  for (const auto& t : texts) {
    EXPECT_GE(t.x, 10);
    EXPECT_LE(t.x + text_width(t.text, t.font_size), 290) << t.text;
  }
  // Seven short keys need more than one 280 px row; the long path is cut
  // from the front.
  EXPECT_GT(texts[6].y, texts[0].y);
  EXPECT_EQ(texts.back().text.rfind("...", 0), 0u);
  EXPECT_NE(texts.back().text.find("legend/log.jsonl"), std::string::npos);
  EXPECT_GE(h, 3 * 16.0);
}

TEST(Svg, ScatterPlacesLabelledPointsOnRoundAxes) {
  Svg svg(200, 100);
  ScatterAxes axes;
  axes.title = "a < b & c";
  axes.y_min = 0;
  axes.y_max = 1;
  scatter(svg, {10, 10, 100, 50}, {{0, 0, "origin"}, {23, 1, "top"}}, axes);
  const std::string s = svg.str();
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_NE(s.find("a &lt; b &amp; c"), std::string::npos) << s;
  EXPECT_EQ(count(s, "<circle"), 2u);
  // x runs past 1.15 x the largest x to a round 30: 23 lands at 76.67 px.
  EXPECT_NE(s.find("cx='0' cy='50'"), std::string::npos) << s;
  EXPECT_NE(s.find("cx='76.6667' cy='0'"), std::string::npos) << s;
  EXPECT_NE(s.find(">30</text>"), std::string::npos) << s;
  EXPECT_NE(s.find(">top<"), std::string::npos);
}

TEST(Svg, StackedBarsShareEachBarWithAPercentScaleAndLegendOnlyUsedKeys) {
  Svg svg(100, 100);
  stacked_bars(
      svg,
      {0, 0, 100, 40},
      {{{"a", 1}, {"b", 3}}, {{"a", 2}, {"c", 0}}},
      {{"a", "#111111"}, {"b", "#222222"}},
      "mix",
      "position");
  const std::string s = svg.str();
  // Bar 1: a is a quarter of 40 px, b three quarters; bar 2 all a.
  EXPECT_NE(s.find("height='10' fill='#111111'"), std::string::npos) << s;
  EXPECT_NE(s.find("height='30' fill='#222222'"), std::string::npos) << s;
  EXPECT_NE(s.find("height='40' fill='#111111'"), std::string::npos) << s;
  // The scale: 0 to 100 % in steps of 20.
  for (const char* tick : {">0</text>", ">20</text>", ">100</text>"})
    EXPECT_NE(s.find(tick), std::string::npos) << tick;
  EXPECT_NE(s.find("% of channels"), std::string::npos);
  // c has no channels: no legend entry.
  const auto texts = cakes::test::legend_texts(s);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0].text, "a");
  EXPECT_EQ(texts[1].text, "b");
}

TEST(Svg, LineChartOnePathPerSeriesInsideTheFrame) {
  Svg svg(400, 300);
  line_chart(
      svg,
      {50, 20, 300, 200},
      {{"a", "#f00", "", {{1, 1.42}, {2, 1.48}, {3, 1.47}}},
       {"b", "#00f", "4 2", {{1, 0.9}, {2, 0.5}}},
       {"empty", "#0f0", "", {}}},
      {"t", "epoch", "loss", 1});
  const std::string s = svg.str();
  EXPECT_EQ(count(s, "<path"), 2u);
  EXPECT_EQ(count(s, "<circle"), 5u);
  // y ticks 0.4 .. 1.6 by 0.2 cover 0.5 .. 1.48; x ticks 1, 2, 3.
  EXPECT_NE(s.find(">1.6</text>"), std::string::npos) << s;
  EXPECT_NE(s.find(">0.4</text>"), std::string::npos) << s;
  EXPECT_EQ(count(s, ">2.5</text>"), 0u) << "epochs tick on whole numbers";
  // b: x = 1 at the left edge, 2 half way; y = 0.9 at 0.7 / 1.2 of the way
  // down from 1.6, 0.5 at 1.1 / 1.2.
  EXPECT_NE(s.find("d='M0,116.667 L150,183.333'"), std::string::npos) << s;
}

TEST(Svg, TrainingCurvesNameEveryRunInsideThePicture) {
  std::vector<RunCurves> runs;
  for (int r = 0; r < 3; ++r) {
    RunCurves run;
    run.name = "runs/experiment_with_a_rather_long_name_" + std::to_string(r);
    for (int e = 1; e <= 12; ++e) {
      run.loss.emplace_back(e, 1.4 / (e + r));
      run.metrics["val_top1"].emplace_back(e, 0.25 + 0.05 * e);
      run.metrics["val_top5"].emplace_back(e, 1.0);
    }
    runs.push_back(run);
  }
  const std::string s = training_curves(runs);
  // A loss path per run, and one per run and metric.
  EXPECT_EQ(count(s, "<path"), 3u + 6u);
  cakes::test::expect_legend_inside(s);
  const auto texts = cakes::test::legend_texts(s);
  ASSERT_EQ(texts.size(), 3u + 2u); // the runs, then the metrics' dashes
  EXPECT_EQ(texts[0].text, runs[0].name);
  EXPECT_EQ(texts[4].text, "val_top5");
  // Loss only: one chart, no metric entries.
  for (auto& r : runs)
    r.metrics.clear();
  const std::string loss_only = training_curves(runs);
  EXPECT_EQ(count(loss_only, "<path"), 3u);
  EXPECT_EQ(count(loss_only, ">validation<"), 0u);
  EXPECT_EQ(cakes::test::legend_texts(loss_only).size(), 3u);
}

} // namespace
