// The training log: one JSON object per epoch (JSON Lines), appended by the
// Trainer and read back by reports (the demo, plots).
//
//   {"epoch": 0, "step": 15, "steps": 15, "samples": 240, "loss": 1.38,
//    "lr": 0.05, "grad_norm": 2.1, "seconds": 12.3, "samples_per_s": 19.5,
//    "loader_samples_per_s": 80.1, "loader_wait_s": 0.4, "skipped": 0,
//    <validation metrics, e.g. "val_top1": 0.5>}
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cakes::train {

struct EpochSummary {
  int64_t epoch = 0; // 0-based
  int64_t step = 0;  // optimizer steps taken once the epoch ended
  int64_t steps = 0; // steps in this epoch
  int64_t samples = 0;
  double mean_loss = 0;
  double lr = 0;             // rate of the last step
  double mean_grad_norm = 0; // before clipping
  double seconds = 0;
  double samples_per_second = 0;        // consumed by training
  double loader_samples_per_second = 0; // loader capacity (LoaderStats)
  double loader_wait_seconds = 0;
  int64_t skipped = 0;                   // samples left out
  std::map<std::string, double> metrics; // from TrainerOptions::validate
  std::vector<std::string> warnings;     // skipped samples (not in the log)
};

// One line of the log (no newline).
std::string log_line(const EpochSummary& summary);
// Every epoch of a log file. Throws std::runtime_error naming the file and
// line when it is unreadable or a line is not such an object.
std::vector<EpochSummary> read_log(const std::string& path);

} // namespace cakes::train
