#include "cakes/train/loader.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

namespace cakes::train {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// One line: c10::Error::what() carries a backtrace after the message.
std::string one_line(const std::exception& e) {
  std::string msg;
  if (auto* c10e = dynamic_cast<const c10::Error*>(&e)) {
    msg = c10e->what_without_backtrace();
  } else {
    msg = e.what();
  }
  auto nl = msg.find('\n');
  if (nl != std::string::npos) {
    msg.resize(nl);
  }
  return msg;
}

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Loaded {
  std::optional<Batch> batch; // empty when every sample was skipped
  std::string error;          // non-empty: the batch failed
  std::vector<std::string> warnings;
  int64_t samples = 0;
  double seconds = 0;
};

Loaded load_batch(
    const data::Dataset& dataset,
    const LoaderOptions& options,
    int64_t epoch,
    const std::vector<int64_t>& indices) {
  Loaded out;
  auto t0 = Clock::now();
  std::vector<at::Tensor> inputs, targets;
  std::vector<int64_t> kept;
  for (int64_t index : indices) {
    try {
      std::mt19937_64 rng(mix_seed(
          options.seed,
          static_cast<uint64_t>(epoch),
          static_cast<uint64_t>(index)));
      data::Sample s = dataset.get(index, rng);
      inputs.push_back(std::move(s.input));
      targets.push_back(std::move(s.target));
      kept.push_back(index);
    } catch (const std::exception& e) {
      if (!options.skip_bad_samples) {
        out.error = one_line(e);
        return out;
      }
      out.warnings.push_back(
          "skipped sample " + std::to_string(index) + ": " + one_line(e));
    }
  }
  if (!kept.empty()) {
    try {
      Batch b;
      b.input = at::stack(inputs);
      b.target = at::stack(targets);
      b.indices = std::move(kept);
      out.batch = std::move(b);
    } catch (const std::exception& e) {
      out.error = "cannot collate batch of samples " +
                  std::to_string(indices.front()) + "..: " + one_line(e);
      return out;
    }
  }
  out.samples = static_cast<int64_t>(indices.size());
  out.seconds = seconds_since(t0);
  return out;
}

} // namespace

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  return splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b);
}

void seeded_shuffle(std::vector<int64_t>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) {
    // Unbiased bounded draw by rejection.
    const uint64_t n = i;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do {
      r = rng();
    } while (r >= limit);
    std::swap(v[i - 1], v[r % n]);
  }
}

SubsetSampler::SubsetSampler(int64_t size, bool shuffle, uint64_t seed)
    : shuffle_(shuffle), seed_(seed) {
  subset_.resize(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    subset_[static_cast<size_t>(i)] = i;
  }
}

SubsetSampler::SubsetSampler(
    std::vector<int64_t> subset, bool shuffle, uint64_t seed)
    : subset_(std::move(subset)), shuffle_(shuffle), seed_(seed) {}

std::vector<int64_t> SubsetSampler::indices(int64_t epoch) const {
  std::vector<int64_t> v = subset_;
  if (shuffle_) {
    seeded_shuffle(v, mix_seed(seed_, static_cast<uint64_t>(epoch), ~0ULL));
  }
  return v;
}

double LoaderStats::samples_per_second() const {
  if (load_seconds <= 0) {
    return 0;
  }
  return static_cast<double>(samples) / load_seconds * std::max(1, num_workers);
}

struct Loader::Epoch {
  int64_t number = 0;
  std::vector<std::vector<int64_t>> batches;
  std::mutex m;
  std::condition_variable work_cv, ready_cv;
  int64_t next_claim = 0;
  int64_t next_consume = 0;
  bool stop = false;
  std::map<int64_t, Loaded> ready;
  std::vector<std::thread> threads;
  LoaderStats stats;
  std::vector<std::string> warnings;

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(m);
      stop = true;
    }
    work_cv.notify_all();
    for (auto& t : threads) {
      t.join();
    }
    threads.clear();
  }
};

Loader::Loader(
    std::shared_ptr<const data::Dataset> dataset,
    LoaderOptions options,
    std::shared_ptr<const Sampler> sampler)
    : dataset_(std::move(dataset)), options_(options),
      sampler_(std::move(sampler)) {
  if (!dataset_) {
    throw std::invalid_argument("Loader: dataset is null");
  }
  if (options_.batch_size < 1) {
    throw std::invalid_argument(
        "Loader: batch_size must be >= 1, got " +
        std::to_string(options_.batch_size));
  }
  if (options_.num_workers < 0) {
    throw std::invalid_argument(
        "Loader: num_workers must be >= 0, got " +
        std::to_string(options_.num_workers));
  }
  options_.prefetch_batches = std::max(1, options_.prefetch_batches);
  if (!sampler_) {
    sampler_ = std::make_shared<SubsetSampler>(
        dataset_->size(), options_.shuffle, options_.seed);
  }
}

Loader::~Loader() {
  if (epoch_) {
    epoch_->shutdown();
  }
}

