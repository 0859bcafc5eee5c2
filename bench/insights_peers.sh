#!/usr/bin/env bash
# Stickiness on dataset S in DuckDB and chDB, for the side-by-side figures of
# docs/benchmarks.md "Insights". Uses the peer kit (../shared/bench-peers) and the databases
# bench/run_bench.sh left in /tmp/peerdata (copied, so the originals stay untouched), adds
# the stickiness SQL to a copy of the kit, and runs its bench_node.js (1 warm-up + RUNS timed
# runs). Then compare with Northstar's answer and time from bench/insights_bench.py:
#   bench/insights_peers.sh && cat $WORK/kit/results/S/duckdb/stickiness.csv
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
WORK=${WORK:-/tmp/insights-peers}
D=/tmp/peerdata
[ -f "$D/duck_S.duckdb" ] && [ -d "$D/chdb_S" ] || { echo "run bench/run_bench.sh S first (needs $D)" >&2; exit 1; }
[ -d /tmp/peerwork/node_modules ] || { echo "missing /tmp/peerwork/node_modules (bench/run_bench.sh installs it)" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK"
cp -r "$ROOT/../shared/bench-peers/." "$WORK/kit/"
cp "$D/duck_S.duckdb" "$WORK/duck_S.duckdb"
cp -r "$D/chdb_S" "$WORK/chdb_S"
cat >"$WORK/kit/sql/duckdb/stickiness.sql" <<'SQL'
-- Stickiness of app_launch over the 90 days: users by the number of UTC days with an app_launch
SELECT days, count(*) AS persons
FROM (SELECT user_id, count(DISTINCT ts // 86400) AS days FROM events WHERE event = 'app_launch' GROUP BY user_id)
GROUP BY days ORDER BY days
SQL
cat >"$WORK/kit/sql/chdb/stickiness.sql" <<'SQL'
-- Stickiness of app_launch over the 90 days: users by the number of UTC days with an app_launch
SELECT days, count() AS persons
FROM (SELECT user_id, uniqExact(intDiv(ts, 86400)) AS days FROM events WHERE event = 'app_launch' GROUP BY user_id)
GROUP BY days ORDER BY days
SQL
export NODE_PATH=/tmp/peerwork/node_modules
node "$WORK/kit/bench_node.js" duckdb S "$D/events_S.csv" "$WORK/duck_S.duckdb" "$RUNS" stickiness
node "$WORK/kit/bench_node.js" chdb S "$D/events_S.csv" "$WORK/chdb_S" "$RUNS" stickiness
diff "$WORK/kit/results/S/duckdb/stickiness.csv" "$WORK/kit/results/S/chdb/stickiness.csv" && echo "DuckDB and chDB agree"
