// `cakes plot LOG... -o curves.svg`: the training loss and validation metrics
// of one or several runs (log.jsonl of `cakes train`, search.log.jsonl of
// `cakes search`) in one SVG picture. Reading is train/log.h's, drawing is
// report/svg.h's; this file only joins them.
#include "commands.h"

#include "cakes/report/svg.h"
#include "cakes/train/log.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>

namespace cakes::cli {
namespace {

namespace fs = std::filesystem;

struct PlotArgs {
  std::vector<std::string> logs, labels;
  std::string out;
  bool force = false;
};

// A run's name: the folder of a log.jsonl / search.log.jsonl, else the path.
std::string run_name(const std::string& path) {
  const fs::path p(path);
  const std::string file = p.filename().string();
  if ((file == "log.jsonl" || file == "search.log.jsonl") &&
      !p.parent_path().empty())
    return p.parent_path().string();
  return path;
}

report::RunCurves read_run(const std::string& path, const std::string& name) {
  if (fs::is_directory(path))
    throw std::invalid_argument(
        path + ": is a folder; give its log.jsonl or search.log.jsonl");
  train::TrainingLog log;
  try {
    // A step or epoch logged twice (a resumed run redoing the epoch a kill
    // cut short) is drawn once, as its later line says.
    log = train::read_training_log(path);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
  if (log.epochs.empty() && log.steps.empty())
    throw std::invalid_argument(path + ": empty log, nothing to plot");
  report::RunCurves run;
  run.name = name;
  for (const auto& s : log.steps)
    if (s.steps_in_epoch > 0)
      run.step_loss.emplace_back(
          double(s.epoch) + double(s.step_in_epoch) / double(s.steps_in_epoch),
          s.loss);
  for (const auto& e : log.epochs) {
    // The log is written as JSON, which has no NaN: a value read is finite.
    const double x = double(e.epoch + 1); // epochs completed
    run.loss.emplace_back(x, e.mean_loss);
    // Every metric of the trainer's validate callback: val_top1/val_top5 of
    // train, derived_top1 of search.
    for (const auto& [key, value] : e.metrics)
      if (std::isfinite(value))
        run.metrics[key].emplace_back(x, value);
  }
  return run;
}

void run_plot(const PlotArgs& a) {
  if (!a.labels.empty() && a.labels.size() != a.logs.size())
    throw std::invalid_argument(
        "--label given " + std::to_string(a.labels.size()) + " times for " +
        std::to_string(a.logs.size()) + " logs: give one per log or none");
  if (fs::path(a.out).extension() != ".svg")
    throw std::invalid_argument(
        "-o " + a.out + ": the picture is SVG; name it *.svg");
  refuse_input_as_output(a.out, a.logs);
  refuse_overwrite(a.out, a.force);
  std::vector<report::RunCurves> runs;
  for (size_t i = 0; i < a.logs.size(); ++i)
    runs.push_back(read_run(
        a.logs[i], a.labels.empty() ? run_name(a.logs[i]) : a.labels[i]));
  // Written beside the target and renamed over it: an existing picture is
  // replaced whole or not at all.
  const std::string tmp = a.out + ".tmp";
  {
    std::ofstream f(tmp);
    f << report::training_curves(runs);
    if (!f.flush())
      throw std::invalid_argument("cannot write " + tmp);
  }
  fs::rename(tmp, a.out);
  std::cout << "plotted " << runs.size() << " run"
            << (runs.size() > 1 ? "s" : "") << " to " << a.out << "\n";
}

} // namespace

void add_plot(CLI::App& app) {
  auto a = std::make_shared<PlotArgs>();
  auto* c = app.add_subcommand(
      "plot",
      "loss and validation curves of training or search logs, as one SVG");
  c->add_option("logs", a->logs, "log.jsonl / search.log.jsonl, one per run")
      ->required();
  c->add_option("-o,--out", a->out, "the picture (.svg)")->required();
  c->add_option(
      "--label",
      a->labels,
      "legend name of each run, in order (default: its folder)");
  c->add_flag("--force", a->force, "overwrite an existing picture");
  c->callback([a] { run_plot(*a); });
}

} // namespace cakes::cli
