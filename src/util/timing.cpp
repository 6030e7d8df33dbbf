#include "cakes/util/timing.h"

#include <algorithm>
#include <chrono>

namespace cakes {
namespace {

Timing summarise(std::vector<double> samples) {
  Timing t;
  t.samples_ms = samples;
  if (samples.empty())
    return t;
  std::sort(samples.begin(), samples.end());
  t.min_ms = samples.front();
  const size_t n = samples.size();
  t.median_ms =
      n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  return t;
}

double once_ms(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

} // namespace

Timing time_it(const std::function<void()>& fn, int warmup, int repeats) {
  return time_interleaved({fn}, warmup, repeats).front();
}

std::vector<Timing> time_interleaved(
    const std::vector<std::function<void()>>& fns, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i)
    for (const auto& f : fns)
      f();
  std::vector<std::vector<double>> samples(fns.size());
  for (int r = 0; r < repeats; ++r)
    for (size_t i = 0; i < fns.size(); ++i)
      samples[i].push_back(once_ms(fns[i]));
  std::vector<Timing> out;
  for (auto& s : samples)
    out.push_back(summarise(std::move(s)));
  return out;
}

} // namespace cakes
