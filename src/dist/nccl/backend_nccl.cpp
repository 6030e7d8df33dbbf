// The NCCL backend (CUDA tensors). Built only with -DCAKES_WITH_NCCL=ON, which
// needs a CUDA build of LibTorch; it registers "nccl" when the library loads.
#include "../backend.h"

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

namespace cakes::dist {
namespace {

const bool nccl_registered = detail::register_backend(
    "nccl",
    [](const c10::intrusive_ptr<c10d::Store>& store,
       int rank,
       int world_size,
       const DistOptions& o) -> c10::intrusive_ptr<c10d::ProcessGroup> {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = std::chrono::milliseconds(
          static_cast<int64_t>(o.timeout_seconds * 1000.0));
      return c10::make_intrusive<c10d::ProcessGroupNCCL>(
          store, rank, world_size, opts);
    });

} // namespace
} // namespace cakes::dist
