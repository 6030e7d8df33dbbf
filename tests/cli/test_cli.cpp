// The CLI end to end through the built `cakes` executable: synth writes
// readable data, train/eval/resume work on it, bad input is one line and a
// non-zero exit.
#include "cakes/data/jpeg.h"
#include "cakes/data/nifti.h"
#include "cakes/data/video_reader.h"
#include "cakes/search/run.h"
#include "cakes/train/checkpoint.h"

#include "support/kill.h"
#include "support/temp_dir.h"
#include "support/text.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Result {
  int rc = -1;
  std::string out, err;
};

using cakes::test::lines;
using cakes::test::slurp;

// One data set and one training run shared by the tests (each costs seconds).
class Cli : public ::testing::Test {
protected:
  static fs::path dir() {
    // Removed when the test program exits.
    static const cakes::test::TempDir d("cli");
    return d.path();
  }

  static Result cakes(const std::string& args) {
    const fs::path o = dir() / "stdout.txt", e = dir() / "stderr.txt";
    const std::string cmd = "OMP_NUM_THREADS=2 " +
                            std::string(CAKES_BINARY_DIR) + "/cakes " + args +
                            " > " + o.string() + " 2> " + e.string();
    const int status = std::system(cmd.c_str());
    Result r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(o);
    r.err = slurp(e);
    return r;
  }

  static std::string synth() {
    static const bool made = [] {
      const auto r = cakes(
          "synth --out " + (dir() / "synth").string() +
          " --videos 8 --val-videos 4 --frames 8 --size 24 --seed 3");
      EXPECT_EQ(r.rc, 0) << r.err;
      return r.rc == 0;
    }();
    EXPECT_TRUE(made);
    return (dir() / "synth").string();
  }

  static std::string data_flags() {
    const std::string s = synth();
    return " --frames-list " + s + "/train.txt --frames-val-list " + s +
           "/val.txt --categories " + s + "/category.txt --frames 4 --size 16 ";
  }

  static std::string net_flags() {
    return " --net i3d_resnet18 --width 4 --op conv3d ";
  }

  // A one-epoch run in dir()/run; trained once.
  static std::string trained() {
    static const bool ok = [] {
      const auto r = cakes(
          "train" + net_flags() + data_flags() +
          "--epochs 1 --batch 4 --lr 0.01 --workers 1 --threads 2 --out-dir " +
          (dir() / "run").string());
      EXPECT_EQ(r.rc, 0) << r.out << r.err;
      return r.rc == 0;
    }();
    EXPECT_TRUE(ok);
    return (dir() / "run").string();
  }

  static void
  expect_one_line_error(const Result& r, const std::string& needle) {
    EXPECT_NE(r.rc, 0);
    const auto l = lines(r.err);
    ASSERT_EQ(l.size(), 1u) << r.err;
    EXPECT_EQ(l[0].rfind("cakes: error: ", 0), 0u) << l[0];
    EXPECT_NE(l[0].find(needle), std::string::npos) << l[0];
  }
};

TEST_F(Cli, SynthWritesBalancedReadableFramesAndMp4) {
  const fs::path s = synth();
  EXPECT_EQ(lines(slurp(s / "category.txt")).size(), 4u);
  for (const auto& [list, n] :
       std::map<std::string, int>{{"train", 8}, {"val", 4}}) {
    const auto entries = lines(slurp(s / (list + ".txt")));
    ASSERT_EQ(int(entries.size()), n);
    std::map<int, int> per_class;
    for (const auto& e : entries) {
      std::istringstream f(e);
      std::string folder;
      int frames = 0, label = -1;
      f >> folder >> frames >> label;
      EXPECT_EQ(frames, 8);
      ++per_class[label];
      const auto img =
          cakes::data::read_jpeg((s / folder / "00008.jpg").string());
      EXPECT_EQ(img.sizes(), (c10::IntArrayRef{24, 24, 3}));
    }
    ASSERT_EQ(per_class.size(), 4u);
    for (const auto& [label, count] : per_class)
      EXPECT_EQ(count, n / 4) << "class " << label;
    const auto videos = lines(slurp(s / (list + "_videos.txt")));
    ASSERT_EQ(int(videos.size()), n);
    std::istringstream f(videos[0]);
    std::string path;
    f >> path;
    cakes::data::VideoReader reader((s / path).string());
    EXPECT_EQ(reader.width(), 24);
    EXPECT_EQ(reader.read_all().size(0), 8);
  }
}

TEST_F(Cli, SynthRefusesToOverwriteWithoutForce) {
  synth();
  expect_one_line_error(
      cakes("synth --out " + (dir() / "synth").string() + " --videos 4"),
      "--force");
}

TEST_F(Cli, TrainThenEvalFromItsCheckpoint) {
  const fs::path run = trained();
  EXPECT_TRUE(fs::exists(run / "checkpoint.pt"));
  EXPECT_EQ(lines(slurp(run / "log.jsonl")).size(), 1u);
  const auto out = dir() / "eval.json";
  const auto r = cakes(
      "eval" + net_flags() + data_flags() + "--checkpoint " +
      (run / "checkpoint.pt").string() + " --clips 2 --out " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("top-1"), std::string::npos) << r.out;
  const auto j = slurp(out);
  EXPECT_NE(j.find("\"videos\": 4"), std::string::npos) << j;
  // An existing --out is kept unless --force.
  expect_one_line_error(
      cakes(
          "eval" + net_flags() + data_flags() + "--checkpoint " +
          (run / "checkpoint.pt").string() + " --out " + out.string()),
      out.string());
}

