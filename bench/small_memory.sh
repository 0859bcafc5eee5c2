#!/usr/bin/env bash
# Q1-Q5 on a store whose decoded columns do not fit the memory the process may use (issue 15:
# "a memory budget ... respected on a dataset larger than memory"): each query runs in a
# memory cgroup of LIMIT_MIB (no swap), first with the default budget (a quarter of the
# cgroup's memory, which northstar reads from /proc/self/cgroup), then once with
# --memory-budget unlimited to show that the same query does not fit without one.
# Needs root and a writable cgroup memory controller (v2 or v1).
# usage: bench/small_memory.sh STORE_DIR [LIMIT_MIB=768] [FROM=2024-01-01] [TO=2024-03-30]
#   e.g. bench/small_memory.sh /tmp/ns-scale/data/L/ns   (dataset L of bench/scale_bench.sh)
set -euo pipefail
STORE=${1:?usage: small_memory.sh STORE_DIR [LIMIT_MIB] [FROM] [TO]}
LIMIT=${2:-768}
FROM=${3:-2024-01-01}
TO=${4:-2024-03-30}
BUILD=${BUILD:-build}
NSB=$BUILD/bench/ns_bench
[ -x "$NSB" ] || { echo "missing $NSB: build ns_bench first" >&2; exit 1; }
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # v2
  CG=/sys/fs/cgroup/ns-small-memory
  mkdir -p "$CG"
  echo $((LIMIT * 1024 * 1024)) >"$CG/memory.max"
  echo 0 >"$CG/memory.swap.max" 2>/dev/null || true
else  # v1
  CG=/sys/fs/cgroup/memory/ns-small-memory
  mkdir -p "$CG"
  echo $((LIMIT * 1024 * 1024)) >"$CG/memory.limit_in_bytes"
  echo 0 >"$CG/memory.swappiness"
fi
run() {  # run NAME ARGS...: ns_bench inside the cgroup; prints its line or how it ended
  local name=$1
  shift
  local out rc=0
  out=$(sh -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$CG" "$NSB" --data "$STORE" --project bench --runs 2 \
    --from "$FROM" --to "$TO" --out "/tmp/ns-small-memory-out" "$@" 2>&1) || rc=$?
  if [ $rc -eq 0 ]; then
    echo "$name: $(echo "$out" | grep 'northstar q' | tail -1)"
  else
    echo "$name: exit $rc$([ $rc -eq 137 ] && echo ' (killed: out of memory)')"
  fi
}
echo "Store $STORE, memory cgroup of $LIMIT MiB, no swap"
for q in q1 q2 q3 q4 q5; do run "$q, default budget" --only "$q"; done
run "q2, --memory-budget unlimited" --only q2 --memory-budget unlimited
