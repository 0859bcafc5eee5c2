#!/usr/bin/env bash
# Northstar vs its peers (DuckDB, chDB) on the shared peer workload, plus HTTP ingest throughput.
# usage: bench/run_bench.sh [S|M|L|tiny]      (make bench = build, then this with S)
#   S = 200,000 users (10.8 M events), M = 1,000,000 users (54 M events), L = 2,000,000 users (108 M events,
#   ~5.3 GB of CSV in /tmp/peerdata, generated on demand and never committed), tiny = 20,000 users (to try it)
# Growth from S to M to L, per step and engine, with a log-log plot: bench/scale_bench.sh.
# Follows ../shared/bench-peers/README.md: the peer kit is copied to /tmp/bench-peers (its scripts write
# next to themselves), engines are npm packages in /tmp/peerwork, data is generated into /tmp/peerdata.
# PostgreSQL and SQLite are skipped (10-80x slower than DuckDB/chDB; too slow for this machine's budget).
# Writes bench/out/TAG-YYYY-MM-DD.md (machine, every step's output, ratio table, ingest) and prints the
# ratio table (bench/ratios.py) ready to paste into docs/benchmarks.md.
# Environment: BUILD (default ./build), RUNS (timed runs per query, 5), INGEST_CONNECTIONS (8),
# INGEST_SECONDS (10; 3 for tiny), INGEST=0 skips the ingest step, PEOPLE=0 skips the people-layer step.
set -euo pipefail

TAG=${1:-S}
case "$TAG" in
  S) USERS=200000 ;;
  M) USERS=1000000 ;;
  L) USERS=2000000 ;;
  tiny) USERS=20000 ;;
  *) echo "usage: $0 [S|M|L|tiny]" >&2; exit 2 ;;
esac
DAYS=90 SEED=42
START=1704067200  # gen_events' default --start: 2024-01-01T00:00:00Z (checked below against its source)
RUNS=${RUNS:-5}
QUERIES=q1,q2,q3,q4,q5
# PEOPLE=0 skips the Northstar-only people-layer timings (step 3b).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
NS=$BUILD/northstar
NSB=$BUILD/bench/ns_bench
SRC=$ROOT/../shared/bench-peers
P=/tmp/bench-peers W=/tmp/peerwork D=/tmp/peerdata
CSV=$D/events_$TAG.csv
R=$P/results/$TAG
NSDIR=/tmp/ns-bench-$TAG
OUT=$ROOT/bench/out
MD=$OUT/$TAG-$(date +%F).md
TMP=$(mktemp -d /tmp/run_bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

for f in "$NS" "$NSB"; do [ -x "$f" ] || { echo "missing $f: run 'make build' first" >&2; exit 1; }; done
[ -f "$SRC/README.md" ] || { echo "missing peer kit $SRC" >&2; exit 1; }
mkdir -p "$OUT"
: >"$MD"

say() { echo "$*"; echo "$*" >>"$MD"; }
# capture TITLE CMD...: run CMD, show its output and append it to the report as a fenced block.
capture() {
  local title=$1 rc=0
  shift
  echo; echo "== $title"
  printf '\n### %s\n\n```\n' "$title" >>"$MD"
  "$@" 2>&1 | tee -a "$MD" || rc=$?
  echo '```' >>"$MD"
  return $rc
}
# capture_md TITLE CMD...: the same for a command whose output is Markdown (not fenced).
capture_md() {
  local title=$1 rc=0
  shift
  echo; echo "== $title"
  printf '\n### %s\n\n' "$title" >>"$MD"
  "$@" 2>&1 | tee -a "$MD" || rc=$?
  return $rc
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
max_rss_kb() { awk -F': ' '/Maximum resident set size/ { print $2 }' "$1"; }
dir_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }'; }

# ---------------------------------------------------------------- machine
say "# Northstar benchmark: dataset $TAG ($(date -u '+%Y-%m-%d %H:%M UTC'))"
say ""
say "## Machine"
say ""
say "- CPUs (nproc): $(nproc); model: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
say "- Memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) total, $(awk '/^MemAvailable/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) available at start"
say "- Load average at start: $(cut -d' ' -f1-3 /proc/loadavg); kernel $(uname -r)"
say "- $("$NS" --version) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -n "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ] && echo ', src/ modified' || true)); node $(node --version); $(g++ --version | head -1)"
say "- Dataset $TAG: gen_events --users $USERS --days $DAYS --seed $SEED; timed runs per query: $RUNS (after 1 untimed warm-up)"

# ---------------------------------------------------------------- 1. peer kit, engines, data
echo; echo "== 1. peer kit -> $P, engines -> $W, data -> $CSV"
mkdir -p "$P" "$W" "$D"
rm -rf "$R"
cp -r "$SRC/." "$P/"
grep -q "int64_t start = $START;" "$P/gen_events.cpp" ||
  { echo "gen_events.cpp's default --start is no longer $START: update START (and ns_bench --from/--to)" >&2; exit 1; }
