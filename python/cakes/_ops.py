"""Loading the compiled op library and the op's Python-side registrations
(the ONNX symbolic).

The library is, in this order: the file named by the environment variable
CAKES_OPS_LIBRARY (the CMake build's tests set it), or the `_C` extension that
`pip install ./python` compiled into this package (setup.py).
"""
import glob
import os

import torch

ENV = "CAKES_OPS_LIBRARY"
_loaded = None


def library_path() -> str:
    path = os.environ.get(ENV)
    if path:
        if not os.path.isfile(path):
            raise ImportError(f"cakes: {ENV}={path} is not a file")
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "_C*.so")))
    if not found:
        raise ImportError(
            "cakes: the op library is not built. Install the package with "
            "`pip install --no-build-isolation --no-deps ./python` (docs/PYTHON.md), "
            f"or set {ENV} to a built libcakes_ops.so")
    return found[0]


def load() -> str:
    """Loads the op library once (registering torch.ops.cakes.*); returns its path."""
    global _loaded
    if _loaded is None:
        path = library_path()
        torch.ops.load_library(path)
        _loaded = path
        _register_onnx()
    return _loaded


def shrunk_conv3d(x, weights, stride=(1, 1, 1), dilation=(1, 1, 1)):
    """torch.ops.cakes.shrunk_conv3d (docs/CAKES.md §2): groups of "same"-padded
    convolutions concatenated along channels."""
    return torch.ops.cakes.shrunk_conv3d(x, list(weights), list(stride), list(dilation))


def shrunk_conv3d_generic(x, weights, stride=(1, 1, 1), dilation=(1, 1, 1)):
    """The device-generic implementation on any device (what CUDA runs): one
    convolution per group written into one output."""
    return torch.ops.cakes._shrunk_conv3d_generic(x, list(weights), list(stride), list(dilation))


ONNX_OPSET = 9


def _register_onnx():
    """ONNX export: the op as one Conv per non-empty group and a Concat, which
    any ONNX runtime runs. Weight shapes must be known at export (they are for
    module parameters)."""
    try:
        from torch.onnx import register_custom_op_symbolic, symbolic_helper
        parse_args = symbolic_helper.parse_args
    except (ImportError, AttributeError):  # a torch without the TorchScript-based exporter
        return

    @parse_args("v", "v", "is", "is")
    def symbolic(g, x, weights, stride, dilation):
        outs = []
        for w in symbolic_helper._unpack_list(weights):
            sizes = symbolic_helper._get_tensor_sizes(w)
            if sizes is None or len(sizes) != 5 or any(s is None for s in sizes[2:]) or sizes[0] is None:
                raise RuntimeError("cakes::shrunk_conv3d ONNX export needs weights of known shape")
            if sizes[0] == 0:
                continue
            kernel = list(sizes[2:])
            pads = [dilation[a] * (kernel[a] - 1) // 2 for a in range(3)]
            outs.append(g.op("Conv", x, w, kernel_shape_i=kernel, strides_i=stride,
                             dilations_i=dilation, pads_i=pads + pads, group_i=1))
        if len(outs) == 1:
            return outs[0]
        return g.op("Concat", *outs, axis_i=1)

    # Registered at the lowest opset it needs (Conv, Concat); later opsets
    # find it too.
    register_custom_op_symbolic("cakes::shrunk_conv3d", symbolic, ONNX_OPSET)
