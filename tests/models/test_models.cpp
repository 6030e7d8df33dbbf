// Networks, operation specs, configurations and costs (issue 3).
#include "cakes/models/i3d_resnet.h"
#include "cakes/models/model.h"
#include "cakes/models/network_config.h"
#include "cakes/models/res_encoder_decoder.h"
#include "cakes/models/zoo.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

using namespace cakes;
using namespace cakes::models;

namespace {

OpSpec op(const std::string& name) {
  return OpSpec{name, {}, {}};
}

// Copies every parameter and buffer of `from` into `to` where the names match;
// a CAKES layer with all channels in one sub-kernel has the same names
// ("weight_3x3x3") as the conv3d layer, so this gives both networks the same
// weights. Returns how many tensors were copied.
int copy_matching(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard ng;
  int n = 0;
  auto src = from.named_parameters();
  for (auto& kv : to.named_parameters())
    if (auto* s = src.find(kv.key())) {
      kv.value().copy_(*s);
      ++n;
    }
  auto bsrc = from.named_buffers();
  for (auto& kv : to.named_buffers())
    if (auto* s = bsrc.find(kv.key())) {
      kv.value().copy_(*s);
      ++n;
    }
  return n;
}

// Gives BatchNorms non-trivial statistics so that folding is really tested.
void randomize_bn(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& kv : m.named_buffers()) {
    if (kv.key().find("running_mean") != std::string::npos)
      kv.value().uniform_(-0.2, 0.2);
    if (kv.key().find("running_var") != std::string::npos)
      kv.value().uniform_(0.5, 1.5);
  }
  for (auto& kv : m.named_parameters())
    if (kv.key().find("bn.") != std::string::npos)
      kv.value().uniform_(0.5, 1.5);
}

} // namespace

// ---- output shapes: every network x operation
// --------------------------------

struct ShapeCase {
  std::string net;
  std::string op;
  std::vector<int64_t> input;
  std::vector<int64_t> expected;
};

TEST(Models, OutputShapesEveryNetworkAndOperation) {
  const std::vector<ShapeCase> cases = {
      {"i3d_resnet18", "conv3d", {1, 3, 4, 32, 32}, {1, 5}},
      {"i3d_resnet18", "conv2d", {2, 3, 4, 32, 32}, {2, 5}},
      {"i3d_resnet18", "p3d", {1, 3, 2, 32, 48}, {1, 5}},
      {"i3d_resnet18", "cakes", {1, 3, 4, 32, 32}, {1, 5}},
      {"i3d_resnet34", "cakes", {1, 3, 4, 32, 32}, {1, 5}},
      {"i3d_resnet50", "conv3d", {1, 3, 4, 32, 32}, {1, 5}},
      {"i3d_resnet50", "conv2d", {1, 3, 4, 32, 32}, {1, 5}},
      {"i3d_resnet50", "p3d", {1, 3, 4, 32, 32}, {1, 5}},
      {"i3d_resnet50", "cakes", {1, 3, 4, 32, 32}, {1, 5}},
      {"i3d_resnet101", "cakes", {1, 3, 1, 32, 32}, {1, 5}},
      {"res_encoder_decoder", "conv3d", {1, 1, 16, 16, 16}, {1, 5, 16, 16, 16}},
      {"res_encoder_decoder", "conv2d", {1, 1, 16, 32, 16}, {1, 5, 16, 32, 16}},
      {"res_encoder_decoder", "p3d", {1, 1, 16, 16, 16}, {1, 5, 16, 16, 16}},
      {"res_encoder_decoder", "cakes", {2, 1, 32, 16, 16}, {2, 5, 32, 16, 16}},
  };
  torch::manual_seed(0);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.net + " " + c.op);
    NetworkSpec a;
    a.network = c.net;
    a.op = op(c.op);
    a.num_classes = 5;
    auto m = build(a);
    m.module->eval();
    torch::NoGradGuard ng;
    const auto y = m.forward(torch::randn(c.input));
    EXPECT_EQ(y.sizes().vec(), c.expected);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
    // The analytic parameter count must agree with the real module.
    int64_t params = 0;
    for (const auto& p : m.module->parameters())
      params += p.numel();
    EXPECT_EQ(m.cost(c.input).total_params(), params);
  }
}

