// Helpers shared by the float32 kernels of the op (internal): scratch memory,
// dynamic work distribution, channel blocking.
#pragma once

#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace cakes::detail {

// A 64-byte aligned buffer of at least n floats (one cache line: aligned loads
// never split), taken from a pool of released buffers. A fresh multi-megabyte
// allocation is mmapped by glibc and every page faults and is zeroed by the
// kernel on first touch; in the profile of a forward call that
// (clear_page_erms, exc_page_fault) cost about as much as the padding copy
// itself. The buffer returns to the pool when the last reference goes.
std::shared_ptr<float[]> alloc_floats(int64_t n);

// Runs fn(i) for i in [0, n) on LibTorch's threads, each taking the next index
// from a shared counter. A static split made the faster thread spin at the
// barrier (5% of a forward call in the profile, far more when another process
// holds one of the cores).
template <typename Fn> void for_each_dynamic(int64_t n, const Fn& fn) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    for (int64_t i = next++; i < n; i = next++)
      fn(i);
  });
}

// The same with per-worker state: make() runs once on each worker that takes
// an item, and fn(state, i) gets that worker's state (e.g. its scratch).
template <typename Make, typename Fn>
void for_each_dynamic_with(int64_t n, const Make& make, const Fn& fn) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t, int64_t) {
    int64_t i = next++;
    if (i >= n)
      return;
    auto state = make();
    for (; i < n; i = next++)
      fn(state, i);
  });
}

// Splits `channels` into blocks of at most `max_block`, as equal as possible:
// a narrow tail block (e.g. 2 of 32) does as many loads per FMA as a full one
// and would run several times slower. Returns (first, size) pairs.
std::vector<std::pair<int64_t, int>>
balanced_blocks(int64_t channels, int max_block);

} // namespace cakes::detail
