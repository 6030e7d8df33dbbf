"""Configurations of CAKES layers (docs/CAKES.md §1-2), the same objects as C++'s
cakes::SubKernel / cakes::Config / cakes::models::NetworkConfig: the same
compact text and JSON forms, the same checks and the same one-line errors.

A configuration is an ordered list of (sub-kernel, channels) groups; the
layer's channels are the groups concatenated in that order. Optionally
`output_index` says where each of those channels goes after the norm
(channel i is added to output channel output_index[i]; docs/SEARCH.md).
"""
import json
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

__all__ = ["ConfigError", "SubKernel", "Config", "NetworkConfig", "parse_candidates",
           "NAMED_CANDIDATES"]


class ConfigError(ValueError):
    """A malformed or inconsistent configuration; the message is one line."""


class SubKernel(tuple):
    """A sub-kernel DxHxW over the (D, H, W) axes of an NCDHW tensor; each extent
    is 1 or an odd number."""

    def __new__(cls, d: int, h: int, w: int):
        for v in (d, h, w):
            if int(v) != v or v < 1 or v % 2 == 0:
                raise ConfigError(f"bad sub-kernel '{d}x{h}x{w}': extent {v} must be 1 or an odd number")
        return super().__new__(cls, (int(d), int(h), int(w)))

    def __getnewargs__(self):  # copy and pickle rebuild from (d, h, w)
        return tuple(self)

    @classmethod
    def parse(cls, text: str) -> "SubKernel":
        t = str(text).strip()
        parts = t.split("x")
        if len(parts) != 3:
            raise ConfigError(f"bad sub-kernel '{t}': expected DxHxW such as 1x3x3")
        values = []
        for p in parts:
            if not p or not p.isdigit():
                raise ConfigError(f"bad sub-kernel '{t}': expected DxHxW such as 1x3x3")
            v = int(p)
            if v < 1 or v % 2 == 0:
                raise ConfigError(f"bad sub-kernel '{t}': extent {p} must be 1 or an odd number")
            values.append(v)
        return cls(*values)

    @property
    def d(self) -> int:
        return self[0]

    @property
    def h(self) -> int:
        return self[1]

    @property
    def w(self) -> int:
        return self[2]

    @property
    def volume(self) -> int:
        return self[0] * self[1] * self[2]

    def __str__(self) -> str:
        return f"{self[0]}x{self[1]}x{self[2]}"

    def __repr__(self) -> str:
        return f"SubKernel('{self}')"


def _as_kernel(k) -> SubKernel:
    if isinstance(k, SubKernel):
        return k
    if isinstance(k, str):
        return SubKernel.parse(k)
    return SubKernel(*k)


