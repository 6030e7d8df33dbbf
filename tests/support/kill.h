// kill -9 of a running command at chosen moments, for the command-line tests
// of checkpoint writes (train, search): start a command, poll for a moment,
// SIGKILL it there.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

namespace cakes::test {

// Starts `command` under /bin/sh (its output discarded); returns its pid.
inline pid_t start_command(const std::string& command) {
  // Built before fork(): the child only calls exec.
  const std::string cmd = "exec " + command + " > /dev/null 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
    _exit(127);
  }
  return pid;
}

// The file's modification time; the earliest time when it does not exist.
inline std::filesystem::file_time_type mtime(const std::filesystem::path& p) {
  std::error_code ec;
  const auto t = std::filesystem::last_write_time(p, ec);
  return ec ? std::filesystem::file_time_type::min() : t;
}

// Waits until `ready` holds (polling every 0.2 ms) or the process ends; then
// kills it with SIGKILL. Returns whether it was still running.
inline bool kill_when(pid_t pid, const std::function<bool()>& ready) {
  int status = 0;
  while (!ready()) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      return false;
    usleep(200);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return true;
}

// Runs `command` three times, each with " --force" while `checkpoint` does
// not exist and " --resume" once it does, and kills it: (1) while the
// temporary checkpoint (`checkpoint`.tmp, train/checkpoint.h) is being
// written, (2) right after a checkpoint was renamed into place (before the
// log line is appended), (3) mid-epoch after a new checkpoint. After each
// run, killed or not, calls `after(moment)`. Returns the moments at which a
// running command was killed (a command that ended first proves nothing).
inline std::vector<std::string> kill_around_checkpoints(
    const std::string& command,
    const std::filesystem::path& checkpoint,
    const std::function<void(const std::string& moment)>& after) {
  namespace fs = std::filesystem;
  const fs::path tmp = checkpoint.string() + ".tmp";
  const auto start = [&] {
    return start_command(
        command + (fs::exists(checkpoint) ? " --resume" : " --force"));
  };
  std::vector<std::string> moments;
  if (kill_when(start(), [&] { return fs::exists(tmp); }))
    moments.push_back("writing");
  after("writing");
  for (const std::string when : {"renamed", "mid-epoch"}) {
    const auto before = mtime(checkpoint);
    const pid_t pid = start();
    const auto t0 = std::chrono::steady_clock::now();
    const bool killed =
        when == "renamed"
            ? kill_when(pid, [&] { return mtime(checkpoint) != before; })
            : kill_when(pid, [&] {
                // Into the epoch after a new checkpoint.
                return mtime(checkpoint) != before &&
                       std::chrono::steady_clock::now() - t0 >
                           std::chrono::milliseconds(150);
              });
    if (killed)
      moments.push_back(when);
    after(when);
  }
  return moments;
}

} // namespace cakes::test
