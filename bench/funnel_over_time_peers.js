// Conversion over time — Q2's five-step funnel (7-day window) per UTC entry day, what
// Northstar answers with {"kind":"funnel","viz":"trends"} — in chDB and DuckDB on the peer
// kit's dataset (../shared/bench-peers: run_all.sh leaves the engines in /tmp/peerwork and the
// loaded databases in /tmp/peerdata). Timed warm: the median of 3 runs after one untimed run.
// Prints the per-step totals over all days, to compare with Northstar's step_counts.
// usage: node bench/funnel_over_time_peers.js chdb|duckdb   (docs/benchmarks.md, issue 11)
module.paths.push('/tmp/peerwork/node_modules');
const steps = ['product_exposure', 'product_click', 'add_to_cart', 'order', 'pay'];
const inList = steps.map(s => `'${s}'`).join(',');
const chSql = `
WITH entries AS (SELECT DISTINCT user_id, intDiv(ts, 86400) AS d FROM events WHERE event = 'product_exposure')
SELECT d, countIf(level >= 1) AS c1, countIf(level >= 2) AS c2, countIf(level >= 3) AS c3, countIf(level >= 4) AS c4, countIf(level >= 5) AS c5
FROM (
  SELECT en.user_id AS u, en.d AS d, windowFunnel(604800)(toUInt64(e.ts),
      e.event = 'product_exposure' AND intDiv(e.ts, 86400) = en.d, e.event = 'product_click', e.event = 'add_to_cart',
      e.event = 'order', e.event = 'pay') AS level
  FROM entries AS en INNER JOIN (SELECT user_id, ts, event FROM events WHERE event IN (${inList})) AS e ON e.user_id = en.user_id
  WHERE e.ts >= en.d * 86400 AND e.ts <= (en.d + 1) * 86400 + 604800
  GROUP BY en.user_id, en.d)
GROUP BY d ORDER BY d`;
// DuckDB: the ASOF chain of q2.sql, with the entry day carried along (every step event is
// tried against every entry day of its user whose window it can be in).
const duckSql = `
WITH f AS (SELECT user_id, ts, event FROM events WHERE event IN (${inList})),
days AS (SELECT DISTINCT user_id, ts // 86400 AS d FROM f WHERE event = 'product_exposure'),
l1 AS (SELECT user_id, ts // 86400 AS d, ts, ts AS fk FROM f WHERE event = 'product_exposure'),
step AS (SELECT f.user_id, days.d, f.ts, f.event FROM f JOIN days ON f.user_id = days.user_id
         WHERE f.event <> 'product_exposure' AND f.ts > days.d * 86400 AND f.ts <= (days.d + 1) * 86400 + 604800),
l2 AS (SELECT c.user_id, c.d, c.ts, p.fk FROM (SELECT * FROM step WHERE event = 'product_click') c
       ASOF JOIN l1 p ON c.user_id = p.user_id AND c.d = p.d AND c.ts > p.ts WHERE c.ts - p.fk <= 604800),
l3 AS (SELECT c.user_id, c.d, c.ts, p.fk FROM (SELECT * FROM step WHERE event = 'add_to_cart') c
       ASOF JOIN l2 p ON c.user_id = p.user_id AND c.d = p.d AND c.ts > p.ts WHERE c.ts - p.fk <= 604800),
l4 AS (SELECT c.user_id, c.d, c.ts, p.fk FROM (SELECT * FROM step WHERE event = 'order') c
       ASOF JOIN l3 p ON c.user_id = p.user_id AND c.d = p.d AND c.ts > p.ts WHERE c.ts - p.fk <= 604800),
l5 AS (SELECT c.user_id, c.d, c.ts, p.fk FROM (SELECT * FROM step WHERE event = 'pay') c
       ASOF JOIN l4 p ON c.user_id = p.user_id AND c.d = p.d AND c.ts > p.ts WHERE c.ts - p.fk <= 604800)
SELECT d, (SELECT count(DISTINCT user_id) FROM l1 WHERE l1.d = x.d) AS c1,
       (SELECT count(DISTINCT user_id) FROM l2 WHERE l2.d = x.d) AS c2,
       (SELECT count(DISTINCT user_id) FROM l3 WHERE l3.d = x.d) AS c3,
       (SELECT count(DISTINCT user_id) FROM l4 WHERE l4.d = x.d) AS c4,
       (SELECT count(DISTINCT user_id) FROM l5 WHERE l5.d = x.d) AS c5
FROM (SELECT DISTINCT d FROM l1) x ORDER BY d`;
function median(a) { a = [...a].sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; }
async function main() {
  const which = process.argv[2];
  if (which === 'chdb') {
    const { Session } = require('chdb');
    const sess = new Session('/tmp/peerdata/chdb_S');
    const run = () => sess.query(chSql, 'CSV');
    let out = run(); const ts = [];
    for (let i = 0; i < 3; i++) { const t0 = process.hrtime.bigint(); out = run(); ts.push(Number(process.hrtime.bigint() - t0) / 1e6); }
    const rows = out.trim().split('\n').map(l => l.split(',').map(Number));
    console.log(JSON.stringify({engine: 'chdb', ms: median(ts), days: rows.length, totals: [1,2,3,4,5].map(k => rows.reduce((s, r) => s + r[k], 0)), first: rows[0]}));
  } else {
    const { DuckDBInstance } = require('@duckdb/node-api');
    const inst = await DuckDBInstance.create('/tmp/peerdata/duck_S.duckdb', {access_mode: 'READ_ONLY'});
    const con = await inst.connect();
    const run = async () => (await con.runAndReadAll(duckSql)).getRows();
    let rows = await run(); const ts = [];
    for (let i = 0; i < 3; i++) { const t0 = process.hrtime.bigint(); rows = await run(); ts.push(Number(process.hrtime.bigint() - t0) / 1e6); }
    rows = rows.map(r => r.map(Number));
    console.log(JSON.stringify({engine: 'duckdb', ms: median(ts), days: rows.length, totals: [1,2,3,4,5].map(k => rows.reduce((s, r) => s + r[k], 0)), first: rows[0]}));
  }
}
main().catch(e => { console.error(e); process.exit(1); });
