#include "cakes/train/schedule.h"

#include <cmath>
#include <stdexcept>

namespace cakes::train {

ScheduleKind parse_schedule_kind(const std::string& text) {
  if (text == "constant") {
    return ScheduleKind::constant;
  }
  if (text == "step") {
    return ScheduleKind::step;
  }
  if (text == "cosine") {
    return ScheduleKind::cosine;
  }
  throw std::invalid_argument(
      "unknown schedule '" + text + "' (expected constant, step or cosine)");
}

double Schedule::lr_at(int64_t step, int64_t steps_per_epoch) const {
  if (steps_per_epoch < 1) {
    throw std::invalid_argument(
        "Schedule::lr_at: steps_per_epoch must be >= 1, got " +
        std::to_string(steps_per_epoch));
  }
  const double spe = static_cast<double>(steps_per_epoch);
  // Progress at the end of this step, in epochs: the first warm-up step is
  // already non-zero and the last one reaches base_lr.
  const double done = static_cast<double>(step + 1) / spe;
  if (warmup_epochs > 0 && done < warmup_epochs) {
    return base_lr * done / warmup_epochs;
  }
  const int64_t epoch = step / steps_per_epoch;
  switch (kind) {
  case ScheduleKind::constant:
    return base_lr;
  case ScheduleKind::step: {
    double lr = base_lr;
    for (int64_t m : milestones) {
      if (epoch >= m) {
        lr *= gamma;
      }
    }
    return lr;
  }
  case ScheduleKind::cosine: {
    const double span = static_cast<double>(total_epochs) - warmup_epochs;
    if (span <= 0) {
      return base_lr;
    }
    // Position of this step's start within the post-warm-up span.
    const double t = (static_cast<double>(step) / spe - warmup_epochs) / span;
    const double c = std::min(1.0, std::max(0.0, t));
    return min_lr + (base_lr - min_lr) * 0.5 * (1 + std::cos(M_PI * c));
  }
  }
  return base_lr;
}

} // namespace cakes::train
