// Data-parallel training and search through the command line
// (docs/DISTRIBUTED.md): `cakes launch --nproc 2 -- train|search ...` and two
// `cakes train` processes started by hand with the explicit flags, on a tiny
// synthetic task (I3D ResNet-18 at width 4, 8 training videos of 4 frames
// 16x16, one thread per process, seconds per run).
//
// Equality with one process: --batch is the global batch, so the
// single-process run and the two-process run use the same command line, with
// --dropout 0: with dropout each rank draws its own masks (the same ones on
// every rank, on different samples), which one process on the global batch
// cannot draw, so only training without dropout is the same computation. Each
// rank's BatchNorm normalises with its own half of the batch unless
// --sync-bn, so the runs compared with one process use --sync-bn, which
// makes them the same computation up to the order of floating-point sums; a
// run without it is checked to differ (its running statistics are rank 0's
// half-batch ones), so the comparison could fail.
#include "cakes/dist/launch.h"
#include "cakes/search/run.h"
#include "cakes/train/checkpoint.h"

#include "support/temp_dir.h"
#include "support/text.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using cakes::test::lines;
using cakes::test::slurp;

std::vector<std::string>
lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> r;
  for (const auto& l : lines(text))
    if (l.find(needle) != std::string::npos)
      r.push_back(l);
  return r;
}

struct Result {
  int rc = -1;
  std::string out, err;
  double seconds = 0;
};

// A `cakes` command line run in the background (through /bin/sh, which execs
// it: the pid is cakes's own), its output into files.
class Process {
public:
  Process(const std::string& args, const fs::path& out, const fs::path& err)
      : out_(out), err_(err) {
    const std::string cmd = "exec " + std::string(CAKES_BINARY_DIR) +
                            "/cakes " + args + " > " + out.string() + " 2> " +
                            err.string();
    start_ = Clock::now();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  pid_t pid() const {
    return pid_;
  }
  // Waits at most `limit` seconds (then kills it and reports rc -1).
  Result wait(double limit = 300) {
    Result r;
    int status = 0;
    while (true) {
      const pid_t w = ::waitpid(pid_, &status, WNOHANG);
      if (w == pid_)
        break;
      if (std::chrono::duration<double>(Clock::now() - start_).count() >
          limit) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        status = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    r.rc = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    r.out = slurp(out_);
    r.err = slurp(err_);
    return r;
  }

private:
  fs::path out_, err_;
  pid_t pid_ = -1;
  Clock::time_point start_;
};

// The child of `parent` whose environment has RANK=<rank>; -1 if none.
pid_t child_with_rank(pid_t parent, int rank) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const std::string stat = slurp(e.path() / "stat");
    // pid (comm) state ppid ...
    const auto close = stat.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent)
      continue;
    const std::string env = slurp(e.path() / "environ");
    const std::string want = "RANK=" + std::to_string(rank);
    size_t at = 0;
    while (at < env.size()) {
      const size_t end = env.find('\0', at);
      if (env.compare(at, end - at, want) == 0)
        return static_cast<pid_t>(std::stol(name));
      if (end == std::string::npos)
        break;
      at = end + 1;
    }
  }
  return -1;
}

// Largest |a - b| / max|b| over every parameter and buffer (floating ones;
// integer buffers must be equal). The modules must have the same entries.
double max_relative_difference(
    torch::nn::Module& a, torch::nn::Module& b, std::string* worst = nullptr) {
  auto pa = a.named_parameters(true), pb = b.named_parameters(true);
  auto ba = a.named_buffers(true), bb = b.named_buffers(true);
  std::vector<std::pair<std::string, std::pair<at::Tensor, at::Tensor>>> all;
  EXPECT_EQ(pa.size(), pb.size());
  EXPECT_EQ(ba.size(), bb.size());
  for (const auto& p : pa)
    all.push_back({p.key(), {p.value(), pb[p.key()]}});
  for (const auto& p : ba)
    all.push_back({p.key(), {p.value(), bb[p.key()]}});
  double m = 0;
  for (const auto& [name, t] : all) {
    const auto x = t.first.to(torch::kDouble), y = t.second.to(torch::kDouble);
    const double scale = std::max(1e-6, y.abs().max().item<double>());
    const double d = (x - y).abs().max().item<double>() / scale;
    if (d > m) {
      m = d;
      if (worst)
        *worst = name;
    }
  }
  return m;
}

