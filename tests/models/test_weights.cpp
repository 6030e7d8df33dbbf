// Checkpoints, import of the paper's PyTorch layout, inflation of 2D ResNets.
#include "cakes/models/i3d_resnet.h"
#include "cakes/models/network_config.h"
#include "cakes/models/weights.h"

#include "support/temp_dir.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

using namespace cakes;
using namespace cakes::models;
namespace fs = std::filesystem;

namespace {

using cakes::test::TempDir;

I3DResNet small_net(int64_t depth, OpSpec op, int64_t classes = 5) {
  // No dropout: training steps of two copies must be comparable.
  return I3DResNet(
      I3DResNetOptions().depth(depth).num_classes(classes).dropout(0).op(
          std::move(op)));
}

std::map<std::string, torch::Tensor> snapshot(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> s;
  for (const auto& p : m.named_parameters())
    s[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers())
    s[b.key()] = b.value().clone();
  return s;
}

// Exact by default; with a tolerance for results of further computation
// (the op's weight gradient sums per-thread partials in varying order).
bool same(
    torch::nn::Module& m,
    const std::map<std::string, torch::Tensor>& s,
    double tol = 0) {
  for (const auto& kv : snapshot(m)) {
    const auto& o = s.at(kv.first);
    if (tol == 0
            ? !torch::equal(kv.second, o)
            : !torch::allclose(
                  kv.second.to(torch::kDouble), o.to(torch::kDouble), tol, tol))
      return false;
  }
  return true;
}

// Runs the PyTorch fixture writer once per test binary run.
const fs::path& fixtures() {
  static const fs::path dir = [] {
    // The fixtures are ~180 MB; they live for this process only.
    static const TempDir d("models_fixtures");
    const std::string cmd =
        "/usr/bin/python3 " + std::string(CAKES_SOURCE_DIR) +
        "/tests/models/paper_fixture.py " + CAKES_SOURCE_DIR +
        "/configs/i3d_resnet50_ssv1.json CAKES123D_P " + d.path() + " > " +
        (d / "log.txt") + " 2>&1";
    if (std::system(cmd.c_str()) != 0)
      return fs::path();
    return fs::path(d.path());
  }();
  return dir;
}

} // namespace

