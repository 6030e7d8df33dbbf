// Measuring the CAKES op: the machine's floating-point peak and a per-call
// record of the op's CPU kernels. Benchmarks use these to report every figure
// as a share of the peak measured in the same run and to say where a
// network's time goes (`cakes bench peak`, `cakes bench model --per-layer`).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cakes::ops {

// The fp32 multiply-add peak of this CPU for `threads` threads (0 = LibTorch's
// current thread count), in GFLOP/s (one FMA = 2 FLOP): every thread runs a
// loop of independent 512-bit FMAs (256-bit without AVX-512) for about
// `seconds`, and the best of a few repeats is returned. Uses the cores for
// that long; run it next to the measurement it is compared with. With
// cpu_time (one thread only) the loop is timed by the thread's CPU time: the
// peak to compare CPU-time measurements with on a loaded machine.
double
fma_peak_gflops(int threads = 0, double seconds = 0.2, bool cpu_time = false);

// One call of the op's CPU kernel (forward or backward).
struct ConvCall {
  bool backward = false;
  bool grad_input = false, grad_weight = false; // backward only
  std::array<int64_t, 5> input{};               // N, C_in, D, H, W
  std::array<int64_t, 3> stride{};
  // Per group: (channels, kd, kh, kw).
  std::vector<std::array<int64_t, 4>> groups;
  int64_t macs = 0;   // of the forward convolution
  std::string engine; // which implementation ran
  double ms = 0;      // wall time of the call
  double cpu_ms = 0;  // CPU time of the calling thread during the call (all
                      // of the call's work when LibTorch runs one thread)
};

// CPU time of the calling thread, in ms.
double thread_cpu_ms();

// While a recording is active, every call of the op's CPU kernels appends a
// ConvCall (in call order, from any thread). Not re-entrant: one recording at
// a time, process-wide.
void start_recording();
std::vector<ConvCall> stop_recording();

} // namespace cakes::ops