class DistCli : public ::testing::Test {
protected:
  cakes::test::TempDir dir{"dist_cli"};

  std::string path(const std::string& leaf) const {
    return dir / leaf;
  }

  Result cakes(const std::string& args, double limit = 300) {
    static int n = 0;
    const std::string tag = std::to_string(n++);
    return Process(args, path("out" + tag + ".txt"), path("err" + tag + ".txt"))
        .wait(limit);
  }

  Process start(const std::string& args) {
    static int n = 0;
    const std::string tag = "bg" + std::to_string(n++);
    return Process(
        args, path("out" + tag + ".txt"), path("err" + tag + ".txt"));
  }

  // 8 training and 4 validation videos of the motion task.
  std::string data_flags() {
    if (!fs::exists(path("synth"))) {
      const auto r = cakes(
          "synth --out " + path("synth") +
          " --videos 8 --val-videos 4 --frames 8 --size 24 --seed 3");
      EXPECT_EQ(r.rc, 0) << r.err;
    }
    const std::string s = path("synth");
    return " --frames-list " + s + "/train.txt --frames-val-list " + s +
           "/val.txt --categories " + s + "/category.txt --frames 4 --size 16 ";
  }

  static std::string train_flags(int64_t epochs = 2) {
    return " --net i3d_resnet18 --width 4 --op conv3d --epochs " +
           std::to_string(epochs) +
           " --batch 4 --lr 0.05 --schedule constant --workers 1 --threads 1 "
           "--seed 1 --log-every 1 --dropout 0 ";
  }

  static void
  expect_close(const std::string& a, const std::string& b, double tolerance) {
    auto ma = cakes::train::load_model(a), mb = cakes::train::load_model(b);
    std::string worst;
    const double d = max_relative_difference(*ma.module, *mb.module, &worst);
    EXPECT_LE(d, tolerance) << a << " vs " << b << ": " << worst;
  }
};

// The epoch lines of a run's log (not the step lines of --log-every).
std::vector<nlohmann::json> log_of(const std::string& out_dir) {
  std::vector<nlohmann::json> r;
  for (const auto& l : lines(slurp(out_dir + "/log.jsonl"))) {
    auto j = nlohmann::json::parse(l);
    if (j.value("kind", "epoch") == "epoch")
      r.push_back(std::move(j));
  }
  return r;
}

TEST_F(DistCli, TrainUnderTheLauncherIsOneProcessOnTheGlobalBatch) {
  const std::string data = data_flags();
  auto r = cakes("train" + train_flags() + data + "--out-dir " + path("one"));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  r = cakes(
      "launch --nproc 2 -- train" + train_flags() + data +
      "--sync-bn --out-dir " + path("two"));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;

  // One checkpoint, the best one and one log, written by rank 0 alone;
  // rank 0 alone reports. --batch 4 is global: 2 per rank, 8 videos -> 4 per
  // rank -> 2 steps per epoch on each rank, as in one process with batch 4.
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(path("two")))
    files.insert(e.path().filename().string());
  EXPECT_EQ(
      files, (std::set<std::string>{"best.pt", "checkpoint.pt", "log.jsonl"}));
  EXPECT_EQ(lines_with(r.out, "training ").size(), 1u) << r.out;
  EXPECT_NE(
      r.out.find("2 epochs of 2 steps per rank (2 processes x batch 2 = "
                 "global batch 4)"),
      std::string::npos)
      << r.out;
  EXPECT_EQ(lines_with(r.out, "checkpoint ").size(), 1u) << r.out;
  const auto one = log_of(path("one")), two = log_of(path("two"));
  ASSERT_EQ(two.size(), 2u);
  ASSERT_EQ(one.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(two[e].at("steps"), 2) << two[e];   // rank 0's steps
    EXPECT_EQ(two[e].at("samples"), 8) << two[e]; // over both ranks
    EXPECT_EQ(two[e].at("step"), one[e].at("step"));
    EXPECT_NEAR(
        two[e].at("loss").get<double>(), one[e].at("loss").get<double>(), 1e-4);
    // Validation: each rank evaluates half of the 4 videos, the counts are
    // summed.
    EXPECT_EQ(two[e].at("val_top1"), one[e].at("val_top1"));
  }
  EXPECT_EQ(
      cakes::train::read_checkpoint_meta(path("two") + "/checkpoint.pt").step,
      4);
  // Weights, BatchNorm scales and running statistics.
  expect_close(
      path("two") + "/checkpoint.pt", path("one") + "/checkpoint.pt", 1e-5);

  // Without --sync-bn each rank normalises with its own half batch: another
  // computation, and the running statistics are rank 0's.
  r = cakes(
      "launch --nproc 2 -- train" + train_flags() + data + "--out-dir " +
      path("plain"));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  auto plain = cakes::train::load_model(path("plain") + "/checkpoint.pt");
  auto single = cakes::train::load_model(path("one") + "/checkpoint.pt");
  EXPECT_GT(max_relative_difference(*plain.module, *single.module), 1e-3);
}

