#!/usr/bin/env python3
"""The operations API as a user sees it, against a real server.

Usage: ops_api_test.py /path/to/northstar

Scenario validation errors; actions (statuses, the dependency DAG, deletes); the Gantt
critical path of a small DAG worked out by hand; overdue actions marked `delayed` by the
daily job with an audit entry by "scheduler"; CSV import of actions with the Chinese
template headings (a bad row refuses the whole file and names its line); KPIs of every
reduce kind computed from events sent with the write key (local times in Asia/Shanghai,
a custom period) against values worked out by hand; lights at their boundaries; the
GET /kpis/{id} shape and its growing history; alert rules (fire once, de-duplicate,
acknowledge, resolve, cooldown); notification channels (creation errors, the test message
to a loopback receiver with the generic webhook's HMAC checked here, retries, the delivery
log); CSV and XLSX exports in zh and en with the template headings; evaluation, SOP and a
new scenario from the SOP; settings; `northstar backup` while the server runs.

Standard library only. Prints one PASS/FAIL line per test and "N passed, M failed".
"""

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq, run_one  # noqa: E402
from opsclient import Receiver, create_project, webhook_signature  # noqa: E402

PROJECT = "shop"
TZ = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai, no DST
PERIOD = {"type": "custom", "from": "2025-03-03", "to": "2025-03-09"}  # Monday to Sunday
CTX = {}

HEADINGS = {  # src/ops/report_tables.cc
    ("requirements", "zh"): ["场景名称", "业务模块", "核心目标", "关键用户群", "用户痛点", "成功标准", "负责人", "周期", "状态"],
    ("requirements", "en"): ["Scenario", "Business module", "Core goal", "Key user group", "User pain points",
                             "Success criteria", "Owner", "Period", "Status"],
    ("process", "zh"): ["编号", "策略方向", "具体动作", "负责人", "开始日期", "截止日期", "所需资源", "交付标准", "状态", "依赖", "进展"],
    ("process", "en"): ["ID", "Strategy", "Action", "Owner", "Start date", "Due date", "Resources", "Delivery standard",
                        "Status", "Depends on", "Progress"],
    ("monitoring", "zh"): ["场景", "指标", "目标值", "实际值", "达成率", "状态灯", "变化原因", "负责人", "更新时间"],
    ("monitoring", "en"): ["Scenario", "KPI", "Target", "Actual", "Achievement rate", "Light", "Reason for change", "Owner",
                           "Updated at"],
    ("evaluation", "zh"): ["周期", "指标", "目标", "结果", "达成率", "做得好的", "问题", "下一步措施", "负责人"],
    ("evaluation", "en"): ["Period", "KPI", "Target", "Result", "Achievement", "What worked", "Problems", "Next measures",
                           "Owner"],
}
SHEETS = {"zh": ["场景需求表", "流程设计表", "执行监控表", "效果评估表"],
          "en": ["Scenario requirements", "Process design", "Execution monitoring", "Effect evaluation"]}


def S():
    return CTX["secret"]


def local(day, hh=12, mm=0):
    """An ISO timestamp at a local (UTC+8) time of day 'YYYY-MM-DD'."""
    y, m, d = map(int, day.split("-"))
    return dt.datetime(y, m, d, hh, mm, tzinfo=TZ).isoformat()


def send(events):
    r = CTX["write"].req("POST", "/api/v1/events", events)
    check(r.status == 200 and r.json()["accepted"] == len(events), f"POST /api/v1/events: {r}")


def ev(name, who, ts, **props):
    e = {"event": name, "distinct_id": who, "timestamp": ts}
    if props:
        e["properties"] = props
    return e


def today_local():
    return dt.datetime.now(TZ).date()


def scenario(name, **fields):
    return S().ok("POST", "/api/v1/scenarios", {"name": name, **fields}, 201)["id"]


def action(sid, text, **fields):
    return S().ok("POST", f"/api/v1/scenarios/{sid}/actions", {"action": text, **fields}, 201)["id"]


def kpi(name, query, reduce, target=None, **fields):
    body = {"name": name, "query": query, "reduce": reduce, "period": PERIOD, **fields}
    if target is not None:
        body["target"] = target
    return S().ok("POST", "/api/v1/kpis", body, 201)["id"]


def refresh(kid):
    return S().ok("POST", f"/api/v1/kpis/{kid}/refresh")


def audit(limit=200):
    return S().ok("GET", f"/api/v1/audit-log?limit={limit}")


def approx(a, b, what, tol=1e-9):
    if a is None or abs(a - b) > tol:
        raise TestFailure(f"{what}: expected {b!r}, got {a!r}")


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# --------------------------------------------------------------------------- scenarios

@test
def scenario_validation():
    s = S()
    e = s.err("POST", "/api/v1/scenarios", {"owner": "ann"})
    check_eq((e["field"], e["message"]), ("name", "name: required"), "missing name")
    check_eq(s.err("POST", "/api/v1/scenarios", {"name": ""})["field"], "name", "empty name")
    e = s.err("POST", "/api/v1/scenarios", {"name": "too many", "success_criteria": ["a", "b", "c", "d"]})
    check_eq(e["field"], "success_criteria", "4 success criteria: field")
    check("at most 3 criteria (got 4)" in e["message"] and "split it into several scenarios" in e["message"],
          f"4 success criteria: the explanation ({e['message']})")
    sid = scenario("three criteria", success_criteria=["a", {"metric": "pay rate", "target": 0.2}, "c"])
    for period, field in [({"from": "2025-02-30", "to": "2025-03-01"}, "period.from"),
                          ({"from": "2025-03-10", "to": "2025-03-01"}, "period.to"),
                          ({"from": "2025-03-01"}, "period"), ("2025-03", "period"),
                          ({"from": "2025/03/01", "to": "2025-03-31"}, "period.from")]:
        check_eq(s.err("POST", "/api/v1/scenarios", {"name": "x", "period": period})["field"], field, f"period {period}")
    e = s.err("POST", "/api/v1/scenarios", {"name": "x", "colour": "red"})
    check_eq(e["field"], "colour", "unknown field")
    check("unknown field 'colour'" in e["message"] and "success_criteria" in e["message"], f"lists known fields: {e}")
    check_eq(s.err("POST", "/api/v1/scenarios", {"name": "x", "status": "running"})["field"], "status", "bad status")
    check_eq(s.err("POST", "/api/v1/scenarios", {"name": "x", "funnel": {"steps": []}})["field"], "funnel", "bad funnel")
    check_eq(s.err("POST", "/api/v1/scenarios", {"name": "x", "goal": {"target": "20%"}})["field"], "goal.target",
             "goal target not a number")
    check_eq(s.req("POST", "/api/v1/scenarios", b"<xml/>", ctype="application/xml").status, 415, "XML body")
    check_eq(s.req("POST", "/api/v1/scenarios", b"{not json", ctype="application/json").status, 400, "bad JSON")
    # A PATCH is validated as a whole and refused without a change.
    s.err("PATCH", f"/api/v1/scenarios/{sid}", {"success_criteria": [1, 2, 3, 4]})
    s.err("PATCH", f"/api/v1/scenarios/{sid}", {"name": None})
    got = s.ok("GET", f"/api/v1/scenarios/{sid}")
    check_eq(len(got["success_criteria"]), 3, "criteria after refused PATCHes")
    check_eq(got["name"], "three criteria", "name after refused PATCHes")
    # The full document, as the issue names its fields.
    sid = scenario("新用户首单转化", business_module="conversion",
                   goal={"metric": "first-order conversion", "target": 0.2, "period": "month"},
                   key_user_group={"description": "registered within 7 days"}, pain_points=["checkout too long"],
                   success_criteria=["conversion ≥ 20%"], owner="王芳", period={"from": "2025-03-01", "to": "2025-03-31"},
                   funnel={"steps": [{"event": "register"}, {"event": "pay"}], "window_seconds": 604800})
    got = s.ok("GET", f"/api/v1/scenarios/{sid}")
    for f in ("name", "business_module", "goal", "key_user_group", "pain_points", "success_criteria", "owner", "period",
              "status", "funnel", "actions", "id", "created_at", "updated_at"):
        check(f in got, f"scenario field {f} in {sorted(got)}")
    check_eq((got["status"], got["actions"], got["owner"]), ("active", [], "王芳"), "defaults and UTF-8 text")
    check_eq(got["funnel"]["kind"], "funnel", "funnel kind")
    listed = [x for x in s.ok("GET", "/api/v1/scenarios") if x["id"] == sid]
    check_eq(listed[0]["action_counts"], {"not_started": 0, "in_progress": 0, "done": 0, "delayed": 0, "cancelled": 0},
             "action counts in the list")
    p = s.ok("PATCH", f"/api/v1/scenarios/{sid}", {"status": "paused"})
    check_eq((p["status"], p["name"]), ("paused", "新用户首单转化"), "PATCH returns the scenario")
    s.ok("DELETE", f"/api/v1/scenarios/{sid}")
    check_eq(s.req("GET", f"/api/v1/scenarios/{sid}").status, 404, "deleted scenario")
    check_eq(s.req("DELETE", f"/api/v1/scenarios/{sid}").status, 404, "deleting twice")


