#!/usr/bin/env python3
"""End-to-end test of the Northstar HTTP API against a real server.

Usage: http_api_test.py /path/to/northstar

Starts `northstar serve` on 127.0.0.1 (port 0) with a fresh temporary data directory and
exercises ingestion (JSON array, {"events":...}, NDJSON, gzip), per-event validation errors,
HTTP status codes (400/401/403/413/415), uuid de-duplication, identity merging, time-zone
bucketing of trends, /metrics, /api/v1/project and a graceful restart on the same directory.

Standard library only. Prints one PASS/FAIL line per test and a final "N passed, M failed";
exits non-zero if any test failed. Checks that currently fail because of a product bug are
marked with "PRODUCT BUG" in this file.
"""

import datetime as dt
import gzip
import json
import os
import queue
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

PROJECT = "apitest"
TZ_OFFSET = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai: UTC+8, no DST
MAX_BODY = 20 << 20


from nsclient import request  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq, run_check, run_one  # noqa: E402


class Api:
    def __init__(self):
        self.server = None
        self.write_key = None
        self.secret_key = None
        self.accepted_total = 0  # sum of "accepted" over every ingest response of this project

    def req(self, method, path, body=None, key=None, ctype=None, headers=None, timeout=60):
        return request(self.server.port, method, path, body, headers, key=key, ctype=ctype, timeout=timeout)

    def post_events(self, body, key="write", ctype=None, headers=None):
        k = self.write_key if key == "write" else self.secret_key if key == "secret" else key
        r = self.req("POST", "/api/v1/events", body=body, key=k, ctype=ctype, headers=headers)
        if isinstance(r.json(), dict) and isinstance(r.json().get("accepted"), int):
            self.accepted_total += r.json()["accepted"]
        return r

    def query(self, q, expect=200):
        r = self.req("POST", "/api/v1/query", body=q, key=self.secret_key)
        check(r.status == expect, f"query {json.dumps(q)} -> {r}")
        return r.json()

    def trends(self, event, date_from, date_to, math="total", filters=None, interval="day"):
        q = {"kind": "trends", "series": [{"event": event, "math": math}], "date_from": date_from,
             "date_to": date_to, "interval": interval}
        if filters:
            q["filters"] = filters
        out = self.query(q)
        check_eq(out.get("kind"), "trends", "trends response kind")
        check_eq(len(out["series"]), 1, "number of trends series")
        s = out["series"][0]
        check_eq(len(s["dates"]), len(s["values"]), "dates/values length")
        return s

    def project(self):
        r = self.req("GET", "/api/v1/project", key=self.secret_key)
        check(r.status == 200, f"GET /api/v1/project -> {r}")
        return r.json()

    def metrics(self):
        r = self.req("GET", "/metrics")
        check(r.status == 200, f"GET /metrics -> {r}")
        out = {}
        for line in r.body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name, value = line.rsplit(" ", 1)
            # Sum the series of a metric over its labels (protocol, reason).
            key = name.split("{")[0]
            out[key] = out.get(key, 0) + float(value)
        return out


API = Api()
CTX = {}  # binary, tmp root, data dir


def expect_ok(r, accepted, duplicates=0, what="ingest"):
    check(r.status == 200, f"{what}: expected HTTP 200, got {r}")
    check(isinstance(r.json(), dict), f"{what}: response is not a JSON object: {r}")
    check_eq(r.json().get("accepted"), accepted, f"{what}: accepted")
    check_eq(r.json().get("duplicates"), duplicates, f"{what}: duplicates")
    return r.json()


def ev(name, did="u1", ts=None, props=None, uid=None):
    e = {"event": name, "distinct_id": did}
    if ts is not None:
        e["timestamp"] = ts
    if props is not None:
        e["properties"] = props
    if uid is not None:
        e["uuid"] = uid
    return e


def iso_local(y, mo, d, h=12, mi=0, s=0):
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=TZ_OFFSET).isoformat()


def now_ms():
    return int(time.time() * 1000)


def count_on(series, date):
    check(date in series["dates"], f"date {date} not in {series['dates']}")
    return series["values"][series["dates"].index(date)]


def error_by_index(body, index):
    for e in body.get("errors", []):
        if e.get("index") == index:
            return e
    raise TestFailure(f"no error with index {index} in {body.get('errors')}")


# --------------------------------------------------------------------------- tests

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def healthz():
    r = API.req("GET", "/healthz")
    check_eq(r.status, 200, "GET /healthz status")
    check_eq(r.json(), {"status": "ok"}, "GET /healthz body")
    check("application/json" in r.headers.get("content-type", ""), f"content-type {r.headers.get('content-type')}")


