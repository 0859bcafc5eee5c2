#!/usr/bin/env python3
"""The churn model's API against a real server (docs/models.md, docs/api.md "Models").

A project of 700 generated persons over the 150 days up to yesterday (Asia/Shanghai): each
has a last day of use, and its activity fades over the three weeks before it (the signal
the model must find); a tenth of the events are payments. Then:
  - GET /api/v1/models/churn before any training: "untrained"; a viewer may read it but not
    train (403); the secret key starts a training (202 and a job id; asked again while it
    runs, the same job) and the status turns "ready";
  - the evaluation: T = yesterday - 60, the evaluation window after it, sizes, AUC well above
    chance and precision at the top 10% above the base rate, 21 feature importances;
  - the riskiest persons (GET /api/v1/models/churn/persons) and the person API's "churn"
    (risk, top features) agree; $churn_risk, $churn_risk_decile, $clv and $p_alive are person
    properties: a person-list filter, a cohort condition, the built-in rule tag
    "high_churn_risk" and a trends breakdown read them, with the counts the summary reports;
  - after a restart the model, its scores and the properties are back without training.
Usage: churn_api_test.py /path/to/northstar. Standard library only; about 20 s.
"""

import datetime as dt
import json
import math
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, check, check_eq, run_server_suite  # noqa: E402
from opsclient import create_project  # noqa: E402

S = {}
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def generate():
    """Events of the story above, and per person whether it was active in the last 30 days."""
    rng = random.Random(11)
    today = dt.datetime.now(SHANGHAI).date()
    first = today - dt.timedelta(days=150)
    events, k = [], 0
    for u in range(700):
        start = rng.randrange(0, 110)
        last = start + int(-math.log(1 - rng.random()) * 60)
        rate = 0.15 + 0.5 * rng.random()
        for d in range(start, min(last, 149) + 1):
            fade = min(1.0, (last - d) / 21.0)
            if d != start and rng.random() >= rate * (0.15 + 0.85 * fade):
                continue
            day = first + dt.timedelta(days=d)
            ts = dt.datetime(day.year, day.month, day.day, 9, tzinfo=SHANGHAI) + dt.timedelta(
                seconds=rng.randrange(0, 12 * 3600))
            pay = rng.random() < 0.1
            e = {"event": "pay" if pay else "page_view", "distinct_id": f"p{u}", "timestamp": ts.isoformat(),
                 "uuid": f"churn-{k}"}
            if pay:
                e["properties"] = {"amount": 10 + rng.randrange(100), "order_id": f"o{k}"}
            events.append(e)
            k += 1
    return events, today


def setup(binary, tmp):
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    keys = create_project(binary, data, "shop", tz="Asia/Shanghai")
    S.update(binary=binary, data=data, tmp=tmp)
    # No scheduler: the daily job would train on its own; this test trains by hand.
    S["server"] = srv = Server(binary, data, os.path.join(tmp, "server.log"), ["--no-scheduler"]).start()
    S["sec"] = Client(srv.port, "secret", key=keys["secret_key"])
    S["writer"] = Client(srv.port, "writer", key=keys["write_key"])
    k = S["sec"].ok("POST", "/api/v1/api-keys", {"name": "reader", "role": "viewer"}, 201)
    S["viewer_key"] = k["key"]
    S["viewer"] = Client(srv.port, "viewer", key=k["key"])
    events, S["today"] = generate()
    for i in range(0, len(events), 2000):
        r = S["writer"].req("POST", "/api/v1/events", events[i:i + 2000])
        check(r.status == 200, f"ingest: {r}")


def wait_ready(client, timeout=50):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = client.ok("GET", "/api/v1/models/churn")
        if st["status"] in ("ready", "failed"):
            return st
        time.sleep(0.3)
    raise AssertionError("training did not finish in time")


def test_train_by_hand():
    st = S["viewer"].ok("GET", "/api/v1/models/churn")
    check_eq((st["status"], st["auc"], st["job"]), ("untrained", None, None), "before training")
    e = S["viewer"].err("POST", "/api/v1/models/churn/train", {}, expect=403)
    check(e["code"] in ("permission_denied", "forbidden"), f"viewer refused: {e}")
    job = S["sec"].ok("POST", "/api/v1/models/churn/train", {}, expect=202)
    check(job["status"] == "training" and job["job_id"] >= 1, f"job {job}")
    again = S["sec"].ok("POST", "/api/v1/models/churn/train", {}, expect=202)
    check(again["job_id"] == job["job_id"] or again.get("started"), f"a second ask while training: {again}")
    st = wait_ready(S["viewer"])
    check_eq(st["status"], "ready", f"status after training (error {st.get('error')})")
    yesterday = S["today"] - dt.timedelta(days=1)
    check_eq(st["T"], (yesterday - dt.timedelta(days=60)).isoformat(), "T: the training day")
    check_eq(st["evaluation_T"], (yesterday - dt.timedelta(days=30)).isoformat(), "the evaluation day")
    check_eq(st["scored_as_of"], yesterday.isoformat(), "scored as of yesterday")
    check(st["training_size"] > 100 and st["evaluation_size"] > 100, f"sizes {st['training_size']} {st['evaluation_size']}")
    check(st["auc"] > 0.75, f"evaluation AUC {st['auc']}")
    check(st["precision_at_10"] > st["evaluation"]["churn_rate"], f"precision@10% {st['precision_at_10']} vs base rate "
          f"{st['evaluation']['churn_rate']}")
    check_eq(len(st["feature_importance"]), 21, "feature importances")
    imp = [f["importance"] for f in st["feature_importance"]]
    check(imp == sorted(imp, reverse=True), "importances sorted")
    check(abs(sum(f["share"] for f in st["feature_importance"]) - 1) < 0.01, "shares sum to 1")
    check_eq(sum(b["persons"] for b in st["risk_distribution"]), st["scored"]["persons"], "distribution counts")
    S["status"] = st
    print(f"  generated data: AUC {st['auc']}, precision@10% {st['precision_at_10']}, "
          f"base rate {st['evaluation']['churn_rate']}, sizes {st['training_size']} / {st['evaluation_size']}, "
          f"took {st['took_ms']} ms", flush=True)


