// cakes demo: the main job end to end on built-in data.
//
// (a) Video: `cakes synth` makes a motion-direction task; the 2D, 3D and a
//     CAKES network (from a short cost-priority search) are trained and
//     evaluated with `cakes train` / `cakes eval`.
// (b) Segmentation of a real T1 MRI (Debian insighttoolkit5-examples): one
//     hemisphere trains, the other is evaluated (per-class Dice), 3D vs CAKES.
//
// Every step runs this executable's own subcommands in a child process (as a
// user would type them, printed before each run), so the demo exercises the
// CLI code path.
#include "commands.h"
#include "net_options.h"

#include "cakes/data/nifti.h"
#include "cakes/models/network_config.h"
#include "cakes/models/zoo.h"
#include "cakes/util/timing.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

extern char** environ;

namespace fs = std::filesystem;

namespace cakes::cli {
namespace {

const char* kItkData = "/usr/share/doc/insighttoolkit5-examples/examples/Data/";

struct DemoArgs {
  std::string out = "demo_out";
  int threads = 0;
  // Sizes of the run; the defaults fit 15 minutes on 2 cores.
  int64_t videos = 240, video_epochs = 5, video_width = 16, seg_epochs = 16;
  int64_t search_epochs = 3;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

// Runs `cakes <args>` (this executable) and throws if it fails.
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
          &pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("demo: cannot start /proc/self/exe");
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("demo: step failed: " + line.substr(2));
}

void append(std::vector<std::string>& v, const std::vector<std::string>& more) {
  v.insert(v.end(), more.begin(), more.end());
}

const char* kTableNotes =
    "MACs: per 8x32x32 video clip and per 64x96x64 MRI half-volume. Video "
    "score: top-1 on the validation videos (chance 25%). MRI score: mean "
    "Dice of the 3 tissue classes on the held-out hemisphere. s / train step: "
    "median of 7 training steps (forward, loss, backward, SGD) at the training "
    "input (8x32x32 clips, 32x64x64 patches), the networks of a task timed "
    "interleaved in one process; s / step in training: the mean over the "
    "training run from its log (data loading included; swings with the load "
    "of a shared machine).";

struct Row {
  std::string task, name, metric, note;
  models::ModelArgs model;
  std::vector<int64_t> input;
  int64_t macs = 0, params = 0;
  double step_seconds = 0, log_step_seconds = 0, score = 0;
  int64_t batch = 0;
};

double seconds_per_step(const std::string& log) {
  std::ifstream f(log);
  double seconds = 0, steps = 0;
  std::string line;
  while (std::getline(f, line)) {
    const auto j = nlohmann::json::parse(line);
    seconds += j.at("seconds").get<double>();
    steps += j.at("steps").get<double>();
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
    nets.push_back(models::make_model(r->model));
    nets.back().module->train();
    opts.push_back(std::make_shared<torch::optim::SGD>(
        nets.back().module->parameters(), torch::optim::SGDOptions(1e-3)));
  }
  auto in = train_input;
  in[0] = rows.front()->batch;
  const auto x = torch::randn(in);
  const auto target =
      nets.front().video
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
  const auto m = models::make_model(r.model);
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
  NetOptions model;                    // --net/--width as NetOptions
  int64_t classes = 0, in_channels = 0, batch = 0;
  std::vector<int64_t> input; // cost input (1, C, T/D, H, W)
  std::string metric, score_key;
};

// Trains and evaluates one network of `t` (`op` = {"--op", x} or
// {"--config", file}) under <runs>/<task>_<name> and appends its row.
void train_and_eval(
    const Task& t,
    const std::string& runs,
    const std::string& name,
    const std::vector<std::string>& op,
    std::vector<Row>& rows) {
  std::string prefix = t.task;
  for (auto& c : prefix)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string dir = runs + "/" + prefix + "_" + name;
  std::vector<std::string> cmd = {"train"};
  for (const auto* part : {&t.net, &op, &t.train_data, &t.train})
    append(cmd, *part);
  append(cmd, {"--out-dir", dir});
  run_cakes(cmd);
  std::vector<std::string> ev = {"eval"};
  for (const auto* part : {&t.net, &op, &t.eval_data, &t.eval})
    append(ev, *part);
  append(
      ev,
      {"--checkpoint", dir + "/checkpoint.pt", "--out", dir + "/eval.json"});
  run_cakes(ev);
  NetOptions no = t.model;
  (op.at(0) == "--op" ? no.op : no.config) = op.at(1);
  Row r;
  r.task = t.task;
  r.name = name;
  r.model = resolve_model_args(no, false, t.classes, t.in_channels);
  r.input = t.input;
  fill_cost(r);
  r.log_step_seconds = seconds_per_step(dir + "/log.jsonl");
  r.batch = t.batch;
  r.metric = t.metric;
  r.score = read_json(dir + "/eval.json").at(t.score_key).get<double>();
  rows.push_back(r);
}

// ---- segmentation data
// --------------------------------------------------------

// One hemisphere (x < 64 or x >= 64) of the 128x128x62 T1, cropped/padded to
// 64x96x64 (multiples of 16), with labels 0 = outside the brain, 1..3 = the
// k-means tissue classes 4, 5, 6 inside the brain. The input is the T1 inside
// the brain region (zero elsewhere), i.e. skull-stripped as brain-tissue
// segmentation usually starts: the task is tissue, not skull stripping.
void write_mri_split(const std::string& dir, bool left, int64_t copies) {
  const auto t1 =
      data::read_nifti(std::string(kItkData) + "KmeansTest_T1UCharRaw.nii.gz");
  const auto brain = data::read_nifti(
      std::string(kItkData) + "KmeansTest_T1RawSkullStrip.nii.gz");
  const auto km = data::read_nifti(
      std::string(kItkData) + "KmeansTest_T1KmeansPrelimSegmentation.nii.gz");
  if (t1.data.sizes() != brain.data.sizes() ||
      t1.data.sizes() != km.data.sizes() || t1.data.dim() != 3)
    throw std::runtime_error(
        "demo: the ITK T1 example volumes differ in shape");
  auto labels = torch::zeros(km.data.sizes(), torch::kLong);
  const auto inside = brain.data > 0;
  for (int64_t k = 4; k <= 6; ++k)
    labels.masked_fill_(inside.logical_and(km.data == double(k)), k - 3);
  // Crop: x half, y 16..112 (the brain spans 25..94), z padded 62 -> 64.
  const int64_t x0 = left ? 0 : t1.data.size(0) - 64, y0 = 16;
  auto crop = [&](const at::Tensor& v) {
    auto c = v.narrow(0, x0, 64).narrow(1, y0, 96);
    return torch::constant_pad_nd(c, {0, 64 - c.size(2)}, 0);
  };
  data::Volume like = t1;
  // The crop's voxel (0,0,0) is the original's (x0, y0, 0): move the origin.
  for (int r = 0; r < 3; ++r)
    like.affine[r * 4 + 3] +=
        like.affine[r * 4 + 0] * x0 + like.affine[r * 4 + 1] * y0;
  fs::create_directories(fs::path(dir) / "imagesTr");
  fs::create_directories(fs::path(dir) / "labelsTr");
  // The T1 is 8-bit, so the int16 label writer stores it exactly.
  const auto stripped =
      t1.data.round().to(torch::kLong) * inside.to(torch::kLong);
  data::write_nifti_labels(dir + "/imagesTr/t1.nii.gz", crop(stripped), like);
  data::write_nifti_labels(dir + "/labelsTr/t1.nii.gz", crop(labels), like);
  nlohmann::ordered_json j;
  j["name"] =
      std::string("ITK T1 ") + (left ? "left" : "right") + " hemisphere";
  j["modality"] = {{"0", "MRI"}};
  j["labels"] = {
      {"0", "background"},
      {"1", "tissue_k4"},
      {"2", "tissue_k5"},
      {"3", "tissue_k6"}};
  // One volume; listing it several times makes an epoch several random patches.
  for (int64_t i = 0; i < copies; ++i)
    j["training"].push_back(
        {{"image", "./imagesTr/t1.nii.gz"}, {"label", "./labelsTr/t1.nii.gz"}});
  j["numTraining"] = copies;
  std::ofstream(dir + "/dataset.json") << j.dump(1) << "\n";
}

// ---- picture
// --------------------------------------------------------------------

std::string esc(const std::string& s) {
  std::string r;
  for (char c : s)
    r += c == '<'   ? "&lt;"
         : c == '>' ? "&gt;"
         : c == '&' ? "&amp;"
                    : std::string(1, c);
  return r;
}

const std::map<std::string, std::string> kColours = {
    {"3x3x3", "#d62728"},
    {"1x3x3", "#1f77b4"},
    {"3x1x3", "#17becf"},
    {"3x3x1", "#9edae5"},
    {"3x1x1", "#2ca02c"},
    {"1x3x1", "#98df8a"},
    {"1x1x3", "#bcbd22"},
    {"1x1x1", "#7f7f7f"}};

void scatter(
    std::ostringstream& o,
    double x,
    double y,
    double w,
    double h,
    const std::vector<Row>& rows,
    const std::string& title,
    const std::string& ylabel) {
  o << "<g transform='translate(" << x << "," << y << ")'>\n";
  o << "<text x='" << w / 2
    << "' y='-8' text-anchor='middle' font-weight='bold'>" << esc(title)
    << "</text>\n";
  o << "<rect x='0' y='0' width='" << w << "' height='" << h
    << "' fill='none' stroke='#444'/>\n";
  double maxm = 0;
  for (const auto& r : rows)
    maxm = std::max(maxm, r.macs / 1e6);
  maxm = maxm > 0 ? maxm * 1.15 : 1;
  for (int i = 0; i <= 4; ++i) {
    const double fy = h - h * i / 4.0;
    o << "<line x1='0' x2='" << w << "' y1='" << fy << "' y2='" << fy
      << "' stroke='#ddd'/>";
    o << "<text x='-4' y='" << fy + 4 << "' text-anchor='end' font-size='10'>"
      << 25 * i << "</text>\n";
    const double fx = w * i / 4.0;
    char b[32];
    std::snprintf(b, sizeof b, "%.0f", maxm * i / 4.0);
    o << "<text x='" << fx << "' y='" << h + 14
      << "' text-anchor='middle' font-size='10'>" << b << "</text>\n";
  }
  o << "<text x='" << w / 2 << "' y='" << h + 30
    << "' text-anchor='middle' font-size='11'>MMACs per input</text>\n";
  o << "<text transform='translate(-30," << h / 2
    << ") rotate(-90)' text-anchor='middle' font-size='11'>" << esc(ylabel)
    << "</text>\n";
  for (const auto& r : rows) {
    const double px = w * (r.macs / 1e6) / maxm,
                 py = h - h * std::max(0.0, r.score);
    o << "<circle cx='" << px << "' cy='" << py << "' r='5' fill='#333'/>";
    o << "<text x='" << px + 7 << "' y='" << py - 6 << "' font-size='11'>"
      << esc(r.name) << "</text>\n";
  }
  o << "</g>\n";
}

void mix_bars(
    std::ostringstream& o,
    double x,
    double y,
    double w,
    double h,
    const std::vector<Config>& blocks,
    const std::string& title) {
  o << "<g transform='translate(" << x << "," << y << ")'>\n";
  o << "<text x='" << w / 2
    << "' y='-8' text-anchor='middle' font-weight='bold'>" << esc(title)
    << "</text>\n";
  const double bw = blocks.empty() ? 0 : w / double(blocks.size());
  std::map<std::string, bool> used;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const double total = double(blocks[i].out_channels());
    double top = h;
    for (const auto& g : blocks[i].groups()) {
      const double gh = h * g.channels / total;
      const auto it = kColours.find(g.kernel.str());
      top -= gh;
      o << "<rect x='" << i * bw + 1 << "' y='" << top << "' width='" << bw - 2
        << "' height='" << gh << "' fill='"
        << (it == kColours.end() ? "#000" : it->second) << "'/>";
      used[g.kernel.str()] |= g.channels > 0;
    }
    o << "<text x='" << (i + 0.5) * bw << "' y='" << h + 12
      << "' text-anchor='middle' font-size='9'>" << i + 1 << "</text>\n";
  }
  o << "<text x='" << w / 2 << "' y='" << h + 26
    << "' text-anchor='middle' font-size='11'>operation position (share of "
       "output channels per sub-kernel)</text>\n";
  double lx = 0;
  for (const auto& [k, on] : used) {
    if (!on)
      continue;
    o << "<rect x='" << lx << "' y='" << h + 34
      << "' width='10' height='10' fill='" << kColours.at(k) << "'/>";
    o << "<text x='" << lx + 13 << "' y='" << h + 43 << "' font-size='10'>" << k
      << "</text>\n";
    lx += 60;
  }
  o << "</g>\n";
}

std::string picture(
    const std::vector<Row>& video,
    const std::vector<Row>& seg,
    const Row* video_cakes,
    const Row* seg_cakes) {
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='960' height='620' "
       "font-family='sans-serif'>\n";
  o << "<rect width='960' height='620' fill='white'/>\n";
  scatter(
      o,
      60,
      40,
      380,
      220,
      video,
      "motion direction (synthetic video): top-1 vs MACs",
      "top-1 accuracy (%)");
  scatter(
      o,
      560,
      40,
      380,
      220,
      seg,
      "T1 MRI tissue segmentation: Dice vs MACs",
      "mean Dice x 100");
  if (video_cakes)
    mix_bars(
        o,
        60,
        350,
        380,
        180,
        video_cakes->model.op.configs,
        "video " + video_cakes->name + ": sub-kernel mix");
  if (seg_cakes)
    mix_bars(
        o,
        560,
        350,
        380,
        180,
        seg_cakes->model.op.configs,
        "MRI " + seg_cakes->name + ": sub-kernel mix");
  o << "</svg>\n";
  return o.str();
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string table(const std::vector<Row>& rows) {
  std::ostringstream o;
  o << "| task | network | MMACs | params (M) | s / train step (batch) | "
       "s / step in training (log) | score |\n";
  o << "|---|---|---:|---:|---:|---:|---|\n";
  for (const auto& r : rows)
    o << "| " << r.task << " | " << r.name
      << (r.note.empty() ? "" : " (" + r.note + ")") << " | "
      << fmt("%.1f", r.macs / 1e6) << " | " << fmt("%.3f", r.params / 1e6)
      << " | " << fmt("%.3f", r.step_seconds) << " (" << r.batch << ") | "
      << fmt("%.3f", r.log_step_seconds) << " | " << r.metric << " "
      << fmt("%.1f", 100 * r.score) << " |\n";
  return o.str();
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
  vtask.model.net = "i3d_resnet18";
  vtask.model.width = a.video_width;
  vtask.classes = 4;
  vtask.in_channels = 3;
  vtask.input = {1, 3, 8, 32, 32};
  vtask.batch = vbatch;
  vtask.metric = "top-1 %";
  vtask.score_key = "top1";
  train_and_eval(vtask, runs, "2D", {"--op", "conv2d"}, rows);
  train_and_eval(vtask, runs, "3D", {"--op", "conv3d"}, rows);
  {
    std::vector<std::string> cmd = {
        "search",
        "--candidates",
        "3x3x3,1x3x3,3x1x1",
        "--mode",
        "C",
        "--epochs",
        std::to_string(a.search_epochs),
        "--lr",
        "0.05",
        "--batch",
        std::to_string(vbatch)};
    append(cmd, vtask.net);
    append(cmd, vdata);
    append(cmd, {"--out-dir", runs + "/video_search", "--threads", threads});
    run_cakes(cmd);
  }
  train_and_eval(
      vtask,
      runs,
      "CAKES",
      {"--config", runs + "/video_search/config.json"},
      rows);
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
  stask.train_data = {"--msd", mri_train, "--patch", "32", "64", "64"};
  stask.eval_data = {"--msd", mri_val, "--window", "64", "96", "64"};
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
  stask.model.net = "res_encoder_decoder";
  stask.classes = 4;
  stask.in_channels = 1;
  stask.input = {1, 1, 64, 96, 64};
  stask.batch = sbatch;
  stask.metric = "Dice %";
  stask.score_key = "mean_dice_foreground";
  train_and_eval(stask, runs, "3D", {"--op", "conv3d"}, rows);
  {
    std::vector<std::string> cmd = {
        "search",
        "--candidates",
        "3x3x3,1x3x3,3x1x3,3x3x1,3x1x1,1x3x1,1x1x3",
        "--mode",
        "C",
        "--epochs",
        std::to_string(a.seg_epochs / 2),
        "--lr",
        "0.002",
        "--batch",
        std::to_string(sbatch)};
    append(cmd, stask.net);
    append(cmd, stask.train_data);
    append(cmd, {"--out-dir", runs + "/mri_search", "--threads", threads});
    run_cakes(cmd);
  }
  train_and_eval(
      stask,
      runs,
      "CAKES",
      {"--config", runs + "/mri_search/config.json"},
      rows);

  // ---- report ----
  std::cout << "\ntiming one training step of each network (interleaved)...\n"
            << std::flush;
  set_threads(a.threads);
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

void add_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  auto* demo =
      app.add_subcommand("demo", "run the demonstration on built-in data");
  demo->add_option(
      "--out", a->out, "output folder (data, runs, table, picture)");
  demo->add_option("--threads", a->threads, "threads (0 = all cores)");
  demo->add_option("--videos", a->videos, "synthetic training videos");
  demo->add_option(
      "--video-epochs", a->video_epochs, "epochs per video network");
  demo->add_option("--video-width", a->video_width, "I3D ResNet-18 base width");
  demo->add_option(
      "--seg-epochs", a->seg_epochs, "epochs per MRI network (8 patches each)");
  demo->add_option("--search-epochs", a->search_epochs, "video search epochs");
  demo->callback([a] { run_demo(*a); });
}

} // namespace cakes::cli
