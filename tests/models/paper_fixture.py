"""Writes fixtures for tests/models/test_weights.cpp with PyTorch itself.

usage: paper_fixture.py PRESETS_JSON PRESET OUT_DIR

- OUT_DIR/paper.pt: state dict of an I3D ResNet-50 in the paper code's layout
  (base_model.*, convT.convs.<i>.0, convT.out.0, new_fc), saved with a
  "module." prefix as DataParallel does;
- OUT_DIR/io.pt: {"x": input, "y": PyTorch's eval-mode output};
- OUT_DIR/tv18.pt: a torchvision-layout ResNet-18 state dict (random values).
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ORDER = ["3x3x3", "1x3x3", "3x1x1"]


def kernel(name):
    return tuple(int(v) for v in name.split("x"))


class ConvT(nn.Module):
    def __init__(self, cin, split, stride):
        super().__init__()
        self.groups = [(k, split[k]) for k in ORDER if split.get(k, 0) > 0]
        self.stride = (1, stride, stride)
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv3d(cin, c, kernel(k), self.stride,
                                    tuple(e // 2 for e in kernel(k)), bias=False))
            for k, c in self.groups)
        self.out = nn.Sequential(nn.BatchNorm3d(sum(c for _, c in self.groups)),
                                 nn.ReLU(inplace=True))

    def forward(self, x):
        return self.out(torch.cat([c(x) for c in self.convs], 1))


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride, split):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.convT = ConvT(width, split, stride)
        self.conv3 = nn.Conv3d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(width * 4)
        self.downsample = None
        if stride != 1 or cin != width * 4:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, width * 4, 1, (1, stride, stride), bias=False),
                nn.BatchNorm3d(width * 4))

    def forward(self, x):
        y = self.bn3(self.conv3(self.convT(F.relu(self.bn1(self.conv1(x))))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Base(nn.Module):
    def __init__(self, splits):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        cin, i = 64, 0
        for s, (n, w) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin, w, 2 if s > 0 and b == 0 else 1, splits[i]))
                cin, i = w * 4, i + 1
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))

    def forward(self, x):
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), (1, 3, 3), (1, 2, 2), (0, 1, 1))
        for s in range(1, 5):
            x = getattr(self, "layer%d" % s)(x)
        return x


class Net(nn.Module):
    def __init__(self, splits, classes):
        super().__init__()
        self.base_model = Base(splits)
        self.new_fc = nn.Linear(2048, classes)

    def forward(self, x):
        y = self.base_model(x).mean((3, 4)).transpose(1, 2)
        return self.new_fc(y).mean(1)


def main():
    presets, name, out = sys.argv[1:4]
    torch.manual_seed(0)
    splits = json.load(open(presets))["presets"][name]
    net = Net(splits, 5).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
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