if [ ! -d "$W/node_modules/@duckdb/node-api" ] || [ ! -d "$W/node_modules/chdb" ]; then
  (cd "$W" && npm init -y >/dev/null && npm install @duckdb/node-api@1.5.6-r.1 chdb@3.4.0)
fi
if [ ! -x "$W/gen_events" ] || [ "$SRC/gen_events.cpp" -nt "$W/gen_events" ]; then
  g++ -O2 -std=c++17 -o "$W/gen_events" "$P/gen_events.cpp"
fi
if [ ! -s "$CSV" ]; then
  "$W/gen_events" --users "$USERS" --days "$DAYS" --seed "$SEED" --out "$CSV.part"
  mv "$CSV.part" "$CSV"
fi
EVENTS=$(($(wc -l <"$CSV") - 1))
say ""
say "Data: $CSV, $EVENTS events, $(stat -c %s "$CSV") bytes."
if [ "$TAG" = S ]; then
  sum=$(md5sum "$CSV" | cut -d' ' -f1)
  [ "$sum" = 2e17c1c2c5b8326d92ce6e328227c2d7 ] && say "md5 $sum matches the README." ||
    say "WARNING: md5 $sum differs from the README's 2e17c1c2c5b8326d92ce6e328227c2d7."
fi
FROM=$(date -u -d "@$START" +%F)
TO=$(date -u -d "@$((START + (DAYS - 1) * 86400))" +%F)

# ---------------------------------------------------------------- 2. peers
say ""
say "## Peers (in-process from Node, fresh databases: load is measured)"
say ""
say "PostgreSQL and SQLite are skipped: 10-80x slower than DuckDB and chDB on this workload, too slow for this machine's time budget."
echo "(skipping PostgreSQL and SQLite: too slow for this machine's time budget)"
export NODE_PATH=$W/node_modules
rm -rf "$D/duck_$TAG.duckdb" "$D/duck_$TAG.duckdb.wal" "$D/chdb_$TAG"
capture "DuckDB" /usr/bin/time -v -o "$TMP/duckdb.time" \
  timeout 1800 node "$P/bench_node.js" duckdb "$TAG" "$CSV" "$D/duck_$TAG.duckdb" "$RUNS" "$QUERIES"
capture "chDB" /usr/bin/time -v -o "$TMP/chdb.time" \
  timeout 1800 node "$P/bench_node.js" chdb "$TAG" "$CSV" "$D/chdb_$TAG" "$RUNS" "$QUERIES"
say ""
say "Peak RSS of the whole Node process (runtime included): DuckDB $(max_rss_kb "$TMP/duckdb.time") kB, chDB $(max_rss_kb "$TMP/chdb.time") kB."

# ---------------------------------------------------------------- 3. Northstar
say ""
say "## Northstar"
rm -rf "$NSDIR"
mkdir -p "$NSDIR"
# keys go to a file next to the data directory, not into the report
"$NS" admin create-project bench --tz UTC --data "$NSDIR" --format json >"$NSDIR.keys.json"
say ""
say "Project bench (tz UTC) created in $NSDIR (keys in $NSDIR.keys.json)."
t0=$(now)
capture "import" /usr/bin/time -v -o "$TMP/import.time" "$NS" import "$CSV" -p bench --data "$NSDIR" --no-progress
t1=$(now)
LOAD_S=$(secs "$t0" "$t1")
ROWS=$(sed -n 's/.*imported \([0-9,]*\) events.*/\1/p' "$MD" | tail -1 | tr -d ,)
[ -n "$ROWS" ] || { echo "could not read the imported event count" >&2; exit 1; }
STORAGE=$(dir_bytes "$NSDIR/projects/bench/segments")
IMPORT_RSS=$(max_rss_kb "$TMP/import.time")
mkdir -p "$R/northstar"
cat >"$R/northstar/load.json" <<EOF
{
 "version": "$("$NS" --version)",
 "threads": "$(nproc)",
 "load_s": $LOAD_S,
 "rows": "$ROWS",
 "storage_bytes": $STORAGE,
 "import_max_rss_kb": $IMPORT_RSS
}
EOF
capture "load.json" cat "$R/northstar/load.json"
say ""
say "Import: $LOAD_S s wall ($(awk -v r="$ROWS" -v s="$LOAD_S" 'BEGIN { printf "%.0f", r / s }') events/s), peak RSS $IMPORT_RSS kB; segments $STORAGE bytes ($(awk -v b="$STORAGE" -v r="$ROWS" 'BEGIN { printf "%.2f", b / r }') B/event); whole project directory $(dir_bytes "$NSDIR/projects/bench") bytes."
[ "$ROWS" = "$EVENTS" ] || say "WARNING: imported $ROWS events, the CSV holds $EVENTS."
capture "ns_bench (--from $FROM --to $TO)" /usr/bin/time -v -o "$TMP/ns_bench.time" \
  "$NSB" --data "$NSDIR" --project bench --out "$R/northstar" --runs "$RUNS" --from "$FROM" --to "$TO"
