// The video layouts users have, written by the test: class-per-folder trees of
// mp4 files encoded by FFmpeg, list files labelled by class name, and
// Something-Something V2's JSON over frame folders and webm files.
#include "cakes/data/video_datasets.h"
#include "cakes/data/video_writer.h"

#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace cakes::data;
using namespace cakes::data::testing;

namespace {

constexpr int64_t kSide = 32;

// A grey video whose level encodes `level`: after decoding, channel means sit
// within a few levels of it, so a sample can be traced to its file.
void write_grey_video(const std::string& path, int level, int frames = 8) {
  fs::create_directories(fs::path(path).parent_path());
  write_video(
      path, at::full({frames, kSide, kSide, 3}, level, at::kByte), /*fps=*/8);
}

ClipOptions eval_clip() {
  return identity_eval(/*segments=*/4, kSide);
}

// Mean pixel level (0..255) of a sample made with identity_eval().
double level_of(const Sample& s) {
  return s.input.mean().item<double>() * 255.0;
}

} // namespace

TEST(VideoFolder, ClassPerFolderTreeOfMp4s) {
  TempDir tmp("video_tree");
  const std::string root = tmp / "train";
  // Byte order puts "10" before "9" and upper case before lower case; a
  // space and an underscore are kept as written.
  write_grey_video(root + "/9/a.mp4", 40);
  write_grey_video(root + "/10/b.mp4", 80);
  write_grey_video(root + "/10/nested/c.MP4", 90); // recursive, any case
  write_grey_video(root + "/air drumming/d.avi", 120);
  write_grey_video(root + "/Zumba/e.mp4", 160);
  std::ofstream(root + "/Zumba/notes.txt") << "not a video\n";
  write_grey_video(root + "/.hidden/f.mp4", 200); // skipped
  write_grey_video(root + "/Zumba/.g.mp4", 220);  // skipped

  VideoFolderOptions o;
  o.root = root;
  const LabeledVideos v = scan_video_folder(o);
  EXPECT_EQ(
      v.class_names,
      (std::vector<std::string>{"10", "9", "Zumba", "air drumming"}));
  EXPECT_EQ(v.num_classes, 4);
  ASSERT_EQ(v.paths.size(), 5u);
  EXPECT_EQ(v.paths[0], root + "/10/b.mp4");
  EXPECT_EQ(v.paths[1], root + "/10/nested/c.MP4");
  EXPECT_EQ(v.labels, (std::vector<int64_t>{0, 0, 1, 2, 3}));

  VideoDataset ds(v, eval_clip());
  EXPECT_EQ(ds.size(), 5);
  EXPECT_EQ(ds.class_names(), v.class_names);
  std::mt19937_64 rng(0);
  const int levels[] = {80, 90, 40, 160, 120};
  for (int64_t i = 0; i < ds.size(); ++i) {
    SCOPED_TRACE(ds.path(i));
    const Sample s = ds.get(i, rng);
    EXPECT_EQ(s.input.sizes().vec(), (std::vector<int64_t>{3, 4, 32, 32}));
    EXPECT_EQ(s.target.item<int64_t>(), v.labels[i]);
    EXPECT_NEAR(level_of(s), levels[i], 4.0);
  }

  // A validation tree covering some of the classes keeps the training
  // indices (folder "air_drumming" is the class "air drumming").
  write_grey_video(tmp / "val/air_drumming/x.mp4", 120);
  write_grey_video(tmp / "val/9/y.mp4", 40);
  VideoFolderOptions val;
  val.root = tmp / "val";
  val.class_names = video_class_folders(root);
  const LabeledVideos w = scan_video_folder(val);
  EXPECT_EQ(w.labels, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(w.class_names, v.class_names);
}

TEST(VideoFolder, BadTreesAreOneLineErrorsNamingTheFolder) {
  TempDir tmp("video_tree_bad");
  VideoFolderOptions o;
  const auto expect_error = [&](const std::string& root,
                                const std::string& what) {
    o.root = root;
    const std::string msg = error_of([&] { scan_video_folder(o); });
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  expect_error(tmp / "missing", tmp / "missing: not a folder");
  fs::create_directories(tmp / "flat");
  write_grey_video(tmp / "flat/loose.mp4", 10, 2);
  expect_error(tmp / "flat", tmp / "flat: no class folders");
  fs::create_directories(tmp / "empty_class/a");
  write_grey_video(tmp / "empty_class/b/v.mp4", 10, 2);
  expect_error(
      tmp / "empty_class", tmp / "empty_class/a: class folder holds no video");
  o.class_names = {"b"};
  write_grey_video(tmp / "unknown/c/v.mp4", 10, 2);
  expect_error(
      tmp / "unknown", tmp / "unknown/c: class folder is not one of the 1");
}

TEST(VideoList, LabelsMayBeClassNames) {
  TempDir tmp("video_list_names");
  write_grey_video(tmp / "videos/a.mp4", 60, 4);
  write_grey_video(tmp / "videos/b.mp4", 180, 4);
  std::ofstream(tmp / "category.txt") << "moving left\nmoving right\n";
  // Names as in category.txt, with '_' for ' ', and plain indices, mixed.
  std::ofstream(tmp / "list.txt") << "videos/a.mp4 moving_right\n"
                                  << "videos/b.mp4 moving left\n"
                                  << "videos/a.mp4 0\n";
  VideoListOptions o;
  o.list_file = tmp / "list.txt";
  o.category_file = tmp / "category.txt";
  // "videos/b.mp4 moving left": the label is the last field, "left", which
  // is not a class: names with spaces are written with '_' in a list.
  std::string msg = error_of([&] { read_video_list(o); });
  EXPECT_NE(msg.find(tmp / "list.txt:2: label 'left'"), std::string::npos)
      << msg;
  std::ofstream(tmp / "list.txt") << "videos/a.mp4 moving_right\n"
                                  << "videos/b.mp4 moving_left\n"
                                  << "videos/a.mp4 0\n";
  LabeledVideos v = read_video_list(o);
  EXPECT_EQ(v.labels, (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(v.paths[1], tmp / "videos/b.mp4");

  // Without category.txt the classes are the list's sorted names.
  std::ofstream(tmp / "names.txt") << "videos/a.mp4 walk\n"
                                   << "videos/b.mp4 jump\n"
                                   << "videos/a.mp4 walk\n";
  VideoListOptions n;
  n.list_file = tmp / "names.txt";
  v = read_video_list(n);
  EXPECT_EQ(v.class_names, (std::vector<std::string>{"jump", "walk"}));
  EXPECT_EQ(v.labels, (std::vector<int64_t>{1, 0, 1}));
  VideoDataset ds(n, eval_clip());
  std::mt19937_64 rng(0);
  EXPECT_NEAR(level_of(ds.get(1, rng)), 180, 4.0);

  // ... and an integer among them has no class to index.
  std::ofstream(tmp / "mixed.txt") << "videos/a.mp4 walk\nvideos/b.mp4 3\n";
  n.list_file = tmp / "mixed.txt";
  msg = error_of([&] { read_video_list(n); });
  EXPECT_NE(msg.find(tmp / "mixed.txt:2: integer label '3'"), std::string::npos)
      << msg;
  // An unknown name with a category file names the file and line.
  std::ofstream(tmp / "unknown.txt") << "videos/a.mp4 moving_up\n";
  o.list_file = tmp / "unknown.txt";
  msg = error_of([&] { read_video_list(o); });
  EXPECT_NE(
      msg.find(
          tmp / "unknown.txt:1: label 'moving_up' is not one of the 2 class"),
      std::string::npos)
      << msg;
}

TEST(FrameFolder, ListLabelsMayBeClassNames) {
  TempDir tmp("frames_names");
  write_frame_folders(tmp.path(), {6, 6}, {0, 1}, 2, 16, 16);
  std::ofstream(tmp / "category.txt") << "moving left\nmoving right\n";
  std::ofstream(tmp / "named.txt") << "video0 6 moving_right\nvideo1 6 0\n";
  FrameFolderOptions o;
  o.list_file = tmp / "named.txt";
  o.category_file = tmp / "category.txt";
  FrameFolderDataset ds(o, eval_clip());
  EXPECT_EQ(ds.entries()[0].label, 1);
  EXPECT_EQ(ds.entries()[1].label, 0);
  EXPECT_EQ(ds.class_names()[1], "moving right");
}

namespace {

// something-something-v2-labels.json with three classes (indices as strings,
// as 20BN writes them, and one as a number), and a train JSON whose
// templates carry the [something] brackets.
void write_ssv2_json(const TempDir& tmp) {
  std::ofstream(tmp / "something-something-v2-labels.json")
      << R"({"Holding something next to something": "0",
             "Pushing something from left to right": "1",
             "Putting something on a surface": 2})";
  std::ofstream(tmp / "something-something-v2-train.json")
      << R"([{"id": "video0", "label": "putting a cup on a table",
              "template": "Putting [something] on a surface",
              "placeholders": ["a cup"]},
             {"id": "video1", "label": "holding potato next to vicks bottle",
              "template": "Holding [something] next to [something]",
              "placeholders": ["potato", "vicks bottle"]},
             {"id": "video2", "label": "pushing a pen from left to right",
              "template": "Pushing [something] from left to right",
              "placeholders": ["a pen"]}])";
}

} // namespace

