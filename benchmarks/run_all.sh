#!/bin/bash
# Every layer and network benchmark quoted in docs/BENCHMARKS.md, in one run,
# with the load average before each (timings here swing with the load).
cd "$(dirname "$0")/.."
echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) commit $(git log --oneline -1)"
for split in 3x3x3:22,1x3x3:21,3x1x1:21 1x3x3:32,3x1x1:32; do
  echo "== C++ $split $(cut -d' ' -f1 /proc/loadavg)"
  build/cakes bench layer --in 64 --out 64 --input 1x8x56x56 --split $split --threads 2 --repeats 11 2>&1 | tail -8
done
echo "== strided $(cut -d' ' -f1 /proc/loadavg)"
build/cakes bench layer --in 128 --out 128 --input 1x8x56x56 --split 3x3x3:43,1x3x3:43,3x1x1:42 --stride 1x2x2 --threads 2 --repeats 11 2>&1 | tail -8
for split in 3x3x3:22,1x3x3:21,3x1x1:21 1x3x3:32,3x1x1:32; do
  echo "== python $split $(cut -d' ' -f1 /proc/loadavg)"
  /usr/bin/python3 benchmarks/bench_layer.py build/libcakes.so --split $split --threads 2 2>&1 | tail -5
done
for p in CAKES123D_P CAKES12D_P; do
  echo "== model $p $(cut -d' ' -f1 /proc/loadavg)"
  build/cakes bench model --net i3d_resnet50 --preset $p --frames 8 --size 224 --threads 2 --repeats 7 2>&1 | tail -5 | head -3
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
