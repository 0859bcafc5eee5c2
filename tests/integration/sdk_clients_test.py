#!/usr/bin/env python3
"""Real SDKs against a real server: @segment/analytics-node, posthog-node and sa-sdk-node
(installed with npm into tests/clients/) each send >= 1,000 events from 60 persons to a
fresh `northstar serve`, each into its own project, through tests/clients/sdk_client.js.
Then Northstar's own API must show exactly the events, merged persons, person and event
properties and timestamps that the workload implies, and the replayed first batch (a
retry, sent twice) must be counted as duplicates and stored once.

Usage: sdk_clients_test.py /path/to/northstar"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nsclient import request  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq  # noqa: E402

CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients")
PERSONS = 60


def ensure_node_modules():
    for tool in ("node", "npm"):
        check(shutil.which(tool) is not None,
              f"'{tool}' is not on PATH: the SDK test needs Node.js >= 20 and npm")
    if os.path.isdir(os.path.join(CLIENTS, "node_modules", "sa-sdk-node")) and \
            os.path.isdir(os.path.join(CLIENTS, "node_modules", "posthog-node")) and \
            os.path.isdir(os.path.join(CLIENTS, "node_modules", "@segment", "analytics-node")):
        return
    lock = os.path.exists(os.path.join(CLIENTS, "package-lock.json"))
    cmd = ["npm", "ci" if lock else "install", "--no-audit", "--no-fund", "--loglevel=error"]
    p = subprocess.run(cmd, cwd=CLIENTS, capture_output=True, timeout=600)
    check(p.returncode == 0, f"{' '.join(cmd)} in tests/clients failed ({p.returncode}):\n"
                             f"{(p.stdout + p.stderr).decode(errors='replace')[-3000:]}")


def days():
    today = datetime.datetime.now(datetime.timezone.utc).date()
    return [(today - datetime.timedelta(days=n)).isoformat() for n in (3, 2, 1)] + [today.isoformat()]


# Expected events per SDK, derived from the workload documented in sdk_client.js.
def expected(sdk):
    n = PERSONS
    thirds = len([i for i in range(n) if i % 3 == 0])
    tenths = len([i for i in range(n) if i % 10 == 0])
    evens = len([i for i in range(n) if i % 2 == 0])
    if sdk == "segment":
        counts = {"$pageview": 3 * n, "product_view": 5 * n, "$identify": n, "add_to_cart": 4 * n, "pay": 2 * n,
                  "$screen": 2 * n, "$create_alias": thirds, "legacy_login": thirds, "$groupidentify": tenths}
        ids = 2 * n + thirds
    elif sdk == "posthog":
        counts = {"$pageview": 3 * n, "product_view": 5 * n, "$identify": n + evens, "add_to_cart": 4 * n,
                  "pay": 2 * n, "$screen": 2 * n, "$create_alias": (n - evens) + thirds, "legacy_login": thirds}
        ids = 2 * n + thirds
    else:
        counts = {"$pageview": 3 * n, "product_view": 5 * n, "$SignUp": n, "$profile_set": n,
                  "$profile_set_once": n, "add_to_cart": 4 * n, "pay": 2 * n, "$AppViewScreen": 2 * n,
                  "$profile_increment": thirds, "$profile_append": tenths, "$profile_unset": tenths}
        ids = 2 * n
    return counts, ids


class Project:
    def __init__(self, port, name, write_key, secret_key):
        self.port, self.name, self.write, self.secret = port, name, write_key, secret_key

    def query(self, q):
        r = request(self.port, "POST", "/api/v1/query", q, key=self.secret)
        check(r.status == 200, f"{self.name}: query {json.dumps(q)} -> {r}")
        return r.json()

    def info(self):
        r = request(self.port, "GET", "/api/v1/project", key=self.secret)
        check(r.status == 200, f"{self.name}: GET /api/v1/project -> {r}")
        return r.json()

    def trends(self, event, date_from, date_to, math="total", prop=None, filters=None, interval="day"):
        s = {"event": event, "math": math}
        if prop:
            s["property"] = prop
        q = {"kind": "trends", "series": [s], "date_from": date_from, "date_to": date_to, "interval": interval}
        if filters:
            q["filters"] = filters
        return self.query(q)["series"][0]


def metric(port, name, protocol):
    r = request(port, "GET", "/metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(f'{name}{{protocol="{protocol}"}} '):
            return int(line.split()[-1])
    raise TestFailure(f"/metrics has no {name}{{protocol=\"{protocol}\"}}")


def run_client(sdk, project, dates):
    t0 = time.time()
    p = subprocess.run(["node", "sdk_client.js", sdk, str(project.port), project.write, str(PERSONS)] + dates[:3],
                       cwd=CLIENTS, capture_output=True, timeout=180)
    out = p.stdout.decode(errors="replace").strip()
    check(p.returncode == 0, f"{sdk} client exited {p.returncode}:\n{out}\n{p.stderr.decode(errors='replace')[-3000:]}")
    summary = json.loads(out.splitlines()[-1])
    print(f"  {sdk}: sent {summary['sent']} events in {summary['requests']} requests, "
          f"replayed {summary['replayed']} twice ({time.time() - t0:.1f}s)")
    return summary


def verify(sdk, project, dates, summary, protocol_port):
    day_a, day_b, day_c, today = dates
    counts, ids = expected(sdk)
    total = sum(counts.values())
    check(total >= 1000, f"{sdk}: workload has only {total} events")
    check_eq(summary["sent"], total, f"{sdk}: events the client sent")

    # Exact counts per event name over the whole range, and the event names stored.
    for event, n in counts.items():
        got = sum(project.trends(event, day_a, today)["values"])
        check_eq(got, n, f"{sdk}: total '{event}' events")
    info = project.info()
    check_eq(sorted(info["event_names"]), sorted(counts), f"{sdk}: event names")
    check_eq(info["stats"]["events"], total, f"{sdk}: stored events (the replayed batch is not stored twice)")

    # Merged persons: every anonymous id joined its user id (and aliases their old ids).
    check_eq(info["stats"]["distinct_ids"], ids, f"{sdk}: distinct ids")
    check_eq(info["stats"]["persons"], PERSONS, f"{sdk}: persons after merges")
    funnel = project.query({"kind": "funnel", "steps": [{"event": "product_view"}, {"event": "pay"}],
                            "window_seconds": 3 * 86400, "date_from": day_b, "date_to": day_c})
    check_eq([s["count"] for s in funnel["steps"]], [PERSONS, PERSONS],
             f"{sdk}: funnel anonymous product_view -> identified pay")
    if "legacy_login" in counts:
        funnel = project.query({"kind": "funnel", "steps": [{"event": "legacy_login"}, {"event": "pay"}],
                                "window_seconds": 86400, "date_from": day_c, "date_to": day_c})
        check_eq([s["count"] for s in funnel["steps"]], [counts["legacy_login"]] * 2,
                 f"{sdk}: funnel aliased old id -> pay")
    dau = project.trends("$pageview", day_a, day_a, math="dau")["values"]
    check_eq(dau, [PERSONS], f"{sdk}: persons with page views on {day_a}")

    # Timestamps: the day and hour of every timestamped event.
    check_eq(project.trends("$pageview", day_a, day_c)["values"], [3 * PERSONS, 0, 0], f"{sdk}: page views by day")
    check_eq(project.trends("product_view", day_a, day_c)["values"], [0, 5 * PERSONS, 0],
             f"{sdk}: product views by day")
    hours = project.trends("pay", day_c, day_c, interval="hour")["values"]
    check_eq(len(hours), 24, f"{sdk}: hourly buckets")
    check_eq(hours[15], 2 * PERSONS, f"{sdk}: pay events at 15:30 UTC")
    check_eq(sum(hours), 2 * PERSONS, f"{sdk}: pay events on {day_c}")
    carts = project.trends("add_to_cart", day_c, day_c, interval="hour")["values"]
    check_eq(carts[14], 4 * PERSONS, f"{sdk}: add_to_cart at 14:00 UTC")

    # Event and person properties.
    revenue = sum(project.trends("pay", day_c, day_c, math="sum", prop="amount")["values"])
    check_eq(revenue, sum(2 * 10 * ((i % 5) + 1) for i in range(PERSONS)), f"{sdk}: sum of pay.amount")
    price = sum(project.trends("product_view", day_b, day_b, math="sum", prop="price")["values"])
    check_eq(price, PERSONS * sum(5 + k for k in range(5)), f"{sdk}: sum of product_view.price")
    pro = sum(project.trends("product_view", day_b, day_b,
                             filters=[{"property": "person.plan", "value": "pro"}])["values"])
    check_eq(pro, 5 * len([i for i in range(PERSONS) if i % 2 == 0]),
             f"{sdk}: anonymous product views of persons whose plan (set after identify) is pro")
    emails = sum(project.trends("pay", day_c, day_c, filters=[{"property": "person.email", "op": "is_set"}])["values"])
    check_eq(emails, 2 * PERSONS, f"{sdk}: pay events of persons with an email")
    if sdk == "segment":
        utm = sum(project.trends("product_view", day_b, day_b,
                                 filters=[{"property": "utm_source", "value": "kol"}])["values"])
        check_eq(utm, 5 * PERSONS, f"{sdk}: context.campaign.source -> utm_source")
        lib = sum(project.trends("pay", day_c, day_c,
                                 filters=[{"property": "$lib", "value": "@segment/analytics-node"}])["values"])
        check_eq(lib, 2 * PERSONS, f"{sdk}: context.library.name -> $lib")
        names = sum(project.trends("$screen", day_c, day_c, filters=[{"property": "name", "value": "Home"}])["values"])
        check_eq(names, 2 * PERSONS, f"{sdk}: screen name")
    if sdk == "posthog":
        lib = sum(project.trends("pay", day_c, day_c, filters=[{"property": "$lib", "value": "posthog-node"}])["values"])
        check_eq(lib, 2 * PERSONS, f"{sdk}: $lib")
    if sdk == "sensors":
        lib = sum(project.trends("pay", day_c, day_c, filters=[{"property": "$lib", "value": "Node"}])["values"])
        check_eq(lib, 2 * PERSONS, f"{sdk}: lib.$lib")
        first = sum(project.trends("pay", day_c, day_c,
                                   filters=[{"property": "person.first_channel", "value": "kol"}])["values"])
        check_eq(first, 2 * PERSONS, f"{sdk}: profile_set_once")

    # The retry: the first batch twice more, all duplicates; nothing rejected.
    protocol = {"segment": "segment", "posthog": "posthog", "sensors": "sensors"}[sdk]
    check_eq(metric(protocol_port, "northstar_events_duplicate_total", protocol), 2 * summary["replayed"],
             f"{sdk}: duplicates counted for the replayed batch")
    check_eq(metric(protocol_port, "northstar_events_accepted_total", protocol), total, f"{sdk}: accepted events")
    check(summary["replayed"] > 0, f"{sdk}: nothing replayed")


def wire_responses(port, write_key, secret_key):
    """Each protocol's own response format, status codes and the URL variants, over HTTP."""
    import base64
    import urllib.parse
    basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    js = {"Content-Type": "application/json"}

    msg = json.dumps({"type": "track", "event": "wire", "userId": "w1", "messageId": "wire-1"})
    for path in ("/v1/track", "/v1/track/"):
        r = request(port, "POST", path, msg, {**js, "Authorization": basic})
        check_eq((r.status, r.body), (200, b'{"success":true}'), f"Segment POST {path}")
    r = request(port, "POST", "/v1/track", msg, {**js, "Authorization": "Basic " + base64.b64encode(b"nsw_0000:").decode()})
    check_eq((r.status, r.json()), (401, {"success": False, "code": "unauthenticated", "message": "unknown write key"}),
             "Segment with an unknown write key")
    r = request(port, "POST", "/v1/track", msg, js)
    check_eq(r.status, 401, "Segment without a key")
    check(r.json()["message"].startswith("missing write key: send it as the HTTP Basic user name"), f"{r}")
    r = request(port, "POST", "/v1/batch", '{"batch": [', {**js, "Authorization": basic})
    check_eq((r.status, r.json()["success"], r.json()["code"]), (400, False, "invalid_argument"), "Segment malformed JSON")
    r = request(port, "POST", "/v1/batch", '{"batch": [{"type": "track", "userId": "w1"}]}', {**js, "Authorization": basic})
    check_eq(r.status, 400, "Segment batch whose every message is invalid")
    check_eq(r.json()["errors"][0]["field"], "batch[0].event", "Segment error field")
    r = request(port, "POST", "/v1/track", msg, {"Content-Type": "text/csv", "Authorization": basic})
    check_eq(r.status, 415, "Segment text/csv")
    r = request(port, "GET", "/v1/track")
    check_eq(r.status, 404, "Segment GET")

    ev = {"event": "wire_ph", "distinct_id": "w2", "api_key": write_key}
    b64 = base64.b64encode(json.dumps(ev).encode()).decode()
    r = request(port, "GET", "/e/?data=" + urllib.parse.quote(b64))
    check_eq((r.status, r.body), (200, b'{"status":1}'), "PostHog GET /e/?data=base64")
    r = request(port, "POST", "/i/v0/e/", "data=" + urllib.parse.quote(b64), {"Content-Type": "application/x-www-form-urlencoded"})
    check_eq((r.status, r.body), (200, b'{"status":1}'), "PostHog form data=base64")
    r = request(port, "POST", "/capture/", json.dumps({**ev, "api_key": "nsw_0000"}), js)
    check_eq((r.status, r.json()["type"], r.json()["code"]), (401, "authentication_error", "invalid_api_key"),
             "PostHog with an unknown key")
    r = request(port, "POST", "/e/?compression=lz64", "data=abc", {"Content-Type": "application/x-www-form-urlencoded"})
    check_eq((r.status, r.json()["type"], r.json()["attr"]), (400, "validation_error", "compression"), "PostHog lz64")
    r = request(port, "POST", "/engage/", json.dumps({"$set": {"city": "Hangzhou"}, "$token": write_key, "$distinct_id": "w2"}), js)
    check_eq(r.status, 200, "PostHog /engage")

    rec = base64.b64encode(json.dumps({"type": "track", "event": "wire_sa", "distinct_id": "w3"}).encode()).decode()
    r = request(port, "GET", f"/sa.gif?token={write_key}&data=" + urllib.parse.quote(rec))
    check_eq((r.status, r.body), (200, b""), "Sensors GET /sa.gif?data=")
    r = request(port, "POST", "/sa?project=nosuch", "data=" + urllib.parse.quote(rec), {"Content-Type": "application/x-www-form-urlencoded"})
    check_eq(r.status, 401, "Sensors with an unmapped project and no token")
    check(r.json()["error"]["message"].startswith("Sensors project 'nosuch' is not mapped"), f"{r}")

    r = request(port, "OPTIONS", "/batch/", None, {"Origin": "https://app.example",
                                                        "Access-Control-Request-Headers": "content-type"})
    check_eq((r.status, r.headers.get("access-control-allow-origin")), (204, "https://app.example"), "CORS preflight")
    r = request(port, "POST", "/v1/track", msg, {**js, "Authorization": basic, "Origin": "https://app.example"})
    check_eq((r.status, r.headers.get("access-control-allow-origin")), (200, "https://app.example"),
             "CORS header on a response; the retried messageId is a duplicate")
    project = Project(port, "wire", write_key, secret_key)
    check_eq(project.info()["stats"]["events"], 5, "events stored by the wire checks")


