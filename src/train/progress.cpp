#include "cakes/train/trainer.h"

#include <cmath>
#include <cstdio>

namespace cakes::train {

namespace {

std::string duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) {
    return "?";
  }
  const long s = static_cast<long>(std::lround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lds", s);
  }
  return buf;
}

} // namespace

std::string format_progress(const ProgressState& s, int bar_width) {
  std::string out = "epoch " + std::to_string(s.epoch + 1) + "/" +
                    std::to_string(s.epochs) + " ";
  if (bar_width > 0) {
    const double frac = s.steps_in_epoch > 0
                            ? static_cast<double>(s.step_in_epoch) /
                                  static_cast<double>(s.steps_in_epoch)
                            : 0;
    const int filled = static_cast<int>(std::floor(frac * bar_width));
    out += "[" + std::string(static_cast<size_t>(filled), '#') +
           std::string(static_cast<size_t>(bar_width - filled), '.') + "] ";
  }
  char buf[160];
  std::snprintf(
      buf,
      sizeof buf,
      "%lld/%lld loss %.4f lr %.4g %.1f samples/s (loader %.1f) ETA %s",
      static_cast<long long>(s.step_in_epoch),
      static_cast<long long>(s.steps_in_epoch),
      s.loss,
      s.lr,
      s.samples_per_second,
      s.loader_samples_per_second,
      duration(s.eta_seconds).c_str());
  return out + buf;
}

} // namespace cakes::train
