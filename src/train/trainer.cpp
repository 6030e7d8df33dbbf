#include "cakes/train/trainer.h"

#include "cakes/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace cakes::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

at::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream log(path, std::ios::app);
  log << line << '\n' << std::flush;
  if (!log) {
    throw std::runtime_error("cannot append to log '" + path + "'");
  }
}

void set_cpu_rng_state(const at::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

} // namespace

struct Trainer::State {
  models::Model model;
  LossFn loss;
  TrainerOptions options;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<at::Tensor> params; // all trainable, for clipping
  int64_t epoch = 0;
  int64_t step = 0;
  // The log lines of every completed epoch, saved in each checkpoint: a kill
  // between the checkpoint's rename and the log's append loses no line, since
  // resume() rewrites the log from the checkpoint.
  std::vector<std::string> log_lines;
  // The best validation so far (TrainerOptions::best_metric).
  double best_value = std::numeric_limits<double>::quiet_NaN();
  int64_t best_epoch = 0;

  // Rank 0 (or the only process) logs and writes checkpoints.
  bool is_main() const {
    return !options.parallel || options.parallel->is_main();
  }
};

Trainer::Trainer(models::Model model, LossFn loss, TrainerOptions options)
    : s_(std::make_unique<State>()) {
  if (!model.module || !model.forward) {
    throw std::invalid_argument("Trainer: model has no module or forward");
  }
  if (!loss) {
    throw std::invalid_argument("Trainer: no loss function");
  }
  if (options.epochs < 1) {
    throw std::invalid_argument(
        "Trainer: epochs must be >= 1, got " + std::to_string(options.epochs));
  }
  if (options.schedule.total_epochs <= 0) {
    options.schedule.total_epochs = options.epochs;
  }
  s_->model = std::move(model);
  s_->loss = std::move(loss);
  s_->options = std::move(options);
  s_->model.module->to(s_->options.device);

  for (const auto& item : s_->model.module->named_parameters(true)) {
    if (item.value().requires_grad()) {
      s_->params.push_back(item.value());
    }
  }
  s_->optimizer = make_optimizer(
      *s_->model.module, s_->options.optimizer, s_->options.schedule.base_lr);
  if (s_->options.parallel) {
    s_->options.parallel->attach(*s_->model.module);
  }
}

Trainer::~Trainer() = default;

double Trainer::best_value() const {
  return s_->best_value;
}
int64_t Trainer::best_epoch() const {
  return s_->best_epoch;
}
int64_t Trainer::epoch() const {
  return s_->epoch;
}
int64_t Trainer::step() const {
  return s_->step;
}
torch::optim::Optimizer& Trainer::optimizer() {
  return *s_->optimizer;
}
const models::Model& Trainer::model() const {
  return s_->model;
}

namespace {

// The schedule as the checkpoint's "schedule" section, keyed by the train
// flags that set each value (for resume's message).
nlohmann::json schedule_json(const Schedule& s) {
  const char* kinds[] = {"constant", "step", "cosine"};
  return {
      {"--schedule", kinds[static_cast<int>(s.kind)]},
      {"--lr", s.base_lr},
      {"--warmup", s.warmup_epochs},
      {"--milestones", s.milestones},
      {"gamma", s.gamma},
      {"min_lr", s.min_lr},
      {"--epochs", s.total_epochs}};
}

// `epoch_lines` with the step lines of the log file at `path` (if any) whose
// step is at most `last_step`, ordered by step, a step line before the epoch
// line of the same step. Unreadable lines (a kill mid-append) are dropped.
std::string merged_log(
    const std::vector<std::string>& epoch_lines,
    const std::string& path,
    int64_t last_step) {
  std::vector<std::pair<int64_t, std::string>> steps;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("kind", "") == "step" && j.contains("step") &&
        j["step"].is_number_integer() &&
        j["step"].get<int64_t>() <= last_step) {
      steps.emplace_back(j["step"].get<int64_t>(), line);
    }
  }
  std::string text;
  size_t next = 0;
  for (const auto& l : epoch_lines) {
    const int64_t end = nlohmann::json::parse(l).value("step", int64_t(0));
    for (; next < steps.size() && steps[next].first <= end; ++next) {
      text += steps[next].second + "\n";
    }
    text += l + "\n";
  }
  for (; next < steps.size(); ++next) {
    text += steps[next].second + "\n";
  }
  return text;
}

} // namespace