TEST(Ssv2, JsonOverFrameFolders) {
  TempDir tmp("ssv2_frames");
  // Frame folders video0..2 of 5, 9 and 12 frames named {:06d}.jpg; the
  // list.txt and category.txt the helper also writes are not used.
  write_frame_folders(tmp.path(), {5, 9, 12}, {0, 0, 0}, 1, 16, 16, 6);
  write_ssv2_json(tmp);
  Ssv2Options o;
  o.list_file = tmp / "something-something-v2-train.json";
  const Ssv2List list = read_ssv2_list(o);
  EXPECT_EQ(list.class_names[2], "Putting something on a surface");
  EXPECT_EQ(list.ids, (std::vector<std::string>{"video0", "video1", "video2"}));
  EXPECT_EQ(list.labels, (std::vector<int64_t>{2, 0, 1}));

  const auto ds = make_ssv2_dataset(o, identity_eval(4, 16));
  ASSERT_EQ(ds->size(), 3);
  EXPECT_EQ(ds->num_classes(), 3);
  const auto* frames = dynamic_cast<const FrameFolderDataset*>(ds.get());
  ASSERT_NE(frames, nullptr);
  EXPECT_EQ(frames->frame_count(1), 9); // counted in the folder
  EXPECT_EQ(frames->frame_path(2, 0), tmp / "video2/000001.jpg");
  std::mt19937_64 rng(0);
  const Sample s = ds->get(2, rng);
  EXPECT_EQ(s.target.item<int64_t>(), 1);
  // Centre of segment 3 of 4 over 12 frames: frame index int(1.5 + 3 * 3) =
  // 10; its pixel (0, 0) of channel 0 is synthetic_pixel(2, 10, 0, 0, 0).
  EXPECT_NEAR(
      s.input[0][3][0][0].item<double>() * 255.0,
      synthetic_pixel(2, 10, 0, 0, 0),
      4.0);
}

