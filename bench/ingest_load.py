#!/usr/bin/env python3
"""HTTP ingest throughput of `northstar serve` (python3 stdlib only).

usage: ingest_load.py [--connections 8] [--seconds 10] [--warmup 1] [--batch 100] [--users 100000]
                      [--data /tmp/ns-ingest] [--northstar build/northstar] [--loadgen build/bench/ingest_load]
                      [--server-threads N] [--python] [--json FILE] [--md FILE]
                      [--protocol native|segment] [--client raw|httplib] [--query-threads N [--idle-seconds S]] [--demo-users N]

Creates a project in a fresh data directory, starts `northstar serve --port 0 --no-demo` on it,
then posts batches of --batch events (JSON array, each event with a unique uuid) from
--connections concurrent keep-alive connections for --warmup + --seconds seconds (bounded), and
reports sustained accepted events/s, per-request latency (p50/p90/p99/max) and the server's CPU
time over the measured window (utime+stime from /proc/PID/stat). The load comes from the C++
generator bench/ingest_load.cc (target ingest_load) when it is built; --python (or a missing
binary) uses a thread-per-connection http.client generator instead, which on a small machine
saturates long before the server does. Client and server share the machine's cores: the
client's CPU is reported too.

--protocol segment posts Segment batches to /v1/batch (HTTP Basic auth with the write key), as
@segment/analytics-node does. --query-threads N runs N threads posting a funnel query
(product_exposure -> add_to_cart -> pay, 1-day window, last 30 days) to /api/v1/query in a loop
during the run; --demo-users N first fills the project with `northstar demo` data (30 days) so
those queries have something to scan. With --query-threads the same query loop first runs
alone on the same server, no ingest, for a warm-up and --idle-seconds (default: --seconds;
0 skips it), and once more after the ingest stops, over every row it added: the output gives
idle-before, loaded and idle-after p50/p99 of one run and the ratios (issue 15: "queries' p99
within 2x of idle"; loaded / idle-after compares the same query over the same rows, so it
measures the ingest's contention, not the rows it added) next to the ingest rate. The loaded queries also scan what
the ingest adds (events of the funnel's names at the current time, inside its 30 days);
--query-to past ends the queries' 30 days two days ago instead, so neither the range nor the
funnel's 1-day conversion window reaches the ingested rows: both phases scan the same rows and
the ratio measures contention alone.
"""
import argparse
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf('SC_CLK_TCK')


