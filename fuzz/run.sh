#!/bin/bash
# Runs each fuzz target on its corpus for SECONDS (growing the corpus) and
# prints one line per target; appends the same to BUILD/fuzz_runs.tsv.
# Usage: run.sh BUILD SECONDS TARGET...   (FUZZ_RUNS=N also stops a target
# after N executions, whichever comes first; FUZZ_ARGS adds libFuzzer flags,
# e.g. FUZZ_ARGS=-detect_leaks=0.)
# Exits non-zero when a target found a crash, a leak, a timeout (30 s per
# input) or a sanitizer report; the reproducer is in BUILD/artifacts/TARGET/.
set -uo pipefail
B=$1
S=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$B/logs"
# Targets that read files write their input to a scratch folder per input:
# in memory when there is /dev/shm.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
status=0
for t in "$@"; do
  mkdir -p "$B/artifacts/$t" "$B/corpus/$t"
  opts=()
  case $t in config | network_config | msd_json) opts=(-dict="$HERE/json.dict") ;; esac
  if [ -n "${FUZZ_RUNS:-}" ]; then opts+=(-runs="$FUZZ_RUNS"); fi
  # shellcheck disable=SC2206 # FUZZ_ARGS is a list of flags
  opts+=(${FUZZ_ARGS:-})
  log="$B/logs/$t.log"
  start=$(date +%s)
  "$B/fuzz_$t" "$B/corpus/$t" "${opts[@]}" -max_total_time="$S" -timeout=30 \
    -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$B/artifacts/$t/" >"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  files=$(ls "$B/corpus/$t" | wc -l)
  if [ "$rc" -eq 0 ]; then
    result="ok"
  elif [ "$rc" -eq 72 ]; then
    # libFuzzer's exit code when SIGINT/SIGTERM stopped it: not a finding
    # (a slow-unit-* artifact may still be written by then).
    result="interrupted"
    status=1
  else
    result="FAILED (exit $rc): $(ls -t "$B/artifacts/$t" | head -1); log $log"
    status=1
  fi
  printf 'fuzz_%s: %s runs in %s s, corpus %s files, %s\n' "$t" "${runs:-?}" "$secs" "$files" "$result"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "${runs:-?}" "$secs" "$files" "$result" >>"$B/fuzz_runs.tsv"
done
exit $status
