#!/usr/bin/env bash
# Whole-process `northstar import` of one file with two binaries, alternated (the machine is
# shared: alternating spreads the noise over both), each into a fresh project (tz UTC) under
# /tmp/bulk-cmp-*, deleted after each run. Prints wall seconds, CPU seconds (task-clock),
# instructions, peak RSS and the import's summary line per run.
# usage: bench/import_compare.sh OLD_BINARY NEW_BINARY FILE [ROUNDS] [-- extra import flags]
#   e.g. bench/import_compare.sh build-main/northstar build/northstar /tmp/peerdata/events_S.csv 3
# A binary may be given as "PATH --per-event" (quoted) to time the per-event path of a new build.
set -euo pipefail
OLD=$1 NEW=$2 FILE=$3 ROUNDS=${4:-3}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
EXTRA=("$@")
printf '%-5s %-4s %8s %8s %16s %10s  %s\n' round bin wall_s cpu_s instructions rss_mib summary
run() {
  local tag=$1 round=$2
  read -r -a bin <<<"$3"
  local dir
  dir=$(mktemp -d /tmp/bulk-cmp-XXXXXX)
  "${bin[0]}" admin create-project bench --tz UTC --data "$dir" --format json >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  perf stat -x, -e task-clock,instructions -o "$dir.stat" /usr/bin/time -f '%M' -o "$dir.rss" \
    "${bin[@]}" import "$FILE" -p bench --data "$dir" --no-progress "${EXTRA[@]}" >"$dir.out" 2>"$dir.err" || true
  t1=$(date +%s.%N)
  local cpu ins rss
  cpu=$(awk -F, '/task-clock/ { printf "%.2f", $1 / 1000 }' "$dir.stat")
  ins=$(awk -F, '/instructions/ { print $1 }' "$dir.stat")
  rss=$(awk '{ printf "%.0f", $1 / 1024 }' "$dir.rss")
  printf '%-5s %-4s %8.2f %8s %16s %10s  %s\n' "$round" "$tag" "$(echo "$t1 - $t0" | bc)" "$cpu" "$ins" "$rss" \
    "$(tail -1 "$dir.out")"
  rm -rf "$dir" "$dir.stat" "$dir.rss" "$dir.out" "$dir.err"
}
echo "# $(date -u '+%F %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, file $FILE"
for r in $(seq 1 "$ROUNDS"); do
  run old "$r" "$OLD"
  run new "$r" "$NEW"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