@test
def admin_create_project_documented_cli():
    # Regression test: the documented form with --data after the action name. It failed with
    # "The following arguments were not expected: DIR --data" (exit 109) until admin's
    # sub-commands got fallthrough(). Setup uses `admin --data DIR create-project ...`, which
    # works either way.
    d = os.path.join(CTX["tmp"], "cli-data")
    p = subprocess.run([CTX["bin"], "admin", "create-project", "clitest", "--tz", "Asia/Shanghai", "--format", "json",
                        "--data", d], capture_output=True, timeout=60)
    check(p.returncode == 0, "`admin create-project clitest --tz Asia/Shanghai --format json --data DIR` "
          f"exited {p.returncode}: {(p.stdout + p.stderr).decode(errors='replace').strip()}")
    out = json.loads(p.stdout)
    check_eq(sorted(out), ["project", "secret_key", "write_key"], "create-project JSON keys")
    check_eq(out["project"], "clitest", "project name")
    check(out["write_key"].startswith("nsw_") and out["secret_key"].startswith("nss_"), f"key prefixes: {out}")


@test
def ingest_json_array():
    ts_ms = int(dt.datetime(2025, 4, 1, 10, 0, tzinfo=TZ_OFFSET).timestamp() * 1000)
    batch = [ev("ing_array", "u1", iso_local(2025, 4, 1, 9)),
             ev("ing_array", 42, ts_ms, props={"plan": "pro", "n": 3}),
             ev("ing_array", "u3", "2025-04-01T04:00:00Z")]
    body = expect_ok(API.post_events(batch), 3, what="JSON array")
    check_eq(body.get("errors"), [], "errors")
    s = API.trends("ing_array", "2025-03-31", "2025-04-02")
    check_eq(s["dates"], ["2025-03-31", "2025-04-01", "2025-04-02"], "trends dates")
    check_eq(s["values"], [0, 3, 0], "trends values for ing_array")
    check_eq(API.trends("ing_array", "2025-04-01", "2025-04-01", math="dau")["values"], [3], "dau of ing_array")


@test
def ingest_events_object():
    batch = {"events": [ev("ing_obj", "a", iso_local(2025, 4, 2)), ev("ing_obj", "b", iso_local(2025, 4, 2))]}
    body = expect_ok(API.post_events(batch), 2, what='{"events":[...]}')
    check_eq(body.get("errors"), [], "errors")
    check_eq(API.trends("ing_obj", "2025-04-02", "2025-04-02")["values"], [2], "trends of ing_obj")


@test
def ingest_ndjson():
    lines = [json.dumps(ev("ing_nd", f"n{i}", iso_local(2025, 4, 3))) for i in range(3)]
    body = (lines[0] + "\n" + lines[1] + "\r\n\n" + lines[2] + "\n").encode()
    r = API.post_events(body, ctype="application/x-ndjson")
    check_eq(expect_ok(r, 3, what="NDJSON").get("errors"), [], "errors")
    check_eq(API.trends("ing_nd", "2025-04-03", "2025-04-03")["values"], [3], "trends of ing_nd")
    # One malformed line rejects only itself.
    body = (lines[0] + "\n{not json\n" + json.dumps(ev("ing_nd", "n9", iso_local(2025, 4, 3))) + "\n").encode()
    r = API.post_events(body, ctype="application/x-ndjson")
    out = expect_ok(r, 2, what="NDJSON with a bad line")  # lines[0] again is not a duplicate: no uuid
    check_eq(len(out["errors"]), 1, f"errors of NDJSON with a bad line: {out}")
    check_eq(out["errors"][0].get("index"), 1, "index of the bad NDJSON line")
    check_eq(out["errors"][0].get("code"), "invalid_json", "code of the bad NDJSON line")
    check_eq(API.trends("ing_nd", "2025-04-03", "2025-04-03")["values"], [5], "trends of ing_nd after 2nd batch")


@test
def ingest_gzip():
    # PRODUCT BUG: a valid gzip body sent with `Content-Encoding: gzip` is rejected with
    # 400 {"error":{"code":"invalid_argument","message":"body is not valid gzip: incorrect header check"}}.
    # cpp-httplib (built with zlib) already inflates the request body, then the handler gunzips it again.
    batch = [ev("ing_gz", f"g{i}", iso_local(2025, 4, 4)) for i in range(4)]
    r = API.post_events(gzip.compress(json.dumps(batch).encode()), ctype="application/json",
                        headers={"Content-Encoding": "gzip"})
    check(r.status == 200, f"PRODUCT BUG: gzip body with Content-Encoding: gzip -> {r}")
    expect_ok(r, 4, what="gzip")
    check_eq(API.trends("ing_gz", "2025-04-04", "2025-04-04")["values"], [4], "trends of ing_gz")


@test
def ingest_gzip_without_content_encoding():
    batch = [ev("ing_gz2", f"g{i}", iso_local(2025, 4, 5)) for i in range(3)]
    r = API.post_events(gzip.compress(json.dumps(batch).encode()), ctype="application/json")
    expect_ok(r, 3, what="gzip body detected by magic bytes")
    check_eq(API.trends("ing_gz2", "2025-04-05", "2025-04-05")["values"], [3], "trends of ing_gz2")


