// Google Benchmark micro-benchmarks of cakes::shrunk_conv3d per sub-kernel and
// engine: MACs/s counters make "time follows MACs" visible per operation.
//   build/benchmarks/cakes_bench_ops --benchmark_filter=...
//   [--benchmark_repetitions=5]
#include "cakes/ops/shrunk_conv3d.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

namespace {

// One group of 64 channels with sub-kernel (kd, kh, kw) on 1x64x8x56x56.
void Forward(benchmark::State& state) {
  const int64_t kd = state.range(0), kh = state.range(1), kw = state.range(2);
  const bool gemm = state.range(3) != 0;
  cakes::ops::set_engine(
      gemm ? cakes::ops::Engine::Gemm : cakes::ops::Engine::Auto);
  at::set_num_threads(2);
  const auto x = at::randn({1, 64, 8, 56, 56});
  const std::vector<at::Tensor> w{at::randn({64, 64, kd, kh, kw})};
  at::NoGradGuard ng;
  for (auto _ : state)
    benchmark::DoNotOptimize(cakes::ops::shrunk_conv3d(x, w));
  const double macs =
      double(cakes::ops::shrunk_conv3d_macs(x.sizes(), w, {1, 1, 1}));
  state.counters["GFLOP/s"] = benchmark::Counter(
      2 * macs * state.iterations(), benchmark::Counter::kIsRate);
  state.SetLabel(
      std::to_string(kd) + "x" + std::to_string(kh) + "x" + std::to_string(kw) +
      (gemm ? " gemm" : " direct"));
  cakes::ops::set_engine(cakes::ops::Engine::Auto);
}

void ForwardBackward(benchmark::State& state) {
  at::set_num_threads(2);
  const auto x = at::randn({1, 64, 8, 56, 56}).requires_grad_(true);
  std::vector<at::Tensor> w{
      (at::randn({22, 64, 3, 3, 3}) * 0.05).requires_grad_(true),
      (at::randn({21, 64, 1, 3, 3}) * 0.05).requires_grad_(true),
      (at::randn({21, 64, 3, 1, 1}) * 0.05).requires_grad_(true)};
  for (auto _ : state) {
    auto y = cakes::ops::shrunk_conv3d(x, w);
    y.sum().backward();
  }
  const double macs =
      double(cakes::ops::shrunk_conv3d_macs(x.sizes(), w, {1, 1, 1}));
  state.counters["GFLOP/s"] = benchmark::Counter(
      6 * macs * state.iterations(), benchmark::Counter::kIsRate);
}

} // namespace

BENCHMARK(Forward)
    ->ArgsProduct({{1, 3}, {1, 3}, {1, 3}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(ForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
