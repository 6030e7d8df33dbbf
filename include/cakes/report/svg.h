// Small SVG figures for reports: a canvas, labelled scatter plots and stacked
// bar charts (the demo's picture). Plain text out, no dependencies.
#pragma once

#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace cakes::report {

// Text escaped for SVG/XML.
std::string escape(const std::string& text);

// A picture of width x height pixels on a white background.
class Svg {
public:
  Svg(double width, double height);
  // Raw SVG elements, in pixel coordinates.
  std::ostringstream& body() {
    return body_;
  }
  // The whole document.
  std::string str() const;

private:
  double width_, height_;
  std::ostringstream body_;
};

// The plotting area of a chart: top-left corner and size, in pixels.
struct Box {
  double x = 0, y = 0, width = 0, height = 0;
};

struct LabelledPoint {
  double x = 0, y = 0;
  std::string label;
};

struct ScatterAxes {
  std::string title, x_label, y_label;
  double y_max = 1;                 // y axis 0 .. y_max
  std::vector<std::string> y_ticks; // labels of 5 evenly spaced ticks
};

// Points on axes from 0 to 1.15 x the largest x (0 .. 1 when none is
// positive) and 0 to y_max, each labelled, with grid lines at quarters.
void scatter(
    Svg& svg,
    const Box& box,
    const std::vector<LabelledPoint>& points,
    const ScatterAxes& axes);

// One bar per entry, stacked from its (key, value) segments, each bar's
// height the share of its total; bars numbered from 1 and a legend of the keys
// that have a positive value, coloured by `colours` (black for others).
void stacked_bars(
    Svg& svg,
    const Box& box,
    const std::vector<std::vector<std::pair<std::string, double>>>& bars,
    const std::map<std::string, std::string>& colours,
    const std::string& title,
    const std::string& x_label);

} // namespace cakes::report