int64_t Loader::samples_in_epoch(int64_t epoch) const {
  const int64_t n = static_cast<int64_t>(sampler_->indices(epoch).size());
  return options_.drop_last ? n / options_.batch_size * options_.batch_size : n;
}

int64_t Loader::batches_in_epoch(int64_t epoch) const {
  const int64_t n = static_cast<int64_t>(sampler_->indices(epoch).size());
  return options_.drop_last
             ? n / options_.batch_size
             : (n + options_.batch_size - 1) / options_.batch_size;
}

void Loader::start_epoch(int64_t epoch) {
  if (epoch_) {
    epoch_->shutdown();
    epoch_.reset();
  }
  std::vector<int64_t> order = sampler_->indices(epoch);
  const int64_t size = dataset_->size();
  for (int64_t i : order) {
    if (i < 0 || i >= size) {
      throw std::out_of_range(
          "Loader: sampler index " + std::to_string(i) +
          " out of range for a dataset of " + std::to_string(size) +
          " samples");
    }
  }
  auto e = std::make_unique<Epoch>();
  e->number = epoch;
  e->stats.num_workers = options_.num_workers;
  const int64_t bs = options_.batch_size;
  for (size_t start = 0; start < order.size();
       start += static_cast<size_t>(bs)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(bs));
    if (options_.drop_last && static_cast<int64_t>(end - start) < bs) {
      break;
    }
    e->batches.emplace_back(order.begin() + start, order.begin() + end);
  }
  Epoch* ep = e.get();
  // Starting a thread can fail (std::system_error at --workers 100000); the
  // threads already running must then be joined, or destroying them aborts.
  auto start = [&](auto&& worker) {
    try {
      ep->threads.emplace_back(std::forward<decltype(worker)>(worker));
    } catch (const std::system_error& err) {
      const size_t started = ep->threads.size();
      ep->shutdown();
      throw std::runtime_error(
          "Loader: cannot start worker thread " + std::to_string(started + 1) +
          " of " + std::to_string(options_.num_workers) + " (" + err.what() +
          "); use fewer workers");
    }
  };
  for (int w = 0; w < options_.num_workers; ++w) {
    start([this, ep] {
      const int64_t n = static_cast<int64_t>(ep->batches.size());
      while (true) {
        int64_t b;
        {
          std::unique_lock<std::mutex> lock(ep->m);
          ep->work_cv.wait(lock, [&] {
            return ep->stop || ep->next_claim >= n ||
                   ep->next_claim <
                       ep->next_consume + options_.prefetch_batches;
          });
          if (ep->stop || ep->next_claim >= n) {
            return;
          }
          b = ep->next_claim++;
        }
        Loaded loaded = load_batch(
            *dataset_,
            options_,
            ep->number,
            ep->batches[static_cast<size_t>(b)]);
        {
          std::lock_guard<std::mutex> lock(ep->m);
          ep->ready.emplace(b, std::move(loaded));
        }
        ep->ready_cv.notify_all();
      }
    });
  }
  epoch_ = std::move(e);
}

std::optional<Batch> Loader::next() {
  if (!epoch_) {
    throw std::logic_error("Loader::next called before start_epoch");
  }
  Epoch& ep = *epoch_;
  const int64_t n = static_cast<int64_t>(ep.batches.size());
  while (true) {
    Loaded loaded;
    {
      std::unique_lock<std::mutex> lock(ep.m);
      if (ep.next_consume >= n || ep.stop) {
        return std::nullopt;
      }
      const int64_t b = ep.next_consume;
      if (ep.threads.empty()) {
        lock.unlock();
        loaded = load_batch(
            *dataset_, options_, ep.number, ep.batches[static_cast<size_t>(b)]);
        lock.lock();
      } else {
        auto t0 = Clock::now();
        ep.ready_cv.wait(lock, [&] { return ep.ready.count(b) > 0; });
        ep.stats.wait_seconds += seconds_since(t0);
        auto it = ep.ready.find(b);
        loaded = std::move(it->second);
        ep.ready.erase(it);
      }
      ep.next_consume++;
      ep.stats.samples += loaded.samples;
      ep.stats.load_seconds += loaded.seconds;
      for (auto& w : loaded.warnings) {
        ep.warnings.push_back(std::move(w));
      }
    }
    ep.work_cv.notify_all();
    if (!loaded.error.empty()) {
      ep.shutdown();
      throw std::runtime_error(loaded.error);
    }
    if (loaded.batch) {
      return std::move(loaded.batch);
    }
    // Every sample of this batch was skipped: go on to the next one.
  }
}

LoaderStats Loader::stats() const {
  if (!epoch_) {
    LoaderStats s;
    s.num_workers = options_.num_workers;
    return s;
  }
  std::lock_guard<std::mutex> lock(epoch_->m);
  return epoch_->stats;
}

std::vector<std::string> Loader::take_warnings() {
  if (!epoch_) {
    return {};
  }
  std::lock_guard<std::mutex> lock(epoch_->m);
  std::vector<std::string> out;
  out.swap(epoch_->warnings);
  return out;
}

} // namespace cakes::train
