#include "cakes/dist/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace cakes::dist {

namespace {

using Clock = std::chrono::steady_clock;

std::string describe_status(int rank, int status) {
  if (WIFSIGNALED(status)) {
    return "rank " + std::to_string(rank) + " was killed by signal " +
           std::to_string(WTERMSIG(status));
  }
  return "rank " + std::to_string(rank) + " exited with code " +
         std::to_string(WEXITSTATUS(status));
}

int exit_code_of(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

// SIGTERM to every live child, then SIGKILL to those still alive after
// `grace`; reaps them all.
void stop_all(std::map<pid_t, int>& alive, double grace) {
  for (const auto& [pid, rank] : alive) {
    ::kill(pid, SIGTERM);
  }
  const auto deadline =
      Clock::now() + std::chrono::duration<double>(std::max(0.0, grace));
  while (!alive.empty()) {
    for (auto it = alive.begin(); it != alive.end();) {
      int status = 0;
      if (::waitpid(it->first, &status, WNOHANG) == it->first) {
        it = alive.erase(it);
      } else {
        ++it;
      }
    }
    if (alive.empty()) {
      break;
    }
    if (Clock::now() >= deadline) {
      for (const auto& [pid, rank] : alive) {
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
      }
      alive.clear();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

} // namespace

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    throw std::runtime_error(
        std::string("cannot create a socket: ") + std::strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback port: " + err);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

LaunchResult launch_local(const LaunchOptions& o) {
  if (o.nproc < 1) {
    throw std::invalid_argument(
        "launch: --nproc must be >= 1, got " + std::to_string(o.nproc));
  }
  if (o.executable.empty()) {
    throw std::invalid_argument("launch: no executable");
  }
  const int port = o.master_port > 0 ? o.master_port : free_loopback_port();

  // Everything a child needs is built before fork: between fork and exec a
  // multi-threaded parent's child may only make async-signal-safe calls.
  std::map<std::string, std::string> base_env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) {
      base_env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  for (const auto& [k, v] : o.env) {
    base_env[k] = v;
  }
  base_env["WORLD_SIZE"] = std::to_string(o.nproc);
  base_env["MASTER_ADDR"] = o.master_addr;
  base_env["MASTER_PORT"] = std::to_string(port);

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(o.executable.c_str()));
  for (const auto& a : o.args) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);

  std::map<pid_t, int> alive; // pid -> rank
  for (int rank = 0; rank < o.nproc; ++rank) {
    auto env = base_env;
    env["RANK"] = std::to_string(rank);
    env["LOCAL_RANK"] = std::to_string(rank);
    std::vector<std::string> strings;
    for (const auto& [k, v] : env) {
      strings.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& s : strings) {
      envp.push_back(s.data());
    }
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
      const std::string err = std::strerror(errno);
      stop_all(alive, 0);
      throw std::runtime_error(
          "launch: cannot start rank " + std::to_string(rank) + ": " + err);
    }
    if (pid == 0) {
      ::execve(o.executable.c_str(), argv.data(), envp.data());
      ::_exit(127); // exec failed; the parent reports the code
    }
    alive[pid] = rank;
  }

  // Polls our own children only (waitpid(-1) could reap a caller's).
  LaunchResult result;
  while (!alive.empty()) {
    bool reaped = false;
    for (auto it = alive.begin(); it != alive.end();) {
      int status = 0;
      if (::waitpid(it->first, &status, WNOHANG) != it->first) {
        ++it;
        continue;
      }
      const int rank = it->second;
      it = alive.erase(it);
      reaped = true;
      if (exit_code_of(status) != 0 && result.failed_rank < 0) {
        result.exit_code = exit_code_of(status);
        result.failed_rank = rank;
        result.failure = describe_status(rank, status);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
          result.failure += " (could not run '" + o.executable + "'?)";
        }
        stop_all(alive, o.kill_grace_seconds);
        break;
      }
    }
    if (!alive.empty() && o.stop_requested) {
      if (const int sig = o.stop_requested(); sig > 0) {
        stop_all(alive, o.kill_grace_seconds);
        if (result.failed_rank < 0) {
          result.exit_code = 128 + sig;
          result.failure = "stopped by signal " + std::to_string(sig);
        }
        break;
      }
    }
    if (!reaped) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return result;
}

} // namespace cakes::dist