def create_project(binary, data_dir, name):
    p = subprocess.run([binary, "admin", "--data", data_dir, "create-project", name, "--tz", "UTC", "--format", "json"],
                       capture_output=True, timeout=60)
    check(p.returncode == 0, f"create-project {name}: {p.stderr.decode(errors='replace')}")
    out = json.loads(p.stdout)
    return out["write_key"], out["secret_key"]


def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    t0 = time.time()
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="ns-sdk-")
    server = None
    try:
        ensure_node_modules()
        data = os.path.join(tmp, "data")
        keys = {sdk: create_project(binary, data, f"sdk-{sdk}") for sdk in ("segment", "posthog", "sensors")}
        wire_keys = create_project(binary, data, "wire")
        # Sensors' SDK posts to /sa?project=default&token=...: map the name as well (the token wins).
        server = Server(binary, data, os.path.join(tmp, "server.log"),
                        ["--sensors-project", "default=sdk-sensors"]).start()
        dates = days()
        for sdk in ("segment", "posthog", "sensors"):
            project = Project(server.port, f"sdk-{sdk}", *keys[sdk])
            try:
                summary = run_client(sdk, project, dates)
                verify(sdk, project, dates, summary, server.port)
                print(f"PASS {sdk}")
                passed += 1
            except TestFailure as e:
                print(f"FAIL {sdk}: {e}")
                failed += 1
        try:  # after the SDKs: it moves the per-protocol counters they check
            wire_responses(server.port, *wire_keys)
            print("PASS wire_responses")
            passed += 1
        except TestFailure as e:
            print(f"FAIL wire_responses: {e}")
            failed += 1
    except TestFailure as e:
        print(f"FAIL setup: {e}")
        failed += 1
    finally:
        if server is not None:
            if failed:
                print(server.log_tail())
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total time {time.time() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
