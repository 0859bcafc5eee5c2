// Query latency under concurrency (issue 15): CLIENTS clients each run a mix of Q1-Q5 and the
// console's dashboard queries (bench/dashboard_bench.py's tiles) back to back for SECONDS, against
//   northstar  a running `northstar serve` over HTTP (POST /api/v1/query, keep-alive connections)
//   duckdb     DuckDB in this process, one connection per client (@duckdb/node-api runs each query
//              on a libuv worker thread: UV_THREADPOOL_SIZE must be >= CLIENTS)
//   chdb       chDB in this process, one Session per client on the same path, queryAsync (likewise)
// usage: node concurrency_bench.js ENGINE TARGET SQLDIR MIX CLIENTS SECONDS OUT.json
//   TARGET: http://127.0.0.1:PORT|SECRET_KEY for northstar, the database path for the peers;
//   SQLDIR: the peer kit's sql/ENGINE (Q1-Q5 as the peers run them); MIX: common | full
//   (common = Q1-Q5 + the dashboard's four trend tiles, which every engine runs; full = Q1-Q5 + all
//   ten dashboard tiles, Northstar only: funnels, retention, lifecycle and RFM tiles have no
//   one-to-one SQL in the peer kit).
// First an idle pass (one client, each query IDLE_RUNS times after a warm-up: the single-client
// latency of the same run), then the concurrent phase; every query started before the deadline
// is waited for and counted. Prints one JSON line and writes OUT.json.
'use strict';
const fs = require('fs'), path = require('path'), http = require('http');

const [engine, target, sqlDir, mix, clientsS, secondsS, outFile] = process.argv.slice(2);
const CLIENTS = parseInt(clientsS, 10), SECONDS = parseFloat(secondsS);
const IDLE_RUNS = parseInt(process.env.IDLE_RUNS || '3', 10);
const now = () => Number(process.hrtime.bigint()) / 1e6;

// The dataset's days (gen_events --days 90 from 2024-01-01 UTC) and the dashboard's range:
// its last 30 days, as the dashboard's "-29d .. today" on the day after the data ends.
const FROM = '2024-01-01', TO = '2024-03-30', D_FROM = '2024-03-01';
const D_FROM_TS = Date.parse(D_FROM + 'T00:00:00Z') / 1000, D_TO_TS = Date.parse(TO + 'T00:00:00Z') / 1000 + 86400;

