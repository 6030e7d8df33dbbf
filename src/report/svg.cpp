#include "cakes/report/svg.h"

#include <algorithm>
#include <cstdio>

namespace cakes::report {

std::string escape(const std::string& s) {
  std::string r;
  for (char c : s)
    r += c == '<'   ? "&lt;"
         : c == '>' ? "&gt;"
         : c == '&' ? "&amp;"
                    : std::string(1, c);
  return r;
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

void scatter(
    Svg& svg,
    const Box& b,
    const std::vector<LabelledPoint>& points,
    const ScatterAxes& axes) {
  auto& o = svg.body();
  const double w = b.width, h = b.height;
  o << "<g transform='translate(" << b.x << "," << b.y << ")'>\n";
  o << "<text x='" << w / 2
    << "' y='-8' text-anchor='middle' font-weight='bold'>" << escape(axes.title)
    << "</text>\n";
  o << "<rect x='0' y='0' width='" << w << "' height='" << h
    << "' fill='none' stroke='#444'/>\n";
  double max_x = 0;
  for (const auto& p : points)
    max_x = std::max(max_x, p.x);
  max_x = max_x > 0 ? max_x * 1.15 : 1;
  for (int i = 0; i <= 4; ++i) {
    const double fy = h - h * i / 4.0;
    o << "<line x1='0' x2='" << w << "' y1='" << fy << "' y2='" << fy
      << "' stroke='#ddd'/>";
    o << "<text x='-4' y='" << fy + 4 << "' text-anchor='end' font-size='10'>"
      << (size_t(i) < axes.y_ticks.size() ? escape(axes.y_ticks[size_t(i)])
                                          : "")
      << "</text>\n";
    const double fx = w * i / 4.0;
    char t[32];
    std::snprintf(t, sizeof t, "%.0f", max_x * i / 4.0);
    o << "<text x='" << fx << "' y='" << h + 14
      << "' text-anchor='middle' font-size='10'>" << t << "</text>\n";
  }
  o << "<text x='" << w / 2 << "' y='" << h + 30
    << "' text-anchor='middle' font-size='11'>" << escape(axes.x_label)
    << "</text>\n";
  o << "<text transform='translate(-30," << h / 2
    << ") rotate(-90)' text-anchor='middle' font-size='11'>"
    << escape(axes.y_label) << "</text>\n";
  for (const auto& p : points) {
    const double px = w * p.x / max_x,
                 py = h - h * std::max(0.0, p.y) / axes.y_max;
    o << "<circle cx='" << px << "' cy='" << py << "' r='5' fill='#333'/>";
    o << "<text x='" << px + 7 << "' y='" << py - 6 << "' font-size='11'>"
      << escape(p.label) << "</text>\n";
  }
  o << "</g>\n";
}

void stacked_bars(
    Svg& svg,
    const Box& b,
    const std::vector<std::vector<std::pair<std::string, double>>>& bars,
    const std::map<std::string, std::string>& colours,
    const std::string& title,
    const std::string& x_label) {
  auto& o = svg.body();
  const double w = b.width, h = b.height;
  o << "<g transform='translate(" << b.x << "," << b.y << ")'>\n";
  o << "<text x='" << w / 2
    << "' y='-8' text-anchor='middle' font-weight='bold'>" << escape(title)
    << "</text>\n";
  const double bw = bars.empty() ? 0 : w / double(bars.size());
  std::map<std::string, bool> used;
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
      used[key] |= v > 0;
    }
    o << "<text x='" << (i + 0.5) * bw << "' y='" << h + 12
      << "' text-anchor='middle' font-size='9'>" << i + 1 << "</text>\n";
  }
  o << "<text x='" << w / 2 << "' y='" << h + 26
    << "' text-anchor='middle' font-size='11'>" << escape(x_label)
    << "</text>\n";
  double lx = 0;
  for (const auto& [key, on] : used) {
    if (!on)
      continue;
    const auto it = colours.find(key);
    o << "<rect x='" << lx << "' y='" << h + 34
      << "' width='10' height='10' fill='"
      << (it == colours.end() ? "#000" : it->second) << "'/>";
    o << "<text x='" << lx + 13 << "' y='" << h + 43 << "' font-size='10'>"
      << escape(key) << "</text>\n";
    lx += 60;
  }
  o << "</g>\n";
}

} // namespace cakes::report
