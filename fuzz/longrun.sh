#!/usr/bin/env bash
# Long fuzzing run of one target (docs/reliability.md): fuzz/longrun.sh NAME SECONDS [BUILD_DIR]
# Keeps a working corpus in BUILD_DIR/work/NAME (seeded from fuzz/corpus/NAME), writes
# crashes to BUILD_DIR/artifacts/ and the log to BUILD_DIR/logs/NAME-<time>.log.
set -euo pipefail
name=$1 secs=$2
src=$(cd "$(dirname "$0")/.." && pwd)
build=${3:-$src/build-fuzz}
cd "$build"
mkdir -p "work/$name" artifacts logs
dict=()
case $name in csv) ;; *) dict=(-dict="$src/fuzz/json.dict") ;; esac
maxlen=8192
case $name in gzip|sensors|posthog) maxlen=16384 ;; esac
log="logs/$name-$(date +%Y%m%d-%H%M%S).log"
nice -n 10 "./fuzz/${name}_fuzz" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=$maxlen -timeout=20 \
  "${dict[@]}" -print_final_stats=1 -artifact_prefix="artifacts/$name-" "work/$name" "$src/fuzz/corpus/$name" >"$log" 2>&1
