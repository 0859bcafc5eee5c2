#!/usr/bin/env python3
"""Authorization matrix of the operations and people APIs (and the native read/ingest
routes) against a real server.

Usage: ops_auth_test.py /path/to/northstar

Every route of src/server/ops_routes.cc and people_routes.cc (ROUTES below: method, path,
the minimal role, a body, the status when allowed, the audit entry it must write) is called as every
principal (PRINCIPALS: admin/operator/viewer users with login sessions, admin/operator/
viewer API keys, the project's secret key and write key, no credentials, an unknown key,
a malformed Authorization header, an unknown session cookie, a logged-out session, an
expired session, a session without or with a wrong X-CSRF-Token, a user of another
project) and the exact status is asserted: 401 for missing or unknown credentials, 403 for
a role that may not do it, a write key, a CSRF failure or a project the user is not in, the
route's own status (2xx, or 404/400 for the rows that test those) when allowed. Each
denied request must leave the audit log unchanged; each allowed change must appear in it
with the principal as actor. Fresh objects are made (with the secret key) for every
allowed state-changing request, so each row is independent.

Also: the same 401 for a wrong password and an unknown email; the session cookie is
HttpOnly and SameSite; logout; choosing the project of a multi-project user; objects of
another project are 404; a rotated secret key stops working; passwords never appear in
the server's log (stderr, at debug level) nor in the audit log; create/update/delete
entries carry before/after.

To add a route: append a Route to ROUTES (path and body may be functions of the fixtures).
NS_TRACE=1 prints every matrix request before it is sent (to find the one that fails).
Standard library only.
"""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client, cookies, login, request  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq, run_one  # noqa: E402
from opsclient import Receiver, create_project  # noqa: E402

ALPHA, BETA = "alpha", "beta"
V, O, A = 1, 2, 3  # viewer, operator, admin
ROLE_NAMES = {V: "viewer", O: "operator", A: "admin"}
KPI_PERIOD = {"type": "custom", "from": "2025-03-01", "to": "2025-03-07"}
TRENDS_Q = {"kind": "trends", "series": [{"event": "pay", "math": "total"}], "date_from": "2025-03-01",
            "date_to": "2025-03-07"}
FUNNEL_Q = {"kind": "funnel", "steps": [{"event": "view"}, {"event": "pay"}], "date_from": "2025-03-01",
            "date_to": "2025-03-07"}
CTX = {}


# --------------------------------------------------------------------------- fixtures

class Fixtures:
    """Objects the routes act on, made with the project's secret key. In `fresh` mode every
    call makes a new object (allowed state-changing requests); otherwise one shared object of
    each kind is reused (reads and denied requests)."""

    def __init__(self, client, receiver):
        self.c, self.rx = client, receiver
        self.fresh = False
        self.n = 0
        self.shared = {}

    def uniq(self):
        self.n += 1
        return self.n

    def _get(self, kind, make):
        if self.fresh:
            return make()
        if kind not in self.shared:
            self.shared[kind] = make()
        return self.shared[kind]

    def _new_scenario(self):
        return self.c.ok("POST", "/api/v1/scenarios", {"name": f"fixture scenario {self.uniq()}", "owner": "fx",
                                                       "period": {"from": "2025-03-01", "to": "2025-03-31"}}, 201)["id"]

    def _new_action(self, sid=None):
        sid = sid or self._new_scenario()
        return self.c.ok("POST", f"/api/v1/scenarios/{sid}/actions",
                         {"action": f"fixture action {self.uniq()}", "owner": "fx", "due_date": "2099-01-01"}, 201)["id"]

    def _new_kpi(self):
        return self.c.ok("POST", "/api/v1/kpis", {"name": f"fixture kpi {self.uniq()}", "query": TRENDS_Q,
                                                  "reduce": {"series": 0, "op": "sum"}, "target": 10,
                                                  "period": KPI_PERIOD}, 201)["id"]

    def _new_channel(self):
        return self.c.ok("POST", "/api/v1/notification-channels",
                         {"name": f"fixture channel {self.uniq()}", "kind": "webhook", "url": self.rx.url()}, 201)["id"]

    def _new_rule(self, kid=None):
        return self.c.ok("POST", "/api/v1/alert-rules", {"kpi_id": kid or self._new_kpi(), "type": "below_target",
                                                         "channels": [self.channel()]}, 201)["id"]

    def _new_alert(self):
        kid = self._new_kpi()
        self._new_rule(kid)
        fired = self.c.ok("POST", f"/api/v1/kpis/{kid}/refresh")["alerts_fired"]
        check_eq(len(fired), 1, f"alerts fired by a fixture KPI with actual 0 and target 10 ({fired})")
        return fired[0]["id"]

    def _new_final_scenario(self):
        sid = self._new_scenario()
        self._new_action(sid)
        self.c.ok("PUT", f"/api/v1/scenarios/{sid}/evaluation", {"what_worked": "fixture", "status": "final"})
        return sid

    def _new_sop(self):
        return self.c.ok("POST", f"/api/v1/scenarios/{self._new_final_scenario()}/evaluation/sop", {}, 201)["id"]

    def _new_insight(self):
        return self.c.ok("POST", "/api/v1/insights", {"name": f"fixture insight {self.uniq()}", "query": TRENDS_Q},
                         201)["id"]

    def _new_dashboard(self):
        return self.c.ok("POST", "/api/v1/dashboards", {"name": f"fixture dashboard {self.uniq()}",
                                                        "tiles": [{"insight_id": self.shared_insight()}]}, 201)["id"]

    def insight(self):
        return self._get("insight", self._new_insight)

    def _new_experiment(self):
        return self.c.ok("POST", "/api/v1/experiments", {
            "name": f"fixture experiment {self.uniq()}", "flag_key": "matrix-flag", "status": "running",
            "start_date": "2025-03-01", "end_date": "2025-03-07",
            "primary_metrics": [{"type": "funnel", "steps": ["pay"]}]}, 201)["id"]

    def experiment(self):
        return self._get("experiment", self._new_experiment)

    def dashboard(self):
        return self._get("dashboard", self._new_dashboard)

    def shared_insight(self):
        # Tiles of fixture dashboards show this one, never the insight a route deletes.
        if "tile_insight" not in self.shared:
            self.shared["tile_insight"] = self._new_insight()
        return self.shared["tile_insight"]

    def _new_person(self):
        did = f"matrix-person-{self.uniq()}"
        r = Client(CTX["port"], "alpha writer", key=CTX["keys"][ALPHA]["write_key"]).req(
            "POST", "/api/v1/events", [{"event": "pay", "distinct_id": did, "timestamp": "2025-03-02T10:00:00+08:00",
                                        "properties": {"amount": 5, "phone": "13812345678"}}])
        check_eq(r.status, 200, f"fixture person's event ({r})")
        return did

    def _new_cohort(self):
        return self.c.ok("POST", "/api/v1/cohorts", {"name": f"fixture cohort {self.uniq()}", "kind": "static"},
                         201)["id"]

    def scenario(self):
        return self._get("scenario", self._new_scenario)

    def person(self):
        return self._get("person", self._new_person)

    def cohort(self):
        return self._get("cohort", self._new_cohort)

    def action(self):
        return self._get("action", self._new_action)

    def kpi(self):
        return self._get("kpi", self._new_kpi)

    def channel(self):
        # Always the shared one when used by rules (fewer deliveries); fresh for its own routes.
        return self._get("channel", self._new_channel)

    def rule(self):
        return self._get("rule", self._new_rule)

    def alert(self):
        return self._get("alert", self._new_alert)

    def final_scenario(self):
        return self._get("final_scenario", self._new_final_scenario)

    def sop(self):
        return self._get("sop", self._new_sop)

    def shared_sop(self):
        if "sop" not in self.shared:
            self.shared["sop"] = self._new_sop()
        return self.shared["sop"]

    def shared_kpi(self):
        if "kpi" not in self.shared:
            self.shared["kpi"] = self._new_kpi()
        return self.shared["kpi"]


