// Reading back what the report tests assert on: counts of elements, the
// picture's size and its legend labels with their positions.
#pragma once

#include "cakes/report/svg.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

namespace cakes::test {

// How often `what` occurs in `s` (e.g. "<path": the series drawn).
inline size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos;
       at = s.find(what, at + 1))
    ++n;
  return n;
}

struct SvgText {
  double x = 0, y = 0, font_size = 0;
  std::string text;
};

// The width='..' of the <svg> element.
inline double svg_width(const std::string& svg) {
  std::smatch m;
  std::regex_search(svg, m, std::regex("<svg[^>]* width='([0-9.]+)'"));
  return m.empty() ? -1 : std::stod(m[1]);
}

// Every <text class='legend'> (drawn in picture coordinates by
// report::legend).
inline std::vector<SvgText> legend_texts(const std::string& svg) {
  std::vector<SvgText> out;
  const std::regex re("<text class='legend' x='([-0-9.e]+)' y='([-0-9.e]+)' "
                      "font-size='([0-9.]+)'>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re);
       it != std::sregex_iterator();
       ++it)
    out.push_back(
        {std::stod((*it)[1]),
         std::stod((*it)[2]),
         std::stod((*it)[3]),
         (*it)[4]});
  return out;
}

// Each legend label starts at or right of 0 and ends, at 0.6 em per
// character (report::text_width), within the picture's width.
inline void expect_legend_inside(const std::string& svg) {
  const double width = svg_width(svg);
  ASSERT_GT(width, 0) << svg.substr(0, 200);
  const auto texts = legend_texts(svg);
  ASSERT_FALSE(texts.empty());
  for (const auto& t : texts) {
    EXPECT_GE(t.x, 0) << t.text;
    EXPECT_LE(t.x + report::text_width(t.text, t.font_size), width)
        << "'" << t.text << "' at x " << t.x << " runs past " << width;
  }
}

} // namespace cakes::test
