#include "cakes/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace cakes::report {

std::string escape(const std::string& s) {
  std::string r;
  for (char c : s)
    r += c == '<'    ? "&lt;"
         : c == '>'  ? "&gt;"
         : c == '&'  ? "&amp;"
         : c == '\'' ? "&apos;"
                     : std::string(1, c);
  return r;
}

double text_width(const std::string& text, double font_size) {
  // Characters, not bytes: a UTF-8 continuation byte adds no width.
  size_t chars = 0;
  for (unsigned char c : text)
    chars += (c & 0xC0) != 0x80;
  return 0.6 * font_size * double(chars);
}

Svg::Svg(double width, double height) : width_(width), height_(height) {}

std::string Svg::str() const {
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width_
    << "' height='" << height_ << "' font-family='sans-serif'>\n";
  o << "<rect width='" << width_ << "' height='" << height_
    << "' fill='white'/>\n";
  o << body_.str() << "</svg>\n";
  return o.str();
}

// ---- ticks ----------------------------------------------------------------

Ticks nice_ticks(double lo, double hi, int max_intervals, double min_step) {
  if (!std::isfinite(lo) || !std::isfinite(hi))
    throw std::invalid_argument("nice_ticks: the range must be finite");
  if (hi < lo)
    std::swap(lo, hi);
  // Two intervals is the fewest that can always straddle the data.
  const int n = std::max(max_intervals, 2);
  if (hi - lo <= 0) {
    const double pad =
        std::max(lo == 0 ? 1.0 : std::abs(lo) * 0.1, min_step / 2);
    lo -= pad;
    hi += pad;
  }
  double mag = std::pow(10.0, std::floor(std::log10((hi - lo) / n)));
  // The smallest 1/2/5 x 10^k step (at least min_step) whose multiples
  // around the data need at most n intervals. The tolerance keeps a bound
  // that is already a multiple (0.3 / 0.1) from gaining an interval.
  for (;; mag *= 10) {
    for (const double m : {1.0, 2.0, 5.0}) {
      const double step = m * mag;
      if (step < min_step)
        continue;
      const double first = std::floor(lo / step + 1e-9);
      const double last = std::ceil(hi / step - 1e-9);
      if (last - first > n)
        continue;
      Ticks t;
      t.step = step;
      for (double i = first; i <= last; ++i) {
        const double v = i * step;
        t.values.push_back(v == 0 ? 0.0 : v); // no "-0"
      }
      return t;
    }
  }
}