TEST_F(DistCli, TwoProcessesStartedByHandWithExplicitFlags) {
  const std::string data = data_flags();
  auto r = cakes("train" + train_flags() + data + "--out-dir " + path("one"));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const int port = cakes::dist::free_loopback_port();
  const auto ranks = [&](int rank) {
    return "train" + train_flags() + data + "--sync-bn --world-size 2 --rank " +
           std::to_string(rank) + " --master-addr 127.0.0.1 --master-port " +
           std::to_string(port) +
           " --dist-backend gloo --dist-timeout 60 --out-dir " + path("hand");
  };
  // Rank 1 first: it waits for rank 0's store.
  Process p1 = start(ranks(1));
  Process p0 = start(ranks(0));
  const Result r0 = p0.wait(), r1 = p1.wait();
  ASSERT_EQ(r0.rc, 0) << r0.out << r0.err;
  ASSERT_EQ(r1.rc, 0) << r1.out << r1.err;
  EXPECT_EQ(lines_with(r0.out, "training ").size(), 1u) << r0.out;
  EXPECT_EQ(r1.out, ""); // rank 1 reports nothing
  EXPECT_EQ(log_of(path("hand")).size(), 2u);
  expect_close(
      path("hand") + "/checkpoint.pt", path("one") + "/checkpoint.pt", 1e-5);
}

TEST_F(DistCli, ARankKilledMidTrainingStopsTheJobAndResumeContinues) {
  const std::string data = data_flags();
  const std::string run = path("killed");
  const std::string train =
      "train" + train_flags(/*epochs=*/6) + data + "--dist-timeout 10 ";
  Process launcher = start("launch --nproc 2 -- " + train + "--out-dir " + run);
  // Once the first epoch's checkpoint is there, rank 1 is killed during a
  // later epoch.
  const std::string ckpt = run + "/checkpoint.pt";
  const auto t0 = Clock::now();
  while (!fs::exists(ckpt) &&
         std::chrono::duration<double>(Clock::now() - t0).count() < 120)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(fs::exists(ckpt));
  const pid_t rank1 = child_with_rank(launcher.pid(), 1);
  ASSERT_GT(rank1, 0);
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  const auto killed = Clock::now();
  const Result r = launcher.wait(60);
  const double after =
      std::chrono::duration<double>(Clock::now() - killed).count();
  EXPECT_NE(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.rc, -1) << "the launcher did not stop";
  EXPECT_LT(after, 10.0); // within --dist-timeout
  // The launcher's line names the rank and how it ended; rank 0 wrote one
  // line (its collective failed, or the launcher stopped it).
  const auto launch_lines = lines_with(r.err, "cakes launch:");
  ASSERT_EQ(launch_lines.size(), 1u) << r.err;
  EXPECT_NE(
      launch_lines[0].find("rank 1 was killed by signal 9"), std::string::npos)
      << r.err;
  const auto rank0_lines = lines_with(r.err, "cakes: error: ");
  ASSERT_EQ(rank0_lines.size(), 1u) << r.err;
  EXPECT_NE(rank0_lines[0].find("rank 0 of 2"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err).size(), 2u) << r.err;

  // The last checkpoint is whole and --resume continues it to the end.
  const auto meta = cakes::train::read_checkpoint_meta(ckpt);
  ASSERT_GE(meta.epoch, 1);
  ASSERT_LT(meta.epoch, 6);
  const int64_t end = 6; // the same command line, plus --resume
  const Result resumed =
      cakes("launch --nproc 2 -- " + train + "--resume --out-dir " + run);
  ASSERT_EQ(resumed.rc, 0) << resumed.out << resumed.err;
  EXPECT_NE(
      resumed.out.find("after epoch " + std::to_string(meta.epoch)),
      std::string::npos)
      << resumed.out;
  EXPECT_EQ(cakes::train::read_checkpoint_meta(ckpt).epoch, end);
  EXPECT_EQ(static_cast<int64_t>(log_of(run).size()), end);
}

