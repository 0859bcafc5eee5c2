#!/usr/bin/env python3
"""The operations loop end to end, on generated events: the seed examples of issue 4.

Usage: ops_e2e_test.py /path/to/northstar

1. "新用户首单转化" (new-user first-order conversion, target >= 20%): events are generated
   so that exactly 90 of 500 persons who registered in the KPI's period placed an order
   within 7 days (plus distractors: orders after 8-10 days, orders before registering,
   registrations before the period, repeat orders). The KPI (funnel register -> order,
   from_step 1 to_step 2, window 7 days) must read 18% -> 90% achievement -> yellow.
2. "流失用户召回" (churned-user recall, target repurchase 15%): funnel recall_touch ->
   order -> pay; 1000 touched persons in the period, 120 paid -> 12% -> 80% -> red. The
   period before had 16%; the drop is built into channel=feed_ads at step order->pay (90%
   of it), and the period's last day drops 54% day over day (86% from feed_ads). A
   below_target rule and a change (d/d) rule notify a generic webhook on loopback; the test
   verifies the HMAC-SHA256 signature of every message, that the text names the step and
   the channel, and that every root-cause contribution equals an independent computation
   from the generated events (and that they add up to the change).
Then: de-duplication (refresh and the daily job send nothing new), acknowledgement,
delayed actions, the monitoring table, both evaluations filled in and finished, both
scenarios exported to XLSX in Chinese and English and read back (zipfile + ElementTree),
CSV export, one scenario saved as an SOP and a new scenario started from it.

Everything runs through the HTTP API as the first admin (password read from
<data>/admin-credentials.txt, session cookie + CSRF token); events are sent with the
project's write key and cross-checked with a plain funnel query with its secret key.
Standard library only. Deterministic (fixed seed). Takes well under a minute.
"""

import csv
import datetime as dt
import hashlib
import hmac
import http.server
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nsclient import Client, cookies, login  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq  # noqa: E402

PROJECT = "growth"
SH = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai: UTC+8, no DST
SEED = 20240917
WEBHOOK_SECRET = "whsec-e2e-4f1c9a"
EPS = 1e-9

TODAY = dt.datetime.now(SH).date()
P_FROM, P_TO = TODAY - dt.timedelta(days=30), TODAY - dt.timedelta(days=17)      # the KPI period (14 days)
PREV_FROM, PREV_TO = TODAY - dt.timedelta(days=44), TODAY - dt.timedelta(days=31)  # the 14 days before it
WINDOW1 = 7 * 86400   # scenario 1 funnel window
WINDOW2 = 3 * 86400   # scenario 2 funnel window


def iso(d):
    return d.isoformat()


def at(day, seconds):
    """An aware datetime: local midnight of `day` in Asia/Shanghai plus `seconds`."""
    return dt.datetime.combine(day, dt.time(0), SH) + dt.timedelta(seconds=seconds)


# --------------------------------------------------------------------------- HTTP


class Api(Client):
    """nsclient's Client answering (status, JSON), or (status, headers, body) when raw."""

    def request(self, method, path, body=None, raw=False, expect=None):
        r = self.req(method, path, body, timeout=120)
        if expect is not None and r.status != expect:
            raise TestFailure(f"{method} {path}: expected HTTP {expect}, got {r.status}: {r.body[:1500]!r}")
        if raw:
            return r.status, r.headers, r.body
        if r.body and r.json() is None:
            raise TestFailure(f"{method} {path}: HTTP {r.status}, not JSON: {r.body[:500]!r}")
        return r.status, r.json()

    def get(self, path, expect=200):
        return self.request("GET", path, expect=expect)[1]

    def post(self, path, body=None, expect=None):
        return self.request("POST", path, body if body is not None else {}, expect=expect)[1]

    def put(self, path, body, expect=200):
        return self.request("PUT", path, body, expect=expect)[1]

    def patch(self, path, body, expect=200):
        return self.request("PATCH", path, body, expect=expect)[1]


# --------------------------------------------------------------------------- webhook receiver


class Receiver:
    """A generic-webhook endpoint on loopback that records every request and checks its
    HMAC-SHA256 signature (X-Northstar-Signature: sha256=<hex of HMAC(secret, raw body)>)."""

    def __init__(self, secret):
        self.secret = secret.encode()
        self.messages = []
        self.errors = []
        self.cv = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                sig = self.headers.get("X-Northstar-Signature", "")
                want = "sha256=" + hmac.new(outer.secret, body, hashlib.sha256).hexdigest()
                problems = []
                if not hmac.compare_digest(sig, want):
                    problems.append(f"bad signature {sig!r} (expected {want!r})")
                if not self.headers.get("X-Northstar-Timestamp", "").isdigit():
                    problems.append("missing X-Northstar-Timestamp")
                if not self.headers.get("Content-Type", "").startswith("application/json"):
                    problems.append(f"content type {self.headers.get('Content-Type')!r}")
                try:
                    msg = json.loads(body)
                except ValueError:
                    msg, problems = None, problems + ["body is not JSON"]
                ok = not problems
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok":true}' if ok else b'{"ok":false}')
                with outer.cv:
                    if ok:
                        outer.messages.append({"path": self.path, "body": msg, "raw": body})
                    else:
                        outer.errors.append("; ".join(problems))
                    outer.cv.notify_all()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks/northstar"

    def wait_for(self, n, timeout=20):
        deadline = time.time() + timeout
        with self.cv:
            while len(self.messages) < n and time.time() < deadline:
                self.cv.wait(0.2)
            return len(self.messages)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- generated data


