"""The paper code's network (github.com/yucornetto/CAKES), written for the
tests with its key names (base_model.*, convT.op.N, convT.convs.<i>.0,
convT.out.0, new_fc) and its computation: I3D ResNet-50 bottlenecks, a 1x7x7
stem, a per-frame classifier averaged over time. tests/python/test_cli_weights.py
imports it.

As a script, writes fixtures for tests/models/test_weights.cpp:
usage: paper_fixture.py PRESETS_JSON PRESET OUT_DIR

- OUT_DIR/paper.pt: state dict of an I3D ResNet-50 in the paper code's layout
  with a preset's configuration, saved with a "module." prefix as
  DataParallel does;
- OUT_DIR/io.pt: {"x": input, "y": PyTorch's eval-mode output};
- OUT_DIR/tv18.pt: a torchvision-layout ResNet-18 state dict (random values).
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ORDER = ["3x3x3", "1x3x3", "3x1x1"]
BLOCKS = [3, 4, 6, 3]


def _kernel(k):
    return tuple(int(v) for v in k.split("x"))


class ConvT(nn.Module):
    """The paper's operation module: op = Sequential(conv[, conv], BN, ReLU) for
    conv3d / conv2d / P3D; convs = one Sequential(conv) per non-empty group and
    out = Sequential(BN, ReLU) for the CAKES codes."""

    def __init__(self, cin, cout, stride, op, groups):
        super().__init__()
        s = (1, stride, stride)
        if op in ("conv3d", "conv2d"):
            k = (3, 3, 3) if op == "conv3d" else (1, 3, 3)
            self.op = nn.Sequential(nn.Conv3d(cin, cout, k, s, tuple(e // 2 for e in k), bias=False),
                                    nn.BatchNorm3d(cout), nn.ReLU())
        elif op == "p3d":
            self.op = nn.Sequential(nn.Conv3d(cin, cin, (1, 3, 3), s, (0, 1, 1), bias=False),
                                    nn.Conv3d(cin, cout, (3, 1, 1), 1, (1, 0, 0), bias=False),
                                    nn.BatchNorm3d(cout), nn.ReLU())
        else:
            self.convs = nn.ModuleList(
                nn.Sequential(nn.Conv3d(cin, c, _kernel(k), s, tuple(e // 2 for e in _kernel(k)), bias=False))
                for k, c in groups if c > 0)
            if op.startswith("superp_"):
                # The performance-priority super-network (the *_dropout
                # codes): the norm over all groups is convT.norm; a step
                # computes only the channels in `keep` (ascending), and conv3
                # reads them by position.
                self.norm = nn.BatchNorm3d(sum(c for _, c in groups))
                self.keep = None
            else:
                self.out = nn.Sequential(nn.BatchNorm3d(cout), nn.ReLU())

    def forward(self, x):
        if hasattr(self, "op"):
            return self.op(x)
        y = torch.cat([c(x) for c in self.convs], 1)
        if hasattr(self, "norm"):
            k, n = self.keep, self.norm
            return F.relu(F.batch_norm(y[:, k], n.running_mean[k], n.running_var[k], n.weight[k], n.bias[k],
                                       False, 0.0, n.eps))
        return self.out(y)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride, op, groups):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        # A search super-network (op "super_<code>"): every group at full
        # width, the norm over all of them, conv3 reading them all; in the
        # performance-priority one ("superp_<code>") conv3 reads C_out of them.
        inner = sum(c for _, c in groups) if op.startswith("super_") else planes
        self.convT = ConvT(planes, inner, stride, op, groups)
        self.conv3 = nn.Conv3d(inner, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = None
        if stride != 1 or cin != planes * 4:
            self.downsample = nn.Sequential(nn.Conv3d(cin, planes * 4, 1, (1, stride, stride), bias=False),
                                            nn.BatchNorm3d(planes * 4))

    def forward(self, x):
        y = self.bn3(self.conv3(self.convT(F.relu(self.bn1(self.conv1(x))))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Base(nn.Module):
    def __init__(self, op, configs, width):
        super().__init__()
        self.conv1 = nn.Conv3d(3, width, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        cin, i = width, 0
        for s, n in enumerate(BLOCKS):
            planes = width << s
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin, planes, 2 if s > 0 and b == 0 else 1, op,
                                         configs[i] if configs else None))
                cin, i = planes * 4, i + 1
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))

    def forward(self, x):
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), (1, 3, 3), (1, 2, 2), (0, 1, 1))
        for s in range(1, 5):
            x = getattr(self, "layer%d" % s)(x)
        return x


class PaperNet(nn.Module):
    """op: conv3d, conv2d, p3d, a CAKES code with `configs` (per block a list
    of (sub-kernel, channels)), or "super_<code>" / "superp_<code>" (a
    cost- / performance-priority search super-network)."""

    def __init__(self, op, configs=None, width=64, classes=5):
        super().__init__()
        self.base_model = Base(op, configs, width)
        self.new_fc = nn.Linear(width * 32, classes)

    def forward(self, x):
        y = self.base_model(x).mean((3, 4)).transpose(1, 2)  # per frame
        return self.new_fc(y).mean(1)



def randomise_norms(net):
    """Non-trivial norms (scales, shifts, statistics), so that every tensor
    of a file matters to the outputs."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


def main():
    presets, name, out = sys.argv[1:4]
    torch.manual_seed(0)
    splits = json.load(open(presets))["presets"][name]
    configs = [[(k, s[k]) for k in ORDER if s.get(k, 0) > 0] for s in splits]
    net = randomise_norms(PaperNet("cakes", configs, width=64, classes=5).eval())
    with torch.no_grad():
        x = torch.randn(1, 3, 2, 32, 32)
        y = net(x)
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, out + "/paper.pt")
    torch.save({"x": x, "y": y}, out + "/io.pt")

    # torchvision resnet18 layout, random values
    sd = {"conv1.weight": torch.randn(64, 3, 7, 7)}
    def bn(p, c):
        sd[p + ".weight"] = torch.rand(c) + 0.5
        sd[p + ".bias"] = torch.randn(c)
        sd[p + ".running_mean"] = torch.randn(c)
        sd[p + ".running_var"] = torch.rand(c) + 0.5
        sd[p + ".num_batches_tracked"] = torch.tensor(7)
    bn("bn1", 64)
    cin = 64
    for s, w in enumerate([64, 128, 256, 512]):
        for b in range(2):
            p = "layer%d.%d." % (s + 1, b)
            sd[p + "conv1.weight"] = torch.randn(w, cin, 3, 3)
            bn(p + "bn1", w)
            sd[p + "conv2.weight"] = torch.randn(w, w, 3, 3)
            bn(p + "bn2", w)
            if b == 0 and s > 0:
                sd[p + "downsample.0.weight"] = torch.randn(w, cin, 1, 1)
                bn(p + "downsample.1", w)
            cin = w
    sd["fc.weight"] = torch.randn(1000, 512)
    sd["fc.bias"] = torch.randn(1000)
    torch.save(sd, out + "/tv18.pt")


if __name__ == "__main__":
    main()
