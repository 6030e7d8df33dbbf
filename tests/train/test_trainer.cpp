// The trainer on a tiny 3D task: the class is the sign of the mean of a
// (1, 4, 4, 4) tensor; the model is a CAKES layer + pooling + dropout + linear
// (dropout makes the result depend on LibTorch's RNG, which resume restores).
#include "cakes/train/checkpoint.h"
#include "cakes/train/losses.h"
#include "cakes/train/schedule.h"
#include "cakes/train/trainer.h"

#include "support/temp_dir.h"
#include "support/tiny_task.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using namespace cakes::train;

using cakes::test::SignDataset;
using cakes::test::TempDir;
// Dropout makes the result depend on LibTorch's RNG, which resume restores.
struct TinyNet : cakes::test::TinyNet {
  TinyNet() : cakes::test::TinyNet(0.2) {}
};

LoaderOptions loader_options() {
  LoaderOptions o;
  o.batch_size = 8;
  o.num_workers = 2;
  o.seed = 11;
  return o;
}

TrainerOptions trainer_options(int64_t epochs, OptimizerKind kind) {
  TrainerOptions o;
  o.epochs = epochs;
  o.optimizer.kind = kind;
  o.optimizer.weight_decay = 1e-3;
  o.schedule.kind = ScheduleKind::cosine;
  o.schedule.base_lr = kind == OptimizerKind::sgd ? 0.1 : 0.01;
  o.schedule.warmup_epochs = 1;
  o.clip_grad_norm = 5;
  return o;
}

std::map<std::string, torch::Tensor> state_of(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) {
    out[p.key()] = p.value().detach().clone();
  }
  for (const auto& b : m.named_buffers()) {
    out[b.key()] = b.value().detach().clone();
  }
  return out;
}

const char* kNetwork = "tinynet 3x3x3:2,1x3x3:2,3x1x1:2";

TEST(Trainer, LossDecreasesOnATinyTask) {
  torch::manual_seed(0);
  TinyNet net;
  auto ds = std::make_shared<SignDataset>(64);
  Loader loader(ds, loader_options());
  Trainer trainer(
      tiny_model(net, kNetwork),
      cross_entropy,
      trainer_options(/*epochs=*/6, OptimizerKind::sgd));
  auto summaries = trainer.fit(loader);
  ASSERT_EQ(summaries.size(), 6u);
  EXPECT_EQ(trainer.step(), 6 * 8);
  EXPECT_LT(summaries.back().mean_loss, 0.75 * summaries.front().mean_loss)
      << summaries.front().mean_loss << " -> " << summaries.back().mean_loss;
  EXPECT_GT(summaries.back().loader_samples_per_second, 0);
  EXPECT_GT(summaries.back().samples_per_second, 0);
}

TEST(Trainer, KillAndResumeGivesTheWeightsOfAnUninterruptedRun) {
  for (auto kind : {OptimizerKind::sgd, OptimizerKind::adamw}) {
    SCOPED_TRACE(kind == OptimizerKind::sgd ? "sgd" : "adamw");
    TempDir dir("trainer_resume");
    auto ds = std::make_shared<SignDataset>(32);
    const int64_t N = 3, k = 1;

    std::map<std::string, torch::Tensor> straight;
    {
      torch::manual_seed(1);
      TinyNet net;
      Loader loader(ds, loader_options());
      auto o = trainer_options(N, kind);
      o.checkpoint_path = dir / "straight.pt";
      Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
      trainer.fit(loader);
      straight = state_of(*net);
    }
    {
      torch::manual_seed(1);
      TinyNet net;
      Loader loader(ds, loader_options());
      auto o = trainer_options(N, kind);
      o.checkpoint_path = dir / "killed.pt";
      o.log_path = dir / "log.jsonl";
      Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
      for (int64_t e = 0; e < k; ++e) {
        trainer.train_epoch(loader);
      }
    }                          // killed: model, optimizer, loader gone
    torch::manual_seed(12345); // the new process's RNG is elsewhere
    torch::Tensor noise = torch::rand({100}); // and has moved on
    TinyNet net;                              // different initial weights
    Loader loader(ds, loader_options());
    auto o = trainer_options(N, kind);
    o.checkpoint_path = dir / "killed.pt";
    o.log_path = dir / "log.jsonl";
    Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
    trainer.resume(dir / "killed.pt");
    EXPECT_EQ(trainer.epoch(), k);
    EXPECT_EQ(trainer.step(), k * 4);
    auto rest = trainer.fit(loader);
    EXPECT_EQ(rest.size(), static_cast<size_t>(N - k));

    auto resumed = state_of(*net);
    ASSERT_EQ(resumed.size(), straight.size());
    for (const auto& [name, t] : straight) {
      EXPECT_TRUE(torch::equal(t, resumed.at(name)))
          << name << " differs by "
          << (t.to(torch::kDouble) - resumed.at(name).to(torch::kDouble))
                 .abs()
                 .max()
                 .item<double>();
    }
    // One JSON line per epoch across both runs.
    std::ifstream log(dir / "log.jsonl");
    std::string line;
    int lines = 0;
    while (std::getline(log, line)) {
      EXPECT_NE(
          line.find("\"epoch\":" + std::to_string(lines)), std::string::npos)
          << line;
      ++lines;
    }
    EXPECT_EQ(lines, N);
  }
}

