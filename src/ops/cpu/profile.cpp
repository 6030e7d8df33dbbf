#include "cakes/ops/profile.h"
#include "profile_internal.h"

// GCC 12 reports the deliberately undefined pass-through operand inside
// avx512fintrin.h's reductions as uninitialised (a known false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace cakes::ops {
namespace {

// kAcc independent accumulators: enough to cover the FMA latency (4-5 cycles)
// times the FMA pipes (2) with room to spare, few enough to stay in
// registers. Each iteration does kAcc FMAs of 16 lanes.
constexpr int kAcc = 16;

__attribute__((target("avx512f"), noinline)) float fma_loop_512(int64_t iters) {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i)
    acc[i] = _mm512_set1_ps(1.0f + 0.001f * static_cast<float>(i));
  // a = a * m + c converges to c / (1 - m): no overflow, no denormals.
  const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kAcc; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; ++i)
    s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) float
fma_loop_256(int64_t iters) {
  __m256 acc[kAcc];
  for (int i = 0; i < kAcc; ++i)
    acc[i] = _mm256_set1_ps(1.0f + 0.001f * static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kAcc; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  __m256 s = acc[0];
  for (int i = 1; i < kAcc; ++i)
    s = _mm256_add_ps(s, acc[i]);
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

std::mutex g_mutex;
std::atomic<bool> g_recording{false};
std::vector<ConvCall> g_calls;

} // namespace

double thread_cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

double fma_peak_gflops(int threads, double seconds, bool cpu_time) {
  if (threads <= 0)
    threads = at::get_num_threads();
  const bool wide = __builtin_cpu_supports("avx512f");
  const bool fma = __builtin_cpu_supports("fma");
  if (!wide && !fma)
    return 0.0;
  const int lanes = wide ? 16 : 8;
  auto loop = [&](int64_t iters) {
    return wide ? fma_loop_512(iters) : fma_loop_256(iters);
  };
  // Calibrate on one thread: iterations for about `seconds`.
  int64_t iters = 1 << 14;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile float sink = loop(iters);
    (void)sink;
    const double t = seconds_since(t0);
    if (t > 0.02 || iters > (int64_t(1) << 40)) {
      iters = std::max<int64_t>(1, static_cast<int64_t>(iters * seconds / t));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  if (cpu_time) {
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = thread_cpu_ms();
      volatile float sink = loop(iters);
      (void)sink;
      const double t = (thread_cpu_ms() - t0) * 1e-3;
      best = std::max(best, 2.0 * lanes * kAcc * double(iters) / t / 1e9);
    }
    return best;
  }
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += loop(iters);
    const double t = seconds_since(t0);
    volatile float sink = total;
    (void)sink;
    const double flops = 2.0 * lanes * kAcc * double(iters) * threads;
    best = std::max(best, flops / t / 1e9);
  }
  return best;
}

void start_recording() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_calls.clear();
  g_recording = true;
}

std::vector<ConvCall> stop_recording() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_recording = false;
  return std::move(g_calls);
}

namespace recorder {

bool recording() {
  return g_recording.load(std::memory_order_relaxed);
}

void record(ConvCall call) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_recording)
    g_calls.push_back(std::move(call));
}

} // namespace recorder
} // namespace cakes::ops
