#!/usr/bin/env bash
# Query latency under concurrency (issue 15): CLIENTS (8) clients running a mix of Q1-Q5 and the
# console's dashboard queries for SECONDS (60) against dataset TAG (S), for Northstar over HTTP
# (a running `northstar serve`) and DuckDB and chDB in-process (bench/concurrency_bench.js).
# usage: nice -n 10 bench/concurrency_bench.sh [S|M|tiny]
# Mixes: `common` (Q1-Q5 and the dashboard's four trend tiles; every engine) and `full` (Q1-Q5 and
# all ten tiles; Northstar only). Stores: copies (never the originals) of, in this order of
# preference, bench/scale_bench.sh's stores (SCALE_DIR/data/TAG) or bench/run_bench.sh's
# (/tmp/ns-bench-TAG, /tmp/peerdata/duck_TAG.duckdb, /tmp/peerdata/chdb_TAG), under CONC_DIR.
# Resumable: a measurement whose result (CONC_DIR/results/TAG/ENGINE-MIX.json) exists is skipped;
# delete it to measure again. Prints Markdown for docs/benchmarks.md and writes it to
# bench/out/concurrency-TAG-YYYY-MM-DD.md.
# Environment: BUILD (./build), CLIENTS (8), SECONDS_PER_MIX (60), IDLE_RUNS (3), ENGINES
# ("northstar duckdb chdb"), CONC_DIR (/tmp/ns-conc), SCALE_DIR (/tmp/ns-scale).
set -euo pipefail
# The whole script is one function, read before it runs: editing the file during a long run is safe.
main() {
  # The command as given (its environment settings too), for the report.
  COMMAND="$(for v in BUILD CLIENTS SECONDS_PER_MIX IDLE_RUNS ENGINES CONC_DIR SCALE_DIR; do [ -z "${!v+x}" ] || printf '%s=%q ' "$v" "${!v}"; done)bench/concurrency_bench.sh ${*:-}"

  TAG=${1:-S}
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  BUILD=${BUILD:-$ROOT/build}
  NS=$BUILD/northstar
  SRC=$ROOT/../shared/bench-peers
  CD=${CONC_DIR:-/tmp/ns-conc}
  SC=${SCALE_DIR:-/tmp/ns-scale}
  W=/tmp/peerwork D=/tmp/peerdata
  CLIENTS=${CLIENTS:-8}
  SECS=${SECONDS_PER_MIX:-60}
  export IDLE_RUNS=${IDLE_RUNS:-3}
  ENGINES=${ENGINES:-northstar duckdb chdb}
  RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
  RES=$CD/results/$TAG
  OUT=$ROOT/bench/out
  MD=$OUT/concurrency-$TAG-$(date +%F).md
  mkdir -p "$RES" "$OUT" "$CD/data"
  [ -x "$NS" ] || { echo "missing $NS: build northstar first" >&2; exit 1; }
  export NODE_PATH=$W/node_modules
  [ "$ENGINES" = northstar ] || [ -d "$NODE_PATH/chdb" ] ||
    { echo "missing the peers' packages in $W: run bench/run_bench.sh or bench/scale_bench.sh first" >&2; exit 1; }
  LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

  # fresh_copy SRC DST: DST becomes a copy of SRC (the benchmark may write into its copy).
  fresh_copy() { rm -rf "$2"; cp -r "$1" "$2"; }
  # record ENGINE MIX RESULT: add the run id, commit and load average to a result.
  record() {
    python3 - "$1" "$RUN_ID" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" "$LOAD_BEFORE" \
      "$(cut -d' ' -f1-3 /proc/loadavg)" "${SERVER_RSS:-}" <<'PY'
import json, sys
p, run, commit, before, after, rss = sys.argv[1:]
r = json.load(open(p))
r.update({'run_id': run, 'commit': commit, 'loadavg_before': before, 'loadavg_after': after})
if rss:
    r['server_maxrss_kb'] = int(rss)
json.dump(r, open(p, 'w'), indent=1)
PY
  }

  for e in $ENGINES; do
    for mix in common full; do
      [ "$mix" = full ] && [ "$e" != northstar ] && continue
      result=$RES/$e-$mix.json
      if [ -s "$result" ]; then echo "== $e $mix: measured before, skipped"; continue; fi
      LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
      SERVER_RSS=
      echo "== $e $mix: $CLIENTS clients, ${SECS} s (load $LOAD_BEFORE)"
      case "$e" in
        northstar)
          if [ -d "$SC/data/$TAG/ns" ]; then src=$SC/data/$TAG/ns keys=$SC/data/$TAG/ns.keys.json
          else src=/tmp/ns-bench-$TAG keys=/tmp/ns-bench-$TAG.keys.json; fi
          [ -d "$src" ] || { echo "no Northstar store for $TAG: run bench/scale_bench.sh $TAG first" >&2; exit 1; }
          fresh_copy "$src" "$CD/data/ns-$TAG"
          key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_key"])' "$keys")
          "$NS" serve --data "$CD/data/ns-$TAG" --port 0 --no-scheduler --log-level warn >"$CD/serve.log" 2>&1 &
          pid=$!
          port=
          for _ in $(seq 1 600); do
            port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$CD/serve.log" | head -1)
            [ -n "$port" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
          done
          [ -n "$port" ] || { cat "$CD/serve.log" >&2; kill "$pid" 2>/dev/null || true; exit 1; }
          rc=0
          NS_VERSION=$("$NS" --version) NS_THREADS=$(nproc) node "$ROOT/bench/concurrency_bench.js" northstar \
            "http://127.0.0.1:$port|$key" - "$mix" "$CLIENTS" "$SECS" "$result.part" || rc=$?
          SERVER_RSS=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
          kill "$pid"
          wait "$pid" || true
          [ "$rc" = 0 ] || { echo "northstar $mix failed" >&2; rm -f "$result.part"; continue; }
          ;;
        duckdb | chdb)
          if [ "$e" = duckdb ]; then a=$SC/data/$TAG/duck.duckdb b=$D/duck_$TAG.duckdb; else a=$SC/data/$TAG/chdb b=$D/chdb_$TAG; fi
          [ -e "$a" ] && src=$a || src=$b
          [ -e "$src" ] || { echo "no $e database for $TAG: run bench/scale_bench.sh $TAG first" >&2; continue; }
          db=$CD/data/$e-$TAG
          fresh_copy "$src" "$db"
          rc=0
          UV_THREADPOOL_SIZE=$((CLIENTS > 4 ? CLIENTS : 4)) node "$ROOT/bench/concurrency_bench.js" "$e" "$db" \
            "$SRC/sql/$e" "$mix" "$CLIENTS" "$SECS" "$result.part" || rc=$?
          rm -rf "$db" "$db.wal"
          [ "$rc" = 0 ] || { echo "$e $mix failed" >&2; rm -f "$result.part"; continue; }
          ;;
      esac
      mv "$result.part" "$result"
      record "$result"
    done
  done
  rm -rf "$CD/data/ns-$TAG"

  # ---------------------------------------------------------------- report
  python3 - "$RES" "$TAG" "$CLIENTS" "$COMMAND" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" "$RUN_ID" <<'PY' | tee "$MD"
