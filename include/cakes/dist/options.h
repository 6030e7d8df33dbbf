// Where a process sits in a data-parallel job and how it finds the others.
//
// The usual launcher variables (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT)
// set it; explicit flags win over them. Rank 0 runs the rendezvous store on
// MASTER_ADDR:MASTER_PORT, every rank connects to it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace cakes::dist {

struct DistOptions {
  int world_size = 1;
  int rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Rendezvous (connecting to the store, waiting for all ranks) and every
  // collective give up after this long; a dead or missing rank then makes
  // the others throw instead of hanging.
  double timeout_seconds = 300;
  // "gloo" (CPU tensors), "nccl" (CUDA tensors; only in builds configured
  // with CAKES_WITH_NCCL=ON), or "auto": nccl when training on CUDA and the
  // build has it, else gloo.
  std::string backend = "auto";
  // Network interface Gloo binds to (GLOO_SOCKET_IFNAME); empty: the
  // loopback device when master_addr is a loopback address, else the address
  // this machine's hostname resolves to.
  std::string interface;

  bool distributed() const {
    return world_size > 1;
  }
};

// Values given on the command line; unset ones come from the environment,
// then from DistOptions' defaults.
struct DistFlags {
  std::optional<int> world_size, rank, master_port;
  std::optional<std::string> master_addr, backend, interface;
  std::optional<double> timeout_seconds;
};

using EnvLookup = std::function<const char*(const char*)>;

// Reads WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT, CAKES_DIST_TIMEOUT
// (seconds), CAKES_DIST_BACKEND and GLOO_SOCKET_IFNAME through `env`
// (std::getenv when empty), then applies `flags`. Throws
// std::invalid_argument naming the variable or flag when a value is not a
// number, world_size < 1, rank is outside [0, world_size), the port is
// outside [1, 65535], the timeout is not positive or the backend unknown.
DistOptions
from_env_and_flags(const DistFlags& flags, const EnvLookup& env = {});

} // namespace cakes::dist
