// Process-group backends by name. Gloo is always built; a backend that needs
// an optional dependency (NCCL) lives in its own source file, joins the build
// only when its CMake option is on, and registers itself here when the
// library loads, so no other file needs an #ifdef.
#pragma once

#include "cakes/dist/options.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <functional>
#include <string>

namespace cakes::dist::detail {

using BackendFactory = std::function<c10::intrusive_ptr<c10d::ProcessGroup>(
    const c10::intrusive_ptr<c10d::Store>& store,
    int rank,
    int world_size,
    const DistOptions& options)>;

// Returns true so that it can initialise a namespace-scope constant.
bool register_backend(const std::string& name, BackendFactory factory);
// nullptr when no backend of that name is built in.
const BackendFactory* find_backend(const std::string& name);

} // namespace cakes::dist::detail
