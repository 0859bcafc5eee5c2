#!/usr/bin/env python3
"""A dashboard of 10 saved insights on the demo data, cold and warm (python3 stdlib only).

usage: dashboard_bench.py [--northstar build/northstar] [--data DIR] [--demo-users 20000]
                          [--demo-days 90] [--runs 20] [--json FILE]

Starts `northstar serve --demo` on a fresh data directory (the demo project of `make run`:
--demo-users users over --demo-days days ending today), creates 10 insights over the last 30
days with relative dates (DAU, events, revenue by channel, a 5-step funnel, register->pay by
channel, weekly retention, daily retention with 24h windows and the mean, lifecycle, RFM,
paying users), puts them on one dashboard, and times GET /api/v1/dashboards/{id}/run: the
first (cold: every query runs) and --runs warm ones (every tile answered from the cache,
the store unchanged). Reports the server's took_ms and the client's wall time (median, p95,
max). Not a test: the figures go to docs/benchmarks.md.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

INSIGHTS = [
    ("DAU", {"kind": "trends", "series": [{"event": "$any", "math": "dau"}]}),
    ("Events per day", {"kind": "trends", "series": [{"event": "$any", "math": "total"}]}),
    ("Revenue by channel", {"kind": "trends", "series": [{"event": "pay", "math": "sum", "property": "amount"}],
                            "breakdown": "channel"}),
    ("Purchase funnel", {"kind": "funnel", "window_seconds": 7 * 86400,
                         "steps": [{"event": e} for e in ("product_exposure", "product_click", "add_to_cart", "order",
                                                          "pay")]}),
    ("Register to pay by channel", {"kind": "funnel", "steps": [{"event": "register"}, {"event": "pay"}],
                                    "breakdown": "channel"}),
    ("Weekly retention", {"kind": "retention", "start_event": "register", "return_event": "$any", "period": "week",
                          "periods": 5}),
    ("Daily retention, 24h", {"kind": "retention", "start_event": "register", "return_event": "$any",
                              "periods": 8, "time_window": "24h", "reference": "previous"}),
    ("Lifecycle", {"kind": "lifecycle", "interval": "week"}),
    ("RFM", {"kind": "rfm"}),
    ("Paying users", {"kind": "trends", "series": [{"event": "pay", "math": "dau"}], "interval": "week"}),
]


def call(port, key, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, data, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    r = c.getresponse()
    out = r.read()
    c.close()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: HTTP {r.status} {out[:500]!r}")
    return json.loads(out)


def stats(xs):
    xs = sorted(xs)
    return {"median": round(statistics.median(xs), 2), "p95": round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 2),
            "max": round(xs[-1], 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--northstar", default="build/northstar")
    ap.add_argument("--data")
    ap.add_argument("--demo-users", type=int, default=20000)
    ap.add_argument("--demo-days", type=int, default=90)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json")
    a = ap.parse_args()
    data = a.data or tempfile.mkdtemp(prefix="ns-dashboard-bench-")
    proc = subprocess.Popen([a.northstar, "serve", "--data", data, "--port", "0", "--demo", "--demo-users",
                             str(a.demo_users), "--demo-days", str(a.demo_days), "--no-scheduler"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        m = re.match(rb"listening on http://[^:]+:(\d+)", proc.stdout.readline())
        if not m:
            raise SystemExit("server did not start")
        port = int(m.group(1))
        key = json.load(open(os.path.join(data, "demo-keys.json")))["secret_key"]
        ids = []
        for name, q in INSIGHTS:
            q = dict(q)
            if q["kind"] != "rfm":
                q.update({"date_from": "-29d", "date_to": "today"})
            ids.append(call(port, key, "POST", "/api/v1/insights", {"name": name, "query": q})["id"])
        tiles = [{"insight_id": i, "x": 6 * (n % 2), "y": 4 * (n // 2), "w": 6, "h": 4} for n, i in enumerate(ids)]
        did = call(port, key, "POST", "/api/v1/dashboards", {"name": "bench", "tiles": tiles})["id"]
        t = time.perf_counter()
        cold = call(port, key, "GET", f"/api/v1/dashboards/{did}/run")
        cold_wall = (time.perf_counter() - t) * 1000
        errors = [x["error"] for x in cold["tiles"] if "error" in x]
        if errors:
            raise SystemExit(f"tiles failed: {errors}")
        warm_server, warm_wall = [], []
        for _ in range(a.runs):
            t = time.perf_counter()
            r = call(port, key, "GET", f"/api/v1/dashboards/{did}/run")
            warm_wall.append((time.perf_counter() - t) * 1000)
            warm_server.append(r["took_ms"])
            if r["cached_tiles"] != len(ids):
                raise SystemExit(f"warm run with {r['cached_tiles']} cached tiles of {len(ids)}")
        out = {"tiles": len(ids), "demo_users": a.demo_users, "demo_days": a.demo_days,
               "cold": {"server_ms": round(cold["took_ms"], 1), "wall_ms": round(cold_wall, 1),
                        "tiles_ms": {x["title"]: round(x["result"].get("took_ms", 0), 1) for x in cold["tiles"]}},
               "warm_server_ms": stats(warm_server), "warm_wall_ms": stats(warm_wall), "runs": a.runs}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=2, ensure_ascii=False)
    finally:
        proc.terminate()
        proc.wait()
        if not a.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
