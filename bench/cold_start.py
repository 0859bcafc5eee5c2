#!/usr/bin/env python3
"""Cold start (issue 15): from `northstar serve` on a data directory to the first answered query.

usage: nice -n 10 bench/cold_start.py [--northstar build/northstar] [--tag M] [--source DIR --keys FILE]
                                      [--copy /tmp/ns-cold-M] [--repeat 3] [--queries q1,q2,q3,q4,q5]

Copies the store (by default bench/scale_bench.sh's /tmp/ns-scale/data/TAG/ns, else bench/run_bench.sh's
/tmp/ns-bench-TAG; never written into) to --copy once (kept for re-runs: delete it to copy again),
reads every file of the copy so the page cache is warm, then for each query and --repeat times: starts
`northstar serve --data COPY --port 0`, and as soon as it prints its port sends the query
(POST /api/v1/query) and then the same query again. Reports, per query (median of the repeats): the
time to "listening", to the first answer, the first query's own time (request to response) and the
second's (process warm) - the page cache warm and the process cold. Prints Markdown for
docs/benchmarks.md with the command, commit, machine and load average.
"""
import argparse
import http.client
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

FROM, TO = '2024-01-01', '2024-03-30'
ALL = {'date_from': FROM, 'date_to': TO}
STEPS5 = [{'event': e} for e in ('product_exposure', 'product_click', 'add_to_cart', 'order', 'pay')]
# The queries of bench/ns_bench.cc (Q5: its first request, the trends one, stands for it here).
QUERIES = {
    'q1': {'kind': 'trends', 'series': [{'event': '$any', 'math': 'dau'}], **ALL},
    'q2': {'kind': 'funnel', 'steps': STEPS5, 'window_seconds': 604800, **ALL},
    'q3': {'kind': 'retention', 'start_event': 'register', 'return_event': '$any', 'period': 'day', 'periods': 31, **ALL},
    'q4': {'kind': 'rfm', 'as_of': TO, 'limit': 0},
    'q5': {'kind': 'funnel', 'steps': [{'event': 'register'}, {'event': 'pay'}], 'window_seconds': 604800,
           'breakdown': 'channel', **ALL},
}
LABELS = {'q1': 'Q1 DAU', 'q2': 'Q2 5-step funnel', 'q3': 'Q3 retention', 'q4': 'Q4 RFM',
          'q5': 'Q5 register → pay by channel (7 d)'}


def post(port, key, body):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=600)
    t = time.perf_counter()
    c.request('POST', '/api/v1/query', json.dumps(body), {'Authorization': f'Bearer {key}',
                                                        'Content-Type': 'application/json'})
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t
    c.close()
    if r.status != 200:
        raise SystemExit(f'query: HTTP {r.status} {data[:300]!r}')
    return dt


def warm_page_cache(d):
    n = 0
    for root, _, files in os.walk(d):
        for f in files:
            with open(os.path.join(root, f), 'rb') as fh:
                while chunk := fh.read(1 << 20):
                    n += len(chunk)
    return n


def one(a, key, q):
    t0 = time.perf_counter()
    p = subprocess.Popen([a.northstar, 'serve', '--data', a.copy, '--port', '0', '--no-scheduler', '--log-level', 'warn'],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = p.stdout.readline()
        t_listen = time.perf_counter() - t0
        m = re.match(rb'listening on http://[^:]+:(\d+)', line)
        if not m:
            raise SystemExit(f'server did not start: {line!r}')
        port = int(m.group(1))
        first = post(port, key, QUERIES[q])
        t_answer = time.perf_counter() - t0
        second = post(port, key, QUERIES[q])
        return t_listen, t_answer, first, second
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--northstar', default='build/northstar')
    ap.add_argument('--tag', default='M')
    ap.add_argument('--source')
    ap.add_argument('--keys')
    ap.add_argument('--copy')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--queries', default='q1,q2,q3,q4,q5')
    a = ap.parse_args()
    scale = os.environ.get('SCALE_DIR', '/tmp/ns-scale')
    if not a.source:
        s = os.path.join(scale, 'data', a.tag, 'ns')
        a.source, a.keys = (s, s + '.keys.json') if os.path.isdir(s) else (f'/tmp/ns-bench-{a.tag}',
                                                                            f'/tmp/ns-bench-{a.tag}.keys.json')
    a.keys = a.keys or a.source.rstrip('/') + '.keys.json'
    a.copy = a.copy or f'/tmp/ns-cold-{a.tag}'
    if not os.path.isdir(a.source) and not os.path.isdir(a.copy):
        raise SystemExit(f'no store {a.source}: run bench/scale_bench.sh {a.tag} (or bench/run_bench.sh {a.tag}) first')
    if not os.path.isdir(a.copy):
        shutil.copytree(a.source, a.copy + '.part')
        os.rename(a.copy + '.part', a.copy)
    key = json.load(open(a.keys))['secret_key']
    load0 = open('/proc/loadavg').read().split()[:3]
    size = warm_page_cache(a.copy)
    rows = []
    for q in a.queries.split(','):
        runs = [one(a, key, q) for _ in range(a.repeat)]
        med = [statistics.median(r[i] for r in runs) for i in range(4)]
        rows.append((q, med, runs))
        print(f'{q}: ' + '; '.join(f'listening {r[0] * 1000:.0f} ms, answered {r[1] * 1000:.0f} ms, first '
                                   f'{r[2] * 1000:.0f} ms, second {r[3] * 1000:.0f} ms' for r in runs), file=sys.stderr)
    load1 = open('/proc/loadavg').read().split()[:3]
    commit = subprocess.run(['git', '-C', os.path.dirname(os.path.abspath(__file__)), 'rev-parse', '--short', 'HEAD'],
                            capture_output=True, text=True).stdout.strip() or '?'
    version = subprocess.run([a.northstar, '--version'], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(': ', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')
    mem = next((int(l.split()[1]) for l in open('/proc/meminfo') if l.startswith('MemTotal')), 0) / 1048576
    print(f'### Cold start, dataset {a.tag}')
    print()
    print(f'Machine: {os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM; load average {" ".join(load0)} at the start, '
          f'{" ".join(load1)} at the end. {version}, commit {commit}; command: '
          f'`bench/cold_start.py {" ".join(shlex.quote(x) for x in sys.argv[1:])}`.')
    print()
    print(f'Data directory: a copy of {a.source} ({size / 1e6:,.0f} MB, every file read first: page cache warm). '
          f'Each row: a fresh `northstar serve` process per repeat (median of {a.repeat}); the query is sent as soon '
          'as the server prints its port, then sent again in the same process.')
    print()
    print('| First query | Start → listening | Start → first answer | First query | Same query again (process warm) |')
    print('|---|---:|---:|---:|---:|')
    for q, med, _ in rows:
        print(f'| {LABELS[q]} | {med[0] * 1000:,.0f} ms | {med[1] * 1000:,.0f} ms | {med[2] * 1000:,.0f} ms | '
              f'{med[3] * 1000:,.0f} ms |')


if __name__ == '__main__':
    main()