@test
def actions_and_dependencies():
    s = S()
    sid = scenario("actions", period={"from": "2025-04-01", "to": "2025-04-30"})
    ids = {}
    for st in ("not_started", "in_progress", "done", "delayed", "cancelled"):
        ids[st] = action(sid, f"status {st}", status=st)
        check_eq(s.ok("GET", f"/api/v1/actions/{ids[st]}")["status"], st, f"status {st}")
    e = s.err("POST", f"/api/v1/scenarios/{sid}/actions", {"action": "x", "status": "finished"})
    check_eq(e["field"], "status", "bad status field")
    check("not_started, in_progress, done, delayed, cancelled" in e["message"], f"lists statuses: {e}")
    check_eq(s.err("POST", f"/api/v1/scenarios/{sid}/actions", {"strategy": "no action"})["field"], "action",
             "missing action")
    check_eq(s.err("POST", f"/api/v1/scenarios/{sid}/actions",
                   {"action": "x", "start_date": "2025-04-10", "due_date": "2025-04-09"})["field"], "due_date",
             "due before start")
    check_eq(s.err("POST", f"/api/v1/scenarios/{sid}/actions", {"action": "x", "resources": {"budget": -1}})["field"],
             "resources.budget", "negative budget")
    check_eq(s.err("POST", f"/api/v1/scenarios/{sid}/actions", {"action": "x", "owner": "o", "when": 1})["field"],
             "when", "unknown action field")
    check_eq(s.req("POST", "/api/v1/scenarios/999999/actions", {"action": "x"}).status, 404, "action of no scenario")
    a = action(sid, "A")
    b = action(sid, "B", depends_on=[a])
    c = action(sid, "C", depends_on=[b], resources={"budget": 5000, "currency": "CNY", "engineer_days": 2.5,
                                                     "channels": ["sms", "push"]})
    e = s.err("PATCH", f"/api/v1/actions/{a}", {"depends_on": [c]})
    check_eq(e["field"], "depends_on", "cycle field")
    check(f"would create a cycle ({a} -> {c} -> {b} -> {a})" in e["message"], f"cycle named: {e['message']}")
    check("self" in s.err("PATCH", f"/api/v1/actions/{a}", {"depends_on": [a]})["message"], "self dependency")
    check_eq(s.err("PATCH", f"/api/v1/actions/{a}", {"depends_on": [b, b]})["field"], "depends_on", "duplicate dependency")
    other = action(scenario("other scenario"), "X")
    e = s.err("PATCH", f"/api/v1/actions/{a}", {"depends_on": [other]})
    check(f"action {other} is not an action of scenario {sid}" in e["message"], f"other scenario's action: {e}")
    e = s.err("POST", f"/api/v1/scenarios/{sid}/actions", {"action": "D", "depends_on": [other]})
    check(f"action {other} is not an action of scenario {sid}" in e["message"], f"new action, other scenario's: {e}")
    check_eq(s.ok("GET", f"/api/v1/actions/{a}")["depends_on"], [], "A unchanged after refused PATCHes")
    n_actions = len(s.ok("GET", f"/api/v1/scenarios/{sid}")["actions"])
    check_eq(n_actions, 8, "the refused new action was not stored")
    # Progress notes are appended with a date.
    got = s.ok("PATCH", f"/api/v1/actions/{c}", {"progress_note": {"date": "2025-04-03", "note": "券包上线"}})
    got = s.ok("PATCH", f"/api/v1/actions/{c}", {"progress_note": "第二条"})
    check_eq([p["note"] for p in got["progress"]], ["券包上线", "第二条"], "progress notes")
    check_eq(got["progress"][0]["date"], "2025-04-03", "progress date")
    check(re.fullmatch(r"\d{4}-\d{2}-\d{2}", got["progress"][1]["date"]), f"default progress date: {got['progress']}")
    check_eq(got["resources"], {"budget": 5000, "currency": "CNY", "engineer_days": 2.5, "channels": ["sms", "push"]},
             "resources")
    # Deleting B removes it from C's dependencies.
    s.ok("DELETE", f"/api/v1/actions/{b}")
    check_eq(s.ok("GET", f"/api/v1/actions/{c}")["depends_on"], [], "C after B was deleted")
    check_eq(s.req("GET", f"/api/v1/actions/{b}").status, 404, "deleted action")
    s.ok("PATCH", f"/api/v1/actions/{a}", {"depends_on": [c]})  # no cycle any more
    listed = [x for x in s.ok("GET", "/api/v1/scenarios") if x["id"] == sid][0]
    check_eq(listed["action_counts"], {"not_started": 3, "in_progress": 1, "done": 1, "delayed": 1, "cancelled": 1},
             "action counts (A, C and the not_started one)")
    # Deleting the scenario deletes its actions.
    s.ok("DELETE", f"/api/v1/scenarios/{sid}")
    check_eq(s.req("GET", f"/api/v1/actions/{a}").status, 404, "action of a deleted scenario")


@test
def overdue_actions_become_delayed():
    # Runs before any other test leaves an open action with a past due date (the job is
    # project-wide, and its count is checked exactly).
    today = today_local()
    past, fut = (today - dt.timedelta(days=1)).isoformat(), today.isoformat()
    sid = scenario("overdue", period={"from": (today - dt.timedelta(days=30)).isoformat(), "to": fut})
    late1 = action(sid, "late not started", due_date=past)
    late2 = action(sid, "late in progress", due_date=past, status="in_progress")
    done = action(sid, "late but done", due_date=past, status="done")
    canc = action(sid, "late but cancelled", due_date=past, status="cancelled")
    due_today = action(sid, "due today", due_date=fut)
    no_due = action(sid, "no due date")
    before = audit(1)[0]["id"]
    r = S().ok("POST", "/api/v1/jobs/daily")
    check_eq(r["actions_marked_delayed"], 2, f"actions marked delayed ({r})")
    want = {late1: "delayed", late2: "delayed", done: "done", canc: "cancelled", due_today: "not_started",
            no_due: "not_started"}
    for i, st in want.items():
        check_eq(S().ok("GET", f"/api/v1/actions/{i}")["status"], st, f"status of action {i}")
    entries = sorted((e for e in audit() if e["id"] > before and e["entity"] == "action"), key=lambda e: e["id"])
    check_eq([(e["actor"], e["action"], e["entity_id"], e["before"], e["after"]["status"]) for e in entries],
             [("scheduler", "auto_delayed", late1, {"status": "not_started"}, "delayed"),
              ("scheduler", "auto_delayed", late2, {"status": "in_progress"}, "delayed")], "audit entries of the job")
    check_eq(S().ok("POST", "/api/v1/jobs/daily")["actions_marked_delayed"], 0, "second run")
    digest = {d["owner"]: d for d in S().ok("GET", "/api/v1/reminders")}
    overdue = [x["id"] for x in digest["(no owner)"]["overdue"]]
    check(late1 in overdue and late2 in overdue and done not in overdue, f"digest overdue {overdue}")
    check(due_today in [x["id"] for x in digest["(no owner)"]["due_soon"]], "digest: due today is due soon")


