#!/usr/bin/env python3
"""Journeys against a real server (docs/automation.md).

  JOURNEYS_TEST=api  journeys_test.py BINARY   CRUD, validation errors naming the field, roles, dead letters
                                 and their retry, and the two seed examples as end-to-end tests:
                                 "registered 24 h ago with no order -> first-order coupon webhook,
                                 10% holdout" and "silent 90 days -> recall offer", each on
                                 generated data with a known true lift that the results' interval
                                 must contain.
  JOURNEYS_TEST=kill journeys_test.py BINARY   the kill test: events flowing into an event-triggered journey,
                                 the server killed (SIGKILL) mid-journey several times and
                                 restarted; at the local receiver every send arrives, and exactly
                                 once per idempotency key, none missing, none for the holdout.

The 24 hours are not waited: waits are measured from the trigger event's own time, so the test
sends events stamped 25 hours ago (docs/automation.md, "Time"). Standard library only.
"""

import hashlib
import http.server
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq, run_one  # noqa: E402
from opsclient import create_project, webhook_signature  # noqa: E402

S = {}
HOUR = 3_600_000
DAY = 24 * HOUR


def now_ms():
    return int(time.time() * 1000)


def in_holdout(journey_id, distinct_id, percent):
    """The documented assignment: SHA-256("<journey id>:<distinct id>"), first 8 bytes
    big-endian, modulo 10,000, below percent * 100."""
    h = hashlib.sha256(f"{journey_id}:{distinct_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") % 10_000 < round(percent * 100)


def ev(name, did, ts, props=None, set_props=None):
    e = {"event": name, "distinct_id": did, "timestamp": ts, "uuid": str(uuidlib.uuid4())}
    if props:
        e["properties"] = dict(props)
    if set_props:
        e.setdefault("properties", {})["$set"] = set_props
    return e


def send(client, events):
    for i in range(0, len(events), 500):
        r = client.req("POST", "/api/v1/events", events[i:i + 500])
        check(r.status == 200, f"ingest: {r}")


def wait_until(fn, what, timeout=40):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise TestFailure(f"timed out waiting for {what}")
        time.sleep(0.2)


class KeyedReceiver:
    """The receiver a journey's webhook would have: it records every POST, answers 500 on the
    paths in fail_paths (a receiver that is down), and keys() keeps each message once per
    idempotency key (the dedup the key exists for) with its copies."""

    def __init__(self):
        self.requests, self.fail_paths, self.lock = [], set(), threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender was killed mid-body: nothing was delivered
                    return
                with outer.lock:
                    outer.requests.append({"path": self.path, "body": body,
                                           "headers": {k.lower(): v for k, v in self.headers.items()}})
                    status = 500 if self.path in outer.fail_paths else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the server was killed while waiting for the answer
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def keys(self):
        out = {}
        for r in self.received():
            k = r["headers"].get("idempotency-key")
            body = json.loads(r["body"])
            check_eq(body.get("dedup_key"), k, "the body's dedup_key is the Idempotency-Key header")
            out.setdefault(k, []).append(body)
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def start(tmp, name):
    data = os.path.join(tmp, name)
    os.makedirs(data)
    keys = create_project(binary, data, "shop", tz="Asia/Shanghai")
    srv = Server(binary, data, os.path.join(tmp, name + ".log"), ["--allow-private-webhooks"])
    srv.start()
    return srv, keys


def coupon_journey(url, holdout=10, wait=None, extra=None):
    j = {
        "name": "First-order coupon",
        "owner": "growth@shop",
        "trigger": {"type": "event", "event": "register"},
        "steps": [
            wait or {"type": "wait", "hours": 24},
            {"type": "condition", "event": "pay", "performed": False},
            {"type": "action", "action": "webhook", "url": url, "secret": "s3cret",
             "title": "Coupon for {{distinct_id}}", "text": "Hi from {{person.city}}",
             "payload": {"coupon": "FIRST10", "city": "{{person.city}}"}},
        ],
        "holdout_percent": holdout,
        "goal": {"event": "pay", "within_days": 7},
        "lookback_hours": 48,
    }
    j.update(extra or {})
    return j


