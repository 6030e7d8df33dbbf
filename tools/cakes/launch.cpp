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

void add_dist_flags(CLI::App& command, dist::DistFlags& flags) {
  const char* group =
      "Distributed (default: WORLD_SIZE, RANK, ... or one process)";
  command
      .add_option_function<int>(
          "--world-size",
          [&flags](const int& v) { flags.world_size = v; },
          "processes in the job (WORLD_SIZE)")
      ->group(group);
  command
      .add_option_function<int>(
          "--rank",
          [&flags](const int& v) { flags.rank = v; },
          "this process, 0..world-size-1 (RANK)")
      ->group(group);
  command
      .add_option_function<std::string>(
          "--master-addr",
          [&flags](const std::string& v) { flags.master_addr = v; },
          "address of rank 0's machine (MASTER_ADDR)")
      ->group(group);
  command
      .add_option_function<int>(
          "--master-port",
          [&flags](const int& v) { flags.master_port = v; },
          "rendezvous port on rank 0's machine (MASTER_PORT)")
      ->group(group);
  command
      .add_option_function<double>(
          "--dist-timeout",
          [&flags](const double& v) { flags.timeout_seconds = v; },
          "seconds before a missing or dead rank is an error "
          "(CAKES_DIST_TIMEOUT)")
      ->group(group);
  command
      .add_option_function<std::string>(
          "--dist-backend",
          [&flags](const std::string& v) { flags.backend = v; },
          "auto, gloo or nccl (CAKES_DIST_BACKEND)")
      ->group(group);
}

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
    // Each process runs the command; a nested launch would multiply them.
    if (!o->args.empty() && o->args.front() == "launch")
      throw std::invalid_argument(
          "launch: the command after -- is run by every process; it cannot "
          "be another launch");
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
