#!/usr/bin/env python3
"""Experiments against a real server (docs/experiments.md, docs/api.md "Experiments"):
generated exposures (`$feature_flag_called`, as PostHog's SDKs send them) and conversions with a
KNOWN true lift (control 10%, test 13%, 20,000 persons) sent over HTTP; the results count every
person and conversion exactly as generated, recover the lift inside the interval and do not flag
SRM; a 55/45 split planned 50/50 flags SRM; CRUD with errors naming the field, roles (viewers
read, operators write, write keys refused), 404 across projects, the scenario link, and the
results' other fields (exposures per day, multiple exposures, power, mean and ratio metrics).

Usage: experiments_api_test.py /path/to/northstar. Standard library only.
"""

import datetime
import math
import os
import random
import shutil
import sys
import tempfile
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, binary_from_argv, check, check_eq, run_one  # noqa: E402
from opsclient import create_project  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
S = {}
FLAG = "new-checkout"


def today():
    return datetime.datetime.now(TZ).date()


def send(events):
    for i in range(0, len(events), 2000):
        r = S["writer"].req("POST", "/api/v1/events", events[i:i + 2000])
        check(r.status == 200, f"ingest: {r}")


def at(day, seconds):
    t = datetime.datetime(day.year, day.month, day.day, tzinfo=TZ) + datetime.timedelta(seconds=seconds)
    return t.isoformat()


def exposure(did, flag, variant, day, seconds):
    return {"event": "$feature_flag_called", "distinct_id": did, "timestamp": at(day, seconds),
            "properties": {"$feature_flag": flag, "$feature_flag_response": variant}}


def setup(binary, tmp):
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    keys = create_project(binary, data, "shop", tz="Asia/Shanghai")
    other = create_project(binary, data, "other", tz="Asia/Shanghai")
    S["server"] = srv = Server(binary, data, os.path.join(tmp, "server.log"))
    srv.start()
    S["sec"] = Client(srv.port, "secret", key=keys["secret_key"])
    S["writer"] = Client(srv.port, "writer", key=keys["write_key"])
    S["other"] = Client(srv.port, "other project", key=other["secret_key"])
    for role in ("viewer", "operator"):
        k = S["sec"].ok("POST", "/api/v1/api-keys", {"name": role, "role": role}, 201)
        S[role] = Client(srv.port, role, key=k["key"])

    # The experiment ran on the 14 local days ending 3 days ago.
    start = today() - datetime.timedelta(days=16)
    S["start"], S["end"] = start, start + datetime.timedelta(days=13)
    rng = random.Random(20261206)
    events = []
    truth = {"control": [0, 0, 0.0, 0], "test": [0, 0, 0.0, 0]}  # persons, converters, revenue, orders
    by_day = {v: [0] * 14 for v in truth}
    for i in range(20000):
        v = "control" if i % 2 == 0 else "test"
        did = f"p{i}"
        day_idx = rng.randrange(14)
        day = start + datetime.timedelta(days=day_idx)
        sec = rng.randrange(0, 20 * 3600)
        events.append(exposure(did, FLAG, v, day, sec))
        if rng.random() < 0.2:  # the SDK reports again later: the first exposure counts
            events.append(exposure(did, FLAG, v, day, sec + 3600))
        if rng.random() < 0.05:  # a payment before the exposure never counts
            events.append({"event": "pay", "distinct_id": did, "timestamp": at(day, sec - 1),
                           "properties": {"amount": 1000}})
        truth[v][0] += 1
        by_day[v][day_idx] += 1
        if rng.random() < (0.10 if v == "control" else 0.13):
            truth[v][1] += 1
            orders = 1 + (rng.random() < 0.3)
            for k in range(orders):
                amount = rng.choice([20, 50, 80])
                truth[v][2] += amount
                truth[v][3] += 1
                events.append({"event": "pay", "distinct_id": did, "timestamp": at(day, sec + 600 + k * 60),
                               "properties": {"amount": amount}})
    # Three persons whose anonymous id saw control and whose login id saw test: excluded.
    for j in range(3):
        events.append(exposure(f"anon{j}", FLAG, "control", start, 100))
        events.append(exposure(f"user{j}", FLAG, "test", start, 200))
        events.append({"event": "$identify", "distinct_id": f"user{j}", "timestamp": at(start, 300),
                       "properties": {"$anon_distinct_id": f"anon{j}"}})
    # A skewed split on another flag: 5,500 / 4,500 persons, planned 50/50.
    for i in range(10000):
        v = "control" if i < 5500 else "test"
        events.append(exposure(f"s{i}", "skewed-flag", v, start + datetime.timedelta(days=i % 14), 3600))
    send(events)
    S["truth"], S["by_day"] = truth, by_day