TEST(Trainer, ResumeRebuildsTheLogAKillCutShort) {
  // A kill between the checkpoint's rename and the log's append (issue 16:
  // 3 of 3 tries lost the epoch's line): the checkpoint carries the lines.
  TempDir dir("trainer_log_rebuilt");
  auto ds = std::make_shared<SignDataset>(32);
  const std::string ckpt = dir / "c.pt", log = dir / "log.jsonl";
  auto read_lines = [&] {
    std::ifstream f(log);
    std::vector<std::string> lines;
    for (std::string l; std::getline(f, l);)
      lines.push_back(l);
    return lines;
  };
  std::vector<std::string> full;
  {
    torch::manual_seed(1);
    TinyNet net;
    Loader loader(ds, loader_options());
    auto o = trainer_options(3, OptimizerKind::sgd);
    o.checkpoint_path = ckpt;
    o.log_path = log;
    Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
    trainer.train_epoch(loader);
    trainer.train_epoch(loader);
    full = read_lines();
    ASSERT_EQ(full.size(), 2u);
  }
  std::ofstream(log, std::ios::trunc) << full[0] << "\n"; // the kill
  TinyNet net;
  Loader loader(ds, loader_options());
  auto o = trainer_options(3, OptimizerKind::sgd);
  o.checkpoint_path = ckpt;
  o.log_path = log;
  Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
  trainer.resume(ckpt);
  EXPECT_EQ(read_lines(), full);
  trainer.fit(loader);
  const auto after = read_lines();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_NE(after[2].find("\"epoch\":2"), std::string::npos) << after[2];
}