# --------------------------------------------------------------------------- api


def test_api_validation_and_roles():
    sec, viewer = S["sec"], S["viewer"]
    rx = S["rx"]
    e = sec.err("POST", "/api/v1/journeys", {"name": "x", "trigger": {"type": "event"}, "steps": []})
    check_eq(e["field"], "trigger.event", "missing trigger event")
    e = sec.err("POST", "/api/v1/journeys", {"name": "x", "trigger": {"type": "event", "event": "register"},
                                             "steps": [{"type": "wait", "hours": 1}]})
    check_eq(e["field"], "steps", "no action step")
    bad = coupon_journey(rx.url())
    bad["steps"][2]["url"] = "ftp://x"
    e = sec.err("POST", "/api/v1/journeys", bad)
    check_eq(e["field"], "steps[2].url", "bad webhook url")
    bad = coupon_journey(rx.url(), extra={"limits": {"quiet_hours": "25:00-08:00"}})
    check_eq(sec.err("POST", "/api/v1/journeys", bad)["field"], "limits.quiet_hours", "bad quiet hours")
    bad = coupon_journey(rx.url(), holdout=95)
    check_eq(sec.err("POST", "/api/v1/journeys", bad)["field"], "holdout_percent", "holdout too large")

    j = sec.ok("POST", "/api/v1/journeys", coupon_journey(rx.url()), 201)
    check_eq(j["status"], "draft", "a new journey is a draft")
    check("secret" not in j["steps"][2] and j["steps"][2]["secret_set"] is True, f"secret hidden: {j['steps'][2]}")
    viewer.err("POST", "/api/v1/journeys", coupon_journey(rx.url()), 403)
    viewer.err("POST", f"/api/v1/journeys/{j['id']}/activate", None, 403)
    seen = viewer.ok("GET", f"/api/v1/journeys/{j['id']}")
    check_eq(seen["name"], "First-order coupon", "viewer reads")
    check("/hook" not in seen["steps"][2]["url"] and "\u2026" in seen["steps"][2]["url"],
          f"a viewer sees the webhook URL masked: {seen['steps'][2]['url']}")
    check_eq(sec.ok("GET", f"/api/v1/journeys/{j['id']}")["steps"][2]["url"], rx.url(), "an editor sees it")
    check(any(x["id"] == j["id"] for x in viewer.ok("GET", "/api/v1/journeys")), "viewer lists")
    # Edit keeps the secret when the client sends none back.
    body = coupon_journey(rx.url())
    del body["steps"][2]["secret"]
    body["name"] = "Renamed"
    u = sec.ok("PUT", f"/api/v1/journeys/{j['id']}", body)
    check(u["steps"][2]["secret_set"] and u["name"] == "Renamed", f"edited: {u}")
    check_eq(sec.ok("DELETE", f"/api/v1/journeys/{j['id']}")["ok"], True, "delete a draft")
    sec.err("GET", f"/api/v1/journeys/{j['id']}", None, 404)