TEST_F(Cli, ResumeContinuesTheRun) {
  const fs::path run = dir() / "resume";
  fs::create_directories(run);
  fs::copy(fs::path(trained()) / "checkpoint.pt", run / "checkpoint.pt");
  fs::copy(fs::path(trained()) / "log.jsonl", run / "log.jsonl");
  // Two epochs where the run planned one: its schedule would be re-planned
  // (a cosine one sends the learning rate back up), so only on request.
  const std::string before = slurp(run / "checkpoint.pt");
  const std::string extend =
      "train" + net_flags() + data_flags() +
      "--epochs 2 --batch 4 --lr 0.01 --workers 1 --threads 2 --resume "
      "--out-dir " +
      run.string();
  expect_one_line_error(cakes(extend), "--epochs 1 then, 2 now");
  EXPECT_EQ(slurp(run / "checkpoint.pt"), before);
  const auto r = cakes(extend + " --reschedule");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("after epoch 1"), std::string::npos) << r.out;
  EXPECT_EQ(
      cakes::train::read_checkpoint_meta((run / "checkpoint.pt").string())
          .epoch,
      2);
  EXPECT_EQ(lines(slurp(run / "log.jsonl")).size(), 2u);
}

TEST_F(Cli, ExistingCheckpointNeedsResumeOrForce) {
  const std::string run = trained();
  expect_one_line_error(
      cakes(
          "train" + net_flags() + data_flags() +
          "--epochs 1 --batch 4 --out-dir " + run),
      "--force");
}

TEST_F(Cli, CheckpointOfAnotherNetworkNamesBoth) {
  const std::string run = trained();
  const auto r = cakes(
      "eval --net i3d_resnet18 --width 4 --op conv2d" + data_flags() +
      "--checkpoint " + run + "/checkpoint.pt");
  // The first difference, saved vs wanted.
  expect_one_line_error(r, "operation conv3d vs conv2d");
}

TEST_F(Cli, MissingListIsOneLineNamingIt) {
  const std::string missing = (dir() / "no_such_list.txt").string();
  expect_one_line_error(
      cakes(
          "train" + net_flags() + "--frames-list " + missing +
          " --num-classes 4 --epochs 1 --out-dir " + (dir() / "x").string()),
      missing);
}

// A tiny Decathlon-style task: bright voxels are class 1, the rest 0.
TEST_F(Cli, VolumeTrainEvalAndInferKeepsTheAffine) {
  const fs::path msd = dir() / "msd";
  fs::create_directories(msd / "imagesTr");
  fs::create_directories(msd / "labelsTr");
  torch::manual_seed(0);
  const auto labels = (torch::rand({32, 32, 16}) > 0.7).to(torch::kLong);
  cakes::data::Volume like;
  like.affine = {-2, 0, 0, 10, 0, 0, 3, -254, 0, 2, 0, 5, 0, 0, 0, 1};
  like.spacing = {2, 2, 3};
  like.sform_code = 1;
  cakes::data::write_nifti_labels(
      (msd / "imagesTr/a.nii.gz").string(), labels * 100 + 20, like);
  cakes::data::write_nifti_labels(
      (msd / "labelsTr/a.nii.gz").string(), labels, like);
  std::ofstream(msd / "dataset.json")
      << R"({"name": "tiny", "modality": {"0": "MRI"},
             "labels": {"0": "background", "1": "bright"},
             "training": [{"image": "./imagesTr/a.nii.gz",
                           "label": "./labelsTr/a.nii.gz"}]})";
  const std::string net = " --net res_encoder_decoder --width 4 --op conv3d ";
  const auto run = dir() / "vol";
  auto r = cakes(
      "train" + net + "--msd " + msd.string() +
      " --patch 32 32 16 --epochs 2 --batch 1 --lr 0.01 --optimizer adamw "
      "--workers 0 --threads 2 --out-dir " +
      run.string());
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  r = cakes(
      "eval" + net + "--msd " + msd.string() +
      " --window 32 32 16 --checkpoint " + (run / "checkpoint.pt").string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("dice bright"), std::string::npos) << r.out;
  const auto out = dir() / "pred.nii.gz";
  r = cakes(
      "infer" + net + "--num-classes 2 --window 32 32 16 --checkpoint " +
      (run / "checkpoint.pt").string() + " --input " +
      (msd / "imagesTr/a.nii.gz").string() + " --output " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto pred = cakes::data::read_nifti(out.string());
  EXPECT_EQ(pred.data.sizes(), labels.sizes());
  for (int i = 0; i < 16; ++i)
    EXPECT_DOUBLE_EQ(pred.affine[i], like.affine[i]) << "affine entry " << i;
  EXPECT_TRUE((pred.data >= 0).logical_and(pred.data <= 1).all().item<bool>());
  // A second run keeps the first prediction unless --force.
  expect_one_line_error(
      cakes(
          "infer" + net + "--num-classes 2 --window 32 32 16 --checkpoint " +
          (run / "checkpoint.pt").string() + " --input " +
          (msd / "imagesTr/a.nii.gz").string() + " --output " + out.string()),
      "--force");
}