TEST(Weights, CheckpointRoundTripWithOptimizer) {
  torch::manual_seed(0);
  auto a = small_net(18, OpSpec{"cakes", {}, {}});
  torch::optim::SGD opt_a(
      a->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const auto x = torch::randn({2, 3, 1, 16, 16});
  const auto target = torch::tensor({1, 3});
  auto step = [&](I3DResNet& n, torch::optim::SGD& o) {
    o.zero_grad();
    torch::cross_entropy_loss(n->forward(x), target).backward();
    o.step();
  };
  a->train();
  step(a, opt_a); // gives the optimizer momentum state and BN statistics
  const TempDir dir("models_ckpt");
  const auto path = dir / "model.pt";
  save_checkpoint(*a, path, &opt_a);

  torch::manual_seed(1);
  auto b = small_net(18, OpSpec{"cakes", {}, {}});
  torch::optim::SGD opt_b(
      b->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  EXPECT_FALSE(same(*b, snapshot(*a)));
  load_checkpoint(*b, path, &opt_b);
  EXPECT_TRUE(same(*b, snapshot(*a)));
  // The next step depends on the momentum buffers: equal only if they loaded
  // (a fresh optimizer, without them, ends elsewhere).
  auto c = small_net(18, OpSpec{"cakes", {}, {}});
  load_checkpoint(*c, path);
  torch::optim::SGD opt_c(
      c->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  b->train();
  c->train();
  step(a, opt_a);
  step(b, opt_b);
  step(c, opt_c);
  EXPECT_TRUE(same(*b, snapshot(*a), 1e-5));
  EXPECT_FALSE(same(*c, snapshot(*a), 1e-5));
  fs::remove_all(fs::path(path).parent_path());
}

TEST(Weights, CheckpointMismatchNamesKeyAndShapesAndLoadsNothing) {
  torch::manual_seed(0);
  auto a = small_net(18, OpSpec{"conv3d", {}, {}});
  const TempDir dir("models_ckpt_bad");
  const auto path = dir / "model.pt";
  save_checkpoint(*a, path);
  auto b = small_net(18, OpSpec{"conv3d", {}, {}}, /*classes=*/7);
  const auto before = snapshot(*b);
  try {
    load_checkpoint(*b, path);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(
        msg.find(
            "'fc.weight' has shape [5, 512] but fc.weight expects [7, 512]"),
        std::string::npos)
        << msg;
  }
  EXPECT_TRUE(same(*b, before));
  // A different operation has different keys.
  auto c = small_net(18, OpSpec{"conv2d", {}, {}});
  EXPECT_THROW(load_checkpoint(*c, path), std::invalid_argument);
  EXPECT_THROW(load_checkpoint(*c, path + ".missing"), std::runtime_error);
  fs::remove_all(fs::path(path).parent_path());
}

TEST(Weights, ImportPaperLayoutMatchesPyTorch) {
  if (fixtures().empty())
    GTEST_SKIP() << "/usr/bin/python3 with torch is not available";
  auto net = small_net(50, OpSpec{"cakes", preset("CAKES123D_P").blocks, {}});
  import_paper_state_dict(*net, (fixtures() / "paper.pt").string());
  const auto io = read_pytorch_tensors((fixtures() / "io.pt").string());
  net->eval();
  torch::NoGradGuard ng;
  const auto y = net->forward(io.at("x"));
  EXPECT_TRUE(torch::allclose(y, io.at("y"), 1e-4, 1e-4))
      << y << "\nvs PyTorch\n"
      << io.at("y");

  // Another configuration has other shapes: named error, nothing loaded.
  auto other = small_net(50, OpSpec{"cakes", preset("CAKES12D_P").blocks, {}});
  const auto before = snapshot(*other);
  try {
    import_paper_state_dict(*other, (fixtures() / "paper.pt").string());
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("base_model.layer1.0.convT.convs."), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("expects ["), std::string::npos) << msg;
  }
  EXPECT_TRUE(same(*other, before));
}

TEST(Weights, InflationFollowsSpecKernelByKernel) {
  if (fixtures().empty())
    GTEST_SKIP() << "/usr/bin/python3 with torch is not available";
  // Every position mixes five sub-kernels so that each SPEC §5 rule is used.
  const std::vector<SubKernel> kinds = {
      {3, 3, 3}, {1, 3, 3}, {3, 1, 1}, {3, 1, 3}, {1, 1, 3}};
  OpSpec spec{"cakes", {}, kinds};
  auto net = small_net(18, spec);
  const auto fc_before = net->named_parameters()["fc.weight"].clone();
  const auto path = (fixtures() / "tv18.pt").string();
  inflate_2d_resnet(*net, path);
  const auto tv = read_pytorch_tensors(path);
  auto p = net->named_parameters();
  auto buf = net->named_buffers();

  EXPECT_TRUE(torch::equal(
      p["conv1.weight_1x7x7"].select(2, 0), tv.at("conv1.weight")));
  EXPECT_TRUE(torch::equal(p["conv1.bn.weight"], tv.at("bn1.weight")));
  EXPECT_TRUE(torch::equal(
      buf["layer2.0.conv2.bn.running_var"], tv.at("layer2.0.bn2.running_var")));
  EXPECT_TRUE(torch::equal(
      p["layer3.0.downsample.weight_1x1x1"].flatten(1),
      tv.at("layer3.0.downsample.0.weight").flatten(1)));
  EXPECT_TRUE(torch::equal(p["fc.weight"], fc_before));

  for (const std::string layer : {"layer1.0.conv1", "layer4.1.conv2"}) {
    SCOPED_TRACE(layer);
    const auto w2 = tv.at(layer + ".weight");
    // Groups are in `kinds` order with an even split, remainder first.
    const int64_t c_out = w2.size(0), n = int64_t(kinds.size());
    int64_t off = 0;
    for (int64_t g = 0; g < n; ++g) {
      const int64_t c = c_out / n + (g < c_out % n ? 1 : 0);
      const auto src = w2.narrow(0, off, c);
      off += c;
      const auto w = p[layer + ".weight_" + kinds[g].str()];
      ASSERT_EQ(w.size(0), c);
      const auto taps_sum = src.sum({2, 3});
      for (int64_t t = 0; t < 3; ++t) {
        switch (g) {
        case 0: // 3x3x3: the 2D kernel at every time offset, /3
          EXPECT_TRUE(torch::allclose(w.select(2, t), src / 3.0));
          break;
        case 1: // 1x3x3: unchanged
          EXPECT_TRUE(torch::equal(w.select(2, 0), src));
          break;
        case 2: // 3x1x1: sum of the taps, repeated in time, /3
          EXPECT_TRUE(
              torch::allclose(w.select(2, t).flatten(1), taps_sum / 3.0));
          break;
        case 3: // 3x1x3: the 2D kernel's rows on the time axis
          EXPECT_TRUE(torch::equal(w.select(3, 0), src));
          break;
        case 4: // 1x1x3: sum of taps along W, /3
          EXPECT_TRUE(
              torch::allclose(w.select(4, t).flatten(1), taps_sum / 3.0));
          break;
        }
      }
    }
  }
  // A reordered layer (a searched residual position, docs/SEARCH.md) takes
  // the 2D filter and BatchNorm entries of the output channel it feeds: with
  // 1x3x3 kernels and any channel orders, the inflated network is the
  // inflated all-1x3x3 network.
  auto flat = small_net(18, OpSpec{"conv2d", {}, {}});
  std::vector<Config> configs;
  torch::manual_seed(2);
  for (const auto& pos : i3d_resnet_positions(18)) {
    const auto perm = torch::randperm(pos.out_channels, torch::kLong);
    configs.emplace_back(
        std::vector<KernelGroup>{{{1, 3, 3}, pos.out_channels}},
        std::vector<int64_t>(
            perm.data_ptr<int64_t>(),
            perm.data_ptr<int64_t>() + pos.out_channels));
  }
  auto reordered = small_net(18, OpSpec{"cakes", configs, {}});
  inflate_2d_resnet(*flat, path);
  inflate_2d_resnet(*reordered, path);
  {
    torch::NoGradGuard ng;
    // Same classifier in both; the rest comes from the file.
    reordered->named_parameters()["fc.weight"].copy_(
        flat->named_parameters()["fc.weight"]);
    reordered->named_parameters()["fc.bias"].copy_(
        flat->named_parameters()["fc.bias"]);
    flat->eval();
    reordered->eval();
    const auto x = torch::randn({1, 3, 2, 32, 32});
    EXPECT_TRUE(
        torch::allclose(flat->forward(x), reordered->forward(x), 1e-4, 1e-4));
  }
  // A torchvision dict for another depth is refused by name.
  auto r34 = small_net(34, OpSpec{"conv2d", {}, {}});
  EXPECT_THROW(inflate_2d_resnet(*r34, path), std::invalid_argument);
}