# --------------------------------------------------------------------------- the route table

class Route:
    """method, path (text or f(fixtures)), minimal role, body (value or f(fixtures)), the status
    when allowed, the (action, entity) of the audit entry an allowed request writes (None:
    not checked), and a content type for raw bodies."""

    def __init__(self, method, path, need, body=None, ok=200, audit=None, ctype=None, role_key_status=None):
        self.method, self.path, self.need, self.body, self.ok, self.audit, self.ctype = \
            method, path, need, body, ok, audit, ctype
        # role_key_status: a different expected status for role-scoped API keys (none now:
        # the native read routes accept them like a login session).
        self.role_key_status = role_key_status

    def label(self):
        p = self.path if isinstance(self.path, str) else self.path.__doc__ or "<fn>"
        return f"{self.method} {p}"


def P(template, *kinds):
    """A path function: template with {scenario}, {action}, ... filled from the fixtures."""
    def f(fx):
        return template.format(**{k: getattr(fx, k)() for k in kinds})
    f.__doc__ = template
    return f


def new_user(fx):
    return {"email": f"user{fx.uniq()}-{uuid.uuid4().hex[:6]}@alpha.test", "password": "Matrix-pw-0123456789",
            "role": "viewer"}


ROUTES = [
    # accounts
    Route("GET", "/api/v1/auth/me", V),
    Route("POST", "/api/v1/users", A, new_user, 201, ("create", "user")),
    Route("POST", "/api/v1/users", A, {"email": "not-an-email", "password": "Matrix-pw-0123456789"}, 400),
    Route("GET", "/api/v1/users", A),
    Route("POST", "/api/v1/api-keys", A, {"name": "matrix key", "role": "viewer"}, 201, ("create", "api_key")),
    Route("GET", "/api/v1/audit-log", A),
    Route("GET", "/api/v1/settings", V),
    Route("PATCH", "/api/v1/settings", A, {"reminder_days": 3}, 200, ("update", "settings")),
    Route("PATCH", "/api/v1/settings", A, {"quiet_hours": "25:00-08:00"}, 400),
    # scenarios and actions
    Route("POST", "/api/v1/scenarios", O, {"name": "matrix scenario"}, 201, ("create", "scenario")),
    Route("POST", "/api/v1/scenarios", O, {"owner": "no name"}, 400),
    Route("POST", "/api/v1/scenarios", O, lambda fx: {"from_sop": fx.shared_sop(), "name": "from SOP"}, 201,
          ("create", "scenario")),
    Route("GET", "/api/v1/scenarios", V),
    Route("GET", P("/api/v1/scenarios/{scenario}", "scenario"), V),
    Route("GET", "/api/v1/scenarios/999999", V, None, 404),
    Route("PATCH", P("/api/v1/scenarios/{scenario}", "scenario"), O, {"status": "paused"}, 200, ("update", "scenario")),
    Route("PATCH", "/api/v1/scenarios/999999", O, {"status": "paused"}, 404),
    Route("DELETE", P("/api/v1/scenarios/{scenario}", "scenario"), O, None, 200, ("delete", "scenario")),
    Route("POST", P("/api/v1/scenarios/{scenario}/actions", "scenario"), O, {"action": "matrix action"}, 201,
          ("create", "action")),
    Route("POST", P("/api/v1/scenarios/{scenario}/actions/import", "scenario"), O,
          "action,owner,due_date\nimported action,bob,2099-02-01\n", 201, ("create", "action"), "text/csv"),
    Route("GET", P("/api/v1/actions/{action}", "action"), V),
    Route("PATCH", P("/api/v1/actions/{action}", "action"), O, {"status": "in_progress"}, 200, ("update", "action")),
    Route("DELETE", P("/api/v1/actions/{action}", "action"), O, None, 200, ("delete", "action")),
    Route("GET", P("/api/v1/scenarios/{scenario}/gantt", "scenario"), V),
    Route("GET", P("/api/v1/scenarios/{scenario}/export.xlsx?lang=en", "scenario"), V),
    Route("GET", P("/api/v1/scenarios/{scenario}/export.csv?table=process&lang=zh", "scenario"), V),
    # evaluation and SOPs
    Route("GET", P("/api/v1/scenarios/{scenario}/evaluation", "scenario"), V),
    Route("PUT", P("/api/v1/scenarios/{scenario}/evaluation", "scenario"), O, {"what_worked": "x"}, 200,
          ("update", "evaluation")),
    Route("PATCH", P("/api/v1/scenarios/{scenario}/evaluation", "scenario"), O, {"problems": "y"}, 200,
          ("update", "evaluation")),
    Route("POST", P("/api/v1/scenarios/{final_scenario}/evaluation/sop", "final_scenario"), O, {}, 201, ("create", "sop")),
    Route("GET", "/api/v1/sops", V),
    Route("GET", P("/api/v1/sops/{sop}", "sop"), V),
    # KPIs and monitoring
    Route("POST", "/api/v1/kpis", O, {"name": "matrix kpi", "query": TRENDS_Q, "reduce": {"series": 0}, "target": 5,
                                      "period": KPI_PERIOD}, 201, ("create", "kpi")),
    Route("POST", "/api/v1/kpis", O, {"name": "matrix kpi"}, 400),
    Route("GET", "/api/v1/kpis", V),
    Route("GET", P("/api/v1/kpis/{kpi}", "kpi"), V),
    Route("PATCH", P("/api/v1/kpis/{kpi}", "kpi"), O, {"target": 20}, 200, ("update", "kpi")),
    Route("DELETE", P("/api/v1/kpis/{kpi}", "kpi"), O, None, 200, ("delete", "kpi")),
    Route("POST", P("/api/v1/kpis/{kpi}/refresh", "kpi"), O),
    Route("GET", "/api/v1/monitoring", V),
    # alerts
    Route("POST", "/api/v1/alert-rules", O, lambda fx: {"kpi_id": fx.shared_kpi(), "type": "change"}, 201,
          ("create", "alert_rule")),
    Route("GET", "/api/v1/alert-rules", V),
    Route("DELETE", P("/api/v1/alert-rules/{rule}", "rule"), O, None, 200, ("delete", "alert_rule")),
    Route("GET", "/api/v1/alerts", V),
    Route("GET", P("/api/v1/alerts/{alert}", "alert"), V),
    Route("POST", P("/api/v1/alerts/{alert}/ack", "alert"), O, None, 200, ("acknowledge", "alert")),
    # notification channels, reminders, jobs
    Route("POST", "/api/v1/notification-channels", A,
          lambda fx: {"name": "matrix channel", "kind": "webhook", "url": fx.rx.url()}, 201,
          ("create", "notification_channel")),
    Route("GET", "/api/v1/notification-channels", V),
    Route("DELETE", P("/api/v1/notification-channels/{channel}", "channel"), A, None, 200,
          ("delete", "notification_channel")),
    Route("POST", P("/api/v1/notification-channels/{channel}/test", "channel"), A),
    Route("GET", "/api/v1/deliveries", V),
    Route("GET", "/api/v1/reminders", V),
    Route("POST", "/api/v1/reminders/send", O),
    Route("POST", "/api/v1/jobs/daily", O),
    # saved insights and dashboards (insight_routes.cc)
    Route("POST", "/api/v1/insights", O, {"name": "matrix insight", "query": TRENDS_Q}, 201, ("create", "insight")),
    Route("POST", "/api/v1/insights", O, {"query": TRENDS_Q}, 400),
    Route("GET", "/api/v1/insights", V),
    Route("GET", P("/api/v1/insights/{insight}", "insight"), V),
    Route("GET", "/api/v1/insights/999999", V, None, 404),
    Route("PATCH", P("/api/v1/insights/{insight}", "insight"), O, {"name": "renamed"}, 200, ("update", "insight")),
    Route("DELETE", P("/api/v1/insights/{insight}", "insight"), O, None, 200, ("delete", "insight")),
    Route("POST", P("/api/v1/insights/{insight}/run", "insight"), V, {"date_range": "last_7_days"}),
    Route("GET", P("/api/v1/insights/{insight}/export.csv?lang=en", "insight"), V),
    Route("GET", P("/api/v1/insights/{insight}/export.xlsx", "insight"), V),
    Route("POST", P("/api/v1/insights/{insight}/kpi", "insight"), O, {"target": 5, "period": KPI_PERIOD}, 201,
          ("create", "kpi")),
    Route("POST", "/api/v1/dashboards", O, lambda fx: {"name": "matrix dashboard",
                                                       "tiles": [{"insight_id": fx.shared_insight()}]}, 201,
          ("create", "dashboard")),
    Route("GET", "/api/v1/dashboards", V),
    Route("GET", P("/api/v1/dashboards/{dashboard}", "dashboard"), V),
    Route("PATCH", P("/api/v1/dashboards/{dashboard}", "dashboard"), O, {"name": "renamed"}, 200,
          ("update", "dashboard")),
    Route("DELETE", P("/api/v1/dashboards/{dashboard}", "dashboard"), O, None, 200, ("delete", "dashboard")),
    Route("GET", P("/api/v1/dashboards/{dashboard}/run", "dashboard"), V),
    # experiments (experiment_routes.cc; docs/experiments.md)
    Route("POST", "/api/v1/experiments", O, {"name": "matrix experiment", "flag_key": "f"}, 201,
          ("create", "experiment")),
    Route("POST", "/api/v1/experiments", O, {"flag_key": "f"}, 400),
    Route("GET", "/api/v1/experiments", V),
    Route("GET", P("/api/v1/experiments/{experiment}", "experiment"), V),
    Route("GET", "/api/v1/experiments/999999", V, None, 404),
    Route("PATCH", P("/api/v1/experiments/{experiment}", "experiment"), O, {"name": "renamed"}, 200,
          ("update", "experiment")),
    Route("DELETE", P("/api/v1/experiments/{experiment}", "experiment"), O, None, 200, ("delete", "experiment")),
    Route("GET", P("/api/v1/experiments/{experiment}/results", "experiment"), V),
    # people (src/server/people_routes.cc; docs/people.md)
    Route("GET", "/api/v1/persons", V),
    Route("GET", "/api/v1/persons?order_by=name", V, None, 400),
    Route("GET", "/api/v1/persons.csv", V),
    Route("GET", P("/api/v1/persons/{person}", "person"), V),
    Route("GET", "/api/v1/persons/nobody-at-all", V, None, 404),
    Route("GET", P("/api/v1/persons/{person}/events", "person"), V),
    Route("DELETE", P("/api/v1/persons/{person}", "person"), A, None, 200, ("erase", "person")),
    Route("DELETE", "/api/v1/persons/nobody-at-all", A, None, 404),
    Route("GET", "/api/v1/cohorts", V),
    Route("POST", "/api/v1/cohorts", O, lambda fx: {"name": f"matrix cohort {fx.uniq()}", "definition": {
        "op": "and", "conditions": [{"type": "performed", "event": "pay"}]}}, 201, ("create", "cohort")),
    Route("POST", "/api/v1/cohorts", O, {"name": "bad", "kind": "dynamic"}, 400),
    Route("GET", P("/api/v1/cohorts/{cohort}", "cohort"), V),
    Route("GET", "/api/v1/cohorts/999999", V, None, 404),
    Route("PATCH", P("/api/v1/cohorts/{cohort}", "cohort"), O, {"description": "matrix"}, 200, ("update", "cohort")),
    Route("DELETE", P("/api/v1/cohorts/{cohort}", "cohort"), O, None, 200, ("delete", "cohort")),
    Route("POST", P("/api/v1/cohorts/{cohort}/members", "cohort"), O, lambda fx: {"distinct_ids": [fx.person()]}, 200,
          ("add_members", "cohort")),
    Route("GET", P("/api/v1/cohorts/{cohort}/export.csv", "cohort"), V),
    Route("GET", "/api/v1/tags", V),
    Route("GET", "/api/v1/tags/city/values", V),
    Route("GET", "/api/v1/persons?lifecycle=active&tier=value:high&tag=repeat_buyer", V),
    Route("GET", "/api/v1/people/settings", V),
    Route("PATCH", "/api/v1/people/settings", A, {"new_days": 7}, 200, ("update", "people_settings")),
    Route("PATCH", "/api/v1/people/settings", A, {"churn_days": 1}, 400),
    # the experiment calculator (experiment_analyze_routes.cc; docs/statistics.md): numbers in, nothing stored
    Route("POST", "/api/v1/experiments/analyze", V, {"metric": "proportion", "variants": [
        {"n": 1000, "sum": 100}, {"n": 1000, "sum": 120}]}),
    Route("POST", "/api/v1/experiments/analyze", V, {"metric": "proportion", "variants": [{"n": 1000, "sum": 100}]},
          400),
    Route("POST", "/api/v1/experiments/power", V, {"mean": 0.1, "variance": 0.09, "mde": 0.1, "daily_persons": 500}),
    # native read routes (login sessions and secret keys)
    Route("POST", "/api/v1/query", V, TRENDS_Q),
    Route("POST", "/api/v1/query/dropoffs.csv", V, {"query": FUNNEL_Q, "step": 1}),
    Route("POST", "/api/v1/query/dropoffs.csv", V, {"query": FUNNEL_Q, "step": 0, "persons": "converted"}),
    Route("POST", "/api/v1/query/export.xlsx", V, {"query": FUNNEL_Q, "lang": "en"}),
    Route("GET", "/api/v1/project", V),
    Route("GET", "/api/v1/properties", V),
]

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


