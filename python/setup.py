"""Builds the `cakes` package and its op library against the torch that is
installed, with torch.utils.cpp_extension (no network):

    pip install --no-build-isolation --no-deps ./python

The op library is compiled from ../src/ops (the same sources as the CMake
build's libcakes_ops.so) into cakes/_C*.so. Its fused CPU kernels need
oneDNN's headers and library (Debian: libdnnl-dev); where they are missing
(e.g. a CUDA machine with a pip-installed torch) or CAKES_CPU_KERNELS=0 is set,
the library is built without them and every device, CPU included, runs the
device-generic implementation (per-group convolutions).
"""
import glob
import os
import sys

from setuptools import setup

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def _extension():
    from torch.utils.cpp_extension import BuildExtension, CppExtension
    ops = os.path.join(root, "src", "ops")
    sources = sorted(glob.glob(os.path.join(ops, "**", "*.cpp"), recursive=True))
    if not sources:
        sys.exit(f"setup.py: no op sources under {ops} (build from a checkout of cakes)")
    want_cpu = os.environ.get("CAKES_CPU_KERNELS", "auto")
    have_dnnl = any(os.path.exists(os.path.join(d, "oneapi", "dnnl", "dnnl.h"))
                    for d in ["/usr/include", "/usr/local/include"] + os.environ.get("CPATH", "").split(":") if d)
    cpu = want_cpu == "1" or (want_cpu == "auto" and have_dnnl)
    libraries = []
    if cpu:
        libraries.append("dnnl")
    else:
        sources = [s for s in sources if os.sep + "cpu" + os.sep not in s]
        print("setup.py: building the op library without the fused CPU kernels "
              "(oneDNN headers not found or CAKES_CPU_KERNELS=0)")
    # Absolute paths: their objects then land inside build_temp (relative
    # "../src" paths would put them outside it).
    return [CppExtension(
        "cakes._C", sources, include_dirs=[os.path.join(root, "include")], libraries=libraries,
        extra_compile_args=["-O3", "-std=c++17"],
        # The registrations run at load time; keep every object.
        extra_link_args=["-Wl,--no-as-needed"])], {"build_ext": BuildExtension}


ext, cmdclass = _extension()
setup(
    name="cakes",
    version="0.1.0",
    description="CAKES channel-wise kernel shrinking for 3D CNNs: layers, conversion, search, derivation",
    packages=["cakes"],
    ext_modules=ext,
    cmdclass=cmdclass,
    python_requires=">=3.8",
)