void Trainer::save_checkpoint(const std::string& path) const {
  CheckpointMeta meta;
  meta.epoch = s_->epoch;
  meta.step = s_->step;
  meta.network = s_->model.spec;
  meta.sections = s_->options.checkpoint_sections;
  meta.sections["schedule"] = schedule_json(s_->options.schedule).dump();
  std::string lines = "[";
  for (const auto& l : s_->log_lines) {
    lines += (lines.size() > 1 ? "," : "") + l;
  }
  meta.sections["log"] = lines + "]";
  if (!std::isnan(s_->best_value)) {
    meta.sections["best"] = nlohmann::json{
        {"metric", s_->options.best_metric},
        {"value", s_->best_value},
        {"epoch", s_->best_epoch},
        {"file",
         std::filesystem::path(s_->options.best_checkpoint_path)
             .filename()
             .string()}}.dump();
  }
  meta.rng_state = cpu_rng_state();
  write_checkpoint(path, *s_->model.module, meta, s_->optimizer.get());
}

void Trainer::resume(const std::string& path) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  const std::string diff = models::difference(meta.network, s_->model.spec);
  if (!diff.empty()) {
    throw std::runtime_error(
        "cannot resume from '" + path + "': it holds another network (" + diff +
        ")");
  }
  const auto saved = meta.sections.find("schedule");
  if (saved != meta.sections.end() && !s_->options.allow_schedule_change) {
    const auto was = nlohmann::json::parse(saved->second);
    const auto now = schedule_json(s_->options.schedule);
    std::string diffs;
    for (const auto& [key, value] : now.items()) {
      if (was.contains(key) && was[key] != value) {
        diffs += (diffs.empty() ? "" : ", ") + key + " " + was[key].dump() +
                 " then, " + value.dump() + " now";
      }
    }
    if (!diffs.empty()) {
      throw std::runtime_error(
          "cannot resume from '" + path + "' under another schedule (" + diffs +
          "): repeat the run's flags to continue it exactly, or give "
          "--reschedule to follow the new schedule from step " +
          std::to_string(meta.step));
    }
  }
  load_checkpoint_weights(path, s_->model);
  load_checkpoint_optimizer(path, *s_->optimizer);
  // Loading goes through the CPU; put the state back where training runs.
  s_->model.module->to(s_->options.device);
  s_->epoch = meta.epoch;
  s_->step = meta.step;
  // Ranks start from one generator state and draw alike, so rank 0's state
  // (the one saved) is every rank's.
  if (meta.rng_state.defined()) {
    set_cpu_rng_state(meta.rng_state);
  }
  const auto best = meta.sections.find("best");
  if (best != meta.sections.end()) {
    const auto b = nlohmann::json::parse(best->second);
    if (b.value("metric", std::string()) == s_->options.best_metric &&
        b.contains("value") && b["value"].is_number()) {
      s_->best_value = b["value"].get<double>();
      s_->best_epoch = b.value("epoch", int64_t(0));
    }
  }
  s_->log_lines.clear();
  const auto log = meta.sections.find("log");
  if (log != meta.sections.end()) {
    for (const auto& line : nlohmann::json::parse(log->second)) {
      s_->log_lines.push_back(line.dump());
    }
  }
  if (!s_->options.log_path.empty() && s_->is_main() &&
      log != meta.sections.end()) {
    // The log as of the checkpoint: lines a kill lost come back, lines of an
    // epoch after the checkpoint (which resuming redoes) go. Step lines are
    // not in the checkpoint: those of the file up to its step stay, in
    // order before the epoch line that ends them.
    write_file_atomically(
        s_->options.log_path,
        merged_log(s_->log_lines, s_->options.log_path, meta.step));
  }
  if (s_->options.parallel) {
    s_->options.parallel->after_resume(*s_->model.module, s_->step);
  }
}

