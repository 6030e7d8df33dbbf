// Data-parallel scaling on a tiny model: the same global batch trained by
// one process with T threads or by N processes with T threads each.
//
//   cakes_dist_bench --nproc 1 --threads 2
//   cakes_dist_bench --nproc 2 --threads 1
//
// With --nproc > 1 it starts the ranks itself (copies of this executable on
// loopback, cakes::dist::launch_local); rank 0 prints one JSON line with the
// global samples per second of the timed epoch (after one warm-up epoch).
#include "cakes/dist/context.h"
#include "cakes/dist/data_parallel.h"
#include "cakes/dist/launch.h"
#include "cakes/dist/options.h"
#include "cakes/dist/sampler.h"
#include "cakes/nn/op_layer.h"
#include "cakes/train/losses.h"
#include "cakes/train/trainer.h"

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

namespace {

using namespace cakes;

struct BenchNetImpl : torch::nn::Module {
  explicit BenchNetImpl(nn::NormPtr norm) {
    const auto cfg = Config::parse("3x3x3:4,1x3x3:2,3x1x1:2");
    a = register_module(
        "a", nn::OpLayer(nn::OpLayerOptions(1, cfg).norm(norm)));
    b = register_module(
        "b", nn::OpLayer(nn::OpLayerOptions(8, cfg).norm(norm)));
    fc = register_module("fc", torch::nn::Linear(8, 2));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = b->forward(a->forward(x));
    return fc->forward(torch::adaptive_avg_pool3d(h, {1, 1, 1}).flatten(1));
  }
  nn::OpLayer a{nullptr}, b{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(BenchNet);

class NoiseDataset : public data::Dataset {
public:
  int64_t size() const override {
    return 128;
  }
  data::Sample get(int64_t index, std::mt19937_64& rng) const override {
    std::normal_distribution<float> normal(0, 1);
    std::vector<float> v(16 * 32 * 32);
    for (auto& x : v) {
      x = normal(rng) + (index % 2 ? 0.3f : -0.3f);
    }
    return {
        torch::tensor(v).reshape({1, 16, 32, 32}),
        torch::scalar_tensor(index % 2, torch::kLong)};
  }
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"data-parallel scaling on a tiny model"};
  int nproc = 1, threads = 1;
  int64_t batch = 16;
  bool sync_bn = false;
  app.add_option("--nproc", nproc, "processes");
  app.add_option("--threads", threads, "threads per process");
  app.add_option("--batch", batch, "global batch (divided among ranks)");
  app.add_flag("--sync-bn", sync_bn, "synchronized BatchNorm");
  CLI11_PARSE(app, argc, argv);
  try {
    if (nproc > 1 && !std::getenv("RANK")) {
      dist::LaunchOptions lo;
      lo.nproc = nproc;
      lo.executable = std::filesystem::read_symlink("/proc/self/exe").string();
      lo.args.assign(argv + 1, argv + argc);
      lo.env = {{"OMP_NUM_THREADS", std::to_string(threads)}};
      const auto r = dist::launch_local(lo);
      if (r.exit_code != 0) {
        std::cerr << "cakes_dist_bench: " << r.failure << "\n";
      }
      return r.exit_code;
    }
    at::set_num_threads(threads);
    auto context = std::make_shared<dist::Context>(
        dist::from_env_and_flags(dist::DistFlags{}));
    const int world = context->world_size();
    torch::manual_seed(0);
    BenchNet net(sync_bn ? dist::sync_batch_norm(context) : nullptr);
    auto ds = std::make_shared<NoiseDataset>();
    train::LoaderOptions lo;
    lo.batch_size = batch / world;
    lo.seed = 1;
    auto sampler = std::make_shared<dist::DistributedSampler>(
        ds->size(), true, 1, context->rank(), world);
    train::Loader loader(ds, lo, sampler);
    train::TrainerOptions o;
    o.epochs = 2;
    o.schedule.base_lr = 0.05;
    o.parallel = std::make_shared<dist::DataParallel>(context);
    models::NetworkSpec spec;
    spec.network = "bench";
    train::Trainer trainer(
        models::Model::wrap(net, spec), train::cross_entropy, o);
    trainer.train_epoch(loader); // warm-up
    const auto s = trainer.train_epoch(loader);
    if (context->is_main()) {
      std::cout << "{\"nproc\": " << world << ", \"threads\": " << threads
                << ", \"global_batch\": " << batch
                << ", \"sync_bn\": " << (sync_bn ? "true" : "false")
                << ", \"samples\": " << s.samples
                << ", \"seconds\": " << s.seconds
                << ", \"samples_per_s\": " << s.samples_per_second << "}\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "cakes_dist_bench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
