#!/bin/bash
# Every distinct convolution shape of I3D ResNet-50 at 8x224^2 (batch 1, 3D
# variant: the CAKES variants add the same shapes with split 3x3x3 positions),
# each pass through each engine, with `cakes bench kernels`. One thread: CPU
# time, comparable across engines on a loaded machine (docs/DESIGN.md).
#   benchmarks/kernel_shapes.sh [ENGINES] [REPEATS]   e.g. direct,panel 5
cd "$(dirname "$0")/.."
engines=${1:-direct,panel}
repeats=${2:-5}
run() { # in out input split stride
  echo "== $1 -> $4 at $3 stride $5"
  ${CAKES:-build/cakes} bench kernels --in "$1" --out "$2" --input "$3" --split "$4" \
    --stride "$5" --engines "$engines" --repeats "$repeats" | tail -n +4
}
run 3 64 1x8x224x224 1x7x7:64 1x2x2
run 64 64 1x8x56x56 1x1x1:64 1x1x1
run 64 64 1x8x56x56 3x3x3:64 1x1x1
run 64 256 1x8x56x56 1x1x1:256 1x1x1
run 256 64 1x8x56x56 1x1x1:64 1x1x1
run 256 128 1x8x56x56 1x1x1:128 1x1x1
run 128 128 1x8x56x56 3x3x3:128 1x2x2
run 256 512 1x8x56x56 1x1x1:512 1x2x2
run 128 128 1x8x28x28 3x3x3:128 1x1x1
run 128 512 1x8x28x28 1x1x1:512 1x1x1
run 512 128 1x8x28x28 1x1x1:128 1x1x1
run 512 256 1x8x28x28 1x1x1:256 1x1x1
run 256 256 1x8x28x28 3x3x3:256 1x2x2
run 512 1024 1x8x28x28 1x1x1:1024 1x2x2
run 256 256 1x8x14x14 3x3x3:256 1x1x1
run 256 1024 1x8x14x14 1x1x1:1024 1x1x1
run 1024 256 1x8x14x14 1x1x1:256 1x1x1
run 1024 512 1x8x14x14 1x1x1:512 1x1x1
run 512 512 1x8x14x14 3x3x3:512 1x2x2
run 1024 2048 1x8x14x14 1x1x1:2048 1x2x2
run 512 512 1x8x7x7 3x3x3:512 1x1x1
run 512 2048 1x8x7x7 1x1x1:2048 1x1x1
run 2048 512 1x8x7x7 1x1x1:512 1x1x1