@test
def gantt_critical_path():
    # A (May 1-3) -> B (May 1-2, so it slips to May 4-5); C (May 1) -> D (May 2-8).
    # Forward pass: ef(A)=May 3, B starts May 4, ends May 5; C ends May 1, D May 2-8; finish May 8.
    # Backward pass: D ls=May 2 (slack 0), C ls=May 1 (slack 0), B ls=May 7 (slack 3), A ls=May 4 (slack 3).
    sid = scenario("gantt", period={"from": "2025-05-01", "to": "2025-05-31"})
    a = action(sid, "A", start_date="2025-05-01", due_date="2025-05-03")
    b = action(sid, "B", start_date="2025-05-01", due_date="2025-05-02", depends_on=[a])
    c = action(sid, "C", start_date="2025-05-01", due_date="2025-05-01")
    d = action(sid, "D", start_date="2025-05-02", due_date="2025-05-08", depends_on=[c])
    g = S().ok("GET", f"/api/v1/scenarios/{sid}/gantt")
    check_eq(g["critical_path"], [c, d], "critical path")
    check_eq(g["finish"], "2025-05-08", "finish")
    rows = {t["id"]: t for t in g["tasks"]}
    want = {a: ("2025-05-01", "2025-05-03", "2025-05-01", "2025-05-03", "2025-05-04", "2025-05-06", 3, False, 0, []),
            b: ("2025-05-01", "2025-05-02", "2025-05-04", "2025-05-05", "2025-05-07", "2025-05-08", 3, False, 3, [a]),
            c: ("2025-05-01", "2025-05-01", "2025-05-01", "2025-05-01", "2025-05-01", "2025-05-01", 0, True, 0, []),
            d: ("2025-05-02", "2025-05-08", "2025-05-02", "2025-05-08", "2025-05-02", "2025-05-08", 0, True, 0, [c])}
    for i, w in want.items():
        t = rows[i]
        got = (t["start"], t["due"], t["earliest_start"], t["earliest_finish"], t["latest_start"], t["latest_finish"],
               t["slack_days"], t["critical"], t["schedule_slip_days"], t["depends_on"])
        check_eq(got, w, f"gantt row of {t['action']}")
    check_eq(S().req("GET", "/api/v1/scenarios/999999/gantt").status, 404, "gantt of no scenario")


@test
def csv_import_with_chinese_headings():
    s = S()
    sid = scenario("导入", period={"from": "2025-06-01", "to": "2025-06-30"})
    text = ("\ufeff策略方向,具体动作,负责人,开始日期,截止日期,预算,研发人天,渠道,交付标准,状态\r\n"
            "拉新,首单优惠券包,张三,2025-06-01,2025-06-10,5000,3,短信、推送,\"转化率≥20%, 7 天内\",进行中\r\n"
            "留存,24 小时内短信提醒,李四,2025-06-02,2025-06-05,,1.5,短信,,未开始\r\n")
    r = s.ok("POST", f"/api/v1/scenarios/{sid}/actions/import", text.encode(), 201, ctype="text/csv")
    check_eq(r["imported"], 2, "imported")
    acts = s.ok("GET", f"/api/v1/scenarios/{sid}")["actions"]
    a, b = acts
    check_eq((a["strategy"], a["action"], a["owner"], a["start_date"], a["due_date"], a["delivery_standard"], a["status"]),
             # imported as in progress; due in 2025, so it reads as delayed at once (issue 8)
             ("拉新", "首单优惠券包", "张三", "2025-06-01", "2025-06-10", "转化率≥20%, 7 天内", "delayed"), "row 2")
    check_eq(a["resources"], {"budget": 5000, "engineer_days": 3, "channels": ["短信", "推送"]}, "row 2 resources")
    check_eq((b["action"], b["status"], b["resources"]), ("24 小时内短信提醒", "delayed",
                                                          {"engineer_days": 1.5, "channels": ["短信"]}), "row 3")
    check_eq(r["ids"], [a["id"], b["id"]], "ids")
    # English headings (any case) and API field names.
    en = "Strategy Direction,Concrete Action,Owner,Due Date,Status\nretention,SMS reminder,amy,2025-06-20,in progress\n"
    check_eq(s.ok("POST", f"/api/v1/scenarios/{sid}/actions/import", en, 201, ctype="text/csv")["imported"], 1, "en")
    n = len(s.ok("GET", f"/api/v1/scenarios/{sid}")["actions"])
    # A bad row refuses the whole file and names its line.
    bad = [("具体动作,截止日期\n好的一行,2025-06-01\n坏的一行,2025-13-01\n", "CSV line 3: due_date"),
           ("具体动作,状态\n好的一行,进行中\n坏的一行,完成了\n", "CSV line 3: status"),
           ("具体动作,预算\n坏的一行,五千\n", "CSV line 2: budget '五千' is not a number"),
           ("具体动作,负责人\n好的一行,张三\n,李四\n", "CSV line 3: action"),
           ("具体动作,颜色\n一行,红\n", "unknown column '颜色'"),
           ("", "CSV is empty")]
    for body, want in bad:
        e = s.err("POST", f"/api/v1/scenarios/{sid}/actions/import", body, 400, ctype="text/csv")
        check(want in e["message"], f"import error for {body!r}: expected {want!r} in {e['message']!r}")
    check_eq(len(s.ok("GET", f"/api/v1/scenarios/{sid}")["actions"]), n, "nothing imported from refused files")
    check_eq(s.req("POST", "/api/v1/scenarios/999999/actions/import", "具体动作\nx\n", ctype="text/csv").status, 404,
             "import into no scenario")


# --------------------------------------------------------------------------- KPIs

def kpi_events():
    """Events of the KPI tests, at local times; PERIOD is Mon 2025-03-03 .. Sun 2025-03-09."""
    e = []
    # k_pay: 2, 3, 0, 5, 1, 0, 4 on Mar 3..9 = 15; the first and the last are near local
    # midnight (other UTC days); two just outside the period must not count.
    per_day = {"2025-03-03": 2, "2025-03-04": 3, "2025-03-06": 5, "2025-03-07": 1, "2025-03-09": 4}
    for day, n in per_day.items():
        for i in range(n):
            e.append(ev("k_pay", f"p{i}", local(day, 12, i)))
    e[0]["timestamp"] = local("2025-03-03", 7, 0)  # 2025-03-02T23:00Z
    e[-1]["timestamp"] = local("2025-03-09", 23, 59)
    e.append(ev("k_pay", "px", local("2025-03-02", 23, 30)))  # Sunday before
    e.append(ev("k_pay", "px", local("2025-03-10", 1, 0)))  # 2025-03-09T17:00Z, but Monday Mar 10 locally
    # k_refund: 2 on Mar 4, 3 on Mar 6 = 5.
    e += [ev("k_refund", f"r{i}", local("2025-03-04", 15, i)) for i in range(2)]
    e += [ev("k_refund", f"r{i}", local("2025-03-06", 15, i)) for i in range(3)]
    # Funnel f_view -> f_cart -> f_pay on Mar 5: 10 view, 6 of them add to cart, 3 of those pay.
    for i in range(10):
        e.append(ev("f_view", f"f{i}", local("2025-03-05", 10, 0)))
        if i < 6:
            e.append(ev("f_cart", f"f{i}", local("2025-03-05", 10, 5)))
        if i < 3:
            e.append(ev("f_pay", f"f{i}", local("2025-03-05", 10, 10)))
    # Retention r_signup -> r_visit: cohort Mar 3 = 4 persons (2 back on Mar 4, 1 on Mar 6),
    # cohort Mar 4 = 2 (1 back on Mar 5), cohort Mar 9 = 3 (day 1 is after the period: left out).
    for i in range(4):
        e.append(ev("r_signup", f"c3-{i}", local("2025-03-03", 9)))
    e += [ev("r_visit", "c3-0", local("2025-03-04", 9)), ev("r_visit", "c3-1", local("2025-03-04", 20)),
          ev("r_visit", "c3-2", local("2025-03-06", 9))]
    e += [ev("r_signup", "c4-0", local("2025-03-04", 9)), ev("r_signup", "c4-1", local("2025-03-04", 9)),
          ev("r_visit", "c4-0", local("2025-03-05", 9))]
    for i in range(3):
        e += [ev("r_signup", f"c9-{i}", local("2025-03-09", 9)), ev("r_visit", f"c9-{i}", local("2025-03-10", 9))]
    # Lights: 9 and 10 events.
    e += [ev("light9", f"l{i}", local("2025-03-05", 11)) for i in range(9)]
    e += [ev("light10", f"l{i}", local("2025-03-05", 11)) for i in range(10)]
    # Alerts: 3 on Sat Mar 8, 2 on Sun Mar 9 (5 in the period).
    e += [ev("al", f"a{i}", local("2025-03-08", 11)) for i in range(3)]
    e += [ev("al", f"a{i}", local("2025-03-09", 11)) for i in range(2)]
    return e


def trends(event, math="total"):
    return {"kind": "trends", "series": [{"event": event, "math": math}]}


