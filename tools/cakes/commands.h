// Subcommands of the cakes CLI. Each file under tools/cakes/ adds its own; the
// CLI stays thin: parse, call the library, report.
#pragma once

#include "cakes/dist/options.h"
#include "cakes/ops/profile.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace cakes::cli {

// Applies --threads (0 = all cores) to LibTorch and OpenMP.
void set_threads(int threads);
// Throws std::invalid_argument naming `path` when it exists and !force.
void refuse_overwrite(const std::string& path, bool force);
// Throws std::invalid_argument when `output` names the same file as one of
// `inputs` (also through links or relative paths): a command never writes
// over what it reads, --force or not.
void refuse_input_as_output(
    const std::string& output, const std::vector<std::string>& inputs);
// Attaches the range of every numeric flag (flag_rules.cpp: one table for
// all subcommands) to the options of `app`'s subcommands; call once all
// subcommands exist.
void apply_flag_rules(CLI::App& app);
// Splits "1x8x56x56" into integers; throws std::invalid_argument naming `what`.
std::vector<int64_t>
parse_dims(const std::string& text, const std::string& what);

struct LayerBenchArgs {
  int64_t in = 64, out = 64;
  std::string input = "1x8x56x56";
  std::string split = "3x3x3:22,1x3x3:21,3x1x1:21";
  std::string stride = "1x1x1";
  int threads = 0, warmup = 3, repeats = 11;
  bool json = false, no_backward = false;
  std::string engine = "auto";
};
void run_layer_bench(const LayerBenchArgs& args);

// Adds --engine (auto, direct, panel, gemm: which CPU implementation runs the
// op, cakes::ops::set_engine) to a benchmark command; apply_engine() sets it.
void add_engine_option(CLI::App* command, std::string& engine);
void apply_engine(const std::string& engine);

// `cakes bench model --per-layer` (bench.cpp): one network's convolution
// layers, in the order the network calls them, and the op calls recorded
// during each of several steps (inference passes or training steps) with each
// step's wall time. Prints per layer the shape, sub-kernel mix, engine,
// forward and backward ms (medians over the steps), GFLOP/s and % of `peak`,
// then the time outside convolutions. cpu_time: times are the calling
// thread's CPU time (one thread; robust on a loaded machine), else wall time.
struct LayerRow {
  std::string name, operation;
  int64_t macs = 0;
};
void print_per_layer(
    const std::string& title,
    const std::vector<LayerRow>& layers,
    const std::vector<std::vector<ops::ConvCall>>& steps,
    const std::vector<double>& step_ms,
    double peak,
    bool cpu_time);

void add_bench(CLI::App& app);
void add_info(CLI::App& app);
// search, derive, profile (search.cpp).
void add_search(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_infer(CLI::App& app);
void add_synth(CLI::App& app);
void add_plot(CLI::App& app); // plot.cpp
// Adds `model` under the existing `bench` subcommand.
void add_bench_model(CLI::App& bench);
void add_launch(CLI::App& app);
// Adds --world-size, --rank, --master-addr, --master-port, --dist-timeout and
// --dist-backend to a subcommand (train, search); pass the filled flags to
// cakes::dist::from_env_and_flags, which also reads the environment.
void add_dist_flags(CLI::App& command, dist::DistFlags& flags);

} // namespace cakes::cli
