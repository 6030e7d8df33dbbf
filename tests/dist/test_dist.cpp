// Data-parallel training. The multi-process tests start this test binary
// again (DistWorker.Run with CAKES_DIST_WORKER set) as the ranks, on
// loopback with a free port; the parent trains the single-process reference.
// Over 500 lines on purpose: the rank side and the tests that start it share
// this file's helpers and must stay one test binary entry point.
#include "cakes/dist/context.h"
#include "cakes/dist/data_parallel.h"
#include "cakes/dist/launch.h"
#include "cakes/dist/options.h"
#include "cakes/dist/sampler.h"

#include "cakes/train/losses.h"
#include "cakes/train/trainer.h"

#include "support/temp_dir.h"
#include "support/tiny_task.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

namespace {

namespace fs = std::filesystem;
using namespace cakes;
using Clock = std::chrono::steady_clock;

// --- the tiny job every multi-process test trains ---------------------------

using test::SignDataset;
// The replicas' steps must be comparable: no dropout.
using DistNet = test::TinyNet;

constexpr int64_t kSamples = 24;
constexpr int64_t kBatchPerRank = 4;
constexpr uint64_t kSeed = 5;
const char* kNetwork = "distnet 3x3x3:2,1x3x3:2,3x1x1:2";

train::TrainerOptions job_options(int64_t epochs) {
  train::TrainerOptions o;
  o.epochs = epochs;
  o.optimizer.kind = train::OptimizerKind::sgd;
  o.optimizer.weight_decay = 1e-3;
  o.schedule.kind = train::ScheduleKind::cosine;
  o.schedule.base_lr = 0.1;
  o.clip_grad_norm = 5;
  return o;
}

std::vector<torch::Tensor> state_of(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.named_parameters()) {
    out.push_back(p.value().detach().clone());
  }
  for (const auto& b : m.named_buffers()) {
    out.push_back(b.value().detach().clone().to(torch::kDouble));
  }
  return out;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// --- the rank side --------------------------------------------------------

// Modes: "train" (CAKES_DIST_EPOCHS epochs, resuming from the checkpoint when
// CAKES_DIST_RESUME=1, weights to <out>/rank<r>.pt) and "endless" (trains
// until killed, touching <out>/rank<r>.step after each step).
void run_worker(const std::string& mode) {
  at::set_num_threads(1);
  const fs::path out = env_or("CAKES_DIST_OUT", ".");
  dist::DistFlags flags;
  flags.timeout_seconds = std::stod(env_or("CAKES_DIST_TIMEOUT", "20"));
  const dist::DistOptions opts = dist::from_env_and_flags(flags);
  auto context = std::make_shared<dist::Context>(opts);
  const std::string rank = std::to_string(context->rank());

  // Different initial weights per rank: attach must give everyone rank 0's.
  torch::manual_seed(100 + static_cast<uint64_t>(context->rank()));
  DistNet net(/*dropout=*/0, dist::sync_batch_norm(context));
  dist::DataParallelOptions dp_options;
  dp_options.bucket_mb = 1e-5; // a bucket per tensor: many, started in order
  auto dp = std::make_shared<dist::DataParallel>(context, dp_options);

  auto ds =
      std::make_shared<SignDataset>(mode == "endless" ? 100000 : kSamples);
  train::LoaderOptions lo;
  lo.batch_size = kBatchPerRank;
  lo.seed = kSeed;
  auto sampler = std::make_shared<dist::DistributedSampler>(
      ds->size(),
      /*shuffle=*/true,
      kSeed,
      context->rank(),
      context->world_size());
  train::Loader loader(ds, lo, sampler);

  train::TrainerOptions o =
      job_options(std::stoll(env_or("CAKES_DIST_EPOCHS", "1")));
  o.parallel = dp;
  o.checkpoint_path = (out / "checkpoint.pt").string();
  o.log_path = (out / "log.jsonl").string();
  int64_t steps = 0;
  if (mode == "endless") {
    o.checkpoint_path.clear();
    o.after_backward = [&](torch::nn::Module&) {
      if (++steps == 3) {
        std::ofstream(out / ("rank" + rank + ".step")) << steps;
      }
    };
  }
  train::Trainer trainer(tiny_model(net, kNetwork), train::cross_entropy, o);
  if (env_or("CAKES_DIST_RESUME", "0") == "1") {
    trainer.resume(o.checkpoint_path);
  }
  trainer.fit(loader);
  auto state = state_of(*net);
  torch::save(state, (out / ("rank" + rank + ".pt")).string());
  std::ofstream(out / ("rank" + rank + ".buckets"))
      << dp->bucket_count() << " " << dp->buckets_started_in_backward();
}

TEST(DistWorker, Run) {
  const char* mode = std::getenv("CAKES_DIST_WORKER");
  if (!mode) {
    GTEST_SKIP() << "runs only as a rank started by the DataParallel tests";
  }
  try {
    run_worker(mode);
  } catch (const std::exception& e) {
    // What a CLI would do: one line, non-zero exit.
    std::cerr << "rank " << env_or("RANK", "?") << ": error: " << e.what()
              << std::endl;
    std::_Exit(3);
  }
}

// --- the parent side ------------------------------------------------------

std::string self_exe() {
  return fs::read_symlink("/proc/self/exe").string();
}

dist::LaunchResult
launch_workers(const test::TempDir& dir, int64_t epochs, bool resume) {
  dist::LaunchOptions lo;
  lo.nproc = 2;
  lo.executable = self_exe();
  lo.args = {"--gtest_filter=DistWorker.Run"};
  lo.env = {
      {"CAKES_DIST_WORKER", "train"},
      {"CAKES_DIST_OUT", dir.path()},
      {"CAKES_DIST_EPOCHS", std::to_string(epochs)},
      {"CAKES_DIST_RESUME", resume ? "1" : "0"},
      {"OMP_NUM_THREADS", "1"},
  };
  lo.kill_grace_seconds = 1;
  return dist::launch_local(lo);
}

TEST(DataParallel, TwoProcessesTrainLikeOneOnTheCombinedBatch) {
  // Sync BatchNorm on: with it the two ranks' batch statistics are those of
  // the combined batch, so the reference can keep plain BatchNorm.
  test::TempDir dir("dist_train");
  // One epoch, then resume for the second: covers --resume as well.
  auto r1 = launch_workers(dir, /*epochs=*/1, /*resume=*/false);
  ASSERT_EQ(r1.exit_code, 0) << r1.failure;
  auto r2 = launch_workers(dir, /*epochs=*/2, /*resume=*/true);
  ASSERT_EQ(r2.exit_code, 0) << r2.failure;

  std::vector<torch::Tensor> rank0, rank1;
  torch::load(rank0, dir / "rank0.pt");
  torch::load(rank1, dir / "rank1.pt");

  at::set_num_threads(1);
  torch::manual_seed(100); // rank 0's initial weights
  DistNet net;
  auto ds = std::make_shared<SignDataset>(kSamples);
  train::LoaderOptions lo;
  lo.batch_size = 2 * kBatchPerRank;
  lo.seed = kSeed;
  train::Loader loader(ds, lo);
  train::Trainer trainer(
      tiny_model(net, kNetwork), train::cross_entropy, job_options(2));
  trainer.fit(loader);
  auto reference = state_of(*net);

  ASSERT_EQ(rank0.size(), reference.size());
  ASSERT_EQ(rank1.size(), reference.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    EXPECT_TRUE(torch::equal(rank0[i], rank1[i])) << "tensor " << i;
    EXPECT_TRUE(torch::allclose(rank0[i], reference[i], 1e-4, 1e-5))
        << "tensor " << i << ": max difference "
        << (rank0[i] - reference[i]).abs().max().item<double>();
  }
  double max_diff = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    max_diff = std::max(
        max_diff, (rank0[i] - reference[i]).abs().max().item<double>());
  }
  std::cout << "largest difference to the single process: " << max_diff << "\n";
  // Training did move the weights (the comparison is not trivially true).
  torch::manual_seed(100);
  DistNet fresh;
  EXPECT_FALSE(torch::allclose(state_of(*fresh)[0], rank0[0]));

