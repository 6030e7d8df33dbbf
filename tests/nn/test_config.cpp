// Configuration parsing/printing and the layer every network uses (OpLayer).
#include "cakes/nn/config.h"
#include "cakes/nn/op_layer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

using cakes::Config;
using cakes::SubKernel;

// Each text fails to parse with a one-line message containing its needle.
void expect_one_line_errors(
    const std::vector<std::pair<std::string, std::string>>& bad) {
  for (const auto& [text, needle] : bad) {
    try {
      Config::parse(text);
      ADD_FAILURE() << "no error for '" << text << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "'" << text << "' gave: " << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

TEST(Config, CompactAndJsonRoundTripKeepOrder) {
  const Config c = Config::parse("3x3x3:22,1x3x3:21,3x1x1:21");
  ASSERT_EQ(c.groups().size(), 3u);
  EXPECT_EQ(c.groups()[1].kernel, (SubKernel{1, 3, 3}));
  EXPECT_EQ(c.groups()[2].channels, 21);
  EXPECT_EQ(c.out_channels(), 64);
  EXPECT_EQ(c.str(), "3x3x3:22,1x3x3:21,3x1x1:21");
  EXPECT_EQ(c.json(), R"({"3x3x3":22,"1x3x3":21,"3x1x1":21})");
  EXPECT_EQ(Config::parse(c.json()), c);
  // JSON key order is group order, not alphabetical.
  EXPECT_EQ(Config::parse(R"({"3x1x1":1,"1x3x3":2})").str(), "3x1x1:1,1x3x3:2");
  EXPECT_EQ(Config::parse(" 1x1x1:0 , 3x3x3:4 ").str(), "1x1x1:0,3x3x3:4");
  EXPECT_EQ(c.taps_times_channels(), 22 * 27 + 21 * 9 + 21 * 3);
}

TEST(Config, MalformedTextIsAClearError) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty"},
      {"3x3x3", "DxHxW:channels"},
      {"3x3:4", "expected DxHxW"},
      {"3x2x3:4", "must be 1 or an odd number"},
      {"3x3x3:-1", "not a non-negative integer"},
      {"3x3x3:4,3x3x3:2", "listed twice"},
      {"axbxc:3", "expected DxHxW"},
      {"{\"3x3x3\": \"x\"}", "must be an integer"},
      {"{\"3x3x3\": 4", "bad configuration JSON"},
  };
  expect_one_line_errors(bad);
}

TEST(Config, OutputIndexRoundTripsAndCountsOutputs) {
  // A permutation (a derived layer of a residual position).
  const Config p = Config::parse("3x3x3:1,1x3x3:2;output_index=2,0,1");
  EXPECT_EQ(p.conv_channels(), 3);
  EXPECT_EQ(p.out_channels(), 3);
  EXPECT_EQ(p.output_index(), (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(p.str(), "3x3x3:1,1x3x3:2;output_index=2,0,1");
  EXPECT_EQ(p.json(), R"({"3x3x3":1,"1x3x3":2,"output_index":[2,0,1]})");
  EXPECT_EQ(Config::parse(p.json()), p);
  EXPECT_FALSE(p == Config::parse("3x3x3:1,1x3x3:2;output_index=0,2,1"));
  // The identity is the default and is stored as none.
  const Config i = Config::parse("3x3x3:1,1x3x3:2;output_index=0,1,2");
  EXPECT_TRUE(i.output_index().empty());
  EXPECT_EQ(i, Config::parse("3x3x3:1,1x3x3:2"));
}

TEST(Config, BadOutputIndexIsAClearError) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"3x3x3:2;output_index=0", "1 entries for 2 channels"},
      {"3x3x3:2;output_index=0,2", "entry 2 is outside 0..1"},
      {"3x3x3:2;output_index=1,1", "output channel 1 appears twice"},
      {"3x3x3:2;output_index=0,x", "not a non-negative integer"},
      {"3x3x3:2;order=0,1", "expected 'output_index="},
      {R"({"3x3x3":2,"output_index":[0,-1]})", "entry -1 is outside 0..1"},
      {R"({"3x3x3":2,"output_index":"0,1"})", "array of integers"},
  };
  expect_one_line_errors(bad);
}

