"""cakes: CAKES channel-wise kernel shrinking for 3D CNNs in PyTorch
(Yu et al., AAAI 2021; docs/PYTHON.md).

    import cakes
    layer = cakes.nn.CakesConv3d(64, "3x3x3:22,1x3x3:21,3x1x1:21")
    report = cakes.convert(model, candidates="video_123d", mode="super")
    config, derived = cakes.derive(model, target_macs=0.5, input_size=(1, 3, 8, 112, 112))

Importing the package loads the compiled op library (torch.ops.cakes.*).
"""
from . import _ops

_ops.load()

from . import config, nn, models, search  # noqa: E402
from .config import Config, ConfigError, NetworkConfig, SubKernel, parse_candidates  # noqa: E402
from .convert import ConversionReport, convert  # noqa: E402
from .cost import layer_macs, macs  # noqa: E402
from .search import Derivation, derive  # noqa: E402
from .weights import inflate, load_paper_checkpoint, read_state_dict  # noqa: E402
from ._ops import shrunk_conv3d  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "NetworkConfig", "SubKernel", "parse_candidates", "convert",
           "ConversionReport", "macs", "layer_macs", "derive", "Derivation", "inflate",
           "load_paper_checkpoint", "read_state_dict", "shrunk_conv3d", "nn", "search", "models", "config"]
