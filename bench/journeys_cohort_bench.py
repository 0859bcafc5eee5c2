#!/usr/bin/env python3
"""A journey's cohort trigger over 1,000,000 persons (docs/benchmarks.md, "Journeys"): a
project whose persons each paid once 100+ days ago (a tenth of them active last week), the
cohort "paid, and no event in the last 90 days", a journey on it with include_existing; the
time of POST /api/v1/journeys/{id}/evaluate (cohort evaluation + the diff + every entry
written to meta.db), then of a second evaluation (nobody new).

  python3 bench/journeys_cohort_bench.py build/northstar [persons]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

from nsclient import Client  # noqa: E402
from nsserver import Server  # noqa: E402
from opsclient import create_project  # noqa: E402


def main():
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    tmp = tempfile.mkdtemp(prefix="ns-jcbench-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    keys = create_project(binary, data, "bench")
    now = int(time.time())
    csv = os.path.join(tmp, "events.csv")
    with open(csv, "w") as f:
        f.write("event,distinct_id,timestamp\n")
        for i in range(n):
            f.write(f"pay,p{i},{now - 100 * 86400 - i % 86400}\n")
            if i % 10 == 0:
                f.write(f"page_view,p{i},{now - 7 * 86400}\n")
    t = time.time()
    subprocess.run([binary, "import", "--data", data, "-p", "bench", csv], check=True, capture_output=True)
    print(f"import of {n:,} persons: {time.time() - t:.1f} s")
    srv = Server(binary, data, os.path.join(tmp, "server.log"), ["--allow-private-webhooks"]).start()
    sec = Client(srv.port, "s", key=keys["secret_key"])
    c = sec.ok("POST", "/api/v1/cohorts", {"name": "Silent 90 days", "kind": "behavioral", "definition": {
        "op": "and", "conditions": [{"type": "performed", "event": "pay"},
                                    {"type": "not_performed", "event": "$any", "last_days": 90}]}}, 201)
    j = sec.ok("POST", "/api/v1/journeys", {
        "name": "Recall", "trigger": {"type": "cohort", "cohort": c["id"], "include_existing": True,
                                      "every_minutes": 1440},
        "steps": [{"type": "wait", "hours": 24}, {"type": "action", "action": "webhook",
                                                  "url": "https://hooks.example.com/x"}]}, 201)
    sec.ok("POST", f"/api/v1/journeys/{j['id']}/activate")
    for label in ("first evaluation", "second evaluation"):
        t = time.time()
        r = sec.req("POST", f"/api/v1/journeys/{j['id']}/evaluate", timeout=600)
        print(f"{label}: {r.json()['entered']:,} persons entered in {time.time() - t:.2f} s")
    srv.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