class Data:
    """The generated events and, kept beside them, what each person did (for the naive
    recomputation of every number the server reports)."""

    def __init__(self):
        self.rng = random.Random(SEED)
        self.events = []
        self.s2 = []  # scenario 2 persons: window, day, channel, platform, touch/order/pay datetimes
        self.n = 0

    def add(self, name, did, when, props):
        self.n += 1
        self.events.append({"event": name, "distinct_id": did, "timestamp": when.isoformat(),
                            "uuid": f"e2e-{SEED}-{self.n:06d}", "properties": dict(props)})

    def scenario1(self):
        """500 registrations in the period, 90 first orders within 7 days, distractors."""
        rng = self.rng
        chans = ["app_store", "feed_ads", "kol", "organic"]
        people = []
        for i in range(500):
            day = P_FROM + dt.timedelta(days=i % 14)
            reg = at(day, rng.randint(9 * 3600, 20 * 3600))
            props = {"channel": rng.choice(chans), "platform": rng.choice(["ios", "android"]), "user_type": "new"}
            did = f"nu-{i:04d}"
            self.add("register", did, reg, dict(props, **{"$set": {"signup_channel": props["channel"]}}))
            if rng.random() < 0.6:
                self.add("product_view", did, reg + dt.timedelta(minutes=rng.randint(1, 300)), props)
            people.append((did, reg, props))
        order = list(range(500))
        rng.shuffle(order)
        converters, late, early_order = order[:90], order[90:130], order[130:140]
        for i in converters:
            did, reg, props = people[i]
            first = reg + dt.timedelta(seconds=rng.randint(3600, 6 * 86400 + 20 * 3600))
            self.add("order", did, first, dict(props, amount=round(rng.uniform(20, 300), 2), first_order=True))
            if rng.random() < 0.3:  # a repeat order later: still one person
                self.add("order", did, first + dt.timedelta(days=rng.randint(1, 5)), dict(props, amount=59.0))
        for i in late:  # first order after 8-10 days: outside the 7-day window
            did, reg, props = people[i]
            self.add("order", did, reg + dt.timedelta(seconds=rng.randint(8 * 86400, 10 * 86400)), dict(props, amount=88.0))
        for i in early_order:  # an order before registering (then nothing): never a conversion
            did, reg, props = people[i]
            self.add("order", did, reg - dt.timedelta(hours=2), dict(props, amount=10.0))
        for j in range(30):  # registered before the period, ordered inside it: not in the funnel
            did = f"nu-old-{j:03d}"
            reg = at(P_FROM - dt.timedelta(days=3), rng.randint(9 * 3600, 20 * 3600))
            self.add("register", did, reg, {"channel": "organic", "platform": "ios"})
            self.add("order", did, reg + dt.timedelta(days=1), {"channel": "organic", "platform": "ios", "amount": 30.0})
        return len(converters), 500

    def scenario2(self):
        """Recall: touched -> order -> pay. The 14 days before the period: 16%; the period:
        12%, the drop in channel=feed_ads at order->pay; the period's last day drops d/d."""
        rng = self.rng
        # (touched, ordered, paid) per channel
        plan = [
            ("prev", list(range(14)), {"feed_ads": (400, 100, 80), "sms": (300, 60, 42), "push": (300, 45, 38)}),
            ("cur", list(range(12)), {"feed_ads": (340, 84, 36), "sms": (260, 52, 34), "push": (260, 39, 31)}),
            ("cur", [12], {"feed_ads": (30, 8, 7), "sms": (20, 4, 3), "push": (20, 3, 3)}),
            ("cur", [13], {"feed_ads": (30, 8, 1), "sms": (20, 4, 3), "push": (20, 3, 2)}),
        ]
        k = 0
        for window, days, per_channel in plan:
            start = PREV_FROM if window == "prev" else P_FROM
            for chan, (n, o, p) in per_channel.items():
                flags = [(j < o, j < p) for j in range(n)]
                rng.shuffle(flags)
                for j, (ordered, paid) in enumerate(flags):
                    k += 1
                    did = f"cu-{k:05d}"
                    day = start + dt.timedelta(days=days[j % len(days)])
                    platform = "ios" if rng.random() < 0.5 else "android"
                    props = {"channel": chan, "platform": platform, "user_type": "returning"}
                    if rng.random() < 0.5:  # the order that made them a customer, long ago
                        self.add("pay", did, at(TODAY - dt.timedelta(days=150), rng.randint(0, 86399)), props)
                    touch = at(day, rng.randint(9 * 3600, 18 * 3600))
                    self.add("recall_touch", did, touch, props)
                    order = touch + dt.timedelta(seconds=rng.randint(3600, 5 * 3600)) if ordered else None
                    pay = order + dt.timedelta(seconds=rng.randint(600, 7200)) if paid else None
                    if order:
                        self.add("order", did, order, dict(props, amount=128.0))
                    if pay:
                        self.add("pay", did, pay, dict(props, amount=128.0))
                    elif ordered and rng.random() < 0.3:  # paid, but only after the 3-day window
                        self.add("pay", did, touch + dt.timedelta(days=4), dict(props, amount=128.0))
                    self.s2.append({"window": window, "day": day, "channel": chan, "platform": platform,
                                    "touch": touch, "order": order, "pay": pay})


# ---- the naive side: per-person funnels and the additive decomposition, recomputed here