import glob, json, os, subprocess, sys
res, tag, clients, command, load0, load1, commit, run_id = sys.argv[1:]
rs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(res, '*.json')))]
order = {'northstar': 0, 'duckdb': 1, 'chdb': 2}
rs.sort(key=lambda r: (order.get(r['engine'], 9), r['mix']))
names = {'northstar': 'Northstar (HTTP)', 'duckdb': 'DuckDB (in-process)', 'chdb': 'chDB (in-process)'}
cpu = next((l.split(': ', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
mem = next((int(l.split()[1]) for l in open('/proc/meminfo') if l.startswith('MemTotal')), 0) / 1048576
print(f'### Queries under concurrency, dataset {tag}')
print()
print(f'Machine: {os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM; load average {load0} at the start, {load1} at the end. '
      f'Report made at commit {commit}; command: `{command}` (run id {run_id}).')
runs = sorted({r["run_id"] for r in rs})
loads = [float(x.split()[0]) for r in rs for x in (r['loadavg_before'], r['loadavg_after'])]
print(f'Engines: ' + ', '.join(sorted({f"{r['engine']} {r.get('version')} ({r.get('threads')} threads)" for r in rs})) +
      f'. Measurement run id(s): {", ".join(runs)}; 1-minute load average during them {min(loads):.2f} to {max(loads):.2f}.')
print()
print(f'{clients} clients, each running the mix back to back from its own starting point for the stated seconds; '
      'a query is one mix item (Northstar\'s Q5 is its three requests in sequence, as in ns_bench). '
      '`common` = Q1-Q5 + the dashboard\'s trend tiles over its last 30 days (DAU, events per day, revenue by channel, '
      'weekly payers); `full` = Q1-Q5 + all ten tiles of bench/dashboard_bench.py (funnels, retention, lifecycle and RFM '
      'too; Northstar only). Idle = one client alone, same run, median of the idle runs. Northstar answers over HTTP '
      'from `northstar serve` (client in another process); DuckDB (one connection per client) and chDB (one Session per '
      'client, `queryAsync`) run in the client\'s Node process.')
print()
print('| Engine | Mix | Queries | Seconds | Throughput | p50 | p99 | Errors | Peak RSS |')
print('|---|---|---:|---:|---:|---:|---:|---:|---:|')
for r in rs:
    rss = r.get('server_maxrss_kb') or r.get('maxrss_kb')
    print(f"| {names.get(r['engine'], r['engine'])} | {r['mix']} | {r['queries']} | {r['seconds']} | "
          f"{r['throughput_qps']:.2f} q/s | {r['p50_ms']:,.0f} ms | {r['p99_ms']:,.0f} ms | {r['errors']} | "
          f"{rss / 1024:,.0f} MiB{' (server)' if r.get('server_maxrss_kb') else ''} |")
qs = []
for r in rs:
    for q in r['per_query']:
        if q not in qs:
            qs.append(q)
cols = [r for r in rs]
print()
print('| Query | ' + ' | '.join(f"{names.get(r['engine'], r['engine']).split(' ')[0]} {r['mix']}: idle / p50 / p99 (n)" for r in cols) + ' |')
print('|---|' + '---:|' * len(cols))
for q in qs:
    cells = []
    for r in cols:
        v = r['per_query'].get(q)
        cells.append('-' if not v or not v['n'] else f"{v['idle_p50_ms']:,.0f} / {v['p50_ms']:,.0f} / {v['p99_ms']:,.0f} ms ({v['n']})")
    print(f'| {q} | ' + ' | '.join(cells) + ' |')
PY
  echo "report: $MD"
}
main "$@"; exit $?  # on the same line: bash reads no further, even if the file changed meanwhile
