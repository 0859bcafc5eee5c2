#!/usr/bin/env python3
"""Erasure over HTTP (docs/people.md, "Erasure"): DELETE /api/v1/persons/{id} is admin only
(403 for a viewer), 404 for an unknown id; after the 200 the person is gone from lookups,
lists, CSV, queries and cohorts, the audit log has who and when without the erased ids; a
kill -9 right after the 200 loses nothing (the tombstone was fsynced); a later event of the
id starts a new person; `northstar compact` then `northstar check` finds no row of it, and
its ids and properties are gone from the identity log's files.

Usage: erasure_test.py /path/to/northstar. Standard library only.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, binary_from_argv, check, check_eq, run_check, run_one  # noqa: E402
from opsclient import create_project  # noqa: E402

S = {}


def ev(name, did, ts, props=None):
    e = {"event": name, "distinct_id": did, "timestamp": ts}
    if props:
        e["properties"] = props
    return e


def clients():
    srv = S["server"]
    S["sec"] = Client(srv.port, "secret", key=S["keys"]["secret_key"])
    S["writer"] = Client(srv.port, "writer", key=S["keys"]["write_key"])
    if "viewer_key" in S:
        S["viewer"] = Client(srv.port, "viewer", key=S["viewer_key"])


def restart(kill):
    if kill:
        S["server"].sigkill()
    else:
        S["server"].stop()
    S["server"] = Server(S["binary"], S["data"], os.path.join(S["tmp"], "server.log"))
    S["server"].start()
    clients()


def send(events):
    r = S["writer"].req("POST", "/api/v1/events", events)
    check(r.status == 200, f"ingest: {r}")


def total(event):
    q = {"kind": "trends", "date_from": "2026-11-01", "date_to": "2026-12-31", "interval": "month",
         "series": [{"event": event}]}
    r = S["sec"].ok("POST", "/api/v1/query", q)
    return sum(sum(s["values"]) for s in r["series"])


def setup(binary, tmp):
    S["binary"], S["tmp"] = binary, tmp
    S["data"] = os.path.join(tmp, "data")
    os.makedirs(S["data"])
    S["keys"] = create_project(binary, S["data"], "shop", tz="Asia/Shanghai")
    S["server"] = Server(binary, S["data"], os.path.join(tmp, "server.log"))
    S["server"].start()
    clients()
    S["viewer_key"] = S["sec"].ok("POST", "/api/v1/api-keys", {"name": "reader", "role": "viewer"}, 201)["key"]
    clients()
    send([
        ev("page_view", "dev-a", "2026-11-01T09:00:00+08:00"),
        ev("$identify", "alice", "2026-11-01T09:05:00+08:00",
           {"$anon_distinct_id": "dev-a", "$set": {"email": "alice@example.com", "phone": "13812345678"}}),
        ev("pay", "alice", "2026-11-01T09:20:00+08:00", {"amount": 100}),
        ev("pay", "alice", "2026-11-02T09:20:00+08:00", {"amount": 40}),
        ev("page_view", "bob", "2026-11-01T10:00:00+08:00"),
        ev("pay", "bob", "2026-11-03T10:00:00+08:00", {"amount": 30}),
    ])
    sec = S["sec"]
    S["static"] = sec.ok("POST", "/api/v1/cohorts", {"name": "vip", "kind": "static"}, 201)["id"]
    sec.ok("POST", f"/api/v1/cohorts/{S['static']}/members", ["alice", "bob"])
    S["payers"] = sec.ok("POST", "/api/v1/cohorts", {
        "name": "payers", "kind": "behavioral",
        "definition": {"op": "and", "conditions": [{"type": "performed", "event": "pay"}]}}, 201)["id"]
    check_eq(sec.ok("GET", f"/api/v1/cohorts/{S['static']}")["size"], 2, "static cohort before")
    check_eq(sec.ok("GET", f"/api/v1/cohorts/{S['payers']}")["size"], 2, "payers before")
    restart(kill=False)  # a clean stop flushes: the rows are in segment files now


def test_refusals():
    S["viewer"].err("DELETE", "/api/v1/persons/alice", expect=403)
    S["sec"].err("DELETE", "/api/v1/persons/nobody", expect=404)
    S["sec"].ok("GET", "/api/v1/persons/alice")  # still there


def test_erase_then_kill_9():
    send([ev("page_view", "alice", "2026-11-05T08:00:00+08:00")])  # one more, in the WAL only
    r = S["sec"].ok("DELETE", "/api/v1/persons/dev-a")  # by the anonymous id of the person
    check_eq((r["erased"], r["distinct_ids"], r["events"]), (True, 2, 5), "erasure answer")
    check(len(r["tombstone"]) == 16, f"tombstone: {r}")
    S["tombstone"] = r["tombstone"]
    restart(kill=True)  # kill -9 right after the 200
    sec = S["sec"]
    for did in ("alice", "dev-a"):
        sec.err("GET", f"/api/v1/persons/{did}", expect=404)
        sec.err("GET", f"/api/v1/persons/{did}/events", expect=404)
    sec.err("DELETE", "/api/v1/persons/alice", expect=404)
    listed = sec.ok("GET", "/api/v1/persons")
    check_eq([p["distinct_id"] for p in listed["persons"]], ["bob"], "list")
    csv_text = sec.req("GET", "/api/v1/persons.csv").body.decode()
    check("alice" not in csv_text and "13812345678" not in csv_text, f"CSV: {csv_text}")
    check_eq(total("pay"), 1, "queries: bob's payment only")
    check_eq(total("page_view"), 1, "queries: bob's page view only")
    check_eq(sec.ok("GET", f"/api/v1/cohorts/{S['static']}")["size"], 1, "static cohort after")
    check_eq(sec.ok("GET", f"/api/v1/cohorts/{S['payers']}")["size"], 1, "payers after")
    export = sec.req("GET", f"/api/v1/cohorts/{S['static']}/export.csv").body.decode()
    check("alice" not in export, f"cohort export: {export}")


def test_audit_without_personal_data():
    log = S["sec"].ok("GET", "/api/v1/audit-log")
    rows = [x for x in log if x["action"] == "erase"]
    check_eq(len(rows), 1, "one erase row")
    text = json.dumps(rows[0])
    check(S["tombstone"] in text and "alice" not in text and "dev-a" not in text and "example.com" not in text,
          f"audit row: {text}")
    check(rows[0]["entity"] == "person" and rows[0]["actor"] and rows[0]["at"] > 0, f"who and when: {text}")


def test_new_events_start_a_new_person():
    send([ev("page_view", "alice", "2026-12-01T08:00:00+08:00")])
    p = S["sec"].ok("GET", "/api/v1/persons/alice")
    check_eq(p["distinct_ids"], ["alice"], "a new person: dev-a is not joined to it")
    check_eq(p["event_count"], 1, "only the new event")
    check_eq(p["properties"], {}, "no property of the erased person")
    S["sec"].err("GET", "/api/v1/persons/dev-a", expect=404)


def identity_log_bytes():
    """Every byte of the project's identity log files."""
    out = b""
    for root, _, files in os.walk(S["data"]):
        if os.path.basename(root) == "identity":
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    out += fh.read()
    return out


