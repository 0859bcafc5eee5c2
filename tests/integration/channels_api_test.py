#!/usr/bin/env python3
"""The spend API and the channels query against a real server (docs/api.md "Spend",
docs/queries.md "Channels"): spend imported as JSON rows and as a CSV upload, re-imports that
replace rows of the same (date, channel, campaign), validation errors naming the row and the
field, who may write (operators and admins; not viewers, not write keys), the audit entry,
the list with its filters, and the channels query over HTTP with the imported spend.

Usage: channels_api_test.py /path/to/northstar. Standard library only.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, check, check_eq, run_server_suite  # noqa: E402
from opsclient import create_project  # noqa: E402

S = {}


def ev(name, did, ts, props=None):
    e = {"event": name, "distinct_id": did, "timestamp": ts}
    if props:
        e["properties"] = props
    return e


def setup(binary, tmp):
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    keys = create_project(binary, data, "shop", tz="Asia/Shanghai")
    S["server"] = srv = Server(binary, data, os.path.join(tmp, "server.log"))
    srv.start()
    S["sec"] = Client(srv.port, "secret", key=keys["secret_key"])
    S["writer"] = Client(srv.port, "writer", key=keys["write_key"])
    k = S["sec"].ok("POST", "/api/v1/api-keys", {"name": "reader", "role": "viewer"}, 201)
    S["viewer"] = Client(srv.port, "viewer", key=k["key"])
    k = S["sec"].ok("POST", "/api/v1/api-keys", {"name": "marketing", "role": "operator"}, 201)
    S["operator"] = Client(srv.port, "operator", key=k["key"])
    # ann (ads) pays 60 the day she arrives and 40 two weeks later (after the range); ben
    # (ads, by utm_source only) never pays; cai (feed) pays 30 one order sent twice; dan came
    # before the range. Local days in Asia/Shanghai: ann's first event is 2026-11-02 00:30 local.
    r = S["writer"].req("POST", "/api/v1/events", [
        ev("signup", "ann", "2026-11-02T00:30:00+08:00", {"channel": "ads"}),
        ev("pay", "ann", "2026-11-02T10:00:00+08:00", {"amount": 60, "order_id": "a1"}),
        ev("pay", "ann", "2026-11-20T10:00:00+08:00", {"amount": 40, "order_id": "a2"}),
        ev("signup", "ben", "2026-11-03T12:00:00+08:00", {"utm_source": "ads"}),
        ev("signup", "cai", "2026-11-04T09:00:00+08:00", {"channel": "feed"}),
        ev("pay", "cai", "2026-11-05T09:00:00+08:00", {"amount": 30, "order_id": "c1"}),
        ev("pay", "cai", "2026-11-05T09:00:01+08:00", {"amount": 30, "order_id": "c1"}),
        ev("signup", "dan", "2026-10-01T09:00:00+08:00", {"channel": "ads"}),
        ev("pay", "dan", "2026-11-03T09:00:00+08:00", {"amount": 500}),
    ])
    check(r.status == 200, f"ingest: {r}")


def test_json_import_and_reimport():
    rows = [
        {"date": "2026-11-02", "channel": "ads", "campaign": "black-friday", "spend": 50, "currency": "CNY"},
        {"date": "2026-11-03", "channel": "ads", "campaign": "black-friday", "spend": 30, "currency": "cny"},
        {"date": "2026-11-04", "channel": "feed", "spend": 20, "currency": "CNY"},
    ]
    out = S["operator"].ok("POST", "/api/v1/spend", {"rows": rows})
    check_eq(out, {"imported": 3, "replaced": 0}, "first import")
    # The same rows again: replaced, not added.
    out = S["operator"].ok("POST", "/api/v1/spend", rows)
    check_eq(out, {"imported": 3, "replaced": 3}, "re-import (a bare array)")
    listed = S["viewer"].ok("GET", "/api/v1/spend")
    check_eq(listed["count"], 3, "three rows kept")
    check_eq(listed["rows"][1]["currency"], "CNY", "currency upper-cased")


def test_csv_import():
    csv = ("date,channel,campaign,spend,currency\n"
           "2026-11-03,ads,black-friday,40,CNY\n"        # replaces 30
           "2026-11-05,feed,,10.5,CNY\n")
    out = S["sec"].ok("POST", "/api/v1/spend", csv, ctype="text/csv")
    check_eq(out, {"imported": 2, "replaced": 1}, "csv import")
    listed = S["viewer"].ok("GET", "/api/v1/spend?channel=ads")
    check_eq([(r["date"], r["spend"]) for r in listed["rows"]], [("2026-11-02", 50.0), ("2026-11-03", 40.0)],
             "ads rows after the csv")
    listed = S["viewer"].ok("GET", "/api/v1/spend?date_from=2026-11-04&date_to=2026-11-05")
    check_eq(sorted((r["date"], r["channel"]) for r in listed["rows"]),
             [("2026-11-04", "feed"), ("2026-11-05", "feed")], "date filter")


def test_validation_names_row_and_field():
    op = S["operator"]
    bad = [{"date": "2026-11-02", "channel": "ads", "spend": 1, "currency": "CNY"},
           {"date": "2026-11-02", "channel": "ads", "spend": "x", "currency": "CNY"}]
    check_eq(op.err("POST", "/api/v1/spend", {"rows": bad})["field"], "rows[1].spend", "bad spend")
    bad[1] = {"date": "2026-13-02", "channel": "ads", "spend": 1, "currency": "CNY"}
    check_eq(op.err("POST", "/api/v1/spend", {"rows": bad})["field"], "rows[1].date", "bad date")
    bad[1] = {"date": "2026-11-03", "channel": "", "spend": 1, "currency": "CNY"}
    check_eq(op.err("POST", "/api/v1/spend", {"rows": bad})["field"], "rows[1].channel", "empty channel")
    bad[1] = {"date": "2026-11-03", "channel": "ads", "spend": -1, "currency": "CNY"}
    check_eq(op.err("POST", "/api/v1/spend", {"rows": bad})["field"], "rows[1].spend", "negative spend")
    bad[1] = {"date": "2026-11-03", "channel": "ads", "spend": 1, "currency": "yuan"}
    check_eq(op.err("POST", "/api/v1/spend", {"rows": bad})["field"], "rows[1].currency", "bad currency")
    bad[1] = {"date": "2026-11-03", "channel": "ads", "spend": 1, "currency": "CNY", "cost": 2}
    e = op.err("POST", "/api/v1/spend", {"rows": bad})
    check("cost" in e["message"], f"unknown field named: {e}")
    bad[1] = dict(bad[0])
    e = op.err("POST", "/api/v1/spend", {"rows": bad})
    check_eq(e["field"], "rows[1]", "a key twice in one import")
    e = op.err("POST", "/api/v1/spend", "date,channel,spend,currency\n2026-11-02,ads,1,CNY\n2026-11-03,ads,abc,CNY\n",
               ctype="text/csv")
    check_eq(e["field"], "line 3: spend", "csv: the line and column")
    check("line 3" in e["message"], f"csv message names the line: {e}")
    e = op.err("POST", "/api/v1/spend", "date,channel,spend\n2026-11-02,ads,1\n", ctype="text/csv")
    check("currency" in e["message"], f"missing column named: {e}")
    # Nothing of a refused import was written.
    check_eq(S["viewer"].ok("GET", "/api/v1/spend")["count"], 4, "refused imports wrote nothing")
    check_eq(S["viewer"].err("GET", "/api/v1/spend?date_from=11/02")["field"], "date_from", "list filter")


def test_roles_and_audit():
    row = [{"date": "2026-11-02", "channel": "ads", "spend": 1, "currency": "CNY"}]
    r = S["viewer"].req("POST", "/api/v1/spend", row)
    check_eq(r.status, 403, "viewers read only")
    r = S["writer"].req("POST", "/api/v1/spend", row)
    check(r.status in (401, 403), f"a write key sends events only: {r}")
    check_eq(S["viewer"].ok("GET", "/api/v1/spend")["count"], 4, "nothing written by them")
    log = S["sec"].ok("GET", "/api/v1/audit-log?limit=200")
    rows = log["entries"] if isinstance(log, dict) and "entries" in log else log
    imports = [e for e in rows if e.get("entity") == "spend" and e.get("action") == "import"]
    check_eq(len(imports), 3, f"every accepted import audited: {imports}")


def test_channels_query():
    q = {"kind": "channels", "date_from": "2026-11-01", "date_to": "2026-11-07", "budget": 1000}
    r = S["viewer"].ok("POST", "/api/v1/query", q)
    by = {c["channel"]: c for c in r["channels"]}
    check_eq(sorted(by), ["ads", "feed"], "channels")
    ads, feed = by["ads"], by["feed"]
    check_eq(ads["new_persons"], 2, "ann and ben (utm_source); dan came before the range")
    check_eq(ads["spend"], 90.0, "50 + 40 (the csv replaced 30)")
    check_eq(ads["cac"], 45.0, "cac")
    check_eq(ads["converted_persons"], 1, "ann paid on her first day")
    check_eq(ads["first_order_conversion"], 0.5, "conversion")
    check_eq(ads["revenue"], 60.0, "revenue in the range (dan's 500 is not a new person's)")
    check_eq(ads["revenue_cumulative"], 100.0, "cumulative: ann's later order")
    check_eq(ads["payback_days"], 19, "90 reached on 2026-11-20, 19 days after date_from")
    check_eq(feed["revenue"], 30.0, "one order sent twice counts once")
    check_eq(feed["roas"], 30.0 / 30.5, "feed roas")
    check_eq(feed["payback_days"], None, "not paid back")
    check_eq(r["totals"]["new_persons"], 3, "totals")
    check_eq(sum(s["budget"] for s in r["budget"]["split"]), 1000.0, "the budget is split whole")
    e = S["viewer"].err("POST", "/api/v1/query", {**q, "budget": "lots"})
    check_eq(e["field"], "budget", "bad budget")


def test_saved_insight_follows_spend():
    q = {"kind": "channels", "date_from": "2026-11-01", "date_to": "2026-11-07"}
    ins = S["operator"].ok("POST", "/api/v1/insights", {"name": "CAC by channel", "query": q}, 201)
    run = S["viewer"].ok("POST", f"/api/v1/insights/{ins['id']}/run", {})
    ads = [c for c in run["result"]["channels"] if c["channel"] == "ads"][0]
    check_eq(ads["spend"], 90.0, "a saved insight sees the spend")
    S["operator"].ok("POST", "/api/v1/spend", [{"date": "2026-11-06", "channel": "ads", "spend": 10,
                                                 "currency": "CNY"}])
    run = S["viewer"].ok("POST", f"/api/v1/insights/{ins['id']}/run", {})
    ads = [c for c in run["result"]["channels"] if c["channel"] == "ads"][0]
    check_eq((ads["spend"], run["cached"]), (100.0, False), "an import voids the cached answer")


def test_stop_loss_kpi_alert():
    """Channels as a KPI (docs/ops-api.md): the number of channels past their stop-loss line,
    target 0, lower is better; a below_target rule fires when one channel's daily ROAS stays
    under 1.0 for 5 days, and the alert's hint names that channel. Another channel pays back."""
    events = []
    rows = []
    for i, day in enumerate(["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24",
                             "2026-11-25", "2026-11-26"]):
        # promo: one new person a day who pays 20 against 100 of spend (ROAS 0.2); search: one
        # who pays 150 against 50 (ROAS 3). The last day has no spend yet (imported tomorrow).
        events += [ev("signup", f"pr{i}", f"{day}T09:00:00+08:00", {"channel": "promo"}),
                   ev("pay", f"pr{i}", f"{day}T10:00:00+08:00", {"amount": 20, "order_id": f"po{i}"}),
                   ev("signup", f"se{i}", f"{day}T09:00:00+08:00", {"utm_source": "search"}),
                   ev("pay", f"se{i}", f"{day}T11:00:00+08:00", {"amount": 150, "order_id": f"so{i}"})]
        if day != "2026-11-26":
            rows += [{"date": day, "channel": "promo", "spend": 100, "currency": "CNY"},
                     {"date": day, "channel": "search", "spend": 50, "currency": "CNY"}]
    check(S["writer"].req("POST", "/api/v1/events", events).status == 200, "ingest")
    S["operator"].ok("POST", "/api/v1/spend", rows)
    sec = S["sec"]
    query = {"kind": "channels", "stop_loss": {"roas_below": 1.0, "days": 5}}
    period = {"type": "custom", "from": "2026-11-20", "to": "2026-11-26"}
    # Validation names the field.
    bad = sec.req("POST", "/api/v1/kpis", {"name": "x", "query": query, "reduce": {"metric": "roi"}, "period": period})
    check_eq((bad.status, bad.json()["error"]["field"]), (400, "reduce.metric"), "unknown channels metric")
    kid = sec.ok("POST", "/api/v1/kpis", {"name": "channels past stop-loss", "query": query,
                                          "reduce": {"metric": "stop_loss_channels"}, "target": 0,
                                          "direction": "lower", "period": period}, 201)["id"]
    roas = sec.ok("POST", "/api/v1/kpis", {"name": "promo ROAS", "query": query,
                                           "reduce": {"metric": "roas", "channel": "promo"}, "target": 1.0,
                                           "period": period}, 201)["id"]
    rule = sec.ok("POST", "/api/v1/alert-rules", {"kpi_id": kid, "type": "below_target"}, 201)["id"]
    out = sec.ok("POST", f"/api/v1/kpis/{kid}/refresh")
    check_eq(out["actual"], 1.0, "one channel past its stop-loss line")
    fired = [a for a in out["alerts_fired"] if a["rule_id"] == rule]
    check_eq(len(fired), 1, f"the stop-loss alert fires ({out['alerts_fired']})")
    msg = fired[0]["message"]
    check("stop-loss: channel=promo ROAS 0.20 < 1 for 5 days" in msg, f"the hint names the channel: {msg}")
    check("search" not in msg, f"the paying channel is not named: {msg}")
    alert = sec.ok("GET", f"/api/v1/alerts/{fired[0]['id']}")
    rc = alert["detail"]["root_cause"]
    check_eq(rc["top_contributors"][0]["value"], "promo", "the change comes from promo")
    # ROAS of one channel over the period: 7 x 20 / 6 x 100 (the person of the 26th pays too).
    got = sec.ok("POST", f"/api/v1/kpis/{roas}/refresh")
    check(abs(got["actual"] - 140 / 600) < 1e-9, f"promo ROAS: {got['actual']}")
    # The line moved below promo's ROAS: nothing past it, the alert resolves.
    sec.ok("PATCH", f"/api/v1/kpis/{kid}", {"query": {**query, "stop_loss": {"roas_below": 0.1, "days": 5}}})
    out = sec.ok("POST", f"/api/v1/kpis/{kid}/refresh")
    check_eq((out["actual"], out["alerts_fired"]), (0.0, []), "below the new line nothing fires")
    check_eq(sec.ok("GET", f"/api/v1/alerts/{fired[0]['id']}")["state"], "resolved", "the alert resolves")


def main():
    return run_server_suite(S, "ns-channels-", setup, (test_json_import_and_reimport, test_csv_import,
                            test_validation_names_row_and_field, test_roles_and_audit, test_channels_query,
                            test_saved_insight_follows_spend, test_stop_loss_kpi_alert))


if __name__ == "__main__":
    sys.exit(main())
