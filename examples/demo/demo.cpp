// cakes-demo: the main job end to end on built-in data (README, Demo).
//
// (a) Video: `cakes synth` makes a motion-direction task; the 2D, 3D and a
//     CAKES network (from a cost-priority search, starting from its weights)
//     are trained and evaluated with `cakes train` / `cakes eval`.
// (b) Segmentation of a real T1 MRI (Debian insighttoolkit5-examples): one
//     hemisphere trains, the other is evaluated (per-class Dice), 3D vs CAKES.
//
// Every step runs the `cakes` command-line tool in a child process, printed
// before it runs, as a user would type it. The table and the picture come
// from what those runs leave behind (checkpoints, which describe their
// network; logs; evaluation JSON), through the library.
#include "mri_data.h"
#include "results.h"

#include "cakes/models/model.h"
#include "cakes/train/checkpoint.h"
#include "cakes/train/log.h"
#include "cakes/util/timing.h"

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace fs = std::filesystem;

namespace cakes::demo {
namespace {

struct DemoArgs {
  std::string out = "demo_out";
  std::string cakes; // the command-line tool; default: next to this program
  int threads = 0;
  // Sizes of the run: the schedules of the fidelity protocol
  // (docs/FIDELITY.md says why these lengths), so that the demo's table and
  // the protocol's agree; they fit 15 minutes on 2 cores.
  int64_t videos = 240, video_epochs = 30, video_width = 16, seg_epochs = 96;
  int64_t search_epochs = 15;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

std::string g_cakes; // the CLI's path

// The directory of this program.
std::string program_dir() {
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

// Runs `cakes <args>` and throws if it fails.
void run_cakes(const std::vector<std::string>& args) {
  std::string line = "$ cakes";
  for (const auto& a : args)
    line += " " + a;
  std::cout << "\n" << line << "\n" << std::flush;
  std::vector<std::string> all = {"cakes"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(
          &pid, g_cakes.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("demo: cannot start " + g_cakes);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("demo: step failed: " + line.substr(2));
}

void append(std::vector<std::string>& v, const std::vector<std::string>& more) {
  v.insert(v.end(), more.begin(), more.end());
}

double seconds_per_step(const std::string& log) {
  double seconds = 0, steps = 0;
  for (const auto& e : train::read_log(log)) {
    seconds += e.seconds;
    steps += double(e.steps);
  }
  return steps > 0 ? seconds / steps : 0;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    throw std::runtime_error(path + ": missing");
  return nlohmann::json::parse(f);
}

// Median time of a training step (forward, loss, backward, SGD step) of each
// row's network at its batch and training input size, the rows of one task
// timed interleaved in this process, so that a shared machine's load affects
// them alike. (The training logs' epoch times swing with that load.)
void time_steps(
    std::vector<Row*> rows, const std::vector<int64_t>& train_input) {
  std::vector<models::Model> nets;
  std::vector<std::shared_ptr<torch::optim::SGD>> opts;
  std::vector<std::function<void()>> steps;
  for (auto* r : rows) {
    nets.push_back(models::build(r->spec));
    nets.back().module->train();
    opts.push_back(std::make_shared<torch::optim::SGD>(
        nets.back().module->parameters(), torch::optim::SGDOptions(1e-3)));
  }
  auto in = train_input;
  in[0] = rows.front()->batch;
  const auto x = torch::randn(in);
  const auto target =
      nets.front().spec.video()
          ? torch::zeros({in[0]}, torch::kLong)
          : torch::zeros({in[0], in[2], in[3], in[4]}, torch::kLong);
  for (size_t i = 0; i < nets.size(); ++i)
    steps.push_back([&, i] {
      opts[i]->zero_grad();
      torch::cross_entropy_loss(nets[i].forward(x), target).backward();
      opts[i]->step();
    });
  const auto t = time_interleaved(steps, /*warmup=*/2, /*repeats=*/7);
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i]->step_seconds = t[i].median_ms / 1e3;
}

void fill_cost(Row& r) {
  const auto m = models::build(r.spec);
  const auto c = m.cost(r.input);
  r.macs = c.total_macs();
  r.params = c.total_params();
}

// One task of the demo: the command-line pieces its `cakes train` and
// `cakes eval` runs share, and how its table rows are measured.
struct Task {
  std::string task;                    // table label: "video", "MRI"
  std::vector<std::string> net;        // --net ... (and --width)
  std::vector<std::string> train_data; // data options of train (and search)
  std::vector<std::string> eval_data;  // data options of eval
  std::vector<std::string> train;      // schedule options of train
  std::vector<std::string> eval;       // other options of eval
  int64_t batch = 0;
  std::vector<int64_t> input; // cost input (1, C, T/D, H, W)
  std::string metric, score_key;
};

// The folder of task `t`'s runs: <runs>/<task in lower case>_<name>.
std::string
run_dir(const Task& t, const std::string& runs, const std::string& name) {
  std::string prefix = t.task;
  for (auto& c : prefix)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return runs + "/" + prefix + "_" + name;
}

// A cost-priority search for task `t` (its network and training data),
// writing <run_dir(t, "search")>/config.json.
void search(
    const Task& t,
    const std::string& runs,
    const std::string& candidates,
    int64_t epochs,
    const std::string& lr,
    const std::string& threads) {
  std::vector<std::string> cmd = {
      "search",
      "--candidates",
      candidates,
      "--mode",
      "C",
      "--epochs",
      std::to_string(epochs),
      "--lr",
      lr,
      "--batch",
      std::to_string(t.batch)};
  append(cmd, t.net);
  append(cmd, t.train_data);
  append(cmd, {"--out-dir", run_dir(t, runs, "search"), "--threads", threads});
  run_cakes(cmd);
}

// Trains and evaluates one network of `t` (`op` = {"--op", x} or
// {"--config", file}) under <runs>/<task>_<name> and appends its row.
// `init`: the search checkpoint whose weights training starts from, if any.
void train_and_eval(
    const Task& t,
    const std::string& runs,
    const std::string& name,
    const std::vector<std::string>& op,
    std::vector<Row>& rows,
    const std::string& init = "") {
  const std::string dir = run_dir(t, runs, name);
  std::vector<std::string> cmd = {"train"};
  for (const auto* part : {&t.net, &op, &t.train_data, &t.train})
    append(cmd, *part);
  if (!init.empty())
    append(cmd, {"--init", init});
  append(cmd, {"--out-dir", dir});
  run_cakes(cmd);
  std::vector<std::string> ev = {"eval"};
  for (const auto* part : {&t.net, &op, &t.eval_data, &t.eval})
    append(ev, *part);
  append(
      ev,
      {"--checkpoint", dir + "/checkpoint.pt", "--out", dir + "/eval.json"});
  run_cakes(ev);
  Row r;
  r.task = t.task;
  r.name = name;
  r.spec = train::read_checkpoint_meta(dir + "/checkpoint.pt").network;
  r.input = t.input;
  fill_cost(r);
  r.log_step_seconds = seconds_per_step(dir + "/log.jsonl");
  r.batch = t.batch;
  r.metric = t.metric;
  r.score = read_json(dir + "/eval.json").at(t.score_key).get<double>();
  rows.push_back(r);
}

void run_demo(const DemoArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out = fs::absolute(a.out);
  fs::create_directories(out);
  fs::remove_all(out / "runs");
  const std::string threads = std::to_string(a.threads);
  const std::string runs = (out / "runs").string();
  std::vector<Row> rows;
  std::cout << "cakes demo: results go to " << out.string() << "\n";

  // ---- (a) video ----
  const std::string synth = (out / "synth").string();
  run_cakes(
      {"synth",
       "--out",
       synth,
       "--videos",
       std::to_string(a.videos),
       "--frames",
       "16",
       "--size",
       "48",
       "--format",
       "both",
       "--seed",
       "1",
       "--force"});
  const std::vector<std::string> vdata = {
      "--frames-list",
      synth + "/train.txt",
      "--frames-val-list",
      synth + "/val.txt",
      "--categories",
      synth + "/category.txt",
      "--flip-swaps",
      "0:1",
      "--frames",
      "8",
      "--size",
      "32"};
  const std::string vw = std::to_string(a.video_width);
  const int64_t vbatch = 16;
  Task vtask;
  vtask.task = "video";
  vtask.net = {"--net", "i3d_resnet18", "--width", vw};
  vtask.train_data = vdata;
  vtask.eval_data = vdata;
  vtask.train = {
      "--epochs",
      std::to_string(a.video_epochs),
      "--lr",
      "0.05",
      "--batch",
      std::to_string(vbatch),
      "--warmup",
      "1",
      "--workers",
      "1",
      "--threads",
      threads};
  vtask.eval = {"--threads", threads};
  vtask.input = {1, 3, 8, 32, 32};
  vtask.batch = vbatch;
  vtask.metric = "top-1 %";
  vtask.score_key = "top1";
  train_and_eval(vtask, runs, "2D", {"--op", "conv2d"}, rows);
  train_and_eval(vtask, runs, "3D", {"--op", "conv3d"}, rows);
  search(vtask, runs, "3x3x3,1x3x3,3x1x1", a.search_epochs, "0.05", threads);
  // The derived network starts from its search's weights (docs/WEIGHTS.md,
  // inheritance): in the fidelity protocol that gave the better network.
  train_and_eval(
      vtask,
      runs,
      "CAKES",
      {"--config", runs + "/video_search/config.json"},
      rows,
      runs + "/video_search/search.ckpt");
  // The mp4 copies of the validation videos through the video reader.
  run_cakes(
      {"eval",
       "--net",
       "i3d_resnet18",
       "--width",
       vw,
       "--op",
       "conv3d",
       "--videos-list",
       synth + "/train_videos.txt",
       "--videos-val-list",
       synth + "/val_videos.txt",
       "--categories",
       synth + "/category.txt",
       "--frames",
       "8",
       "--size",
       "32",
       "--checkpoint",
       runs + "/video_3D/checkpoint.pt",
       "--threads",
       threads});

  // ---- (b) segmentation ----
  const std::string mri_train = (out / "mri" / "train").string();
  const std::string mri_val = (out / "mri" / "val").string();
  fs::remove_all(out / "mri");
  write_mri_split(mri_train, /*left=*/true, /*copies=*/8);
  write_mri_split(mri_val, /*left=*/false, /*copies=*/1);
  std::cout << "\nMRI: " << mri_train << " (left hemisphere, training) and "
            << mri_val << " (right hemisphere, evaluation), 64x96x64 each\n";
  const int64_t sbatch = 2;
  Task stask;
  stask.task = "MRI";
  stask.net = {"--net", "res_encoder_decoder"};
  // Each task is one hemisphere (written as copies of one case): nothing is
  // held out of it (docs/data.md, validation split); the right hemisphere is
  // the evaluation task.
  stask.train_data = {
      "--msd", mri_train, "--val-fraction", "0", "--patch", "32", "64", "64"};
  stask.eval_data = {
      "--msd", mri_val, "--val-fraction", "0", "--window", "64", "96", "64"};
  stask.train = {
      "--epochs",
      std::to_string(a.seg_epochs),
      "--lr",
      "0.002",
      "--optimizer",
      "adamw",
      "--weight-decay",
      "1e-4",
      "--batch",
      std::to_string(sbatch),
      "--workers",
      "1",
      "--threads",
      threads,
      "--log-every",
      "100"};
  stask.eval = {"--threads", threads};
  stask.input = {1, 1, 64, 96, 64};
  stask.batch = sbatch;
  stask.metric = "Dice %";
  stask.score_key = "mean_dice_foreground";
  train_and_eval(stask, runs, "3D", {"--op", "conv3d"}, rows);
  search(
      stask,
      runs,
      "3x3x3,1x3x3,3x1x3,3x3x1,3x1x1,1x3x1,1x1x3",
      a.seg_epochs / 2,
      "0.002",
      threads);
  train_and_eval(
      stask,
      runs,
      "CAKES",
      {"--config", runs + "/mri_search/config.json"},
      rows,
      runs + "/mri_search/search.ckpt");

  // ---- report ----
  std::cout << "\ntiming one training step of each network (interleaved)...\n"
            << std::flush;
  at::set_num_threads(
      a.threads > 0 ? a.threads
                    : std::max(1, int(std::thread::hardware_concurrency())));
  std::vector<Row*> vrows, srows;
  for (auto& r : rows)
    (r.task == "video" ? vrows : srows).push_back(&r);
  time_steps(vrows, {0, 3, 8, 32, 32});
  time_steps(srows, {0, 1, 32, 64, 64});
  std::vector<Row> video, seg;
  const Row *vc = nullptr, *sc = nullptr;
  for (const auto& r : rows)
    (r.task == "video" ? video : seg).push_back(r);
  for (const auto& r : video)
    if (r.name == "CAKES")
      vc = &r;
  for (const auto& r : seg)
    if (r.name == "CAKES")
      sc = &r;
  const std::string svg = (out / "demo.svg").string();
  std::ofstream(svg) << picture(video, seg, vc, sc);
  const std::string md = table(rows);
  std::ofstream(out / "results.md") << md << "\n" << kTableNotes << "\n";
  std::cout << "\n" << md << "\n" << kTableNotes << "\n";
  std::cout << "picture: " << svg
            << "\ntable: " << (out / "results.md").string() << "\n"
            << fmt("demo finished in %.0f s\n", seconds_since(t0));
}

} // namespace

} // namespace cakes::demo

int main(int argc, char** argv) {
  using cakes::demo::DemoArgs;
  DemoArgs a;
  CLI::App app{"cakes-demo: the demonstration on built-in data (README, Demo)"};
  app.add_option("--out", a.out, "output folder (data, runs, table, picture)");
  app.add_option(
      "--cakes", a.cakes, "the cakes tool (default: next to this program)");
  app.add_option("--threads", a.threads, "threads (0 = all cores)");
  app.add_option("--videos", a.videos, "synthetic training videos");
  app.add_option("--video-epochs", a.video_epochs, "epochs per video network");
  app.add_option("--video-width", a.video_width, "I3D ResNet-18 base width");
  app.add_option(
      "--seg-epochs", a.seg_epochs, "epochs per MRI network (8 patches each)");
  app.add_option("--search-epochs", a.search_epochs, "video search epochs");
  std::string mri_task;
  app.add_option(
      "--mri-task",
      mri_task,
      "only write the demo's MRI as one task to this folder (left hemisphere "
      "to train, 8 copies; right under 'validation') and exit");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!mri_task.empty()) {
      if (std::filesystem::exists(mri_task))
        throw std::invalid_argument(mri_task + " exists: remove it first");
      cakes::demo::write_mri_task(mri_task, /*copies=*/8);
      std::cout << "MRI task in " << mri_task
                << ": imagesTr/left.nii.gz (training, 8 copies), "
                   "imagesTr/right.nii.gz (validation), 64x96x64 each\n";
      return 0;
    }
    cakes::demo::g_cakes =
        a.cakes.empty() ? cakes::demo::program_dir() + "/cakes" : a.cakes;
    cakes::demo::run_demo(a);
  } catch (const std::exception& e) {
    std::cerr << "cakes-demo: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
