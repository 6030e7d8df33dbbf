// Timing for benchmarks: warm-up, then the median of repeats (this machine's
// timings vary by tens of percent between runs; medians of one run, compared as
// ratios, are what the benchmarks report).
#pragma once

#include <functional>
#include <vector>

namespace cakes {

struct Timing {
  double median_ms = 0;
  double min_ms = 0;
  std::vector<double> samples_ms;
};

Timing time_it(const std::function<void()>& fn, int warmup, int repeats);

// Runs several candidates interleaved (A B C A B C ...) so that slow drifts of
// the machine hit them alike; returns one Timing per candidate.
std::vector<Timing> time_interleaved(
    const std::vector<std::function<void()>>& fns, int warmup, int repeats);

} // namespace cakes