TEST(Models, ModuleNamesAreMeaningful) {
  I3DResNet net(I3DResNetOptions().depth(50).num_classes(3).op(op("cakes")));
  const auto p = net->named_parameters();
  EXPECT_NE(p.find("conv1.weight_1x7x7"), nullptr);
  EXPECT_NE(p.find("layer1.0.conv2.weight_3x3x3"), nullptr);
  EXPECT_NE(p.find("layer1.0.conv2.weight_3x1x1"), nullptr);
  EXPECT_NE(p.find("layer2.0.downsample.weight_1x1x1"), nullptr);
  EXPECT_NE(p.find("layer4.2.conv3.bn.weight"), nullptr);
  EXPECT_NE(p.find("fc.weight"), nullptr);
  ResEncoderDecoder seg{ResEncoderDecoderOptions()};
  const auto q = seg->named_parameters();
  EXPECT_NE(q.find("enc1.conv1.weight_3x1x3"), nullptr);
  EXPECT_NE(q.find("enc1.shortcut.weight_1x1x1"), nullptr);
  EXPECT_NE(q.find("dec0.conv2.bn.bias"), nullptr);
}

TEST(Models, VolumetricInputNotMultipleOf16IsAClearError) {
  ResEncoderDecoder seg(ResEncoderDecoderOptions().op(op("conv2d")));
  try {
    seg->forward(torch::randn({1, 1, 16, 24, 16}));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of 16"), std::string::npos)
        << e.what();
  }
}

// ---- CAKES with one sub-kernel equals the plain operation
// --------------------

TEST(Models, SingleKernelCakesEqualsConvNetworks) {
  for (const auto& k : {std::string("3x3x3"), std::string("1x3x3")}) {
    SCOPED_TRACE(k);
    for (int64_t depth : {18, 50}) {
      OpSpec spec{"cakes", {}, {}};
      for (const auto& p : i3d_resnet_positions(depth))
        spec.configs.push_back(
            Config::uniform(SubKernel::parse(k), p.out_channels));
      torch::manual_seed(1);
      I3DResNet ref(I3DResNetOptions().depth(depth).num_classes(4).op(
          op(k == "3x3x3" ? "conv3d" : "conv2d")));
      I3DResNet cak(I3DResNetOptions().depth(depth).num_classes(4).op(spec));
      randomize_bn(*ref);
      EXPECT_EQ(
          copy_matching(*ref, *cak),
          int(ref->named_parameters().size() + ref->named_buffers().size()));
      ref->eval();
      cak->eval();
      torch::NoGradGuard ng;
      const auto x = torch::randn({1, 3, 3, 32, 32});
      EXPECT_TRUE(
          torch::allclose(ref->forward(x), cak->forward(x), 1e-4, 1e-5));
    }
  }
  // The volumetric network too, and a different net must differ (the check
  // can fail).
  OpSpec spec{"cakes", {}, {}};
  for (const auto& p : res_encoder_decoder_positions(1, 16))
    spec.configs.push_back(Config::uniform({3, 3, 3}, p.out_channels));
  torch::manual_seed(2);
  ResEncoderDecoder ref(ResEncoderDecoderOptions().op(op("conv3d")));
  ResEncoderDecoder cak(ResEncoderDecoderOptions().op(spec));
  ResEncoderDecoder other(ResEncoderDecoderOptions().op(op("conv3d")));
  copy_matching(*ref, *cak);
  for (auto* m : {&ref, &cak, &other})
    (*m)->eval();
  torch::NoGradGuard ng;
  const auto x = torch::randn({1, 1, 16, 16, 16});
  EXPECT_TRUE(torch::allclose(ref->forward(x), cak->forward(x), 1e-4, 1e-5));
  EXPECT_FALSE(torch::allclose(ref->forward(x), other->forward(x), 1e-4, 1e-5));
}

// ---- BatchNorm folding
// --------------------------------------------------------

