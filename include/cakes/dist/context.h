// A process's membership in a data-parallel job: the rendezvous store and
// the c10d process group, plus the few collectives training needs.
//
// Collectives must be called by every rank in the same order with tensors of
// the same shapes and dtypes. When a rank dies, cannot be reached or stops
// calling, the others throw std::runtime_error within
// DistOptions::timeout_seconds (one line: the operation, this rank, the
// cause) instead of waiting forever.
#pragma once

#include "cakes/dist/options.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <vector>

namespace c10d {
class ProcessGroup;
}

namespace cakes::dist {

// An all-reduce under way; wait() returns when its tensor holds the result
// and throws like the blocking collectives. Waiting twice is a no-op.
class Pending {
public:
  Pending() = default;
  explicit Pending(std::function<void()> wait) : wait_(std::move(wait)) {}
  void wait() {
    if (wait_) {
      auto w = std::move(wait_);
      wait_ = nullptr;
      w();
    }
  }

private:
  std::function<void()> wait_;
};

class Context {
public:
  // Rendezvous: rank 0 serves the store on master_port and waits for all
  // ranks, every rank connects to master_addr:master_port, then the process
  // group connects all pairs. `device` picks the backend for "auto" (nccl
  // for CUDA when built with it). For world_size 1 nothing is connected and
  // the collectives return at once. Throws std::runtime_error naming the
  // address and the timeout when the rendezvous fails.
  explicit Context(
      DistOptions options, c10::Device device = c10::Device(c10::kCPU));
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DistOptions& options() const;
  int rank() const;
  int world_size() const;
  bool is_main() const {
    return rank() == 0;
  }
  const std::string& backend() const; // "gloo", "nccl" or "none"

  // In place: every tensor takes root's value.
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  // In place: the element-wise sum over ranks.
  void all_reduce_sum(at::Tensor& tensor);
  Pending all_reduce_sum_async(at::Tensor& tensor);
  void barrier();

  // The underlying group (nullptr for world size 1), for collectives not
  // wrapped here.
  c10d::ProcessGroup* process_group();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace cakes::dist