// docs/CAKES.md §4 on the command line: a short search, a latency table
// measured on this machine (few repeats, tiny network), then a derivation under
// a latency budget whose modelled latency is reported and within it, and which
// `cakes info` accepts; an infeasible budget and a table of another width are
// one line each.
// The same command twice gives the same search: the super-network's initial
// weights come from --seed (LibTorch seeds its own generator from entropy),
// the loader's order and P's subsets too. Two loader workers and two threads
// make it a test of the data order as well.
TEST_F(Cli, SearchIsRepeatable) {
  std::vector<std::string> configs;
  for (const char* mode : {"C", "C", "P", "P"}) {
    const std::string out =
        (dir() / ("repeat_" + std::to_string(configs.size()))).string();
    const auto r = cakes(
        "search --net i3d_resnet18 --width 4 --candidates video_123d --mode " +
        std::string(mode) + " --epochs 1 --batch 4 --workers 2 --threads 2 " +
        "--seed 5" + data_flags() + "--out-dir " + out);
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
    configs.push_back(slurp(fs::path(out) / "config.json"));
  }
  EXPECT_EQ(configs[0], configs[1]);
  EXPECT_EQ(configs[2], configs[3]);
  EXPECT_NE(configs[0], configs[2]);
}

TEST_F(Cli, SearchProfileThenDeriveUnderALatencyBudget) {
  const std::string search = (dir() / "search").string();
  auto r = cakes(
      "search --net i3d_resnet18 --width 4 --candidates video_123d --mode C "
      "--epochs 1 --batch 4 --workers 1 --threads 2" +
      data_flags() + "--out-dir " + search);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const std::string table = (dir() / "latency.json").string();
  r = cakes(
      "profile --net i3d_resnet18 --width 4 --candidates video_123d --input "
      "1x3x4x16x16 --repeats 3 --threads 2 --out " +
      table);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("at input 1x3x4x16x16"), std::string::npos) << r.out;
  const auto t = nlohmann::json::parse(slurp(table));
  const auto layer_ms =
      t.at("layer_ms").get<std::vector<std::vector<double>>>();
  ASSERT_EQ(layer_ms.size(), 16u); // every position of ResNet-18 is searched
  const double rest = t.at("rest_ms").get<double>();
  double lowest = rest, highest = rest;
  for (const auto& row : layer_ms) {
    lowest += *std::min_element(row.begin(), row.end());
    highest += *std::max_element(row.begin(), row.end());
  }
  ASSERT_LT(lowest, highest);

  // A budget between the cheapest and the dearest derivation.
  const double target = lowest + 0.3 * (highest - lowest);
  const std::string config = (dir() / "latency_config.json").string();
  const std::string derive = "derive --from " + search +
                             "/search.ckpt --latency-table " + table +
                             " --out " + config;
  r = cakes(derive + " --target-latency " + std::to_string(target));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const auto at = r.out.find("modelled latency ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double reported = std::stod(r.out.substr(at + 17));
  EXPECT_LE(reported, target * (1 + 1e-6)) << r.out;
  // The report is the table's model of the written configuration.
  const auto blocks = nlohmann::ordered_json::parse(slurp(config)).at("blocks");
  ASSERT_EQ(blocks.size(), layer_ms.size());
  const std::vector<std::string> cands = {"3x3x3", "1x3x3", "3x1x1"};
  double modelled = rest;
  for (size_t l = 0; l < blocks.size(); ++l) {
    double width = 0;
    for (const auto& k : cands)
      width += blocks[l].at(k).get<double>();
    for (size_t n = 0; n < cands.size(); ++n)
      modelled += blocks[l].at(cands[n]).get<double>() * layer_ms[l][n] / width;
  }
  EXPECT_NEAR(reported, modelled, 1e-4 * modelled + 1e-6) << r.out;
  r = cakes(
      "info --net i3d_resnet18 --width 4 --frames 4 --size 16 --config " +
      config);
  EXPECT_EQ(r.rc, 0) << r.err;

  expect_one_line_error(
      cakes(derive + " --target-latency " + std::to_string(0.5 * lowest)),
      "infeasible");
  const std::string other = (dir() / "latency_w8.json").string();
  r = cakes(
      "profile --net i3d_resnet18 --width 8 --candidates video_123d --input "
      "1x3x4x16x16 --repeats 1 --threads 2 --out " +
      other);
  ASSERT_EQ(r.rc, 0) << r.err;
  expect_one_line_error(
      cakes(
          "derive --from " + search + "/search.ckpt --latency-table " + other +
          " --out " + config + " --target-latency " + std::to_string(target)),
      "latency table is for i3d_resnet18 width 8");

  // Outputs that exist are kept unless --force, and an input is never an
  // output (issue 16: derive --out search.ckpt replaced the checkpoint).
  const std::string ckpt = search + "/search.ckpt";
  const std::string ckpt_bytes = slurp(ckpt), config_bytes = slurp(config),
                    table_bytes = slurp(table);
  expect_one_line_error(
      cakes(
          "derive --from " + ckpt + " --out " + ckpt +
          " --target-macs 0.5 --force"),
      "is also an input");
  expect_one_line_error(
      cakes(
          "derive --from " + ckpt + " --out " + search + "/../search/" +
          "search.ckpt --target-macs 0.5"),
      "is also an input");
  expect_one_line_error(
      cakes(
          "derive --from " + ckpt + " --out " + config + " --target-macs 0.5"),
      "--force");
  expect_one_line_error(
      cakes(
          "profile --net i3d_resnet18 --width 4 --input 1x3x4x16x16 --out " +
          table),
      "--force");
  expect_one_line_error(
      cakes(
          "search --net i3d_resnet18 --width 4 --epochs 1 --batch 4" +
          data_flags() + "--out-dir " + search),
      "--force");
  EXPECT_EQ(slurp(ckpt), ckpt_bytes);
  EXPECT_EQ(slurp(config), config_bytes);
  EXPECT_EQ(slurp(table), table_bytes);
  r = cakes(
      "derive --from " + ckpt + " --out " + config +
      " --target-macs 0.5 --force");
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST_F(Cli, ForceKeepsTheOldRunWhenTheDataDoesNotRead) {
  const std::string run = trained();
  const std::string ckpt_bytes = slurp(fs::path(run) / "checkpoint.pt"),
                    log_bytes = slurp(fs::path(run) / "log.jsonl");
  // Frames that are not JPEGs: the run fails before it replaces anything.
  const fs::path bad = dir() / "bad_frames";
  fs::create_directories(bad / "clip");
  for (int i = 1; i <= 8; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%05d.jpg", i);
    std::ofstream(bad / "clip" / name) << "not a jpeg";
  }
  std::ofstream(bad / "list.txt") << (bad / "clip").string() << " 8 0\n";
  const auto r = cakes(
      "train" + net_flags() + " --frames-list " + (bad / "list.txt").string() +
      " --categories " + synth() +
      "/category.txt --frames 4 --size 16 --epochs 1 --batch 1 --force "
      "--out-dir " +
      run);
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(slurp(fs::path(run) / "checkpoint.pt"), ckpt_bytes);
  EXPECT_EQ(slurp(fs::path(run) / "log.jsonl"), log_bytes);
}

// Every bad command line of the reliability issue, and one of each class
// they stand for: a non-zero exit by the program itself (no signal), exactly
// one line on stderr, starting with "cakes" and naming the flag or file.
TEST_F(Cli, BadCommandLinesAreOneLineNamingTheInput) {
  const std::string t = "train" + net_flags() + data_flags() +
                        " --epochs 1 --out-dir " +
                        (dir() / "never_written").string() + " ";
  const fs::path deep = dir() / "deep.json";
  std::ofstream(deep) << std::string(100000, '[') << std::string(100000, ']');
  const fs::path array = dir() / "array.json";
  std::ofstream(array) << "[1, 2]";
  const std::vector<std::pair<std::string, std::string>> table = {
      // Numbers read as flags, CLI11's unreadable range messages.
      {t + "--threads -5", "--threads"},
      {t + "--batch 0", "--batch"},
      {"launch --nproc 0 -- info", "--nproc"},
      // Not finite, out of range.
      {t + "--warmup nan", "--warmup"},
      {t + "--clip -1", "--clip"},
      {t + "--clip nan", "--clip"},
      {t + "--lr inf", "--lr"},
      {t + "--lr -0.1", "--lr"},
      {t + "--foreground -1", "--foreground"},
      {t + "--foreground nan", "--foreground"},
      {t + "--num-classes 0", "--num-classes"},
      {t + "--log-every 0", "--log-every"},
      {"launch --nproc 1 --master-port 70000 -- info", "--master-port"},
      {"launch --nproc 1 --master-port -1 -- info", "--master-port"},
      {"launch --nproc 1 -- launch --nproc 1 -- info", "another launch"},
      {"eval" + net_flags() + data_flags() + "--checkpoint x --overlap 1",
       "--overlap"},
      // No bound: refused before any work.
      {t + "--workers 100000", "--workers"},
      {t + "--threads 100000", "--threads"},
      {t + "--frames 100000", "--frames"},
      {t + "--patch 1000 1000 1000", "--patch"},
      {"bench model --net i3d_resnet18 --size 4096", "--size"},
      {"info --net i3d_resnet18 --size 100000 --batch 100000", "--size"},
      {"bench layer --input 4x4x4611686018427387905x1", "--input"},
      // Arithmetic that crashed or overflowed.
      {"bench layer --input 1x4x8x8 --stride 0x1x1", "stride"},
      {"bench layer --split "
       "3x3x3:9223372036854775807,1x3x3:9223372036854775807,3x1x1:18",
       "3x3x3:9223372036854775807"},
      // Configurations: nested (crashed), of the wrong shape (raw JSON text).
      {"info --net i3d_resnet18 --config " + deep.string(), deep.string()},
      {"info --net i3d_resnet18 --config " + array.string(), array.string()},
      // Labels the data set does not have (failed mid-epoch).
      {t + "--flip-swaps 0:9", "--flip-swaps 0:9"},
      // Files that are missing.
      {"eval" + net_flags() + data_flags() + "--checkpoint " +
           (dir() / "missing.pt").string(),
       "missing.pt"},
  };
  for (const auto& [args, needle] : table) {
    SCOPED_TRACE(args);
    const Result r = cakes(args);
    EXPECT_GT(r.rc, 0);
    EXPECT_LT(r.rc, 128); // the shell's code for a child killed by a signal
    expect_one_line_error(r, needle);
  }
  EXPECT_FALSE(fs::exists(dir() / "never_written"));
}

class SearchCli : public Cli {
protected:
  // A tiny search for the resume tests: one thread and a fixed seed, so that
  // a search resumed from any epoch's checkpoint must end where the
  // uninterrupted one does.
  static std::string search_args(const std::string& mode, const fs::path& out) {
    return "search --net i3d_resnet18 --width 8 --candidates video_123d "
           "--mode " +
           mode +
           " --epochs 4 --batch 2 --workers 0 --threads 1 --log-every 2 "
           "--seed 7" +
           data_flags() + "--out-dir " + out.string();
  }

  // The uninterrupted search of `mode`, run once per mode.
  static fs::path uninterrupted(const std::string& mode) {
    static std::map<std::string, fs::path> done;
    if (!done.count(mode)) {
      const fs::path out = dir() / ("search_whole_" + mode);
      const auto r = cakes(search_args(mode, out));
      EXPECT_EQ(r.rc, 0) << r.out << r.err;
      done[mode] = out;
    }
    return done[mode];
  }

  // The same configuration, the same super-network weights and buffers
  // (exactly), and the same losses logged epoch by epoch.
  static void expect_same_search(const fs::path& want, const fs::path& got) {
    EXPECT_EQ(slurp(got / "config.json"), slurp(want / "config.json"));
    const auto a = cakes::search::load_search_checkpoint(
        (want / "search.ckpt").string(), nullptr);
    const auto b = cakes::search::load_search_checkpoint(
        (got / "search.ckpt").string(), nullptr);
    const auto compare = [](const auto& x, const auto& y) {
      ASSERT_EQ(x.size(), y.size());
      for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_EQ(x[i].key(), y[i].key());
        EXPECT_TRUE(torch::equal(x[i].value(), y[i].value())) << x[i].key();
      }
    };
    compare(
        a.model.module->named_parameters(true),
        b.model.module->named_parameters(true));
    compare(
        a.model.module->named_buffers(true),
        b.model.module->named_buffers(true));
    const auto la = lines(slurp(want / "search.log.jsonl")),
               lb = lines(slurp(got / "search.log.jsonl"));
    ASSERT_EQ(lb.size(), la.size()) << slurp(got / "search.log.jsonl");
    for (size_t e = 0; e < la.size(); ++e) {
      const auto ja = nlohmann::json::parse(la[e]),
                 jb = nlohmann::json::parse(lb[e]);
      EXPECT_EQ(jb.at("epoch"), e);
      EXPECT_EQ(jb.at("loss"), ja.at("loss")) << "epoch " << e;
      EXPECT_EQ(jb.at("kept_3x3x3"), ja.at("kept_3x3x3")) << "epoch " << e;
    }
  }
};

