// A multi-threaded batch loader over a cakes::data::Dataset.
//
// Determinism: the rng handed to Dataset::get for sample `index` in epoch `e`
// is seeded from (seed, e, index) alone, the epoch's order is a permutation
// seeded from (seed, e), and batches are delivered in order; so the batches are
// identical whatever the number of workers, and an epoch can be replayed on
// resume without any loader state.
#pragma once

#include "cakes/data/dataset.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cakes::train {

// Which dataset indices an epoch visits and in which order. The default
// visits a fixed subset (all indices unless given) in a seeded random order;
// a distributed sampler returns this rank's share of the epoch instead.
class Sampler {
public:
  virtual ~Sampler() = default;
  virtual std::vector<int64_t> indices(int64_t epoch) const = 0;
};

class SubsetSampler : public Sampler {
public:
  // Indices 0..size-1.
  SubsetSampler(int64_t size, bool shuffle, uint64_t seed);
  // The given indices (each must be in range of the dataset; the loader
  // checks). With shuffle, their order is permuted per epoch.
  SubsetSampler(std::vector<int64_t> subset, bool shuffle, uint64_t seed);
  std::vector<int64_t> indices(int64_t epoch) const override;

private:
  std::vector<int64_t> subset_;
  bool shuffle_;
  uint64_t seed_;
};

// A deterministic 64-bit mix of (seed, a, b) (splitmix64 rounds); the loader
// seeds sample rngs with mix_seed(seed, epoch, index).
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b);

// Fisher–Yates with our own bounded draws, so the order does not depend on the
// standard library's distribution implementation.
void seeded_shuffle(std::vector<int64_t>& v, uint64_t seed);

struct LoaderOptions {
  int64_t batch_size = 1;
  // 0 loads on the consumer's thread; n > 0 starts n std::thread workers.
  int num_workers = 0;
  // Batches loaded ahead of the consumer (bounds memory); at least 1.
  int prefetch_batches = 4;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  // false: the first failing sample ends the epoch with its one-line message
  // rethrown by next(). true: the sample is left out of its batch and the
  // message is kept in take_warnings().
  bool skip_bad_samples = false;
};

struct Batch {
  at::Tensor input;             // samples' inputs stacked on a new dim 0
  at::Tensor target;            // samples' targets stacked on a new dim 0
  std::vector<int64_t> indices; // dataset indices, in batch order
};

struct LoaderStats {
  int64_t samples = 0;     // samples loaded in the current epoch so far
  double load_seconds = 0; // summed over workers: time spent loading
  double wait_seconds = 0; // consumer time blocked in next()
  int num_workers = 0;
  // What the loader could deliver if never held back by the consumer:
  // samples / load_seconds * max(1, num_workers). 0 before the first batch.
  double samples_per_second() const;
};

class Loader {
public:
  // Dataset::get must be safe to call concurrently (it is const). Without a
  // sampler, SubsetSampler(dataset->size(), options.shuffle, options.seed).
  Loader(
      std::shared_ptr<const data::Dataset> dataset,
      LoaderOptions options,
      std::shared_ptr<const Sampler> sampler = nullptr);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Number of batches epoch `epoch` yields (before any skipped samples).
  int64_t batches_in_epoch(int64_t epoch) const;
  int64_t samples_in_epoch(int64_t epoch) const;

  // Starts (or restarts) epoch `epoch`; any running epoch is stopped first.
  void start_epoch(int64_t epoch);
  // The next batch of the started epoch in order; nullopt at its end. Throws
  // std::runtime_error with the sample's one-line message when a sample
  // failed (and skip_bad_samples is off); the epoch is then stopped.
  std::optional<Batch> next();

  LoaderStats stats() const;
  // Warnings about skipped samples since the last call, oldest first.
  std::vector<std::string> take_warnings();

  const LoaderOptions& options() const {
    return options_;
  }
  const data::Dataset& dataset() const {
    return *dataset_;
  }

private:
  struct Epoch;
  std::shared_ptr<const data::Dataset> dataset_;
  LoaderOptions options_;
  std::shared_ptr<const Sampler> sampler_;
  std::unique_ptr<Epoch> epoch_;
};

} // namespace cakes::train
