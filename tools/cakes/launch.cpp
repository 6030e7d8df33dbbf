// cakes launch --nproc N -- <command args>: a data-parallel job on this
// machine. Every process is this same executable with the given arguments
// and RANK / WORLD_SIZE / MASTER_ADDR=127.0.0.1 / MASTER_PORT set; when one
// fails the others are stopped and its exit code is ours.
#include "commands.h"

#include "cakes/dist/launch.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <stdexcept>

namespace cakes::cli {

namespace {

volatile sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
}

std::string self_executable() {
  std::string buf(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) {
    throw std::runtime_error(
        "launch: cannot find this executable (/proc/self/exe)");
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

} // namespace

void add_launch(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "launch",
      "start N local processes of a data-parallel job, e.g. "
      "'cakes launch --nproc 2 -- train <train args>'");
  auto o = std::make_shared<dist::LaunchOptions>();
  cmd->add_option("--nproc", o->nproc, "processes to start")
      ->required()
      ->check(CLI::PositiveNumber);
  cmd->add_option(
      "--master-port",
      o->master_port,
      "rendezvous port on 127.0.0.1 (0: a free one)");
  cmd->add_option(
      "--kill-grace",
      o->kill_grace_seconds,
      "seconds between SIGTERM and SIGKILL for the others when one fails");
  cmd->add_option(
         "command",
         o->args,
         "the cakes command line each process runs (after --)")
      ->required();
  cmd->callback([o] {
    o->executable = self_executable();
    // A terminal's Ctrl-C reaches the whole process group anyway; a
    // scheduler's SIGTERM to the launcher alone must reach the ranks too.
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    o->stop_requested = [] { return static_cast<int>(g_stop_signal); };
    const dist::LaunchResult r = dist::launch_local(*o);
    if (r.exit_code != 0) {
      std::cerr << "cakes launch: " << r.failure << "; stopped the others\n";
      throw CLI::RuntimeError(r.exit_code);
    }
  });
}

} // namespace cakes::cli