def experiment_body(**kw):
    body = {
        "name": "New checkout", "hypothesis": "A shorter checkout raises paid conversion", "owner": "ann",
        "flag_key": FLAG, "variants": [{"key": "control", "weight": 50}, {"key": "test", "weight": 50}],
        "start_date": S["start"].isoformat(), "end_date": S["end"].isoformat(), "status": "running",
        "primary_metrics": [{"name": "pay conversion", "type": "funnel", "steps": ["pay"]}],
        "secondary_metrics": [{"name": "revenue per user", "type": "mean", "event": "pay", "math": "sum",
                               "property": "amount"},
                              {"name": "average order value", "type": "ratio",
                               "numerator": {"event": "pay", "math": "sum", "property": "amount"},
                               "denominator": {"event": "pay", "math": "count"}}],
        "guardrail_metrics": [{"type": "retention", "event": "$any", "day": 1}],
        "minimum_detectable_effect": 0.05,
    }
    body.update(kw)
    return body


# --------------------------------------------------------------------------- the known lift

def test_known_lift_recovered():
    sec = S["sec"]
    exp = sec.ok("POST", "/api/v1/experiments", experiment_body(), 201)
    S["exp"] = exp["id"]
    r = sec.ok("GET", f"/api/v1/experiments/{exp['id']}/results")
    truth = S["truth"]
    check_eq([v["exposed"] for v in r["variants"]], [truth["control"][0], truth["test"][0]], "persons per variant")
    check_eq(r["exposures"], 20000, "included persons")
    check_eq(r["multiple_exposures"], 3, "persons exposed to both variants")
    check_eq((r["date_from"], r["date_to"]), (S["start"].isoformat(), S["end"].isoformat()), "analysed days")
    check_eq([v["counts"] for v in r["exposures_by_day"]["variants"]], [S["by_day"]["control"], S["by_day"]["test"]],
             "exposures per day")
    check_eq(len(r["exposures_by_day"]["dates"]), 14, "one date per day")
    check(r["srm_checked"] and not r["srm_flagged"], f"a 50/50 split is not SRM: {r['srm_p_value']}")
    conv = r["metrics"][0]
    check_eq((conv["name"], conv["role"], conv["kind"]), ("pay conversion", "primary", "proportion"), "metric")
    check_eq([v["n"] for v in conv["variants"]], [truth["control"][0], truth["test"][0]], "n")
    check_eq([v["conversions"] for v in conv["variants"]], [truth["control"][1], truth["test"][1]], "conversions")
    for v, name in zip(conv["variants"], ("control", "test")):
        check(abs(v["rate"] - truth[name][1] / truth[name][0]) < 1e-12, f"rate of {name}: {v}")
    eff = conv["effects"][0]
    check_eq(eff["variant"], "test", "effect of the treatment")
    lo, hi = eff["ci"]
    check(lo <= 0.30 <= hi, f"the true relative lift 0.30 lies in the interval {eff['ci']}")
    check(lo > 0, f"the lift is significant: {eff}")
    check(eff["p_value"] is not None and eff["p_value"] < 0.05, f"p-value: {eff}")
    check(abs(eff["expected"] - (truth["test"][1] / truth["test"][0]) / (truth["control"][1] / truth["control"][0])
              + 1) < 1e-9, f"expected = relative difference of the rates: {eff}")
    for k in ("chance_to_win", "risk", "p_value_unadjusted"):
        check(k in eff, f"effect field {k}")
    # Revenue per user (mean) and average order value (ratio): sums exactly as generated.
    rev = r["metrics"][1]
    check_eq(rev["kind"], "mean", "revenue per user is a mean")
    check_eq([v["sum"] for v in rev["variants"]], [truth["control"][2], truth["test"][2]], "revenue sums")
    aov = r["metrics"][2]
    check_eq(aov["kind"], "ratio", "AOV is a ratio")
    check_eq([v["denominator_sum"] for v in aov["variants"]], [truth["control"][3], truth["test"][3]], "orders")
    check_eq([v["sum"] for v in aov["variants"]], [truth["control"][2], truth["test"][2]], "AOV numerators")
    ret = r["metrics"][3]
    check_eq((ret["role"], ret["name"]), ("guardrail", "day 1 retention"), "retention guardrail, default name")
    # Power: the persons and days the MDE needs at the control's variance and the traffic so far.
    p = r["power"]
    check_eq((p["metric"], p["days_elapsed"]), ("pay conversion", 14), "power of the primary metric")
    check(p["persons_per_variant"] > 0 and p["days_needed"] > 0, f"power: {p}")
    check(abs(p["daily_persons"] - 20000 / 14) < 1e-9, f"traffic per day: {p}")
    check_eq(p["days_remaining"], max(0, p["days_needed"] - 14), "days still needed")