TEST(Models, FoldingBatchNormKeepsOutputs) {
  for (const std::string o : {"p3d", "cakes"}) {
    SCOPED_TRACE(o);
    NetworkSpec a;
    a.network = "i3d_resnet18";
    a.op = op(o);
    a.num_classes = 6;
    torch::manual_seed(3);
    auto m = build(a);
    randomize_bn(*m.module);
    m.module->eval();
    torch::NoGradGuard ng;
    const auto x = torch::randn({1, 3, 4, 32, 32});
    const auto before = m.forward(x);
    m.fold_batchnorm();
    const auto after = m.forward(x);
    EXPECT_TRUE(torch::allclose(before, after, 1e-4, 1e-4))
        << (before - after).abs().max().item<float>();
  }
  NetworkSpec a;
  a.network = "res_encoder_decoder";
  a.num_classes = 3;
  torch::manual_seed(4);
  auto m = build(a);
  randomize_bn(*m.module);
  m.module->eval();
  torch::NoGradGuard ng;
  const auto x = torch::randn({1, 1, 16, 16, 32});
  const auto before = m.forward(x);
  m.fold_batchnorm();
  const auto after = m.forward(x);
  // Folding rescales the weights, so float32 rounding differs by ~1e-6 of
  // the activations' scale (logits here reach ~100): compare at that scale.
  const double scale = before.abs().max().item<double>();
  EXPECT_TRUE(torch::allclose(before, after, 1e-4, 1e-5 * scale))
      << (before - after).abs().max().item<float>() << " of " << scale;
}

// ---- configurations
// -----------------------------------------------------------

TEST(Models, EmbeddedPresetsEqualTheConfigsFile) {
  std::ifstream f(
      std::string(CAKES_SOURCE_DIR) + "/configs/i3d_resnet50_ssv1.json");
  ASSERT_TRUE(f);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), std::string(embedded_presets_json()));
  EXPECT_EQ(preset_names().size(), 6u);
  const auto p = preset("CAKES123D_P");
  ASSERT_EQ(p.blocks.size(), 16u);
  EXPECT_EQ(p.blocks[1].str(), "3x3x3:24,1x3x3:40,3x1x1:0");
}

struct BadConfigCase {
  std::string text;
  std::string must_contain;
};

