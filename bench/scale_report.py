#!/usr/bin/env python3
"""Step records and the report of bench/scale_bench.sh (stdlib only; the plot is drawn by gnuplot).

usage: scale_report.py record STEP.json --time TIME_V_OUTPUT --run-id ID --commit C --tag T --events N
                              --load-before "a b c" --load-after "a b c"     (prints the merged record)
       scale_report.py show STEP.json                                        (one line for the log)
       scale_report.py report --results DIR --tags "S M L" [--engines ...] [--machine FILE] [--png FILE]

`report` prints Markdown: the datasets, time and peak RSS of every step per dataset, the cost per
event, and the growth exponent b of cost ~ events^b (least squares on log-log over the datasets;
b = 1 is linear). Exponents are only computed over figures of one run (one run id): figures of
different runs are never related to each other. With --png, draws the log-log plot with gnuplot.
"""
import argparse
import glob
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

STEPS = ['load', 'open', 'q1', 'q2', 'q3', 'q4', 'q5']
LABELS = {'load': 'Import CSV (whole process)', 'open': 'Open only (baseline)', 'q1': 'Q1 DAU',
          'q2': 'Q2 5-step funnel', 'q3': 'Q3 retention', 'q4': 'Q4 RFM', 'q5': 'Q5 channel report'}
NAMES = {'northstar': 'Northstar', 'duckdb': 'DuckDB', 'chdb': 'chDB'}
SIZE_ORDER = ['tiny', 'S', 'M', 'L']


