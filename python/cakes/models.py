"""I3D ResNet for video (docs/CAKES.md §3) in PyTorch, the architecture of C++'s
i3d_resnet18/34/50/101 (so `cakes info` counts the same MACs) with
torchvision's module names: conv1 (1x7x7, stride (1,2,2)), bn1, maxpool,
layerS.B.{conv1, bn1, conv2, bn2, [conv3, bn3], downsample.0/1}, dropout, fc.
Input (N, 3, T, H, W); the logits are averaged over the T frames (TSN).

The operation at each 3x3 position (conv2 of a bottleneck; conv1 and conv2 of
a basic block) is op="conv3d" (3x3x3), "conv2d" (1x3x3), "p3d" (1x3x3 C_in->C_in
then 3x1x1 C_in->C_out, one norm after both) or "cakes" with one configuration
per position (a NetworkConfig, a list, or none for an even split over
3x3x3, 1x3x3, 3x1x1).
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn

from .config import Config, ConfigError, NetworkConfig, parse_candidates
from .nn import CakesConv3d

__all__ = ["I3DResNet", "i3d_resnet", "positions"]

_ARCH = {18: (False, [2, 2, 2, 2]), 34: (False, [3, 4, 6, 3]), 50: (True, [3, 4, 6, 3]),
         101: (True, [3, 4, 23, 3])}


def _arch(depth: int):
    if depth not in _ARCH:
        raise ValueError(f"i3d_resnet: unsupported depth {depth} (expected 18, 34, 50 or 101)")
    return _ARCH[depth]


def positions(depth: int, width: int = 64) -> List[tuple]:
    """(name, in_channels, out_channels, stride) of every operation position,
    in configuration order (docs/CONFIGS.md)."""
    bottleneck, blocks = _arch(depth)
    out, inp = [], width
    for s, n in enumerate(blocks):
        for b in range(n):
            stride = 2 if s > 0 and b == 0 else 1
            w = width * (1 << s)
            name = f"layer{s + 1}.{b}"
            if bottleneck:
                out.append((name + ".conv2", w, w, stride))
            else:
                out.append((name + ".conv1", inp, w, stride))
                out.append((name + ".conv2", w, w, 1))
            inp = w * (4 if bottleneck else 1)
    return out


def _op(op: str, config: Optional[Config], cin: int, cout: int, stride: int) -> nn.Module:
    st = (1, stride, stride)
    if op == "conv3d":
        return nn.Conv3d(cin, cout, 3, st, 1, bias=False)
    if op == "conv2d":
        return nn.Conv3d(cin, cout, (1, 3, 3), st, (0, 1, 1), bias=False)
    if op == "p3d":
        return nn.Sequential(nn.Conv3d(cin, cin, (1, 3, 3), st, (0, 1, 1), bias=False),
                             nn.Conv3d(cin, cout, (3, 1, 1), 1, (1, 0, 0), bias=False))
    if op == "cakes":
        return CakesConv3d(cin, config, st)
    raise ConfigError(f"unknown operation '{op}' (expected conv3d, conv2d, p3d or cakes)")


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride, op, config):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = _op(op, config, width, width, stride)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != width * 4:
            self.downsample = nn.Sequential(nn.Conv3d(cin, width * 4, 1, (1, stride, stride), bias=False),
                                            nn.BatchNorm3d(width * 4))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(y + identity)


class BasicBlock(nn.Module):
    def __init__(self, cin, width, stride, op, configs):
        super().__init__()
        self.conv1 = _op(op, configs[0], cin, width, stride)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = _op(op, configs[1], width, width, 1)
        self.bn2 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != width:
            self.downsample = nn.Sequential(nn.Conv3d(cin, width, 1, (1, stride, stride), bias=False),
                                            nn.BatchNorm3d(width))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(y + identity)


class I3DResNet(nn.Module):
    def __init__(self, depth: int = 50, num_classes: int = 174, op: str = "conv3d",
                 config: Union[None, NetworkConfig, Sequence] = None, width: int = 64, dropout: float = 0.3):
        super().__init__()
        bottleneck, blocks = _arch(depth)
        pos = positions(depth, width)
        if op == "cakes":
            if config is None:
                cands = parse_candidates("video_123d")
                configs = [Config.even_split(cands, p[2]) for p in pos]
            else:
                configs = list(config.blocks if isinstance(config, NetworkConfig) else config)
                configs = [Config.parse(c) for c in configs]
                if len(configs) != len(pos):
                    raise ConfigError(f"{len(configs)} block configurations given but the network has "
                                      f"{len(pos)} CAKES positions")
                for i, (c, p) in enumerate(zip(configs, pos)):
                    if c.out_channels != p[2]:
                        raise ConfigError(f"block {i + 1} ({p[0]}): configuration '{c}' has {c.out_channels} "
                                          f"channels, the block width is {p[2]}")
        else:
            configs = [None] * len(pos)
        self.depth, self.width, self.op = depth, width, op
        self.conv1 = nn.Conv3d(3, width, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        cin, k = width, 0
        for s, n in enumerate(blocks):
            layer = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                w = width * (1 << s)
                if bottleneck:
                    layer.append(Bottleneck(cin, w, stride, op, configs[k]))
                    k += 1
                    cin = w * 4
                else:
                    layer.append(BasicBlock(cin, w, stride, op, configs[k:k + 2]))
                    k += 2
                    cin = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*layer))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        y = self.layer4(self.layer3(self.layer2(self.layer1(y))))
        # Spatial mean per frame, classify each frame, average over frames.
        y = y.mean((3, 4)).transpose(1, 2)
        return self.fc(self.dropout(y)).mean(1)


def i3d_resnet(depth: int = 50, num_classes: int = 174, op: str = "conv3d", config=None, width: int = 64,
               dropout: float = 0.3) -> I3DResNet:
    return I3DResNet(depth, num_classes, op, config, width, dropout)
