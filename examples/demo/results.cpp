#include "results.h"

#include "cakes/report/svg.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

namespace cakes::demo {

const char* const kTableNotes =
    "MACs: per 8x32x32 video clip and per 64x96x64 MRI half-volume. Video "
    "score: top-1 on the validation videos (chance 25%). MRI score: mean "
    "Dice of the 3 tissue classes on the held-out hemisphere. s / train step: "
    "median of 7 training steps (forward, loss, backward, SGD) at the training "
    "input (8x32x32 clips, 32x64x64 patches), the networks of a task timed "
    "interleaved in one process; s / step in training: the mean over the "
    "training run from its log (data loading included; swings with the load "
    "of a shared machine).";

namespace {

// ---- picture --------------------------------------------------------------

const std::map<std::string, std::string> kColours = {
    {"3x3x3", "#d62728"},
    {"1x3x3", "#1f77b4"},
    {"3x1x3", "#17becf"},
    {"3x3x1", "#9edae5"},
    {"3x1x1", "#2ca02c"},
    {"1x3x1", "#98df8a"},
    {"1x1x3", "#bcbd22"},
    {"1x1x1", "#7f7f7f"}};

void scatter(
    report::Svg& svg,
    const report::Box& box,
    const std::vector<Row>& rows,
    const std::string& title,
    const std::string& y_label) {
  std::vector<report::LabelledPoint> points;
  for (const auto& r : rows)
    points.push_back({r.macs / 1e6, 100 * r.score, r.name});
  report::ScatterAxes axes;
  axes.title = title;
  axes.x_label = "MMACs per input";
  axes.y_label = y_label;
  axes.y_min = 0; // scores in percent: the axis always shows 0 .. 100
  axes.y_max = 100;
  report::scatter(svg, box, points, axes);
}

std::vector<std::vector<std::pair<std::string, double>>>
mix(const std::vector<Config>& blocks) {
  std::vector<std::vector<std::pair<std::string, double>>> bars;
  for (const auto& b : blocks) {
    bars.emplace_back();
    for (const auto& g : b.groups())
      bars.back().emplace_back(g.kernel.str(), double(g.channels));
  }
  return bars;
}

void mix_bars(
    report::Svg& svg,
    const report::Box& box,
    const std::vector<Config>& blocks,
    const std::string& title) {
  report::stacked_bars(
      svg,
      box,
      mix(blocks),
      kColours,
      title,
      "operation position",
      "% of output channels");
}

} // namespace

std::string picture(
    const std::vector<Row>& video,
    const std::vector<Row>& seg,
    const Row* video_cakes,
    const Row* seg_cakes) {
  const report::Box video_scatter{70, 40, 370, 220},
      seg_scatter{570, 40, 370, 220}, video_bars{70, 350, 370, 180},
      seg_bars{570, 350, 370, 180};
  // Tall enough for the legends below the bars, however they wrap.
  double below = 0;
  if (video_cakes)
    below = std::max(
        below,
        report::stacked_bars_below(
            mix(video_cakes->spec.op.configs), video_bars.width));
  if (seg_cakes)
    below = std::max(
        below,
        report::stacked_bars_below(
            mix(seg_cakes->spec.op.configs), seg_bars.width));
  report::Svg svg(960, video_bars.y + video_bars.height + below + 12);
  scatter(
      svg,
      video_scatter,
      video,
      "motion direction (synthetic video): top-1 vs MACs",
      "top-1 accuracy (%)");
  scatter(
      svg,
      seg_scatter,
      seg,
      "T1 MRI tissue segmentation: Dice vs MACs",
      "mean Dice x 100");
  if (video_cakes)
    mix_bars(
        svg,
        video_bars,
        video_cakes->spec.op.configs,
        "video " + video_cakes->name + ": sub-kernel mix");
  if (seg_cakes)
    mix_bars(
        svg,
        seg_bars,
        seg_cakes->spec.op.configs,
        "MRI " + seg_cakes->name + ": sub-kernel mix");
  return svg.str();
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string table(const std::vector<Row>& rows) {
  std::ostringstream o;
  o << "| task | network | MMACs | params (M) | s / train step (batch) | "
       "s / step in training (log) | score |\n";
  o << "|---|---|---:|---:|---:|---:|---|\n";
  for (const auto& r : rows)
    o << "| " << r.task << " | " << r.name
      << (r.note.empty() ? "" : " (" + r.note + ")") << " | "
      << fmt("%.1f", r.macs / 1e6) << " | " << fmt("%.3f", r.params / 1e6)
      << " | " << fmt("%.3f", r.step_seconds) << " (" << r.batch << ") | "
      << fmt("%.3f", r.log_step_seconds) << " | " << r.metric << " "
      << fmt("%.1f", 100 * r.score) << " |\n";
  return o.str();
}

} // namespace cakes::demo