TEST(Ssv2, JsonOverWebmFiles) {
  TempDir tmp("ssv2_webm");
  write_ssv2_json(tmp);
  write_grey_video(tmp / "videos/video0.webm", 50, 6);
  write_grey_video(tmp / "videos/video1.webm", 100, 6);
  write_grey_video(tmp / "videos/video2.webm", 150, 6);
  Ssv2Options o;
  o.list_file = tmp / "something-something-v2-train.json";
  o.root = tmp / "videos";
  const auto ds = make_ssv2_dataset(o, eval_clip());
  const auto* videos = dynamic_cast<const VideoDataset*>(ds.get());
  ASSERT_NE(videos, nullptr);
  EXPECT_EQ(videos->path(1), tmp / "videos/video1.webm");
  std::mt19937_64 rng(0);
  const Sample s = ds->get(0, rng);
  EXPECT_EQ(s.target.item<int64_t>(), 2);
  EXPECT_NEAR(level_of(s), 50, 4.0);

  fs::remove(tmp / "videos/video2.webm");
  const std::string msg = error_of([&] { make_ssv2_dataset(o, eval_clip()); });
  EXPECT_NE(msg.find(tmp / "videos/video2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("entry 3"), std::string::npos) << msg;
}

TEST(Ssv2, BadJsonIsAOneLineErrorNamingTheFile) {
  TempDir tmp("ssv2_bad");
  write_ssv2_json(tmp);
  Ssv2Options o;
  o.list_file = tmp / "something-something-v2-train.json";
  const auto expect_error = [&](const std::string& what) {
    const std::string msg = error_of([&] { read_ssv2_list(o); });
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  // The test list has ids only.
  std::ofstream(tmp / "test.json") << R"([{"id": "7"}])";
  o.list_file = tmp / "test.json";
  expect_error(tmp / "test.json: entry 1 (id 7) has no \"template\"");
  std::ofstream(tmp / "other.json")
      << R"([{"id": "7", "template": "Spinning [something]"}])";
  o.list_file = tmp / "other.json";
  expect_error("template 'Spinning something' is not a class of");
  std::ofstream(tmp / "broken.json") << "[{";
  o.list_file = tmp / "broken.json";
  expect_error(tmp / "broken.json: not valid JSON");
  o.list_file = tmp / "other.json";
  std::ofstream(tmp / "something-something-v2-labels.json")
      << R"({"A": "0", "B": "0"})";
  expect_error("something-something-v2-labels.json: class 'B' has index");
}