std::string tick_label(double value, double step) {
  if (std::abs(value) < step * 1e-6)
    value = 0;
  char text[48];
  if (step >= 1e6 || step < 1e-5) {
    std::snprintf(text, sizeof text, "%g", value);
    return text;
  }
  const int decimals = step >= 1 ? 0 : int(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// ---- legend ---------------------------------------------------------------

namespace {

constexpr double kSwatch = 16, kSwatchGap = 4, kEntryGap = 14;

// The label as drawn: shortened from the front when a row cannot hold it.
std::string
fitted_label(const std::string& label, double max_width, double fs) {
  const double room = max_width - kSwatch - kSwatchGap;
  if (text_width(label, fs) <= room)
    return label;
  std::string tail = label;
  while (!tail.empty() && text_width("..." + tail, fs) > room)
    tail.erase(0, 1);
  return "..." + tail;
}

struct Placed {
  double x = 0, y = 0; // of the swatch, relative to the legend's origin
  std::string label;
};

std::vector<Placed> place(
    const std::vector<LegendEntry>& entries,
    double max_width,
    double fs,
    double* height) {
  std::vector<Placed> out;
  const double row = fs * 1.6;
  double x = 0, y = 0;
  for (const auto& e : entries) {
    const std::string label = fitted_label(e.label, max_width, fs);
    const double w = kSwatch + kSwatchGap + text_width(label, fs);
    if (x > 0 && x + w > max_width) {
      x = 0;
      y += row;
    }
    out.push_back({x, y, label});
    x += w + kEntryGap;
  }
  *height = entries.empty() ? 0 : y + row;
  return out;
}

} // namespace

double legend_height(
    const std::vector<LegendEntry>& entries,
    double max_width,
    double font_size) {
  double h = 0;
  place(entries, max_width, font_size, &h);
  return h;
}

double legend(
    Svg& svg,
    double x0,
    double y0,
    double max_width,
    const std::vector<LegendEntry>& entries,
    double fs) {
  double h = 0;
  const auto placed = place(entries, max_width, fs, &h);
  auto& o = svg.body();
  for (size_t i = 0; i < placed.size(); ++i) {
    const auto& e = entries[i];
    const double x = x0 + placed[i].x, y = y0 + placed[i].y;
    const double mid = y + fs * 0.5;
    if (e.line)
      o << "<line x1='" << x << "' x2='" << x + kSwatch << "' y1='" << mid
        << "' y2='" << mid << "' stroke='" << e.colour << "' stroke-width='2'"
        << (e.dash.empty() ? "" : " stroke-dasharray='" + e.dash + "'") << "/>";
    else
      o << "<rect x='" << x + 3 << "' y='" << mid - 5
        << "' width='10' height='10' fill='" << e.colour << "'/>";
    o << "<text class='legend' x='" << x + kSwatch + kSwatchGap << "' y='"
      << y + fs * 0.9 << "' font-size='" << fs << "'>"
      << escape(placed[i].label) << "</text>\n";
  }
  return h;
}

// ---- axes -----------------------------------------------------------------

namespace {

constexpr double kTickFont = 10, kLabelFont = 11;

// Frame, grid lines and tick labels of a chart in the current group (origin
// at the box's top-left); returns nothing, the caller maps data with the
// same ticks.
void axes_frame(
    std::ostringstream& o,
    double w,
    double h,
    const Ticks* xt,
    const Ticks& yt,
    const std::string& title,
    const std::string& x_label,
    const std::string& y_label) {
  o << "<text x='" << w / 2
    << "' y='-8' text-anchor='middle' font-weight='bold' font-size='13'>"
    << escape(title) << "</text>\n";
  double widest = 0;
  for (double v : yt.values) {
    const double fy = h - h * (v - yt.lo()) / (yt.hi() - yt.lo());
    const std::string t = tick_label(v, yt.step);
    widest = std::max(widest, text_width(t, kTickFont));
    o << "<line x1='0' x2='" << w << "' y1='" << fy << "' y2='" << fy
      << "' stroke='#ddd'/><text x='-4' y='" << fy + 3.5
      << "' text-anchor='end' font-size='" << kTickFont << "'>" << t
      << "</text>\n";
  }
  if (xt)
    for (double v : xt->values) {
      const double fx = w * (v - xt->lo()) / (xt->hi() - xt->lo());
      o << "<line x1='" << fx << "' x2='" << fx << "' y1='0' y2='" << h
        << "' stroke='#eee'/><text x='" << fx << "' y='" << h + 14
        << "' text-anchor='middle' font-size='" << kTickFont << "'>"
        << tick_label(v, xt->step) << "</text>\n";
    }
  o << "<rect x='0' y='0' width='" << w << "' height='" << h
    << "' fill='none' stroke='#444'/>\n";
  o << "<text x='" << w / 2 << "' y='" << h + 30
    << "' text-anchor='middle' font-size='" << kLabelFont << "'>"
    << escape(x_label) << "</text>\n";
  // Left of the widest tick label, whatever the labels are.
  o << "<text transform='translate(" << -(widest + 12) << "," << h / 2
    << ") rotate(-90)' text-anchor='middle' font-size='" << kLabelFont << "'>"
    << escape(y_label) << "</text>\n";
}

} // namespace

void scatter(
    Svg& svg,
    const Box& b,
    const std::vector<LabelledPoint>& points,
    const ScatterAxes& axes) {
  auto& o = svg.body();
  const double w = b.width, h = b.height;
  double max_x = 0, y_lo = axes.y_min, y_hi = axes.y_max;
  for (const auto& p : points) {
    max_x = std::max(max_x, p.x);
    y_lo = std::min(y_lo, p.y);
    y_hi = std::max(y_hi, p.y);
  }
  // Room right of the largest x for its label.
  const Ticks xt = nice_ticks(0, max_x > 0 ? max_x * 1.15 : 1, 6);
  const Ticks yt = nice_ticks(y_lo, y_hi, 5);
  o << "<g transform='translate(" << b.x << "," << b.y << ")'>\n";
  axes_frame(o, w, h, &xt, yt, axes.title, axes.x_label, axes.y_label);
  for (const auto& p : points) {
    const double px = w * (p.x - xt.lo()) / (xt.hi() - xt.lo()),
                 py = h - h * (p.y - yt.lo()) / (yt.hi() - yt.lo());
    o << "<circle cx='" << px << "' cy='" << py << "' r='5' fill='#333'/>";
    // A label that would pass the frame's right edge goes left of its point.
    const bool left = px + 7 + text_width(p.label, 11) > w;
    // ... and below it when it would cross the frame's top.
    const double ly = py - 6 < 14 ? py + 16 : py - 6;
    o << "<text x='" << (left ? px - 7 : px + 7) << "' y='" << ly
      << "' font-size='11'" << (left ? " text-anchor='end'" : "") << ">"
      << escape(p.label) << "</text>\n";
  }
  o << "</g>\n";
}

// ---- stacked bars ---------------------------------------------------------

namespace {

std::vector<LegendEntry> used_keys(
    const std::vector<std::vector<std::pair<std::string, double>>>& bars,
    const std::map<std::string, std::string>* colours) {
  std::map<std::string, bool> used;
  for (const auto& bar : bars)
    for (const auto& [key, v] : bar)
      used[key] |= v > 0;
  std::vector<LegendEntry> out;
  for (const auto& [key, on] : used) {
    if (!on)
      continue;
    std::string colour = "#000";
    if (colours) {
      const auto it = colours->find(key);
      if (it != colours->end())
        colour = it->second;
    }
    out.push_back({key, colour, false, ""});
  }
  return out;
}

constexpr double kBarsLegendTop = 34;

} // namespace

double stacked_bars_below(
    const std::vector<std::vector<std::pair<std::string, double>>>& bars,
    double width) {
  return kBarsLegendTop + legend_height(used_keys(bars, nullptr), width);
}

void stacked_bars(
    Svg& svg,
    const Box& b,
    const std::vector<std::vector<std::pair<std::string, double>>>& bars,
    const std::map<std::string, std::string>& colours,
    const std::string& title,
    const std::string& x_label,
    const std::string& y_label) {
  auto& o = svg.body();
  const double w = b.width, h = b.height;
  o << "<g transform='translate(" << b.x << "," << b.y << ")'>\n";
  const Ticks yt = nice_ticks(0, 100, 5);
  axes_frame(o, w, h, nullptr, yt, title, x_label, y_label);
  const double bw = bars.empty() ? 0 : w / double(bars.size());
  // Number every bar when the numbers fit, else every k-th.
  const double number_w = text_width(std::to_string(bars.size()), 9) + 3;
  const size_t every = bw > 0 ? size_t(std::ceil(number_w / bw)) : 1;
  for (size_t i = 0; i < bars.size(); ++i) {
    double total = 0;
    for (const auto& [key, v] : bars[i])
      total += v;
    double top = h;
    for (const auto& [key, v] : bars[i]) {
      const double gh = total > 0 ? h * v / total : 0;
      const auto it = colours.find(key);
      top -= gh;
      o << "<rect x='" << i * bw + 1 << "' y='" << top << "' width='" << bw - 2
        << "' height='" << gh << "' fill='"
        << (it == colours.end() ? "#000" : it->second) << "'/>";
    }
    if ((i + 1) % every == 0 || i == 0)
      o << "<text x='" << (i + 0.5) * bw << "' y='" << h + 12
        << "' text-anchor='middle' font-size='9'>" << i + 1 << "</text>\n";
  }
  o << "</g>\n";
  legend(svg, b.x, b.y + h + kBarsLegendTop, w, used_keys(bars, &colours));
}

// ---- line charts ----------------------------------------------------------

void line_chart(
    Svg& svg,
    const Box& b,
    const std::vector<Series>& series,
    const LineAxes& axes) {
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
  if (!(x_lo <= x_hi)) // no points: an empty frame over 0 .. 1
    x_lo = y_lo = 0, x_hi = y_hi = 1;
  const Ticks xt = nice_ticks(x_lo, x_hi, 6, axes.x_min_step);
  const Ticks yt = nice_ticks(y_lo, y_hi, 6);
  const double w = b.width, h = b.height;
  auto& o = svg.body();
  o << "<g transform='translate(" << b.x << "," << b.y << ")'>\n";
  axes_frame(o, w, h, &xt, yt, axes.title, axes.x_label, axes.y_label);
  const auto px = [&](double x) {
    return w * (x - xt.lo()) / (xt.hi() - xt.lo());
  };
  const auto py = [&](double y) {
    return h - h * (y - yt.lo()) / (yt.hi() - yt.lo());
  };
  for (const auto& s : series) {
    if (s.points.empty())
      continue;
    o << "<path fill='none' stroke='" << s.colour << "' stroke-width='"
      << (s.thin ? "1' stroke-opacity='0.45'" : "2'")
      << (s.dash.empty() ? "" : " stroke-dasharray='" + s.dash + "'") << " d='";
    for (size_t i = 0; i < s.points.size(); ++i)
      o << (i ? " L" : "M") << px(s.points[i].first) << ","
        << py(s.points[i].second);
    o << "'><title>" << escape(s.name) << "</title></path>\n";
    if (s.points.size() <= 40 && !s.thin)
      for (const auto& [x, y] : s.points)
        o << "<circle cx='" << px(x) << "' cy='" << py(y) << "' r='2.5' fill='"
          << s.colour << "'/>";
    o << "\n";
  }
  o << "</g>\n";
}

// ---- training curves ------------------------------------------------------

std::string training_curves(
    const std::vector<RunCurves>& runs, const std::string& x_label) {
  static const char* const kPalette[] = {
      "#1f77b4",
      "#d62728",
      "#2ca02c",
      "#ff7f0e",
      "#9467bd",
      "#8c564b",
      "#e377c2",
      "#7f7f7f",
      "#bcbd22",
      "#17becf"};
  static const char* const kDashes[] = {"", "7 4", "2 3", "9 3 2 3"};
  std::vector<std::string> metric_names;
  for (const auto& r : runs)
    for (const auto& [name, points] : r.metrics)
      if (std::find(metric_names.begin(), metric_names.end(), name) ==
          metric_names.end())
        metric_names.push_back(name);
  std::sort(metric_names.begin(), metric_names.end());
  const auto dash_of = [&](const std::string& metric) {
    const size_t i = size_t(
        std::find(metric_names.begin(), metric_names.end(), metric) -
        metric_names.begin());
    return std::string(kDashes[i % 4]);
  };

  std::vector<Series> loss, metrics;
  std::vector<LegendEntry> entries;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string colour = kPalette[i % 10];
    if (!runs[i].step_loss.empty())
      loss.push_back(
          {runs[i].name + " (steps)", colour, "", runs[i].step_loss, true});
    loss.push_back({runs[i].name, colour, "", runs[i].loss});
    for (const auto& [name, points] : runs[i].metrics)
      metrics.push_back(
          {runs[i].name + " " + name, colour, dash_of(name), points});
    entries.push_back({runs[i].name, colour, true, ""});
  }
  const bool steps = std::any_of(runs.begin(), runs.end(), [](const auto& r) {
    return !r.step_loss.empty();
  });
  if (steps)
    entries.push_back(
        {"loss: thin every logged step line, thick per epoch",
         "#555",
         true,
         ""});
  // The dashes name the metrics only when there is more than one.
  if (metric_names.size() > 1)
    for (const auto& name : metric_names)
      entries.push_back({name, "#555", true, dash_of(name)});

  const double width = 860, left = 70, gap = 90, right = 20, top = 40,
               height = 300, legend_top = top + height + 46;
  const double legend_w = width - 2 * right;
  const double total_h = legend_top + legend_height(entries, legend_w) + 12;
  Svg svg(width, total_h);
  const bool two = !metric_names.empty();
  const double panel =
      two ? (width - left - gap - right) / 2 : width - left - right;
  line_chart(
      svg,
      {left, top, panel, height},
      loss,
      {"training loss", x_label, "loss", 1});
  if (two)
    line_chart(
        svg,
        {left + panel + gap, top, panel, height},
        metrics,
        {"validation",
         x_label,
         metric_names.size() == 1 ? metric_names[0] : "metric",
         1});
  legend(svg, right, legend_top, legend_w, entries);
  return svg.str();
}

} // namespace cakes::report