// Northstar: the queries of bench/ns_bench.cc (Q1-Q5, each one request) and of
// bench/dashboard_bench.py (its ten tiles over the last 30 days of the data).
const steps5 = ['product_exposure', 'product_click', 'add_to_cart', 'order', 'pay'].map(e => ({ event: e }));
const all = { date_from: FROM, date_to: TO }, last30 = { date_from: D_FROM, date_to: TO };
const NS = {
  q1: [{ kind: 'trends', series: [{ event: '$any', math: 'dau' }], ...all }],
  q2: [{ kind: 'funnel', steps: steps5, window_seconds: 604800, ...all }],
  q3: [{ kind: 'retention', start_event: 'register', return_event: '$any', period: 'day', periods: 31, ...all }],
  q4: [{ kind: 'rfm', as_of: TO, limit: 0 }],
  // Q5 as one request, as ns_bench runs it: the channels kind (issue 13), register as the
  // acquisition, payments within 604800 s as conversions.
  q5: [{ kind: 'channels', acquisition_event: 'register', channel_properties: ['channel'], conversion_seconds: 604800,
         ...all }],
  d_dau: [{ kind: 'trends', series: [{ event: '$any', math: 'dau' }], ...last30 }],
  d_events: [{ kind: 'trends', series: [{ event: '$any', math: 'total' }], ...last30 }],
  d_revenue_channel: [{ kind: 'trends', series: [{ event: 'pay', math: 'sum', property: 'amount' }], breakdown: 'channel', ...last30 }],
  d_paying_weekly: [{ kind: 'trends', series: [{ event: 'pay', math: 'dau' }], interval: 'week', ...last30 }],
  d_funnel: [{ kind: 'funnel', window_seconds: 7 * 86400, steps: steps5, ...last30 }],
  d_register_pay_channel: [{ kind: 'funnel', steps: [{ event: 'register' }, { event: 'pay' }], breakdown: 'channel', ...last30 }],
  d_retention_weekly: [{ kind: 'retention', start_event: 'register', return_event: '$any', period: 'week', periods: 5, ...last30 }],
  d_retention_24h: [{ kind: 'retention', start_event: 'register', return_event: '$any', periods: 8, time_window: '24h',
                      reference: 'previous', ...last30 }],
  d_lifecycle: [{ kind: 'lifecycle', interval: 'week', ...last30 }],
  d_rfm: [{ kind: 'rfm', as_of: TO }],
};
// The peers: Q1-Q5 from the kit, the four trend tiles written here (UTC days; weeks from Monday,
// as day 0 = 1970-01-01 was a Thursday).
const range = `ts >= ${D_FROM_TS} AND ts < ${D_TO_TS}`;
const TILES_SQL = {
  duckdb: {
    d_dau: `SELECT ts // 86400 AS day, count(DISTINCT user_id) AS dau FROM events WHERE ${range} GROUP BY 1 ORDER BY 1`,
    d_events: `SELECT ts // 86400 AS day, count(*) AS events FROM events WHERE ${range} GROUP BY 1 ORDER BY 1`,
    d_revenue_channel: `SELECT ts // 86400 AS day, channel, sum(amount) AS revenue FROM events WHERE event = 'pay' AND ${range} GROUP BY 1, 2 ORDER BY 1, 2`,
    d_paying_weekly: `SELECT (ts // 86400 + 3) // 7 AS week, count(DISTINCT user_id) AS payers FROM events WHERE event = 'pay' AND ${range} GROUP BY 1 ORDER BY 1`,
  },
  chdb: {
    d_dau: `SELECT intDiv(ts, 86400) AS day, uniqExact(user_id) AS dau FROM events WHERE ${range} GROUP BY day ORDER BY day`,
    d_events: `SELECT intDiv(ts, 86400) AS day, count() AS events FROM events WHERE ${range} GROUP BY day ORDER BY day`,
    d_revenue_channel: `SELECT intDiv(ts, 86400) AS day, channel, sum(amount) AS revenue FROM events WHERE event = 'pay' AND ${range} GROUP BY day, channel ORDER BY day, channel`,
    d_paying_weekly: `SELECT intDiv(intDiv(ts, 86400) + 3, 7) AS week, uniqExact(user_id) AS payers FROM events WHERE event = 'pay' AND ${range} GROUP BY week ORDER BY week`,
  },
};
const COMMON = ['q1', 'q2', 'q3', 'q4', 'q5', 'd_dau', 'd_events', 'd_revenue_channel', 'd_paying_weekly'];
const FULL = [...COMMON, 'd_funnel', 'd_register_pay_channel', 'd_retention_weekly', 'd_retention_24h', 'd_lifecycle', 'd_rfm'];

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] : null;
}
const r1 = x => x === null ? null : Math.round(x * 10) / 10;

