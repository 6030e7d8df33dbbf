"""Weights from elsewhere: a torchvision 2D ResNet inflated into a 3D network
(docs/CAKES.md §5), and the checkpoints written by the paper's code
(github.com/yucornetto/CAKES) read into cakes.models.I3DResNet.
"""
import collections
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from .config import Config, ConfigError, NetworkConfig, SubKernel
from .nn import AbsorbedNorm, CakesBlock, CakesConv3d, SuperConv3d

__all__ = ["inflate", "inflate_kernel", "load_paper_checkpoint", "read_state_dict"]


def inflate_kernel(w2d: torch.Tensor, kernel) -> torch.Tensor:
    """docs/CAKES.md §5 for one 2D kernel (c, C_in, 3, 3) onto a sub-kernel DxHxW (extents
    1 or 3), as C++'s inflate_kernel: 3D = the kernel repeated 3x along time,
    /3; 2D = the kernel itself with its (rows, cols) on the two 3-axes; 1D =
    the sum over the 9 taps repeated along the 3-axis, /3; 1x1x1 = that sum."""
    kd, kh, kw = kernel
    if w2d.dim() != 4 or tuple(w2d.shape[2:]) != (3, 3):
        raise ConfigError(f"inflate: expected a (c, C_in, 3, 3) kernel, got {list(w2d.shape)}")
    if any(e not in (1, 3) for e in kernel):
        raise ConfigError(f"inflate: sub-kernel extents must be 1 or 3, got {kd}x{kh}x{kw}")
    c, ci = w2d.shape[:2]
    n3 = sum(e == 3 for e in kernel)
    if n3 == 3:
        return w2d.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3.0
    if n3 == 2:
        return w2d.reshape(c, ci, kd, kh, kw).clone()
    s = w2d.sum((2, 3)).reshape(c, ci, 1, 1, 1)
    return s.clone() if n3 == 0 else s.expand(c, ci, kd, kh, kw) / 3.0


def _inflate_any(w2d: torch.Tensor, kernel) -> torch.Tensor:
    # 3x3 kernels per docs/CAKES.md §5; others (the 7x7 stem, 1x1) get a time axis of 1.
    if tuple(w2d.shape[2:]) == (3, 3):
        return inflate_kernel(w2d, kernel)
    if tuple(kernel) != (1,) + tuple(w2d.shape[2:]):
        raise ConfigError(f"inflate: a {w2d.shape[2]}x{w2d.shape[3]} kernel has no {'x'.join(map(str, kernel))} form")
    return w2d.unsqueeze(2).clone()


