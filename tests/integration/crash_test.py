#!/usr/bin/env python3
"""Durability / exactly-once test: SIGKILL the Northstar server while events are being ingested.

Usage: crash_test.py /path/to/northstar

For each cycle K (>= 20): start `northstar serve` on the same data directory (port 0), run
client threads that POST batches of 1-200 events (unique uuid4, distinct timestamps within
the last 30 days, property "cycle": K), SIGKILL the server at a random moment 0.2-1.5 s later
while requests are in flight, then restart it and verify:

  * acked_K <= stored_K <= acked_K + unknown_K (per cycle, via trends filtered on cycle=K and a
    breakdown by cycle), and the project's total is within the same bounds;
  * every acknowledged event is still there exactly once: re-sending all acknowledged events of
    cycle K reports all of them as duplicates (accepted == 0);
  * re-sending the "unknown" events (request sent, no answer) reports exactly
    stored_K - acked_K duplicates, and afterwards stored_K == acked_K + unknown_K + refused_K;
    events whose connection was refused were never stored (all accepted on re-send);
  * earlier cycles keep their exact counts after every later crash;
  * identity merges ($anon_distinct_id on ~2% of events) of acknowledged events survive:
    acked merges <= distinct_ids - persons <= acked + unknown merges, exact once settled.

Every 2nd cycle runs with a small --flush-rows so crashes also hit flushes and compactions;
every 5th crash the data directory is checked with `northstar check` (crash leftovers may be
warnings, never PROBLEMs). At the end: all acknowledged events of all cycles are re-sent (all
duplicates), the server is stopped with SIGTERM (exit 0), `northstar check` must exit 0, and a
last start verifies the counts after the graceful flush.

Environment: NORTHSTAR_CRASH_CYCLES (default 20), NORTHSTAR_CRASH_SEED (default: random).
Standard library only; prints per-cycle stats and a final "N passed, M failed".
"""

import datetime as dt
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CYCLES = int(os.environ.get("NORTHSTAR_CRASH_CYCLES", "20"))
SEED = int(os.environ.get("NORTHSTAR_CRASH_SEED", str(random.randrange(1 << 31))))
THREADS = 4
PROJECT = "crash"
TZ_OFFSET = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai
DAY_MS = 86400 * 1000
RESEND_CHUNK = 4000
TIME_BUDGET_S = 200  # stop starting new cycles after this (a cycle never runs into the CTest timeout)


from nsclient import request  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, run_check  # noqa: E402


# --------------------------------------------------------------------------- workload


class Batches:
    """Request bodies (JSON arrays as bytes, kept compact) and their event counts."""

    def __init__(self):
        self.bodies = []
        self.events = 0
        self.anons = set()  # anonymous ids merged into a user by these events ($anon_distinct_id)

    def add(self, body, n, anons=()):
        self.bodies.append((body, n))
        self.events += n
        self.anons.update(anons)

    def extend(self, other):
        self.bodies.extend(other.bodies)
        self.events += other.events
        self.anons |= other.anons

    def __len__(self):
        return self.events

    def chunks(self, max_events):
        """Joins bodies into JSON arrays of at most ~max_events events."""
        group, n = [], 0
        for body, c in self.bodies:
            if group and n + c > max_events:
                yield b"[" + b",".join(group) + b"]", n
                group, n = [], 0
            group.append(body[1:-1])
            n += c
        if group:
            yield b"[" + b",".join(group) + b"]", n


class Cycle:
    def __init__(self, k):
        self.k = k
        self.acked = Batches()    # requests answered 2xx
        self.unknown = Batches()  # request (maybe partly) sent, no answer: may or may not be stored
        self.refused = Batches()  # connection refused: never reached the server
        self.other = Batches()    # non-2xx answers (unexpected during this test)
        self.anomalies = []
        self.in_flight = 0
        self.in_flight_at_kill = 0
        self.merged_after_crash = None  # (acked merges, stored merges, acked + unknown merges)
        self.requests_ok = 0
        self.lock = threading.Lock()