def naive_funnel1(events, d_from, d_to, window):
    """Persons with a register event (local day in [d_from, d_to]) followed by an order
    within `window` seconds: (converted, entered)."""
    by = {}
    for e in events:
        by.setdefault(e["distinct_id"], []).append((dt.datetime.fromisoformat(e["timestamp"]), e["event"]))
    entered = converted = 0
    for tl in by.values():
        tl.sort()
        regs = [t for t, n in tl if n == "register" and d_from <= t.astimezone(SH).date() <= d_to]
        if not regs:
            continue
        entered += 1
        if any(n == "order" and r < t <= r + dt.timedelta(seconds=window) for r in regs for t, n in tl):
            converted += 1
    return converted, entered


def s2_parts(people, d_from, d_to, dim=None):
    """KPI 2 parts (paid within the window, touched) over touches in [d_from, d_to], per
    value of `dim` (channel/platform) or in total (key "")."""
    out = {}
    for p in people:
        if not (d_from <= p["day"] <= d_to):
            continue
        key = p[dim] if dim else ""
        num, den = out.get(key, (0, 0))
        ok = p["pay"] is not None and (p["pay"] - p["touch"]).total_seconds() <= WINDOW2
        out[key] = (num + (1 if ok else 0), den + 1)
    return out


def naive_contributions(people, cur, prev, dims):
    """Ratio R = N/D: contribution of v = (N1v - R0*D1v)/D1 - (N0v - R0*D0v)/D0."""
    n1, d1 = s2_parts(people, *cur)[""]
    n0, d0 = s2_parts(people, *prev)[""]
    r0, r1 = n0 / d0, n1 / d1
    out = []
    for dim in dims:
        b0, b1 = s2_parts(people, *prev, dim), s2_parts(people, *cur, dim)
        for v in sorted(set(b0) | set(b1)):
            p0, p1 = b0.get(v, (0, 0)), b1.get(v, (0, 0))
            c = (p1[0] - r0 * p1[1]) / d1 - (p0[0] - r0 * p0[1]) / d0
            out.append({"dimension": dim, "value": v, "contribution": c, "share": c / (r1 - r0)})
    return r0, r1, out


# --------------------------------------------------------------------------- XLSX reader


NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
      "pr": "http://schemas.openxmlformats.org/package/2006/relationships"}


def read_xlsx(data):
    """{sheet name: [[cell, ...], ...]} with numbers as float and strings as str."""
    z = zipfile.ZipFile(io.BytesIO(data))
    check(z.testzip() is None, "xlsx: a corrupt member")
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", NS):
            shared.append("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")))
    rels = {r.get("Id"): r.get("Target") for r in ET.fromstring(z.read("xl/_rels/workbook.xml.rels")).findall("pr:Relationship", NS)}
    sheets = {}
    for s in ET.fromstring(z.read("xl/workbook.xml")).find("m:sheets", NS).findall("m:sheet", NS):
        target = rels[s.get(f"{{{NS['r']}}}id")]
        path = target.lstrip("/") if target.startswith("/") else "xl/" + target
        rows = []
        for row in ET.fromstring(z.read(path)).find("m:sheetData", NS).findall("m:row", NS):
            r = int(row.get("r")) - 1
            while len(rows) <= r:
                rows.append([])
            for c in row.findall("m:c", NS):
                ref = re.match(r"([A-Z]+)(\d+)", c.get("r")).group(1)
                col = 0
                for ch in ref:
                    col = col * 26 + ord(ch) - 64
                col -= 1
                t, v = c.get("t"), c.find("m:v", NS)
                if t == "s":
                    val = shared[int(v.text)]
                elif t == "inlineStr":
                    val = "".join(x.text or "" for x in c.iter(f"{{{NS['m']}}}t"))
                elif t == "str":
                    val = v.text or ""
                elif v is not None:
                    val = float(v.text)
                else:
                    val = None
                cells = rows[r]
                while len(cells) <= col:
                    cells.append(None)
                cells[col] = val
        sheets[s.get("name")] = rows
    return sheets


def table(rows):
    """Sheet rows -> list of dicts keyed by the header row."""
    head = rows[0]
    return [{head[i]: (r[i] if i < len(r) else None) for i in range(len(head))} for r in rows[1:] if any(x is not None for x in r)]


# --------------------------------------------------------------------------- the test


def run(binary, tmp):
    t0 = time.time()
    data_dir = os.path.join(tmp, "data")
    p = subprocess.run([binary, "admin", "--data", data_dir, "create-project", PROJECT, "--tz", "Asia/Shanghai",
                        "--format", "json"], capture_output=True, timeout=60)
    check(p.returncode == 0, f"create-project: {p.stdout!r} {p.stderr!r}")
    keys = json.loads(p.stdout)
    server = Server(binary, data_dir, os.path.join(tmp, "server.log"), extra_args=["--no-scheduler", "--allow-private-webhooks"]).start()
    receiver = Receiver(WEBHOOK_SECRET)
    try:
        steps(server, receiver, keys, data_dir, t0)
    except Exception:
        print(server.log_tail(40), file=sys.stderr)
        raise
    finally:
        receiver.close()
        rc = server.stop()
        check(rc == 0, f"server exit code {rc}")
    print(f"ops_e2e: total {time.time() - t0:.1f}s")


