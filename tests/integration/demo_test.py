#!/usr/bin/env python3
"""The first-start demo (`northstar serve --demo` on an empty data directory, what `make run`
does): besides the events, a team that already works with Northstar. Checked over the HTTP
API: the operator and viewer accounts log in with their documented passwords; the two seed
scenarios (new-user first-order conversion, target 20%; churned-user recall, target 15%)
with their cohorts, 4-6 actions each (owners, due dates, resources, delivery standards,
dependencies; one overdue, some done, some in progress); KPIs tied to the demo events with
at least 14 days of history and a light; a firing alert whose root cause names the story's
channel; the Gantt. Then a restart: nothing is created twice.

Usage: demo_test.py /path/to/northstar. Standard library only; about 20 s.
"""

import datetime as dt
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client, close_connections, login, request  # noqa: E402
from nsserver import TestFailure, binary_from_argv, check, check_eq, run_one  # noqa: E402

OPERATOR = ("operator@northstar.local", "northstar-operator")
VIEWER = ("viewer@northstar.local", "northstar-viewer")
SH = dt.timezone(dt.timedelta(hours=8))  # the demo project's zone, Asia/Shanghai (no DST)
S = {}


class DemoServer:
    """`northstar serve --demo` on port 0, keeping every stdout line (the first start prints
    the keys and the accounts after the listening line)."""

    def __init__(self, binary, data, log_path):
        self.binary, self.data, self.log_path = binary, data, log_path
        self.lines = []

    def start(self, timeout=120):
        t0 = time.time()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "serve", "--data", self.data, "--host", "127.0.0.1", "--port", "0",
                                      "--demo"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log)
        q = queue.Queue()

        def drain():
            for line in iter(self.proc.stdout.readline, b""):
                q.put(line.decode(errors="replace").rstrip("\n"))
            q.put(None)

        threading.Thread(target=drain, daemon=True).start()
        first = q.get(timeout=timeout)
        if first is None:
            raise TestFailure(f"server exited with {self.proc.wait()} before listening\n{self.log_tail()}")
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)$", first)
        check(m is not None, f"first stdout line {first!r}")
        self.port = int(m.group(1))
        self.lines.append(first)
        while True:  # the banner ends with the accounts (first start) or right after the listening line
            try:
                line = q.get(timeout=1.0)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        check(request(self.port, "GET", "/healthz", fresh=True).status == 200, "healthz")
        self.seconds = time.time() - t0
        return self

    def stop(self):
        close_connections(self.port)
        self.proc.terminate()
        rc = self.proc.wait(timeout=60)
        self.log.close()
        check_eq(rc, 0, "server exit code")

    def log_tail(self, n=30):
        with open(self.log_path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])


def today():
    return dt.datetime.now(SH).date().isoformat()


def snapshot(c):
    """Everything the seed makes, reduced to what must not change across a restart."""
    scenarios = c.ok("GET", "/api/v1/scenarios")
    out = {"scenarios": sorted((s["id"], s["name"]) for s in scenarios),
           "actions": sorted(a["id"] for s in scenarios for a in c.ok("GET", f"/api/v1/scenarios/{s['id']}")["actions"]),
           "kpis": sorted(k["id"] for k in c.ok("GET", "/api/v1/kpis")),
           "rules": sorted(r["id"] for r in c.ok("GET", "/api/v1/alert-rules")),
           "alerts": sorted(a["id"] for a in c.ok("GET", "/api/v1/alerts")),
           "users": sorted(u["email"] for u in c.ok("GET", "/api/v1/users")),
           "cohorts": sorted(x["id"] for x in c.ok("GET", "/api/v1/cohorts")["cohorts"]),
           "channels": len(c.ok("GET", "/api/v1/notification-channels"))}
    out["history"] = {k: len(c.ok("GET", f"/api/v1/kpis/{k}")["history"]) for k in out["kpis"]}
    return out


# --------------------------------------------------------------------------- tests


def test_first_start_banner():
    srv = S["srv"]
    text = "\n".join(srv.lines)
    check("first start: admin account admin@northstar.local" in text, f"admin line missing:\n{text}")
    check(f"{OPERATOR[0]} password {OPERATOR[1]} (operator)" in text and f"{VIEWER[0]} password {VIEWER[1]} (viewer)"
          in text, f"demo accounts line missing:\n{text}")
    log = open(srv.log_path, encoding="utf-8", errors="replace").read()
    m = re.search(r"demo operations: 2 scenarios with (\d+) actions, 4 KPIs with (\d+) days of history", log)
    check(m is not None, f"no seed summary in the log:\n{srv.log_tail()}")
    print(f"  first start (events + operations + listening): {srv.seconds:.1f} s; "
          f"{re.search(r'demo data: .*', log).group(0)}; {re.search(r'demo operations: .*', log).group(0)}")