@test
def kpi_reduce_kinds():
    send(kpi_events())
    sum_k = kpi("pay count", trends("k_pay"), {"series": 0, "op": "sum"}, 20, owner="王芳")
    checks = [(sum_k, 15.0, "trends sum"),
              (kpi("pay avg", trends("k_pay"), {"series": 0, "op": "avg"}), 15 / 7, "trends avg over 7 days"),
              (kpi("pay last", trends("k_pay"), {"series": 0, "op": "last"}), 4.0, "trends last"),
              (kpi("pay max", trends("k_pay"), {"series": 0, "op": "max"}), 5.0, "trends max"),
              (kpi("pay min", trends("k_pay"), {"series": 0, "op": "min"}), 0.0, "trends min")]
    fq = {"kind": "funnel", "steps": [{"event": "f_view"}, {"event": "f_cart"}, {"event": "f_pay"}], "window_seconds": 86400}
    f13 = kpi("view to pay", fq, {"from_step": 1, "to_step": 3}, 0.3)
    checks += [(f13, 0.3, "funnel 1->3"), (kpi("cart to pay", fq, {"from_step": 2, "to_step": 3}), 0.5, "funnel 2->3"),
               (kpi("funnel default", fq, {}), 0.3, "funnel default steps (first to last)")]
    rq = {"kind": "retention", "start_event": "r_signup", "return_event": "r_visit", "period": "day", "periods": 3}
    checks.append((kpi("day-1 retention", rq, {"period": 1}), 3 / 6, "retention day 1 (complete cohorts only)"))
    checks.append((kpi("day-0 retention", rq, {"period": 0}), 0.0, "retention day 0"))
    refund = kpi("refunds", trends("k_refund"), {"series": 0})
    checks.append((refund, 5.0, "trends sum, default op"))
    ratio = kpi("pay per refund", None, {"formula": f"k{sum_k} / k{refund}"})
    checks.append((ratio, 3.0, "formula kA / kB"))
    checks.append((kpi("formula 2", None, {"formula": f"(k{sum_k} - k{refund}) * 2 + 0.5"}), 20.5, "formula arithmetic"))
    checks.append((kpi("formula of formula", None, {"formula": f"k{ratio} * 10"}), 30.0, "formula of a formula"))
    for kid, want, what in checks:
        got = refresh(kid)
        approx(got["actual"], want, what)
    got = S().ok("GET", f"/api/v1/kpis/{f13}")
    check_eq((got["numerator"], got["denominator"]), (3.0, 10.0), "funnel numerator/denominator")
    check_eq((got["achievement_rate"], got["light"]), (1.0, "green"), "funnel at target")
    got = S().ok("GET", f"/api/v1/kpis/{sum_k}")
    check_eq(got["period"], {"from": "2025-03-03", "to": "2025-03-09"}, "custom period")
    approx(got["achievement_rate"], 0.75, "achievement 15 / 20")
    check_eq(got["light"], "red", "light at 75%")
    daily = {d["date"]: d["value"] for d in got["daily"]}
    check_eq([daily[f"2025-03-0{i}"] for i in range(3, 10)], [2, 3, 0, 5, 1, 0, 4], "daily values (local days)")
    # The query's date range follows the KPI's period, whatever the saved query says.
    q = dict(trends("k_pay"), date_from="2020-01-01", date_to="2020-01-02")
    approx(refresh(kpi("dates ignored", q, {"series": 0}))["actual"], 15.0, "query dates replaced by the period")
    # Validation.
    s = S()
    bad = [({"name": "x", "query": trends("k_pay"), "reduce": {"series": 1}}, "reduce.series"),
           ({"name": "x", "query": trends("k_pay"), "reduce": {"series": 0, "op": "median"}}, "reduce.op"),
           ({"name": "x", "query": trends("k_pay")}, "reduce"),
           ({"name": "x", "query": fq, "reduce": {"from_step": 3, "to_step": 1}}, "reduce"),
           ({"name": "x", "query": fq, "reduce": {"from_step": 1, "to_step": 4}}, "reduce"),
           ({"name": "x", "query": rq, "reduce": {"period": 3}}, "reduce.period"),
           ({"name": "x", "reduce": {"formula": "k999999 / 2"}}, "reduce.formula"),
           ({"name": "x", "reduce": {"formula": f"k{sum_k} / "}}, "reduce.formula"),
           ({"name": "x", "reduce": {"formula": "2 * 3"}}, "reduce.formula"),
           ({"name": "x", "query": trends("k_pay"), "reduce": {"series": 0}, "period": {"type": "year"}}, "period.type"),
           ({"name": "x", "query": trends("k_pay"), "reduce": {"series": 0}, "period": {"type": "custom", "from": "2025-03-01"}},
            "period"),
           ({"name": "x", "query": trends("k_pay"), "reduce": {"series": 0}, "direction": "up"}, "direction"),
           ({"name": "x", "query": trends("k_pay"), "reduce": {"series": 0}, "target": "20"}, "target"),
           ({"name": "x", "query": trends("k_pay"), "reduce": {"series": 0}, "thresholds": {"green": 0.8, "yellow": 0.9}},
            "thresholds"),
           ({"name": "x", "query": trends("k_pay"), "reduce": {"series": 0}, "color": "red"}, "color"),
           ({"name": "x", "query": {"kind": "trends"}, "reduce": {"series": 0}}, None),
           ({"query": trends("k_pay"), "reduce": {"series": 0}}, "name"),
           ({"name": "x", "scenario_id": 999999, "query": trends("k_pay"), "reduce": {"series": 0}}, "scenario_id")]
    for body, field in bad:
        e = s.err("POST", "/api/v1/kpis", body)
        if field is not None:
            check_eq(e.get("field"), field, f"KPI error field for {json.dumps(body)} ({e['message']})")
    check_eq(s.req("GET", "/api/v1/kpis/999999").status, 404, "no KPI")
    CTX["kpis"] = {"sum": sum_k, "funnel": f13}


@test
def kpi_lights_at_the_boundaries():
    want = [  # (event with that many events, direction, target, thresholds, rate, light)
        ("light9", "higher", 9, None, 1.0, "green"),
        ("light9", "higher", 10, None, 0.9, "yellow"),
        ("light9", "higher", 9 / 0.899, None, 0.899, "red"),
        ("light9", "higher", 8, None, 9 / 8, "green"),
        ("light10", "lower", 10, None, 1.0, "green"),
        ("light10", "lower", 9, None, 0.9, "yellow"),
        ("light10", "lower", 8.99, None, 0.899, "red"),
        ("light10", "lower", 11, None, 1.1, "green"),
        ("light9", "higher", 10, {"green": 0.95, "yellow": 0.8}, 0.9, "yellow"),
        ("light9", "higher", 10, {"green": 0.9, "yellow": 0.5}, 0.9, "green"),
        ("light9", "higher", 10, {"green": 1.0, "yellow": 0.91}, 0.9, "red"),
    ]
    for event, direction, target, thr, rate, light in want:
        body = {"direction": direction}
        if thr:
            body["thresholds"] = thr
        kid = kpi(f"{event} {direction} {target}", trends(event), {"series": 0}, target, **body)
        got = refresh(kid)
        what = f"{event} ({got['actual']}) {direction} target {target} thresholds {thr}"
        approx(got["achievement_rate"], rate, f"{what}: rate", 1e-12)
        check_eq(got["light"], light, f"{what}: light")
    kid = kpi("no target", trends("light9"), {"series": 0})
    got = refresh(kid)
    check_eq((got["actual"], got["achievement_rate"], got["light"], got["forecast"]), (9.0, None, None, None),
             "a KPI without a target")


@test
def kpi_shape_and_history():
    kid = CTX["kpis"]["sum"]
    got = S().ok("GET", f"/api/v1/kpis/{kid}")
    for f in ("id", "name", "scenario_id", "query", "reduce", "target", "period", "direction", "owner", "thresholds",
              "actual", "achievement_rate", "light", "forecast", "history", "daily", "as_of", "refreshed_at"):
        check(f in got, f"GET /kpis/{{id}} has {f}: {sorted(got)}")
    check_eq((got["actual"], got["target"], got["direction"], got["owner"], got["as_of"]), (15.0, 20, "higher", "王芳",
                                                                                           "2025-03-09"), "KPI state")
    f = got["forecast"]
    check(isinstance(f, dict) and ("projected" in f or "error" in f), f"forecast: {f}")
    if "projected" in f:
        check_eq(f["period_end"], "2025-03-09", "forecast period end")
        check_eq(f["days_remaining"], 0, "a past period has no days left")
        for k in ("lower", "upper", "prob_reach_target", "summary", "method", "interval"):
            check(k in f, f"forecast has {k}: {f}")
    n = len(got["history"])
    check(n >= 1, "history after the first refresh")
    for i in range(2):
        r = refresh(kid)
        check_eq(len(r["history"]), n + i + 1, f"history after refresh {i + 1}")
    h = r["history"][-1]
    check_eq((h["actual"], h["target"], h["achievement_rate"], h["light"], h["period_from"], h["period_to"], h["as_of"]),
             (15.0, 20.0, 0.75, "red", "2025-03-03", "2025-03-09", "2025-03-09"), "history entry")
    check(r["history"][-1]["taken_at"] >= r["history"][-2]["taken_at"], "history in time order")
    # PATCH recomputes; the monitoring table shows it.
    S().ok("PATCH", f"/api/v1/kpis/{kid}", {"target": 15, "reason": "券包延期上线"})
    row = [x for x in S().ok("GET", "/api/v1/monitoring") if x["kpi_id"] == kid][0]
    check_eq((row["kpi"], row["target"], row["actual"], row["achievement_rate"], row["light"], row["reason"], row["owner"]),
             ("pay count", 15, 15.0, 1.0, "green", "券包延期上线", "王芳"), "monitoring row")
    for k in ("scenario", "auto_reason", "updated_at", "forecast"):
        check(k in row, f"monitoring row has {k}")


