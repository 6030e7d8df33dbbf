#!/bin/sh
# Steps per second of `cakes train` as 1 process x 1 thread, 1 process x 2
# threads and 2 processes x 1 thread (cakes launch), same global batch 16,
# interleaved round by round; prints each round and the medians
# (docs/DISTRIBUTED.md). Usage: benchmarks/dist_cli_scaling.sh CAKES SYNTH [ROUNDS]
# with SYNTH written by `cakes synth --out SYNTH --videos 128 --frames 16 --size 48`.
set -e
cakes=$1
data=$2
rounds=${3:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
train="train --net i3d_resnet18 --width 16 --op conv3d --frames-list $data/train.txt \
--categories $data/category.txt --frames 8 --size 32 --epochs 4 --batch 16 --workers 1 \
--seed 1 --force"
# Steps per second over epochs 2-4 of a run's log (the first warms up).
rate() {
  tail -3 "$1/log.jsonl" | python3 -c '
import json, sys
e = [json.loads(l) for l in sys.stdin]
print("%.2f" % (sum(j["steps"] for j in e) / sum(j["seconds"] for j in e)))'
}
echo "round 1p1t 1p2t 2p1t load(1min)"
for r in $(seq "$rounds"); do
  "$cakes" $train --threads 1 --out-dir "$out/a" > /dev/null
  "$cakes" $train --threads 2 --out-dir "$out/b" > /dev/null
  "$cakes" launch --nproc 2 -- $train --threads 1 --out-dir "$out/c" > /dev/null
  echo "$r $(rate "$out/a") $(rate "$out/b") $(rate "$out/c") $(cut -d' ' -f1 /proc/loadavg)"
done | tee "$out/rounds"
python3 -c '
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()]
print("median", *("%.2f" % statistics.median(float(r[i]) for r in rows) for i in (1, 2, 3)))
' "$out/rounds"