NSB_RSS=$(max_rss_kb "$TMP/ns_bench.time")
say ""
say "ns_bench peak RSS: $NSB_RSS kB."

# Q4 (RFM): Northstar scores by rank quintiles as of the last day, the peers by NTILE from the
# table's max ts, so the cells differ by design; payers and revenue must agree.
capture "Q4 payers and revenue (Northstar rfm_totals.csv vs the peers' q4.csv)" python3 - "$R" <<'PY'
import csv, os, sys
base = sys.argv[1]
def peer(e):
    p = os.path.join(base, e, 'q4.csv')
    if not os.path.exists(p): return None
    rows = list(csv.DictReader(open(p)))
    return (sum(int(r['users']) for r in rows), sum(int(r['monetary_cents']) for r in rows))
ns = list(csv.DictReader(open(os.path.join(base, 'northstar', 'rfm_totals.csv'))))[0]
ns = (int(ns['payers']), int(ns['monetary_cents']))
print(f'northstar: {ns[0]} payers, {ns[1]} cents')
for e in ('duckdb', 'chdb'):
    v = peer(e)
    if v: print(f'{e}: {v[0]} payers, {v[1]} cents: {"same" if v == ns else "DIFFERENT"}')
PY

# ---------------------------------------------------------------- 3b. people layer (Northstar only)
if [ "${PEOPLE:-1}" != 0 ]; then
  # The peers' CSV has no person properties: one $identify per user at its register time
  # sets person.platform and person.channel (its register row's), after the peer queries
  # above, so the cohort's property condition has something to read. Same day as the
  # register, so first/last seen and every timed query but the cohort are unaffected.
  awk -F, 'NR == 1 { print "user_id,ts,event,person.platform,person.channel"; next }
           $3 == "register" { print $1 "," $2 ",$identify," $5 "," $4 }' "$CSV" >"$TMP/persons.csv"
  capture "import person properties ($(($(wc -l <"$TMP/persons.csv") - 1)) \$identify rows)" \
    "$NS" import "$TMP/persons.csv" -p bench --data "$NSDIR" --no-progress
  capture "ns_bench --people (Northstar only: cohort, rfm, lifecycle, Q2 with a cohort filter)" \
    /usr/bin/time -v -o "$TMP/ns_people.time" \
    "$NSB" --data "$NSDIR" --project bench --out "$R/northstar" --runs "$RUNS" --from "$FROM" --to "$TO" \
    --only none --people
  say ""
  say "ns_bench --people peak RSS: $(max_rss_kb "$TMP/ns_people.time") kB."
fi

# ---------------------------------------------------------------- 4. cross-check, bandwidth
say ""
say "## Cross-check and physical bound"
CMP_RC=0
capture "compare.py $TAG" python3 "$P/compare.py" "$TAG" || CMP_RC=$?
if [ "$CMP_RC" -ne 0 ] || grep -q MISMATCH "$MD"; then
  say ""
  say "**ANSWERS DISAGREE** (compare.py exit $CMP_RC): the timings below are not comparable."
  CMP_RC=1
else
  say ""
  say "All engines' answers agree (q1, q2, q3, q5; q4 between the peers, Northstar's payers and revenue above)."
fi
g++ -O2 -o "$W/membw" "$P/membw.cpp"
capture "membw 1 5 (single core)" bash -c '"$0" 1 5 2>/dev/null' "$W/membw"

# ---------------------------------------------------------------- 5. ratios
echo; echo "== ratios (Markdown for docs/benchmarks.md)"
python3 "$ROOT/bench/ratios.py" "$TAG" --results "$P/results" --json "$TMP/ratios.json" >"$TMP/ratios.md"
cat "$TMP/ratios.md"
{ printf '\n## Ratios (peer / Northstar, > 1 = Northstar faster)\n\n'; cat "$TMP/ratios.md"; } >>"$MD"

# ---------------------------------------------------------------- 6. HTTP ingest
ING_RC=0
if [ "${INGEST:-1}" != 0 ]; then
  [ "$TAG" = tiny ] && dflt=3 || dflt=10
  say ""
  say "## HTTP ingest"
  [ -x "$BUILD/bench/ingest_load" ] || say "(C++ load generator $BUILD/bench/ingest_load not built: Python generator, client-bound)"
  capture_md "ingest_load.py" python3 "$ROOT/bench/ingest_load.py" --connections "${INGEST_CONNECTIONS:-8}" \
    --seconds "${INGEST_SECONDS:-$dflt}" --data "/tmp/ns-ingest-$TAG" --json "$R/northstar/ingest.json" || ING_RC=$?
fi

echo
echo "== summary ($MD)"
cat "$TMP/ratios.md"
[ "$CMP_RC" -eq 0 ] || echo "ERROR: the engines' answers disagree (see compare.py above)" >&2
[ "$ING_RC" -eq 0 ] || echo "ERROR: the ingest step failed (exit $ING_RC)" >&2
echo "report: $MD"
[ "$CMP_RC" -eq 0 ] && [ "$ING_RC" -eq 0 ]