@test
def malformed_json():
    body = b'[{"event":"mal_x","distinct_id":"u"},\n{bad}]'
    r = API.post_events(body, ctype="application/json")
    check_eq(r.status, 400, f"malformed JSON status ({r})")
    err = (r.json() or {}).get("error", {})
    check_eq(err.get("code"), "invalid_argument", "error.code")
    off = body.index(b"bad")
    want = f"malformed JSON at byte {off} (line 2, column 2)"
    check(err.get("message", "").startswith(want), f"error.message should start with {want!r}: {err.get('message')!r}")
    r = API.post_events(b'[{"event":', ctype="application/json")
    check_eq(r.status, 400, f"truncated JSON status ({r})")
    check("malformed JSON at byte" in r.json()["error"]["message"], f"truncated JSON message: {r.json()}")
    check_eq(API.trends("mal_x", "2025-01-01", "2026-12-31", interval="month")["values"], [0] * 24,
             "nothing of a malformed body is stored")


@test
def missing_event_field():
    r = API.post_events([{"distinct_id": "u1", "timestamp": iso_local(2025, 4, 6)}])
    check_eq(r.status, 400, f"status ({r})")
    check_eq(r.json().get("accepted"), 0, "accepted")
    check_eq(len(r.json().get("errors", [])), 1, f"errors {r.json()}")
    e = r.json()["errors"][0]
    check_eq(e.get("index"), 0, "index")
    check_eq(e.get("code"), "invalid_event", "code")
    check_eq(e.get("field"), "events[0].event", "field")
    check("required field is missing" in e.get("message", ""), f"message: {e.get('message')!r}")
    check_eq(r.json().get("error", {}).get("code"), "invalid_argument", "error.code")
    # missing distinct_id, and an empty event name
    r = API.post_events([ev("md_ok", "u", iso_local(2025, 4, 6)), {"event": "md_x"}, ev("", "u")])
    out = expect_ok(r, 1, what="missing distinct_id")
    e = error_by_index(out, 1)
    check_eq((e.get("code"), e.get("field")), ("invalid_event", "events[1].distinct_id"), "missing distinct_id error")
    check("required field is missing" in e.get("message", ""), f"message: {e.get('message')!r}")
    e = error_by_index(out, 2)
    check_eq((e.get("code"), e.get("field")), ("invalid_event", "events[2].event"), "empty event name error")


@test
def distinct_id_wrong_type():
    bad = [{"a": 1}, True, 1.5, ["x"], None]
    r = API.post_events([{"event": "dt_x", "distinct_id": v} for v in bad])
    check_eq(r.status, 400, f"status ({r})")
    check_eq(len(r.json().get("errors", [])), len(bad), f"errors: {r.json()}")
    for i, v in enumerate(bad):
        e = error_by_index(r.json(), i)
        check_eq(e.get("code"), "invalid_event", f"code for distinct_id={v!r}")
        check_eq(e.get("field"), f"events[{i}].distinct_id", f"field for distinct_id={v!r}")
        if v is not None:
            check("expected a string" in e.get("message", ""), f"message for {v!r}: {e.get('message')!r}")
    # An integer distinct_id is accepted and is the same person as its decimal string.
    r = API.post_events([ev("dt_int", 777, iso_local(2025, 4, 7, 9)), ev("dt_int", "777", iso_local(2025, 4, 7, 10))])
    expect_ok(r, 2, what="integer distinct_id")
    check_eq(API.trends("dt_int", "2025-04-07", "2025-04-07", math="dau")["values"], [1], "dau of 777 and '777'")


