// The loader against a stand-in dataset whose samples depend on the rng it is
// given and whose load times vary, so workers finish out of order.
#include "cakes/train/loader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>

namespace {

using cakes::train::Batch;
using cakes::train::Loader;
using cakes::train::LoaderOptions;

class ToyDataset : public cakes::data::Dataset {
public:
  explicit ToyDataset(int64_t n, std::set<int64_t> bad = {})
      : n_(n), bad_(std::move(bad)) {}
  int64_t size() const override {
    return n_;
  }
  cakes::data::Sample get(int64_t index, std::mt19937_64& rng) const override {
    if (bad_.count(index)) {
      throw std::runtime_error(
          "cannot decode '/data/video_" + std::to_string(index) +
          ".mp4': truncated");
    }
    // Uneven load times: later-claimed batches often finish first.
    std::this_thread::sleep_for(
        std::chrono::microseconds((index * 7 % 5) * 300));
    std::uniform_real_distribution<float> u(0, 1);
    cakes::data::Sample s;
    s.input = at::full({2, 3}, static_cast<float>(index)) + u(rng);
    s.target = at::scalar_tensor(index % 3, at::kLong);
    return s;
  }

private:
  int64_t n_;
  std::set<int64_t> bad_;
};

std::vector<Batch> run_epoch(Loader& loader, int64_t epoch) {
  std::vector<Batch> out;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) {
    out.push_back(std::move(*b));
  }
  return out;
}

TEST(Loader, SameBatchesWhateverTheWorkerCount) {
  auto ds = std::make_shared<ToyDataset>(23);
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.num_workers = workers;
    o.prefetch_batches = 2;
    o.seed = 42;
    Loader loader(ds, o);
    for (int64_t epoch : {0, 1}) {
      runs.push_back(run_epoch(loader, epoch));
    }
  }
  ASSERT_EQ(runs.size(), 6u);
  for (size_t r = 2; r < runs.size(); ++r) {
    const auto& a = runs[r % 2];
    const auto& b = runs[r];
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].indices, b[i].indices) << "run " << r << " batch " << i;
      EXPECT_TRUE(at::equal(a[i].input, b[i].input))
          << "run " << r << " batch " << i;
      EXPECT_TRUE(at::equal(a[i].target, b[i].target));
    }
  }
  // Stacked shapes; the last batch is short (23 = 5*4 + 3).
  EXPECT_EQ(runs[0].size(), 6u);
  EXPECT_EQ(runs[0][0].input.sizes(), (at::IntArrayRef{4, 2, 3}));
  EXPECT_EQ(runs[0][0].target.sizes(), (at::IntArrayRef{4}));
  EXPECT_EQ(runs[0].back().input.size(0), 3);
  // The rng differs per epoch: same index, different noise.
  auto noise_of = [](const std::vector<Batch>& epoch, int64_t index) {
    for (const auto& b : epoch)
      for (size_t j = 0; j < b.indices.size(); ++j)
        if (b.indices[j] == index)
          return b.input[static_cast<int64_t>(j)][0][0].item<float>() - index;
    return -1.0f;
  };
  EXPECT_NE(noise_of(runs[0], 5), noise_of(runs[1], 5));
}

TEST(Loader, EveryIndexOncePerEpochShuffledAndDropLast) {
  auto ds = std::make_shared<ToyDataset>(30);
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = 2;
  o.seed = 7;
  Loader loader(ds, o);
  std::vector<int64_t> orders[2];
  for (int64_t epoch : {0, 1}) {
    for (const auto& b : run_epoch(loader, epoch)) {
      orders[epoch].insert(
          orders[epoch].end(), b.indices.begin(), b.indices.end());
    }
    std::vector<int64_t> sorted = orders[epoch];
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(30);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(sorted, all) << "epoch " << epoch;
  }
  EXPECT_NE(orders[0], orders[1]); // reshuffled per epoch

  o.drop_last = true;
  Loader dropping(ds, o);
  auto batches = run_epoch(dropping, 0);
  EXPECT_EQ(dropping.batches_in_epoch(0), 7);
  ASSERT_EQ(batches.size(), 7u);
  for (const auto& b : batches) {
    EXPECT_EQ(b.indices.size(), 4u);
  }
  EXPECT_GT(dropping.stats().samples_per_second(), 0);
  EXPECT_EQ(dropping.stats().samples, 28);
}

TEST(Loader, SubsetSamplerVisitsOnlyItsIndices) {
  auto ds = std::make_shared<ToyDataset>(20);
  LoaderOptions o;
  o.batch_size = 3;
  o.num_workers = 2;
  std::vector<int64_t> subset = {1, 3, 5, 7, 11, 19};
  Loader loader(
      ds, o, std::make_shared<cakes::train::SubsetSampler>(subset, true, 3));
  std::set<int64_t> seen;
  for (const auto& b : run_epoch(loader, 0)) {
    seen.insert(b.indices.begin(), b.indices.end());
  }
  EXPECT_EQ(seen, std::set<int64_t>(subset.begin(), subset.end()));

  Loader bad(
      ds,
      o,
      std::make_shared<cakes::train::SubsetSampler>(
          std::vector<int64_t>{0, 20}, false, 0));
  EXPECT_THROW(bad.start_epoch(0), std::out_of_range);
}

TEST(Loader, WorkerErrorReachesConsumerAsTheSameLine) {
  auto ds = std::make_shared<ToyDataset>(40, std::set<int64_t>{17});
  for (int workers : {0, 3}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.num_workers = workers;
    o.shuffle = false;
    Loader loader(ds, o);
    loader.start_epoch(0);
    int64_t batches = 0;
    try {
      while (loader.next()) {
        ++batches;
      }
      FAIL() << "no error with " << workers << " workers";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "cannot decode '/data/video_17.mp4': truncated");
    }
    EXPECT_EQ(batches, 4); // batches 0..3 came through, batch 4 holds 17
    EXPECT_FALSE(loader.next().has_value()); // the epoch is stopped
  }
}

TEST(Loader, SkipsBadSamplesWithAWarningWhenAsked) {
  auto ds = std::make_shared<ToyDataset>(12, std::set<int64_t>{2, 4, 5, 6, 7});
  LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = 2;
  o.shuffle = false;
  o.skip_bad_samples = true;
  Loader loader(ds, o);
  std::vector<int64_t> seen;
  for (const auto& b : run_epoch(loader, 0)) {
    EXPECT_EQ(b.input.size(0), static_cast<int64_t>(b.indices.size()));
    seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  }
  // Batch {4,5,6,7} is entirely bad and is left out.
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 3, 8, 9, 10, 11}));
  auto warnings = loader.take_warnings();
  ASSERT_EQ(warnings.size(), 5u);
  EXPECT_EQ(
      warnings[0],
      "skipped sample 2: cannot decode '/data/video_2.mp4': truncated");
  EXPECT_TRUE(loader.take_warnings().empty());
}

TEST(Loader, ShuffleIsAPermutationAndSeedDependent) {
  std::vector<int64_t> a(50), b;
  std::iota(a.begin(), a.end(), 0);
  b = a;
  cakes::train::seeded_shuffle(a, 1);
  cakes::train::seeded_shuffle(b, 2);
  EXPECT_NE(a, b);
  std::sort(a.begin(), a.end());
  for (int64_t i = 0; i < 50; ++i) {
    EXPECT_EQ(a[static_cast<size_t>(i)], i);
  }
}

} // namespace
