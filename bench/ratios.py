#!/usr/bin/env python3
"""Northstar vs peer engines, as ratios, from one run of bench/run_bench.sh.

usage: ratios.py TAG [--results DIR] [--json FILE]

Reads DIR/TAG/<engine>/timings.json (query -> list of warm run times in ms) and load.json
(load_s, rows, storage_bytes) for every engine directory (default DIR: /tmp/bench-peers/results)
and prints a Markdown table: for q1 to q5, load and storage bytes per event, Northstar's
median next to each peer's median and ratio = peer / northstar (> 1 means Northstar is faster,
or smaller on disk). Medians are of the timed warm runs (the untimed warm-up run is excluded).
Q4 is Northstar's rfm query (rank quintiles as of the last day) against the peers' NTILE RFM:
the same work, other scores. With northstar/people.json (ns_bench --people), also prints
the Northstar-only people-layer timings.
"""
import argparse
import json
import os
import statistics
import sys

QUERIES = ['q1', 'q2', 'q3', 'q4', 'q5']
NAMES = {'northstar': 'Northstar', 'duckdb': 'DuckDB', 'chdb': 'chDB (ClickHouse)', 'postgres': 'PostgreSQL',
         'sqlite': 'SQLite'}


def read_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def engine_figures(base, engine):
    """metric -> value (ms for queries, s for load, bytes/event for storage); None if missing."""
    t = read_json(os.path.join(base, engine, 'timings.json'))
    li = read_json(os.path.join(base, engine, 'load.json'))
    out = {}
    for q in QUERIES:
        v = t.get(q)
        out[q] = statistics.median(v) if v else None
    out['load'] = float(li['load_s']) if li.get('load_s') is not None else None
    rows = int(li['rows']) if li.get('rows') not in (None, '') else 0
    out['bytes_per_event'] = li['storage_bytes'] / rows if rows and li.get('storage_bytes') else None
    out['rows'] = rows or None
    return out


def fmt(v, metric):
    if v is None:
        return '-'
    if metric == 'load':
        return f'{v:.2f} s' if v < 10 else f'{v:.1f} s'
    if metric == 'bytes_per_event':
        return f'{v:.2f} B'
    return f'{v:.1f} ms' if v < 100 else f'{v:,.0f} ms'


def ratio(peer, ns):
    if peer is None or ns is None or ns <= 0:
        return None
    return peer / ns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('tag')
    ap.add_argument('--results', default='/tmp/bench-peers/results')
    ap.add_argument('--json', help='also write the figures and ratios as JSON here')
    a = ap.parse_args()
    base = os.path.join(a.results, a.tag)
    if not os.path.isdir(os.path.join(base, 'northstar')):
        sys.exit(f'ratios.py: no Northstar results in {base}/northstar')
    engines = sorted(e for e in os.listdir(base) if os.path.isdir(os.path.join(base, e)))
    order = ['duckdb', 'chdb', 'postgres', 'sqlite']
    peers = sorted((e for e in engines if e != 'northstar'), key=lambda e: (order.index(e) if e in order else 9, e))
    figs = {e: engine_figures(base, e) for e in engines}
    ns = figs['northstar']
    metrics = [(q, f'{q.upper()} (median warm)') for q in QUERIES] + [('load', 'Load CSV'),
                                                                       ('bytes_per_event', 'On disk per event')]
    hdr = ['Metric', 'Northstar']
    for p in peers:
        hdr += [NAMES.get(p, p), f'{NAMES.get(p, p).split(" ")[0]} / Northstar']
    lines = ['| ' + ' | '.join(hdr) + ' |', '|' + '|'.join(['---'] + ['---:'] * (len(hdr) - 1)) + '|']
    ratios = {}
    for m, label in metrics:
        cells = [label, fmt(ns[m], m)]
        for p in peers:
            r = ratio(figs[p][m], ns[m])
            ratios.setdefault(p, {})[m] = r
            cells += [fmt(figs[p][m], m), f'{r:.2f}×' if r is not None else '-']
        lines.append('| ' + ' | '.join(cells) + ' |')
    rows = ns.get('rows')
    print(f'Dataset {a.tag}' + (f': {rows:,} events' if rows else '') +
          '. Ratio = peer / Northstar (> 1 means Northstar faster, or smaller on disk).')
    print()
    print('\n'.join(lines))
    print()
    print('Queries: median of the timed warm runs in one process (1 untimed warm-up run first). '
          'Load: peers time their load SQL inside the engine process; Northstar times the whole '
          '`northstar import` process (start-up, parse, flush and compaction included). '
          'On disk: peers as reported by the engine (DuckDB file size, chDB bytes_on_disk); '
          'Northstar the files under projects/<p>/segments.')
    mismatch = [e for e in peers if figs[e].get('rows') and rows and figs[e]['rows'] != rows]
    if mismatch:
        print(f'WARNING: row counts differ from Northstar ({rows}): ' +
              ', '.join(f'{e} {figs[e]["rows"]}' for e in mismatch))
    people = read_json(os.path.join(base, 'northstar', 'people.json'))
    if people.get('timings'):
        labels = {
            'cohort_3_conditions': 'Behavioural cohort, 3 conditions, evaluated fresh',
            'rfm_facts_computed': 'rfm (segments only), per-person facts computed',
            'rfm_facts_cached': 'rfm (segments only), facts cached',
            'lifecycle_stages_weekly': 'lifecycle stages, weekly over the data',
            'q2_funnel': 'Q2 funnel',
            'q2_funnel_cohort_filter': 'Q2 funnel with the cohort as a filter',
        }
        print()
        print('| People layer (Northstar only) | min | median |')
        print('|---|---:|---:|')
        for k in sorted(people['timings'], key=lambda k: list(labels).index(k) if k in labels else 99):
            v = people['timings'][k]
            print(f'| {labels.get(k, k)} | {fmt(min(v), k)} | {fmt(statistics.median(v), k)} |')
        info = people.get('info', {})
        if info:
            print()
            print('People answers: ' + ', '.join(f'{k} {json.dumps(v)}' for k, v in info.items()
                                                 if k != 'cohort_definition'))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'tag': a.tag, 'figures': figs, 'ratios_peer_over_northstar': ratios}, f, indent=1)


if __name__ == '__main__':
    main()