def test_dead_letters_and_retry():
    sec, writer, rx = S["sec"], S["writer"], S["rx"]
    j = sec.ok("POST", "/api/v1/journeys", {
        "name": "Failing hook", "trigger": {"type": "event", "event": "signup_fail"},
        "steps": [{"type": "action", "action": "webhook", "url": rx.url("/fail")}],
        "holdout_percent": 0, "delivery": {"max_attempts": 2, "backoff_seconds": 1}}, 201)
    sec.ok("POST", f"/api/v1/journeys/{j['id']}/activate")
    rx.fail_paths.add("/fail")
    send(writer, [ev("signup_fail", "dl-1", now_ms())])
    dl = wait_until(lambda: (lambda d: d if d["total"] == 1 else None)(
        sec.ok("GET", f"/api/v1/journeys/{j['id']}/dead-letters")), "a dead letter")
    item = dl["items"][0]
    check(item["attempts"] == 2 and item["http_status"] == 500 and item["distinct_id"] == "dl-1", f"dead: {item}")
    check_eq(len(rx.received("/fail")), 2, "two attempts reached the receiver")
    keys = {r["headers"]["idempotency-key"] for r in rx.received("/fail")}
    check_eq(len(keys), 1, "every attempt carries the same key")
    S["viewer"].err("POST", f"/api/v1/journeys/{j['id']}/dead-letters/{item['id']}/retry", None, 403)
    rx.fail_paths.discard("/fail")
    check_eq(sec.ok("POST", f"/api/v1/journeys/{j['id']}/dead-letters/{item['id']}/retry")["retried"], 1, "retry")
    wait_until(lambda: sec.ok("GET", f"/api/v1/journeys/{j['id']}/results")["sent"] == 1, "the retried send")
    check_eq(sec.ok("GET", f"/api/v1/journeys/{j['id']}/dead-letters")["total"], 0, "no dead letters left")
    sec.ok("POST", f"/api/v1/journeys/{j['id']}/pause")


def test_limits_frequency_cap_and_quiet_hours():
    """A second message to a person within the cap's window is skipped (capped); messages
    due inside quiet hours (project time zone) wait for the window's end; a non-message
    action is not held by quiet hours."""
    sec, writer, rx = S["sec"], S["writer"], S["rx"]
    capped = sec.ok("POST", "/api/v1/journeys", {
        "name": "Capped", "trigger": {"type": "event", "event": "cap_signup"}, "holdout_percent": 0,
        "steps": [{"type": "action", "action": "webhook", "url": rx.url("/cap1")},
                  {"type": "action", "action": "webhook", "url": rx.url("/cap2")}],
        "limits": {"frequency_cap": {"max": 1, "hours": 24}}}, 201)
    sec.ok("POST", f"/api/v1/journeys/{capped['id']}/activate")
    # Quiet from an hour ago to two hours ahead, local time in Asia/Shanghai (UTC+8).
    local = time.gmtime(time.time() + 8 * 3600)
    start, end = (local.tm_hour - 1) % 24, (local.tm_hour + 2) % 24
    quiet = sec.ok("POST", "/api/v1/journeys", {
        "name": "Quiet", "trigger": {"type": "event", "event": "quiet_signup"}, "holdout_percent": 0,
        "steps": [{"type": "action", "action": "set_property", "property": "greeted", "value": True},
                  {"type": "action", "action": "webhook", "url": rx.url("/quiet")}],
        "limits": {"quiet_hours": f"{start:02d}:00-{end:02d}:00"}}, 201)
    sec.ok("POST", f"/api/v1/journeys/{quiet['id']}/activate")
    send(writer, [ev("cap_signup", f"cap-{i}", now_ms()) for i in range(20)] +
         [ev("quiet_signup", f"quiet-{i}", now_ms()) for i in range(20)])
    r = wait_until(lambda: (lambda x: x if x["sent"] == 20 else None)(
        sec.ok("GET", f"/api/v1/journeys/{capped['id']}/results")), "the first messages")
    check_eq([r["steps"][0]["sent"], r["steps"][1]["capped"], r["steps"][1]["queued"]], [20, 20, 0],
             "one message per person; the second capped")
    check_eq(len(rx.received("/cap2")), 0, "no capped message reached the receiver")
    q = wait_until(lambda: (lambda x: x if x["steps"][0]["sent"] == 20 else None)(
        sec.ok("GET", f"/api/v1/journeys/{quiet['id']}/results")), "the property set during quiet hours")
    time.sleep(1.5)  # a few engine rounds
    q = sec.ok("GET", f"/api/v1/journeys/{quiet['id']}/results")
    check_eq([q["steps"][1]["pending"], q["steps"][1]["sent"]], [20, 0], "messages wait for the quiet hours' end")
    check_eq(len(rx.received("/quiet")), 0, "nothing sent inside quiet hours")
    p = sec.ok("GET", "/api/v1/persons/quiet-3")
    check(str(p["properties"].get("greeted")).lower() == "true", f"set_property stored: {p['properties']}")
    for j in (capped, quiet):
        sec.ok("POST", f"/api/v1/journeys/{j['id']}/pause")