TEST_F(DistCli, BadOrMissingPeersAreOneLineErrors) {
  const std::string data = data_flags();
  const auto one_error = [](const Result& r, const std::string& needle) {
    EXPECT_NE(r.rc, 0);
    const auto l = lines(r.err);
    ASSERT_EQ(l.size(), 1u) << r.err;
    EXPECT_EQ(l[0].rfind("cakes: error: ", 0), 0u) << l[0];
    EXPECT_NE(l[0].find(needle), std::string::npos) << l[0];
  };
  // Nobody serves the rendezvous: rank 1 gives up after its timeout.
  const int port = cakes::dist::free_loopback_port();
  const Result alone = cakes(
      "train" + train_flags() + data +
      "--world-size 2 --rank 1 --master-addr 127.0.0.1 --master-port " +
      std::to_string(port) + " --dist-timeout 1 --out-dir " + path("alone"));
  one_error(alone, "rendezvous at 127.0.0.1:" + std::to_string(port));
  EXPECT_LT(alone.seconds, 30);
  // Bad job flags of `cakes train` (flags -> what the line names).
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--world-size 2 --rank 2", "rank"},
      {"--world-size 3 --rank 0", "--batch 4 is the global batch"},
      {"--world-size 2 --rank 0 --dist-timeout 0", "timeout must be positive"},
      {"--world-size 2 --rank 0 --dist-backend mpi",
       "unknown distributed backend 'mpi'"},
  };
  for (const auto& [flags, needle] : bad)
    one_error(
        cakes(
            "train" + train_flags() + data + flags + " --out-dir " + path("x")),
        needle);
  one_error(
      cakes(
          "search --net i3d_resnet18 --width 4 --batch 3 --world-size 2 "
          "--rank 0" +
          data + "--out-dir " + path("x")),
      "--batch 3 is the global batch");
}

// C mode (the L1 term on the averaged gradients) and P mode (the same
// channel subset on every rank, drawn from the step): two processes with
// --sync-bn derive the configuration one process derives on the same global
// batch.
TEST_F(DistCli, SearchUnderTheLauncherDerivesWhatOneProcessDerives) {
  const std::string data = data_flags();
  for (const std::string mode : {"C", "P"}) {
    SCOPED_TRACE("mode " + mode);
    const std::string flags =
        " --net i3d_resnet18 --width 4 --candidates video_123d --mode " + mode +
        " --epochs 2 --batch 4 --workers 1 --threads 1 --seed 1 --dropout 0" +
        data;
    const std::string one = path("search_one_" + mode),
                      two = path("search_two_" + mode);
    auto r = cakes("search" + flags + "--out-dir " + one);
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
    r = cakes(
        "launch --nproc 2 -- search" + flags + "--sync-bn --out-dir " + two);
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
    EXPECT_EQ(lines_with(r.out, "wrote ").size(), 1u) << r.out;
    const std::string config = slurp(one + "/config.json");
    ASSERT_FALSE(config.empty());
    EXPECT_EQ(slurp(two + "/config.json"), config);
    auto a =
        cakes::search::load_search_checkpoint(two + "/search.ckpt", nullptr);
    auto b =
        cakes::search::load_search_checkpoint(one + "/search.ckpt", nullptr);
    // The weights agree up to float32 rounding that training amplifies (the
    // two processes sum gradients and BatchNorm statistics in another
    // order): about 1e-4 of a tensor's largest entry here.
    std::string worst;
    EXPECT_LE(
        max_relative_difference(*a.model.module, *b.model.module, &worst), 1e-3)
        << worst;
  }
}

} // namespace
