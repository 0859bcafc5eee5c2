#!/usr/bin/env python3
"""Two builds of `northstar` side by side on copies of the dataset-M store (docs/benchmarks.md
"Commerce and LTV (issue 13)"): the `commerce` queries of bench/value_bench.py, run
alternately on one server per build (so a machine loaded by others weighs on both alike),
each run's server `took_ms`, wall time and the server process's CPU time (user + sys, from
/proc) printed as min / median; then whether the two builds' answers agree (integers exactly,
other numbers to 1e-12 relative: sums of amounts may differ in the last bits with the order
in which threads add them).

  python3 bench/commerce_ab.py --keys /tmp/ns-bench-M.keys.json --runs 5 \\
      OLD_BINARY COPY_OF_STORE_1 NEW_BINARY COPY_OF_STORE_2

Each store copy is served by one process (a data directory is never shared); the copies are
not modified by the queries, but never pass the original.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))

from nsclient import Client  # noqa: E402
from nsserver import Server  # noqa: E402

RANGE = {"date_from": "2024-01-01", "date_to": "2024-03-30"}
QUERIES = [("weekly series", {"kind": "commerce", "interval": "week", **RANGE}),
           ("by channel", {"kind": "commerce", "breakdown": "channel", **RANGE})]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            yield from differences(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, int):
        if abs(a - b) > 1e-12 * max(1.0, abs(a)):
            yield path, a, b
    elif a != b:
        yield path, a, b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("builds", nargs=4, metavar="BINARY_OR_STORE")
    args = ap.parse_args()
    key = json.load(open(args.keys))["secret_key"]
    pairs = [(args.builds[0], args.builds[1]), (args.builds[2], args.builds[3])]
    servers = []
    try:
        for k, (binary, store) in enumerate(pairs):
            servers.append(Server(binary, store, f"{store}.bench{k}.log", ["--no-scheduler"]).start(timeout=600))
        clients = [Client(s.port, "s", key=key) for s in servers]
        answers = [{name: c.ok("POST", "/api/v1/query", body) for name, body in QUERIES} for c in clients]  # cold
        runs = {}
        for _ in range(args.runs):
            for k, (s, c) in enumerate(zip(servers, clients)):
                for name, body in QUERIES:
                    cpu0, wall0 = cpu_seconds(s.proc.pid), time.time()
                    took = c.ok("POST", "/api/v1/query", body)["took_ms"]
                    runs.setdefault((k, name), []).append(
                        (took, (time.time() - wall0) * 1000, (cpu_seconds(s.proc.pid) - cpu0) * 1000))
        print("| build | query | took_ms min / median | wall ms median | CPU ms (user+sys) min / median |")
        print("|---|---|---:|---:|---:|")
        for k, (binary, _) in enumerate(pairs):
            for name, _ in QUERIES:
                v = runs[(k, name)]
                col = lambda i: [x[i] for x in v]  # noqa: E731
                print(f"| {binary} | {name} | {min(col(0)):.0f} / {statistics.median(col(0)):.0f} | "
                      f"{statistics.median(col(1)):.0f} | {min(col(2)):.0f} / {statistics.median(col(2)):.0f} |")
        for name, _ in QUERIES:
            strip = lambda r: {k: v for k, v in r.items() if k != "took_ms"}  # noqa: E731
            diff = list(differences(strip(answers[0][name]), strip(answers[1][name])))
            print(f"{name}: answers {'agree' if not diff else 'DIFFER: ' + repr(diff[:5])}")
        return 0
    finally:
        for s in servers:
            s.stop(timeout=120)


if __name__ == "__main__":
    sys.exit(main())
