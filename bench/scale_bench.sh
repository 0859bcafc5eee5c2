#!/usr/bin/env bash
# Scaling (issue 15): time and peak memory of import and Q1-Q5 on datasets S, M and L, for
# Northstar, DuckDB and chDB, as a Markdown table and a log-log plot (PNG, made with gnuplot).
# usage: nice -n 10 bench/scale_bench.sh [TAG...]     (default: S M L; `tiny` to try the script)
#   tiny = 20,000 users (1.1 M events), S = 200,000 (10.8 M), M = 1,000,000 (54 M), L = 2,000,000 (108 M)
# Every step runs in its own process (/usr/bin/time -v: wall time and peak RSS of that step alone):
#   load  - Northstar: the whole `northstar import` process; peers: a Node process loading the CSV
#   open  - open the store and run nothing (the process's baseline memory: runtime, metadata)
#   q1-q5 - open, 1 untimed warm-up, RUNS timed runs (median reported) of one query
# Resumable: a step whose result (SCALE_DIR/kit/results/TAG/ENGINE/step-STEP.json) exists is
# skipped, so an interrupted run continues where it stopped; delete a result (or the whole
# SCALE_DIR) to measure it again. Each result records the run id of the invocation that made it,
# and the report only relates (fits exponents across) figures of one run.
# Data: CSVs in /tmp/peerdata (generated on demand, as bench/run_bench.sh does), engines' stores
# in SCALE_DIR/data/TAG. L needs ~5.3 GB of CSV plus ~1.5 GB of stores: it is skipped unless
# /tmp keeps >= MIN_FREE_GB (25) free after it, and its CSV and stores are deleted once its steps
# are done (KEEP_L=1 keeps them).
# Environment: BUILD (./build), SCALE_DIR (/tmp/ns-scale), RUNS (3), ENGINES ("northstar duckdb
# chdb"), STEP_TIMEOUT (3600 s), MIN_FREE_GB (25), KEEP_L (0), DOCS=1 also copies the plot to
# docs/images/scaling.png, REPORT_ONLY=1 measures nothing (the report of the results there are).
# Output: bench/out/scale-YYYY-MM-DD.md (Markdown for docs/benchmarks.md) and .png next to it.
set -euo pipefail
# The whole script is one function, read before it runs: editing the file during a long run is safe.
main() {
  # The command as given (its environment settings too), for the report.
  COMMAND="$(for v in BUILD RUNS ENGINES SCALE_DIR STEP_TIMEOUT MIN_FREE_GB KEEP_L REPORT_ONLY; do [ -z "${!v+x}" ] || printf '%s=%q ' "$v" "${!v}"; done)bench/scale_bench.sh ${*:-}"

  TAGS=${*:-S M L}
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  BUILD=${BUILD:-$ROOT/build}
  NS=$BUILD/northstar
  NSB=$BUILD/bench/ns_bench
  SRC=$ROOT/../shared/bench-peers
  SC=${SCALE_DIR:-/tmp/ns-scale}
  KIT=$SC/kit RES=$SC/kit/results
  W=/tmp/peerwork D=/tmp/peerdata
  RUNS=${RUNS:-3}
  ENGINES=${ENGINES:-northstar duckdb chdb}
  STEP_TIMEOUT=${STEP_TIMEOUT:-3600}
  MIN_FREE_GB=${MIN_FREE_GB:-25}
  DAYS=90 SEED=42
  START=1704067200  # gen_events' default --start (2024-01-01T00:00:00Z), checked as in run_bench.sh
  STEPS="load open q1 q2 q3 q4 q5"
  RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
  OUT=$ROOT/bench/out
  STAMP=$OUT/scale-$(date +%F)
  TMP=$(mktemp -d /tmp/scale_bench.XXXXXX)
  trap 'rm -rf "$TMP"' EXIT

  users_of() {
    case "$1" in
      tiny) echo 20000 ;; S) echo 200000 ;; M) echo 1000000 ;; L) echo 2000000 ;;
      *) echo "unknown dataset $1 (tiny, S, M or L)" >&2; return 1 ;;
    esac
  }
  for t in $TAGS; do users_of "$t" >/dev/null; done
  case " $ENGINES " in *" northstar "*) for f in "$NS" "$NSB"; do [ -x "$f" ] || { echo "missing $f: build northstar and ns_bench first" >&2; exit 1; }; done ;; esac
  [ -f "$SRC/README.md" ] || { echo "missing peer kit $SRC" >&2; exit 1; }
  free_gb() { df -P -BG /tmp | awk 'NR == 2 { sub("G", "", $4); print $4 }'; }
  loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
  commit() { git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'; }

  # ---------------------------------------------------------------- kit, engines, generator, plotter
  mkdir -p "$KIT" "$RES" "$W" "$D" "$OUT"
  chmod -R u+w "$KIT"
  cp -r "$SRC/." "$KIT/"
  chmod -R u+w "$KIT"  # the shared kit is read-only; the copy is rewritten on every run
  grep -q "int64_t start = $START;" "$KIT/gen_events.cpp" ||
    { echo "gen_events.cpp's default --start is no longer $START: update START" >&2; exit 1; }
  if [ "$ENGINES" != northstar ] &&
    { [ ! -d "$W/node_modules/@duckdb/node-api" ] || [ ! -d "$W/node_modules/chdb" ]; }; then
    (cd "$W" && npm init -y >/dev/null && npm install @duckdb/node-api@1.5.6-r.1 chdb@3.4.0)
  fi
  export NODE_PATH=$W/node_modules
  if [ ! -x "$W/gen_events" ] || [ "$SRC/gen_events.cpp" -nt "$W/gen_events" ]; then
    g++ -O2 -std=c++17 -o "$W/gen_events" "$KIT/gen_events.cpp"
  fi
  # The plot: gnuplot-nox (Debian, 2.3 MB; docs/decisions.md), installed here if missing.
  if ! command -v gnuplot >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnuplot-nox >/dev/null ||
        echo "(apt-get install gnuplot-nox failed: no plot)" >&2
    elif command -v sudo >/dev/null; then
      sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnuplot-nox >/dev/null ||
        echo "(sudo apt-get install gnuplot-nox failed: no plot)" >&2
    fi
  fi

  # ---------------------------------------------------------------- one step
  # step TAG ENGINE STEP CMD...: unless its result exists, run CMD under /usr/bin/time -v; CMD writes
  # $dir/step-STEP.json (or the caller does, for Northstar, after CMD); the wall time, peak RSS, run
  # id, commit and load average are added to it. A failed step leaves no result (retried next run).
  step() {
    local tag=$1 engine=$2 name=$3 rc=0
    shift 3
    local dir=$RES/$tag/$engine
    local result=$dir/step-$name.json
    mkdir -p "$dir"
    if [ -s "$result" ]; then
      echo "  $tag $engine $name: done before (run $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$result")), skipped"
      return 0
    fi
    local before
    before=$(loadavg)
    echo "  $tag $engine $name ... (load $before)"
    /usr/bin/time -v -o "$TMP/time" timeout "$STEP_TIMEOUT" "$@" >"$TMP/step.log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "  $tag $engine $name FAILED (exit $rc):" >&2
      tail -5 "$TMP/step.log" >&2
      rm -f "$result"
      return 0
    fi
    if [ "$engine" = northstar ]; then northstar_result "$tag" "$name" >"$result.part"; else mv "$result" "$result.part"; fi
    python3 "$ROOT/bench/scale_report.py" record "$result.part" --time "$TMP/time" --run-id "$RUN_ID" \
      --commit "$(commit)" --tag "$tag" --events "$EVENTS" --load-before "$before" --load-after "$(loadavg)" >"$result.tmp"
    rm -f "$result.part"
    mv "$result.tmp" "$result"
    python3 "$ROOT/bench/scale_report.py" show "$result"
  }

  # northstar_result TAG STEP: the step JSON of a Northstar step from what its process left.
  northstar_result() {
    local tag=$1 name=$2 dir=$RES/$1/northstar
    python3 - "$name" "$dir" "$TMP/step.log" "$NSDIR" "$("$NS" --version)" <<'PY'
import json, os, re, sys
name, d, log, nsdir, version = sys.argv[1:]
out = {'engine': 'northstar', 'step': name, 'version': version, 'threads': str(os.cpu_count())}
text = open(log).read()
if name == 'load':
    m = re.findall(r'imported ([0-9,]+) events', text)
    out['rows'] = m[-1].replace(',', '') if m else None
    seg = os.path.join(nsdir, 'projects', 'bench', 'segments')
    out['storage_bytes'] = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(seg) for f in fs)
