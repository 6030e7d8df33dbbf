// Data-parallel training: what PyTorch's DistributedDataParallel does, for
// the cakes Trainer (TrainerOptions::parallel).
//
//  - attach: every parameter and buffer takes rank 0's value, so all ranks
//    start from the same model whatever their seeds.
//  - gradients: parameters are grouped into buckets of about bucket_mb
//    (in reverse registration order, roughly the order backward produces
//    them). A hook on each parameter copies its gradient into its bucket as
//    soon as autograd has it; a full bucket's all-reduce starts at once
//    (buckets start strictly in order, so every rank issues the same
//    collectives in the same order) while backward goes on. finish_gradients
//    waits for them and sets every gradient to the mean over ranks. A
//    parameter that got no gradient in a step counts as zero (it then has a
//    zero gradient, not none). One backward per step: gradient accumulation
//    over several backward calls is not supported.
//  - end of epoch: buffers (BatchNorm running statistics) take rank 0's
//    value, so evaluation and the checkpoint agree on every rank.
//  - resume: every rank reads the same checkpoint file (a shared file system
//    or a copy per machine); after_resume checks that all ranks loaded the
//    same step and throws otherwise.
#pragma once

#include "cakes/dist/context.h"
#include "cakes/nn/norm.h"
#include "cakes/train/trainer.h"

#include <memory>

namespace torch::nn {
class Module;
} // namespace torch::nn

namespace cakes::dist {

struct DataParallelOptions {
  double bucket_mb = 25; // bucket capacity in MiB
};

class DataParallel : public train::ParallelHooks {
public:
  explicit DataParallel(
      std::shared_ptr<Context> context, DataParallelOptions options = {});
  ~DataParallel() override;

  void attach(torch::nn::Module& module) override;
  void begin_step() override;
  void finish_gradients(torch::nn::Module& module) override;
  void end_epoch(torch::nn::Module& module) override;
  void after_resume(torch::nn::Module& module, int64_t step) override;
  std::vector<double> sum(std::vector<double> values) override;
  bool is_main() const override;

  int64_t bucket_count() const;
  // Buckets whose all-reduce started during the last backward (the others
  // started in finish_gradients); shows how much communication overlapped.
  int64_t buckets_started_in_backward() const;

private:
  struct State;
  std::shared_ptr<Context> context_;
  DataParallelOptions options_;
  std::shared_ptr<State> state_; // shared with the gradient hooks
};

// Every parameter and buffer of `module` takes rank 0's value.
void broadcast_module(Context& context, torch::nn::Module& module);

// Batch normalisation with the batch statistics of all ranks together (a
// Norm, nn/norm.h: give it to the network when building it, e.g.
// models::BuildOptions::norm, and every layer uses it). In training mode the
// mean and variance (and so the running statistics) are over the union of
// the ranks' batches, and backward all-reduces the two per-channel sums the
// input gradient needs, so W ranks with batch B compute what one process
// computes with batch W * B. In evaluation mode it is batch_norm(). Throws
// like the collectives, and std::invalid_argument when a channel has only one
// value over all ranks in training mode. Every rank must normalise the same
// layers in the same order (as their forwards do).
nn::NormPtr sync_batch_norm(std::shared_ptr<Context> context);

} // namespace cakes::dist