// `search --resume` continues an interrupted search to the result of the
// uninterrupted one, in both modes: killed once its first epoch's checkpoint
// is written, then resumed. Before that, what --resume refuses: another
// search setting or schedule, and a search folder without --resume or
// --force; the checkpoint is untouched by each refusal.
TEST_F(SearchCli, ResumedSearchEqualsTheUninterruptedOne) {
  for (const std::string mode : {"C", "P"}) {
    const fs::path out = dir() / ("search_resumed_" + mode),
                   ckpt = out / "search.ckpt";
    const std::string args = search_args(mode, out);
    const pid_t pid = cakes::test::start_command(
        std::string(CAKES_BINARY_DIR) + "/cakes " + args);
    ASSERT_TRUE(cakes::test::kill_when(pid, [&] {
      return cakes::test::mtime(ckpt) != fs::file_time_type::min();
    })) << "the search ended before it could be interrupted";
    const int64_t stopped = cakes::train::read_checkpoint_meta(ckpt).epoch;
    ASSERT_GE(stopped, 1);
    ASSERT_LT(stopped, 4);
    const std::string saved = slurp(ckpt);

    Result r = cakes(args);
    expect_one_line_error(r, "give --resume to continue it or --force");
    // `args` with one flag's value changed.
    const auto changed = [&](const std::string& from, const std::string& to) {
      const size_t at = args.find(from);
      EXPECT_NE(at, std::string::npos) << from;
      return std::string(args).replace(at, from.size(), to);
    };
    r = cakes(changed("--batch 2", "--batch 4") + " --resume");
    expect_one_line_error(r, "--batch 2, not 4");
    if (mode == "C") {
      r = cakes(args + " --resume --sparsity 0.001");
      expect_one_line_error(r, "--sparsity 0.0001, not 0.001");
    }
    r = cakes(changed("--epochs 4", "--epochs 5") + " --resume");
    expect_one_line_error(r, "--epochs 4 then, 5 now");
    EXPECT_EQ(slurp(ckpt), saved);

    r = cakes(args + " --resume");
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
    EXPECT_NE(
        r.out.find(
            "resuming " + ckpt.string() + " after epoch " +
            std::to_string(stopped)),
        std::string::npos)
        << r.out;
    expect_same_search(uninterrupted(mode), out);
  }
}