# --------------------------------------------------------------------------- alerts and channels

@test
def notification_channels():
    s, rx = S(), CTX["rx"]
    bad = [({"kind": "email", "url": rx.url()}, "kind"), ({"kind": "webhook", "url": "ftp://example.com/x"}, "url"),
           ({"kind": "webhook"}, "url"), ({"url": rx.url()}, "kind"),
           ({"kind": "webhook", "url": "http://exa mple.com/"}, "url"),
           ({"kind": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "secret": "s"}, "secret"),
           ({"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t", "secret": "abc"}, "secret"),
           ({"kind": "webhook", "url": rx.url(), "secret": " padded "}, "secret"),
           ({"kind": "webhook", "url": rx.url(), "secret": 42}, "secret"),
           ({"kind": "webhook", "url": rx.url(), "token": "x"}, "token")]
    for body, field in bad:
        check_eq(s.err("POST", "/api/v1/notification-channels", body).get("field"), field, f"channel {body}")
    secret = "whsec-测试-0123456789"
    ch = s.ok("POST", "/api/v1/notification-channels", {"name": "ops webhook", "kind": "webhook",
                                                        "url": rx.url("/signed"), "secret": secret}, 201)["id"]
    listed = [c for c in s.ok("GET", "/api/v1/notification-channels") if c["id"] == ch][0]
    check_eq((listed["name"], listed["kind"], listed["secret_set"]), ("ops webhook", "webhook", True), "listed channel")
    check(secret not in json.dumps(s.ok("GET", "/api/v1/notification-channels"), ensure_ascii=False),
          "the secret is not listed")
    check(secret not in json.dumps(audit(), ensure_ascii=False), "the secret is not in the audit log")
    r = s.ok("POST", f"/api/v1/notification-channels/{ch}/test")
    check_eq((r["ok"], r["attempts"], r["http_status"]), (True, 1, 200), f"test message ({r})")
    got = rx.received("/signed")
    check_eq(len(got), 1, "messages received")
    msg = got[0]
    check_eq(msg["headers"].get("x-northstar-signature"), webhook_signature(secret, msg["body"]), "HMAC-SHA256 signature")
    check("测试消息".encode() in msg["body"], "Chinese text sent as UTF-8, not escaped")
    body = json.loads(msg["body"])
    check_eq((body["title"], body["level"], body["data"]), ("[Northstar] test message / 测试消息", "info",
                                                            {"project": PROJECT, "test": True}), "test message body")
    sent = dt.datetime.fromisoformat(body["sent_at"].replace("Z", "+00:00")).timestamp() * 1000
    check_eq(int(msg["headers"]["x-northstar-timestamp"]), int(round(sent)), "timestamp header = sent_at")
    check(msg["headers"]["content-type"].startswith("application/json"), "content type")
    # A channel without a secret sends no signature; a failing receiver: 502 and the log.
    plain = s.ok("POST", "/api/v1/notification-channels", {"kind": "webhook", "url": rx.url("/plain")}, 201)["id"]
    s.ok("POST", f"/api/v1/notification-channels/{plain}/test")
    check("x-northstar-signature" not in rx.received("/plain")[0]["headers"], "no signature without a secret")
    rx.status = 400
    try:
        r = s.req("POST", f"/api/v1/notification-channels/{plain}/test")
        check_eq((r.status, r.json()["ok"], r.json()["attempts"], r.json()["http_status"]), (502, False, 1, 400),
                 f"a 400 from the receiver is not retried ({r})")
        rx.status = 503
        r = s.req("POST", f"/api/v1/notification-channels/{plain}/test")
        check_eq((r.status, r.json()["attempts"], r.json()["http_status"]), (502, 4, 503), f"a 503 is retried ({r})")
    finally:
        rx.status = 200
    log = s.ok("GET", "/api/v1/deliveries")
    check_eq([(d["channel_id"], d["ok"], d["attempts"], d["http_status"]) for d in log[:4]],
             [(plain, False, 4, 503), (plain, False, 1, 400), (plain, True, 1, 200), (ch, True, 1, 200)],
             "delivery log, newest first")
    check_eq((log[3]["channel"], log[3]["subject"]), ("ops webhook", "[Northstar] test message / 测试消息"), "log entry")
    check(log[0]["error"] != "", "failed delivery has an error")
    check_eq(s.req("POST", "/api/v1/notification-channels/999999/test").status, 404, "test of no channel")
    s.ok("DELETE", f"/api/v1/notification-channels/{plain}")
    check_eq(s.req("POST", f"/api/v1/notification-channels/{plain}/test").status, 404, "deleted channel")
    CTX["channel"], CTX["channel_secret"] = ch, secret


