#include "commands.h"
#include "init_options.h"

#include "cakes/ops/memory.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <thread>

namespace cakes::cli {

void set_threads(int threads) {
  const int n = threads > 0
                    ? threads
                    : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(n > 0 ? n : 1);
}

void refuse_overwrite(const std::string& path, bool force) {
  if (!force && std::filesystem::exists(path))
    throw std::invalid_argument(path + " exists: give --force to overwrite it");
}

void refuse_input_as_output(
    const std::string& output, const std::vector<std::string>& inputs) {
  // An input exists (it is read), so an output that is the same file exists
  // too: filesystem identity covers links and relative paths alike.
  for (const auto& in : inputs) {
    std::error_code ec;
    if (!in.empty() && std::filesystem::equivalent(output, in, ec))
      throw std::invalid_argument(
          output + " is also an input of this command (" + in +
          "): write the output to another file");
  }
}

std::vector<int64_t>
parse_dims(const std::string& text, const std::string& what) {
  std::vector<int64_t> dims;
  size_t start = 0;
  while (true) {
    const size_t x = text.find('x', start);
    const std::string part =
        text.substr(start, x == std::string::npos ? x : x - start);
    if (part.empty() ||
        part.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument(
          "bad " + what + " '" + text + "': expected sizes joined by 'x'");
    // Stated limits (a size of 2^20, 2^32 elements in all) keep LibTorch's
    // own overflow messages and absurd allocations away from the user.
    if (part.size() > 7 || std::stoll(part) > (int64_t(1) << 20))
      throw std::invalid_argument(
          "bad " + what + " '" + text + "': each size must be at most " +
          std::to_string(int64_t(1) << 20));
    dims.push_back(std::stoll(part));
    int64_t elements = 1;
    for (int64_t d : dims)
      elements *= std::max<int64_t>(d, 1);
    if (elements > (int64_t(1) << 32))
      throw std::invalid_argument(
          "bad " + what + " '" + text + "': more than 2^32 elements");
    if (x == std::string::npos)
      break;
    start = x + 1;
  }
  return dims;
}

} // namespace cakes::cli

int main(int argc, char** argv) {
  // Freed activations stay in the heap for the next step instead of faulting
  // in again (cakes/ops/memory.h).
  cakes::ops::retain_freed_memory();
  CLI::App app{"cakes: channel-wise automatic kernel shrinking for 3D CNNs"};
  app.require_subcommand(1);
  cakes::cli::add_bench(app);
  cakes::cli::add_info(app);
  cakes::cli::add_search(app);
  cakes::cli::add_train(app);
  cakes::cli::add_eval(app);
  cakes::cli::add_infer(app);
  cakes::cli::add_synth(app);
  cakes::cli::add_plot(app);
  cakes::cli::add_bench_model(*app.get_subcommand("bench"));
  cakes::cli::add_launch(app);
  cakes::cli::add_import(app);
  cakes::cli::apply_flag_rules(app);
  // Subcommands run inside parse(); whatever they throw is reported as one
  // line and a non-zero exit, never a crash or a backtrace.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version requests print as CLI11 lays them out; a wrong
    // command line is one line, like every other error.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success) ||
        dynamic_cast<const CLI::CallForHelp*>(&e) ||
        dynamic_cast<const CLI::CallForAllHelp*>(&e) ||
        dynamic_cast<const CLI::CallForVersion*>(&e) ||
        dynamic_cast<const CLI::RuntimeError*>(&e)) // already reported

      return app.exit(e);
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::cerr << "cakes: error: " << msg << "\n";
    return e.get_exit_code();
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    msg = msg.substr(0, msg.find('\n'));
    std::cerr << "cakes: error: " << msg << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "cakes: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