# --------------------------------------------------------------------------- principals

class Principal:
    """kind: user | key (role API key) | secret (the project's key) | anon (401) | write (403) | nocsrf (admin session: GET allowed,
    other methods 403) | outsider (403: a user of another project asking for this one)."""

    def __init__(self, name, client, kind, role=0, actor=None):
        self.name, self.client, self.kind, self.role, self.actor = name, client, kind, role, actor

    def expected(self, route):
        if self.kind == "anon":
            return 401
        if self.kind in ("write", "outsider"):
            return 403
        if self.kind == "nocsrf":
            return route.ok if route.method == "GET" else 403
        if self.kind == "key" and route.role_key_status is not None:
            return route.role_key_status
        return route.ok if self.role >= route.need else 403


def make_principals():
    port, keys = CTX["port"], CTX["keys"]
    sec = CTX["secret"]
    out = []
    for role in (A, O, V):
        email = CTX["users"][role][0]
        out.append(Principal(f"{ROLE_NAMES[role]} session", CTX["sessions"][role], "user", role, email))
    boot = CTX["boot"]
    out.append(Principal("bootstrap admin session (X-Northstar-Project)", boot, "user", A, "admin@northstar.local"))
    for role in (A, O, V):
        name, key = CTX["role_keys"][role]
        out.append(Principal(f"{ROLE_NAMES[role]} API key", Client(port, f"{ROLE_NAMES[role]} key", key=key), "key", role,
                             CTX["key_actor"](name)))
    out.append(Principal("project secret key", sec, "secret", A, f"key:{ALPHA}/secret"))
    out.append(Principal("project write key", Client(port, "write key", key=keys[ALPHA]["write_key"]), "write"))
    out.append(Principal("no credentials", Client(port, "anonymous"), "anon"))
    out.append(Principal("unknown secret key", Client(port, "unknown key", key="nss_" + uuid.uuid4().hex * 2), "anon"))
    out.append(Principal("unknown write key", Client(port, "unknown write key", key="nsw_" + uuid.uuid4().hex), "anon"))
    out.append(Principal("malformed key", Client(port, "malformed", key="hunter2"), "anon"))
    out.append(Principal("Basic authorization", Client(port, "basic", auth_header="Basic YWRtaW46eA=="), "anon"))
    out.append(Principal("unknown session cookie", Client(port, "bad cookie", session=uuid.uuid4().hex * 2,
                                                          csrf=uuid.uuid4().hex), "anon"))
    out.append(Principal("logged-out session", CTX["logged_out"], "anon"))
    out.append(Principal("expired session", CTX["expired"], "anon"))
    admin = CTX["sessions"][A]
    out.append(Principal("admin session without X-CSRF-Token",
                         Client(port, "no csrf", session=admin.session, csrf=None), "nocsrf"))
    out.append(Principal("admin session with a wrong X-CSRF-Token",
                         Client(port, "wrong csrf", session=admin.session, csrf="0" * 32), "nocsrf"))
    out.append(Principal("admin session with the CSRF token of another session",
                         Client(port, "other csrf", session=admin.session, csrf=CTX["sessions"][O].csrf), "nocsrf"))
    out.append(Principal("admin of project beta asking for alpha", CTX["beta_admin_into_alpha"], "outsider"))
    out.append(Principal("viewer of alpha asking for beta", CTX["alpha_viewer_into_beta"], "outsider"))
    return out