// The search's rate is constant: a finished search of 2 epochs continued with
// --resume --epochs 4 --reschedule is the search of 4 epochs.
TEST_F(SearchCli, RescheduledResumeLengthensTheSearch) {
  const fs::path out = dir() / "search_lengthened";
  std::string args = search_args("C", out);
  const size_t at = args.find("--epochs 4");
  ASSERT_NE(at, std::string::npos);
  const auto r = cakes(std::string(args).replace(at, 10, "--epochs 2"));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const auto r2 = cakes(args + " --resume --reschedule");
  ASSERT_EQ(r2.rc, 0) << r2.out << r2.err;
  expect_same_search(uninterrupted("C"), out);
}

// The header, progress lines (stdout is not a terminal: one every
// --log-every steps) and each epoch's line with the importance summary.
TEST_F(SearchCli, SearchShowsItsProgress) {
  const auto r = cakes(
      "search --net i3d_resnet18 --width 4 --candidates video_123d --mode C "
      "--epochs 1 --batch 2 --workers 0 --threads 1 --log-every 2 --seed 7" +
      data_flags() + "--out-dir " + (dir() / "search_shown").string());
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const auto l = lines(r.out);
  ASSERT_GE(l.size(), 4u) << r.out;
  EXPECT_EQ(l[0].rfind("searching i3d_resnet18 width 4, mode C", 0), 0u)
      << l[0];
  EXPECT_NE(l[0].find("candidates 3x3x3,1x3x3,3x1x1"), std::string::npos);
  EXPECT_NE(
      r.out.find("1 epochs x 4 steps of batch 2, 1 threads"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("epoch 1/1 2/4 loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch 1/1 4/4 loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epoch 1/1: loss "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("; derived now keeps 3x3x3 "), std::string::npos)
      << r.out;
  // The shares logged are those of the derivation: they sum to one.
  const auto log = lines(slurp(dir() / "search_shown" / "search.log.jsonl"));
  ASSERT_EQ(log.size(), 1u);
  const auto j = nlohmann::json::parse(log[0]);
  EXPECT_NEAR(
      j.at("kept_3x3x3").get<double>() + j.at("kept_1x3x3").get<double>() +
          j.at("kept_3x1x1").get<double>(),
      1.0,
      1e-9);
  EXPECT_TRUE(j.contains("derived_top1"));
}

// kill -9 of `cakes search` in and around its checkpoint writes, as
// Cli.KilledTrainingResumesWithEveryEpochLogged does for train: after every
// kill the checkpoint on disk loads, and the search resumed to its end is
// the uninterrupted one.
TEST_F(SearchCli, KilledSearchResumesToTheSameResult) {
  const fs::path out = dir() / "search_killed", ckpt = out / "search.ckpt";
  const std::string args = search_args("C", out);
  const auto moments = cakes::test::kill_around_checkpoints(
      std::string(CAKES_BINARY_DIR) + "/cakes " + args,
      ckpt,
      [&](const std::string& when) {
        if (fs::exists(ckpt)) {
          EXPECT_NO_THROW(cakes::search::read_search_meta(ckpt.string()))
              << when;
        }
      });
  const auto r = cakes(args + (fs::exists(ckpt) ? " --resume" : " --force"));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  expect_same_search(uninterrupted("C"), out);
  if (moments.size() < 3)
    std::cout << "killed at " << moments.size() << " of 3 moments\n";
}

// kill -9 of `cakes train` in and around its checkpoint writes: while the
// temporary file is being written, just after it was renamed (before the log
// line is appended), and mid-epoch. Whatever the moment, the last checkpoint
// loads, --resume continues to the end, and the log has one line per epoch.
TEST_F(Cli, KilledTrainingResumesWithEveryEpochLogged) {
  const fs::path run = dir() / "killed";
  const std::string ckpt = (run / "checkpoint.pt").string();
  const int epochs = 6;
  const std::string args = "train" + net_flags() + data_flags() + "--epochs " +
                           std::to_string(epochs) +
                           " --batch 2 --lr 0.01 --workers 0 --threads 1 "
                           "--out-dir " +
                           run.string();
  const auto moments = cakes::test::kill_around_checkpoints(
      std::string(CAKES_BINARY_DIR) + "/cakes " + args,
      ckpt,
      [&](const std::string& when) {
        if (fs::exists(ckpt)) {
          // Whatever the moment, the checkpoint on disk is whole.
          EXPECT_NO_THROW(cakes::train::read_checkpoint_meta(ckpt)) << when;
        }
      });
  // The run finishes from wherever it stopped.
  const auto r = cakes(args + (fs::exists(ckpt) ? " --resume" : " --force"));
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_EQ(cakes::train::read_checkpoint_meta(ckpt).epoch, epochs);
  std::vector<std::string> log;
  for (const auto& l : lines(slurp(run / "log.jsonl")))
    if (nlohmann::json::parse(l).value("kind", "epoch") == "epoch")
      log.push_back(l);
  ASSERT_EQ(log.size(), size_t(epochs)) << slurp(run / "log.jsonl");
  for (int e = 0; e < epochs; ++e)
    EXPECT_EQ(nlohmann::json::parse(log[e]).at("epoch"), e) << log[e];
  // A kill that came too late for its moment (the run had ended) proves
  // nothing; the test still passes, but says so.
  if (moments.size() < 3)
    std::cout << "killed at " << moments.size() << " of 3 moments\n";
}

// Volumes with a held-out case (dataset.json's "validation"): three cases
// whose bright voxels are class 1, each with its own affine; trained once.
struct VolumeRun {
  fs::path msd, run;
  std::vector<std::array<double, 16>> affines;
  Result train;
};

const VolumeRun& volume_run(
    const std::function<Result(const std::string&)>& cakes,
    const fs::path& dir) {
  static const VolumeRun v = [&] {
    VolumeRun r;
    r.msd = dir / "msd_val";
    r.run = dir / "vol_val";
    fs::create_directories(r.msd / "imagesTr");
    fs::create_directories(r.msd / "labelsTr");
    torch::manual_seed(0);
    for (const char* name : {"a", "b", "c"}) {
      const auto labels = (torch::rand({32, 32, 16}) > 0.7).to(torch::kLong);
      cakes::data::Volume like;
      const double shift = double(r.affines.size());
      like.affine = {
          -2, 0, 0, 10 + shift, 0, 0, 3, -254, 0, 2, 0, 5, 0, 0, 0, 1};
      like.spacing = {2, 2, 3};
      like.sform_code = 1;
      r.affines.push_back(like.affine);
      const std::string file = std::string(name) + ".nii.gz";
      cakes::data::write_nifti_labels(
          (r.msd / "imagesTr" / file).string(), labels * 100 + 20, like);
      cakes::data::write_nifti_labels(
          (r.msd / "labelsTr" / file).string(), labels, like);
    }
    std::ofstream(r.msd / "dataset.json")
        << R"({"name": "tiny", "modality": {"0": "MRI"},
               "labels": {"0": "background", "1": "bright"},
               "training": [
                 {"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"},
                 {"image": "./imagesTr/b.nii.gz", "label": "./labelsTr/b.nii.gz"}],
               "validation": [
                 {"image": "./imagesTr/c.nii.gz", "label": "./labelsTr/c.nii.gz"}]})";
    r.train = cakes(
        "train --net res_encoder_decoder --width 4 --op conv3d --msd " +
        r.msd.string() +
        " --patch 32 32 16 --epochs 3 --batch 1 --lr 0.01 --optimizer adamw "
        "--val-every 1 --log-every 1 --workers 0 --threads 2 --out-dir " +
        r.run.string());
    return r;
  }();
  return v;
}

