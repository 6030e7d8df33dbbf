// The demo's picture (examples/demo/results.cpp) from fixed rows: round axes,
// a scale on the sub-kernel bars, and every legend inside the picture, with
// all seven volumetric sub-kernels in the MRI network's legend.
#include "demo/results.h"

#include "report/svg_text.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace {

using cakes::Config;
using cakes::demo::Row;

Row row(const std::string& name, double mmacs, double score) {
  Row r;
  r.name = name;
  r.macs = int64_t(mmacs * 1e6);
  r.score = score;
  return r;
}

TEST(DemoPicture, RoundAxesScaledBarsAndWholeLegends) {
  std::vector<Row> video = {
      row("2D", 22.1, 0.2), row("3D", 56.3, 0.967), row("CAKES", 29.1, 0.95)};
  std::vector<Row> seg = {row("3D", 2388.4, 0.665), row("CAKES", 746.6, 0.62)};
  for (int i = 0; i < 16; ++i)
    video[2].spec.op.configs.push_back(
        Config::parse("3x3x3:11,1x3x3:10,3x1x1:" + std::to_string(11 + i)));
  for (int i = 0; i < 14; ++i)
    seg[1].spec.op.configs.push_back(Config::parse(
        "3x3x3:3,1x3x3:2,3x1x3:2,3x3x1:" + std::to_string(1 + i % 3) +
        ",3x1x1:2,1x3x1:2,1x1x3:2"));
  const std::string s = cakes::demo::picture(video, seg, &video[2], &seg[1]);
  // Kept in the build tree for a look (rsvg-convert / convert to PNG).
  const auto path =
      std::filesystem::path(CAKES_BINARY_DIR) / "test_tmp" / "demo_picture.svg";
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << s;

  cakes::test::expect_legend_inside(s);
  const auto texts = cakes::test::legend_texts(s);
  // Video CAKES: 3 sub-kernels; MRI CAKES: all 7.
  ASSERT_EQ(texts.size(), 3u + 7u);
  for (const char* k : {"3x3x1", "1x1x3", "1x3x1"}) {
    bool found = false;
    for (const auto& t : texts)
      found |= t.text == k;
    EXPECT_TRUE(found) << k;
  }
  // x axes on round values: 0 .. 80 MMACs by 20 for video, 0 .. 3000 by 500
  // for MRI; y in percent by 20.
  for (const char* tick :
       {">60</text>",
        ">80</text>",
        ">3000</text>",
        ">2500</text>",
        ">100</text>"})
    EXPECT_NE(s.find(tick), std::string::npos) << tick;
  for (const char* odd : {">49</text>", ">2747</text>", ">687</text>"})
    EXPECT_EQ(s.find(odd), std::string::npos) << odd;
  // The bars' scale.
  EXPECT_NE(s.find("% of output channels"), std::string::npos);
}

} // namespace