EpochSummary Trainer::train_epoch(Loader& loader) {
  State& s = *s_;
  const TrainerOptions& o = s.options;
  ParallelHooks* parallel = o.parallel.get();
  const bool is_main = s.is_main();
  EpochSummary sum;
  sum.epoch = s.epoch;
  const int64_t steps = loader.batches_in_epoch(s.epoch);
  if (steps < 1) {
    throw std::runtime_error(
        "epoch " + std::to_string(s.epoch) + " has no batches (" +
        loader.dataset().describe() + ")");
  }
  s.model.module->train();
  loader.start_epoch(s.epoch);
  const auto t0 = Clock::now();
  auto last_print = t0;
  double loss_sum = 0, norm_sum = 0;
  int64_t step_in_epoch = 0;
  // Since the last step line.
  double line_loss = 0;
  int64_t line_steps = 0, line_samples = 0;
  auto line_start = t0;
  while (auto batch = loader.next()) {
    at::Tensor input = batch->input.to(o.device);
    at::Tensor target = batch->target.to(o.device);
    const double lr = o.schedule.lr_at(s.step, steps);
    for (auto& group : s.optimizer->param_groups()) {
      group.options().set_lr(lr);
    }
    s.optimizer->zero_grad();
    if (parallel) {
      parallel->begin_step();
    }
    at::Tensor loss = s.loss(s.model.forward(input), target);
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      throw std::runtime_error(
          "loss is " + std::to_string(loss_value) + " at epoch " +
          std::to_string(s.epoch) + " step " + std::to_string(s.step));
    }
    loss.backward();
    if (parallel) {
      parallel->finish_gradients(*s.model.module);
    }
    if (o.after_backward) {
      o.after_backward(*s.model.module);
    }
    // max_norm = inf measures the norm without clipping.
    const double max_norm = o.clip_grad_norm > 0
                                ? o.clip_grad_norm
                                : std::numeric_limits<double>::infinity();
    norm_sum += torch::nn::utils::clip_grad_norm_(s.params, max_norm);
    s.optimizer->step();
    if (o.after_step) {
      o.after_step(*s.model.module);
    }
    s.step++;
    step_in_epoch++;
    loss_sum += loss_value;
    sum.samples += input.size(0);
    sum.lr = lr;
    line_loss += loss_value;
    line_steps++;
    line_samples += input.size(0);
    if (o.log_steps_every > 0 && step_in_epoch % o.log_steps_every == 0 &&
        !o.log_path.empty() && is_main) {
      StepRecord r;
      r.epoch = s.epoch;
      r.step = s.step;
      r.step_in_epoch = step_in_epoch;
      r.steps_in_epoch = steps;
      r.loss = line_loss / static_cast<double>(line_steps);
      r.lr = lr;
      r.samples_per_second = static_cast<double>(line_samples) /
                             std::max(1e-9, seconds_since(line_start));
      r.seconds = seconds_since(t0);
      append_line(o.log_path, step_log_line(r));
      line_loss = 0;
      line_steps = line_samples = 0;
      line_start = Clock::now();
    }

    if (o.progress && is_main) {
      const bool last = step_in_epoch == steps;
      const bool due = o.progress_is_terminal
                           ? seconds_since(last_print) >= 0.2 || last
                           : (o.progress_every > 0 &&
                              step_in_epoch % o.progress_every == 0) ||
                                 last;
      if (due) {
        last_print = Clock::now();
        ProgressState p;
        p.epoch = s.epoch;
        p.epochs = o.epochs;
        p.step_in_epoch = step_in_epoch;
        p.steps_in_epoch = steps;
        p.loss = loss_sum / static_cast<double>(step_in_epoch);
        p.lr = lr;
        p.elapsed_seconds = seconds_since(t0);
        p.samples_per_second = static_cast<double>(sum.samples) /
                               std::max(1e-9, p.elapsed_seconds);
        p.loader_samples_per_second = loader.stats().samples_per_second();
        const double per_step =
            p.elapsed_seconds / static_cast<double>(step_in_epoch);
        p.eta_seconds = per_step * static_cast<double>(
                                       (steps - step_in_epoch) +
                                       (o.epochs - s.epoch - 1) * steps);
        if (o.progress_is_terminal) {
          *o.progress << '\r' << format_progress(p, /*bar_width=*/24)
                      << "\x1b[K" << std::flush;
        } else {
          *o.progress << format_progress(p, /*bar_width=*/0) << '\n'
                      << std::flush;
        }
      }
    }
  }
  if (o.progress && o.progress_is_terminal && is_main) {
    *o.progress << '\n' << std::flush;
  }
  sum.steps = step_in_epoch;
  sum.seconds = seconds_since(t0);
  sum.mean_loss =
      step_in_epoch ? loss_sum / static_cast<double>(step_in_epoch) : 0;
  sum.mean_grad_norm =
      step_in_epoch ? norm_sum / static_cast<double>(step_in_epoch) : 0;
  sum.samples_per_second =
      static_cast<double>(sum.samples) / std::max(1e-9, sum.seconds);
  const LoaderStats ls = loader.stats();
  sum.loader_samples_per_second = ls.samples_per_second();
  sum.loader_wait_seconds = ls.wait_seconds;
  sum.warnings = loader.take_warnings();
  if (parallel) {
    // Every rank took the same number of steps (the distributed sampler
    // gives them equal shares).
    const std::vector<double> all = parallel->sum(
        {sum.mean_loss,
         static_cast<double>(sum.samples),
         sum.mean_grad_norm,
         1.0});
    const double ranks = all[3];
    sum.mean_loss = all[0] / ranks;
    sum.samples = static_cast<int64_t>(all[1]);
    sum.mean_grad_norm = all[2] / ranks;
    sum.samples_per_second =
        static_cast<double>(sum.samples) / std::max(1e-9, sum.seconds);
    parallel->end_epoch(*s.model.module);
  }
  s.epoch++;
  sum.step = s.step;
  sum.skipped = static_cast<int64_t>(sum.warnings.size());

  const bool validate_now =
      o.validate && o.validate_every > 0 &&
      (s.epoch % o.validate_every == 0 || s.epoch == o.epochs);
  if (validate_now) {
    s.model.module->eval();
    sum.metrics = o.validate(sum.epoch);
    s.model.module->train();
  }
  const std::string line = log_line(sum);
  s.log_lines.push_back(line);
  const auto metric = sum.metrics.find(o.best_metric);
  const bool better =
      !o.best_checkpoint_path.empty() && metric != sum.metrics.end() &&
      !std::isnan(metric->second) &&
      (std::isnan(s.best_value) || metric->second > s.best_value);
  if (better) {
    s.best_value = metric->second;
    s.best_epoch = s.epoch;
    // Before the checkpoint that records it: a kill in between leaves a
    // checkpoint naming the previous best, and resuming redoes this epoch.
    if (is_main) {
      save_checkpoint(o.best_checkpoint_path);
    }
  }
  if (!o.checkpoint_path.empty() && is_main) {
    save_checkpoint(o.checkpoint_path);
  }
  if (!o.log_path.empty() && is_main) {
    append_line(o.log_path, line);
  }
  if (o.on_epoch && is_main) {
    o.on_epoch(sum, better);
  }
  return sum;
}

std::vector<EpochSummary> Trainer::fit(Loader& loader) {
  std::vector<EpochSummary> out;
  while (s_->epoch < s_->options.epochs) {
    out.push_back(train_epoch(loader));
  }
  return out;
}

} // namespace cakes::train