def test_accounts_and_roles():
    admin = S["admin"]
    users = {u["email"]: u["role"] for u in admin.ok("GET", "/api/v1/users")}
    check_eq(users, {"admin@northstar.local": "admin", OPERATOR[0]: "operator", VIEWER[0]: "viewer"}, "demo users")
    for (email, password), role in ((OPERATOR, "operator"), (VIEWER, "viewer")):
        c, _ = login(S["srv"].port, email, password)
        me = c.ok("GET", "/api/v1/auth/me")
        check_eq((me["project"], me["role"]), ("demo", role), f"{email} /auth/me")
        S[role] = c
    # The viewer sees everything and may change nothing.
    check_eq(len(S["viewer"].ok("GET", "/api/v1/scenarios")), 2, "viewer lists the scenarios")
    S["viewer"].err("POST", "/api/v1/scenarios", {"name": "x"}, 403)


def test_scenarios_actions_cohorts():
    c, day = S["operator"], today()
    scenarios = c.ok("GET", "/api/v1/scenarios")
    check_eq(len(scenarios), 2, "scenarios")
    by_target = {}
    for s in scenarios:
        full = c.ok("GET", f"/api/v1/scenarios/{s['id']}")
        by_target[full["goal"]["target"]] = full
        check(full["status"] == "active" and full["owner"] and full["period"]["from"] <= day <= full["period"]["to"],
              f"scenario {s['name']}: active, owned, current period: {full}")
        check(1 <= len(full["success_criteria"]) <= 3 and full["pain_points"], f"{s['name']}: criteria, pain points")
        check(isinstance(full["goal"].get("kpi_id"), int), f"{s['name']}: goal.kpi_id {full['goal']}")
        cohort = c.ok("GET", f"/api/v1/cohorts/{full['key_user_group']['cohort_id']}")
        check(cohort["size"] > 0, f"{s['name']}: key user group cohort {cohort}")
        shown = full["key_user_group_cohort"]
        check_eq((shown["id"], shown["name"], shown["size"]), (cohort["id"], cohort["name"], cohort["size"]),
                 f"{s['name']}: the scenario shows its cohort's name and size")
        acts = full["actions"]
        check(4 <= len(acts) <= 6, f"{s['name']}: {len(acts)} actions")
        for a in acts:
            check(a["owner"] and a["due_date"] and a["start_date"] and a["delivery_standard"] and a["strategy"],
                  f"action fields: {a}")
        check(any(a["depends_on"] for a in acts), f"{s['name']}: dependencies")
        check(any(a["status"] == "done" for a in acts) and any(a["status"] == "in_progress" for a in acts),
              f"{s['name']}: statuses {[a['status'] for a in acts]}")
        gantt = c.ok("GET", f"/api/v1/scenarios/{s['id']}/gantt")
        check(gantt["critical_path"] and len(gantt["tasks"]) == len(acts), f"{s['name']}: gantt {gantt}")
    check_eq(sorted(by_target), [0.15, 0.2], "the two goals")
    check("首单" in by_target[0.2]["name"] and "召回" in by_target[0.15]["name"], "scenario names")
    every = [a for s in by_target.values() for a in s["actions"]]
    overdue = [a for a in every if a["due_date"] < day and a["status"] not in ("done", "cancelled")]
    check_eq(len(overdue), 1, "overdue actions")
    check_eq(overdue[0]["status"], "delayed", "the overdue action's status")
    check(any(a["resources"].get("budget") for a in every) and any(a["resources"].get("engineer_days") for a in every),
          "resources with budget and engineer-days")
    # The daily job ran at the first start: it stored the delay (audit entry by the scheduler).
    audit = S["admin"].ok("GET", "/api/v1/audit-log?limit=1000")
    check(any(e["action"] == "auto_delayed" and e["actor"] == "scheduler" for e in audit), "auto_delayed audited")
    digest = c.ok("GET", "/api/v1/reminders")
    check(any(o["overdue"] for o in digest), f"the reminder digest lists the overdue action: {digest}")
    S["scenarios"] = by_target