@test
def timestamp_bounds():
    two_days = now_ms() + 2 * 86400 * 1000
    future_iso = dt.datetime.fromtimestamp(two_days / 1000, dt.timezone.utc).isoformat()
    batch = [
        ev("ts_x", "u", "1999-12-31T23:59:59Z"),
        ev("ts_x", "u", 946684800000 - 1),  # 1999-12-31T23:59:59.999Z as epoch ms
        ev("ts_x", "u", future_iso),
        ev("ts_x", "u", two_days),
        ev("ts_x", "u", "not a timestamp"),
        ev("ts_x", "u", {"y": 2025}),
        ev("ts_ok", "u", "2000-01-01T00:00:00Z"),
        ev("ts_ok", "u", now_ms() + 23 * 3600 * 1000),
        ev("ts_ok", "u", now_ms() - 3600 * 1000),
    ]
    out = expect_ok(API.post_events(batch), 3, what="timestamp bounds")
    check_eq(sorted(e["index"] for e in out["errors"]), [0, 1, 2, 3, 4, 5], f"rejected indices: {out['errors']}")
    for i in range(6):
        e = error_by_index(out, i)
        check_eq(e.get("code"), "invalid_timestamp", f"code of events[{i}] ({batch[i]['timestamp']!r})")
        check_eq(e.get("field"), f"events[{i}].timestamp", f"field of events[{i}]")
    check("before 2000" in error_by_index(out, 0)["message"], f"message: {error_by_index(out, 0)['message']!r}")
    check("future" in error_by_index(out, 2)["message"], f"message: {error_by_index(out, 2)['message']!r}")
    # A batch with only an implausible timestamp: 400.
    r = API.post_events([ev("ts_x", "u", "1990-06-01T00:00:00+08:00")])
    check_eq(r.status, 400, f"single pre-2000 event ({r})")
    check_eq(r.json()["errors"][0]["code"], "invalid_timestamp", "code")
    r = API.post_events([ev("ts_x", "u", future_iso)])
    check_eq(r.status, 400, f"single event 2 days in the future ({r})")
    check_eq(r.json()["errors"][0]["code"], "invalid_timestamp", "code")
    check_eq(API.trends("ts_ok", "1999-12-31", "2000-01-02")["values"], [0, 1, 0],
             "2000-01-01T00:00:00Z is stored on local day 2000-01-01")


@test
def mixed_batch():
    batch = [ev("mix", "m1", iso_local(2025, 4, 8)),
             {"distinct_id": "m2", "timestamp": iso_local(2025, 4, 8)},
             ev("mix", "m3", iso_local(2025, 4, 8)),
             ev("mix", "m4", "1970-01-01T00:00:00Z"),
             ev("mix", "m5", iso_local(2025, 4, 8)),
             ev("mix", "m6", iso_local(2025, 4, 8), props=["not", "an", "object"])]
    out = expect_ok(API.post_events(batch), 3, what="mixed batch")
    got = [(e["index"], e["code"], e["field"]) for e in sorted(out["errors"], key=lambda e: e["index"])]
    check_eq(got, [(1, "invalid_event", "events[1].event"), (3, "invalid_timestamp", "events[3].timestamp"),
                   (5, "invalid_event", "events[5].properties")], "errors of the mixed batch")
    for e in out["errors"]:
        check(e.get("message"), f"error without message: {e}")
    check_eq(API.trends("mix", "2025-04-08", "2025-04-08")["values"], [3], "stored events of the mixed batch")
    check_eq(API.trends("mix", "2025-04-08", "2025-04-08", math="dau")["values"], [3], "persons of the mixed batch")


@test
def all_bad_batch():
    r = API.post_events([{"event": "ab"}, {"distinct_id": "x"}, ev("ab", "u", "1980-01-01T00:00:00Z")])
    check_eq(r.status, 400, f"status ({r})")
    check_eq(r.json().get("accepted"), 0, "accepted")
    check_eq(r.json().get("duplicates"), 0, "duplicates")
    check_eq(sorted(e["index"] for e in r.json()["errors"]), [0, 1, 2], "error indices")
    check_eq(r.json().get("error", {}).get("code"), "invalid_argument", "error.code")
    check("all 3 events were rejected" in r.json()["error"].get("message", ""), f"message: {r.json()['error']}")
    check_eq(sum(API.trends("ab", "2025-01-01", "2026-12-31", interval="month")["values"]), 0, "nothing stored")


@test
def event_too_large():
    big = ev("big", "u", iso_local(2025, 4, 9), props={"blob": "x" * (1 << 20)})
    r = API.post_events([big])
    check_eq(r.status, 413, f"single event over 1 MiB ({r.status} {r.body[:300]!r})")
    check_eq(r.json()["errors"][0].get("code"), "event_too_large", "code")
    check_eq(r.json()["errors"][0].get("index"), 0, "index")
    out = expect_ok(API.post_events([ev("big", "u", iso_local(2025, 4, 9)), big]), 1, what="small + too large")
    check_eq([(e["index"], e["code"]) for e in out["errors"]], [(1, "event_too_large")], "errors")
    check_eq(API.trends("big", "2025-04-09", "2025-04-09")["values"], [1], "stored events named big")


@test
def unsupported_content_type_415():
    r = API.post_events(b"event,distinct_id\nct,u\n", ctype="text/csv")
    check_eq(r.status, 415, f"text/csv ({r})")
    check_eq(r.json().get("error", {}).get("code"), "unsupported_media_type", "error.code")
    r = API.post_events(b"<events/>", ctype="application/xml")
    check_eq(r.status, 415, f"application/xml ({r})")


