// Starting a data-parallel job on this machine: N copies of one executable,
// each told its place through RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR /
// MASTER_PORT in its environment (the variables from_env_and_flags reads).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace cakes::dist {

struct LaunchOptions {
  int nproc = 1;
  std::string executable;        // run as is (execve), no PATH search
  std::vector<std::string> args; // argv[1..] of every process
  std::string master_addr = "127.0.0.1";
  int master_port = 0; // 0: a free loopback port (free_loopback_port)
  // When one process fails, the others get SIGTERM, then SIGKILL after this.
  double kill_grace_seconds = 5;
  // Added to (or replacing in) every process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Polled while waiting; when it returns a signal number > 0 (e.g. the
  // caller's SIGTERM handler fired) every process is stopped as above and
  // launch_local returns 128 + that number.
  std::function<int()> stop_requested;
};

struct LaunchResult {
  // 0 when every process exited with 0; else the first failure's exit code
  // (128 + signal number when it was killed by a signal).
  int exit_code = 0;
  int failed_rank = -1; // -1 when none failed
  std::string failure;  // "rank 1 exited with code 3", empty when none
};

// Starts options.nproc processes, waits for all of them and stops the rest
// as soon as one fails (a failed rank would otherwise leave the others
// waiting in a collective until their timeout). Children inherit stdout and
// stderr. Throws std::invalid_argument for nproc < 1 and std::runtime_error
// when a process cannot be started (after stopping those already started).
LaunchResult launch_local(const LaunchOptions& options);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then
// released). Throws std::runtime_error when no socket can be bound.
int free_loopback_port();

} // namespace cakes::dist
