#!/usr/bin/env python3
"""Value models at scale (issue 13, docs/benchmarks.md "Value models on dataset M and 1M
customers"): commerce, LTV and channels warm on an imported peer dataset, and the CLV fit on
one million synthetic customers.

  python3 bench/value_bench.py build/northstar [--store /tmp/ns-bench-M] [--runs 5] [--customers 1000000]

1. Copies the Northstar store of `bench/run_bench.sh M` (project `bench`, keys in
   STORE.keys.json) to a temporary directory, serves it, and asks `commerce`, `ltv` and
   `channels` over the data's 90 days (2024-01-01..2024-03-30) `runs` times each, printing the
   server's `took_ms` (first = cold decode, then min and median of the warm runs).
2. Writes a CSV of `customers` buyers drawn from the BG/NBD and Gamma-Gamma processes with
   CDNOW-like parameters (r 0.24, alpha 4.4, a 0.79, b 2.43 per week; p 6.25, q 3.74, v 15.4),
   first purchases over 12 weeks and 78 weeks in all, imports it with `northstar import`
   (bulk path) into a fresh project, and fits `clv` with a 39-week calibration, printing the
   time and the fitted parameters beside the generating ones (a sanity check, not a test:
   the reference checks are tests/unit/clv_model_test.cc and tests/integration/clv_cdnow_test.py).
Prints Markdown for docs/benchmarks.md.
"""

import argparse
import datetime as dt
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

from nsclient import Client  # noqa: E402
from nsserver import Server  # noqa: E402


def timed(client, body, runs):
    took = []
    for _ in range(runs + 1):
        r = client.ok("POST", "/api/v1/query", body)
        took.append(r["took_ms"])
    return took[0], min(took[1:]), statistics.median(took[1:])


def value_queries(binary, store, runs, tmp):
    data = os.path.join(tmp, "m")
    shutil.copytree(store, data)
    keys = json.load(open(store + ".keys.json"))
    srv = Server(binary, data, os.path.join(tmp, "m.log"), ["--no-scheduler"]).start()
    try:
        sec = Client(srv.port, "s", key=keys["secret_key"])
        rng = {"date_from": "2024-01-01", "date_to": "2024-03-30"}
        rows = []
        for name, body in (
                ("commerce, 90 days, weekly series", {"kind": "commerce", "interval": "week", **rng}),
                ("commerce by channel", {"kind": "commerce", "breakdown": "channel", **rng}),
                ("ltv, weekly cohorts", {"kind": "ltv", "period": "week", **rng}),
                ("channels (register -> pay, 7 days)", {"kind": "channels", "acquisition_event": "register",
                                                        "conversion_seconds": 7 * 86400, **rng})):
            cold, best, med = timed(sec, body, runs)
            rows.append(f"| {name} | {cold:.0f} | {best:.0f} | {med:.0f} |")
        return rows
    finally:
        srv.stop(timeout=60)


def clv_customers(n, path, seed=7):
    """A CSV of n buyers from BG/NBD (weekly rates) with Gamma-Gamma spends."""
    r, alpha, a, b = 0.24, 4.4, 0.79, 2.43
    p, q, v = 6.25, 3.74, 15.4
    rnd = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    weeks = 78
    rows = 0
    with open(path, "w") as f:
        f.write("distinct_id,timestamp,event,amount\n")
        for c in range(n):
            lam = rnd.gammavariate(r, 1 / alpha)
            pdrop = rnd.betavariate(a, b)
            nu = rnd.gammavariate(q, 1 / v)
            t = first = rnd.uniform(0, 12)
            while t < weeks:
                amount = rnd.gammavariate(p, 1 / nu)
                ts = start + dt.timedelta(weeks=t)
                f.write(f"c{c},{ts.strftime('%Y-%m-%dT%H:%M:%SZ')},pay,{amount:.2f}\n")
                rows += 1
                # BG/NBD: a customer can drop out only after a repeat purchase, never right
                # after the first one (x = 0 means alive throughout).
                if lam <= 0 or (t > first and rnd.random() < pdrop):
                    break
                t += rnd.expovariate(lam)
    return rows


def clv_fit(binary, n, tmp):
    path = os.path.join(tmp, "clv.csv")
    t0 = time.time()
    rows = clv_customers(n, path)
    gen_s = time.time() - t0
    data = os.path.join(tmp, "clv")
    out = subprocess.run([binary, "admin", "create-project", "clv", "--tz", "UTC", "--format", "json", "--data", data],
                         capture_output=True, text=True, check=True)
    keys = json.loads(out.stdout)
    t0 = time.time()
    subprocess.run([binary, "import", path, "--project", "clv", "--data", data, "--no-progress"], check=True,
                   capture_output=True, text=True)
    import_s = time.time() - t0
    srv = Server(binary, data, os.path.join(tmp, "clv.log"), ["--no-scheduler"]).start()
    try:
        sec = Client(srv.port, "s", key=keys["secret_key"])
        body = {"kind": "clv", "calibration_to": "2024-09-29", "time_unit": "week", "horizon_days": 364,
                "limit": 10}
        took = []
        for _ in range(3):
            res = sec.ok("POST", "/api/v1/query", body)
            took.append(res["took_ms"])
        return rows, gen_s, import_s, took, res
    finally:
        srv.stop(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--store", default="/tmp/ns-bench-M")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--clv-only", action="store_true", help="skip the value queries on the store")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp(prefix="ns-value-bench-")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}, {dt.datetime.utcnow():%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}, "
          f"`python3 bench/value_bench.py {' '.join(sys.argv[1:])}`\n")
    try:
        if args.clv_only:
            pass
        elif os.path.isdir(args.store):
            print(f"Value queries on {args.store} (server `took_ms`, ms):\n")
            print("| Query | cold | warm min | warm median |\n|---|---:|---:|---:|")
            for row in value_queries(binary, args.store, args.runs, tmp):
                print(row, flush=True)
        else:
            print(f"(no store at {args.store}: run bench/run_bench.sh M first)")
        rows, gen_s, import_s, took, res = clv_fit(binary, args.customers, tmp)
        bg, gg = res["model"]["bg_nbd"], res["model"]["gamma_gamma"]
        print(f"\nCLV fit: {res['customers']:,} customers ({res['repeaters']:,} repeaters), {rows:,} payments "
              f"(generated in {gen_s:.0f} s, imported in {import_s:.1f} s). `clv` took "
              f"{', '.join(f'{t:.0f}' for t in took)} ms (three runs).")
        print(f"Fitted BG/NBD r {bg['r']:.3f}, alpha {bg['alpha']:.3f}, a {bg['a']:.3f}, b {bg['b']:.3f} "
              f"(generated from 0.24, 4.4, 0.79, 2.43); Gamma-Gamma p {gg['p']:.2f}, q {gg['q']:.2f}, v {gg['v']:.2f} "
              f"(6.25, 3.74, 15.4; fitted on repeaters' mean spend).")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