@test
def alert_rules_lifecycle():
    s, rx = S(), CTX["rx"]
    ch = CTX["channel"]
    kid = kpi("alert kpi", trends("al"), {"series": 0}, 10, owner="李雷")
    nk = kpi("alert kpi without target", trends("al"), {"series": 0})
    bad = [({"type": "below_target"}, "kpi_id"), ({"kpi_id": kid, "type": "weird"}, "type"),
           ({"kpi_id": kid, "threshold_pct": 0}, "threshold_pct"), ({"kpi_id": kid, "compare": "mom", "type": "change"},
                                                                    "compare"),
           ({"kpi_id": nk, "type": "below_target"}, "type"), ({"kpi_id": kid, "cooldown_minutes": -1}, "cooldown_minutes"),
           ({"kpi_id": kid, "channels": "all"}, "channels"), ({"kpi_id": kid, "severity": "high"}, "severity")]
    for body, field in bad:
        check_eq(s.err("POST", "/api/v1/alert-rules", body).get("field"), field, f"rule {body}")
    check_eq(s.req("POST", "/api/v1/alert-rules", {"kpi_id": kid, "channels": [999999]}).status, 404, "unknown channel")
    check_eq(s.req("POST", "/api/v1/alert-rules", {"kpi_id": 999999}).status, 404, "unknown KPI")
    rule = s.ok("POST", "/api/v1/alert-rules", {"kpi_id": kid, "channels": [ch]}, 201)["id"]
    change = s.ok("POST", "/api/v1/alert-rules", {"kpi_id": kid, "type": "change", "channels": [ch]}, 201)["id"]
    rules = {r["id"]: r for r in s.ok("GET", "/api/v1/alert-rules")}
    check_eq((rules[rule]["type"], rules[rule]["threshold_pct"], rules[rule]["cooldown_minutes"]),
             ("below_target", 10.0, 360), "below_target defaults")
    check_eq((rules[change]["threshold_pct"], rules[change]["compare"]), (15.0, "dod"), "change defaults")
    n0 = len(rx.received("/signed"))
    # 5 of 10: below target by 50% (fires); Sun 2 vs Sat 3: -33% d/d (fires).
    r = refresh(kid)
    fired = {a["rule_id"]: a for a in r["alerts_fired"]}
    check_eq(sorted(fired), sorted([rule, change]), f"alerts fired ({r['alerts_fired']})")
    check("alert kpi 5 vs target 10 (50% achieved)" in fired[rule]["message"], f"message: {fired[rule]['message']}")
    check("\u221233% d/d (3 \u2192 2 on 2025-03-09)" in fired[change]["message"], f"message: {fired[change]['message']}")
    msgs = rx.received("/signed")[n0:]
    check_eq(len(msgs), 2, "two messages sent")
    for m in msgs:
        check_eq(m["headers"]["x-northstar-signature"], webhook_signature(CTX["channel_secret"], m["body"]), "signature")
    body = json.loads(msgs[0]["body"])
    check_eq((body["data"]["state"], body["data"]["kpi_id"], body["level"]), ("firing", kid, "critical"), "alert message")
    check("Owner: 李雷" in body["text"], f"owner in the text: {body['text']}")
    check_eq(body["dedup_key"], f"alert-{fired[body['data']['rule_id']]['id']}", "dedup key")
    aid = fired[rule]["id"]
    got = s.ok("GET", f"/api/v1/alerts/{aid}")
    check_eq((got["state"], got["rule_id"], got["kpi_id"], got["acked_at"], got["resolved_at"]),
             ("firing", rule, kid, None, None), "firing alert")
    check_eq(got["detail"]["type"], "below_target", "detail type")
    # Again: de-duplicated (no new alert, no message), last_seen_at moves.
    time.sleep(0.01)
    r = refresh(kid)
    check_eq(r["alerts_fired"], [], "de-duplicated")
    check_eq(len(rx.received("/signed")), n0 + 2, "no new message")
    again = s.ok("GET", f"/api/v1/alerts/{aid}")
    check(again["last_seen_at"] > got["last_seen_at"], "last_seen_at moves")
    check_eq(len([a for a in s.ok("GET", "/api/v1/alerts?state=firing") if a["kpi_id"] == kid]), 2, "firing alerts")
    check("auto_reason" in s.ok("GET", f"/api/v1/kpis/{kid}"), "the alert's message becomes the KPI's automatic reason")
    # Acknowledge.
    a = s.ok("POST", f"/api/v1/alerts/{aid}/ack")
    check_eq((a["state"], a["acked_by"]), ("acknowledged", f"key:{PROJECT}/secret"), "acknowledged")
    check_eq(s.ok("POST", f"/api/v1/alerts/{aid}/ack")["state"], "acknowledged", "acknowledging twice")
    check_eq(refresh(kid)["alerts_fired"], [], "still open: nothing new")
    check_eq(s.ok("GET", f"/api/v1/alerts/{aid}")["state"], "acknowledged", "stays acknowledged")
    check_eq([x["id"] for x in s.ok("GET", "/api/v1/alerts?state=acknowledged")], [aid], "?state=acknowledged")
    check_eq(len([x for x in s.ok("GET", "/api/v1/alerts?state=open") if x["kpi_id"] == kid]), 2, "?state=open")
    check_eq(s.req("GET", "/api/v1/alerts?state=weird").status, 400, "bad state filter")
    # The KPI recovers: 5 more on Sunday -> 10 of 10, Sun 7 vs Sat 3.
    send([ev("al", f"b{i}", local("2025-03-09", 15)) for i in range(5)])
    n1 = len(rx.received("/signed"))
    check_eq(refresh(kid)["alerts_fired"], [], "nothing fires on recovery")
    for x in (aid, fired[change]["id"]):
        got = s.ok("GET", f"/api/v1/alerts/{x}")
        check(got["state"] == "resolved" and got["resolved_at"] is not None, f"resolved: {got}")
    resolved = [json.loads(m["body"]) for m in rx.received("/signed")[n1:]]
    check_eq(sorted(m["data"]["state"] for m in resolved), ["resolved", "resolved"], "resolution messages")
    check_eq(s.req("POST", f"/api/v1/alerts/{aid}/ack").status, 409, "acknowledging a resolved alert")
    # Below target again (target 20): the cooldown (360 min) holds the rule back; a rule
    # without cooldown fires.
    s.ok("PATCH", f"/api/v1/kpis/{kid}", {"target": 20})
    check_eq(refresh(kid)["alerts_fired"], [], "cooldown after resolution")
    eager = s.ok("POST", "/api/v1/alert-rules", {"kpi_id": kid, "cooldown_minutes": 0, "channels": [ch],
                                                 "name": "no cooldown"}, 201)["id"]
    fired = refresh(kid)["alerts_fired"]
    check_eq([a["rule_id"] for a in fired], [eager], "a rule without cooldown fires")
    s.ok("DELETE", f"/api/v1/alert-rules/{eager}")
    check_eq(s.req("DELETE", f"/api/v1/alert-rules/{eager}").status, 404, "deleting a rule twice")
    check_eq(s.req("GET", "/api/v1/alerts/999999").status, 404, "no alert")


# --------------------------------------------------------------------------- exports, evaluation, SOP

def export_scenario():
    if "export" in CTX:
        return CTX["export"]
    sid = scenario("新用户首单转化", business_module="转化", goal={"metric": "首单转化率", "target": 0.2},
                   key_user_group="7 天内注册", pain_points=["结账字段太多"], success_criteria=["首单转化率 ≥ 20%"],
                   owner="王芳", period={"from": "2025-03-03", "to": "2025-03-09"})
    a = action(sid, "首单优惠券包", strategy="拉新", owner="张三", start_date="2025-03-03", due_date="2025-03-05",
               resources={"budget": 5000, "channels": ["短信"]}, delivery_standard="券包上线", status="done")
    b = action(sid, "结账字段减到 3 个", strategy="转化", owner="李四", start_date="2025-03-04", due_date="2025-03-08",
               depends_on=[a], status="in_progress")
    # A dependency on a later action (added by PATCH): the SOP must keep it.
    c = action(sid, "注册后 24 小时内短信提醒", owner="张三", start_date="2025-03-06", due_date="2025-03-07")
    S().ok("PATCH", f"/api/v1/actions/{a}", {"depends_on": [c]})
    S().ok("PATCH", f"/api/v1/actions/{c}", {"status": "delayed"})
    k = kpi("首单转化率", {"kind": "funnel", "steps": [{"event": "f_view"}, {"event": "f_pay"}], "window_seconds": 86400},
            {"from_step": 1, "to_step": 2}, 0.2, scenario_id=sid, owner="王芳")
    refresh(k)
    CTX["export"] = (sid, (a, b, c), k)
    return CTX["export"]


def read_csv(raw):
    check(raw.startswith(b"\xef\xbb\xbf"), "CSV starts with a UTF-8 BOM")
    check(b"\r\n" in raw, "CSV lines end with CRLF")
    return list(csv.reader(io.StringIO(raw[3:].decode("utf-8"), newline="")))


@test
def csv_exports():
    sid, (a, b, c), k = export_scenario()
    for (table, lang), headings in HEADINGS.items():
        r = S().req("GET", f"/api/v1/scenarios/{sid}/export.csv?table={table}&lang={lang}")
        check_eq(r.status, 200, f"export {table} {lang}: {r}")
        check(r.headers["content-type"].startswith("text/csv"), f"content type {r.headers['content-type']}")
        check(f"scenario-{sid}-{table}.csv" in r.headers.get("content-disposition", ""), "attachment file name")
        rows = read_csv(r.body)
        check_eq(rows[0], headings, f"{table} {lang} header row")
        for row in rows[1:]:
            check_eq(len(row), len(headings), f"{table} {lang} row width")
        if table == "requirements":
            check_eq(rows[1][0], "新用户首单转化", "scenario name")
            check_eq(rows[1][8], "进行中" if lang == "zh" else "Active", "scenario status label")
        if table == "process":
            check_eq([x[2] for x in rows[1:]], ["首单优惠券包", "结账字段减到 3 个", "注册后 24 小时内短信提醒"], "actions")
            check_eq(rows[1][0], str(a), "action id")
            # The in-progress action is past its 2025 due date: delayed on read (issue 8).
            check_eq([x[8] for x in rows[1:]], ["已完成", "延期", "延期"] if lang == "zh" else ["Done", "Delayed",
                                                                                         "Delayed"], "status labels")
            check_eq(rows[2][9], str(a), "depends on")
            check_eq(rows[1][6], "预算 5000; 渠道 短信" if lang == "zh" else "budget 5000; channels 短信", "resources text")
        if table == "monitoring":
            check_eq(rows[1][:6], ["新用户首单转化", "首单转化率", "0.2", "0.3", "1.5", "绿" if lang == "zh" else "Green"],
                     "monitoring row")
    S().ok("GET", f"/api/v1/scenarios/{sid}/export.csv?table=process")  # zh by default
    check_eq(S().req("GET", f"/api/v1/scenarios/{sid}/export.csv?table=kpis").status, 400, "unknown table")
    check_eq(S().req("GET", f"/api/v1/scenarios/{sid}/export.csv?table=process&lang=fr").status, 400, "unknown lang")
    check_eq(S().req("GET", "/api/v1/scenarios/999999/export.csv?table=process").status, 404, "no scenario")