// Live validation of volumes: a Dice line as each epoch ends, step and epoch
// lines in the log, best.pt holding the best logged Dice, which eval of
// best.pt reproduces; and the log plots.
TEST_F(Cli, VolumeValidationPrintsDicePerEpochAndKeepsTheBest) {
  const auto& v = volume_run(cakes, dir());
  ASSERT_EQ(v.train.rc, 0) << v.train.out << v.train.err;
  const auto out = lines(v.train.out);
  std::vector<size_t> epoch_at, progress_at;
  for (size_t i = 0; i < out.size(); ++i) {
    for (int e = 1; e <= 3; ++e) {
      const std::string head = "epoch " + std::to_string(e) + "/3";
      if (out[i].rfind(head + ": ", 0) == 0) {
        epoch_at.push_back(i);
        EXPECT_NE(out[i].find("val_dice "), std::string::npos) << out[i];
        EXPECT_NE(out[i].find("bright "), std::string::npos) << out[i];
      } else if (out[i].rfind(head + " ", 0) == 0) {
        progress_at.push_back(i);
      }
    }
  }
  ASSERT_EQ(epoch_at.size(), 3u) << v.train.out;
  // Printed as the epoch ends: before the next epoch's progress lines.
  ASSERT_FALSE(progress_at.empty()) << v.train.out;
  EXPECT_LT(epoch_at[0], progress_at.back()) << v.train.out;

  std::vector<double> dice;
  int steps = 0;
  for (const auto& l : lines(slurp(v.run / "log.jsonl"))) {
    const auto j = nlohmann::json::parse(l);
    if (j.at("kind") == "step") {
      ++steps;
      EXPECT_TRUE(j.contains("lr") && j.contains("samples_per_s")) << l;
    } else {
      dice.push_back(j.at("val_dice").get<double>());
    }
  }
  EXPECT_EQ(steps, 6); // 2 training cases, batch 1, a line every step
  ASSERT_EQ(dice.size(), 3u);
  const double best = *std::max_element(dice.begin(), dice.end());
  const auto meta =
      cakes::train::read_checkpoint_meta((v.run / "best.pt").string());
  const auto recorded = nlohmann::json::parse(meta.sections.at("best"));
  EXPECT_EQ(recorded.at("metric"), "val_dice");
  EXPECT_DOUBLE_EQ(recorded.at("value").get<double>(), best);
  EXPECT_EQ(meta.epoch, recorded.at("epoch").get<int64_t>());
  EXPECT_EQ(dice[size_t(meta.epoch - 1)], best); // the first epoch reaching it
  // checkpoint.pt knows the best too (for --resume).
  EXPECT_EQ(
      cakes::train::read_checkpoint_meta((v.run / "checkpoint.pt").string())
          .sections.at("best"),
      meta.sections.at("best"));
  // eval of best.pt on the validation case gives the recorded Dice, and
  // says which case it is doing.
  auto r = cakes(
      "eval --msd " + v.msd.string() + " --checkpoint " +
      (v.run / "best.pt").string());
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("case 1/1 c.nii.gz: Dice "), std::string::npos) << r.out;
  r = cakes(
      "eval --msd " + v.msd.string() + " --json --checkpoint " +
      (v.run / "best.pt").string());
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NEAR(
      nlohmann::json::parse(r.out).at("mean_dice_foreground").get<double>(),
      best,
      1e-9);

  // cakes plot draws the step lines (thin) and the epoch lines.
  const auto svg = dir() / "vol_curves.svg";
  r = cakes("plot " + (v.run / "log.jsonl").string() + " -o " + svg.string());
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const std::string picture = slurp(svg);
  EXPECT_NE(picture.find("<svg"), std::string::npos);
  EXPECT_NE(picture.find("vol_val (steps)"), std::string::npos);
  EXPECT_NE(picture.find("val_dice"), std::string::npos);
}

