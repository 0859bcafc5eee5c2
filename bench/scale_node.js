// One step of the scaling benchmark (bench/scale_bench.sh) for a peer engine, in its own
// Node process so that the process's peak RSS belongs to that step alone.
//   node scale_node.js ENGINE load  CSV DB SQLDIR OUTDIR          (load the CSV into a fresh DB)
//   node scale_node.js ENGINE query DB SQLDIR QUERY RUNS OUTDIR   (QUERY = q1..q5, or `open`:
//                                                                   open the DB and run nothing)
// ENGINE = duckdb | chdb; SQLDIR = the peer kit's sql/ENGINE (../shared/bench-peers).
// Writes OUTDIR/step-load.json or OUTDIR/step-QUERY.json (times, peak RSS of this process, engine
// version and threads) and, for a query, its answer as OUTDIR/QUERY.csv for compare.py. Needs
// NODE_PATH pointing at the node_modules holding @duckdb/node-api and chdb.
'use strict';
const fs = require('fs'), path = require('path');

const [engine, mode, ...rest] = process.argv.slice(2);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const t_start = now();
const stmts = (f, csv) => fs.readFileSync(f, 'utf8').replaceAll('{{CSV}}', csv).split(/;\s*\n/).map(s => s.trim())
  .filter(s => s.replace(/--.*$/gm, '').trim().length);
function duSize(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((a, n) => a + duSize(path.join(p, n)), 0);
}
function toCsv(cols, rows) {
  const esc = v => { const s = v === null || v === undefined ? '' : String(v); return /[",\n]/.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s; };
  return [cols.join(','), ...rows.map(r => r.map(esc).join(','))].join('\n') + '\n';
}

// Opens ENGINE at db: {info: {version, threads}, exec(sql) -> csv text, rows(), storage()}.
async function open(db) {
  if (engine === 'duckdb') {
    const { DuckDBInstance } = require('@duckdb/node-api');
    const inst = await DuckDBInstance.create(db);
    const con = await inst.connect();
    const one = async (sql) => (await con.runAndReadAll(sql)).getRows()[0][0];
    return {
      info: { version: await one('select version()'), threads: String(await one("select current_setting('threads')")) },
      exec: async (sql) => { const r = await con.runAndReadAll(sql); return toCsv(r.columnNames(), r.getRows()); },
      run: async (sql) => con.run(sql),
      rows: async () => String(await one('select count(*) from events')),
      storage: () => duSize(db),
    };
  }
  if (engine === 'chdb') {
    const { Session } = require('chdb');
    const sess = new Session(db);
    const q = (s) => sess.query(s, 'CSVWithNames');
    const one = (s) => q(s).split('\n')[1].replaceAll('"', '');
    return {
      info: { version: one('SELECT version()'), threads: one("SELECT getSetting('max_threads')") },
      exec: async (sql) => q(sql).replaceAll('"', ''),
      run: async (sql) => q(sql),
      rows: async () => one('SELECT count() FROM events'),
      storage: () => Number(one("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND table = 'events'")),
    };
  }
  throw new Error(`engine must be duckdb or chdb, not ${engine}`);
}

async function main() {
  let out = { engine, step: mode };
  let outDir;
  if (mode === 'load') {
    const [csv, db, sqlDir, dir] = rest;
    outDir = dir;
    if (fs.existsSync(db)) throw new Error(`${db} exists: the load step needs a fresh database`);
    const e = await open(db);
    const t0 = now();
    for (const s of stmts(path.join(sqlDir, 'load.sql'), csv)) await e.run(s);
    out = { ...out, ...e.info, load_s: (now() - t0) / 1000, rows: await e.rows(), storage_bytes: e.storage() };
  } else if (mode === 'query') {
    const [db, sqlDir, qn, runsS, dir] = rest;
    outDir = dir;
    const e = await open(db);
    out = { ...out, step: qn, ...e.info };
    if (qn !== 'open') {
      const sql = fs.readFileSync(path.join(sqlDir, qn + '.sql'), 'utf8').trim().replace(/;$/, '');
      fs.writeFileSync(path.join(dir, qn + '.csv'), await e.exec(sql));  // untimed warm-up, answer kept
      const ts = [];
      for (let i = 0; i < parseInt(runsS, 10); i++) { const t0 = now(); await e.exec(sql); ts.push(now() - t0); }
      out.times_ms = ts.map(x => Math.round(x * 10) / 10);
    }
  } else throw new Error('mode must be load or query');
  out.process_s = (now() - t_start) / 1000;
  out.maxrss_kb = process.resourceUsage().maxRSS;  // kB, the whole Node process (runtime included)
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, `step-${out.step}.json`), JSON.stringify(out, null, 1));
  console.log(JSON.stringify(out));
}
main().then(() => process.exit(0), e => { console.error(e); process.exit(1); });
