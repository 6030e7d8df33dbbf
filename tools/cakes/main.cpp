#include "commands.h"
#include "init_options.h"

#include "cakes/ops/memory.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

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
    dims.push_back(std::stoll(part));
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
  cakes::cli::add_bench_model(*app.get_subcommand("bench"));
  cakes::cli::add_launch(app);
  cakes::cli::add_import(app);
  // Subcommands run inside parse(); whatever they throw is reported as one
  // line and a non-zero exit, never a crash or a backtrace.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
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
