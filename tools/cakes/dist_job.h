// `cakes train` and `cakes search` as one process of a data-parallel job
// (docs/DISTRIBUTED.md): the flags, joining the process group, and what
// changes per rank. With a world size of 1 (no launcher, no flags) nothing is
// joined and every call below is the single-process behaviour.
//
// Batch semantics: --batch is the GLOBAL batch, the samples of one optimizer
// step over all ranks. Each of W ranks loads --batch / W of them (the
// distributed sampler's share), gradients are averaged over ranks, so one
// step is the step of one process with --batch, and the learning rate and
// schedule mean the same whatever W is.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/dist/options.h"
#include "cakes/eval/evaluate.h"
#include "cakes/models/model.h"
#include "cakes/train/loader.h"
#include "cakes/train/trainer.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace cakes::dist {
class Context;
} // namespace cakes::dist

namespace cakes::cli {

struct DistArgs {
  dist::DistFlags flags;
  bool sync_bn = false;
  double bucket_mb = 25; // gradient bucket size (DataParallelOptions)
};

// add_dist_flags (commands.h), --sync-bn and --bucket-mb.
void add_dist_options(CLI::App* command, DistArgs& args);

class DistJob {
public:
  // Reads the flags and the environment (WORLD_SIZE, RANK, ... as set by
  // `cakes launch`); connects nothing yet. Throws std::invalid_argument (one
  // line) on bad values, and when `global_batch` is not a multiple of the
  // world size.
  DistJob(const DistArgs& args, int64_t global_batch);
  ~DistJob();

  // Joins the process group (blocks until every rank is there; throws one
  // line naming the address after the timeout). A SIGTERM or SIGINT (the
  // launcher stopping the job because another rank failed) then ends this
  // process with one line and code 128 + signal. No-op for one process.
  void join();

  int rank() const;
  int world_size() const;
  bool is_main() const {
    return rank() == 0;
  }
  bool distributed() const {
    return world_size() > 1;
  }
  // This rank's share of the global batch.
  int64_t local_batch() const {
    return local_batch_;
  }
  // "rank 1 of 2: " or "" for one process, to prefix this rank's messages.
  std::string prefix() const;

  // The norm of every layer: synchronised BatchNorm with --sync-bn in a job
  // of several processes, else the default.
  models::BuildOptions build_options() const;
  // This rank's share of each epoch of a dataset of `size` samples shuffled
  // by `seed` (null for one process: the loader's own order).
  std::shared_ptr<const train::Sampler>
  sampler(int64_t size, uint64_t seed) const;
  // Trainer hooks (null for one process).
  std::shared_ptr<train::ParallelHooks> parallel() const;

  // Top-1 / top-5 over the whole dataset: rank r evaluates videos r, r + W,
  // ..., and the correct counts are summed over ranks, so every rank gets
  // the single-process result.
  eval::VideoScores evaluate_video(
      const models::Model& model,
      std::shared_ptr<const data::Dataset> dataset,
      int64_t clips,
      int64_t batch) const;
  // Dice over the whole dataset the same way: rank r evaluates cases r,
  // r + W, ..., and the Dice counts are summed over ranks.
  eval::VolumeScores evaluate_volumes(
      const models::Model& model,
      std::shared_ptr<const data::Dataset> dataset,
      const std::array<int64_t, 3>& window,
      double overlap) const;

private:
  DistArgs args_;
  dist::DistOptions options_;
  int64_t local_batch_ = 0;
  std::shared_ptr<dist::Context> context_;
  std::shared_ptr<train::ParallelHooks> parallel_;
};

} // namespace cakes::cli
