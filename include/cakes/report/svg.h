// Small SVG figures for reports: a canvas, round axis ticks, legends that
// wrap within a width, labelled scatter plots, stacked bar charts (the demo's
// picture) and line charts (training curves, `cakes plot`). Plain text out,
// no dependencies.
#pragma once

#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace cakes::report {

// Text escaped for SVG/XML.
std::string escape(const std::string& text);

// The width of `text` drawn at `font_size` pixels, estimated as 0.6 em per
// character (generous for sans-serif digits and lower case): what layouts
// reserve so that no text runs past the picture.
double text_width(const std::string& text, double font_size);

// A picture of width x height pixels on a white background.
class Svg {
public:
  Svg(double width, double height);
  // Raw SVG elements, in pixel coordinates.
  std::ostringstream& body() {
    return body_;
  }
  double width() const {
    return width_;
  }
  double height() const {
    return height_;
  }
  // The whole document.
  std::string str() const;

private:
  double width_, height_;
  std::ostringstream body_;
};

// Axis ticks on round values: a step of 1, 2 or 5 x 10^k, the first tick at
// or below `lo` and the last at or above `hi` (so the ticks cover the data),
// at most `max_intervals` steps between them, and a step of at least
// `min_step` (1 for counts such as epochs). An empty range is widened around
// its value. lo and hi must be finite.
struct Ticks {
  double step = 1;
  std::vector<double> values; // ascending; front() <= lo, back() >= hi
  double lo() const {
    return values.front();
  }
  double hi() const {
    return values.back();
  }
};
Ticks nice_ticks(
    double lo, double hi, int max_intervals = 5, double min_step = 0);
// A tick's label with as many decimals as the step needs ("0.05", "20").
std::string tick_label(double value, double step);

// The plotting area of a chart: top-left corner and size, in pixels.
struct Box {
  double x = 0, y = 0, width = 0, height = 0;
};

// One legend entry: a coloured square (dash empty and line false), or a short
// line in the colour with an SVG dash pattern ("" solid, "6 3" dashed).
struct LegendEntry {
  std::string label, colour;
  bool line = false;
  std::string dash;
};
// Draws the entries left to right from (x, y) (top of the first row), in
// absolute picture coordinates, starting a new row when the next entry would
// pass x + max_width; a label too long for a row alone is shortened from the
// front ("...runs/3d"). Each label is a <text class='legend'>. Returns the
// height used. legend_height() gives it without drawing.
double legend(
    Svg& svg,
    double x,
    double y,
    double max_width,
    const std::vector<LegendEntry>& entries,
    double font_size = 10);
double legend_height(
    const std::vector<LegendEntry>& entries,
    double max_width,
    double font_size = 10);

struct LabelledPoint {
  double x = 0, y = 0;
  std::string label;
};

struct ScatterAxes {
  std::string title, x_label, y_label;
  double y_min = 0, y_max = 1; // the y axis covers at least this range
};

// Points labelled next to them on axes with round ticks: x from 0 past the
// largest x (room for the labels), y covering [y_min, y_max] and the points.
void scatter(
    Svg& svg,
    const Box& box,
    const std::vector<LabelledPoint>& points,
    const ScatterAxes& axes);

// One bar per entry, stacked from its (key, value) segments, each bar's
// height the share of its total with a y axis in percent; bars numbered from
// 1 and, below, a legend of the keys that have a positive value (wrapped
// within the box's width), coloured by `colours` (black for others).
void stacked_bars(
    Svg& svg,
    const Box& box,
    const std::vector<std::vector<std::pair<std::string, double>>>& bars,
    const std::map<std::string, std::string>& colours,
    const std::string& title,
    const std::string& x_label,
    const std::string& y_label = "% of channels");
// The height stacked_bars uses below its box (numbers, label, legend).
double stacked_bars_below(
    const std::vector<std::vector<std::pair<std::string, double>>>& bars,
    double width);

// A polyline through (x, y) points, in the colour with an SVG dash pattern;
// a dot marks each point when there are few, unless `thin`: then the line
// is narrow and faint, without dots (a noisy curve behind a main one).
struct Series {
  std::string name, colour, dash;
  std::vector<std::pair<double, double>> points;
  bool thin = false;
};
struct LineAxes {
  std::string title, x_label, y_label;
  double x_min_step = 0; // 1: x counts (epochs), ticks on whole numbers
};
// The series on axes with round ticks covering every point; one <path> per
// series with at least one point. No legend (the caller draws one for all
// charts of a picture).
void line_chart(
    Svg& svg,
    const Box& box,
    const std::vector<Series>& series,
    const LineAxes& axes);

// ---- training curves (`cakes plot`) -------------------------------------

// One run's curves: training loss and validation metrics by epoch, and the
// loss of the log's step lines (x in epochs: epoch + step / steps), drawn
// thin behind the per-epoch loss.
struct RunCurves {
  std::string name;
  std::vector<std::pair<double, double>> loss, step_loss;
  std::map<std::string, std::vector<std::pair<double, double>>> metrics;
};
// One picture: the loss of every run (one path per run, and a thin one of its
// step_loss when it has one) and, when any run has
// metrics, a second chart with every metric of every run (one path per run
// and metric, dashed per metric); a run's colour is the same in both, and the
// legend below names each run (and each metric's dash).
std::string training_curves(
    const std::vector<RunCurves>& runs, const std::string& x_label = "epoch");

} // namespace cakes::report