def read_state_dict(source) -> "OrderedDict[str, torch.Tensor]":
    """A state dict from a file or an object, in any form PyTorch writes:
    zip or legacy (pre-1.6) format, a dict or OrderedDict, alone or inside a
    training checkpoint {'epoch', 'arch', 'state_dict', 'best_prec1'}, keys with
    or without DataParallel's 'module.' prefix; storages of any device are
    mapped to CPU."""
    obj = source
    if not isinstance(source, dict):
        try:
            obj = torch.load(source, map_location="cpu")
        except FileNotFoundError:
            raise ConfigError(f"cannot read '{source}': no such file") from None
        except Exception as e:  # noqa: BLE001 - torch.load raises many types
            raise ConfigError(f"cannot read '{source}' as a PyTorch file: {str(e).splitlines()[0]}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConfigError(f"'{source}' holds a {type(obj).__name__}, not a state dict")
    out = OrderedDict()
    for k, v in obj.items():
        if not torch.is_tensor(v):
            raise ConfigError(f"'{source}': entry '{k}' is a {type(v).__name__}, not a tensor")
        out[k[len("module."):] if k.startswith("module.") else k] = v.detach().cpu()
    return out


class _Staged:
    """Every tensor is checked before anything is copied: on error the network
    is unchanged."""

    def __init__(self):
        self.items: List[Tuple[torch.Tensor, torch.Tensor, str]] = []

    def add(self, dst: torch.Tensor, value: torch.Tensor, key: str, what: str) -> None:
        if tuple(value.shape) != tuple(dst.shape):
            raise ConfigError(f"key '{key}' gives shape {list(value.shape)} but {what} expects {list(dst.shape)}")
        self.items.append((dst, value, key))

    def apply(self) -> None:
        with torch.no_grad():
            for dst, value, _ in self.items:
                dst.copy_(value.to(dst.dtype))


def _norm_targets(model: nn.Module, name: str):
    """The BatchNorm a 2D norm name fills: (module, repeat, channel order)."""
    m = model.get_submodule(name)
    if isinstance(m, AbsorbedNorm):
        layer = model.get_submodule(m.into)
        if isinstance(layer, SuperConv3d):
            return layer.bn, layer.num_candidates, None
        if isinstance(layer, CakesBlock):
            return layer.bn, 1, list(layer.config.output_index) or None
        raise ConfigError(f"inflate: '{name}' was moved into '{m.into}', which holds no norm")
    if isinstance(m, nn.BatchNorm3d):
        return m, 1, None
    raise ConfigError(f"inflate: '{name}' is a {type(m).__name__}, not a BatchNorm3d")


def inflate(model: nn.Module, state_dict, strict: bool = True) -> List[str]:
    """Fills a 3D network from a torchvision 2D ResNet state dict (a file or a
    dict) by name (conv1, bn1, layerS.B.convI / bnI, layerS.B.downsample.0/1;
    fc.* is skipped and the classifier kept), per docs/CAKES.md §5:

    - nn.Conv3d: 3x3 kernels inflated to its kernel (3x3x3: repeated along time
      /3; 1x3x3: as is; ...), 7x7 and 1x1 kernels given a time axis of 1; a
      reader widened by cakes.convert gets the 2D input weights repeated per
      candidate;
    - CakesConv3d: output channel j of group g takes the 2D kernel of the output
      channel it becomes (groups in configuration order, output_index
      followed), inflated to the group's sub-kernel;
    - SuperConv3d: every candidate the whole 2D kernel inflated to it, its norm
      the 2D norm repeated per candidate;
    - norms moved into a layer by cakes.convert are found through AbsorbedNorm.

    Checks every key and shape before copying (ConfigError naming the key and
    both shapes); with strict, a 2D key that fits no module is an error.
    Returns the keys used."""
    sd = read_state_dict(state_dict)
    staged = _Staged()
    used = []
    for key, v in sd.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        module, _, leaf = key.rpartition(".")
        try:
            m = model.get_submodule(module)
        except AttributeError:
            if strict:
                raise ConfigError(f"inflate: key '{key}' has no module '{module}' in the network") from None
            continue
        if isinstance(m, (nn.BatchNorm3d, AbsorbedNorm)):
            bn, repeat, order = _norm_targets(model, module)
            if order is not None:
                v = v.index_select(0, torch.tensor(order))
            staged.add(getattr(bn, leaf), v.repeat(repeat), key, f"{module}.{leaf}")
        elif isinstance(m, nn.Conv3d) and leaf == "weight":
            w = _inflate_any(v, tuple(m.kernel_size))
            if m.in_channels != v.shape[1] and v.shape[1] and m.in_channels % v.shape[1] == 0:
                w = w.repeat(1, m.in_channels // v.shape[1], 1, 1, 1)  # a widened reader
            staged.add(m.weight, w, key, f"{module}.weight")
        elif isinstance(m, (CakesConv3d, CakesBlock)) and leaf == "weight":
            conv = m.conv if isinstance(m, CakesBlock) else m
            order = list(m.config.output_index) or list(range(m.config.conv_channels))
            if v.shape[0] != len(order):
                raise ConfigError(f"key '{key}' has shape {list(v.shape)} but {module} has {len(order)} channels")
            start = 0
            for i, (k, c) in enumerate(conv.config.groups):
                rows = v.index_select(0, torch.tensor(order[start:start + c], dtype=torch.long))
                staged.add(conv.weights[i], _inflate_any(rows, tuple(k)), key, f"{module} group {k}")
                start += c
        elif isinstance(m, SuperConv3d) and leaf == "weight":
            for i, k in enumerate(m.candidates):
                w = _inflate_any(v, tuple(k))
                if m.in_channels != v.shape[1] and v.shape[1] and m.in_channels % v.shape[1] == 0:
                    w = w.repeat(1, m.in_channels // v.shape[1], 1, 1, 1)
                staged.add(m.weights[i], w, key, f"{module} candidate {k}")
        else:
            if strict:
                raise ConfigError(f"inflate: key '{key}' does not fit '{module}' ({type(m).__name__})")
            continue
        used.append(key)
    staged.apply()
    return used


# -- the paper's checkpoints -----------------------------------------------------

_BLOCK = re.compile(r"^base_model\.layer(\d)\.(\d+)\.")


def _kernel_of(w: torch.Tensor) -> SubKernel:
    return SubKernel(*w.shape[2:])


def load_paper_checkpoint(path, num_frames: Optional[int] = None):
    """Reads a checkpoint written by the paper's code (main.py's
    torch.save({'epoch', 'arch', 'state_dict', 'best_prec1'}) of a TemporalModel
    over an I3D ResNet-50/101, or its bare state dict; zip or legacy format,
    'module.' prefix or not, storages of any device) and returns
    (model, config): a cakes.models.I3DResNet in eval mode holding the
    weights, and its NetworkConfig.

    Operations (the convT module of each bottleneck): conv3d and conv2d
    (convT.op.0 conv, convT.op.1 norm), P3D (convT.op.0 1x3x3, convT.op.1 3x1x1,
    convT.op.2 norm), and the CAKES ones (convT.convs.<i>.0 one conv per
    non-empty group in the code's order, convT.out.0 or convT.norm the norm;
    the sub-kernels are read from the weights' shapes). A search super-network
    (every group at full width, the norm over all of them) gets its
    configuration derived as cakes.derive does (per layer the C_out channels
    of largest |gamma|) and the derived network inherits the kept channels;
    for a performance-priority super-network (the *_dropout codes, whose conv3
    reads C_out channels in the order of the kept ones) conv3 is taken as is.
    """
    from . import models
    from .search import derive
    sd = read_state_dict(path)
    if "new_fc.weight" not in sd:
        raise ConfigError(f"'{path}' is not a checkpoint of the paper's code (no 'new_fc.weight'; "
                          f"keys start {', '.join(list(sd)[:3])})")
    blocks: "OrderedDict[Tuple[int, int], None]" = OrderedDict()
    for k in sd:
        m = _BLOCK.match(k)
        if m:
            blocks[(int(m.group(1)), int(m.group(2)))] = None
    per_stage = [sum(1 for s, _ in blocks if s == i) for i in range(1, 5)]
    depth = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101}.get(tuple(per_stage))
    if depth is None or "base_model.layer1.0.conv3.weight" not in sd:
        raise ConfigError(f"'{path}': blocks per stage {per_stage} are not the paper's I3D ResNet-50 "
                          "(3, 4, 6, 3) or ResNet-101 (3, 4, 23, 3)")
    width = sd["base_model.conv1.weight"].shape[0]
    num_classes = sd["new_fc.weight"].shape[0]
    names = [f"layer{s}.{b}" for s, b in blocks]

    def key(name, rest):
        return f"base_model.{name}.{rest}"

    first = names[0]
    if key(first, "convT.op.0.weight") in sd:
        w = sd[key(first, "convT.op.0.weight")]
        if key(first, "convT.op.2.weight") in sd:
            op = "p3d"
        elif tuple(w.shape[2:]) == (3, 3, 3):
            op = "conv3d"
        elif tuple(w.shape[2:]) == (1, 3, 3):
            op = "conv2d"
        else:
            raise ConfigError(f"'{path}': convT.op.0 has kernel {list(w.shape[2:])}, not an operation the paper has")
        model = models.I3DResNet(depth, num_classes, op, width=width).eval()
        mapping = _plain_mapping(names, op)
        _load(model, sd, mapping, path)
        return model, NetworkConfig([], None, f"i3d_resnet{depth}", op, width)

    # CAKES: groups from the weights' shapes, the norm over all of them.
    groups, norm_of, search, p_mode = [], {}, False, False
    for name in names:
        ws = []
        i = 0
        while key(name, f"convT.convs.{i}.0.weight") in sd:
            ws.append(sd[key(name, f"convT.convs.{i}.0.weight")])
            i += 1
        if not ws:
            raise ConfigError(f"'{path}': block {name} has neither convT.op nor convT.convs weights")
        norm = "out.0" if key(name, "convT.out.0.weight") in sd else "norm"
        if key(name, f"convT.{norm}.weight") not in sd:
            raise ConfigError(f"'{path}': block {name} has no convT.out.0 or convT.norm norm")
        norm_of[name] = norm
        planes = sd[key(name, "conv1.weight")].shape[0]
        total = sum(w.shape[0] for w in ws)
        if total != planes:
            if not (total == planes * len(ws) and all(w.shape[0] == planes for w in ws)):
                raise ConfigError(f"'{path}': block {name} has groups of {[w.shape[0] for w in ws]} channels "
                                  f"for a width of {planes}")
            search = True
            p_mode = sd[key(name, "conv3.weight")].shape[1] == planes
        groups.append([(_kernel_of(w), w.shape[0]) for w in ws])
    if not search:
        config = NetworkConfig([Config(g) for g in groups], [n + ".conv2" for n in names],
                               f"i3d_resnet{depth}", "cakes", width)
        model = models.I3DResNet(depth, num_classes, "cakes", config, width=width).eval()
        _load(model, sd, _cakes_mapping(names, groups, norm_of), path)
        return model, config

    # A search super-network: its super-layers, then the derivation.
    from .convert import convert
    candidates = [k for k, _ in groups[0]]
    model = models.I3DResNet(depth, num_classes, "conv3d", width=width)
    convert(model, candidates, "super")
    if p_mode:  # our super-network's reader reads N * C_out; P's reads C_out
        for name in names:
            sd[key(name, "conv3.weight")] = sd[key(name, "conv3.weight")].repeat(1, len(candidates), 1, 1, 1)
    _load(model, sd, _super_mapping(names, candidates, norm_of), path)
    derived = derive(model)
    config, net = derived
    if p_mode:
        raw = read_state_dict(path)
        with torch.no_grad():
            for name in names:
                net.get_submodule(name + ".conv3").weight.copy_(raw[key(name, "conv3.weight")])
    config.network, config.width = f"i3d_resnet{depth}", width
    return net.eval(), config


def _common(names) -> Dict[str, str]:
    m = {"conv1.weight": "base_model.conv1.weight", "fc.weight": "new_fc.weight", "fc.bias": "new_fc.bias"}
    for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        m[f"bn1.{leaf}"] = f"base_model.bn1.{leaf}"
    for name in names:
        for ours, theirs in (("conv1", "conv1"), ("conv3", "conv3"), ("downsample.0", "downsample.0")):
            m[f"{name}.{ours}.weight"] = f"base_model.{name}.{theirs}.weight"
        for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            for ours, theirs in (("bn1", "bn1"), ("bn3", "bn3"), ("downsample.1", "downsample.1")):
                m[f"{name}.{ours}.{leaf}"] = f"base_model.{name}.{theirs}.{leaf}"
    return m


def _norm_leaves(m, ours, theirs):
    for leaf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        m[f"{ours}.{leaf}"] = f"{theirs}.{leaf}"


def _plain_mapping(names, op):
    m = _common(names)
    for name in names:
        b = f"base_model.{name}.convT"
        if op == "p3d":
            m[f"{name}.conv2.0.weight"] = f"{b}.op.0.weight"
            m[f"{name}.conv2.1.weight"] = f"{b}.op.1.weight"
            _norm_leaves(m, f"{name}.bn2", f"{b}.op.2")
        else:
            m[f"{name}.conv2.weight"] = f"{b}.op.0.weight"
            _norm_leaves(m, f"{name}.bn2", f"{b}.op.1")
    return m


def _cakes_mapping(names, groups, norm_of):
    m = _common(names)
    for name, g in zip(names, groups):
        b = f"base_model.{name}.convT"
        for i in range(len(g)):
            m[f"{name}.conv2.weights.{i}"] = f"{b}.convs.{i}.0.weight"
        _norm_leaves(m, f"{name}.bn2", f"{b}.{norm_of[name]}")
    return m


def _super_mapping(names, candidates, norm_of):
    m = _common(names)
    for name in names:
        b = f"base_model.{name}.convT"
        for i in range(len(candidates)):
            m[f"{name}.conv2.weights.{i}"] = f"{b}.convs.{i}.0.weight"
        _norm_leaves(m, f"{name}.conv2.bn", f"{b}.{norm_of[name]}")
    return m


def _load(model: nn.Module, sd, mapping: Dict[str, str], path) -> None:
    """Copies sd[mapping[ours]] into each of the model's tensors; every tensor
    of the model must be covered, every key of the file used (num_batches_tracked
    may be absent), all shapes equal; nothing is copied on error."""
    staged = _Staged()
    used = set()
    ours = OrderedDict(list(model.named_parameters()) + list(model.named_buffers()))
    for name, t in ours.items():
        theirs = mapping.get(name)
        if theirs is None:
            continue  # buffers of our own (OutputIndex), none in these networks
        if theirs not in sd:
            if name.endswith("num_batches_tracked"):
                continue
            raise ConfigError(f"'{path}': no key '{theirs}' for {name}")
        staged.add(t, sd[theirs], theirs, name)
        used.add(theirs)
    left = [k for k in sd if k not in used and not k.endswith("num_batches_tracked")]
    if left:
        raise ConfigError(f"'{path}': key '{left[0]}' maps to nothing in the network"
                          + (f" (and {len(left) - 1} more)" if len(left) > 1 else ""))
    staged.apply()
