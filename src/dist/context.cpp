#include "cakes/dist/context.h"

#include "backend.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <c10/util/Exception.h>

#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>

namespace cakes::dist {

namespace detail {

namespace {
std::map<std::string, BackendFactory>& registry() {
  static std::map<std::string, BackendFactory> r;
  return r;
}
} // namespace

bool register_backend(const std::string& name, BackendFactory factory) {
  registry()[name] = std::move(factory);
  return true;
}

const BackendFactory* find_backend(const std::string& name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : &it->second;
}

} // namespace detail

namespace {

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

std::string first_line(const std::exception& e) {
  std::string msg;
  if (auto* c10e = dynamic_cast<const c10::Error*>(&e)) {
    msg = c10e->what_without_backtrace();
  } else {
    msg = e.what();
  }
  return msg.substr(0, msg.find('\n'));
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

const bool gloo_registered = detail::register_backend(
    "gloo",
    [](const c10::intrusive_ptr<c10d::Store>& store,
       int rank,
       int world_size,
       const DistOptions& o) -> c10::intrusive_ptr<c10d::ProcessGroup> {
      auto opts =
          c10d::ProcessGroupGloo::Options::create(to_ms(o.timeout_seconds));
      if (!o.interface.empty()) {
        opts->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForInterface(o.interface));
      } else if (is_loopback(o.master_addr)) {
        // All ranks are on this machine: stay on loopback.
        opts->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      // Two threads let a bucket's all-reduce run while the next is queued.
      opts->threads = 2;
      return c10::make_intrusive<c10d::ProcessGroupGloo>(
          store, rank, world_size, opts);
    });

} // namespace

struct Context::Impl {
  DistOptions options;
  std::string backend = "none";
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;

  std::string where() const {
    return "rank " + std::to_string(options.rank) + " of " +
           std::to_string(options.world_size);
  }

  // Waits for `work`, turning a failure into one line that says what to
  // look for.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      throw std::runtime_error(
          std::string("distributed ") + what + " failed on " + where() +
          " (another rank died, stopped or is unreachable; timeout " +
          std::to_string(static_cast<int64_t>(options.timeout_seconds)) +
          " s): " + first_line(e));
    }
  }
};

Context::Context(DistOptions options, c10::Device device)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  const DistOptions& o = impl_->options;
  if (o.world_size < 2) {
    return;
  }
  std::string backend = o.backend;
  if (backend == "auto") {
    backend =
        device.is_cuda() && detail::find_backend("nccl") ? "nccl" : "gloo";
  }
  const detail::BackendFactory* factory = detail::find_backend(backend);
  if (!factory) {
    throw std::runtime_error(
        "distributed backend '" + backend +
        "' is not in this build (configure with -DCAKES_WITH_NCCL=ON and "
        "CUDA for nccl)");
  }
  const std::string addr = o.master_addr + ":" + std::to_string(o.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = to_ms(o.timeout_seconds);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        impl_->where() + ": rendezvous at " + addr + " failed within " +
        std::to_string(static_cast<int64_t>(o.timeout_seconds)) +
        " s (is rank 0 running and are MASTER_ADDR/MASTER_PORT the same "
        "everywhere?): " +
        first_line(e));
  }
  try {
    impl_->group = (*factory)(impl_->store, o.rank, o.world_size, o);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        impl_->where() + ": connecting the " + backend +
        " process group through " + addr + " failed: " + first_line(e));
  }
  impl_->backend = backend;
}

Context::~Context() = default;

const DistOptions& Context::options() const {
  return impl_->options;
}
int Context::rank() const {
  return impl_->options.rank;
}
int Context::world_size() const {
  return impl_->options.world_size;
}
const std::string& Context::backend() const {
  return impl_->backend;
}
c10d::ProcessGroup* Context::process_group() {
  return impl_->group.get();
}

void Context::broadcast(std::vector<at::Tensor>& tensors, int root) {
  if (!impl_->group) {
    return;
  }
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    impl_->wait(impl_->group->broadcast(one, bo), "broadcast");
  }
}

void Context::all_reduce_sum(at::Tensor& tensor) {
  all_reduce_sum_async(tensor).wait();
}

Pending Context::all_reduce_sum_async(at::Tensor& tensor) {
  if (!impl_->group) {
    return Pending();
  }
  std::vector<at::Tensor> one{tensor};
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = impl_->group->allreduce(one);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        "distributed all-reduce failed on " + impl_->where() + ": " +
        first_line(e));
  }
  Impl* impl = impl_.get();
  return Pending([impl, work] { impl->wait(work, "all-reduce"); });
}

void Context::barrier() {
  if (!impl_->group) {
    return;
  }
  impl_->wait(impl_->group->barrier(), "barrier");
}

} // namespace cakes::dist