  // Only rank 0 logs: one line per epoch (the resumed run appends).
  std::ifstream log(dir / "log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) {
    ++lines;
  }
  EXPECT_EQ(lines, 2);
  // Gradient buckets went out while backward was still running.
  std::ifstream buckets(dir / "rank0.buckets");
  int64_t count = 0, early = 0;
  buckets >> count >> early;
  EXPECT_GT(count, 2);
  EXPECT_GT(early, 0);
}

// fork + execve with stdout and stderr to `log`; everything is prepared
// before fork (the child of a multi-threaded process may only exec).
pid_t spawn_rank(
    int rank,
    int port,
    const fs::path& dir,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  }
  env["RANK"] = std::to_string(rank);
  env["WORLD_SIZE"] = "2";
  env["MASTER_ADDR"] = "127.0.0.1";
  env["MASTER_PORT"] = std::to_string(port);
  env["OMP_NUM_THREADS"] = "1";
  env["CAKES_DIST_OUT"] = dir.string();
  for (const auto& [k, v] : extra) {
    env[k] = v;
  }
  std::vector<std::string> strings;
  for (const auto& [k, v] : env) {
    strings.push_back(k + "=" + v);
  }
  std::vector<char*> envp;
  for (auto& s : strings) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  const std::string exe = self_exe();
  std::string filter = "--gtest_filter=DistWorker.Run";
  char* argv[] = {const_cast<char*>(exe.c_str()), filter.data(), nullptr};
  const std::string log =
      (dir / ("rank" + std::to_string(rank) + ".log")).string();
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(exe.c_str(), argv, envp.data());
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

