// The SVG figures of reports (the demo's picture).
#include "cakes/report/svg.h"

#include <gtest/gtest.h>

namespace {

using namespace cakes::report;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos;
       at = s.find(what, at + 1))
    ++n;
  return n;
}

TEST(Svg, ScatterPlacesLabelledPointsOnTheAxes) {
  Svg svg(200, 100);
  ScatterAxes axes;
  axes.title = "a < b & c";
  axes.y_max = 1;
  axes.y_ticks = {"0", "25", "50", "75", "100"};
  scatter(svg, {10, 10, 100, 50}, {{0, 0, "origin"}, {23, 1, "top"}}, axes);
  const std::string s = svg.str();
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_NE(s.find("a &lt; b &amp; c"), std::string::npos) << s;
  EXPECT_EQ(count(s, "<circle"), 2u);
  // x runs to 1.15 x the largest x: 23 lands at 100 / 1.15 = 86.9565 px.
  EXPECT_NE(s.find("cx='0' cy='50'"), std::string::npos) << s;
  EXPECT_NE(s.find("cx='86.9565' cy='0'"), std::string::npos) << s;
  EXPECT_NE(s.find(">top<"), std::string::npos);
}

TEST(Svg, StackedBarsShareEachBarAndLegendOnlyUsedKeys) {
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
  // c has no channels: no legend entry.
  EXPECT_EQ(count(s, ">c<"), 0u);
  EXPECT_EQ(count(s, ">a<"), 1u);
}

} // namespace
