// The training loop: optimizer with parameter groups, warm-up + step/cosine
// schedule, gradient-norm clipping, per-epoch atomic checkpoints, exact resume,
// a JSONL log and progress output to a stream the caller provides.
//
// Exact resume: the loader's batches are a function of (seed, epoch), the rate
// a function of the step (schedule.h), and the checkpoint holds the weights,
// buffers, optimizer state, epoch, step and LibTorch's CPU generator state; so
// k epochs + resume + (N-k) epochs gives the weights of N epochs straight
// (bitwise, with the same thread count).
#pragma once

#include "cakes/models/model.h"
#include "cakes/train/loader.h"
#include "cakes/train/log.h"
#include "cakes/train/optimizer.h"
#include "cakes/train/schedule.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cakes::train {

// Data-parallel training plugs in here (cakes::dist::DataParallel). Every
// rank runs the same Trainer calls in the same order; the hooks do the
// communication.
class ParallelHooks {
public:
  virtual ~ParallelHooks() = default;
  // Once, from the Trainer's constructor, with the model on its device
  // (e.g. take rank 0's weights, register gradient hooks).
  virtual void attach(torch::nn::Module& module) = 0;
  // Before each step's forward and backward.
  virtual void begin_step() = 0;
  // After backward, before after_backward, clipping and the step: the
  // gradients must then be the average over ranks.
  virtual void finish_gradients(torch::nn::Module& module) = 0;
  // At the end of each epoch, before validation and the checkpoint.
  virtual void end_epoch(torch::nn::Module& module) = 0;
  // After Trainer::resume loaded `step` (e.g. check all ranks agree).
  virtual void after_resume(torch::nn::Module& module, int64_t step) = 0;
  // Element-wise sum over ranks (the epoch summary's loss and samples).
  virtual std::vector<double> sum(std::vector<double> values) = 0;
  // Only the main rank shows progress, appends to the log and writes
  // checkpoints.
  virtual bool is_main() const = 0;
};

// (model output, batch target) -> scalar loss.
using LossFn = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;

// What a progress line shows; the printer and tests use it.
struct ProgressState {
  int64_t epoch = 0, epochs = 1;
  int64_t step_in_epoch = 0, steps_in_epoch = 1;
  double loss = 0, lr = 0;
  double samples_per_second = 0, loader_samples_per_second = 0;
  double elapsed_seconds = 0; // in this epoch
  double eta_seconds = 0;     // to the end of training
};
// "epoch 3/70 [#####.....] 120/240 loss 1.2345 lr 0.0400 12.3 samples/s
// (loader 45.6) ETA 1h02m". `bar_width` 0 leaves the bar out.
std::string format_progress(const ProgressState& s, int bar_width);

struct TrainerOptions {
  int64_t epochs = 1; // train until this many epochs are complete
  OptimizerSettings optimizer;
  Schedule schedule; // schedule.total_epochs is taken from `epochs` if 0
  // Checkpoints record the schedule; resume() refuses a checkpoint written
  // under another one (a changed --epochs re-stretches a cosine schedule and
  // sends the learning rate back up) unless this is set.
  bool allow_schedule_change = false;
  double clip_grad_norm = 0; // 0: no clipping (docs/CAKES.md §4 uses 20)
  // Written after every epoch when non-empty (train/checkpoint.h), with these
  // extra sections in its metadata (name -> JSON text).
  std::string checkpoint_path;
  std::map<std::string, std::string> checkpoint_sections;
  // One JSON object per epoch appended when non-empty (a resumed run
  // appends); train/log.h reads it.
  std::string log_path;
  c10::Device device = c10::Device(c10::kCPU);
  // Progress goes here when non-null: a redrawn bar with '\r' when
  // `progress_is_terminal` (the CLI checks isatty), else a plain line every
  // `progress_every` steps and at each epoch end.
  std::ostream* progress = nullptr;
  bool progress_is_terminal = false;
  int64_t progress_every = 50;
  // Called after backward, before clipping and the step (e.g. the search's L1
  // sub-gradient on BatchNorm scales).
  std::function<void(torch::nn::Module&)> after_backward;
  // Called after each optimizer step (e.g. the performance-priority search
  // puts back what the step did to channels outside its subset).
  std::function<void(torch::nn::Module&)> after_step;
  // Called after each epoch (model in eval mode); the values join the summary
  // and the log.
  std::function<std::map<std::string, double>(int64_t epoch)> validate;
  // validate runs after every `validate_every`-th epoch and after the last
  // one (0: never), so the final checkpoint always has a validation.
  int64_t validate_every = 1;
  // When non-empty: the checkpoint of the epoch with the largest
  // `best_metric` (a key of validate's map, e.g. "val_top1") so far, written
  // atomically before that epoch's checkpoint_path, with the same sections.
  // Both record it in their "best" section
  //   {"metric": "val_dice", "value": 0.71, "epoch": 3, "file": "best.pt"}
  // (epoch: completed epochs, as printed), which resume() reads back, so a
  // resumed run only replaces it with a better one. A NaN value never wins.
  std::string best_checkpoint_path;
  std::string best_metric;
  // Every `log_steps_every` steps of an epoch (0: never) a step line
  // (train/log.h) is appended to log_path as it happens.
  int64_t log_steps_every = 0;
  // Called on the main rank when an epoch is done: validated, checkpointed
  // and logged (e.g. to print its line as it ends); new_best: it was written
  // to best_checkpoint_path.
  std::function<void(const EpochSummary&, bool new_best)> on_epoch;
  // Data-parallel training (cakes/dist/data_parallel.h); null: one process.
  // With it, EpochSummary::samples and mean_loss are over all ranks, while
  // progress lines show the main rank's own figures. validate runs on every
  // rank.
  std::shared_ptr<ParallelHooks> parallel;
};

class Trainer {
public:
  Trainer(models::Model model, LossFn loss, TrainerOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Restores weights, buffers, optimizer state, epoch, step and the RNG from a
  // checkpoint. Throws std::runtime_error naming the file when unreadable and
  // naming the difference when it was written for another network.
  void resume(const std::string& checkpoint_path);

  // Trains epoch `epoch()` with `loader`, then validates, logs and writes the
  // checkpoint. Throws std::runtime_error on a non-finite loss (naming epoch
  // and step) and rethrows loader errors.
  EpochSummary train_epoch(Loader& loader);
  // train_epoch until options.epochs are complete.
  std::vector<EpochSummary> fit(Loader& loader);

  void save_checkpoint(const std::string& path) const;

  // The best validation so far (TrainerOptions::best_metric): its value
  // (NaN when none yet) and the completed epochs it was reached at.
  double best_value() const;
  int64_t best_epoch() const;

  int64_t epoch() const; // completed epochs
  int64_t step() const;  // optimizer steps taken
  torch::optim::Optimizer& optimizer();
  const models::Model& model() const;

private:
  struct State;
  std::unique_ptr<State> s_;
};

} // namespace cakes::train
