#include "cakes/ops/memory.h"

#include <climits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace cakes::ops {

bool retain_freed_memory() {
#if defined(__GLIBC__)
  // A fixed threshold also stops glibc's dynamic one, which would still send
  // allocations above 32 MiB to mmap.
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, INT_MAX) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
  return mmap_ok && trim_ok;
#else
  return false;
#endif
}

} // namespace cakes::ops