# --------------------------------------------------------------------------- helpers

def audit_max_id():
    rows = CTX["secret"].ok("GET", "/api/v1/audit-log?limit=1")
    return rows[0]["id"] if rows else 0


def audit_since(after_id, limit=200):
    rows = CTX["secret"].ok("GET", f"/api/v1/audit-log?limit={limit}")
    return sorted((r for r in rows if r["id"] > after_id), key=lambda r: r["id"])


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# --------------------------------------------------------------------------- tests

@test
def login_errors_and_cookies():
    port = CTX["port"]
    email, pw = CTX["users"][O]
    wrong = request(port, "POST", "/api/v1/auth/login", json.dumps({"email": email, "password": "Wrong-pw-" + pw}).encode(),
                 {"Content-Type": "application/json"})
    unknown = request(port, "POST", "/api/v1/auth/login",
                   json.dumps({"email": "nobody-" + email, "password": pw}).encode(), {"Content-Type": "application/json"})
    check_eq(wrong.status, 401, f"wrong password status ({wrong})")
    check_eq(unknown.status, 401, f"unknown email status ({unknown})")
    check_eq(wrong.json(), unknown.json(), "wrong password and unknown email: the same error body")
    check_eq(wrong.json()["error"]["message"], "wrong email or password", "login error message")
    check("set-cookie" not in wrong.headers, f"a failed login sets no cookie: {wrong.header_list}")
    check_eq(request(port, "POST", "/api/v1/auth/login", b'{"email":"x@y.z"}', {"Content-Type": "application/json"}).status,
             400, "login without a password")
    # Email is case-insensitive.
    c, r = login(port, email.upper(), pw)
    check_eq(c.ok("GET", "/api/v1/auth/me")["actor"], email, "login with an upper-case email")
    ck = cookies(r)
    value, attrs = ck["ns_session"]
    check(len(value) >= 32, f"session token length {len(value)}")
    check("HttpOnly" in attrs, f"session cookie is HttpOnly: {attrs}")
    check("SameSite=Strict" in attrs or "SameSite=Lax" in attrs, f"session cookie has SameSite: {attrs}")
    check("Path=/" in attrs, f"session cookie Path=/: {attrs}")
    check(any(a.startswith("Max-Age=") for a in attrs), f"session cookie has Max-Age: {attrs}")
    check_eq(ck["ns_csrf"][0], r.json()["csrf_token"], "ns_csrf cookie = csrf_token of the body")
    check("HttpOnly" not in ck["ns_csrf"][1], "the CSRF cookie is readable by the console's script")
    check(value not in r.body.decode(), "the session token is not in the response body")
    check_eq(r.json()["projects"], [{"project": ALPHA, "role": "operator"}], "login: projects and roles")