def test_seed_first_order_coupon():
    """Registered 24 h ago with no order -> first-order coupon webhook, 10% holdout;
    first-order conversion treated vs holdout with lift and CI."""
    sec, writer, rx = S["sec"], S["writer"], S["rx"]
    rng = random.Random(14)
    j = sec.ok("POST", "/api/v1/journeys", coupon_journey(rx.url("/coupon")), 201)
    jid = j["id"]
    sec.ok("POST", f"/api/v1/journeys/{jid}/activate")
    t0 = now_ms() - 25 * HOUR  # they registered 25 hours ago: the 24 h wait is over
    n = 4000
    persons = [f"u{i:05d}" for i in range(n)]
    events, early = [], set()
    for i, p in enumerate(persons):
        events.append(ev("register", p, t0 + i, set_props={"city": rng.choice(["杭州", "上海"])}))
        if rng.random() < 0.1:  # ordered within the first day: no coupon for them
            early.add(p)
            events.append(ev("pay", p, t0 + 2 * HOUR + i, {"amount": 50}))
    send(writer, events)
    eligible = [p for p in persons if p not in early]
    holdout = {p for p in eligible if in_holdout(jid, p, 10)}
    treated = [p for p in eligible if p not in holdout]

    def all_sent():
        r = sec.ok("GET", f"/api/v1/journeys/{jid}/results")
        return r if r["sent"] == len(treated) and r["pending"] == 0 else None

    res = wait_until(all_sent, "every coupon sent", 45)
    got = {body[0]["data"]["distinct_id"] for k, body in rx.keys().items() if k.startswith(f"nsj-{jid}-")}
    check_eq(got, set(treated), "coupons went to exactly the eligible non-holdout persons")
    one = rx.received("/coupon")[0]
    check_eq(one["headers"]["x-northstar-signature"], webhook_signature("s3cret", one["body"]), "HMAC signature")
    body = json.loads(one["body"])
    check(body["data"]["payload"]["coupon"] == "FIRST10" and body["data"]["payload"]["city"] in ("杭州", "上海"),
          f"template filled from person properties: {body['data']}")
    check_eq(res["entered"], n, "entered")
    check_eq(res["steps"][1]["exited"], len(early), "the condition let the early payers out")
    check_eq(res["steps"][2]["held_out"], len(holdout), "held out at the action")
    # The world answers: a coupon lifts first-order conversion from 20% to 30% (true lift +50%).
    p0, p1 = 0.20, 0.30
    pays = []
    now = now_ms()
    for p in eligible:
        if rng.random() < (p0 if p in holdout else p1):
            pays.append(ev("pay", p, now + rng.randrange(1000), {"amount": 80}))
    send(writer, pays)
    res = sec.ok("GET", f"/api/v1/journeys/{jid}/results")
    cmp = res["comparison"]
    check_eq(cmp["treated"]["persons"], len(treated), "treated persons compared")
    check_eq(cmp["holdout"]["persons"], len(holdout), "holdout persons compared")
    paid = {e["distinct_id"] for e in pays}
    check_eq(cmp["treated"]["converted"], len([p for p in treated if p in paid]), "treated conversions")
    check_eq(cmp["holdout"]["converted"], len([p for p in holdout if p in paid]), "holdout conversions")
    lo, hi = cmp["lift"]["ci"]
    true_lift = p1 / p0 - 1
    check(lo < true_lift < hi, f"the true lift {true_lift:.2f} is inside the interval [{lo:.3f}, {hi:.3f}]")
    check(lo > 0, f"the lift is significant at this size: [{lo:.3f}, {hi:.3f}]")
    lst = sec.ok("GET", "/api/v1/journeys")
    row = [x for x in lst if x["id"] == jid][0]
    check_eq(row["lift"]["expected"], cmp["lift"]["expected"], "the list shows the results' lift")
    sec.ok("POST", f"/api/v1/journeys/{jid}/pause")