def parse_time_v(path):
    """Wall seconds and peak RSS (kB) from GNU time -v output."""
    text = open(path).read()
    m = re.search(r'Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)', text)
    wall = (int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else None
    m = re.search(r'Maximum resident set size \(kbytes\): (\d+)', text)
    return wall, int(m.group(1)) if m else None


def record(a):
    r = json.load(open(a.step))
    wall, rss = parse_time_v(a.time)
    if 'maxrss_kb' in r:
        r['node_maxrss_kb'] = r.pop('maxrss_kb')
    r.update({'tag': a.tag, 'events': int(a.events), 'run_id': a.run_id, 'commit': a.commit,
              'loadavg_before': a.load_before, 'loadavg_after': a.load_after, 'wall_s': wall, 'maxrss_kb': rss})
    if r.get('times_ms'):
        r['median_ms'] = statistics.median(r['times_ms'])
    print(json.dumps(r, indent=1))


def show(a):
    r = json.load(open(a.step))
    what = f"median {r['median_ms']:.1f} ms of {r['times_ms']}" if r.get('median_ms') is not None else ''
    print(f"    -> {r['tag']} {r['engine']} {r['step']}: {what} wall {r['wall_s']:.2f} s, "
          f"peak RSS {r['maxrss_kb'] / 1024:.0f} MiB")


def cost(r, step):
    """The step's time in seconds: median warm run for a query, whole process for the rest."""
    if r is None:
        return None
    if step.startswith('q'):
        return r['median_ms'] / 1000 if r.get('median_ms') is not None else None
    return r.get('wall_s')


def exponent(points):
    """Least-squares slope of log(y) on log(x)."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x and y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def fmt_s(v):
    if v is None:
        return '-'
    return f'{v * 1000:.1f} ms' if v < 0.1 else f'{v * 1000:,.0f} ms' if v < 10 else f'{v:,.1f} s'


def fmt_b(b, same_run):
    if not same_run:
        return '- (runs differ)'
    if b is None:
        return '-'
    note = ' super-linear' if b > 1.1 else ' sub-linear' if b < 0.9 else ''
    return f'{b:.2f}{note}'


def report(a):
    tags = [t for t in SIZE_ORDER if t in a.tags.split()]
    engines = a.engines.split()
    recs = {}
    for t in tags:
        for e in engines:
            for s in STEPS:
                p = os.path.join(a.results, t, e, f'step-{s}.json')
                if os.path.exists(p):
                    recs[(t, e, s)] = json.load(open(p))
    if not recs:
        sys.exit('scale_report.py: no step results')
    events = {t: next((r['events'] for (tt, _, _), r in recs.items() if tt == t), None) for t in tags}
    tags = [t for t in tags if events[t]]
    runs = sorted({r['run_id'] for r in recs.values()})
    loads = [float(x.split()[0]) for r in recs.values() for x in (r['loadavg_before'], r['loadavg_after'])]
    versions = {e: next((r.get('version') for (_, ee, _), r in recs.items() if ee == e and r.get('version')), '?')
                for e in engines}
    threads = {e: next((r.get('threads') for (_, ee, _), r in recs.items() if ee == e and r.get('threads')), '?')
               for e in engines}
    commits = sorted({r['commit'] for r in recs.values()})
    print('### Scaling from ' + ' to '.join(tags))
    print()
    if a.machine and os.path.exists(a.machine):
        print(open(a.machine).read().strip())
        print()
    print('Datasets (`gen_events --days 90 --seed 42`): ' +
          ', '.join(f'{t} {events[t]:,} events' for t in tags) + '. Engines: ' +
          ', '.join(f'{NAMES.get(e, e)} {versions[e]} ({threads[e]} threads)' for e in engines) +
          f'. Northstar commit(s) measured: {", ".join(commits)}. Run id(s): {", ".join(runs)}'
          f'{" (resumed: exponents only within one run)" if len(runs) > 1 else ""}. '
          f'1-minute load average during the steps: {min(loads):.2f} to {max(loads):.2f}.')
    print()
    print('Each step is its own process (`/usr/bin/time -v`): import = the whole load process '
          '(Northstar `northstar import`, the peers a Node process running their load SQL); queries = '
          'median of the timed warm runs after one untimed warm-up in a process that opened the store '
          'first; peak RSS = that whole process (the peers\' Node runtime included: see the "open" '
          'baseline). b = growth exponent of cost ~ events^b fitted over the datasets (1 = linear).')
    agree = []
    for t in tags:
        c = os.path.join(a.results, t, 'compare.txt')
        if os.path.exists(c):
            txt = open(c).read()
            agree.append(f'{t} {"DISAGREE" if "MISMATCH" in txt else "agree"}')
        else:
            agree.append(f'{t} not cross-checked')
    print()
    print('Answers (`compare.py`, Q1, Q2, Q3, Q5; Q4 between the peers): ' + ', '.join(agree) + '.')

    def table(title, unit_hdr, value, per_event, per_event_hdr, steps, growth=None):
        # growth(tag, engine, step) -> the amount whose exponent is fitted (default: the value).
        print()
        print(f'**{title}**')
        print()
        hdr = ['Step', 'Engine'] + [f'{t}' for t in tags] + [f'{per_event_hdr} {t}' for t in tags] + ['b']
        print('| ' + ' | '.join(hdr) + ' |')
        print('|' + '|'.join(['---', '---'] + ['---:'] * (len(hdr) - 2)) + '|')
        flagged = []
        for s in steps:
            for e in engines:
                cells = [LABELS[s], NAMES.get(e, e)]
                vals = {t: value(recs.get((t, e, s)), s) for t in tags}
                if all(v is None for v in vals.values()):
                    continue
                cells += [unit_hdr(vals[t]) for t in tags]
                cells += [per_event(vals[t], events[t]) for t in tags]
                run_ids = {recs[k]['run_id'] for t in tags for k in ((t, e, s), (t, e, 'open')) if k in recs}
                if growth:
                    gv = {t: growth(t, e, s) for t in tags}
                    b = exponent([(events[t], gv[t]) for t in tags if gv[t] is not None])
                else:
                    run_ids = {recs[(t, e, s)]['run_id'] for t in tags if (t, e, s) in recs}
                    b = exponent([(events[t], vals[t]) for t in tags if vals[t] is not None])
                cells.append(fmt_b(b, len(run_ids) == 1))
                if b is not None and len(run_ids) == 1 and (b > 1.1 or b < 0.9):
                    flagged.append(f'{LABELS[s]} ({NAMES.get(e, e)}, b = {b:.2f})')
                print('| ' + ' | '.join(cells) + ' |')
        return flagged

    ns_per = lambda v, n: '-' if v is None else (f'{v * 1e9 / n:.1f} ns' if v * 1e9 / n < 100 else f'{v * 1e9 / n:,.0f} ns')
    slow = table('Time', fmt_s, cost, ns_per, 'per event', [s for s in STEPS if s != 'open'])
    mib = lambda v: '-' if v is None else f'{v / 1024:,.0f} MiB'
    b_per = lambda v, n: '-' if v is None else f'{v * 1024 / n:.1f} B'
    def above_open(t, e, s):
        # Memory the step adds to the opened store: its peak RSS minus the "open" step's.
        r, o = recs.get((t, e, s)), recs.get((t, e, 'open'))
        if s == 'open' or r is None or o is None or r['maxrss_kb'] <= o['maxrss_kb']:
            return None
        return r['maxrss_kb'] - o['maxrss_kb']
    print()
    print('In the memory table b is fitted to the peak RSS above the same engine\'s "open" baseline (the memory '
          'the step itself adds), so a constant runtime does not read as sub-linear growth.')
    big = table('Peak RSS of the step\'s process', mib, lambda r, s: r['maxrss_kb'] if r else None, b_per,
                'per event', STEPS, growth=above_open)
    print()
    disk = []
    for e in engines:
        cells = [f'{t} {recs[(t, e, "load")]["storage_bytes"] / int(recs[(t, e, "load")]["rows"]):.2f} B'
                 for t in tags if (t, e, 'load') in recs and recs[(t, e, 'load')].get('rows')]
        if cells:
            disk.append(f'{NAMES.get(e, e)} ' + ', '.join(cells))
    print('On disk per event: ' + '; '.join(disk) + '.')
    print()
    print('Not linear (|b - 1| > 0.1) in time: ' + ('; '.join(slow) if slow else 'none') + '. In memory: ' +
          ('; '.join(big) if big else 'none') + '.')
    if a.png:
        plot(a, tags, engines, events, recs, f'commit {", ".join(commits)}, {os.cpu_count()} CPUs, 1-min load average '
             f'{min(loads):.1f} to {max(loads):.1f}')


def plot(a, tags, engines, events, recs, subtitle):
    if not shutil.which('gnuplot'):
        print('\n(no plot: gnuplot is not installed)')
        return
    d = tempfile.mkdtemp(prefix='scale-plot-')
    steps = [s for s in STEPS if s != 'open']
    colors = {'northstar': '#d62728', 'duckdb': '#1f77b4', 'chdb': '#2ca02c'}
    gp = [f'set terminal pngcairo size {300 * len(steps)},720 font "sans,10"', f'set output "{a.png}"',
          f'set multiplot layout 2,{len(steps)} title "Scaling with events (log-log; dotted: linear through '
          f'the smallest dataset) - {subtitle}"', 'set logscale xy', 'set format x "%.0s%c"', 'set grid',
          'set key top left', 'set xlabel "events"', f'set xrange [{min(events.values()) / 1.5}:{max(events.values()) * 1.5}]']
    for row, (ylabel, value) in enumerate([('seconds', cost), ('peak RSS, MiB', None)]):
        for s in steps:
            series = []
            for e in engines:
                pts = []
                for t in tags:
                    r = recs.get((t, e, s))
                    v = (value(r, s) if value else (r['maxrss_kb'] / 1024 if r else None))
                    if v:
                        pts.append((events[t], v))
                if not pts:
                    continue
                f = os.path.join(d, f'{row}-{s}-{e}.dat')
                with open(f, 'w') as fh:
                    fh.write(''.join(f'{x} {y}\n' for x, y in pts))
                x0, y0 = pts[0]
                series.append(f'"{f}" using 1:2 with linespoints lw 2 pt 7 lc rgb "{colors.get(e, "black")}" '
                              f'title "{NAMES.get(e, e)}"')
                series.append(f'({y0}) * x / {x0} with lines dt 3 lc rgb "{colors.get(e, "black")}" notitle')
            gp.append(f'set title "{LABELS[s]}"')
            gp.append('set key top left' if s == steps[0] else 'unset key')
            gp.append(f'set ylabel "{ylabel}"')
            gp.append('plot ' + ', '.join(series) if series else 'plot 1 notitle')
    gp.append('unset multiplot')
    script = os.path.join(d, 'plot.gp')
    with open(script, 'w') as fh:
        fh.write('\n'.join(gp) + '\n')
    r = subprocess.run(['gnuplot', script], capture_output=True, text=True)
    if r.returncode != 0:
        print(f'\n(gnuplot failed: {r.stderr.strip()[:300]})')
    else:
        print(f'\nPlot: `{os.path.basename(a.png)}` (gnuplot, this run).')
    shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('record')
    r.add_argument('step')
    for f in ('--time', '--run-id', '--commit', '--tag', '--events', '--load-before', '--load-after'):
        r.add_argument(f, required=True)
    s = sub.add_parser('show')
    s.add_argument('step')
    p = sub.add_parser('report')
    p.add_argument('--results', required=True)
    p.add_argument('--tags', default='S M L')
    p.add_argument('--engines', default='northstar duckdb chdb')
    p.add_argument('--machine')
    p.add_argument('--png')
    a = ap.parse_args()
    {'record': record, 'show': show, 'report': report}[a.cmd](a)


if __name__ == '__main__':
    main()