def test_skewed_split_flags_srm():
    sec = S["sec"]
    exp = sec.ok("POST", "/api/v1/experiments", experiment_body(name="Skewed", flag_key="skewed-flag"), 201)
    r = sec.ok("GET", f"/api/v1/experiments/{exp['id']}/results")
    check_eq([v["exposed"] for v in r["variants"]], [5500, 4500], "persons per variant")
    # Chi-square with one degree of freedom against 5,000 / 5,000.
    chi2 = 2 * 500 ** 2 / 5000
    p = math.erfc(math.sqrt(chi2 / 2))
    check(abs(r["srm_p_value"] - p) < 1e-6 * max(p, 1e-300) + 1e-12, f"srm_p_value {r['srm_p_value']} vs {p}")
    check(r["srm_flagged"] and r["srm_checked"], f"a 55/45 split planned 50/50 flags SRM: {r}")
    # The flag an experiment reads cannot be deleted under it (409 naming the experiment).
    flag = sec.ok("POST", "/api/v1/flags", {"key": "skewed-flag", "rollout_percentage": 50}, 201)
    e = sec.err("DELETE", f"/api/v1/flags/{flag['id']}", expect=409)
    check("experiment 'Skewed'" in e["message"], f"the refusal names the experiment: {e}")
    sec.ok("DELETE", f"/api/v1/experiments/{exp['id']}")
    sec.ok("DELETE", f"/api/v1/flags/{flag['id']}")


# --------------------------------------------------------------------------- CRUD, roles, projects