@test
def exported_process_table_imports_back():
    """The process table exported as CSV (zh or en) is a valid import file: ids and
    dependencies are ignored, statuses and progress notes come back."""
    s = S()
    sid, (a, b, c), k = export_scenario()
    s.ok("PATCH", f"/api/v1/actions/{b}", {"progress_note": {"date": "2025-03-05", "note": "原型评审通过"}})
    src = {x["id"]: x for x in s.ok("GET", f"/api/v1/scenarios/{sid}")["actions"]}
    for lang in ("zh", "en"):
        raw = s.req("GET", f"/api/v1/scenarios/{sid}/export.csv?table=process&lang={lang}").body
        dst = scenario(f"imported from the {lang} export")
        r = s.ok("POST", f"/api/v1/scenarios/{dst}/actions/import", raw, 201, ctype="text/csv")
        check_eq(r["imported"], 3, f"{lang} export imported")
        got = s.ok("GET", f"/api/v1/scenarios/{dst}")["actions"]
        for new, old in zip(got, (src[a], src[b], src[c])):
            fields = ("action", "strategy", "owner", "start_date", "due_date", "delivery_standard", "status", "progress")
            check_eq({f: new[f] for f in fields}, {f: old[f] for f in fields}, f"{lang} round trip of {old['action']}")
            check_eq(new["depends_on"], [], "dependencies are not imported")
        check_eq(got[0]["resources"], {"note": "预算 5000; 渠道 短信" if lang == "zh" else "budget 5000; channels 短信"},
                 "resources text kept as a note")