def test_compact_then_check():
    S["server"].stop()
    # Until compaction the identity log still holds the erased ids and properties, and
    # `northstar check` says so.
    before = identity_log_bytes()
    check(b"dev-a" in before and b"alice@example.com" in before, "the identity log before compaction")
    p = subprocess.run([S["binary"], "check", "--data", S["data"]], capture_output=True, timeout=120)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode != 0 and "erased distinct ids still have their id string" in out, f"check before: {out}")
    p = subprocess.run([S["binary"], "compact", "--data", S["data"]], capture_output=True, timeout=120)
    check(p.returncode == 0, f"compact: {(p.stdout + p.stderr).decode(errors='replace')}")
    run_check(S["binary"], S["data"], "after compaction")
    log = identity_log_bytes()
    for gone in (b"dev-a", b"alice@example.com", b"13812345678"):
        check(gone not in log, f"{gone!r} is still in the identity log after compaction")
    check(b"bob" in log and b"alice" in log, "bob and the new alice stay in the identity log")
    S["server"] = Server(S["binary"], S["data"], os.path.join(S["tmp"], "server.log"))
    S["server"].start()
    clients()
    check_eq(total("page_view"), 2, "bob's page view and the new alice's")
    S["sec"].err("GET", "/api/v1/persons/dev-a", expect=404)


def main():
    binary = binary_from_argv()
    if not binary:
        return 2
    tmp = tempfile.mkdtemp(prefix="ns-erasure-")
    ok = True
    try:
        setup(binary, tmp)
        for t in (test_refusals, test_erase_then_kill_9, test_audit_without_personal_data,
                  test_new_events_start_a_new_person, test_compact_then_check):
            ok &= run_one(t)
    finally:
        if "server" in S and S["server"].alive():
            S["server"].stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