@test
def logout():
    port = CTX["port"]
    email, pw = CTX["users"][V]
    c, _ = login(port, email, pw)
    check_eq(request(port, "POST", "/api/v1/auth/logout").status, 401, "logout without a session")
    no_csrf = Client(port, "logout without csrf", session=c.session, csrf=None)
    check_eq(no_csrf.req("POST", "/api/v1/auth/logout").status, 403, "logout without X-CSRF-Token")
    r = c.req("POST", "/api/v1/auth/logout")
    check_eq(r.status, 200, f"logout ({r})")
    ck = cookies(r)
    check("Max-Age=0" in ck["ns_session"][1] and ck["ns_session"][0] == "", f"logout clears the cookie: {ck}")
    check_eq(c.req("GET", "/api/v1/auth/me").status, 401, "the session after logout")
    check_eq(c.req("POST", "/api/v1/auth/logout").status, 401, "a second logout")


@test
def project_choice_of_a_multi_project_user():
    port = CTX["port"]
    boot = Client(port, "boot without project", session=CTX["boot"].session, csrf=CTX["boot"].csrf)
    e = boot.err("GET", "/api/v1/scenarios", expect=400)
    check("alpha" in e["message"] and "beta" in e["message"], f"the error lists the projects: {e}")
    check_eq(boot.ok("GET", "/api/v1/auth/me?project=beta")["project"], BETA, "?project=beta")
    check_eq(boot.ok("GET", "/api/v1/auth/me?project=alpha")["role"], "admin", "?project=alpha role")
    check_eq(boot.req("GET", "/api/v1/auth/me?project=gamma").status, 403, "a project that does not exist")
    me = CTX["sessions"][V].ok("GET", "/api/v1/auth/me")
    check_eq((me["project"], me["role"], me["actor"]), (ALPHA, "viewer", CTX["users"][V][0]), "viewer /auth/me")
    # A bare key may not pick another project: the key's project wins.
    r = CTX["secret"].ok("GET", "/api/v1/auth/me?project=beta")
    check_eq(r["project"], ALPHA, "a secret key stays in its project whatever ?project says")


@test
def matrix():
    fx = CTX["fx"]
    principals = make_principals()
    failures = []
    count = 0
    last_id, made = audit_max_id(), fx.n  # the audit log's newest id; fixtures made so far
    slow = []
    for route in ROUTES:
        t_route = time.time()
        for p in principals:
            want = p.expected(route)
            fx.fresh = 200 <= want < 300 and route.method in STATE_CHANGING
            try:
                path = route.path if isinstance(route.path, str) else route.path(fx)
                body = route.body(fx) if callable(route.body) else route.body
            finally:
                fx.fresh = False
            before = audit_max_id() if fx.n != made else last_id
            made = fx.n
            if os.environ.get("NS_TRACE"):
                print(f"    {route.method} {path} as {p.name}", flush=True)
            r = p.client.req(route.method, path, body, ctype=route.ctype)
            count += 1
            where = f"{route.method} {path} as {p.name}"
            if r.status != want:
                failures.append(f"{where}: expected {want}, got {r.status} {r.body[:200]!r}")
                continue
            if want in (401, 403):
                check(isinstance(r.json(), dict) and r.json().get("error", {}).get("code") ==
                      ("unauthenticated" if want == 401 else "permission_denied"), f"{where}: error body {r}")
            entries = audit_since(before, 20)
            last_id = max([before] + [e["id"] for e in entries])
            if not 200 <= r.status < 300:
                if entries:
                    failures.append(f"{where}: refused with {r.status} but wrote audit entries {entries}")
                continue
            if route.audit and route.method in STATE_CHANGING:
                if not entries:
                    failures.append(f"{where}: no audit entry")
                    continue
                got = (entries[0]["action"], entries[0]["entity"])
                if got != route.audit:
                    failures.append(f"{where}: audit entry {got}, expected {route.audit}")
                actors = {e["actor"] for e in entries}
                if actors != {p.actor}:
                    failures.append(f"{where}: audit actors {actors}, expected {p.actor}")
        slow.append((time.time() - t_route, route.label()))
    print(f"  {len(ROUTES)} routes x {len(principals)} principals = {count} requests; slowest rows: " +
          ", ".join(f"{label} {t:.1f}s" for t, label in sorted(slow, reverse=True)[:4]), flush=True)
    if failures:
        raise TestFailure(f"{len(failures)} of {count} matrix cells wrong:\n  " + "\n  ".join(failures))