def steps(server, receiver, keys, data_dir, t0):
    port = server.port
    # ---- events, with the write key
    data = Data()
    conv1, reg1 = data.scenario1()
    data.scenario2()
    events = data.events
    writer = Api(port, "write key", key=keys["write_key"])
    for i in range(0, len(events), 1000):
        _, r = writer.request("POST", "/api/v1/events", events[i:i + 1000], expect=200)
        check(r["errors"] == [] and r["accepted"] == len(events[i:i + 1000]), f"ingest batch {i}: {r}")
    _, r = writer.request("POST", "/api/v1/events", events[:200], expect=200)  # a retried batch
    check_eq((r["accepted"], r["duplicates"]), (0, 200), "retried batch: accepted/duplicates")
    print(f"  sent {len(events)} events ({time.time() - t0:.1f}s)")

    # The generator's numbers, recomputed naively from the events themselves.
    check_eq(naive_funnel1(events, P_FROM, P_TO, WINDOW1), (90, 500), "naive scenario-1 funnel (generator)")
    n2, d2 = s2_parts(data.s2, P_FROM, P_TO)[""]
    check_eq((n2, d2), (120, 1000), "naive scenario-2 funnel (generator)")
    check_eq(s2_parts(data.s2, PREV_FROM, PREV_TO)[""], (160, 1000), "naive scenario-2 previous period")

    # ---- the admin logs in (password written at first start)
    cred = open(os.path.join(data_dir, "admin-credentials.txt")).read()
    email = re.search(r"email: (\S+)", cred).group(1)
    password = re.search(r"password: (\S+)", cred).group(1)
    admin, r = login(port, email, password)
    api = Api(port, "admin", session=admin.session, csrf=admin.csrf)
    check("ns_session" in cookies(r), f"login sets the session cookie: {r.header_list}")
    check_eq([x["project"] for x in r.json()["projects"]], [PROJECT], "admin's projects")
    check_eq(api.get("/api/v1/auth/me")["role"], "admin", "role of the first admin")
    # A state-changing request without the CSRF token is refused.
    no_csrf = Api(port, "no csrf", session=api.session)
    check_eq(no_csrf.request("POST", "/api/v1/scenarios", {"name": "x"})[0], 403, "POST without X-CSRF-Token")

    # ---- the webhook channel, and its test message
    ch = api.post("/api/v1/notification-channels", {"name": "ops-webhook", "kind": "webhook", "url": receiver.url,
                                                    "secret": WEBHOOK_SECRET}, expect=201)["id"]
    t = api.post(f"/api/v1/notification-channels/{ch}/test", expect=200)
    check(t["ok"] is True, f"channel test: {t}")
    check_eq(receiver.wait_for(1), 1, "webhook messages after the channel test")
    check_eq(receiver.messages[0]["body"]["data"].get("test"), True, "test message data.test")
    listed = api.get("/api/v1/notification-channels")
    check(listed[0]["secret_set"] is True and WEBHOOK_SECRET not in json.dumps(listed), "channel secret masked")

    # ---- scenario 1 (templates 1 and 2)
    period = {"from": iso(P_FROM), "to": iso(P_TO)}
    s1 = api.post("/api/v1/scenarios", {
        "name": "新用户首单转化",
        "business_module": "conversion",
        "goal": {"metric": "新用户7日首单转化率 / 7-day first-order conversion", "target": 0.2},
        "key_user_group": {"description": "注册7天内的新用户 / registered within 7 days"},
        "pain_points": ["结算页字段太多 / checkout form too long", "首单没有激励 / no first-order incentive"],
        "success_criteria": [{"metric": "7-day first-order conversion", "target": 0.2}],
        "owner": "li.wei@example.com",
        "period": period,
        "funnel": {"steps": [{"event": "register"}, {"event": "order"}], "window_seconds": WINDOW1},
    }, expect=201)["id"]
    a11 = api.post(f"/api/v1/scenarios/{s1}/actions", {
        "strategy": "首单激励 / first-order incentive", "action": "first-order coupon pack 首单优惠券包",
        "owner": "zhang.min@example.com", "start_date": iso(P_FROM - dt.timedelta(days=5)), "due_date": iso(P_FROM),
        "resources": {"budget": 50000, "currency": "CNY", "channels": ["app_push", "sms"]},
        "delivery_standard": "coupon pack live for 100% of new users", "status": "done"}, expect=201)["id"]
    a12 = api.post(f"/api/v1/scenarios/{s1}/actions", {
        "strategy": "降低下单阻力 / reduce friction", "action": "reduce checkout fields to 3 结算页字段减至3个",
        "owner": "wang.fang@example.com", "start_date": iso(P_FROM - dt.timedelta(days=10)),
        "due_date": iso(P_FROM + dt.timedelta(days=2)), "resources": {"engineer_days": 5},
        "delivery_standard": "checkout has 3 fields; A/B test shipped", "status": "done"}, expect=201)["id"]
    a13 = api.post(f"/api/v1/scenarios/{s1}/actions", {
        "strategy": "触达提醒 / reminders", "action": "SMS reminder within 24h of register 注册24小时内短信提醒",
        "owner": "zhang.min@example.com", "start_date": iso(P_FROM), "due_date": iso(P_FROM + dt.timedelta(days=6)),
        "resources": {"budget": 8000, "currency": "CNY", "channels": ["sms"]},
        "delivery_standard": "SMS with the coupon link sent within 24h to every new user",
        "status": "in_progress", "depends_on": [a11]}, expect=201)["id"]
    # A cycle is refused.
    st, err = api.request("PATCH", f"/api/v1/actions/{a11}", {"depends_on": [a13]})
    check(st == 400 and "cycle" in json.dumps(err), f"dependency cycle: {st} {err}")
    gantt = api.get(f"/api/v1/scenarios/{s1}/gantt")
    check("critical" in json.dumps(gantt), f"gantt has a critical path: {str(gantt)[:300]}")

    # ---- scenario 2
    s2 = api.post("/api/v1/scenarios", {
        "name": "流失用户召回",
        "business_module": "retention",
        "goal": {"metric": "召回复购率 / recall repurchase rate", "target": 0.15},
        "key_user_group": {"description": "90天未下单的老客 / customers without an order for 90 days"},
        "pain_points": ["召回券核销率低 / recall coupons rarely redeemed"],
        "success_criteria": [{"metric": "recall repurchase rate", "target": 0.15}],
        "owner": "chen.jie@example.com",
        "period": period,
    }, expect=201)["id"]
    a21 = api.post(f"/api/v1/scenarios/{s2}/actions", {
        "strategy": "精准召回 / targeted recall", "action": "recall coupon via feed ads 信息流广告召回券",
        "owner": "chen.jie@example.com", "start_date": iso(P_FROM), "due_date": iso(P_FROM + dt.timedelta(days=3)),
        "resources": {"budget": 120000, "currency": "CNY", "channels": ["feed_ads"]},
        "delivery_standard": "400 churned customers reached", "status": "done"}, expect=201)["id"]
    api.post(f"/api/v1/scenarios/{s2}/actions", {
        "strategy": "精准召回 / targeted recall", "action": "SMS + push recall sequence 短信+推送召回",
        "owner": "zhao.lei@example.com", "start_date": iso(P_FROM), "due_date": iso(P_FROM + dt.timedelta(days=5)),
        "resources": {"budget": 6000, "currency": "CNY", "channels": ["sms", "push"]},
        "delivery_standard": "600 churned customers reached", "status": "done", "depends_on": [a21]}, expect=201)

    # ---- KPIs: funnels reduced to one number, over a custom period covering the data
    k1 = api.post("/api/v1/kpis", {
        "scenario_id": s1, "name": "7日首单转化率", "owner": "li.wei@example.com",
        "query": {"kind": "funnel", "steps": [{"event": "register"}, {"event": "order"}], "window_seconds": WINDOW1},
        "reduce": {"from_step": 1, "to_step": 2}, "target": 0.2, "direction": "higher",
        "period": {"type": "custom", "from": iso(P_FROM), "to": iso(P_TO)}, "unit": "%"}, expect=201)["id"]
    k2 = api.post("/api/v1/kpis", {
        "scenario_id": s2, "name": "召回复购率", "owner": "chen.jie@example.com",
        "query": {"kind": "funnel", "window_seconds": WINDOW2,
                  "steps": [{"event": "recall_touch"}, {"event": "order"}, {"event": "pay"}]},
        "reduce": {"from_step": 1, "to_step": 3}, "target": 0.15, "direction": "higher",
        "dimensions": ["channel", "platform"],
        "period": {"type": "custom", "from": iso(P_FROM), "to": iso(P_TO)}, "unit": "%"}, expect=201)["id"]
    api.patch(f"/api/v1/scenarios/{s1}", {"goal": {"metric": "7-day first-order conversion", "target": 0.2, "kpi_id": k1}})
    api.patch(f"/api/v1/scenarios/{s2}", {"goal": {"metric": "recall repurchase rate", "target": 0.15, "kpi_id": k2}})

    # ---- scenario 1: 18% -> 90% -> yellow
    r1 = api.post(f"/api/v1/kpis/{k1}/refresh", expect=200)
    check(abs(r1["actual"] - 0.18) < EPS, f"KPI 1 actual {r1['actual']} (expected 0.18)")
    check_eq((r1.get("numerator"), r1.get("denominator")), (90, 500), "KPI 1 numerator/denominator")
    check(abs(r1["achievement_rate"] - 0.9) < EPS, f"KPI 1 achievement {r1['achievement_rate']} (expected 0.9)")
    check_eq(r1["light"], "yellow", "KPI 1 light at 18% of a 20% target")
    check_eq(r1["period"], period, "KPI 1 period")
    check_eq(r1["alerts_fired"], [], "KPI 1 has no rules: nothing fired")
    check(isinstance(r1.get("forecast"), dict), f"KPI 1 forecast: {r1.get('forecast')}")
    check(len(r1["history"]) >= 1 and r1["history"][-1]["light"] == "yellow", f"KPI 1 history: {r1['history'][-1:]}")
    # The same number from a plain funnel query with the secret key.
    q = Api(port, "secret key", key=keys["secret_key"])
    _, fq = q.request("POST", "/api/v1/query", {"kind": "funnel", "steps": [{"event": "register"}, {"event": "order"}],
                                                  "window_seconds": WINDOW1, "date_from": iso(P_FROM), "date_to": iso(P_TO)},
                      expect=200)
    check_eq([s["count"] for s in fq["steps"]], [500, 90], "funnel query register -> order")

    # ---- scenario 2: rules first, then the refresh fires them
    rb = api.post("/api/v1/alert-rules", {"kpi_id": k2, "type": "below_target", "threshold_pct": 10,
                                          "channels": [ch]}, expect=201)["id"]
    rc = api.post("/api/v1/alert-rules", {"kpi_id": k2, "type": "change", "compare": "dod", "threshold_pct": 15,
                                          "channels": [ch]}, expect=201)["id"]
    r2 = api.post(f"/api/v1/kpis/{k2}/refresh", expect=200)
    check(abs(r2["actual"] - 0.12) < EPS, f"KPI 2 actual {r2['actual']} (expected 0.12)")
    check_eq((r2.get("numerator"), r2.get("denominator")), (120, 1000), "KPI 2 numerator/denominator")
    check(abs(r2["achievement_rate"] - 0.8) < EPS, f"KPI 2 achievement {r2['achievement_rate']} (expected 0.8)")
    check_eq(r2["light"], "red", "KPI 2 light at 12% of a 15% target")
    fired = {a["rule_id"]: a for a in r2["alerts_fired"]}
    check_eq(sorted(fired), sorted([rb, rc]), "rules fired by the refresh")
    for a in fired.values():
        check(a["deliveries"] and all(d["ok"] for d in a["deliveries"]), f"alert deliveries: {a['deliveries']}")
    # The daily value of the last day against the day before (what the d/d rule compares).
    daily = {d["date"]: d["value"] for d in r2["daily"]}
    last = s2_parts(data.s2, P_TO, P_TO)[""]
    before = s2_parts(data.s2, P_TO - dt.timedelta(days=1), P_TO - dt.timedelta(days=1))[""]
    check(abs(daily[iso(P_TO)] - last[0] / last[1]) < EPS and abs(daily[iso(P_TO - dt.timedelta(days=1))] - before[0] / before[1]) < EPS,
          f"KPI 2 daily values of the last two days: {daily.get(iso(P_TO - dt.timedelta(days=1)))}, {daily.get(iso(P_TO))}")

    check_eq(receiver.wait_for(3), 3, "webhook messages (test + 2 alerts)")
    check_eq(receiver.errors, [], "webhook signature/format problems")
    by_rule = {m["body"]["data"]["rule_id"]: m["body"] for m in receiver.messages[1:]}
    check_eq(sorted(by_rule), sorted([rb, rc]), "rules named by the webhook messages")

    alerts = {a["rule_id"]: a for a in api.get("/api/v1/alerts?state=firing")}
    check_eq(sorted(alerts), sorted([rb, rc]), "firing alerts")
    windows = {rb: ((P_FROM, P_TO), (PREV_FROM, PREV_TO)),
               rc: ((P_TO, P_TO), (P_TO - dt.timedelta(days=1), P_TO - dt.timedelta(days=1)))}
    expected_text = {rb: ("90% of the drop from channel=feed_ads", "step order\u2192pay \u221225%"),
                     rc: ("86% of the drop from channel=feed_ads", "step order\u2192pay \u221254%")}
    for rule, (cur, prev) in windows.items():
        msg, alert = by_rule[rule], alerts[rule]
        text = msg["text"]
        for needle in expected_text[rule] + ("召回复购率",):
            check(needle in text, f"rule {rule}: webhook text lacks {needle!r}:\n{text}")
        check(alert["message"] in text, f"rule {rule}: alert message {alert['message']!r} not in the webhook text")
        check("Owner: chen.jie@example.com" in text, f"rule {rule}: the owner is named: {text}")
        check_eq(msg["level"], "critical", f"rule {rule}: level")
        check("(red)" in msg["title"], f"rule {rule}: title names the light: {msg['title']}")
        check_eq(msg["data"]["alert_id"], alert["id"], f"rule {rule}: webhook alert id")
        rcause = alert["detail"]["root_cause"]
        check_eq(msg["data"]["detail"]["root_cause"], rcause, f"rule {rule}: webhook detail = stored detail")
        # Every number against the naive recomputation from the generated events.
        r0, r1_, contribs = naive_contributions(data.s2, cur, prev, ["channel", "platform"])
        check(abs(rcause["previous"] - r0) < EPS and abs(rcause["current"] - r1_) < EPS,
              f"rule {rule}: root cause previous/current {rcause['previous']}/{rcause['current']} vs {r0}/{r1_}")
        check(abs(rcause["change"] - (r1_ - r0)) < EPS, f"rule {rule}: change")
        for dim in ("channel", "platform"):
            total = sum(c["contribution"] for c in contribs if c["dimension"] == dim)
            check(abs(total - (r1_ - r0)) < EPS, f"rule {rule}: naive {dim} contributions add up to the change")
        want_top = sorted([c for c in contribs if c["contribution"] < 0], key=lambda c: c["contribution"])[:3]
        got_top = rcause["top_contributors"]
        check_eq([(c["dimension"], c["value"]) for c in got_top][:1], [("channel", "feed_ads")], f"rule {rule}: top contributor")
        check_eq(len(got_top), len(want_top), f"rule {rule}: number of top contributors")
        for g, w in zip(got_top, want_top):
            check(abs(g["contribution"] - w["contribution"]) < EPS and abs(g["share"] - w["share"]) < EPS,
                  f"rule {rule}: contribution of {g['dimension']}={g['value']}: got {g['contribution']} "
                  f"(share {g['share']}), naive {w['dimension']}={w['value']} {w['contribution']} (share {w['share']})")
        check_eq(rcause["step"]["from"] + "\u2192" + rcause["step"]["to"], "order\u2192pay", f"rule {rule}: step")
        check(abs(rcause["steps"][0]["relative_change"]) < EPS, f"rule {rule}: touch->order did not move")
    fa = next(c for c in alerts[rb]["detail"]["root_cause"]["top_contributors"])
    check(abs(fa["share"] - 0.9) < EPS and abs(fa["contribution"] + 0.036) < EPS,
          f"below_target: feed_ads carries 90% of the -4 points: {fa}")
    fd = alerts[rc]["detail"]["root_cause"]["top_contributors"][0]
    check(abs(fd["share"] - 6 / 7) < EPS, f"d/d: feed_ads carries 6/7 of the day's drop: {fd}")
    print(f"  alerts: {alerts[rb]['message']}\n          {alerts[rc]['message']} ({time.time() - t0:.1f}s)")

    # ---- one problem sends one message: refresh again, acknowledge, the daily job
    again = api.post(f"/api/v1/kpis/{k2}/refresh", expect=200)
    check_eq(again["alerts_fired"], [], "second refresh: de-duplicated")
    acked = api.post(f"/api/v1/alerts/{alerts[rb]['id']}/ack", expect=200)
    check_eq(acked["state"], "acknowledged", "acknowledged alert state")
    check_eq(acked["acked_by"], email, "acknowledged by")
    job = api.post("/api/v1/jobs/daily", expect=200)
    check_eq(job["alerts_fired"], [], "daily job: nothing new fired")
    check_eq(job["errors"], [], "daily job errors")
    check_eq(job["actions_marked_delayed"], 1, "daily job: the overdue SMS action is delayed")
    check(job["evaluations_drafted"] >= 2, f"daily job drafts the evaluations of ended scenarios: {job}")
    check_eq(api.get(f"/api/v1/actions/{a13}")["status"], "delayed", "overdue action status")
    time.sleep(0.3)
    check_eq(len(receiver.messages), 3, "no further webhook messages")
    deliveries = api.get("/api/v1/deliveries")
    check(len(deliveries) == 3 and all(d["ok"] for d in deliveries), f"delivery log: {deliveries}")

    # ---- the monitoring table (template 3)
    mon = {row["kpi_id"]: row for row in api.get("/api/v1/monitoring")}
    check_eq((mon[k1]["scenario"], mon[k1]["light"], mon[k1]["target"]), ("新用户首单转化", "yellow", 0.2), "monitoring row 1")
    check_eq((mon[k2]["scenario"], mon[k2]["light"]), ("流失用户召回", "red"), "monitoring row 2")
    check("channel=feed_ads" in mon[k2]["auto_reason"], f"monitoring: automatic reason of KPI 2: {mon[k2]['auto_reason']}")

    # ---- evaluations (template 4): the draft from the data, then the owner's part, final
    ev1 = api.get(f"/api/v1/scenarios/{s1}/evaluation")
    check_eq([(k["kpi_id"], k["light"]) for k in ev1["kpis"]], [(k1, "yellow")], "evaluation 1 KPI results")
    check_eq((ev1["actions"]["total"], ev1["actions"]["done"], ev1["actions"]["late"]), (3, 2, 1), "evaluation 1 actions")
    check_eq(ev1["actions"]["late_actions"][0]["id"], a13, "evaluation 1 late action")
    ev2 = api.get(f"/api/v1/scenarios/{s2}/evaluation")
    movers = ev2["biggest_movers"]
    check(any(m.get("dimension") == "channel" and m.get("value") == "feed_ads" for m in movers), f"evaluation 2 movers: {movers}")
    check(any(m.get("step") == "order\u2192pay" for m in movers), f"evaluation 2 step mover: {movers}")
    texts = {
        s1: {"what_worked": "首单券包 + 3字段结算：转化率从 11% 升到 18% / coupon pack and 3-field checkout",
             "problems": "短信提醒延期上线 / the SMS reminder shipped late",
             "next_measures": "短信提醒上线后复盘；目标保持 20% / review after the SMS reminder ships"},
        s2: {"what_worked": "短信与推送召回稳定 / SMS and push recall held steady",
             "problems": "信息流广告渠道支付环节转化下降 / feed_ads order->pay conversion collapsed",
             "next_measures": "排查信息流落地页支付链路 / audit the feed_ads landing page payment flow"},
    }
    for sid, t in texts.items():
        saved = api.put(f"/api/v1/scenarios/{sid}/evaluation", dict(t, status="final"))
        check_eq(saved["status"], "final", f"evaluation {sid} status")
        check_eq(saved["what_worked"], t["what_worked"], f"evaluation {sid} what_worked")

    # ---- XLSX export of both scenarios, in Chinese and English, read back
    sheet_names = {"zh": ["场景需求表", "流程设计表", "执行监控表", "效果评估表"],
                   "en": ["Scenario requirements", "Process design", "Execution monitoring", "Effect evaluation"]}
    light_label = {"zh": {"yellow": "黄", "red": "红"}, "en": {"yellow": "Yellow", "red": "Red"}}
    cols = {"zh": {"kpi": "指标", "target": "目标值", "actual": "实际值", "rate": "达成率", "light": "状态灯",
                   "reason": "变化原因", "e_target": "目标", "e_result": "结果", "e_rate": "达成率", "worked": "做得好的",
                   "name": "场景名称", "group": "关键用户群", "action": "具体动作", "owner": "负责人", "due": "截止日期",
                   "res": "所需资源", "status": "状态", "deps": "依赖"},
            "en": {"kpi": "KPI", "target": "Target", "actual": "Actual", "rate": "Achievement rate", "light": "Light",
                   "reason": "Reason for change", "e_target": "Target", "e_result": "Result", "e_rate": "Achievement",
                   "worked": "What worked", "name": "Scenario", "group": "Key user group", "action": "Action",
                   "owner": "Owner", "due": "Due date", "res": "Resources", "status": "Status", "deps": "Depends on"}}
    expect_kpi = {s1: ("7日首单转化率", 0.2, 0.18, 0.9, "yellow"), s2: ("召回复购率", 0.15, 0.12, 0.8, "red")}
    for sid in (s1, s2):
        for lang in ("zh", "en"):
            st, hdr, body = api.request("GET", f"/api/v1/scenarios/{sid}/export.xlsx?lang={lang}", raw=True)
            check_eq(st, 200, f"export.xlsx {sid} {lang}")
            check(hdr.get("content-type", "").startswith("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                  f"xlsx content type {hdr.get('content-type')}")
            check(body[:2] == b"PK", "xlsx is a zip")
            book = read_xlsx(body)
            check_eq(list(book), sheet_names[lang], f"sheets of scenario {sid} ({lang})")
            c = cols[lang]
            req, proc, mon_t, eva = (table(book[n]) for n in sheet_names[lang])
            name, target, actual, rate, light = expect_kpi[sid]
            check_eq(len(mon_t), 1, f"monitoring rows {sid} {lang}")
            m = mon_t[0]
            check_eq(m[c["kpi"]], name, "monitoring KPI name")
            check(abs(m[c["target"]] - target) < EPS and abs(m[c["actual"]] - actual) < EPS and abs(m[c["rate"]] - rate) < EPS,
                  f"monitoring numbers {sid} {lang}: {m}")
            check_eq(m[c["light"]], light_label[lang][light], f"monitoring light {sid} {lang}")
            check_eq(len(eva), 1, f"evaluation rows {sid} {lang}")
            e = eva[0]
            check(abs(e[c["e_target"]] - target) < EPS and abs(e[c["e_result"]] - actual) < EPS and abs(e[c["e_rate"]] - rate) < EPS,
                  f"evaluation numbers {sid} {lang}: {e}")
            check_eq(e[c["worked"]], texts[sid]["what_worked"], f"evaluation text {sid} {lang}")
            check_eq(req[0][c["name"]], "新用户首单转化" if sid == s1 else "流失用户召回", "requirements: name")
            if sid == s1:
                check("registered within 7 days" in req[0][c["group"]], f"requirements: key user group {req[0]}")
                check_eq(len(proc), 3, "process rows of scenario 1")
                sms = next(r for r in proc if "SMS reminder" in r[c["action"]])
                check_eq((sms[c["owner"]], sms[c["due"]]), ("zhang.min@example.com", iso(P_FROM + dt.timedelta(days=6))),
                         "process: SMS action owner/due")
                check_eq(sms[c["status"]], "延期" if lang == "zh" else "Delayed", "process: SMS action status")
                check_eq(sms[c["deps"]], str(a11), "process: SMS action depends on the coupon pack")
                coupon = next(r for r in proc if "coupon pack" in r[c["action"]])
                check("50000" in coupon[c["res"]] and "CNY" in coupon[c["res"]], f"process: resources {coupon[c['res']]}")
            else:
                check("channel=feed_ads" in m[c["reason"]] and ("[自动]" if lang == "zh" else "[auto]") in m[c["reason"]],
                      f"monitoring: reason names the channel: {m[c['reason']]!r}")
    st, hdr, body = api.request("GET", f"/api/v1/scenarios/{s2}/export.csv?table=monitoring&lang=en", raw=True)
    check_eq(st, 200, "export.csv monitoring")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    check_eq(rows[0][:6], ["Scenario", "KPI", "Target", "Actual", "Achievement rate", "Light"], "CSV headings")
    check_eq((rows[1][1], float(rows[1][3]), rows[1][5]), ("召回复购率", 0.12, "Red"), "CSV monitoring row")
    print(f"  exports read back ({time.time() - t0:.1f}s)")

    # ---- SOP: the finished scenario 1 as a template, and a new scenario from it
    sop = api.post(f"/api/v1/scenarios/{s1}/evaluation/sop", {"name": "SOP: 新用户首单转化"}, expect=201)["id"]
    sop_doc = api.get(f"/api/v1/sops/{sop}")
    check_eq(len(sop_doc["actions"]), 3, "SOP actions")
    check_eq(sop_doc["lessons"]["what_worked"], texts[s1]["what_worked"], "SOP lessons")
    check(any(a["depends_on_index"] == [0] for a in sop_doc["actions"]), f"SOP keeps the dependency: {sop_doc['actions']}")
    check_eq([s["id"] for s in api.get("/api/v1/sops")], [sop], "SOP library")
    nxt_from = TODAY + dt.timedelta(days=7)
    s3 = api.post("/api/v1/scenarios", {"from_sop": sop, "name": "新用户首单转化 Q+1",
                                        "period": {"from": iso(nxt_from), "to": iso(nxt_from + dt.timedelta(days=13))}},
                  expect=201)["id"]
    sc3 = api.get(f"/api/v1/scenarios/{s3}")
    check_eq(sc3["business_module"], "conversion", "scenario from SOP: business module")
    acts = sc3["actions"]
    check_eq(len(acts), 3, "scenario from SOP: actions")
    by_name = {a["action"]: a for a in acts}
    sms3 = next(a for n, a in by_name.items() if "SMS reminder" in n)
    coupon3 = next(a for n, a in by_name.items() if "coupon pack" in n)
    check_eq(sms3["depends_on"], [coupon3["id"]], "scenario from SOP: dependency remapped")
    check_eq(sms3["due_date"], iso(nxt_from + dt.timedelta(days=6)), "scenario from SOP: due date shifted")
    check_eq(sms3["status"], "not_started", "scenario from SOP: fresh status")


def main():
    binary = binary_from_argv()
    if not binary:
        return 2
    tmp = tempfile.mkdtemp(prefix="ns-ops-e2e-")
    ok = False
    try:
        run(binary, tmp)
        ok = True
        print("PASS ops_e2e")
    except TestFailure as e:
        print(f"FAIL ops_e2e: {e}")
    except Exception:
        traceback.print_exc()
        print("FAIL ops_e2e: unexpected error")
    finally:
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"(data directory kept in {tmp})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