class Config:
    """An ordered list of (sub-kernel, channels) groups and an optional
    output_index. Immutable; equal configurations compare and print equal (an
    identity output_index is stored as none)."""

    __slots__ = ("_groups", "_output_index")

    def __init__(self, groups: Iterable[Tuple[Union[str, SubKernel, Sequence[int]], int]],
                 output_index: Optional[Sequence[int]] = None):
        gs = []
        seen = set()
        for k, c in groups:
            k = _as_kernel(k)
            c = int(c)
            if c < 0:
                raise ConfigError(f"bad configuration: sub-kernel {k} has {c} channels")
            if k in seen:
                raise ConfigError(f"bad configuration: sub-kernel {k} is listed twice")
            seen.add(k)
            gs.append((k, c))
        self._groups = tuple(gs)
        oi = [int(o) for o in (output_index or [])]
        if oi:
            n = sum(c for _, c in gs)
            if len(oi) != n:
                raise ConfigError(f"bad configuration: output_index has {len(oi)} entries for {n} channels")
            for o in oi:
                if o < 0:
                    raise ConfigError(f"bad configuration: output_index entry {o} is negative")
            outputs = max(oi) + 1
            hit = set(oi)
            for o in range(outputs):
                if o not in hit:
                    raise ConfigError(f"bad configuration: output channel {o} receives no channel in output_index")
            if outputs == n and all(o == i for i, o in enumerate(oi)):
                oi = []
        self._output_index = tuple(oi)

    # -- construction ------------------------------------------------------
    @classmethod
    def parse(cls, text: Union[str, "Config", dict]) -> "Config":
        """The compact form "3x3x3:22,1x3x3:21,3x1x1:21" (with an optional
        ";output_index=2,0,1") or a JSON object {"3x3x3": 22, ...} (with an
        optional "output_index": [...]); a Config or a dict passes through."""
        if isinstance(text, Config):
            return text
        if isinstance(text, dict):
            return cls._from_object(text, json.dumps(text))
        t = str(text).strip()
        if not t:
            raise ConfigError("bad configuration: empty text")
        if t[0] == "{":
            try:
                obj = json.loads(t, object_pairs_hook=OrderedDict)
            except json.JSONDecodeError as e:
                raise ConfigError(f"bad configuration JSON '{t}': {e}") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"bad configuration JSON '{t}': expected an object")
            return cls._from_object(obj, t)
        groups_text, output_index = t, []
        if ";" in t:
            semi = t.index(";")
            rest = t[semi + 1:].strip()
            key = "output_index="
            if not rest.startswith(key):
                raise ConfigError(f"bad configuration '{t}': expected '{key}i,j,...' after ';'")
            for item in rest[len(key):].split(","):
                item = item.strip()
                if not item or not item.isdigit():
                    raise ConfigError(
                        f"bad configuration '{t}': output_index entry '{item}' is not a non-negative integer")
                output_index.append(int(item))
            groups_text = t[:semi]
        groups = []
        for item in groups_text.split(","):
            item = item.strip()
            if ":" not in item:
                raise ConfigError(f"bad configuration '{t}': item '{item}' is not of the form DxHxW:channels")
            k, count = item.split(":", 1)
            count = count.strip()
            if not count or not count.isdigit():
                raise ConfigError(
                    f"bad configuration '{t}': channel count '{count}' of '{item}' is not a non-negative integer")
            groups.append((SubKernel.parse(k), int(count)))
        if not groups:
            raise ConfigError(f"bad configuration '{t}': no groups")
        return cls(groups, output_index)

    @classmethod
    def _from_object(cls, obj: dict, text: str) -> "Config":
        groups, output_index = [], []
        for key, v in obj.items():
            if key == "output_index":
                if not isinstance(v, list) or not all(isinstance(o, int) and not isinstance(o, bool) for o in v):
                    raise ConfigError(
                        f"bad configuration JSON: output_index must be an array of integers, got {json.dumps(v)}")
                output_index = v
                continue
            if not isinstance(v, int) or isinstance(v, bool):
                raise ConfigError(f"bad configuration JSON: channels of '{key}' must be an integer, got {json.dumps(v)}")
            groups.append((SubKernel.parse(key), v))
        if not groups:
            raise ConfigError(f"bad configuration '{text}': no groups")
        return cls(groups, output_index)

    @classmethod
    def uniform(cls, kernel, channels: int) -> "Config":
        return cls([(kernel, channels)])

    @classmethod
    def even_split(cls, kernels: Sequence, channels: int) -> "Config":
        """`channels` split evenly over `kernels`, the remainder to the first
        groups (C++ even_split)."""
        kernels = [_as_kernel(k) for k in kernels]
        n = len(kernels)
        return cls([(k, channels // n + (1 if i < channels % n else 0)) for i, k in enumerate(kernels)])

    # -- access ------------------------------------------------------------
    @property
    def groups(self) -> Tuple[Tuple[SubKernel, int], ...]:
        return self._groups

    @property
    def kernels(self) -> List[SubKernel]:
        return [k for k, _ in self._groups]

    @property
    def output_index(self) -> Tuple[int, ...]:
        return self._output_index

    @property
    def conv_channels(self) -> int:
        """Channels the convolution computes (and the norm normalises)."""
        return sum(c for _, c in self._groups)

    @property
    def out_channels(self) -> int:
        """Channels the layer outputs (the number of output indices when
        output_index is given)."""
        return max(self._output_index) + 1 if self._output_index else self.conv_channels

    @property
    def taps_times_channels(self) -> int:
        """Multiply-adds per output position and input channel: sum c_i * vol_i."""
        return sum(c * k.volume for k, c in self._groups)

    def without_output_index(self) -> "Config":
        return Config(self._groups)

    # -- text --------------------------------------------------------------
    def __str__(self) -> str:
        s = ",".join(f"{k}:{c}" for k, c in self._groups)
        if self._output_index:
            s += ";output_index=" + ",".join(str(o) for o in self._output_index)
        return s

    def to_dict(self) -> "OrderedDict[str, object]":
        d = OrderedDict((str(k), c) for k, c in self._groups)
        if self._output_index:
            d["output_index"] = list(self._output_index)
        return d

    def json(self) -> str:
        """The JSON object, group order kept (C++ Config::json, byte for byte)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def __repr__(self) -> str:
        return f"Config('{self}')"

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self._groups == other._groups and \
            self._output_index == other._output_index

    def __hash__(self) -> int:
        return hash((self._groups, self._output_index))


NAMED_CANDIDATES: Dict[str, str] = {
    "video_12d": "1x3x3,3x1x1",
    "video_23d": "3x3x3,1x3x3",
    "video_123d": "3x3x3,1x3x3,3x1x1",
    "volumetric_2d": "1x3x3,3x1x3,3x3x1",
    "volumetric_1d": "3x1x1,1x3x1,1x1x3",
    "volumetric_all": "3x3x3,1x3x3,3x1x3,3x3x1,3x1x1,1x3x1,1x1x3",
}


def parse_candidates(text) -> List[SubKernel]:
    """"3x3x3,1x3x3,3x1x1", a named set (video_12d, video_23d, video_123d,
    volumetric_2d, volumetric_1d, volumetric_all) or a list of sub-kernels."""
    if not isinstance(text, str):
        out = [_as_kernel(k) for k in text]
        names = ",".join(str(k) for k in out)
        text = names
    else:
        out = None
    if out is None:
        listing = NAMED_CANDIDATES.get(text, text)
        out = []
        for item in listing.split(","):
            try:
                k = SubKernel.parse(item)
            except ConfigError:
                raise ConfigError(
                    f"unknown candidate '{item}' in '{text}' (expected sub-kernels DxHxW such as 3x3x3,1x3x3,3x1x1, "
                    "or a set: video_12d, video_23d, video_123d, volumetric_2d, volumetric_1d, volumetric_all)"
                ) from None
            if k in out:
                raise ConfigError(f"candidate '{item}' listed twice in '{text}'")
            out.append(k)
    else:
        if len(set(out)) != len(out):
            raise ConfigError(f"a candidate is listed twice in '{text}'")
    if not out:
        raise ConfigError(f"no candidate sub-kernels in '{text}'")
    return out


class NetworkConfig:
    """A network's configuration file (docs/CONFIGS.md):
    {"network": ..., "op": "cakes", "blocks": [...]}, one block per operation
    position in order. `positions` names the modules the blocks belong to when
    known (written as "positions"; C++ ignores the key)."""

    def __init__(self, blocks: Sequence[Config], positions: Optional[Sequence[str]] = None,
                 network: Optional[str] = None, op: str = "cakes", width: Optional[int] = None):
        self.blocks = [Config.parse(b) for b in blocks]
        self.positions = list(positions) if positions is not None else None
        if self.positions is not None and len(self.positions) != len(self.blocks):
            raise ConfigError(
                f"network configuration: {len(self.positions)} positions for {len(self.blocks)} blocks")
        self.network = network
        self.op = op
        self.width = width

    def as_map(self) -> "OrderedDict[str, Config]":
        if self.positions is None:
            raise ConfigError("network configuration: the file names no positions; give the module names")
        return OrderedDict(zip(self.positions, self.blocks))

    def json(self) -> str:
        """The file text, in the layout C++'s `cakes derive` writes."""
        head = []
        if self.network:
            head.append(f'  "network": {json.dumps(self.network)},\n')
        if self.width:
            head.append(f'  "width": {int(self.width)},\n')
        head.append(f'  "op": {json.dumps(self.op)},\n')
        if self.positions is not None:
            head.append(f'  "positions": {json.dumps(self.positions)},\n')
        body = ",\n".join("    " + b.json() for b in self.blocks)
        return "{\n" + "".join(head) + '  "blocks": [\n' + body + ("\n" if body else "") + "  ]\n}\n"

    def save(self, path) -> None:
        with open(path, "w") as f:
            f.write(self.json())

    @classmethod
    def parse(cls, text: str) -> "NetworkConfig":
        try:
            obj = json.loads(text, object_pairs_hook=OrderedDict)
        except json.JSONDecodeError as e:
            raise ConfigError(f"network configuration: {e}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("blocks"), list):
            raise ConfigError('network configuration: expected an object with a "blocks" array')
        for key in ("network", "op"):
            if key in obj and not isinstance(obj[key], str):
                raise ConfigError(f'network configuration: "{key}" must be a string')
        blocks = []
        for i, b in enumerate(obj["blocks"]):
            try:
                if not isinstance(b, dict):
                    raise ConfigError(f"expected an object, got {json.dumps(b)}")
                blocks.append(Config._from_object(b, json.dumps(b)))
            except ConfigError as e:
                raise ConfigError(f"block {i + 1}: {e}") from None
        return cls(blocks, obj.get("positions"), obj.get("network"), obj.get("op", "cakes"), obj.get("width"))

    @classmethod
    def load(cls, path) -> "NetworkConfig":
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from None
        try:
            return cls.parse(text)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def __eq__(self, other) -> bool:
        return isinstance(other, NetworkConfig) and self.blocks == other.blocks and self.op == other.op

    def __repr__(self) -> str:
        return f"NetworkConfig({len(self.blocks)} blocks, network={self.network!r}, op={self.op!r})"
