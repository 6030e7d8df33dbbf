#!/bin/sh
# The installation docs/PYTHON.md documents, checked offline: a venv over
# Debian's python3-torch, `pip install --no-build-isolation --no-deps`, then
# the op from the installed package in a directory outside the checkout.
# Works on a copy of the sources so the checkout gets no build files.
set -eu
python=${1:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/include"
cp -r "$root/python" "$work/src/python"
cp -r "$root/src" "$work/src/src"
cp -r "$root/include/cakes" "$work/src/include/cakes"
rm -rf "$work/src/python/build" "$work/src/python/cakes/"_C*.so
# Objects of an earlier run come back from ccache when it is installed.
if [ -x /usr/lib/ccache/c++ ]; then export CXX=/usr/lib/ccache/c++; fi
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index --no-build-isolation --no-deps "$work/src/python"
cd "$work"
env -u CAKES_OPS_LIBRARY -u PYTHONPATH "$work/venv/bin/python" - <<'PY'
import torch, torch.nn.functional as F
import cakes
layer = cakes.nn.CakesConv3d(4, "3x3x3:3,1x3x3:2")
x = torch.randn(1, 4, 3, 6, 6)
ref = torch.cat([F.conv3d(x, layer.weights[0], padding=1), F.conv3d(x, layer.weights[1], padding=(0, 1, 1))], 1)
assert torch.allclose(layer(x), ref, atol=1e-5)
assert cakes._ops.load().startswith(cakes.__path__[0]), cakes._ops.load()
print("installed package works:", cakes._ops.load())
PY
