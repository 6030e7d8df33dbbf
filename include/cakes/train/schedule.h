// Learning-rate schedules as pure functions of training progress, so a resumed
// run recomputes exactly the rate it would have had (no scheduler state to
// save). Plain data, no LibTorch dependency.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cakes::train {

enum class ScheduleKind { constant, step, cosine };

// "constant", "step", "cosine"; throws std::invalid_argument otherwise.
ScheduleKind parse_schedule_kind(const std::string& text);

struct Schedule {
  ScheduleKind kind = ScheduleKind::constant;
  double base_lr = 0.1;
  // Linear warm-up over this many epochs (fractional allowed): the rate rises
  // from base_lr/steps to base_lr, reaching it at the end of the warm-up.
  double warmup_epochs = 0;
  // step: multiply by gamma at each milestone epoch reached (docs/CAKES.md §4:
  // 0.1 at 50 and 60 for a 70-epoch C search).
  std::vector<int64_t> milestones;
  double gamma = 0.1;
  // cosine: from base_lr after warm-up down to min_lr at total_epochs.
  double min_lr = 0;
  int64_t total_epochs = 1;

  // The rate for optimizer step `step` (0-based) of a run with
  // `steps_per_epoch` steps per epoch. Throws std::invalid_argument when
  // steps_per_epoch < 1.
  double lr_at(int64_t step, int64_t steps_per_epoch) const;
};

} // namespace cakes::train