@test
def unauthorized_401_without_key():
    r = API.req("POST", "/api/v1/events", body=[ev("auth_x", "u")])
    check_eq(r.status, 401, f"no Authorization header ({r})")
    check_eq(r.json().get("error", {}).get("code"), "unauthenticated", "error.code")
    r = API.req("POST", "/api/v1/events", body=[ev("auth_x", "u")], headers={"Authorization": "Basic " + API.write_key})
    check_eq(r.status, 401, f"Authorization without Bearer ({r})")
    r = API.req("POST", "/api/v1/query", body={"kind": "trends"})
    check_eq(r.status, 401, f"query without key ({r})")
    r = API.req("GET", "/api/v1/project")
    check_eq(r.status, 401, f"project without key ({r})")


@test
def unauthorized_401_bad_key():
    for key in ["nsw_0000000000000000000000000000dead", "nss_00000000000000000000000000000000000dead", "hello",
                API.write_key + "x"]:
        r = API.req("POST", "/api/v1/events", body=[ev("auth_x", "u")], key=key)
        check_eq(r.status, 401, f"events with key {key!r} ({r})")
    r = API.req("POST", "/api/v1/query", body={"kind": "trends"}, key="nss_0000000000000000000000000000000000000bad")
    check_eq(r.status, 401, f"query with unknown secret key ({r})")
    check_eq(sum(API.trends("auth_x", "2025-01-01", "2026-12-31", interval="month")["values"]), 0, "nothing stored")


@test
def forbidden_403_write_key_on_query():
    q = {"kind": "trends", "series": [{"event": "$any"}], "date_from": "2025-01-01", "date_to": "2025-01-02"}
    r = API.req("POST", "/api/v1/query", body=q, key=API.write_key)
    check_eq(r.status, 403, f"write key on /api/v1/query ({r})")
    check_eq(r.json().get("error", {}).get("code"), "permission_denied", "error.code")
    r = API.req("GET", "/api/v1/project", key=API.write_key)
    check_eq(r.status, 403, f"write key on /api/v1/project ({r})")
    # The secret key may send events.
    expect_ok(API.post_events([ev("sk_ingest", "u", iso_local(2025, 4, 10))], key="secret"), 1, what="secret key ingest")


@test
def properties_for_pickers():
    evs = [ev("picker_pay", f"pk{i}", iso_local(2025, 9, 17), props={"amount": 10 if i < 3 else 20, "channel": "ads"})
           for i in range(5)]
    expect_ok(API.post_events(evs), 5, what="picker events")
    r = API.req("GET", "/api/v1/properties?event=picker_pay&top=1", key=API.secret_key)
    check_eq(r.status, 200, f"properties ({r})")
    props = {p["name"]: p for p in r.json()["properties"]}
    check_eq(props["amount"]["type"], "number", "amount type")
    check_eq(props["amount"]["rows"], 5, "amount rows")
    check_eq(props["amount"]["top_values"], [{"value": 10.0, "count": 3}], "amount top value")
    check_eq(props["channel"]["top_values"], [{"value": "ads", "count": 5}], "channel top value")
    r = API.req("GET", "/api/v1/properties?event=never_sent", key=API.secret_key)
    check_eq(r.status, 404, f"unknown event ({r})")
    r = API.req("GET", "/api/v1/properties?top=99", key=API.secret_key)
    check_eq(r.status, 400, f"top out of range ({r})")
    check_eq(API.req("GET", "/api/v1/properties", key=API.write_key).status, 403, "write key")


@test
def body_too_large_413():
    one = json.dumps(ev("huge", "u", iso_local(2025, 4, 11), props={"p": "y" * 1000})).encode()
    n = MAX_BODY // len(one) + 50
    body = b"[" + b",".join([one] * n) + b"]"
    check(len(body) > MAX_BODY, "test body is not over 20 MiB")
    r = API.post_events(body, ctype="application/json")
    check_eq(r.status, 413, f"{len(body)} byte body ({r})")
    check_eq(r.json().get("error", {}).get("code"), "resource_exhausted", "error.code")
    # Just over the limit (within the HTTP layer's slack): the ingest layer's own check.
    r = API.post_events(body[:MAX_BODY + 100], ctype="application/json")
    check_eq(r.status, 413, f"{MAX_BODY + 100} byte body ({r})")
    check_eq(API.trends("huge", "2025-04-11", "2025-04-11")["values"], [0], "nothing stored")


@test
def gzip_bomb_413():
    # PRODUCT BUG (same root cause as ingest_gzip): with Content-Encoding: gzip the server answers
    # 400 "body is not valid gzip: incorrect header check" instead of 413; the body was already
    # inflated by the HTTP library without the product's 20 MiB limit.
    bomb = gzip.compress(b"[" + b" " * (MAX_BODY + (1 << 20)) + b"]", compresslevel=9)
    r = API.post_events(bomb, ctype="application/json", headers={"Content-Encoding": "gzip"})
    check(r.status == 413, f"PRODUCT BUG: gzip body inflating to > 20 MiB should be 413, got {r}")
    r = API.post_events(bomb, ctype="application/json")  # detected by magic bytes
    check_eq(r.status, 413, f"gzip bomb without Content-Encoding ({r})")