// Waits up to `seconds`: the exit code (128 + signal when killed), -1 when
// still running, -2 when there is no such child (already reaped).
int wait_exit(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0) {
      return -2; // not ours, or reaped already
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Rank 1 is killed (its connections close: rank 0 notices at once) or
// stopped (nothing closes: rank 0 must give up by its 5 s timeout).
void expect_survivor_fails(int signal, double within_seconds) {
  test::TempDir dir("dist_survivor");
  const int port = dist::free_loopback_port();
  const std::vector<std::pair<std::string, std::string>> env = {
      {"CAKES_DIST_WORKER", "endless"}, {"CAKES_DIST_TIMEOUT", "5"}};
  const pid_t p0 = spawn_rank(0, port, fs::path(dir.path()), env);
  const pid_t p1 = spawn_rank(1, port, fs::path(dir.path()), env);
  // Strike once both are training.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!(fs::exists(dir / "rank0.step") && fs::exists(dir / "rank1.step")) &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool started = fs::exists(dir / "rank1.step");
  ::kill(p1, signal);
  const auto struck_at = Clock::now();
  const int code = wait_exit(p0, /*seconds=*/within_seconds + 10);
  const double took =
      std::chrono::duration<double>(Clock::now() - struck_at).count();
  // Never signal a pid already reaped (it may belong to someone else now).
  if (code == -1) {
    ::kill(p0, SIGKILL);
    wait_exit(p0, 5);
  }
  ::kill(p1, SIGKILL); // not reaped yet: still ours
  wait_exit(p1, 5);
  ASSERT_TRUE(started) << read_all(dir / "rank0.log")
                       << read_all(dir / "rank1.log");
  EXPECT_GT(code, 0) << "rank 0 still running " << took << " s after";
  EXPECT_LT(took, within_seconds);
  const std::string log = read_all(dir / "rank0.log");
  const auto at = log.find("rank 0: error: distributed");
  ASSERT_NE(at, std::string::npos) << log;
  std::cout << "rank 0 exited " << took << " s after signal " << signal
            << " to rank 1: " << log.substr(at, log.find('\n', at) - at)
            << "\n";
}

TEST(DataParallel, AKilledRankMakesTheOtherFailWithinTheTimeout) {
  expect_survivor_fails(SIGKILL, /*within_seconds=*/5);
}

TEST(DataParallel, AStoppedRankMakesTheOtherFailAfterTheTimeout) {
  expect_survivor_fails(SIGSTOP, /*within_seconds=*/5 + 3);
}

TEST(DataParallel, ARankThatCannotConnectFailsWithinTheTimeout) {
  dist::DistOptions o;
  o.world_size = 2;
  o.rank = 1; // no rank 0 serves this port
  o.master_port = dist::free_loopback_port();
  o.timeout_seconds = 1;
  const auto t0 = Clock::now();
  try {
    dist::Context context(o);
    FAIL() << "connected to nobody";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("rendezvous at 127.0.0.1:"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "gave up after " << took << " s\n";
  EXPECT_LT(took, 10.0);
}

// --- single-process pieces ------------------------------------------------

TEST(
    DistributedSampler, EveryRankGetsAnEqualShareAndTogetherTheyCoverTheEpoch) {
  struct Case {
    int64_t n;
    int world;
  };
  for (const Case c :
       {Case{12, 2},
        Case{12, 3},
        Case{13, 2},
        Case{13, 4},
        Case{3, 4},
        Case{1, 1},
        Case{0, 2}}) {
    for (auto remainder : {dist::Remainder::pad, dist::Remainder::drop}) {
      SCOPED_TRACE(
          "n=" + std::to_string(c.n) + " world=" + std::to_string(c.world) +
          (remainder == dist::Remainder::pad ? " pad" : " drop"));
      auto base = std::make_shared<train::SubsetSampler>(c.n, true, 7);
      for (int64_t epoch : {0, 1}) {
        const auto order = base->indices(epoch);
        std::map<int64_t, int> seen;
        std::vector<std::vector<int64_t>> shares;
        for (int r = 0; r < c.world; ++r) {
          dist::DistributedSampler s(base, r, c.world, remainder);
          shares.push_back(s.indices(epoch));
          for (int64_t i : shares.back()) {
            seen[i]++;
          }
        }
        const int64_t rest = c.n % c.world;
        const int64_t per_rank = remainder == dist::Remainder::pad
                                     ? (c.n + c.world - 1) / c.world
                                     : c.n / c.world;
        for (const auto& share : shares) {
          EXPECT_EQ(static_cast<int64_t>(share.size()), per_rank);
        }
        if (rest == 0) {
          ASSERT_EQ(static_cast<int64_t>(seen.size()), c.n);
          for (const auto& [i, k] : seen) {
            EXPECT_EQ(k, 1) << "sample " << i;
          }
        } else if (remainder == dist::Remainder::pad) {
          // Every sample at least once; the first world - rest of the
          // epoch's order once more (cycling when n < world).
          ASSERT_EQ(static_cast<int64_t>(seen.size()), c.n);
          std::map<int64_t, int> expected;
          for (int64_t i : order) {
            expected[i] = 1;
          }
          for (int64_t k = 0; k < c.world - rest; ++k) {
            expected[order[static_cast<size_t>(k % c.n)]]++;
          }
          EXPECT_EQ(seen, expected);
        } else {
          // Each at most once; exactly the last `rest` of the order left out.
          EXPECT_EQ(static_cast<int64_t>(seen.size()), c.n - rest);
          for (int64_t k = 0; k < c.n; ++k) {
            const int64_t i = order[static_cast<size_t>(k)];
            EXPECT_EQ(seen.count(i), k < c.n - rest ? 1u : 0u)
                << "sample " << i;
          }
        }
        // Round-robin: batch b of all ranks together is batch b of the
        // base order with world times the batch size.
        if (rest == 0 && c.n > 0) {
          for (size_t pos = 0; pos < shares[0].size(); ++pos) {
            for (int r = 0; r < c.world; ++r) {
              EXPECT_EQ(
                  shares[static_cast<size_t>(r)][pos],
                  order
                      [pos * static_cast<size_t>(c.world) +
                       static_cast<size_t>(r)]);
            }
          }
        }
      }
    }
  }
  EXPECT_THROW(
      dist::DistributedSampler(4, true, 0, 2, 2), std::invalid_argument);
}

TEST(DistOptions, FlagsOverrideTheEnvironmentAndBadValuesAreNamed) {
  std::map<std::string, std::string> vars = {
      {"WORLD_SIZE", "4"},
      {"RANK", "2"},
      {"MASTER_ADDR", "10.0.0.1"},
      {"MASTER_PORT", "1234"}};
  auto env = [&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  auto o = dist::from_env_and_flags({}, env);
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.rank, 2);
  EXPECT_EQ(o.master_addr, "10.0.0.1");
  EXPECT_EQ(o.master_port, 1234);
  dist::DistFlags flags;
  flags.rank = 3;
  flags.master_port = 4321;
  o = dist::from_env_and_flags(flags, env);
  EXPECT_EQ(o.rank, 3);
  EXPECT_EQ(o.master_port, 4321);

  auto none = [](const char*) -> const char* { return nullptr; };
  o = dist::from_env_and_flags({}, none);
  EXPECT_EQ(o.world_size, 1);
  EXPECT_FALSE(o.distributed());

  auto message = [&](const dist::DistFlags& f) {
    try {
      dist::from_env_and_flags(f, env);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  flags = {};
  flags.rank = 4;
  EXPECT_EQ(message(flags), "--rank must be in [0, 4), got 4");
  vars["WORLD_SIZE"] = "four";
  EXPECT_EQ(message({}), "WORLD_SIZE='four' is not an integer");
  vars["WORLD_SIZE"] = "4";
  flags = {};
  flags.master_port = 70000;
  EXPECT_EQ(message(flags), "master port must be in [1, 65535], got 70000");
  flags = {};
  flags.backend = "mpi";
  EXPECT_EQ(
      message(flags),
      "unknown distributed backend 'mpi' (expected auto, gloo or nccl)");
}

TEST(SyncBatchNorm, InOneProcessItIsBatchNorm) {
  // World size 1: the all-reduces are identities, so values, gradients and
  // running statistics must be BatchNorm's, through a layer built with the
  // norm as every network builds its layers.
  auto context = std::make_shared<dist::Context>(dist::DistOptions{});
  const auto cfg = Config::parse("3x3x3:2,1x3x3:1");
  torch::manual_seed(3);
  nn::OpLayer ours(
      nn::OpLayerOptions(2, cfg).norm(dist::sync_batch_norm(context)));
  torch::manual_seed(3);
  nn::OpLayer ref(nn::OpLayerOptions(2, cfg));
  {
    torch::NoGradGuard g;
    ours->bn()->weight.uniform_(0.5, 1.5);
    ours->bn()->bias.uniform_(-0.5, 0.5);
    ref->bn()->weight.copy_(ours->bn()->weight);
    ref->bn()->bias.copy_(ours->bn()->bias);
  }
  ours->to(torch::kDouble);
  ref->to(torch::kDouble);
  auto x = torch::randn({2, 2, 3, 4, 2}, torch::kDouble) * 2 + 1;
  auto xa = x.clone().requires_grad_(true);
  auto xb = x.clone().requires_grad_(true);
  auto ya = ours->forward(xa);
  auto yb = ref->forward(xb);
  auto w = torch::randn_like(ya);
  (ya * w).sum().backward();
  (yb * w).sum().backward();
  EXPECT_TRUE(torch::allclose(ya, yb, 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(xa.grad(), xb.grad(), 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(
      ours->bn()->weight.grad(), ref->bn()->weight.grad(), 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(
      ours->bn()->bias.grad(), ref->bn()->bias.grad(), 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(
      ours->bn()->running_mean, ref->bn()->running_mean, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(
      ours->bn()->running_var, ref->bn()->running_var, 1e-12, 1e-12));
  EXPECT_EQ(ours->bn()->num_batches_tracked.item<int64_t>(), 1);
  // In evaluation mode it is BatchNorm with the running statistics.
  ours->eval();
  ref->eval();
  EXPECT_TRUE(torch::allclose(ours->forward(x), ref->forward(x), 1e-10, 1e-10));
}

TEST(SyncBatchNorm, ReachesEveryLayerOfEveryNetwork) {
  // The norm given when a network is built is the norm of all its layers:
  // nothing has to find and switch them afterwards.
  auto context = std::make_shared<dist::Context>(dist::DistOptions{});
  const auto norm = dist::sync_batch_norm(context);
  for (const std::string network : {"i3d_resnet18", "res_encoder_decoder"}) {
    models::NetworkSpec spec;
    spec.network = network;
    spec.width = 4;
    spec.num_classes = 2;
    spec.in_channels = 1;
    models::BuildOptions options;
    options.norm = norm;
    const auto model = models::build(spec, options);
    ASSERT_FALSE(model.network->layers().empty());
    for (const auto& [name, layer] : model.network->layers())
      EXPECT_EQ(layer->options.norm(), norm) << network << " " << name;
  }
}

TEST(Launch, OneFailingProcessStopsTheOthers) {
  dist::LaunchOptions o;
  o.nproc = 3;
  o.executable = "/bin/sh";
  o.args = {"-c", "if [ \"$RANK\" = 1 ]; then exit 7; fi; exec sleep 60"};
  o.kill_grace_seconds = 1;
  const auto t0 = Clock::now();
  const auto r = dist::launch_local(o);
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.failed_rank, 1);
  EXPECT_EQ(r.failure, "rank 1 exited with code 7");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 10.0);

  o.args = {
      "-c", "test \"$WORLD_SIZE\" = 3 && test \"$MASTER_ADDR\" = 127.0.0.1"};
  EXPECT_EQ(dist::launch_local(o).exit_code, 0);
  EXPECT_THROW(
      dist::launch_local(dist::LaunchOptions{}), std::invalid_argument);

  // A stop request (the CLI's SIGTERM handler) stops every process.
  o.args = {"-c", "exec sleep 60"};
  int polls = 0;
  o.stop_requested = [&] { return ++polls > 5 ? SIGTERM : 0; };
  const auto t1 = Clock::now();
  const auto stopped = dist::launch_local(o);
  EXPECT_EQ(stopped.exit_code, 128 + SIGTERM);
  EXPECT_EQ(stopped.failure, "stopped by signal 15");
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t1).count(), 10.0);
}

TEST(Launch, TheCliForwardsAFailedRanksExitCode) {
  const std::string cakes = std::string(CAKES_BINARY_DIR) + "/cakes";
  // Every rank runs "cakes demo --help" (exit 0), or "cakes demo" with an
  // unknown flag (CLI11's parse error code, non-zero).
  EXPECT_EQ(
      std::system(
          (cakes + " launch --nproc 2 -- demo --help >/dev/null").c_str()),
      0);
  const int status = std::system(
      (cakes +
       " launch --nproc 2 --kill-grace 1 -- demo --no-such-flag 2>/dev/null")
          .c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
}

} // namespace