@test
def api_key_actor_names_the_key():
    """The audit log says which API key made a change: key:<project>/<key name>."""
    before = audit_max_id()
    Client(CTX["port"], key=CTX["role_keys"][O][1]).ok("POST", "/api/v1/scenarios", {"name": "actor probe"}, 201)
    check_eq([e["actor"] for e in audit_since(before)], [f"key:{ALPHA}/operator-key"], "audit actor of a role API key")


@test
def events_route():
    """POST /api/v1/events takes the project's write key or secret key; nothing else."""
    port, keys = CTX["port"], CTX["keys"]
    ev = [{"event": "matrix", "distinct_id": "u1", "timestamp": "2025-03-02T10:00:00+08:00"}]
    cases = [("write key", Client(port, key=keys[ALPHA]["write_key"]), 200),
             ("secret key", CTX["secret"], 200),
             ("no credentials", Client(port), 401),
             ("unknown write key", Client(port, key="nsw_" + uuid.uuid4().hex), 401),
             ("unknown secret key", Client(port, key="nss_" + uuid.uuid4().hex), 401),
             ("malformed key", Client(port, key="hunter2"), 401)]
    for name, c, want in cases:
        r = c.req("POST", "/api/v1/events", ev)
        check_eq(r.status, want, f"POST /api/v1/events with {name} ({r})")


@test
def other_project_objects_are_not_found():
    """Ids of project alpha's objects, asked for from project beta (its secret key, its
    admin's session): 404 for reads and changes, and nothing changes."""
    fx = CTX["fx"]
    port = CTX["port"]
    beta_key = Client(port, "beta secret", key=CTX["keys"][BETA]["secret_key"])
    beta_session = CTX["beta_admin"]
    sid, aid, kid, alert, ch, sop = fx.scenario(), fx.action(), fx.kpi(), fx.alert(), fx.channel(), fx.sop()
    cohort, person = fx.cohort(), fx.person()
    calls = [("GET", f"/api/v1/scenarios/{sid}", None), ("PATCH", f"/api/v1/scenarios/{sid}", {"status": "done"}),
             ("DELETE", f"/api/v1/scenarios/{sid}", None), ("POST", f"/api/v1/scenarios/{sid}/actions", {"action": "x"}),
             ("GET", f"/api/v1/scenarios/{sid}/gantt", None), ("GET", f"/api/v1/scenarios/{sid}/export.xlsx", None),
             ("GET", f"/api/v1/scenarios/{sid}/evaluation", None),
             ("PUT", f"/api/v1/scenarios/{sid}/evaluation", {"problems": "x"}),
             ("GET", f"/api/v1/actions/{aid}", None), ("PATCH", f"/api/v1/actions/{aid}", {"status": "done"}),
             ("DELETE", f"/api/v1/actions/{aid}", None), ("GET", f"/api/v1/kpis/{kid}", None),
             ("PATCH", f"/api/v1/kpis/{kid}", {"target": 1}), ("POST", f"/api/v1/kpis/{kid}/refresh", None),
             ("DELETE", f"/api/v1/kpis/{kid}", None), ("GET", f"/api/v1/alerts/{alert}", None),
             ("POST", f"/api/v1/alerts/{alert}/ack", None), ("POST", f"/api/v1/notification-channels/{ch}/test", None),
             ("DELETE", f"/api/v1/notification-channels/{ch}", None), ("GET", f"/api/v1/sops/{sop}", None),
             ("POST", "/api/v1/scenarios", {"from_sop": sop}),
             ("GET", f"/api/v1/cohorts/{cohort}", None), ("PATCH", f"/api/v1/cohorts/{cohort}", {"description": "x"}),
             ("DELETE", f"/api/v1/cohorts/{cohort}", None),
             ("POST", f"/api/v1/cohorts/{cohort}/members", {"distinct_ids": [person]}),
             ("GET", f"/api/v1/cohorts/{cohort}/export.csv", None), ("GET", f"/api/v1/persons/{person}", None),
             ("GET", f"/api/v1/persons/{person}/events", None), ("DELETE", f"/api/v1/persons/{person}", None)]
    ins, dash = fx.insight(), fx.dashboard()
    calls += [("GET", f"/api/v1/insights/{ins}", None), ("PATCH", f"/api/v1/insights/{ins}", {"name": "x"}),
              ("DELETE", f"/api/v1/insights/{ins}", None), ("POST", f"/api/v1/insights/{ins}/run", {}),
              ("GET", f"/api/v1/insights/{ins}/export.csv", None), ("POST", f"/api/v1/insights/{ins}/kpi", {}),
              ("GET", f"/api/v1/dashboards/{dash}", None), ("PATCH", f"/api/v1/dashboards/{dash}", {"name": "x"}),
              ("DELETE", f"/api/v1/dashboards/{dash}", None), ("GET", f"/api/v1/dashboards/{dash}/run", None)]
    for c in (beta_key, beta_session):
        for method, path, body in calls:
            before = audit_max_id()
            r = c.req(method, path, body)
            check_eq(r.status, 404, f"{method} {path} from project beta ({c.name}): {r}")
            check_eq(audit_since(before), [], f"{method} {path} from beta: alpha's audit log")
        # Alpha's cohort named in a request of beta: 400 naming the field.
        for method, path, body, field in (
                ("GET", f"/api/v1/persons?cohort={cohort}", None, "cohort"),
                ("GET", f"/api/v1/persons.csv?cohort={cohort}", None, "cohort"),
                ("POST", "/api/v1/scenarios", {"name": "x", "key_user_group": {"cohort_id": cohort}},
                 "key_user_group.cohort_id")):
            check_eq(c.err(method, path, body, 400).get("field"), field, f"{method} {path} from beta ({c.name})")
        # Lists of beta hold none of alpha's objects.
        check_eq(c.ok("GET", "/api/v1/scenarios"), [], "beta's scenario list")
        check_eq(c.ok("GET", "/api/v1/kpis"), [], "beta's KPI list")
        check_eq(c.ok("GET", "/api/v1/insights"), {"insights": []}, "beta's insight list")
        check_eq(c.ok("GET", "/api/v1/dashboards"), {"dashboards": []}, "beta's dashboard list")
    e = beta_key.err("POST", "/api/v1/dashboards", {"name": "x", "tiles": [{"insight_id": ins}]}, 400)
    check_eq(e.get("field"), "tiles[0].insight_id", f"beta dashboard showing alpha's insight: {e}")
    # A KPI or alert rule of beta may not refer to alpha's objects.
    e = beta_key.err("POST", "/api/v1/kpis", {"name": "x", "scenario_id": sid, "query": TRENDS_Q,
                                              "reduce": {"series": 0}}, 400)
    check_eq(e.get("field"), "scenario_id", f"beta KPI on alpha's scenario: {e}")
    beta_key.err("POST", "/api/v1/alert-rules", {"kpi_id": kid, "type": "change"}, 404)
    e = beta_key.err("POST", "/api/v1/kpis", {"name": "x", "reduce": {"formula": f"k{kid} * 2"}}, 400)
    check("k" + str(kid) in e["message"], f"beta formula KPI on alpha's KPI: {e}")
    # Still there for alpha.
    CTX["secret"].ok("GET", f"/api/v1/scenarios/{sid}")
    CTX["secret"].ok("GET", f"/api/v1/kpis/{kid}")