def test_seed_recall_silent_90_days():
    """Silent 90 days -> recall offer; recall repurchase rate treated vs holdout."""
    sec, writer, rx = S["sec"], S["writer"], S["rx"]
    rng = random.Random(90)
    t_old = now_ms() - 120 * DAY
    n = 3000
    persons = [f"r{i:05d}" for i in range(n)]
    events = []
    for i, p in enumerate(persons):
        events.append(ev("pay", p, t_old + i * 1000, {"amount": 120}))
        if i % 4 == 0:  # a quarter stayed active: not silent
            events.append(ev("page_view", p, now_ms() - 3 * DAY))
    send(writer, events)
    cohort = sec.ok("POST", "/api/v1/cohorts", {
        "name": "Silent 90 days", "kind": "behavioral",
        "definition": {"op": "and", "conditions": [
            {"type": "performed", "event": "pay"},
            {"type": "not_performed", "event": "$any", "last_days": 90}]}}, 201)
    j = sec.ok("POST", "/api/v1/journeys", {
        "name": "Recall offer", "trigger": {"type": "cohort", "cohort": cohort["id"], "include_existing": True},
        "steps": [{"type": "action", "action": "webhook", "url": rx.url("/recall"),
                   "payload": {"offer": "COMEBACK"}}],
        "holdout_percent": 20, "goal": {"event": "pay", "within_days": 14}}, 201)
    jid = j["id"]
    e = sec.err("DELETE", f"/api/v1/cohorts/{cohort['id']}", None, 409)
    check(f"journey {jid} 'Recall offer'" in e["message"], f"the cohort is protected by its journey: {e}")
    sec.ok("POST", f"/api/v1/journeys/{jid}/activate")
    entered = sec.ok("POST", f"/api/v1/journeys/{jid}/evaluate")["entered"]
    silent = [p for i, p in enumerate(persons) if i % 4 != 0]
    check_eq(entered, len(silent), "the silent persons entered")
    check_eq(sec.ok("POST", f"/api/v1/journeys/{jid}/evaluate")["entered"], 0, "nobody enters twice")
    holdout = {p for p in silent if in_holdout(jid, p, 20)}
    treated = [p for p in silent if p not in holdout]
    wait_until(lambda: sec.ok("GET", f"/api/v1/journeys/{jid}/results")["sent"] == len(treated), "recall offers")
    p0, p1 = 0.05, 0.12
    pays = [ev("pay", p, now_ms() + 1000, {"amount": 99}) for p in silent
            if rng.random() < (p0 if p in holdout else p1)]
    send(writer, pays)
    cmp = sec.ok("GET", f"/api/v1/journeys/{jid}/results")["comparison"]
    lo, hi = cmp["lift"]["ci"]
    true_lift = p1 / p0 - 1
    check(lo < true_lift < hi, f"recall: the true lift {true_lift:.2f} is inside [{lo:.3f}, {hi:.3f}]")
    sec.ok("POST", f"/api/v1/journeys/{jid}/pause")


def run_api():
    tmp = tempfile.mkdtemp(prefix="ns-journeys-")
    rx = KeyedReceiver()
    try:
        srv, keys = start(tmp, "api")
        S.update(rx=rx, server=srv, sec=Client(srv.port, "secret", key=keys["secret_key"]),
                 writer=Client(srv.port, "writer", key=keys["write_key"]))
        k = S["sec"].ok("POST", "/api/v1/api-keys", {"name": "reader", "role": "viewer"}, 201)
        S["viewer"] = Client(srv.port, "viewer", key=k["key"])
        ok = all([run_one(t) for t in (test_api_validation_and_roles, test_dead_letters_and_retry,
                                       test_limits_frequency_cap_and_quiet_hours, test_seed_first_order_coupon, test_seed_recall_silent_90_days)])
        srv.stop()
    finally:
        if S.get("server"):
            S["server"].kill()
        rx.close()
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"data kept in {tmp}")
    return ok


