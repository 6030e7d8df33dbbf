#include "cpu_util.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>

namespace cakes::detail {
namespace {

// Released buffers wait in a small pool (see alloc_floats in cpu_util.h).
class ScratchPool {
public:
  std::shared_ptr<float[]> get(int64_t n) {
    const size_t want = static_cast<size_t>(std::max<int64_t>(n, 1));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Smallest pooled buffer that fits and is not more than twice the size.
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->first >= want && it->first <= 2 * want &&
            (best == free_.end() || it->first < best->first))
          best = it;
      if (best != free_.end()) {
        const auto [cap, ptr] = *best;
        free_.erase(best);
        held_ -= cap;
        return wrap(ptr, cap);
      }
    }
    constexpr size_t kAlign = 64;
    const size_t cap =
        (want * sizeof(float) + kAlign - 1) / kAlign * kAlign / sizeof(float);
    auto* ptr = static_cast<float*>(std::aligned_alloc(kAlign, cap * 4));
    if (ptr == nullptr)
      throw std::bad_alloc();
    return wrap(ptr, cap);
  }

private:
  std::shared_ptr<float[]> wrap(float* ptr, size_t cap) {
    return std::shared_ptr<float[]>(
        ptr, [this, cap](float* p) { put(p, cap); });
  }
  void put(float* p, size_t cap) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_ + cap > kMaxHeld) {
      std::free(p);
      return;
    }
    free_.push_back({cap, p});
    held_ += cap;
  }
  static constexpr size_t kMaxHeld = size_t(64) << 20; // floats (256 MiB)
  std::mutex mutex_;
  std::vector<std::pair<size_t, float*>> free_;
  size_t held_ = 0;
};

} // namespace

std::shared_ptr<float[]> alloc_floats(int64_t n) {
  // Never destroyed: buffers may be released during static destruction.
  static auto* pool = new ScratchPool();
  return pool->get(n);
}

std::vector<std::pair<int64_t, int>>
balanced_blocks(int64_t channels, int max_block) {
  std::vector<std::pair<int64_t, int>> out;
  if (channels <= 0)
    return out;
  const int64_t n = (channels + max_block - 1) / max_block;
  const int64_t base = channels / n, extra = channels % n;
  int64_t start = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int size = static_cast<int>(base + (i < extra ? 1 : 0));
    out.push_back({start, size});
    start += size;
  }
  return out;
}

} // namespace cakes::detail