@test
def rotated_secret_key_stops_working():
    port = CTX["port"]
    old = Client(port, "old beta secret", key=CTX["keys"][BETA]["secret_key"])
    old.ok("GET", "/api/v1/scenarios")
    p = subprocess.run([CTX["bin"], "admin", "--data", CTX["data"], "rotate-secret", BETA, "--format", "json"],
                       capture_output=True, timeout=60)
    check(p.returncode == 0, f"rotate-secret: {(p.stdout + p.stderr).decode(errors='replace')}")
    new = json.loads(p.stdout)["secret_key"]
    CTX["keys"][BETA]["secret_key"] = new
    check_eq(old.req("GET", "/api/v1/scenarios").status, 401, "the old secret key after rotate-secret")
    check_eq(old.req("POST", "/api/v1/query", TRENDS_Q).status, 401, "the old secret key on /api/v1/query")
    check_eq(Client(port, key=new).req("GET", "/api/v1/scenarios").status, 200, "the new secret key")


@test
def audit_entries_have_before_and_after():
    sec = CTX["secret"]
    before = audit_max_id()
    sid = sec.ok("POST", "/api/v1/scenarios", {"name": "audited", "owner": "ann"}, 201)["id"]
    sec.ok("PATCH", f"/api/v1/scenarios/{sid}", {"owner": "bob"})
    aid = sec.ok("POST", f"/api/v1/scenarios/{sid}/actions", {"action": "audited action"}, 201)["id"]
    sec.ok("PATCH", f"/api/v1/actions/{aid}", {"status": "done"})
    sec.ok("DELETE", f"/api/v1/actions/{aid}")
    sec.ok("DELETE", f"/api/v1/scenarios/{sid}")
    es = audit_since(before)
    got = [(e["action"], e["entity"], e["entity_id"]) for e in es]
    check_eq(got, [("create", "scenario", sid), ("update", "scenario", sid), ("create", "action", aid),
                   ("update", "action", aid), ("delete", "action", aid), ("delete", "scenario", sid)], "audit entries")
    for e in es:
        check_eq(e["actor"], f"key:{ALPHA}/secret", "actor")
        check(isinstance(e["at"], int) and abs(e["at"] - time.time() * 1000) < 120_000, f"at: {e['at']}")
    c, u, ca, ua, da, d = es
    check(c["before"] is None and c["after"]["owner"] == "ann", f"create: before null, after the document: {c}")
    check_eq((u["before"]["owner"], u["after"]["owner"]), ("ann", "bob"), "update: before/after owner")
    check_eq((ua["before"]["status"], ua["after"]["status"]), ("not_started", "done"), "action update before/after")
    check(da["after"] is None and da["before"]["action"] == "audited action", f"delete action: {da}")
    check(d["after"] is None and d["before"]["owner"] == "bob", f"delete scenario: {d}")
    # The settings change by an admin session names the user.
    admin = CTX["sessions"][A]
    before = audit_max_id()
    admin.ok("PATCH", "/api/v1/settings", {"quiet_hours": "22:00-08:00"})
    e = audit_since(before)
    check_eq([(x["actor"], x["action"], x["entity"], x["after"]) for x in e],
             [(CTX["users"][A][0], "update", "settings", {"quiet_hours": "22:00-08:00"})], "settings audit entry")


@test
def passwords_never_logged():
    # Runs last: every password used so far (users, failed logins, the first admin's).
    sec = CTX["secret"]
    log = open(CTX["log"], "rb").read().decode(errors="replace")
    audit = json.dumps(sec.ok("GET", "/api/v1/audit-log?limit=10000"), ensure_ascii=False)
    users = json.dumps(sec.ok("GET", "/api/v1/users"))
    check("login failed for" in log, "the server logs failed logins (without the password)")
    for pw in CTX["passwords"]:
        check(pw not in log, f"a password appears in the server's log: {pw[:4]}…")
        check(pw not in audit, f"a password appears in the audit log: {pw[:4]}…")
        check(pw not in users, f"a password appears in GET /api/v1/users: {pw[:4]}…")
    for text, where in ((log, "server log"), (audit, "audit log"), (users, "GET /users")):
        check("$argon2" not in text, f"a password hash appears in the {where}")
    for tok in CTX["session_tokens"]:
        check(tok not in log and tok not in audit, "a session token appears in a log")