# --------------------------------------------------------------------------- kill


def test_kill_exactly_once():
    tmp = tempfile.mkdtemp(prefix="ns-journeys-kill-")
    rx = KeyedReceiver()
    srv, keys = start(tmp, "kill")
    try:
        sec = Client(srv.port, "secret", key=keys["secret_key"])
        j = sec.ok("POST", "/api/v1/journeys", coupon_journey(rx.url("/kill"), wait={"type": "wait", "seconds": 1},
                                                              extra={"lookback_hours": 1}), 201)
        jid = j["id"]
        sec.ok("POST", f"/api/v1/journeys/{jid}/activate")
        rng = random.Random(7)
        acked, payers = [], set()
        seq = 0
        kills = 4
        for round_ in range(kills + 1):
            writer = Client(srv.port, "writer", key=keys["write_key"])
            stop = threading.Event()
            pending = []  # batches not acknowledged: resent after the restart (same uuids)

            def flow():
                nonlocal seq
                while not stop.is_set():
                    batch, ids = [], []
                    for _ in range(50):
                        did = f"k{seq:06d}"
                        seq += 1
                        ids.append(did)
                        batch.append(ev("register", did, now_ms()))
                        if rng.random() < 0.1:
                            payers.add(did)
                            batch.append(ev("pay", did, now_ms()))
                    try:
                        r = writer.req("POST", "/api/v1/events", batch, timeout=10)
                        if r.status == 200:
                            acked.extend(ids)
                        else:
                            pending.append((batch, ids))
                    except Exception:  # noqa: BLE001 - the server was killed under the request
                        pending.append((batch, ids))
                        return
                    time.sleep(0.02)

            t = threading.Thread(target=flow)
            t.start()
            time.sleep(1.0 + rng.random() * 1.5)  # some waiting, some sending when the kill comes
            if round_ < kills:
                srv.sigkill()
            stop.set()
            t.join()
            if round_ < kills:
                srv.start()  # same port is not needed: the clients take the new one
            writer = Client(srv.port, "writer", key=keys["write_key"])
            for batch, ids in pending:
                r = writer.req("POST", "/api/v1/events", batch)
                check(r.status == 200, f"resend after restart: {r}")
                acked.extend(ids)
        sec = Client(srv.port, "secret", key=keys["secret_key"])
        eligible = [d for d in acked if d not in payers]
        treated = {d for d in eligible if not in_holdout(jid, d, 10)}

        def settled():
            r = sec.ok("GET", f"/api/v1/journeys/{jid}/results")
            return r if r["entered"] == len(acked) and r["sent"] == len(treated) and r["pending"] == 0 else None

        res = wait_until(settled, f"{len(treated)} sends after {kills} kills", 40)
        got = rx.keys()
        by_person = {}
        for k, bodies in got.items():
            dids = {b["data"]["distinct_id"] for b in bodies}
            check_eq(len(dids), 1, f"one person per key {k}")
            by_person.setdefault(dids.pop(), []).append(k)
        check_eq(set(by_person), treated, "every treated person received the coupon, nobody else")
        check(all(len(v) == 1 for v in by_person.values()), "one key per person")
        copies = sum(len(b) for b in got.values()) - len(got)
        check_eq(res["failed"] + res["dead"], 0, "no failed sends")
        print(f"  {len(acked)} persons, {len(treated)} sends exactly once by key after {kills} kills "
              f"({copies} re-sent copies dropped by key at the receiver)")
        srv.stop()
    finally:
        srv.kill()
        rx.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    binary = binary_from_argv()
    if binary is None:
        sys.exit(2)
    mode = os.environ.get("JOURNEYS_TEST", "api")
    ok = run_api() if mode == "api" else run_one(test_kill_exactly_once)
    sys.exit(0 if ok else 1)