@test
def dedup_by_uuid():
    batch = [ev("dedup", f"d{i}", iso_local(2025, 4, 12, 8, i), uid=str(uuid.uuid4())) for i in range(20)]
    CTX["dedup_batch"] = batch
    out = expect_ok(API.post_events(batch), 20, 0, what="first send")
    check_eq(out["errors"], [], "errors")
    out = expect_ok(API.post_events(batch), 0, 20, what="second send of the same batch")
    check_eq(out["errors"], [], "errors")
    # Partly new batch, and a uuid repeated inside one batch.
    u = str(uuid.uuid4())
    more = batch[:5] + [ev("dedup", "d99", iso_local(2025, 4, 12, 9), uid=u), ev("dedup", "d99", iso_local(2025, 4, 12, 9), uid=u)]
    expect_ok(API.post_events(more), 1, 6, what="5 old + 1 new uuid twice")
    # Same uuid, different content: still a duplicate (the uuid identifies the event).
    changed = dict(batch[0], event="dedup", distinct_id="someone-else")
    expect_ok(API.post_events([changed]), 0, 1, what="known uuid with other content")
    check_eq(API.trends("dedup", "2025-04-12", "2025-04-12")["values"], [21], "stored dedup events")


@test
def concurrent_duplicate_batches():
    # The same uuids sent by 8 clients at once: stored once, every other copy is a duplicate.
    batch = [ev("conc", f"c{i}", iso_local(2025, 4, 15, 8, i), uid=str(uuid.uuid4())) for i in range(50)]
    results, errors = [], []
    start = threading.Barrier(8)

    def send():
        try:
            start.wait(timeout=30)
            results.append(API.post_events(batch))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    check(not errors, f"concurrent requests failed: {errors}")
    check(all(r.status == 200 for r in results), f"statuses: {[r.status for r in results]}")
    check_eq(sum(r.json()["accepted"] for r in results), 50, "accepted over 8 concurrent copies")
    check_eq(sum(r.json()["duplicates"] for r in results), 350, "duplicates over 8 concurrent copies")
    check_eq(API.trends("conc", "2025-04-15", "2025-04-15")["values"], [50], "stored conc events")


@test
def identity_merge():
    day = (2025, 5, 1)
    # Same day: anon + user before the merge are two persons; the identify event merges them.
    expect_ok(API.post_events([ev("im_view", "anon-1", iso_local(*day, 10)), ev("im_view", "user-1", iso_local(*day, 11)),
                               ev("im_view", "other-1", iso_local(*day, 11))]), 3, what="im_view batch")
    check_eq(API.trends("im_view", "2025-05-01", "2025-05-01", math="dau")["values"], [3], "dau before merge")
    expect_ok(API.post_events([ev("im_view", "user-1", iso_local(*day, 12), props={"$anon_distinct_id": "anon-1"})]), 1,
              what="identify")
    check_eq(API.trends("im_view", "2025-05-01", "2025-05-01", math="dau")["values"], [2],
             "dau after anon-1 merged into user-1 (anon's earlier event counts for the same person)")
    check_eq(API.trends("im_view", "2025-05-01", "2025-05-01")["values"], [4], "total after merge")
    # Past events across days: a funnel from the anonymous signup to the identified purchase.
    expect_ok(API.post_events([ev("im_signup", "anon-2", iso_local(2025, 5, 2, 10)),
                               ev("im_pay", "user-2", iso_local(2025, 5, 2, 20))]), 2, what="signup/pay batch")
    fq = {"kind": "funnel", "steps": [{"event": "im_signup"}, {"event": "im_pay"}], "window_seconds": 86400,
          "date_from": "2025-05-02", "date_to": "2025-05-03"}
    steps = API.query(fq)["steps"]
    check_eq([s["count"] for s in steps], [1, 0], "funnel before merge")
    expect_ok(API.post_events([ev("im_login", "user-2", iso_local(2025, 5, 3, 9), props={"$anon_distinct_id": "anon-2"})]),
              1, what="identify 2")
    steps = API.query(fq)["steps"]
    check_eq([s["count"] for s in steps], [1, 1], "funnel after merge (anon's past signup belongs to user-2)")
    check_eq(API.trends("$any", "2025-05-02", "2025-05-03", math="dau", interval="month")["values"], [1],
             "dau of anon-2 + user-2 over both days")