def xlsx_sheets(raw):
    """{sheet name: [[cell text, ...], ...]} of an .xlsx file (shared and inline strings, numbers)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
          "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
    z = zipfile.ZipFile(io.BytesIO(raw))
    shared = []
    if "xl/sharedStrings.xml" in z.namelist():
        for si in ET.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns):
            shared.append("".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")))
    rels = {r.get("Id"): r.get("Target") for r in ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))}
    out = {}
    for sh in ET.fromstring(z.read("xl/workbook.xml")).find("m:sheets", ns):
        target = rels[sh.get(f"{{{ns['r']}}}id")]
        rows = []
        for row in ET.fromstring(z.read("xl/" + target.lstrip("/").removeprefix("xl/"))).iter(f"{{{ns['m']}}}row"):
            cells = []
            for cell in row.findall("m:c", ns):
                v = cell.find("m:v", ns)
                if cell.get("t") == "s":
                    cells.append(shared[int(v.text)])
                elif cell.get("t") == "inlineStr":
                    cells.append("".join(t.text or "" for t in cell.iter(f"{{{ns['m']}}}t")))
                else:
                    cells.append(v.text if v is not None else "")
            rows.append(cells)
        out[sh.get("name")] = rows
    return out


@test
def xlsx_exports():
    sid, _, _ = export_scenario()
    for lang in ("zh", "en"):
        r = S().req("GET", f"/api/v1/scenarios/{sid}/export.xlsx?lang={lang}")
        check_eq(r.status, 200, f"xlsx {lang}: {r}")
        check_eq(r.headers["content-type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "xlsx content type")
        sheets = xlsx_sheets(r.body)
        check_eq(list(sheets), SHEETS[lang], f"sheet names ({lang})")
        for name, table in zip(SHEETS[lang], ("requirements", "process", "monitoring", "evaluation")):
            check_eq(sheets[name][0], HEADINGS[(table, lang)], f"{name} header cells")
        process = sheets[SHEETS[lang][1]]
        check_eq([row[2] for row in process[1:]], ["首单优惠券包", "结账字段减到 3 个", "注册后 24 小时内短信提醒"],
                 f"Chinese action text in the {lang} workbook")
        mon = sheets[SHEETS[lang][2]]
        check_eq((mon[1][1], float(mon[1][2]), float(mon[1][3]), float(mon[1][4])), ("首单转化率", 0.2, 0.3, 1.5),
                 "monitoring numbers")
    check_eq(S().req("GET", f"/api/v1/scenarios/{sid}/export.xlsx?lang=de").status, 400, "xlsx unknown lang")


@test
def evaluation_sop_and_new_scenario():
    s = S()
    sid, (a, b, c), k = export_scenario()
    ev_ = s.ok("GET", f"/api/v1/scenarios/{sid}/evaluation")
    check_eq((ev_["status"], ev_["scenario"], ev_["period"], ev_["owner"]), ("draft", "新用户首单转化",
                                                                           {"from": "2025-03-03", "to": "2025-03-09"}, "王芳"),
             "draft evaluation")
    check_eq([(x["name"], x["target"], x["actual"], x["light"]) for x in ev_["kpis"]], [("首单转化率", 0.2, 0.3, "green")],
             "target vs result")
    # Both open actions are past their 2025 due dates: delayed on read (issue 8), so both late.
    check_eq({x: ev_["actions"][x] for x in ("total", "done", "late", "open")}, {"total": 3, "done": 1, "late": 2,
                                                                                  "open": 2}, "actions done/late")
    check_eq(sorted(x["id"] for x in ev_["actions"]["late_actions"]), sorted([b, c]), "late actions")
    check_eq(s.req("POST", f"/api/v1/scenarios/{sid}/evaluation/sop", {}).status, 409, "SOP from a draft")
    for body, field in [({"status": "done"}, "status"), ({"score": "A"}, "score"), ({"problems": 3}, "problems")]:
        check_eq(s.err("PUT", f"/api/v1/scenarios/{sid}/evaluation", body).get("field"), field, f"evaluation {body}")
    got = s.ok("PATCH", f"/api/v1/scenarios/{sid}/evaluation", {"what_worked": "券包拉动首单", "problems": "短信提醒延期"})
    check_eq((got["what_worked"], got["problems"], got["status"]), ("券包拉动首单", "短信提醒延期", "draft"), "saved draft")
    got = s.ok("PUT", f"/api/v1/scenarios/{sid}/evaluation", {"next_measures": "提醒改为推送", "status": "final"})
    check_eq((got["what_worked"], got["next_measures"], got["status"]), ("券包拉动首单", "提醒改为推送", "final"), "final")
    rows = read_csv(s.req("GET", f"/api/v1/scenarios/{sid}/export.csv?table=evaluation&lang=zh").body)
    check_eq(rows[1], ["2025-03-03 ~ 2025-03-09", "首单转化率", "0.2", "0.3", "1.5", "券包拉动首单", "短信提醒延期",
                       "提醒改为推送", "王芳"], "evaluation table row")
    sop = s.ok("POST", f"/api/v1/scenarios/{sid}/evaluation/sop", {"name": "首单转化 SOP"}, 201)["id"]
    got = s.ok("GET", f"/api/v1/sops/{sop}")
    check_eq((got["name"], got["source_scenario_id"], got["lessons"]["what_worked"]), ("首单转化 SOP", sid, "券包拉动首单"),
             "SOP")
    check_eq([(t["action"], t.get("start_offset_days"), t.get("due_offset_days"), t["depends_on_index"])
              for t in got["actions"]],
             [("首单优惠券包", 0, 2, [2]), ("结账字段减到 3 个", 1, 5, [0]), ("注册后 24 小时内短信提醒", 3, 4, [])],
             "SOP actions: offsets from the period start and dependencies by index")
    check(sop in [x["id"] for x in s.ok("GET", "/api/v1/sops")], "SOP listed")
    # A new scenario from the SOP, in July: dates shift, statuses restart, dependencies kept.
    new = s.ok("POST", "/api/v1/scenarios", {"from_sop": sop, "name": "七月首单转化", "owner": "赵六",
                                             "period": {"from": "2025-07-01", "to": "2025-07-31"}}, 201)["id"]
    got = s.ok("GET", f"/api/v1/scenarios/{new}")
    check_eq((got["name"], got["owner"], got["from_sop"], got["business_module"], got["success_criteria"]),
             ("七月首单转化", "赵六", sop, "转化", ["首单转化率 ≥ 20%"]), "scenario from SOP")
    acts = got["actions"]
    check_eq([(x["action"], x["start_date"], x["due_date"], x["status"], x["owner"]) for x in acts],
             # not started, and read as delayed: their 2025 due dates have passed (issue 8)
             [("首单优惠券包", "2025-07-01", "2025-07-03", "delayed", "张三"),
              ("结账字段减到 3 个", "2025-07-02", "2025-07-06", "delayed", "李四"),
              ("注册后 24 小时内短信提醒", "2025-07-04", "2025-07-05", "delayed", "张三")], "actions shifted to July")
    ids = [x["id"] for x in acts]
    check_eq([x["depends_on"] for x in acts], [[ids[2]], [ids[0]], []], "dependencies mapped to the new actions")
    check_eq(s.req("POST", "/api/v1/scenarios", {"from_sop": 999999}).status, 404, "unknown SOP")
    check_eq(s.err("POST", "/api/v1/scenarios", {"from_sop": "x"})["field"], "from_sop", "bad SOP id")


@test
def settings_and_quiet_hours():
    s = S()
    check_eq(s.ok("GET", "/api/v1/settings"), {"snapshot_time": "06:00", "quiet_hours": "", "reminder_days": 3,
                                               "earliest_event_date": "2000-01-01"}, "default settings")
    for body, field in [({"quiet_hours": "22:00"}, "quiet_hours"), ({"quiet_hours": "25:00-08:00"}, "quiet_hours"),
                        ({"quiet_hours": "22:00-8:00"}, "quiet_hours"), ({"quiet_hours": "22:00-08:60"}, "quiet_hours"),
                        ({"quiet_hours": 2200}, "quiet_hours"), ({"snapshot_time": "6:00"}, "snapshot_time"),
                        ({"snapshot_time": "24:00"}, "snapshot_time"), ({"reminder_days": 91}, "reminder_days"),
                        ({"reminder_days": -1}, "reminder_days"), ({"timezone": "UTC"}, "timezone"),
                        ({"earliest_event_date": "1997-13-01"}, "earliest_event_date"),
                        ({"earliest_event_date": 1990}, "earliest_event_date"),
                        ({"earliest_event_date": "1969-12-31"}, "earliest_event_date"),
                        ({"earliest_event_date": "2999-01-01"}, "earliest_event_date")]:
        check_eq(s.err("PATCH", "/api/v1/settings", body).get("field"), field, f"settings {body}")
    check_eq(s.ok("GET", "/api/v1/settings")["quiet_hours"], "", "refused settings change nothing")
    now = dt.datetime.now(TZ)
    quiet = f"{(now - dt.timedelta(hours=1)):%H:%M}-{(now + dt.timedelta(hours=1)):%H:%M}"
    s.ok("PATCH", "/api/v1/settings", {"quiet_hours": quiet, "reminder_days": 5, "snapshot_time": "07:30"})
    check_eq(s.ok("GET", "/api/v1/settings"), {"snapshot_time": "07:30", "quiet_hours": quiet, "reminder_days": 5,
                                               "earliest_event_date": "2000-01-01"}, "settings after PATCH")
    # The earliest accepted event date: 2000-01-01 by default, moved by an admin, applied at once.
    old = {"event": "old_pay", "distinct_id": "cdnow-1", "timestamp": "1997-01-01T00:00:00Z", "properties": {"amount": 1}}
    older = dict(old, timestamp="1989-12-31T23:59:59Z")
    r = CTX["write"].req("POST", "/api/v1/events", [old])
    check_eq(r.status, 400, f"a 1997 event by default: {r}")
    check_eq(r.json()["errors"][0]["message"],
             "events[0].timestamp: timestamp 1997-01-01T00:00:00.000Z is before 2000-01-01 (rejected as implausible)",
             "the default's message")
    s.ok("PATCH", "/api/v1/settings", {"earliest_event_date": "1990-01-01"})
    check_eq(s.ok("GET", "/api/v1/settings")["earliest_event_date"], "1990-01-01", "earliest_event_date after PATCH")
    r = CTX["write"].req("POST", "/api/v1/events", [old, older])
    check_eq(r.status, 200, f"a 1997 event after the PATCH: {r}")
    check_eq(r.json()["accepted"], 1, f"accepted: {r.json()}")
    check_eq(r.json()["errors"][0]["message"],
             "events[1].timestamp: timestamp 1989-12-31T23:59:59.000Z is before 1990-01-01 (rejected as implausible)",
             "the same message with the project's date")
    s.ok("PATCH", "/api/v1/settings", {"earliest_event_date": "2000-01-01"})
    r = CTX["write"].req("POST", "/api/v1/events", [dict(old, distinct_id="cdnow-2")])
    check_eq(r.status, 400, f"refused again after moving the date back: {r}")
    r = s.ok("POST", "/api/v1/reminders/send")
    check_eq(r, {"sent": False, "reason": f"quiet hours {quiet}"}, "reminders inside quiet hours")
    rx = CTX["rx"]
    n = len(rx.received())
    r = s.ok("POST", "/api/v1/reminders/send?force=1")
    check(r["sent"] is True and r["digests"], f"forced reminders: {r}")
    check(len(rx.received()) > n, "the digest reached the channel")
    s.ok("PATCH", "/api/v1/settings", {"quiet_hours": ""})
    check_eq(s.ok("POST", "/api/v1/reminders/send")["sent"], True, "outside quiet hours")


@test
def backup_while_running():
    tmp, data, binary = CTX["tmp"], CTX["data"], CTX["bin"]
    out = os.path.join(tmp, "backup-1")
    p = subprocess.run([binary, "backup", "--data", data, "--out", out], capture_output=True, timeout=120)
    check(p.returncode == 0, f"backup exited {p.returncode}: {(p.stdout + p.stderr).decode(errors='replace')}")
    check(b"backup written to" in p.stdout, f"backup output: {p.stdout!r}")
    db = sqlite3.connect(f"file:{os.path.join(out, 'meta.db')}?mode=ro", uri=True)
    try:
        check_eq(db.execute("PRAGMA integrity_check").fetchone()[0], "ok", "backup integrity")
        n = db.execute("SELECT COUNT(*) FROM scenarios WHERE project = ?", (PROJECT,)).fetchone()[0]
        names = {r[0] for r in db.execute("SELECT json_extract(doc, '$.name') FROM scenarios")}
        kpis = db.execute("SELECT COUNT(*) FROM kpis").fetchone()[0]
    finally:
        db.close()
    live = S().ok("GET", "/api/v1/scenarios")
    check_eq(n, len(live), "scenarios in the backup")
    check("新用户首单转化" in names, "a scenario's name in the backup")
    check_eq(kpis, len(S().ok("GET", "/api/v1/kpis")), "KPIs in the backup")
    m = json.load(open(os.path.join(out, "manifest.json")))
    check_eq(m["format"], "northstar-backup 1", "manifest format")
    proj = [x for x in m["projects"] if x["name"] == PROJECT]
    check_eq(len(proj), 1, f"the project in the manifest: {m['projects']}")
    segs = proj[0]["segments"]
    check(len(segs) >= 1, f"segments listed (server flushes every 50 rows): {proj[0]}")
    for sgm in segs:
        path = os.path.join(data, sgm["file"])
        check(os.path.exists(path) and os.path.getsize(path) == sgm["bytes"], f"segment file {sgm}")
    p = subprocess.run([binary, "backup", "--data", data, "--out", out], capture_output=True, timeout=120)
    check(p.returncode != 0 and b"already exists" in p.stdout + p.stderr, "backup into an existing directory is refused")
    check(S().req("GET", "/api/v1/scenarios").status == 200, "the server still answers")


# --------------------------------------------------------------------------- main

def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated by SIGTERM"))
    tmp = tempfile.mkdtemp(prefix="northstar-ops-api-")
    data = os.path.join(tmp, "data")
    CTX.update(bin=binary, tmp=tmp, data=data, log=os.path.join(tmp, "server.log"))
    passed = failed = 0
    t0 = time.time()
    server = None
    try:
        keys = create_project(binary, data, PROJECT)
        server = Server(binary, data, CTX["log"], extra_args=["--no-scheduler", "--flush-rows", "50", "--allow-private-webhooks"]).start()
        CTX["secret"] = Client(server.port, "secret key", key=keys["secret_key"])
        CTX["write"] = Client(server.port, "write key", key=keys["write_key"])
        CTX["rx"] = Receiver()
        for fn in TESTS:
            if run_one(fn):
                passed += 1
            else:
                failed += 1
            if not server.alive():
                failed += 1
                print(f"FAIL server died during {fn.__name__}\n{server.log_tail()}", flush=True)
                break
    except Exception as e:  # noqa: BLE001
        failed += 1
        detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
        print(f"FAIL setup: {detail}", flush=True)
    finally:
        if "rx" in CTX:
            CTX["rx"].close()
        if server is not None:
            try:
                server.stop(timeout=30)
            except Exception:  # noqa: BLE001
                server.kill()
            if failed:
                print(server.log_tail(40))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total time {time.time() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
