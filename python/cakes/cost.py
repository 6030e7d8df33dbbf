"""MACs of a network counted from its layers' shapes, as C++'s cost reports
count them (include/cakes/models/cost.h): convolutions (nn.Conv1d/2d/3d, the
CAKES layers: N * positions * C_in * sum_i c_i * vol_i) and linear layers;
norms, activations, pooling and additions are not counted.
"""
from collections import OrderedDict
from typing import Dict, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .nn import CakesConv3d, SuperConv3d

__all__ = ["macs", "layer_macs"]


def _positions(y: torch.Tensor) -> int:
    p = 1
    for s in y.shape[2:]:
        p *= int(s)
    return p


def _module_macs(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    n = int(x.shape[0])
    if isinstance(m, CakesConv3d):
        return n * _positions(y) * m.in_channels * m.config.taps_times_channels
    if isinstance(m, SuperConv3d):
        # A selection computes only the kept channels.
        if m.kept is None:
            per = m.width * sum(k.volume for k in m.candidates)
        else:
            per = sum(m.candidates[int(i) // m.width].volume for i in m.kept)
        return n * _positions(y) * m.in_channels * per
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        k = 1
        for s in m.kernel_size:
            k *= int(s)
        return n * _positions(y) * m.out_channels * (m.in_channels // m.groups) * k
    if isinstance(m, nn.Linear):
        return (x.numel() // m.in_features) * m.in_features * m.out_features
    return 0


_COUNTED = (CakesConv3d, SuperConv3d, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def layer_macs(model: nn.Module, input_size: Union[Sequence[int], torch.Tensor]) -> "OrderedDict[str, int]":
    """MACs per counted module (module path -> MACs) for one forward pass of an
    input of `input_size` (N, C, D, H, W), in call order. The pass runs on
    zeros of batch 1 in eval mode without gradients (MACs are linear in N)."""
    size = list(input_size.shape if torch.is_tensor(input_size) else input_size)
    if len(size) < 1 or any(int(s) < 0 for s in size):
        raise ValueError(f"macs: bad input size {size}")
    batch = int(size[0])
    names = {m: name for name, m in model.named_modules()}
    rows: "OrderedDict[str, int]" = OrderedDict()
    hooks = []

    def hook(m, inputs, output):
        name = names.get(m, type(m).__name__)
        rows[name] = rows.get(name, 0) + _module_macs(m, inputs[0], output) * batch

    for m in model.modules():
        if isinstance(m, _COUNTED):
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros([1] + [int(s) for s in size[1:]], device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def macs(model: nn.Module, input_size: Union[Sequence[int], torch.Tensor]) -> int:
    """Total MACs of `model` for an input of `input_size` (N, C, D, H, W):
    convolutions and linear layers, as `cakes info` counts them."""
    return sum(layer_macs(model, input_size).values())
