#include "dist_job.h"
#include "commands.h"

#include "cakes/dist/context.h"
#include "cakes/dist/data_parallel.h"
#include "cakes/dist/sampler.h"

#include <ATen/ATen.h>
#include <glog/logging.h>

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>

namespace cakes::cli {
namespace {

// The line a stopped rank writes (built before the handler is installed:
// the handler may only make async-signal-safe calls).
char g_stop_line[160];

extern "C" void on_stop(int sig) {
  char line[200];
  std::strcpy(line, g_stop_line);
  char num[4] = {char('0' + sig / 10 % 10), char('0' + sig % 10), ')', '\n'};
  size_t n = std::strlen(line);
  std::memcpy(line + n, num, sizeof num);
  n += sizeof num;
  (void)!::write(2, line, n);
  ::_exit(128 + sig);
}

// Every W-th sample of another dataset, from `rank`: one rank's share of an
// evaluation.
class Shard : public data::Dataset {
public:
  Shard(std::shared_ptr<const data::Dataset> base, int rank, int world)
      : base_(std::move(base)), rank_(rank), world_(world) {}
  int64_t size() const override {
    const int64_t n = base_->size();
    return n > rank_ ? (n - rank_ + world_ - 1) / world_ : 0;
  }
  data::Sample get(int64_t i, std::mt19937_64& rng) const override {
    return base_->get(at(i), rng);
  }
  data::Sample clip(int64_t i, int64_t k, int64_t clips) const override {
    return base_->clip(at(i), k, clips);
  }
  int64_t num_classes() const override {
    return base_->num_classes();
  }
  std::vector<std::string> class_names() const override {
    return base_->class_names();
  }

private:
  int64_t at(int64_t i) const {
    return rank_ + i * world_;
  }
  std::shared_ptr<const data::Dataset> base_;
  int rank_, world_;
};

} // namespace

void add_dist_options(CLI::App* command, DistArgs& args) {
  const char* group =
      "Distributed (default: WORLD_SIZE, RANK, ... or one process)";
  add_dist_flags(*command, args.flags);
  command
      ->add_flag(
          "--sync-bn",
          args.sync_bn,
          "several processes: every BatchNorm normalises with the statistics "
          "of all ranks' batches together (then W processes compute what one "
          "computes with the global batch)")
      ->group(group);
  command
      ->add_option(
          "--bucket-mb",
          args.bucket_mb,
          "gradients are all-reduced in buckets of about this many MiB, each "
          "started as soon as backward has filled it")
      ->check(CLI::PositiveNumber)
      ->group(group);
}

DistJob::DistJob(const DistArgs& args, int64_t global_batch)
    : args_(args), options_(dist::from_env_and_flags(args.flags)) {
  const int w = options_.world_size;
  if (global_batch % w != 0)
    throw std::invalid_argument(
        "--batch " + std::to_string(global_batch) +
        " is the global batch of all processes: it must be a multiple of the "
        "world size " +
        std::to_string(w));
  local_batch_ = global_batch / w;
}

DistJob::~DistJob() {
  if (!context_)
    return;
  // Leaving with an error: its one line is about to be printed and the
  // process to exit; the launcher's SIGTERM (sent because this rank failed)
  // must not add a second. Otherwise the default disposition again.
  struct sigaction sa {};
  sa.sa_handler = std::uncaught_exceptions() > 0 ? SIG_IGN : SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

void DistJob::join() {
  if (!options_.distributed() || context_)
    return;
  // c10d logs (through glog) each failed connection attempt or collective
  // before it throws; the throw becomes this command's one-line error, so
  // the log lines would only repeat it. GLOG_minloglevel brings them back.
  if (!std::getenv("GLOG_minloglevel"))
    FLAGS_minloglevel = google::GLOG_FATAL;
  context_ = std::make_shared<dist::Context>(options_);
  parallel_ = std::make_shared<dist::DataParallel>(
      context_, dist::DataParallelOptions{args_.bucket_mb});
  std::snprintf(
      g_stop_line,
      sizeof g_stop_line,
      "cakes: error: %sstopped by the launcher or a signal (signal ",
      prefix().c_str());
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

int DistJob::rank() const {
  return options_.rank;
}

int DistJob::world_size() const {
  return options_.world_size;
}

std::string DistJob::prefix() const {
  if (!distributed())
    return "";
  return "rank " + std::to_string(rank()) + " of " +
         std::to_string(world_size()) + ": ";
}

models::BuildOptions DistJob::build_options() const {
  models::BuildOptions b;
  if (args_.sync_bn && context_)
    b.norm = dist::sync_batch_norm(context_);
  return b;
}

std::shared_ptr<const train::Sampler>
DistJob::sampler(int64_t size, uint64_t seed) const {
  if (!context_)
    return nullptr;
  return std::make_shared<dist::DistributedSampler>(
      size, /*shuffle=*/true, seed, rank(), world_size());
}

std::shared_ptr<train::ParallelHooks> DistJob::parallel() const {
  return parallel_;
}

eval::VideoScores DistJob::evaluate_video(
    const models::Model& model,
    std::shared_ptr<const data::Dataset> dataset,
    int64_t clips,
    int64_t batch) const {
  if (!context_)
    return eval::evaluate_video(model, *dataset, clips, batch);
  const Shard shard(dataset, rank(), world_size());
  eval::VideoScores mine;
  if (shard.size() > 0)
    mine = eval::evaluate_video(model, shard, clips, batch);
  // Fractions back to counts, summed over ranks.
  const double n = static_cast<double>(mine.videos);
  at::Tensor counts = at::tensor(
      {std::round(mine.top1 * n), std::round(mine.top5 * n), n}, at::kDouble);
  context_->all_reduce_sum(counts);
  const auto c = counts.accessor<double, 1>();
  eval::VideoScores all;
  all.videos = static_cast<int64_t>(c[2]);
  if (all.videos > 0) {
    all.top1 = c[0] / c[2];
    all.top5 = c[1] / c[2];
  }
  return all;
}

eval::VolumeScores DistJob::evaluate_volumes(
    const models::Model& model,
    std::shared_ptr<const data::Dataset> dataset,
    const std::array<int64_t, 3>& window,
    double overlap) const {
  if (!context_)
    return eval::evaluate_volumes(model, *dataset, window, overlap);
  const Shard shard(dataset, rank(), world_size());
  eval::DiceCounts mine(model.spec.num_classes);
  if (shard.size() > 0)
    mine = eval::evaluate_volumes(model, shard, window, overlap).counts;
  std::vector<double> flat;
  for (const auto* v : {&mine.intersection, &mine.predicted, &mine.labelled})
    for (const int64_t x : *v)
      flat.push_back(static_cast<double>(x));
  at::Tensor counts = at::tensor(flat, at::kDouble);
  context_->all_reduce_sum(counts);
  const auto c = counts.accessor<double, 1>();
  const size_t k = mine.intersection.size();
  for (size_t i = 0; i < k; ++i) {
    mine.intersection[i] = std::llround(c[int64_t(i)]);
    mine.predicted[i] = std::llround(c[int64_t(k + i)]);
    mine.labelled[i] = std::llround(c[int64_t(2 * k + i)]);
  }
  return eval::volume_scores(mine, dataset->class_names(), dataset->size());
}

} // namespace cakes::cli
