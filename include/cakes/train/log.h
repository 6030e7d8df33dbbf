// The training log (JSON Lines), appended by the Trainer and read back by
// reports (the demo, plots). One line per epoch:
//
//   {"kind": "epoch", "epoch": 0, "step": 15, "steps": 15, "samples": 240,
//    "loss": 1.38,
//    "lr": 0.05, "grad_norm": 2.1, "seconds": 12.3, "samples_per_s": 19.5,
//    "loader_samples_per_s": 80.1, "loader_wait_s": 0.4, "skipped": 0,
//    <validation metrics, e.g. "val_top1": 0.5>}
//
// and, when asked (TrainerOptions::log_steps_every), a line every N steps of
// an epoch, written as the step ends:
//
//   {"kind": "step", "epoch": 0, "step": 10, "step_in_epoch": 10,
//    "steps_in_epoch": 15, "loss": 1.41, "lr": 0.05, "samples_per_s": 19.9,
//    "seconds": 8.1}
//
// step: optimizer steps taken (over the run); loss: mean over the steps since
// the previous step line of the epoch; samples_per_s: over those steps;
// seconds: since the epoch began. Lines without "kind" (logs written before
// step lines existed) are epoch lines.
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

struct StepRecord {
  int64_t epoch = 0, step = 0, step_in_epoch = 0, steps_in_epoch = 0;
  double loss = 0, lr = 0, samples_per_second = 0, seconds = 0;
};

// One line of the log (no newline).
std::string log_line(const EpochSummary& summary);
std::string step_log_line(const StepRecord& step);

struct TrainingLog {
  std::vector<EpochSummary> epochs; // by epoch
  std::vector<StepRecord> steps;    // by step
};
// Both kinds of line of a log file. A line repeating an epoch (or a step)
// of an earlier line replaces it: the later line wins (a resumed run may
// repeat the lines of an epoch a kill cut short). Throws std::runtime_error
// naming the file and line when it is unreadable or a line is not such an
// object.
TrainingLog read_training_log(const std::string& path);
// The epoch lines of read_training_log.
std::vector<EpochSummary> read_log(const std::string& path);

} // namespace cakes::train