TEST_F(Cli, InferOnAFolderOfVolumesKeepsEachAffine) {
  const auto& v = volume_run(cakes, dir());
  ASSERT_EQ(v.train.rc, 0) << v.train.out << v.train.err;
  const fs::path in = dir() / "infer_volumes", out = dir() / "labels_out";
  fs::create_directories(in);
  for (const char* name : {"a.nii.gz", "b.nii.gz"})
    fs::copy(v.msd / "imagesTr" / name, in / name);
  const std::string cmd = "infer --checkpoint " + (v.run / "best.pt").string() +
                          " --input " + in.string() + " --output " +
                          out.string();
  auto r = cakes(cmd);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("case 2/2 "), std::string::npos) << r.out;
  for (size_t i = 0; i < 2; ++i) {
    const auto pred =
        cakes::data::read_nifti((out / (i ? "b.nii.gz" : "a.nii.gz")).string());
    EXPECT_EQ(pred.data.sizes(), (c10::IntArrayRef{32, 32, 16}));
    for (int k = 0; k < 16; ++k)
      EXPECT_DOUBLE_EQ(pred.affine[k], v.affines[i][k]) << i << " " << k;
  }
  // The labels written are kept unless --force.
  expect_one_line_error(cakes(cmd), "--force");
  EXPECT_EQ(cakes(cmd + " --force").rc, 0);
}