def proc_cpu_s(pid):
    with open(f'/proc/{pid}/stat') as f:
        s = f.read()
    fields = s[s.rindex(')') + 2:].split()  # fields from #3 (state) on
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime (#14) + stime (#15)


def proc_status_kb(pid, key):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    return None


def http_get(port, path, timeout=5):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request('GET', path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def python_load(port, key, conns, seconds, warmup, batch, users, server_pid):
    """Fallback generator: one thread and one keep-alive http.client connection per connection."""
    phase = [0]
    results = []
    lock = threading.Lock()
    now_ms = int(time.time() * 1000)
    events = ['product_exposure', 'product_click', 'add_to_cart', 'order', 'pay', 'page_view']

    def worker(t):
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
        hdr = {'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'}
        lat, ok, failed, accepted, errs, first_err, seq = [], 0, 0, 0, 0, '', 0
        x = 0x9E3779B97F4A7C15 * (t + 1) & (2**64 - 1)
        while phase[0] != 2:
            ph = phase[0]
            parts = []
            for i in range(batch):
                x ^= (x << 13) & (2**64 - 1); x ^= x >> 7; x ^= (x << 17) & (2**64 - 1)
                parts.append('{"event":"%s","distinct_id":"u%08d","uuid":"py-%03d-%012d","timestamp":%d,'
                             '"properties":{"channel":"organic","platform":"web","amount":%d}}'
                             % (events[i % 6], x % users, t, seq, now_ms - batch + i, i % 500 + 1))
                seq += 1
            body = '[' + ','.join(parts) + ']'
            t0 = time.perf_counter()
            try:
                c.request('POST', '/api/v1/events', body, hdr)
                r = c.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                c.close()
                if ph == 1:
                    errs += 1
                    first_err = first_err or f'transport error: {e!r}'
                time.sleep(0.01)
                continue
            ms = (time.perf_counter() - t0) * 1000
            if ph != 1:
                continue
            if r.status != 200:
                failed += 1
                first_err = first_err or f'HTTP {r.status}: {data[:300]!r}'
                continue
            ok += 1
            lat.append(ms)
            accepted += json.loads(data).get('accepted', 0)
        with lock:
            results.append((lat, ok, failed, accepted, errs, first_err))

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(conns)]
    for th in threads:
        th.start()
    time.sleep(warmup)
    srv0, cli0 = proc_cpu_s(server_pid), time.process_time()
    t0 = time.perf_counter()
    phase[0] = 1
    time.sleep(seconds)
    phase[0] = 2
    for th in threads:
        th.join(120)
    elapsed = time.perf_counter() - t0
    srv1, cli1 = proc_cpu_s(server_pid), time.process_time()
    lat = sorted(x for r in results for x in r[0])
    pct = lambda p: lat[min(len(lat) - 1, int(p * (len(lat) - 1) + 0.5))] if lat else 0.0
    ok = sum(r[1] for r in results)
    accepted = sum(r[3] for r in results)
    return {'generator': 'python', 'connections': conns, 'batch': batch, 'users': users, 'warmup_s': warmup,
            'seconds': elapsed, 'ok_requests': ok, 'failed_requests': sum(r[2] for r in results),
            'transport_errors': sum(r[4] for r in results), 'events_sent': ok * batch, 'accepted': accepted,
            'events_per_s': accepted / elapsed, 'requests_per_s': ok / elapsed,
            'latency_ms': {'mean': sum(lat) / len(lat) if lat else 0.0, 'p50': pct(.5), 'p90': pct(.9),
                           'p99': pct(.99), 'max': lat[-1] if lat else 0.0},
            'server_cpu_s': srv1 - srv0, 'server_cpu_cores': (srv1 - srv0) / elapsed,
            'server_cpu_us_per_event': (srv1 - srv0) * 1e6 / accepted if accepted else -1,
            'client_cpu_s': cli1 - cli0, 'client_cpu_cores': (cli1 - cli0) / elapsed,
            'first_error': next((r[5] for r in results if r[5]), '')}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build = os.environ.get('BUILD', os.path.join(ROOT, 'build'))
    ap.add_argument('--connections', type=int, default=8)
    ap.add_argument('--seconds', type=float, default=10)
    ap.add_argument('--warmup', type=float, default=1)
    ap.add_argument('--batch', type=int, default=100)
    ap.add_argument('--users', type=int, default=100000)
    ap.add_argument('--data', default='/tmp/ns-ingest')
    ap.add_argument('--northstar', default=os.path.join(build, 'northstar'))
    ap.add_argument('--loadgen', default=os.path.join(build, 'bench', 'ingest_load'))
    ap.add_argument('--server-threads', type=int, help='northstar serve --threads (default: the server default)')
    ap.add_argument('--python', action='store_true', help='use the Python generator even if the C++ one is built')
    ap.add_argument('--json', help='write the result as JSON here')
    ap.add_argument('--md', help='append the result as Markdown to this file')
    ap.add_argument('--protocol', choices=['native', 'segment'], default='native')
    ap.add_argument('--client', choices=['raw', 'httplib'], default='raw',
                    help="the C++ generator's connections: hand-written (one send per request) or cpp-httplib's")
    ap.add_argument('--rate', type=float, default=0,
                    help='offered ingest rate in events/s, paced on a fixed schedule (an open loop, as SDK traffic '
                    'is; latencies counted from when each batch was due); 0: as fast as the server answers')
    ap.add_argument('--query-threads', type=int, default=0)
    ap.add_argument('--demo-users', type=int, default=0)
    ap.add_argument('--query-to', choices=['today', 'past'], default='today',
                    help="the queries' last day: today (the ingest's events are scanned) or two days ago (the range and "
                    "its 1-day conversion window end before them)")
    ap.add_argument('--query-trace', help='with --query-threads: write each query\'s start (s), window and ms here')
    ap.add_argument('--idle-seconds', type=float, help='with --query-threads: seconds of the query loop alone before '
                    'the ingest (default: --seconds; 0: none)')
    a = ap.parse_args()
    if not 0 < a.seconds <= 600 or not 0 <= a.warmup <= 60:
        sys.exit('ingest_load.py: --seconds must be in (0, 600], --warmup in [0, 60]')
    idle_s = (a.seconds if a.idle_seconds is None else a.idle_seconds) if a.query_threads else 0
    if not 0 <= a.rate <= 1e8:
        sys.exit('ingest_load.py: --rate must be in [0, 1e8] events/s')
    if not 0 <= idle_s <= 600:
        sys.exit('ingest_load.py: --idle-seconds must be in [0, 600]')

    shutil.rmtree(a.data, ignore_errors=True)
    os.makedirs(a.data)
    created = subprocess.run([a.northstar, 'admin', 'create-project', 'ingest', '--tz', 'UTC', '--data', a.data,
                              '--format', 'json'], check=True, capture_output=True, text=True)
    key = json.loads(created.stdout)['write_key']
    secret = json.loads(created.stdout)['secret_key']
    if a.demo_users:
        subprocess.run([a.northstar, 'demo', '-p', 'ingest', '--users', str(a.demo_users), '--days', '30',
                        '--data', a.data], check=True, capture_output=True, text=True)
    query_file = a.data.rstrip('/') + '-query.json'
    last = time.time() - (2 * 86400 if a.query_to == 'past' else 0)
    query_to = time.strftime('%Y-%m-%d', time.gmtime(last))
    month_ago = time.strftime('%Y-%m-%d', time.gmtime(last - 29 * 86400))
    with open(query_file, 'w') as f:
        json.dump({'kind': 'funnel', 'steps': [{'event': 'product_exposure'}, {'event': 'add_to_cart'}, {'event': 'pay'}],
                   'window_seconds': 86400, 'date_from': month_ago, 'date_to': query_to}, f)

    log_path = a.data.rstrip('/') + '-server.log'
    log = open(log_path, 'w')
    cmd = [a.northstar, 'serve', '--data', a.data, '--host', '127.0.0.1', '--port', '0', '--no-demo']
    if a.server_threads:
        cmd += ['--threads', str(a.server_threads)]
    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    result = None
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in srv.stdout], daemon=True).start()
        port, deadline = None, time.time() + 60
        while port is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                sys.exit(f'ingest_load.py: server did not report its port within 60 s (log: {log_path})')
            m = re.search(r'listening on http://[^:]+:(\d+)', line)
            if m:
                port = int(m.group(1))
        while True:
            try:
                if http_get(port, '/healthz')[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit('ingest_load.py: /healthz did not answer')
            time.sleep(0.05)

        use_cpp = not a.python and os.access(a.loadgen, os.X_OK)
        if (a.protocol != 'native' or a.query_threads or a.rate) and not use_cpp:
            sys.exit('ingest_load.py: --protocol segment, --rate and --query-threads need the C++ generator '
                     '(target ingest_load)')
        if use_cpp:
            r = subprocess.run([a.loadgen, '--port', str(port), '--key', key, '--connections', str(a.connections),
                                '--seconds', str(a.seconds), '--warmup', str(a.warmup), '--batch', str(a.batch),
                                '--users', str(a.users), '--server-pid', str(srv.pid), '--protocol', a.protocol,
                                '--query-threads', str(a.query_threads), '--query-key', secret,
                                '--query-file', query_file, '--idle-seconds', str(idle_s), '--client', a.client,
                                '--rate', str(a.rate)] +
                               (['--query-trace', a.query_trace] if a.query_trace else []),
                               capture_output=True, text=True, timeout=a.seconds + 3 * a.warmup + 2 * idle_s + 180)
            if r.returncode != 0 and not r.stdout.strip():
                sys.exit(f'ingest_load.py: load generator failed ({r.returncode}): {r.stderr}')
            result = json.loads(r.stdout)
            result['generator'] = ('c++ (bench/ingest_load.cc, ' +
                                   ('hand-written keep-alive connections)' if a.client == 'raw' else 'cpp-httplib)'))
        else:
            if not a.python:
                print(f'note: {a.loadgen} not built; using the Python generator (client-bound on small machines)',
                      file=sys.stderr)
            result = python_load(port, key, a.connections, a.seconds, a.warmup, a.batch, a.users, srv.pid)
        status, metrics = http_get(port, '/metrics')
        m = re.findall(r'northstar_events_accepted_total\{[^}]*\} (\d+)', metrics)  # one series per protocol
        result['server_accepted_total'] = sum(int(x) for x in m) if m else None
        result['server_max_rss_kb'] = proc_status_kb(srv.pid, 'VmHWM')
        result['server_threads'] = a.server_threads or 'default'
    finally:
        if srv.poll() is None:
            t0 = time.perf_counter()
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(120)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
            if result is not None:
                result['server_shutdown_s'] = time.perf_counter() - t0
        log.close()
    result['server_exit_code'] = srv.returncode

    lat = result['latency_ms']
    total = f"{result['server_accepted_total']:,}" if result.get('server_accepted_total') is not None else '?'
    md = [
        f"HTTP ingest: {result['connections']} keep-alive connections, {result['batch']}-event "
        f"{'Segment /v1/batch' if result.get('protocol') == 'segment' else 'JSON'} batches, "
        f"{result['seconds']:.1f} s measured after {result['warmup_s']:g} s warm-up; "
        + (f"offered {result['rate']:,.0f} events/s on a fixed schedule (latency from each batch's due time); "
           if result.get('rate') else 'as fast as the server answers; ') +
        f"generator {result['generator']}; "
        f"server threads {result['server_threads']}; client and server on the same {os.cpu_count()}-core machine.",
        '',
        '| Sustained events/s | Requests/s | p50 ms | p90 ms | p99 ms | max ms | Server CPU (cores) | Server µs CPU/event | Client CPU (cores) | Errors |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        f"| {result['events_per_s']:,.0f} | {result['requests_per_s']:,.0f} | {lat['p50']:.2f} | {lat['p90']:.2f} | "
        f"{lat['p99']:.2f} | {lat['max']:.1f} | {result['server_cpu_s']:.2f} s ({result['server_cpu_cores']:.2f}) | "
        f"{result['server_cpu_us_per_event']:.2f} | {result['client_cpu_s']:.2f} s ({result['client_cpu_cores']:.2f}) | "
        f"{result['failed_requests'] + result['transport_errors']} |",
        '',
        f"Accepted in window {result['accepted']:,} of {result['events_sent']:,} sent; server total accepted "
        f"(incl. warm-up) {total}; server peak RSS {result['server_max_rss_kb'] or 0:,} kB; "
        f"shutdown (flush) {result.get('server_shutdown_s', float('nan')):.2f} s, exit code {result['server_exit_code']}."
        + (f" First error: {result['first_error']}" if result.get('first_error') else ''),
    ]
    if result.get('query_threads'):
        ql = result['query_latency_ms']
        md += ['', f"Concurrent queries: {result['query_threads']} thread(s) posting a 3-step funnel over the 30 days to "
               f"{query_to} ({a.demo_users:,} demo users): {result['queries']} queries ({result['queries_per_s']:.2f}/s), p50 "
               f"{ql['p50']:.0f} ms, p99 {ql['p99']:.0f} ms, {result['queries_failed']} failed."]
        if result.get('idle_queries'):
            qi = result['idle_query_latency_ms']
            qa = result.get('idle_after_query_latency_ms') or {'p50': 0, 'p99': 0, 'max': 0}
            ratio = lambda k, base: f"{ql[k] / base[k]:.2f}x" if base[k] > 0 else '?'
            md += ['', f"Queries idle vs under ingest (same server, same query loop: {result['idle_seconds']:.1f} s "
                   f"without ingest, then {result['seconds']:.1f} s with it, then {result.get('idle_after_seconds', 0):.1f} s "
                   f"without it again, over every row the ingest added):", '',
                   '| | queries | p50 ms | p99 ms | max ms | failed |', '|---|---:|---:|---:|---:|---:|',
                   f"| idle before (the demo's rows) | {result['idle_queries']} | {qi['p50']:.1f} | {qi['p99']:.1f} | "
                   f"{qi['max']:.1f} | {result['idle_queries_failed']} |",
                   f"| under ingest ({result['events_per_s']:,.0f} events/s) | {result['queries']} | {ql['p50']:.1f} | "
                   f"{ql['p99']:.1f} | {ql['max']:.1f} | {result['queries_failed']} |",
                   f"| idle after (the same rows as the last loaded queries) | {result.get('idle_after_queries', 0)} | "
                   f"{qa['p50']:.1f} | {qa['p99']:.1f} | {qa['max']:.1f} | {result.get('idle_after_queries_failed', 0)} |",
                   f"| loaded / idle before | | {ratio('p50', qi)} | {ratio('p99', qi)} | | |",
                   f"| loaded / idle after | | {ratio('p50', qa)} | **{ratio('p99', qa)}** | | |"]
            if result.get('idle_after_server_cpu_cores', -1) >= 0:
                md += ['', f"The query loop alone (idle after) used {result['idle_after_server_cpu_cores']:.2f} of the "
                       f"server's cores: what a loaded query competes with the ingest for."]
    ncpu = os.cpu_count() or 1
    if lat['p50'] > 30 and result['server_cpu_cores'] + result['client_cpu_cores'] < 0.5 * ncpu:
        md += ['', f"Note: p50 {lat['p50']:.0f} ms while server and client together use "
               f"{result['server_cpu_cores'] + result['client_cpu_cores']:.2f} of {ncpu} cores: requests are waiting, "
               'not computing. A ~40 ms floor is the signature of Nagle + delayed ACK (the server writes a response '
               'in several segments on a socket without TCP_NODELAY).']
    print('\n'.join(md))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(result, f, indent=1)
    if a.md:
        with open(a.md, 'a') as f:
            f.write('\n'.join(md) + '\n')
    bad = result['ok_requests'] == 0 or result['server_exit_code'] != 0
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