def test_kpis_history_lights():
    c = S["viewer"]
    kpis = c.ok("GET", "/api/v1/kpis")
    check(len(kpis) >= 4, f"{len(kpis)} KPIs")
    for k in kpis:
        full = c.ok("GET", f"/api/v1/kpis/{k['id']}")
        days = {h["as_of"] for h in full["history"] if h["actual"] is not None}
        check(len(days) >= 14, f"KPI {k['name']}: {len(days)} days of history with a value")
        check(full["history"][-1]["as_of"] == today(), f"KPI {k['name']}: last snapshot is today's")
        check(full["light"] in ("red", "yellow", "green") and full["target"] is not None, f"KPI {k['name']}: {full}")
        check(isinstance(full.get("forecast"), dict) and "projected" in full["forecast"], f"forecast {full['forecast']}")
        taken = [h["taken_at"] for h in full["history"]]
        check(taken == sorted(taken) and len(set(taken)) == len(taken), f"KPI {k['name']}: snapshot times {taken}")
    goal = {s["goal"]["target"]: s["goal"]["kpi_id"] for s in S["scenarios"].values()}
    first_order = c.ok("GET", f"/api/v1/kpis/{goal[0.2]}")
    check_eq((first_order["target"], first_order["light"]), (0.2, "red"), "first-order conversion: target, light")
    check(0.1 < first_order["actual"] < 0.18, f"first-order conversion {first_order['actual']}")
    recall = c.ok("GET", f"/api/v1/kpis/{goal[0.15]}")
    check_eq(recall["target"], 0.15, "recall target")
    check(0.1 < recall["actual"] < 0.25 and recall["denominator"] >= 100, f"recall {recall}")
    # The KPIs measure the demo events: an independent funnel query gives the recall numbers.
    q = {"kind": "funnel", "steps": recall["query"]["steps"], "window_seconds": 7 * 86400,
         "date_from": recall["period"]["from"], "date_to": recall["as_of"]}
    f = c.ok("POST", "/api/v1/query", q)
    check_eq((f["steps"][-1]["count"], f["steps"][0]["count"]), (recall["numerator"], recall["denominator"]),
             "recall KPI vs the funnel query")
    S["first_order_kpi"] = goal[0.2]


def test_firing_alert_with_root_cause():
    c = S["viewer"]
    firing = c.ok("GET", "/api/v1/alerts?state=firing")
    check(len(firing) >= 1, "no firing alert")
    mine = [a for a in firing if a["kpi_id"] == S["first_order_kpi"]]
    check_eq(len(mine), 1, "firing alerts of the first-order conversion KPI")
    a = mine[0]
    rc = a["detail"]["root_cause"]
    check(rc.get("hint") and rc["top_contributors"], f"root cause: {rc}")
    check_eq((rc["top_contributors"][0]["dimension"], rc["top_contributors"][0]["value"]), ("channel", "feed_ads"),
             "the biggest contributor")
    check("channel=feed_ads" in a["message"] and "vs target 20.0%" in a["message"], f"message {a['message']}")
    check(rc["step"] and rc["step"]["to"] == "pay", f"the step that moved: {rc['step']}")
    kpi = c.ok("GET", f"/api/v1/kpis/{S['first_order_kpi']}")
    check_eq(kpi["auto_reason"], a["message"], "the KPI's automatic reason is the alert's message")
    check_eq(len(c.ok("GET", "/api/v1/alert-rules")), 3, "alert rules")
    check_eq(c.ok("GET", "/api/v1/notification-channels"), [], "no demo notification channel")


def test_restart_creates_nothing_twice():
    before = snapshot(S["admin"])
    S["srv"].stop()
    srv = DemoServer(S["binary"], S["data"], S["log"]).start()
    S["srv"] = srv
    text = "\n".join(srv.lines)
    check("demo accounts" not in text and "first start" not in text, f"restart printed the first-start banner:\n{text}")
    admin, _ = login(srv.port, "admin@northstar.local", S["admin_password"])
    check_eq(snapshot(admin), before, "everything after a restart")
    check_eq(open(S["log"]).read().count("demo operations:"), 1, "seed runs in the log")


def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    tmp = tempfile.mkdtemp(prefix="ns-demo-")
    ok = True
    try:
        S.update(binary=binary, data=os.path.join(tmp, "data"), log=os.path.join(tmp, "server.log"))
        t0 = time.time()
        S["srv"] = DemoServer(binary, S["data"], S["log"]).start()
        cred = open(os.path.join(S["data"], "admin-credentials.txt")).read()
        S["admin_password"] = re.search(r"password: (\S+)", cred).group(1)
        S["admin"], _ = login(S["srv"].port, "admin@northstar.local", S["admin_password"])
        for t in (test_first_start_banner, test_accounts_and_roles, test_scenarios_actions_cohorts,
                  test_kpis_history_lights, test_firing_alert_with_root_cause, test_restart_creates_nothing_twice):
            ok = run_one(t) and ok
        S["srv"].stop()
        print(f"demo_test: {time.time() - t0:.1f}s")
    except Exception as e:  # noqa: BLE001
        ok = False
        print(f"FAIL setup: {e}")
        if "srv" in S:
            print(S["srv"].log_tail(40))
            S["srv"].proc.kill()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ALL PASSED" if ok else "SOME FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