@test
def trends_local_days():
    # Asia/Shanghai is UTC+8: local day boundaries are at 16:00 UTC.
    shanghai_mar3_midnight_ms = int(dt.datetime(2025, 3, 2, 16, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)
    batch = [
        ev("tzday", "t1", "2025-03-01T23:30:00+08:00"),   # local 2025-03-01 23:30
        ev("tzday", "t2", "2025-03-01T16:30:00Z"),        # local 2025-03-02 00:30
        ev("tzday", "t3", "2025-03-01T15:59:59Z"),        # local 2025-03-01 23:59:59
        ev("tzday", "t4", "2025-02-28T16:00:00Z"),        # local 2025-03-01 00:00:00
        ev("tzday", "t5", shanghai_mar3_midnight_ms),     # local 2025-03-03 00:00:00
        ev("tzday", "t6", "2025-03-01T00:30:00-05:00"),   # 05:30Z = local 2025-03-01 13:30
    ]
    expect_ok(API.post_events(batch), len(batch), what="time-zone batch")
    s = API.trends("tzday", "2025-02-28", "2025-03-04")
    check_eq(s["dates"], ["2025-02-28", "2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04"], "dates")
    check_eq(s["values"], [0, 4, 1, 1, 0], "events per local day")
    check_eq(API.trends("$any", "2025-02-28", "2025-03-04")["values"], [0, 4, 1, 1, 0], "$any per local day")
    check_eq(API.trends("tzday", "2025-03-01", "2025-03-01", math="dau")["values"], [4], "dau on 2025-03-01")
    check_eq(API.trends("tzday", "2025-03-01", "2025-03-31", interval="month")["values"], [6], "month total")


@test
def funnel_and_filters():
    batch = [ev("fn_a", "f1", iso_local(2025, 6, 1, 10), props={"k": "x"}),
             ev("fn_b", "f1", iso_local(2025, 6, 1, 11)),
             ev("fn_a", "f2", iso_local(2025, 6, 1, 10), props={"k": "y"}),
             ev("fn_b", "f2", iso_local(2025, 6, 3, 11)),   # outside the 1-day window
             ev("fn_a", "f3", iso_local(2025, 6, 1, 10), props={"k": "x"})]
    expect_ok(API.post_events(batch), 5, what="funnel batch")
    q = {"kind": "funnel", "steps": [{"event": "fn_a"}, {"event": "fn_b"}], "window_seconds": 86400,
         "date_from": "2025-06-01", "date_to": "2025-06-05"}
    check_eq([s["count"] for s in API.query(q)["steps"]], [3, 1], "funnel counts")
    p = API.query({"kind": "paths", "start_event": "fn_a", "include_events": ["fn_a", "fn_b"],
                   "window_seconds": 86400, "date_from": "2025-06-01", "date_to": "2025-06-05"})
    check_eq([(e["source"], e["target"], e["persons"]) for e in p["edges"]], [("1_fn_a", "2_fn_b", 1)],
             "paths: f1 goes on to fn_b within the window (f2's fn_b is a day and an hour later)")
    check_eq((p["paths"], p["persons"]), (3, 3), "paths and persons")
    bad = API.query({"kind": "paths", "step_limit": 1, "date_from": "2025-06-01", "date_to": "2025-06-05"},
                    expect=400)
    check_eq(bad["error"]["field"], "step_limit", "paths validation names the field")
    s = API.trends("fn_a", "2025-06-01", "2025-06-01", filters=[{"property": "k", "op": "eq", "value": "x"}])
    check_eq(s["values"], [2], "trends with a property filter")


@test
def metrics_counts():
    before = API.metrics()
    for name in ["northstar_events_accepted_total", "northstar_events_duplicate_total",
                 "northstar_events_rejected_total", "northstar_queries_total", "northstar_query_errors_total"]:
        check(name in before, f"/metrics lacks {name}")
    u = str(uuid.uuid4())
    batch = [ev("met", "m", iso_local(2025, 4, 13), uid=u), ev("met", "m", iso_local(2025, 4, 13)),
             ev("met", "m", iso_local(2025, 4, 13), uid=u), {"event": "met"}]
    expect_ok(API.post_events(batch), 2, 1, what="metrics batch")
    API.trends("met", "2025-04-13", "2025-04-13")
    API.query({"kind": "trends", "series": [{"event": "met", "math": "bogus"}], "date_from": "2025-04-13",
               "date_to": "2025-04-13"}, expect=400)
    after = API.metrics()
    delta = {k: after[k] - before[k] for k in before}
    check_eq(delta["northstar_events_accepted_total"], 2, "accepted delta")
    check_eq(delta["northstar_events_duplicate_total"], 1, "duplicates delta")
    check_eq(delta["northstar_events_rejected_total"], 1, "rejected delta")
    check_eq(delta["northstar_queries_total"], 2, "queries delta")
    check_eq(delta["northstar_query_errors_total"], 1, "query errors delta")
    check_eq(after["northstar_events_accepted_total"], API.accepted_total,
             "northstar_events_accepted_total == sum of accepted over all responses since start")
    # The decoded-column cache (--memory-budget): the default budget is set, counters count.
    for name in ["northstar_column_cache_budget_bytes", "northstar_column_cache_bytes",
                 "northstar_column_cache_columns", "northstar_column_cache_hits_total",
                 "northstar_column_cache_misses_total", "northstar_column_cache_evictions_total"]:
        check(name in after, f"/metrics lacks {name}")
    check(after["northstar_column_cache_budget_bytes"] >= 256 << 20, "default memory budget is at least 256 MiB")


@test
def project_stats():
    p = API.project()
    check_eq(p.get("name"), PROJECT, "project name")
    check_eq(p.get("timezone"), "Asia/Shanghai", "project time zone")
    check_eq(p["stats"]["events"], API.accepted_total, "stats.events == sum of accepted over all responses")
    for name in ["ing_array", "tzday", "dedup"]:
        check(name in p.get("event_names", []), f"event_names lacks {name}: {p.get('event_names')}")


@test
def restart_keeps_events_and_dedup():
    batch = [ev("rs", f"r{i}", iso_local(2025, 4, 14, 10, i), uid=str(uuid.uuid4())) for i in range(30)]
    expect_ok(API.post_events(batch), 30, what="pre-restart batch")
    queries = [("$any", "2000-01-01", "2009-12-31", "month"), ("$any", "2024-12-01", "2026-12-31", "day"),
               ("tzday", "2025-02-28", "2025-03-04", "day"), ("dedup", "2025-04-12", "2025-04-12", "day")]
    before = [API.trends(e, f, t, interval=i)["values"] for e, f, t, i in queries]
    dau_before = API.trends("im_view", "2025-05-01", "2025-05-01", math="dau")["values"]
    expected = API.accepted_total
    check_eq(API.project()["stats"]["events"], expected, "events before restart")
    rc = API.server.stop()
    check_eq(rc, 0, "exit code after SIGTERM")
    run_check(CTX["bin"], CTX["data"], "after shutdown")
    API.server = Server(CTX["bin"], CTX["data"], CTX["log"]).start()
    check_eq(API.project()["stats"]["events"], expected, "events after restart")
    after = [API.trends(e, f, t, interval=i)["values"] for e, f, t, i in queries]
    for q, b, a in zip(queries, before, after):
        check_eq(a, b, f"trends {q} after restart")
    check_eq(API.trends("im_view", "2025-05-01", "2025-05-01", math="dau")["values"], dau_before, "merged dau after restart")
    expect_ok(API.post_events(batch), 0, 30, what="pre-restart batch sent again after restart")
    if "dedup_batch" in CTX:
        expect_ok(API.post_events(CTX["dedup_batch"]), 0, 20, what="dedup batch sent again after restart")
    check_eq(API.project()["stats"]["events"], expected, "events after re-sending")
    # New events are still accepted after the restart.
    expect_ok(API.post_events([ev("rs", "r-new", iso_local(2025, 4, 14, 11), uid=str(uuid.uuid4()))]), 1,
              what="new event after restart")
    check_eq(API.trends("rs", "2025-04-14", "2025-04-14")["values"], [31], "rs events after restart")


# --------------------------------------------------------------------------- main


def create_project(binary, data_dir, name):
    p = subprocess.run([binary, "admin", "--data", data_dir, "create-project", name, "--tz", "Asia/Shanghai",
                        "--format", "json"], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise TestFailure(f"create-project failed ({p.returncode}): {(p.stdout + p.stderr).decode(errors='replace')}")
    keys = json.loads(p.stdout)
    if keys.get("project") != name or not keys.get("write_key", "").startswith("nsw_") or \
            not keys.get("secret_key", "").startswith("nss_"):
        raise TestFailure(f"unexpected create-project output: {p.stdout!r}")
    return keys


def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    # Turn SIGTERM/SIGINT (e.g. a CTest timeout) into an exception so the finally block runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated by SIGTERM"))
    tmp = tempfile.mkdtemp(prefix="northstar-http-api-")
    CTX.update(bin=binary, tmp=tmp, data=os.path.join(tmp, "data"), log=os.path.join(tmp, "server.log"))
    passed = failed = 0
    t0 = time.time()
    try:
        keys = create_project(binary, CTX["data"], PROJECT)
        API.write_key, API.secret_key = keys["write_key"], keys["secret_key"]
        API.server = Server(binary, CTX["data"], CTX["log"]).start()
        for fn in TESTS:
            if run_one(fn):
                passed += 1
            else:
                failed += 1
            if not API.server.alive():
                failed += 1
                print(f"FAIL server died during {fn.__name__} (exit code {API.server.proc.returncode})\n"
                      f"{API.server.log_tail()}", flush=True)
                API.server = Server(binary, CTX["data"], CTX["log"]).start()
    except Exception as e:  # noqa: BLE001
        failed += 1
        detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
        print(f"FAIL setup/teardown: {detail}", flush=True)
    finally:
        if API.server is not None:
            try:
                API.server.stop(timeout=30)
            except Exception:  # noqa: BLE001
                API.server.kill()
        if failed:
            print(API.server.log_tail(40) if API.server else "")
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total time {time.time() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