# --------------------------------------------------------------------------- setup

def setup(binary, tmp):
    data = os.path.join(tmp, "data")
    CTX.update(bin=binary, data=data, log=os.path.join(tmp, "server.log"))
    keys = {ALPHA: create_project(binary, data, ALPHA), BETA: create_project(binary, data, BETA)}
    CTX["keys"] = keys
    server = Server(binary, data, CTX["log"], extra_args=["--log-level", "debug", "--no-scheduler", "--allow-private-webhooks"]).start()
    CTX["server"] = server
    port = CTX["port"] = server.port
    cred = open(os.path.join(data, "admin-credentials.txt")).read()
    boot_pw = cred.split("password:")[1].strip()
    CTX["passwords"] = [boot_pw]
    CTX["session_tokens"] = []
    boot, r = login(port, "admin@northstar.local", boot_pw, "bootstrap admin", project=ALPHA)
    check_eq(sorted((p["project"], p["role"]) for p in r.json()["projects"]), [(ALPHA, "admin"), (BETA, "admin")],
             "the first admin administers every project")
    CTX["boot"] = boot
    CTX["secret"] = Client(port, "alpha secret", key=keys[ALPHA]["secret_key"])
    # Users of alpha (one per role), an admin of beta.
    CTX["users"] = {}
    CTX["sessions"] = {}
    for role in (A, O, V):
        email = f"{ROLE_NAMES[role]}@alpha.test"
        pw = f"Pw-{ROLE_NAMES[role]}-{uuid.uuid4().hex[:12]}"
        boot.ok("POST", "/api/v1/users", {"email": email, "password": pw, "role": ROLE_NAMES[role]}, 201)
        CTX["users"][role] = (email, pw)
        CTX["passwords"].append(pw)
    for role in (A, O, V):
        c, _ = login(port, *CTX["users"][role], name=f"{ROLE_NAMES[role]} session")
        CTX["sessions"][role] = c
        CTX["session_tokens"].append(c.session)
    beta_pw = "Pw-beta-" + uuid.uuid4().hex[:12]
    CTX["passwords"].append(beta_pw)
    Client(port, key=keys[BETA]["secret_key"]).ok("POST", "/api/v1/users",
                                                  {"email": "admin@beta.test", "password": beta_pw, "role": "admin"}, 201)
    beta_admin, _ = login(port, "admin@beta.test", beta_pw, "beta admin session")
    CTX["beta_admin"] = beta_admin
    CTX["beta_admin_into_alpha"] = Client(port, "beta admin into alpha", session=beta_admin.session,
                                          csrf=beta_admin.csrf, project=ALPHA)
    v = CTX["sessions"][V]
    CTX["alpha_viewer_into_beta"] = Client(port, "alpha viewer into beta", session=v.session, csrf=v.csrf, project=BETA)
    # Role keys of alpha.
    CTX["role_keys"] = {}
    for role in (A, O, V):
        name = f"{ROLE_NAMES[role]}-key"
        k = boot.ok("POST", "/api/v1/api-keys", {"name": name, "role": ROLE_NAMES[role]}, 201)
        check(k["key"].startswith("nss_"), f"API key prefix: {k}")
        CTX["role_keys"][role] = (name, k["key"])
    CTX["key_actor"] = lambda name: f"key:{ALPHA}/{name}"
    # A logged-out session and an expired one.
    lo, _ = login(port, *CTX["users"][O], name="logged-out session")
    lo.ok("POST", "/api/v1/auth/logout")
    CTX["logged_out"] = lo
    ex, _ = login(port, *CTX["users"][O], name="expired session")
    ex.ok("GET", "/api/v1/auth/me")
    db = sqlite3.connect(os.path.join(data, "meta.db"), timeout=30)
    try:
        n = db.execute("UPDATE sessions SET expires_at = ? WHERE token_hash = ?",
                       (int(time.time() * 1000) - 1000, hashlib.sha256(ex.session.encode()).hexdigest())).rowcount
        db.commit()
    finally:
        db.close()
    check_eq(n, 1, "sessions row of the session to expire (token stored as SHA-256 hex)")
    check_eq(ex.req("GET", "/api/v1/auth/me").status, 401, "an expired session")
    CTX["expired"] = ex
    CTX["session_tokens"] += [lo.session, ex.session]
    # Failed logins with passwords that must not be logged.
    for i in range(2):
        pw = f"Wrong-pw-{uuid.uuid4().hex[:12]}"
        CTX["passwords"].append(pw)
        request(port, "POST", "/api/v1/auth/login", json.dumps({"email": CTX["users"][A][0] if i else "ghost@x.test",
                                                             "password": pw}).encode(),
             {"Content-Type": "application/json"})
    CTX["rx"] = Receiver()
    CTX["fx"] = Fixtures(CTX["secret"], CTX["rx"])


def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated by SIGTERM"))
    tmp = tempfile.mkdtemp(prefix="northstar-ops-auth-")
    passed = failed = 0
    t0 = time.time()
    try:
        setup(binary, tmp)
        print(f"PASS setup ({time.time() - t0:.2f}s)", flush=True)
        for fn in TESTS:
            if run_one(fn):
                passed += 1
            else:
                failed += 1
            if not CTX["server"].alive():
                failed += 1
                print(f"FAIL server died during {fn.__name__}\n{CTX['server'].log_tail()}", flush=True)
                break
    except Exception as e:  # noqa: BLE001
        failed += 1
        detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
        print(f"FAIL setup: {detail}", flush=True)
    finally:
        if "rx" in CTX:
            CTX["rx"].close()
        srv = CTX.get("server")
        if srv is not None:
            try:
                srv.stop(timeout=30)
            except Exception:  # noqa: BLE001
                srv.kill()
            if failed:
                print(srv.log_tail(40))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total time {time.time() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
