// The demo's results: one row per trained network, the table in
// Markdown and the picture (through cakes/report/svg.h).
#pragma once

#include "cakes/models/network_spec.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cakes::demo {

struct Row {
  std::string task, name, metric, note;
  models::NetworkSpec spec; // from the run's checkpoint
  std::vector<int64_t> input;
  int64_t macs = 0, params = 0;
  double step_seconds = 0, log_step_seconds = 0, score = 0;
  int64_t batch = 0;
};

// What the table's columns mean.
extern const char* const kTableNotes;

// printf-style formatting of one number.
std::string fmt(const char* format, double value);
// The Markdown table of all rows.
std::string table(const std::vector<Row>& rows);
// Score vs MACs per task, and the sub-kernel mix of each task's CAKES network
// (null: none), as an SVG document.
std::string picture(
    const std::vector<Row>& video,
    const std::vector<Row>& seg,
    const Row* video_cakes,
    const Row* seg_cakes);

} // namespace cakes::demo