// Step lines (log_steps_every) and best.pt across a kill: resume keeps the
// step lines up to the checkpoint and drops those of the epoch the kill cut
// short; the best so far comes back from the checkpoint, so a worse epoch
// after resume does not replace best.pt and a better one does.
TEST(Trainer, ResumeKeepsTheBestAndTheStepLinesUpToTheCheckpoint) {
  TempDir dir("trainer_best");
  auto ds = std::make_shared<SignDataset>(32); // 4 steps per epoch
  const std::string ckpt = dir / "c.pt", best = dir / "best.pt",
                    log = dir / "log.jsonl";
  // The metric of each epoch (validate's argument is 0-based): best after
  // 2 epochs, worse after 3, best after 4.
  const std::map<int64_t, double> metric = {
      {0, 0.5}, {1, 0.9}, {2, 0.7}, {3, 0.95}};
  const auto options = [&] {
    auto o = trainer_options(4, OptimizerKind::sgd);
    o.checkpoint_path = ckpt;
    o.log_path = log;
    o.log_steps_every = 2;
    o.best_checkpoint_path = best;
    o.best_metric = "val_m";
    o.validate = [&](int64_t epoch) {
      return std::map<std::string, double>{{"val_m", metric.at(epoch)}};
    };
    return o;
  };
  {
    torch::manual_seed(1);
    TinyNet net;
    Loader loader(ds, loader_options());
    Trainer trainer(tiny_model(net, kNetwork), cross_entropy, options());
    trainer.train_epoch(loader);
    trainer.train_epoch(loader);
    EXPECT_EQ(trainer.best_epoch(), 2);
  }
  EXPECT_EQ(read_checkpoint_meta(best).epoch, 2);
  // The kill: epoch 3 had logged a step line (step 10) before it.
  std::ofstream(log, std::ios::app)
      << R"({"kind":"step","epoch":2,"step":10,"step_in_epoch":2,)"
      << R"("steps_in_epoch":4,"loss":9.0,"lr":0.1})"
      << "\n";
  TinyNet net;
  Loader loader(ds, loader_options());
  Trainer trainer(tiny_model(net, kNetwork), cross_entropy, options());
  trainer.resume(ckpt);
  EXPECT_DOUBLE_EQ(trainer.best_value(), 0.9);
  EXPECT_EQ(trainer.best_epoch(), 2);
  const auto resumed = read_training_log(log);
  ASSERT_EQ(resumed.epochs.size(), 2u);
  ASSERT_EQ(resumed.steps.size(), 4u); // steps 2, 4, 6, 8
  EXPECT_EQ(resumed.steps.back().step, 8);
  trainer.train_epoch(loader); // epoch 3: worse
  EXPECT_EQ(read_checkpoint_meta(best).epoch, 2);
  trainer.train_epoch(loader); // epoch 4: better
  const auto meta = read_checkpoint_meta(best);
  EXPECT_EQ(meta.epoch, 4);
  const auto recorded = nlohmann::json::parse(meta.sections.at("best"));
  EXPECT_EQ(recorded.at("epoch"), 4);
  EXPECT_DOUBLE_EQ(recorded.at("value").get<double>(), 0.95);
  EXPECT_EQ(recorded.at("file"), "best.pt");
  // Every line in order: two step lines, then the epoch line, per epoch; no
  // line of the killed attempt (its loss 9.0).
  std::ifstream f(log);
  std::vector<std::string> kinds;
  for (std::string l; std::getline(f, l);) {
    const auto j = nlohmann::json::parse(l);
    EXPECT_NE(j.at("loss").get<double>(), 9.0) << l;
    kinds.push_back(j.at("kind"));
  }
  std::vector<std::string> expected;
  for (int e = 0; e < 4; ++e)
    expected.insert(expected.end(), {"step", "step", "epoch"});
  EXPECT_EQ(kinds, expected);
}

TEST(Trainer, ResumeWithoutTheRngStateWouldDiffer) {
  // Guards the test above: dropout really draws from the RNG, so a resume
  // that forgot it would not reproduce the run.
  torch::manual_seed(3);
  TinyNet net;
  net->train();
  auto x = torch::randn({4, 1, 4, 4, 4});
  torch::manual_seed(5);
  auto a = net->forward(x);
  torch::manual_seed(6);
  auto b = net->forward(x);
  EXPECT_FALSE(torch::equal(a, b));
}

TEST(Trainer, CheckpointFromAnotherNetworkIsAClearError) {
  TempDir dir("trainer_checkpoint");
  torch::manual_seed(0);
  TinyNet net;
  auto o = trainer_options(1, OptimizerKind::sgd);
  Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
  trainer.save_checkpoint(dir / "c.pt");

  TinyNet other;
  Trainer wrong(tiny_model(other, "i3d_r50 3x3x3:64"), cross_entropy, o);
  try {
    wrong.resume(dir / "c.pt");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(kNetwork), std::string::npos) << msg;
    EXPECT_NE(msg.find("i3d_r50 3x3x3:64"), std::string::npos) << msg;
  }
  auto wrong_model = tiny_model(other, "i3d_r50 3x3x3:64");
  EXPECT_THROW(
      load_checkpoint_weights(dir / "c.pt", wrong_model), std::runtime_error);
  auto right_model = tiny_model(other, kNetwork);
  load_checkpoint_weights(dir / "c.pt", right_model);
  EXPECT_TRUE(torch::equal(other->fc->weight, net->fc->weight));
}