// Makes CLIENTS runners: runner(i)(name) -> Promise that resolves when query `name` is answered.
async function makeRunners() {
  if (engine === 'northstar') {
    const [base, key] = target.split('|');
    const u = new URL(base);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
    const post = (body) => new Promise((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = http.request({ host: u.hostname, port: u.port, path: '/api/v1/query', method: 'POST', agent,
        headers: { 'Authorization': `Bearer ${key}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } },
      (res) => {
        const chunks = [];
        res.on('data', c => chunks.push(c));
        res.on('end', () => res.statusCode === 200 ? resolve()
          : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 300)}`)));
      });
      req.on('error', reject);
      req.end(data);
    });
    return { info: { version: process.env.NS_VERSION || '?', threads: process.env.NS_THREADS || '?' }, runner: () => async (name) => { for (const q of NS[name]) await post(q); } };
  }
  const sql = (name) => TILES_SQL[engine][name] ||
    fs.readFileSync(path.join(sqlDir, name + '.sql'), 'utf8').trim().replace(/;$/, '');
  if (engine === 'duckdb') {
    const { DuckDBInstance } = require('@duckdb/node-api');
    const inst = await DuckDBInstance.create(target);
    const cons = [];
    for (let i = 0; i < CLIENTS; i++) cons.push(await inst.connect());
    const v = (await cons[0].runAndReadAll('select version()')).getRows()[0][0];
    const th = (await cons[0].runAndReadAll("select current_setting('threads')")).getRows()[0][0];
    return { info: { version: v, threads: String(th) }, runner: (i) => async (name) => { await cons[i].runAndReadAll(sql(name)); } };
  }
  if (engine === 'chdb') {
    const { Session } = require('chdb');
    const sess = [];
    for (let i = 0; i < CLIENTS; i++) sess.push(new Session(target));
    const one = (s) => sess[0].query(s, 'CSVWithNames').split('\n')[1].replaceAll('"', '');
    return { info: { version: one('SELECT version()'), threads: one("SELECT getSetting('max_threads')") },
             runner: (i) => async (name) => { await sess[i].queryAsync(sql(name), { format: 'CSVWithNames' }); } };
  }
  throw new Error(`engine must be northstar, duckdb or chdb, not ${engine}`);
}

async function main() {
  const names = mix === 'full' ? FULL : COMMON;
  if (engine !== 'northstar' && mix === 'full') throw new Error('the full mix is Northstar only');
  const { info, runner } = await makeRunners();
  const runners = Array.from({ length: CLIENTS }, (_, i) => runner(i));
  // Idle pass: one client, warm-up then IDLE_RUNS timed runs of each query.
  const idle = {};
  for (const n of names) {
    await runners[0](n);
    const ts = [];
    for (let k = 0; k < IDLE_RUNS; k++) { const t0 = now(); await runners[0](n); ts.push(now() - t0); }
    idle[n] = r1(pct(ts, 0.5));
  }
  // Concurrent phase: client i runs the mix from position i, round after round, until the deadline.
  const lat = Object.fromEntries(names.map(n => [n, []]));
  const all_ = [];
  let errors = 0;
  const t_start = now(), deadline = t_start + SECONDS * 1000;
  await Promise.all(runners.map(async (run, i) => {
    for (let k = i; now() < deadline; k++) {
      const n = names[k % names.length];
      const t0 = now();
      try { await run(n); } catch (e) { errors++; console.error(`${n}: ${e.message}`); continue; }
      const dt = now() - t0;
      lat[n].push(dt); all_.push(dt);
    }
  }));
  const elapsed = (now() - t_start) / 1000;
  const out = {
    engine, mix, clients: CLIENTS, seconds: r1(elapsed), ...info, uv_threadpool_size: process.env.UV_THREADPOOL_SIZE || '4',
    queries: all_.length, errors, throughput_qps: Math.round(all_.length / elapsed * 100) / 100,
    p50_ms: r1(pct(all_, 0.5)), p99_ms: r1(pct(all_, 0.99)),
    per_query: Object.fromEntries(names.map(n => [n, { n: lat[n].length, idle_p50_ms: idle[n], p50_ms: r1(pct(lat[n], 0.5)),
                                                         p99_ms: r1(pct(lat[n], 0.99)) }])),
    maxrss_kb: process.resourceUsage().maxRSS,
  };
  fs.writeFileSync(outFile, JSON.stringify(out, null, 1));
  console.log(JSON.stringify(out));
}
main().then(() => process.exit(0), e => { console.error(e); process.exit(1); });
