// `cakes plot` through the built executable, on logs in the format the
// trainer writes (train::log_line): one path per run, and bad input is one
// line naming the file with a non-zero exit, never an overwritten picture.
#include "cakes/train/log.h"

#include "report/svg_text.h"
#include "support/temp_dir.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace {

using cakes::test::count;

struct Result {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class Plot : public ::testing::Test {
protected:
  cakes::test::TempDir dir{"plot"};

  Result cakes(const std::string& args) {
    const std::string o = dir / "stdout.txt", e = dir / "stderr.txt";
    const std::string cmd = std::string(CAKES_BINARY_DIR) + "/cakes " + args +
                            " > " + o + " 2> " + e;
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(o), slurp(e)};
  }

  // A run of `epochs` epochs as the trainer logs it, with validation
  // metrics when `val`.
  std::string run(const std::string& name, int epochs, bool val) {
    std::filesystem::create_directories(dir / name);
    const std::string path = dir / (name + "/log.jsonl");
    std::ofstream f(path);
    for (int e = 0; e < epochs; ++e) {
      cakes::train::EpochSummary s;
      s.epoch = e;
      s.steps = 15;
      s.step = 15 * (e + 1);
      s.samples = 240;
      s.mean_loss = 1.4 / (1 + e);
      s.lr = 0.05;
      s.seconds = 12.3;
      if (val) {
        s.metrics["val_top1"] = 0.25 + 0.1 * e;
        s.metrics["val_top5"] = 1.0;
      }
      f << cakes::train::log_line(s) << "\n";
    }
    return path;
  }

  // One line, naming `what`, exit 1, nothing written to `out`.
  void expect_refused(
      const Result& r, const std::string& what, const std::string& out) {
    EXPECT_EQ(r.rc, 1) << r.err;
    EXPECT_EQ(count(r.err, "\n"), 1u) << r.err;
    EXPECT_EQ(r.err.rfind("cakes: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << out;
  }
};

TEST_F(Plot, OnePathPerRunAndTheLegendNamesThem) {
  const std::string a = run("a", 3, true), b = run("b", 5, true),
                    c = run("c", 4, false);
  const std::string out = dir / "curves.svg";
  const auto r = cakes("plot " + a + " " + b + " " + c + " -o " + out);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("plotted 3 runs to " + out), std::string::npos);
  const std::string s = slurp(out);
  // Loss: one path per run; validation: one per run that has it and metric.
  EXPECT_EQ(count(s, "<path"), 3u + 2u * 2u) << s;
  cakes::test::expect_legend_inside(s);
  const auto texts = cakes::test::legend_texts(s);
  ASSERT_EQ(texts.size(), 3u + 2u);
  EXPECT_EQ(texts[0].text, dir / "a");
  EXPECT_EQ(texts[2].text, dir / "c");

  // --label names the runs; the picture is kept unless --force.
  const auto again = cakes("plot " + a + " " + b + " -o " + out);
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;
  EXPECT_EQ(slurp(out), s);
  ASSERT_EQ(
      cakes(
          "plot " + a + " " + b + " -o " + out +
          " --label 3D --label CAKES --force")
          .rc,
      0);
  const auto relabelled = cakes::test::legend_texts(slurp(out));
  ASSERT_GE(relabelled.size(), 2u);
  EXPECT_EQ(relabelled[0].text, "3D");
  EXPECT_EQ(relabelled[1].text, "CAKES");
  EXPECT_EQ(count(slurp(out), "<path"), 2u + 2u * 2u);
}

TEST_F(Plot, BadLogsAreOneLineNamingTheFile) {
  const std::string good = run("good", 2, false), out = dir / "x.svg";
  const std::string missing = dir / "missing/log.jsonl";
  expect_refused(
      cakes("plot " + good + " " + missing + " -o " + out), missing, out);

  const std::string empty = dir / "empty.jsonl";
  std::ofstream(empty).flush();
  expect_refused(cakes("plot " + empty + " -o " + out), empty, out);

  const std::string garbage = dir / "garbage.jsonl";
  std::ofstream(garbage) << slurp(good) << "epoch 3: loss 0.5\n";
  expect_refused(cakes("plot " + garbage + " -o " + out), garbage + ":3", out);

  const std::string no_loss = dir / "no_loss.jsonl";
  std::ofstream(no_loss)
      << "{\"epoch\":0,\"step\":1,\"steps\":1,\"seconds\":1}\n";
  expect_refused(cakes("plot " + no_loss + " -o " + out), no_loss, out);

  expect_refused(
      cakes("plot " + (dir / "good") + " -o " + out), dir / "good", out);
  expect_refused(
      cakes("plot " + good + " -o " + (dir / "x.png")), "x.png", dir / "x.png");
  expect_refused(
      cakes("plot " + good + " -o " + out + " --label a --label b"),
      "--label",
      out);
}

} // namespace