TEST_F(Cli, InferOnAFolderOfVideosWritesOneCsv) {
  const fs::path run = trained();
  const fs::path s = synth(), in = dir() / "infer_videos";
  fs::create_directories(in);
  const auto videos = lines(slurp(s / "val_videos.txt"));
  ASSERT_GE(videos.size(), 2u);
  std::vector<std::string> names;
  for (size_t i = 0; i < 2; ++i) {
    std::istringstream f(videos[i]);
    std::string path;
    f >> path;
    names.push_back(fs::path(path).filename().string());
    fs::copy(s / path, in / names.back());
  }
  std::ofstream(in / "notes.md") << "not a video: ignored\n";
  const auto csv = dir() / "results.csv";
  const std::string cmd = "infer --checkpoint " +
                          (run / "checkpoint.pt").string() + " --input " +
                          in.string() + " --top 3 --output " + csv.string();
  auto r = cakes(cmd);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const auto rows = lines(slurp(csv));
  ASSERT_EQ(rows.size(), 3u) << slurp(csv);
  EXPECT_EQ(
      rows[0],
      "path,class_1,probability_1,class_2,probability_2,class_3,"
      "probability_3");
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(rows[i + 1].rfind((in / names[i]).string() + ",", 0), 0u)
        << rows[i + 1];
    EXPECT_EQ(std::count(rows[i + 1].begin(), rows[i + 1].end(), ','), 6)
        << rows[i + 1];
  }
  // A list file gives the same rows; a bad video among them is one line
  // naming it, and the existing table is kept.
  std::ofstream(in / "list.txt") << names[0] << "\n\n# a comment\n"
                                 << names[1] << "\n";
  const auto csv2 = dir() / "results2.csv";
  r = cakes(
      "infer --checkpoint " + (run / "checkpoint.pt").string() + " --input " +
      (in / "list.txt").string() + " --top 3 --output " + csv2.string());
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_EQ(lines(slurp(csv2)), rows);
  std::ofstream(in / "zz_broken.mp4") << "not a video";
  const std::string table = slurp(csv);
  expect_one_line_error(cakes(cmd + " --force"), "zz_broken.mp4");
  EXPECT_EQ(slurp(csv), table);
}

} // namespace