class Workload:
    def __init__(self, rng, write_key):
        self.rng = rng
        self.write_key = write_key
        self.lock = threading.Lock()
        self.used_ts = set()
        self.now_ms = int(time.time() * 1000)

    def timestamp(self):
        with self.lock:
            while True:
                ts = self.now_ms - self.rng.randint(60_000, 30 * DAY_MS)
                if ts not in self.used_ts:
                    self.used_ts.add(ts)
                    return ts

    def batch(self, k, t, b):
        with self.lock:
            n = self.rng.randint(1, 200)
            names = [self.rng.choice(["cr_view", "cr_click", "cr_pay"]) for _ in range(n)]
            users = [self.rng.randrange(500) for _ in range(n)]
            merges = [self.rng.random() < 0.02 for _ in range(n)]
        out = []
        for i in range(n):
            props = {"cycle": k, "thread": t, "batch": b, "i": i}
            if merges[i]:
                props["$anon_distinct_id"] = f"anon-{k}-{users[i]}"  # new anonymous ids every cycle
            out.append({"uuid": str(uuid.uuid4()), "event": names[i], "distinct_id": f"user-{users[i]}",
                        "timestamp": self.timestamp(), "properties": props})
        return out

    def client(self, port, cyc, t, stop):
        b = 0
        while not stop.is_set():
            events = self.batch(cyc.k, t, b)
            n = len(events)
            anons = {e["properties"]["$anon_distinct_id"] for e in events if "$anon_distinct_id" in e["properties"]}
            b += 1
            body = json.dumps(events, separators=(",", ":")).encode()
            del events
            # A raw connection on purpose: the server is killed mid-request; refused, lost and acked count apart.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.connect()
            except ConnectionRefusedError:
                with cyc.lock:
                    cyc.refused.add(body, n, anons)
                conn.close()
                break
            except OSError as e:
                with cyc.lock:
                    cyc.unknown.add(body, n, anons)
                    cyc.anomalies.append(f"connect failed: {e!r}")
                conn.close()
                break
            with cyc.lock:
                cyc.in_flight += 1
            try:
                conn.request("POST", "/api/v1/events", body=body,
                             headers={"Authorization": "Bearer " + self.write_key, "Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                with cyc.lock:
                    cyc.unknown.add(body, n, anons)
                    cyc.in_flight -= 1
                conn.close()
                continue
            conn.close()
            with cyc.lock:
                cyc.in_flight -= 1
                if 200 <= r.status < 300:
                    cyc.acked.add(body, n, anons)
                    cyc.requests_ok += 1
                    try:
                        res = json.loads(data)
                    except ValueError:
                        res = {}
                    if res.get("accepted") != n or res.get("duplicates") != 0 or res.get("errors"):
                        cyc.anomalies.append(f"2xx with unexpected body for {n} new events: {data[:300]!r}")
                else:
                    cyc.other.add(body, n, anons)
                    cyc.anomalies.append(f"HTTP {r.status}: {data[:300]!r}")


# --------------------------------------------------------------------------- verification


class Verifier:
    def __init__(self, keys, date_from, date_to):
        self.secret = keys["secret_key"]
        self.write = keys["write_key"]
        self.date_from, self.date_to = date_from, date_to
        self.exact = {}        # cycle -> exact number of stored events once settled
        self.all_acked = Batches()  # every event acknowledged (originally or on re-send)
        self.port = None

    def trends(self, filters=None, breakdown=None):
        q = {"kind": "trends", "series": [{"event": "$any", "math": "total"}], "date_from": self.date_from,
             "date_to": self.date_to, "interval": "day"}
        if filters:
            q["filters"] = filters
        if breakdown:
            q["breakdown"] = breakdown
            q["breakdown_limit"] = 1000
        r = request(self.port, "POST", "/api/v1/query", q, key=self.secret, timeout=120)
        check(r.status == 200, f"query {json.dumps(q)} -> {r}")
        return r.json()

    def count_cycle(self, k):
        out = self.trends(filters=[{"property": "cycle", "op": "eq", "value": k}])
        return sum(sum(s["values"]) for s in out["series"])

    def counts_by_cycle(self):
        out = self.trends(breakdown="cycle")
        res = {}
        for s in out["series"]:
            bv = s.get("breakdown_value")
            check(bv is not None, f"breakdown series without a cycle value: {s.get('label')} {sum(s['values'])} events")
            key = int(float(bv))
            res[key] = res.get(key, 0) + sum(s["values"])
        return res

    def stats(self):
        r = request(self.port, "GET", "/api/v1/project", key=self.secret, timeout=120)
        check(r.status == 200, f"GET /api/v1/project -> {r}")
        return r.json()["stats"]

    def total(self):
        return self.stats()["events"]

    def merged_ids(self):
        """Distinct ids merged into another person. Only anon-K-N ids are ever merged (into user-N),
        and each is created by its merge, so this is the number of merged anonymous ids."""
        s = self.stats()
        return s["distinct_ids"] - s["persons"]

    def total_by_trends(self):
        return sum(sum(s["values"]) for s in self.trends()["series"])

    def resend(self, *batches):
        """Re-sends the events of Batches in chunks; returns (accepted, duplicates)."""
        acc = dup = 0
        for b in batches:
            for body, n in b.chunks(RESEND_CHUNK):
                r = request(self.port, "POST", "/api/v1/events", body, key=self.write, ctype="application/json",
                            timeout=120)
                check(r.status == 200, f"re-send of {n} events -> {r}")
                out = r.json()
                check(not out.get("errors"), f"re-send reported errors: {str(out['errors'])[:500]}")
                check(out["accepted"] + out["duplicates"] == n, f"re-send of {n}: {out}")
                acc += out["accepted"]
                dup += out["duplicates"]
        return acc, dup

    def verify_settled(self, where):
        """All cycles in self.exact have exactly their count; the total matches."""
        by = self.counts_by_cycle()
        for k, n in sorted(self.exact.items()):
            check(by.get(k, 0) == n, f"{where}: cycle {k} has {by.get(k, 0)} stored events, expected exactly {n}")
        extra = set(by) - set(self.exact)
        check(not extra, f"{where}: events of unexpected cycles {sorted(extra)}: {[by[k] for k in sorted(extra)]}")
        want = sum(self.exact.values())
        merged = self.merged_ids()
        check(merged == len(self.all_acked.anons),
              f"{where}: {merged} merged anonymous ids (distinct_ids - persons), expected {len(self.all_acked.anons)}")
        total = self.total()
        check(total == want, f"{where}: project stats.events = {total}, expected {want}")
        by_trends = self.total_by_trends()
        check(by_trends == want, f"{where}: trends $any total = {by_trends}, expected {want}")

    def verify_after_crash(self, cyc):
        """Checks the cycle that was just killed, then settles it (re-sends everything)."""
        k = cyc.k
        acked, unknown, refused = len(cyc.acked), len(cyc.unknown), len(cyc.refused)
        prev = sum(self.exact.values())
        total = self.total()
        check(prev + acked <= total <= prev + acked + unknown,
              f"cycle {k}: total stored {total} outside [{prev + acked}, {prev + acked + unknown}] "
              f"(earlier cycles {prev}, acked {acked}, unknown {unknown})")
        # Identity merges of acknowledged events survive the crash.
        lo = len(self.all_acked.anons | cyc.acked.anons)
        hi = len(self.all_acked.anons | cyc.acked.anons | cyc.unknown.anons)
        merged = self.merged_ids()
        cyc.merged_after_crash = (lo, merged, hi)
        check(lo <= merged <= hi, f"cycle {k}: {merged} merged anonymous ids (distinct_ids - persons) outside "
              f"[{lo}, {hi}] -> {'ACKNOWLEDGED MERGES LOST' if merged < lo else 'merges that were never sent'}")
        stored = self.count_cycle(k)
        by = self.counts_by_cycle()
        check(by.get(k, 0) == stored, f"cycle {k}: breakdown count {by.get(k, 0)} != filtered count {stored}")
        for j, n in sorted(self.exact.items()):
            check(by.get(j, 0) == n, f"after crash {k}: earlier cycle {j} has {by.get(j, 0)} events, expected {n}")
        check(acked <= stored <= acked + unknown,
              f"cycle {k}: stored {stored} outside [acked {acked}, acked + unknown {acked + unknown}] "
              f"-> {'ACKNOWLEDGED EVENTS LOST' if stored < acked else 'events stored that were never sent'}")
        # Exactly-once for acknowledged events: all of them are duplicates now.
        a, d = self.resend(cyc.acked)
        check(a == 0 and d == acked,
              f"cycle {k}: re-sending the {acked} acknowledged events: accepted {a} (must be 0), duplicates {d}")
        # Unknown events: exactly the stored ones are duplicates.
        ua, ud = self.resend(cyc.unknown)
        check(ud == stored - acked,
              f"cycle {k}: re-sending {unknown} unknown events reported {ud} duplicates, but {stored - acked} "
              f"unacknowledged events were stored")
        ra, rd = self.resend(cyc.refused, cyc.other)
        check(rd == 0, f"cycle {k}: {rd} events of refused/failed requests were stored")
        want = acked + unknown + len(cyc.refused) + len(cyc.other)
        after = self.count_cycle(k)
        check(after == want, f"cycle {k}: after re-sending everything {after} stored, expected exactly {want}")
        self.exact[k] = want
        for b in (cyc.acked, cyc.unknown, cyc.refused, cyc.other):
            self.all_acked.extend(b)
        merged = self.merged_ids()
        check(merged == len(self.all_acked.anons),
              f"cycle {k}: after re-sending, {merged} merged anonymous ids, expected {len(self.all_acked.anons)}")
        return stored, ud, ua


# --------------------------------------------------------------------------- main


def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated by SIGTERM"))
    rng = random.Random(SEED)
    print(f"crash test: {CYCLES} cycles, {THREADS} client threads, seed {SEED} (NORTHSTAR_CRASH_SEED)", flush=True)
    tmp = tempfile.mkdtemp(prefix="northstar-crash-")
    data = os.path.join(tmp, "data")
    log = os.path.join(tmp, "server.log")
    server = None
    passed = failed = 0
    t0 = time.time()
    totals = {"acked": 0, "unknown": 0, "refused": 0, "stored_unknown": 0}

    def ok(name):
        nonlocal passed
        passed += 1
        print(f"PASS {name}", flush=True)

    try:
        p = subprocess.run([binary, "admin", "--data", data, "create-project", PROJECT, "--tz", "Asia/Shanghai",
                            "--format", "json"], capture_output=True, timeout=60)
        check(p.returncode == 0, f"create-project failed: {(p.stdout + p.stderr).decode(errors='replace')}")
        keys = json.loads(p.stdout)
        now_local = dt.datetime.now(TZ_OFFSET).date()
        ver = Verifier(keys, (now_local - dt.timedelta(days=32)).isoformat(), (now_local + dt.timedelta(days=2)).isoformat())
        work = Workload(rng, keys["write_key"])
        ok("setup")

        prev = None
        k = 0
        while k < CYCLES:
            if time.time() - t0 > TIME_BUDGET_S:
                raise TestFailure(f"time budget of {TIME_BUDGET_S}s exhausted after {k} cycles (machine too slow?)")
            flush_rows = rng.randint(300, 3000) if k % 2 == 1 else None
            extra = ["--flush-rows", str(flush_rows)] if flush_rows else []
            ts = time.time()
            server = Server(binary, data, log, extra).start()
            startup = time.time() - ts
            ver.port = server.port
            if prev is not None:
                stored, stored_unknown, _ = ver.verify_after_crash(prev)
                totals["stored_unknown"] += stored_unknown
                print(f"cycle {prev.k:2d}: acked {len(prev.acked):5d}  unknown {len(prev.unknown):4d}  "
                      f"refused {len(prev.refused):3d}  stored {stored:5d} (of unknown: {stored_unknown})  "
                      f"merges {prev.merged_after_crash[1]} in [{prev.merged_after_crash[0]}, {prev.merged_after_crash[2]}]  "
                      f"in flight at kill {prev.in_flight_at_kill}  restart {startup:.2f}s", flush=True)
                ok(f"cycle_{prev.k}_durable_exactly_once")
            # Run cycle k and crash it.
            cyc = Cycle(k)
            stop = threading.Event()
            threads = [threading.Thread(target=work.client, args=(server.port, cyc, t, stop), daemon=True)
                       for t in range(THREADS)]
            for t in threads:
                t.start()
            kill_after = rng.uniform(0.2, 1.5)
            time.sleep(kill_after)
            # Kill while at least one request is in flight (wait up to 0.5 s more for one).
            deadline = time.time() + 0.5
            while time.time() < deadline:
                with cyc.lock:
                    if cyc.in_flight > 0:
                        break
                time.sleep(0.001)
            with cyc.lock:
                cyc.in_flight_at_kill = cyc.in_flight
            server.sigkill()
            stop.set()
            for t in threads:
                t.join(timeout=60)
                check(not t.is_alive(), "a client thread did not finish within 60s of the kill")
            check(not cyc.anomalies or all(a.startswith("connect failed") for a in cyc.anomalies),
                  f"cycle {k}: unexpected responses: {cyc.anomalies[:5]}")
            if len(cyc.acked) == 0:
                print(f"  note: cycle {k}: no request was acknowledged within {kill_after:.2f}s (slow machine?)")
            totals["acked"] += len(cyc.acked)
            totals["unknown"] += len(cyc.unknown)
            totals["refused"] += len(cyc.refused)
            if k % 5 == 4:
                line = run_check(binary, data, f"after crash {k}")
                print(f"  check after crash {k}: {line}", flush=True)
            prev = cyc
            k += 1

        # Restart after the last crash and verify it.
        server = Server(binary, data, log).start()
        ver.port = server.port
        stored, stored_unknown, _ = ver.verify_after_crash(prev)
        totals["stored_unknown"] += stored_unknown
        print(f"cycle {prev.k:2d}: acked {len(prev.acked):5d}  unknown {len(prev.unknown):4d}  "
              f"refused {len(prev.refused):3d}  stored {stored:5d} (of unknown: {stored_unknown})  "
              f"merges {prev.merged_after_crash[1]} in [{prev.merged_after_crash[0]}, {prev.merged_after_crash[2]}]  "
                      f"in flight at kill {prev.in_flight_at_kill}", flush=True)
        ok(f"cycle_{prev.k}_durable_exactly_once")

        ver.verify_settled("after all crashes")
        ok("all_cycles_exact_counts")
        a, d = ver.resend(ver.all_acked)
        check(a == 0 and d == len(ver.all_acked),
              f"re-sending all {len(ver.all_acked)} stored events: accepted {a} (must be 0), duplicates {d}")
        ver.verify_settled("after re-sending everything")
        ok(f"resend_all_{len(ver.all_acked)}_events_are_duplicates")

        rc = server.stop()
        check(rc == 0, f"server exit code after SIGTERM: {rc}\n{server.log_tail()}")
        ok("graceful_stop")
        line = run_check(binary, data, "after graceful stop")
        print(f"  {line}", flush=True)
        ok("northstar_check")

        server = Server(binary, data, log).start()
        ver.port = server.port
        ver.verify_settled("after a graceful restart")
        some = Batches()
        for body, n in ver.all_acked.bodies[:200]:
            some.add(body, n)
        a, d = ver.resend(some)
        check(a == 0, f"after the graceful restart {a} re-sent events were accepted again")
        rc = server.stop()
        check(rc == 0, f"server exit code after SIGTERM: {rc}")
        run_check(binary, data, "at the end")
        ok("graceful_restart_keeps_everything")
    except Exception as e:  # noqa: BLE001
        failed += 1
        detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
        print(f"FAIL: {detail}", flush=True)
        if server is not None:
            print(server.log_tail(40), flush=True)
        print(f"(seed {SEED}; rerun with NORTHSTAR_CRASH_SEED={SEED})", flush=True)
    finally:
        if server is not None:
            try:
                server.stop(timeout=30)
            except Exception:  # noqa: BLE001
                server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"totals: acked {totals['acked']}, unknown {totals['unknown']} (stored: {totals['stored_unknown']}), "
          f"refused {totals['refused']}; time {time.time() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