def test_crud_validation_and_roles():
    sec, viewer, operator = S["sec"], S["viewer"], S["operator"]
    draft = operator.ok("POST", "/api/v1/experiments", {"name": "Draft", "flag_key": "f"}, 201)
    check_eq((draft["status"], [v["key"] for v in draft["variants"]], draft["start_date"], draft["scenario_id"]),
             ("draft", ["control", "test"], None, None), "defaults")
    check_eq(draft["analysis"]["method"], "frequentist", "default method")
    got = viewer.ok("GET", f"/api/v1/experiments/{draft['id']}")
    check_eq(got, draft, "GET answers what POST did")
    check_eq(viewer.err("GET", f"/api/v1/experiments/{draft['id']}/results", expect=409)["code"],
             "failed_precondition", "no results before a start date")
    p = operator.ok("PATCH", f"/api/v1/experiments/{draft['id']}", {"hypothesis": "h", "analysis": {"method": "bayesian"}})
    check_eq((p["hypothesis"], p["name"], p["analysis"]["method"]), ("h", "Draft", "bayesian"),
             "PATCH changes what it names")
    ids = [e["id"] for e in viewer.ok("GET", "/api/v1/experiments")["experiments"]]
    check(draft["id"] in ids and S["exp"] in ids, f"list: {ids}")
    cases = [
        ({"flag_key": "f"}, "name"),
        ({"name": "x"}, "flag_key"),
        ({"name": "x", "flag_key": "f", "variants": ["a"]}, "variants"),
        ({"name": "x", "flag_key": "f", "variants": ["a", "a"]}, "variants[1].key"),
        ({"name": "x", "flag_key": "f", "status": "running"}, "start_date"),
        ({"name": "x", "flag_key": "f", "start_date": "2025-02-30"}, "start_date"),
        ({"name": "x", "flag_key": "f", "primary_metrics": [{"type": "funnel", "steps": []}]},
         "primary_metrics[0].steps"),
        ({"name": "x", "flag_key": "f", "primary_metrics": [{"type": "median", "event": "pay"}]},
         "primary_metrics[0].type"),
        ({"name": "x", "flag_key": "f", "analysis": {"alpha": 2}}, "analysis.alpha"),
        ({"name": "x", "flag_key": "f", "analysis": {"correction": "sidak"}}, "analysis.correction"),
        ({"name": "x", "flag_key": "f", "scenario_id": 999}, "scenario_id"),
        ({"name": "x", "flag_key": "f", "colour": 1}, "colour"),
    ]
    for body, field in cases:
        check_eq(operator.err("POST", "/api/v1/experiments", body)["field"], field, f"error field of {body}")
    check_eq(operator.err("PATCH", f"/api/v1/experiments/{draft['id']}", {"variants": []})["field"], "variants",
             "PATCH validates")
    # Viewers read only; a write key reads nothing.
    viewer.err("POST", "/api/v1/experiments", {"name": "x", "flag_key": "f"}, expect=403)
    viewer.err("PATCH", f"/api/v1/experiments/{draft['id']}", {"name": "y"}, expect=403)
    viewer.err("DELETE", f"/api/v1/experiments/{draft['id']}", expect=403)
    r = S["writer"].req("GET", "/api/v1/experiments")
    check(r.status in (401, 403), f"write key reads experiments: {r}")
    # Another project sees none of them.
    other = S["other"]
    check_eq(other.ok("GET", "/api/v1/experiments")["experiments"], [], "other project's list")
    for method, path in (("GET", f"/api/v1/experiments/{S['exp']}"), ("GET", f"/api/v1/experiments/{S['exp']}/results"),
                         ("DELETE", f"/api/v1/experiments/{S['exp']}")):
        check_eq(other.err(method, path, expect=404)["code"], "not_found", f"{method} {path} from another project")
    other.err("PATCH", f"/api/v1/experiments/{S['exp']}", {"name": "stolen"}, expect=404)
    check_eq(sec.err("GET", "/api/v1/experiments/424242/results", expect=404)["code"], "not_found", "unknown id")
    # The scenario link, as a KPI's; deleting the scenario unlinks.
    scen = sec.ok("POST", "/api/v1/scenarios", {"name": "Checkout conversion"}, 201)["id"]
    linked = operator.ok("PATCH", f"/api/v1/experiments/{draft['id']}", {"scenario_id": scen})
    check_eq(linked["scenario_id"], scen, "linked")
    check_eq([e["id"] for e in viewer.ok("GET", f"/api/v1/experiments?scenario_id={scen}")["experiments"]],
             [draft["id"]], "a scenario's experiments")
    check_eq(viewer.err("GET", "/api/v1/experiments?scenario_id=x")["field"], "scenario_id", "bad filter")
    other_scen = other.ok("POST", "/api/v1/scenarios", {"name": "theirs"}, 201)["id"]
    check_eq(operator.err("PATCH", f"/api/v1/experiments/{draft['id']}", {"scenario_id": other_scen})["field"],
             "scenario_id", "another project's scenario")
    sec.ok("DELETE", f"/api/v1/scenarios/{scen}")
    check_eq(viewer.ok("GET", f"/api/v1/experiments/{draft['id']}")["scenario_id"], None, "unlinked")
    operator.ok("DELETE", f"/api/v1/experiments/{draft['id']}")
    viewer.err("GET", f"/api/v1/experiments/{draft['id']}", expect=404)
    # The audit log has the changes.
    log = sec.ok("GET", "/api/v1/audit-log?entity=experiment")
    entries = log.get("entries", log.get("audit_log", log)) if isinstance(log, dict) else log
    check("experiment" in str(entries), f"audit log: {str(log)[:300]}")


def main():
    binary = binary_from_argv()
    if not binary:
        return 2
    tmp = tempfile.mkdtemp(prefix="ns-experiments-")
    ok = True
    try:
        setup(binary, tmp)
        for t in (test_known_lift_recovered, test_skewed_split_flags_srm, test_crud_validation_and_roles):
            ok = run_one(t) and ok
    finally:
        if "server" in S:
            S["server"].stop()
            if not ok:
                print(S["server"].log_tail())
        shutil.rmtree(tmp, ignore_errors=True)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