def test_scores_in_person_api():
    top = S["viewer"].ok("GET", "/api/v1/models/churn/persons?limit=5")
    check_eq(len(top["persons"]), 5, "five riskiest")
    risks = [p["risk"] for p in top["persons"]]
    check(risks == sorted(risks, reverse=True), f"riskiest first: {risks}")
    for p in top["persons"]:
        page = S["viewer"].ok("GET", f"/api/v1/persons/{p['distinct_id']}")
        c = page["churn"]
        check_eq(c["risk"], p["risk"], f"{p['distinct_id']}: risk in the person API")
        check_eq(len(c["top_features"]), 3, "three top features")
        check_eq(c["top_features"], p["top_features"], "the same top features")
        check(all(set(f) == {"feature", "contribution"} for f in c["top_features"]), f"shape {c['top_features']}")
        check_eq(page["properties"].get("$churn_risk"), p["risk"], "the $churn_risk property")
    S["viewer"].err("GET", "/api/v1/models/churn/persons?limit=0")
    # A payer has $clv and $p_alive.
    payers = S["sec"].ok("GET", "/api/v1/persons?filters=" + urllib.parse.quote(json.dumps(
        [{"property": "$p_alive", "op": "is_set"}])) + "&limit=5")
    check(payers["total"] > 50, f"persons with $p_alive: {payers['total']}")
    page = S["sec"].ok("GET", f"/api/v1/persons/{payers['persons'][0]['distinct_id']}")
    check(0 <= page["properties"]["$p_alive"] <= 1 and page["properties"]["$clv"] >= 0, f"{page['properties']}")


def test_properties_in_filters_cohorts_breakdowns():
    high = S["status"]["scored"]["high_risk_persons"]
    check(high > 10, f"high-risk persons {high}")
    flt = urllib.parse.quote(json.dumps([{"property": "$churn_risk_decile", "op": "eq", "value": 10}]))
    check_eq(S["sec"].ok("GET", f"/api/v1/persons?filters={flt}")["total"], high, "person-list filter on the decile")
    c = S["sec"].ok("POST", "/api/v1/cohorts", {"name": "built-in high churn risk", "definition": {
        "op": "and", "conditions": [{"type": "tag", "tag": "high_churn_risk"}]}}, 201)
    check_eq(c["size"], high, "the built-in rule tag high_churn_risk")
    c2 = S["sec"].ok("POST", "/api/v1/cohorts", {"name": "risk >= 0.5", "definition": {
        "op": "and", "conditions": [{"type": "property", "property": "$churn_risk", "op": "gte", "value": 0.5}]}}, 201)
    above = S["status"]["risk_distribution"]
    check_eq(c2["size"], sum(b["persons"] for b in above if b["from"] >= 0.5), "cohort on $churn_risk >= 0.5")
    yesterday = (S["today"] - dt.timedelta(days=1)).isoformat()
    got = S["sec"].ok("POST", "/api/v1/query", {
        "kind": "trends", "date_from": (S["today"] - dt.timedelta(days=90)).isoformat(), "date_to": yesterday,
        "series": [{"event": "$any", "math": "total"}], "breakdown": "person.$churn_risk_decile",
        "breakdown_limit": 20})
    values = {str(s["breakdown_value"]) for s in got["series"]}
    check({str(d) for d in range(1, 11)} <= values, f"every decile is a breakdown value: {values}")


def test_restart_keeps_the_model():
    before = S["viewer"].ok("GET", "/api/v1/models/churn")
    top = S["viewer"].ok("GET", "/api/v1/models/churn/persons?limit=3")
    S["server"].stop()
    S["server"] = srv = Server(S["binary"], S["data"], os.path.join(S["tmp"], "server.log"), ["--no-scheduler"]).start()
    viewer = Client(srv.port, "viewer", key=S["viewer_key"])
    after = viewer.ok("GET", "/api/v1/models/churn")
    for k in ("status", "auc", "precision_at_10", "T", "trained_at", "feature_importance", "scored"):
        check_eq(after[k], before[k], f"{k} after a restart")
    for p in top["persons"]:
        page = viewer.ok("GET", f"/api/v1/persons/{p['distinct_id']}")
        check_eq((page["churn"]["risk"], page["properties"].get("$churn_risk")), (p["risk"], p["risk"]),
                 "scores after a restart")


def main():
    return run_server_suite(S, "ns-churn-", setup, (test_train_by_hand, test_scores_in_person_api,
                            test_properties_in_filters_cohorts_breakdowns, test_restart_keeps_the_model))


if __name__ == "__main__":
    sys.exit(main())
