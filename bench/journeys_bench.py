#!/usr/bin/env python3
"""Journeys on an event trigger (docs/benchmarks.md, "Journeys"): persons entering per second
and the lag from an event's acknowledgement to its webhook at a local receiver.

  python3 bench/journeys_bench.py build/northstar [persons] [events_per_second]

A journey `register` → webhook (no wait, no holdout) on a fresh data directory; `persons`
register events (default 20,000) are posted in durable batches of 500 by 4 client threads, as
fast as they are acknowledged or paced at events_per_second (batches of 50 then).
Entering rate = persons / time until the results count them all entered; lag per person =
the receiver's arrival time minus the time its batch was acknowledged (2xx = durable).
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

from nsclient import Client  # noqa: E402
from nsserver import Server  # noqa: E402
from opsclient import create_project  # noqa: E402
import http.server  # noqa: E402


def main():
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    pace = float(sys.argv[3]) if len(sys.argv) > 3 else 0
    arrived, lock = {}, threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            t = time.time()
            did = json.loads(body)["data"]["distinct_id"]
            with lock:
                arrived.setdefault(did, t)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp(prefix="ns-jbench-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    keys = create_project(binary, data, "bench")
    srv = Server(binary, data, os.path.join(tmp, "server.log"), ["--allow-private-webhooks"]).start()
    sec = Client(srv.port, "s", key=keys["secret_key"])
    j = sec.ok("POST", "/api/v1/journeys", {
        "name": "bench", "trigger": {"type": "event", "event": "register"}, "holdout_percent": 0,
        "steps": [{"type": "action", "action": "webhook",
                   "url": f"http://127.0.0.1:{httpd.server_address[1]}/hook"}]}, 201)
    sec.ok("POST", f"/api/v1/journeys/{j['id']}/activate")
    time.sleep(1)
    acked = {}
    ids = [f"b{i:07d}" for i in range(n)]
    size = 50 if pace else 500
    batches = [ids[i:i + size] for i in range(0, n, size)]

    def post(part):
        w = Client(srv.port, "w", key=keys["write_key"])
        for b in part:
            now = int(time.time() * 1000)
            r = w.req("POST", "/api/v1/events", [{"event": "register", "distinct_id": d, "timestamp": now} for d in b])
            assert r.status == 200, r
            t = time.time()
            for d in b:
                acked[d] = t
            if pace:
                time.sleep(max(0.0, 4 * len(b) / pace - (time.time() - now / 1000)))

    t0 = time.time()
    threads = [threading.Thread(target=post, args=(batches[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_ingest = time.time() - t0
    while sec.ok("GET", f"/api/v1/journeys/{j['id']}")["entered"] < n:
        time.sleep(0.05)
    t_entered = time.time() - t0
    while len(arrived) < n:
        time.sleep(0.05)
    t_sent = time.time() - t0
    lags = sorted(arrived[d] - acked[d] for d in ids)
    q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]  # noqa: E731
    print(f"{n} persons: ingest {n / t_ingest:,.0f} events/s; all entered after {t_entered:.2f} s "
          f"({n / t_entered:,.0f} persons/s); all sent after {t_sent:.2f} s ({n / t_sent:,.0f} sends/s)")
    print(f"lag ack -> webhook: p50 {q(0.5) * 1000:.0f} ms, p95 {q(0.95) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")
    srv.stop()
    httpd.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
