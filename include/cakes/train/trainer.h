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

#include "cakes/train/loader.h"
#include "cakes/train/schedule.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace cakes::train {

// A model seen through what training needs. `network` names the architecture
// and configuration (e.g. "i3d_r50 3x3x3:22,1x3x3:21,3x1x1:21"); checkpoints
// record it and refuse to load into another.
struct Model {
  std::shared_ptr<torch::nn::Module> module;
  std::function<at::Tensor(const at::Tensor&)> forward;
  std::string network;
};

// From any TORCH_MODULE holder whose Impl has forward(Tensor) -> Tensor.
template <class Holder> Model make_model(Holder holder, std::string network) {
  Model m;
  m.module = holder.ptr();
  m.forward = [holder](const at::Tensor& x) mutable {
    return holder->forward(x);
  };
  m.network = std::move(network);
  return m;
}

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

enum class OptimizerKind { sgd, adamw };
// "sgd", "adamw"; throws std::invalid_argument otherwise.
OptimizerKind parse_optimizer_kind(const std::string& text);

struct OptimizerSettings {
  OptimizerKind kind = OptimizerKind::sgd;
  double momentum = 0.9;      // sgd
  bool nesterov = false;      // sgd
  double weight_decay = 3e-4; // applied to the "decay" group only
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8; // adamw
};

// Parameters split for weight decay: tensors of dim <= 1 (BatchNorm scales
// and shifts, biases) or named "*bias" get none (SPEC §4).
struct ParameterSplit {
  std::vector<std::string> decay;
  std::vector<std::string> no_decay;
};
ParameterSplit split_for_weight_decay(const torch::nn::Module& module);

struct EpochSummary {
  int64_t epoch = 0; // 0-based
  int64_t steps = 0; // steps in this epoch
  int64_t samples = 0;
  double mean_loss = 0;
  double lr = 0;             // rate of the last step
  double mean_grad_norm = 0; // before clipping
  double seconds = 0;
  double samples_per_second = 0;        // consumed by training
  double loader_samples_per_second = 0; // loader capacity (LoaderStats)
  double loader_wait_seconds = 0;
  std::map<std::string, double> metrics; // from TrainerOptions::validate
  std::vector<std::string> warnings;     // skipped samples
};

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
  double clip_grad_norm = 0; // 0: no clipping (SPEC §4 uses 20)
  // Written after every epoch when non-empty.
  std::string checkpoint_path;
  // One JSON object per epoch appended when non-empty (a resumed run appends).
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
  // Data-parallel training (cakes/dist/data_parallel.h); null: one process.
  // With it, EpochSummary::samples and mean_loss are over all ranks, while
  // progress lines show the main rank's own figures. validate runs on every
  // rank.
  std::shared_ptr<ParallelHooks> parallel;
};

class Trainer {
public:
  Trainer(Model model, LossFn loss, TrainerOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Restores weights, buffers, optimizer state, epoch, step and the RNG from a
  // checkpoint. Throws std::runtime_error naming the file when unreadable and
  // naming both networks when it was written for another network.
  void resume(const std::string& checkpoint_path);

  // Trains epoch `epoch()` with `loader`, then validates, logs and writes the
  // checkpoint. Throws std::runtime_error on a non-finite loss (naming epoch
  // and step) and rethrows loader errors.
  EpochSummary train_epoch(Loader& loader);
  // train_epoch until options.epochs are complete.
  std::vector<EpochSummary> fit(Loader& loader);

  void save_checkpoint(const std::string& path) const;

  int64_t epoch() const; // completed epochs
  int64_t step() const;  // optimizer steps taken
  torch::optim::Optimizer& optimizer();
  const Model& model() const;

private:
  struct State;
  std::unique_ptr<State> s_;
};

} // namespace cakes::train