TEST(Trainer, InterruptedCheckpointWriteLeavesThePreviousOneLoadable) {
  TempDir dir("trainer_3");
  torch::manual_seed(0);
  TinyNet net;
  auto ds = std::make_shared<SignDataset>(16);
  Loader loader(ds, loader_options());
  auto o = trainer_options(3, OptimizerKind::sgd);
  const std::string path = dir / "ckpt.pt";
  Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
  trainer.train_epoch(loader);
  trainer.save_checkpoint(path);
  auto after_epoch1 = state_of(*net);

  // The next epoch's checkpoint dies half-way through its write.
  trainer.train_epoch(loader);
  std::ostringstream next;
  {
    torch::serialize::OutputArchive ar;
    net->save(ar);
    ar.save_to(next);
  }
  const std::string bytes = next.str();
  EXPECT_THROW(
      write_file_atomically(path, bytes, bytes.size() / 2), std::runtime_error);
  ASSERT_TRUE(fs::exists(path + ".tmp"));
  EXPECT_EQ(fs::file_size(path + ".tmp"), bytes.size() / 2);

  // A fresh process finds the epoch-1 checkpoint whole.
  EXPECT_EQ(read_checkpoint_meta(path).epoch, 1);
  TinyNet fresh;
  Trainer again(tiny_model(fresh, kNetwork), cross_entropy, o);
  again.resume(path);
  EXPECT_EQ(again.epoch(), 1);
  for (const auto& [name, t] : state_of(*fresh)) {
    EXPECT_TRUE(torch::equal(t, after_epoch1.at(name))) << name;
  }
  // And the next successful write replaces the stale temporary file.
  again.save_checkpoint(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Trainer, TruncatedOrMissingCheckpointNamesTheFile) {
  TempDir dir("trainer_4");
  torch::manual_seed(0);
  TinyNet net;
  Trainer trainer(
      tiny_model(net, kNetwork),
      cross_entropy,
      trainer_options(1, OptimizerKind::sgd));
  trainer.save_checkpoint(dir / "good.pt");
  std::ifstream in((dir / "good.pt"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream((dir / "cut.pt"), std::ios::binary)
      << bytes.substr(0, bytes.size() / 2);
  for (const std::string name : {"cut.pt", "missing.pt"}) {
    try {
      trainer.resume((dir / name));
      FAIL() << name;
    } catch (const std::runtime_error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find((dir / name)), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(Trainer, NoWeightDecayOnBatchNormAndBiases) {
  TinyNet net;
  auto split = split_for_weight_decay(*net);
  std::sort(split.decay.begin(), split.decay.end());
  std::sort(split.no_decay.begin(), split.no_decay.end());
  EXPECT_EQ(
      split.decay,
      (std::vector<std::string>{
          "conv.weight_1x3x3",
          "conv.weight_3x1x1",
          "conv.weight_3x3x3",
          "fc.weight"}));
  EXPECT_EQ(
      split.no_decay,
      (std::vector<std::string>{"conv.bn.bias", "conv.bn.weight", "fc.bias"}));

  // The optimizer's groups carry that split.
  Trainer trainer(
      tiny_model(net, kNetwork),
      cross_entropy,
      trainer_options(1, OptimizerKind::sgd));
  auto& groups = trainer.optimizer().param_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].params().size(), 4u);
  EXPECT_EQ(groups[1].params().size(), 3u);
  EXPECT_EQ(
      static_cast<torch::optim::SGDOptions&>(groups[1].options())
          .weight_decay(),
      0);
  EXPECT_EQ(
      static_cast<torch::optim::SGDOptions&>(groups[0].options())
          .weight_decay(),
      1e-3);
}

TEST(Trainer, ProgressLinesWhenNotATerminal) {
  torch::manual_seed(0);
  TinyNet net;
  auto ds = std::make_shared<SignDataset>(32);
  Loader loader(ds, loader_options());
  std::ostringstream progress;
  auto o = trainer_options(2, OptimizerKind::sgd);
  o.progress = &progress;
  o.progress_every = 2;
  Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
  trainer.fit(loader);
  std::string text = progress.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4); // 2 per epoch
  EXPECT_NE(text.find("epoch 2/2 4/4 loss"), std::string::npos) << text;
  EXPECT_NE(text.find("samples/s (loader"), std::string::npos) << text;
}

TEST(Trainer, ProgressBarRedrawnOnATerminal) {
  torch::manual_seed(0);
  TinyNet net;
  auto ds = std::make_shared<SignDataset>(16);
  Loader loader(ds, loader_options());
  std::ostringstream progress;
  auto o = trainer_options(1, OptimizerKind::sgd);
  o.progress = &progress;
  o.progress_is_terminal = true;
  Trainer trainer(tiny_model(net, kNetwork), cross_entropy, o);
  trainer.fit(loader);
  std::string text = progress.str();
  EXPECT_EQ(text.rfind('\r', 0), 0u) << text; // redrawn in place
  EXPECT_NE(text.find("] 2/2 loss"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1); // at epoch end
}

TEST(Progress, BarAndEta) {
  ProgressState s;
  s.epoch = 2;
  s.epochs = 70;
  s.step_in_epoch = 5;
  s.steps_in_epoch = 10;
  s.loss = 1.5;
  s.lr = 0.04;
  s.samples_per_second = 12.34;
  s.loader_samples_per_second = 45.6;
  s.eta_seconds = 3725;
  EXPECT_EQ(
      format_progress(s, 10),
      "epoch 3/70 [#####.....] 5/10 loss 1.5000 lr 0.04 12.3 samples/s "
      "(loader 45.6) ETA 1h02m");
}

TEST(Schedule, WarmupStepAndCosine) {
  Schedule s;
  s.kind = ScheduleKind::step;
  s.base_lr = 0.04;
  s.warmup_epochs = 5;
  s.milestones = {50, 60};
  s.total_epochs = 70;
  const int64_t spe = 10;
  EXPECT_DOUBLE_EQ(s.lr_at(0, spe), 0.04 * 0.1 / 5);  // first step
  EXPECT_DOUBLE_EQ(s.lr_at(24, spe), 0.04 * 2.5 / 5); // half-way
  EXPECT_DOUBLE_EQ(s.lr_at(49, spe), 0.04);           // end of warm-up
  EXPECT_DOUBLE_EQ(s.lr_at(499, spe), 0.04);
  EXPECT_NEAR(s.lr_at(500, spe), 0.004, 1e-15);
  EXPECT_NEAR(s.lr_at(600, spe), 0.0004, 1e-15);

  s.kind = ScheduleKind::cosine;
  s.warmup_epochs = 0;
  s.min_lr = 0.001;
  s.total_epochs = 10;
  EXPECT_DOUBLE_EQ(s.lr_at(0, spe), 0.04);
  EXPECT_NEAR(s.lr_at(50, spe), (0.04 + 0.001) / 2, 1e-12);
  EXPECT_GT(s.lr_at(99, spe), 0.001);
  EXPECT_LT(s.lr_at(99, spe), 0.0015);
  EXPECT_THROW(s.lr_at(0, 0), std::invalid_argument);
  EXPECT_THROW(parse_schedule_kind("linear"), std::invalid_argument);
}

TEST(Losses, DiceAndCrossEntropyOnSegmentation) {
  // Confident and right: Dice loss near 0; confident and wrong: near 1.
  auto target = torch::randint(0, 3, {2, 4, 4, 4}, torch::kLong);
  auto right = torch::one_hot(target, 3).movedim(-1, 1).to(torch::kFloat) * 50;
  auto wrong =
      torch::one_hot((target + 1) % 3, 3).movedim(-1, 1).to(torch::kFloat) * 50;
  EXPECT_LT(soft_dice_loss(right, target).item<double>(), 1e-6);
  EXPECT_GT(soft_dice_loss(wrong, target).item<double>(), 1 - 1e-6);
  EXPECT_GT(dice_cross_entropy(wrong, target).item<double>(), 40);
  EXPECT_THROW(soft_dice_loss(right, target[0]), std::invalid_argument);
}

} // namespace