elif name != 'open':
    out['times_ms'] = json.load(open(os.path.join(d, 'timings.json')))[name]
print(json.dumps(out))
PY
  }

  # ---------------------------------------------------------------- per dataset
  for TAG in $TAGS; do
    USERS=$(users_of "$TAG")
    CSV=$D/events_$TAG.csv
    DATA=$SC/data/$TAG
    NSDIR=$DATA/ns
    echo "== dataset $TAG ($USERS users)"
    [ "${REPORT_ONLY:-0}" = 1 ] && continue
    pending=0
    for e in $ENGINES; do for s in $STEPS; do [ -s "$RES/$TAG/$e/step-$s.json" ] || pending=1; done; done
    if [ "$pending" = 0 ]; then
      echo "  every step done before"
      python3 "$KIT/compare.py" "$TAG" >"$RES/$TAG/compare.txt" 2>&1 || echo "  ANSWERS DISAGREE: see $RES/$TAG/compare.txt" >&2
      continue
    fi
    if [ ! -s "$CSV" ]; then
      need=$((USERS * 27 / 10000000 + 1))  # ~2.7 GB of CSV per million users
      if [ $(($(free_gb) - need - need / 3)) -lt "$MIN_FREE_GB" ]; then
        echo "  SKIPPED: generating $TAG (~$need GB of CSV, stores ~1/3 of that) would leave /tmp under $MIN_FREE_GB GB free ($(free_gb) GB now)" >&2
        continue
      fi
      echo "  gen_events --users $USERS -> $CSV"
      "$W/gen_events" --users "$USERS" --days "$DAYS" --seed "$SEED" --out "$CSV.part"
      mv "$CSV.part" "$CSV"
    fi
    [ -s "$CSV.lines" ] && [ "$CSV.lines" -nt "$CSV" ] || echo $(($(wc -l <"$CSV") - 1)) >"$CSV.lines"
    EVENTS=$(cat "$CSV.lines")
    FROM=$(date -u -d "@$START" +%F)
    TO=$(date -u -d "@$((START + (DAYS - 1) * 86400))" +%F)
    mkdir -p "$DATA"
    for e in $ENGINES; do
      # One invocation at a time per dataset and engine (another may measure the other engines).
      mkdir -p "$RES/$TAG"
      exec {lock}>"$RES/$TAG/$e.lock"
      if ! flock -n "$lock"; then
        echo "  $TAG $e: another run is measuring it, skipped"
        exec {lock}>&-
        continue
      fi
      case "$e" in
        northstar)
          # A store deleted since its load was measured (L's, say) is loaded again, and measured anew.
          [ -d "$NSDIR/projects/bench" ] || rm -f "$RES/$TAG/northstar"/step-*.json
          if [ ! -s "$RES/$TAG/northstar/step-load.json" ]; then
            rm -rf "$NSDIR" "$RES/$TAG/northstar"/step-q*.json "$RES/$TAG/northstar"/step-open.json
            "$NS" admin create-project bench --tz UTC --data "$NSDIR" --format json >"$DATA/ns.keys.json"
          fi
          step "$TAG" northstar load "$NS" import "$CSV" -p bench --data "$NSDIR" --no-progress
          [ -s "$RES/$TAG/northstar/step-load.json" ] || continue
          step "$TAG" northstar open "$NSB" --data "$NSDIR" --project bench --out "$RES/$TAG/northstar" --only none
          for q in q1 q2 q3 q4 q5; do
            step "$TAG" northstar "$q" "$NSB" --data "$NSDIR" --project bench --out "$RES/$TAG/northstar" \
              --runs "$RUNS" --from "$FROM" --to "$TO" --only "$q"
          done
          ;;
        duckdb | chdb)
          [ "$e" = duckdb ] && db=$DATA/duck.duckdb || db=$DATA/chdb
          [ -e "$db" ] || rm -f "$RES/$TAG/$e"/step-*.json
          if [ ! -s "$RES/$TAG/$e/step-load.json" ]; then
            rm -rf "$db" "$db.wal" "$RES/$TAG/$e"/step-q*.json "$RES/$TAG/$e"/step-open.json
          fi
          step "$TAG" "$e" load node "$ROOT/bench/scale_node.js" "$e" load "$CSV" "$db" "$KIT/sql/$e" "$RES/$TAG/$e"
          [ -s "$RES/$TAG/$e/step-load.json" ] || continue
          for q in open q1 q2 q3 q4 q5; do
            step "$TAG" "$e" "$q" node "$ROOT/bench/scale_node.js" "$e" query "$db" "$KIT/sql/$e" "$q" "$RUNS" "$RES/$TAG/$e"
          done
          ;;
        *) echo "unknown engine $e" >&2; exit 2 ;;
      esac
      exec {lock}>&-
    done
    # The answers must agree before any figure counts (Q4: Northstar scores otherwise, see run_bench.sh).
    python3 "$KIT/compare.py" "$TAG" >"$RES/$TAG/compare.txt" 2>&1 && echo "  answers agree (compare.py)" ||
      echo "  ANSWERS DISAGREE: see $RES/$TAG/compare.txt" >&2
    if [ "$TAG" = L ] && [ "${KEEP_L:-0}" != 1 ]; then
      done_all=1
      # Only once every engine (not only this run's) is done: another run may still need the CSV.
      for e in northstar duckdb chdb; do for s in $STEPS; do [ -s "$RES/$TAG/$e/step-$s.json" ] || done_all=0; done; done
      if [ "$done_all" = 1 ]; then
        echo "  deleting L's CSV and stores (KEEP_L=1 keeps them)"
        rm -rf "$DATA" "$CSV" "$CSV.lines"
      else
        echo "  L's CSV and stores kept until every engine's steps are done: $CSV, $DATA"
      fi
    fi
  done

  # ---------------------------------------------------------------- report
  {
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r); load average at the end $(loadavg)."
    echo "Report made $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(commit); command: \`$COMMAND\` (this invocation's run id $RUN_ID)."
  } >"$TMP/machine.md"
  python3 "$ROOT/bench/scale_report.py" report --results "$RES" --tags "$TAGS" --engines "$ENGINES" \
    --machine "$TMP/machine.md" --png "$STAMP.png" | tee "$STAMP.md"
  if [ "${DOCS:-0}" = 1 ] && [ -s "$STAMP.png" ]; then cp "$STAMP.png" "$ROOT/docs/images/scaling.png"; fi
  echo "report: $STAMP.md, plot: $STAMP.png"
}
main "$@"; exit $?  # on the same line: bash reads no further, even if the file changed meanwhile