TEST(Models, ConfigValidationErrorsNameTheBlock) {
  // ResNet-18 positions with block 2 (layer1.1.conv1) one channel over width.
  std::string widths_off;
  const auto pos18 = i3d_resnet_positions(18);
  for (size_t i = 0; i < pos18.size(); ++i)
    widths_off += std::string(i ? "," : "") + "{\"1x3x3\":" +
                  std::to_string(pos18[i].out_channels - (i == 2 ? 1 : 0)) +
                  (i == 2 ? ",\"3x1x1\":2}" : "}");
  const std::vector<BadConfigCase> cases = {
      // wrong number of blocks
      {R"({"network":"i3d_resnet18","blocks":[{"1x3x3":64}]})",
       "1 block configurations given but the network has 16"},
      // channels not summing to the width, block 2 named
      {"{\"blocks\":[" + widths_off + "]}", "block 2 (layer1.1.conv1)"},
      // unknown sub-kernel
      {R"({"blocks":[{"1x3x3":32},{"2x3x3":32}]})",
       "block 1: bad sub-kernel '2x3x3'"},
      {R"({"blocks":[{"1x3x3":32},{"3x3":32}]})",
       "block 1: bad sub-kernel '3x3'"},
      {R"({"blocks":[{"1x3x3":"a"}]})", "block 0"},
      {R"({"blocks":7})", "\"blocks\" array"},
      {R"(not json)", "not valid JSON"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      const auto nc = parse_network_config(c.text);
      NetworkSpec a;
      a.network = "i3d_resnet18";
      a.op = OpSpec{nc.op, nc.blocks, {}};
      build(a);
      FAIL() << "expected an error";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(c.must_contain), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  // Presets are for ResNet-50's 16 blocks; ResNet-101 has 33.
  NetworkSpec a;
  a.network = "i3d_resnet101";
  a.op = OpSpec{"cakes", preset("CAKES12D_P").blocks, {}};
  EXPECT_THROW(build(a), std::invalid_argument);
  a.op = op("nonsense");
  EXPECT_THROW(build(a), std::invalid_argument);
}

// ---- docs/CAKES.md §9
// ------------------------------------------------------------------

struct PublishedCost {
  std::string op;
  std::string preset;
  double gmacs;
  double mparams;
};

TEST(Models, CostMatchesPublishedTable) {
  const std::vector<PublishedCost> table = {
      {"conv2d", "", 32.7, 23.9},
      {"conv3d", "", 62.3, 46.5},
      {"p3d", "", 37.6, 27.6},
      {"cakes", "CAKES12D_P", 28.8, 20.9},
      {"cakes", "CAKES23D_P", 50.5, 37.5},
      {"cakes", "CAKES23D_C", 41.2, 35.7},
      {"cakes", "CAKES123D_P", 43.6, 33.5},
      {"cakes", "CAKES123D_C", 38.5, 35.0},
  };
  for (const auto& row : table) {
    SCOPED_TRACE(row.op + " " + row.preset);
    NetworkSpec a;
    a.network = "i3d_resnet50";
    a.op = OpSpec{
        row.op,
        row.preset.empty() ? std::vector<Config>{} : preset(row.preset).blocks,
        {}};
    a.num_classes = 174;
    const auto r = build(a).cost({1, 3, 8, 224, 224});
    EXPECT_NEAR(r.total_macs() / 1e9, row.gmacs, 0.01 * row.gmacs);
    EXPECT_NEAR(r.total_params() / 1e6, row.mparams, 0.01 * row.mparams);
  }
}

// ---- the network description
// ---------------------------------------------------

TEST(NetworkSpec, JsonRoundTripAndCanonicalEquality) {
  NetworkSpec s;
  s.network = "i3d_resnet50";
  s.num_classes = 174;
  s.op = OpSpec{"cakes", preset("CAKES123D_P").blocks, {}};
  const auto back = NetworkSpec::from_json(s.to_json());
  EXPECT_EQ(back, s);
  EXPECT_EQ(back.op.configs.size(), 16u);
  EXPECT_EQ(back.op.configs[1], s.op.configs[1]);
  // Defaults made explicit describe the same network.
  NetworkSpec explicit_defaults = s;
  explicit_defaults.width = 64;
  explicit_defaults.op.candidates = video_candidates();
  EXPECT_EQ(explicit_defaults, s);
  EXPECT_EQ(difference(s, explicit_defaults), "");
  // The model keeps the canonical form, and rebuilding from it is the same
  // network.
  NetworkSpec small = s;
  small.network = "i3d_resnet18";
  small.width = 4;
  small.op = OpSpec{"p3d", {}, {}};
  const auto m = build(small);
  EXPECT_EQ(m.spec.width, 4);
  EXPECT_EQ(m.spec.in_channels, 3);
  EXPECT_EQ(
      build(NetworkSpec::from_json(m.spec.to_json()))
          .cost({1, 3, 2, 32, 32})
          .total_params(),
      m.cost({1, 3, 2, 32, 32}).total_params());
}

TEST(NetworkSpec, DifferenceNamesTheFirstOne) {
  NetworkSpec a;
  a.network = "res_encoder_decoder";
  a.num_classes = 3;
  auto b = a;
  b.width = 8;
  EXPECT_EQ(difference(a, b), "width 16 vs 8");
  b = a;
  b.in_channels = 2;
  EXPECT_EQ(difference(a, b), "1 vs 2 input channels");
  b = a;
  b.op.op = "conv3d";
  a.op.op = "cakes";
  EXPECT_EQ(difference(a, b), "operation cakes vs conv3d");
  b = a;
  b.network = "i3d_resnet18";
  EXPECT_EQ(difference(a, b), "network res_encoder_decoder vs i3d_resnet18");
  EXPECT_THROW(
      NetworkSpec::from_json("{\"network\": 3}"), std::invalid_argument);
  EXPECT_THROW(NetworkSpec::from_json("not json"), std::invalid_argument);
}