// OpLayer applies output_index after the BatchNorm: a permutation moves the
// channels. (Summing per index is the super-network's, test_search.cpp.)
TEST(OpLayer, OutputIndexMovesChannelsAfterBatchNorm) {
  using cakes::nn::OpLayer;
  using cakes::nn::OpLayerOptions;
  torch::manual_seed(3);
  const auto x = torch::randn({2, 4, 3, 5, 5});
  const Config groups = Config::parse("3x3x3:2,1x3x3:2");
  OpLayer plain(OpLayerOptions(4, groups).relu(false));
  plain->eval();
  {
    torch::NoGradGuard ng;
    plain->bn()->weight.uniform_(0.5, 2);
    plain->bn()->bias.uniform_(-1, 1);
  }
  torch::NoGradGuard ng;
  const auto y = plain->forward(x);
  auto like = [&](const std::string& cfg) {
    OpLayer m(OpLayerOptions(4, Config::parse(cfg)).relu(false));
    m->eval();
    for (const auto& kv : plain->named_parameters())
      m->named_parameters()[kv.key()].copy_(kv.value());
    return m;
  };
  auto perm = like("3x3x3:2,1x3x3:2;output_index=3,0,2,1");
  const auto yp = perm->forward(x);
  for (int64_t i : {0, 1, 2, 3}) {
    const int64_t to[] = {3, 0, 2, 1};
    EXPECT_TRUE(torch::allclose(yp.select(1, to[i]), y.select(1, i)));
  }
  // Folded BatchNorm, same outputs.
  perm->fold_batchnorm();
  EXPECT_TRUE(torch::allclose(perm->forward(x), yp, 1e-4, 1e-5));
}

TEST(OpLayer, NamedParametersShapesAndForward) {
  cakes::nn::OpLayer layer(8, Config::parse("3x3x3:4,1x3x3:3,3x1x1:0,1x1x1:1"));
  auto params = layer->named_parameters();
  ASSERT_TRUE(params.contains("weight_3x3x3"));
  EXPECT_EQ(
      params["weight_1x3x3"].sizes(), torch::IntArrayRef({3, 8, 1, 3, 3}));
  EXPECT_EQ(params["weight_3x1x1"].numel(), 0);
  EXPECT_EQ(params["bn.weight"].size(0), 8);
  auto x = torch::randn({2, 8, 4, 6, 6});
  auto y = layer->forward(x);
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 8, 4, 6, 6}));
  EXPECT_GE(y.min().item<float>(), 0.0f); // ReLU
  // With a stride the spatial axes shrink and time (a stride of 1) does not.
  cakes::nn::OpLayer strided(
      cakes::nn::OpLayerOptions(8, Config::parse("1x3x3:5")).stride({1, 2, 2}));
  EXPECT_EQ(strided->forward(x).sizes(), torch::IntArrayRef({2, 5, 4, 3, 3}));
}

TEST(OpLayer, EqualsSingleConvWithZeroPaddedKernel) {
  // docs/CAKES.md §2: the layer's convolution equals one 3x3x3 convolution
  // whose kernel is zero outside each channel's sub-kernel, with the same
  // dilation.
  torch::manual_seed(0);
  for (int64_t dilation : {1, 2}) {
    cakes::nn::OpLayer layer(
        cakes::nn::OpLayerOptions(3, Config::parse("3x3x3:2,1x3x3:2,3x1x1:1"))
            .dilation({dilation, dilation, dilation}));
    auto x = torch::randn({1, 3, 7, 7, 7});
    auto full = torch::zeros({5, 3, 3, 3, 3});
    const auto& w = layer->stages()[0];
    full.slice(0, 0, 2).copy_(w[0]);
    full.slice(0, 2, 4).slice(2, 1, 2).copy_(w[1]);
    full.slice(0, 4, 5).slice(3, 1, 2).slice(4, 1, 2).copy_(w[2]);
    torch::NoGradGuard ng;
    auto expected = torch::conv3d(x, full, {}, 1, dilation, dilation);
    EXPECT_TRUE(torch::allclose(
        layer->convolve(x, layer->stages()), expected, 1e-4, 1e-5))
        << "dilation " << dilation;
  }
}

TEST(OpLayer, BadArgumentsAreInvalidArgument) {
  // One error type for bad arguments, the op's own checks included.
  EXPECT_THROW(
      cakes::nn::OpLayer(4, Config::parse("3x3x3:0")), std::invalid_argument);
  cakes::nn::OpLayer layer(4, Config::parse("3x3x3:2"));
  try {
    layer->forward(torch::randn({1, 3, 4, 4, 4})); // 3 channels, not 4
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

} // namespace
