#!/usr/bin/env python3
"""The people API against a real server (docs/people.md): persons looked up by any distinct
id (merged persons), RFM and lifecycle as of a day, timelines paginated by cursor, lists,
search and CSV, static and behavioural cohorts (sizes that follow new events at once,
cycles refused with the path, unknown ids reported, members that follow a merge), cohorts
as filters of queries and of the rfm and lifecycle kinds, masking of personal data for
non-admins, and the errors that name the field.

Usage: people_api_test.py /path/to/northstar. Standard library only.
"""

import csv
import io
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, check, check_eq, run_server_suite  # noqa: E402
from opsclient import create_project  # noqa: E402

S = {}  # fixtures: server, secret client, viewer client, write key


def ev(name, did, ts, props=None):
    e = {"event": name, "distinct_id": did, "timestamp": ts}
    if props:
        e["properties"] = props
    return e


def send(events):
    r = S["writer"].req("POST", "/api/v1/events", events)
    check(r.status == 200, f"ingest: {r}")
    return r.json()


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
    # alice: anonymous device, then logs in (identify), pays twice (one order sent twice);
    # bob pays once long ago; carol only browses. Local days in Asia/Shanghai (+08:00).
    send([
        ev("page_view", "dev-a", "2026-11-01T09:00:00+08:00"),
        ev("$identify", "alice", "2026-11-01T09:05:00+08:00",
           {"$anon_distinct_id": "dev-a", "$set": {"phone": "13812345678", "email": "alice@example.com",
                                                    "city": "杭州"}}),
        ev("add_to_cart", "alice", "2026-11-01T09:10:00+08:00"),
        ev("pay", "alice", "2026-11-01T09:20:00+08:00", {"amount": 100, "order_id": "o1"}),
        ev("pay", "alice", "2026-11-01T09:20:01+08:00", {"amount": 100, "order_id": "o1"}),
        ev("pay", "alice", "2026-11-20T23:59:00+08:00", {"amount": 50.5, "order_id": "o2"}),
        ev("pay", "bob", "2026-06-01T10:00:00+08:00", {"amount": 30, "order_id": "o3"}),
        ev("$identify", "bob", "2026-06-01T10:00:00+08:00", {"$set": {"city": "上海", "phone": "13900001111"}}),
        ev("page_view", "carol", "2026-11-30T10:00:00+08:00"),
        ev("add_to_cart", "carol", "2026-11-30T10:01:00+08:00"),
    ])


def test_person_by_any_id():
    for did in ("alice", "dev-a"):
        p = S["sec"].ok("GET", f"/api/v1/persons/{did}?as_of=2026-11-30")
        check_eq(sorted(p["distinct_ids"]), ["alice", "dev-a"], "distinct ids")
        check_eq(p["display_id"], "alice", "display id: the identified id")
        check_eq(p["event_count"], 6, "events (the $identify included)")
        check_eq(p["first_seen"], "2026-11-01T01:00:00.000Z", "first seen")
        rfm = p["rfm"]
        check_eq((rfm["frequency"], rfm["monetary"]), (2, 150.5), "orders de-duplicated by order_id")
        check_eq(rfm["recency_days"], 10, "recency: local days from 2026-11-20 to 2026-11-30")
        check_eq(p["lifecycle"], "active", "lifecycle as of 2026-11-30")
        check_eq(p["properties"]["phone"], "13812345678", "admin sees personal data")
    p = S["sec"].ok("GET", "/api/v1/persons/alice?as_of=2026-11-05")
    check_eq(p["rfm"]["frequency"], 1, "as of 2026-11-05 one order")
    check_eq(p["lifecycle"], "new", "first seen within 7 days of 2026-11-05")
    p = S["sec"].ok("GET", "/api/v1/persons/bob?as_of=2026-11-30")
    check_eq(p["lifecycle"], "churned", "bob, last seen in June")
    e = S["sec"].err("GET", "/api/v1/persons/nobody", expect=404)
    check("nobody" in e["message"], f"404 names the id: {e}")
    e = S["sec"].err("GET", "/api/v1/persons/alice?as_of=2026-13-01")
    check_eq(e.get("field"), "as_of", "bad as_of")


def test_masking_for_viewers():
    p = S["viewer"].ok("GET", "/api/v1/persons/alice")
    check_eq(p["properties"]["phone"], "138****5678", "masked phone")
    check_eq(p["properties"]["email"], "a***@example.com", "masked email")
    check_eq(p["properties"]["city"], "杭州", "other properties in clear")
    lst = S["viewer"].ok("GET", "/api/v1/persons?q=alice")
    check_eq(lst["persons"][0]["properties"]["phone"], "138****5678", "masked in lists")
    r = S["viewer"].req("GET", "/api/v1/persons.csv")
    check("13812345678" not in r.body.decode(), "no raw phone in the viewer's CSV")
    check("138****5678" in r.body.decode(), "masked phone in the viewer's CSV")
    # Searching by a hidden value finds nothing (it would reveal it).
    check_eq(S["viewer"].ok("GET", "/api/v1/persons?q=13812345678")["total"], 0, "no search by masked data")
    # The secret key's timeline shows raw values; the viewer's does not.
    t = S["viewer"].ok("GET", "/api/v1/persons/alice/events?limit=100")
    for e in t["events"]:
        if "$set" in e["properties"]:
            check("13812345678" not in str(e["properties"]), f"timeline masks nested data? {e}")


def test_timeline_pages():
    seen, cursor = [], None
    while True:
        path = "/api/v1/persons/dev-a/events?limit=2" + (f"&before={cursor}" if cursor else "")
        page = S["sec"].ok("GET", path)
        check(len(page["events"]) <= 2, "page size")
        seen += page["events"]
        cursor = page["next"]
        if not cursor:
            break
    check_eq(len(seen), 6, "every event of the merged person once")
    ts = [e["timestamp"] for e in seen]
    check_eq(ts, sorted(ts, reverse=True), "newest first")
    check_eq(seen[-1]["event"], "page_view", "the anonymous first event is the oldest")
    e = S["sec"].err("GET", "/api/v1/persons/alice/events?limit=0")
    check_eq(e.get("field"), "limit", "limit validated")


def test_list_search_csv():
    lst = S["sec"].ok("GET", "/api/v1/persons?order_by=last_seen&limit=2")
    check_eq(lst["total"], 3, "three persons")
    check_eq([p["distinct_id"] for p in lst["persons"]], ["carol", "alice"], "newest activity first")
    nxt = S["sec"].ok("GET", f"/api/v1/persons?order_by=last_seen&limit=2&cursor={lst['next']}")
    check_eq([p["distinct_id"] for p in nxt["persons"]], ["bob"], "second page")
    check_eq(S["sec"].ok("GET", "/api/v1/persons?q=%E4%B8%8A%E6%B5%B7")["persons"][0]["distinct_id"], "bob",
             "search by a property value (上海)")
    f = '[{"property":"city","op":"eq","value":"杭州"}]'
    import urllib.parse
    got = S["sec"].ok("GET", "/api/v1/persons?filters=" + urllib.parse.quote(f))
    check_eq([p["distinct_id"] for p in got["persons"]], ["alice"], "property filter")
    r = S["sec"].req("GET", "/api/v1/persons.csv")
    check_eq(r.status, 200, "csv status")
    body = r.body.decode("utf-8")
    check(body.startswith("\ufeff"), "UTF-8 BOM")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    check_eq(rows[0][:5], ["distinct_id", "first_seen", "last_seen", "event_count", "lifecycle"], "csv header")
    check_eq(len(rows), 4, "csv rows")
    e = S["sec"].err("GET", "/api/v1/persons?order_by=name")
    check_eq(e.get("field"), "order_by", "order_by validated")


def test_cohorts():
    sec = S["sec"]
    payers = sec.ok("POST", "/api/v1/cohorts", {"name": "payers", "definition": {"op": "and", "conditions": [
        {"type": "performed", "event": "pay", "count": {"op": "gte", "value": 1}}]}}, 201)
    check_eq(payers["size"], 2, "alice and bob paid")
    check("as_of" in payers, "as_of in the answer")
    carted = sec.ok("POST", "/api/v1/cohorts", {"name": "carted, not paid", "definition": {"op": "and", "conditions": [
        {"type": "performed", "event": "add_to_cart"},
        {"type": "cohort", "id": payers["id"], "negate": True}]}}, 201)
    check_eq(carted["size"], 1, "carol carted and never paid")
    # Never stale: carol pays, both sizes move at once.
    send([ev("pay", "carol", "2026-12-01T10:00:00+08:00", {"amount": 9})])
    check_eq(sec.ok("GET", f"/api/v1/cohorts/{payers['id']}")["size"], 3, "payers after carol paid")
    check_eq(sec.ok("GET", f"/api/v1/cohorts/{carted['id']}")["size"], 0, "carted-not-paid after carol paid")
    # A cycle is refused with its path.
    e = sec.err("PATCH", f"/api/v1/cohorts/{payers['id']}", {"definition": {"op": "and", "conditions": [
        {"type": "cohort", "id": carted["id"]}]}})
    check("cycle" in e["message"] and f"cohort {carted['id']}" in e["message"], f"cycle: {e}")
    # Errors name the field.
    e = sec.err("POST", "/api/v1/cohorts", {"name": "x", "definition": {"op": "and", "conditions": [
        {"type": "performed", "event": "pay", "count": {"op": "more", "value": 1}}]}})
    check_eq(e.get("field"), "definition.conditions[0].count.op", "bad count op")
    e = sec.err("POST", "/api/v1/cohorts", {"name": "payers", "definition": {"op": "and", "conditions": [
        {"type": "performed", "event": "pay"}]}}, expect=409)
    # A cohort in use cannot be deleted.
    r = sec.req("DELETE", f"/api/v1/cohorts/{payers['id']}")
    check(r.status in (400, 409, 412), f"deleting a cohort in use: {r}")
    # Viewers read but do not change.
    S["viewer"].ok("GET", "/api/v1/cohorts")
    S["viewer"].err("POST", "/api/v1/cohorts", {"name": "v", "kind": "static"}, expect=403)
    S["ids"] = (payers["id"], carted["id"])


def test_cohort_preview():
    # A definition evaluated without saving (the console's live size) answers the size the
    # saved cohort then has; a list answers one size each; nothing is stored.
    sec, viewer = S["sec"], S["viewer"]
    payers_id, carted_id = S["ids"]
    definition = {"op": "or", "conditions": [
        {"type": "performed", "event": "pay"},
        {"op": "and", "conditions": [{"type": "property", "property": "city", "op": "eq", "value": "杭州"},
                                     {"type": "cohort", "id": carted_id, "negate": True}]}]}
    before = len(sec.ok("GET", "/api/v1/cohorts")["cohorts"])
    p = viewer.ok("POST", "/api/v1/cohorts/preview", {"definition": definition})
    check("as_of" in p, f"as_of in the preview: {p}")
    saved = sec.ok("POST", "/api/v1/cohorts", {"name": "preview check", "definition": definition}, 201)
    check_eq(p["size"], saved["size"], "preview size = saved size")
    check_eq(len(sec.ok("GET", "/api/v1/cohorts")["cohorts"]), before + 1, "the preview stored nothing")
    batch = viewer.ok("POST", "/api/v1/cohorts/preview", {"definitions": [
        definition, {"op": "and", "conditions": [{"type": "cohort", "id": payers_id}]},
        {"op": "and", "conditions": [{"type": "lifecycle", "stage": "churned"}]}]})
    check_eq(batch["sizes"][:2], [saved["size"], sec.ok("GET", f"/api/v1/cohorts/{payers_id}")["size"]], "batch sizes")
    check_eq(len(batch["sizes"]), 3, "one size per definition")
    e = sec.err("POST", "/api/v1/cohorts/preview", {"definitions": [definition, {"op": "and", "conditions": [
        {"type": "performed", "event": "pay", "count": {"op": "more", "value": 1}}]}]})
    check_eq(e.get("field"), "definitions[1].conditions[0].count.op", "a batch error names its definition")
    e = sec.err("POST", "/api/v1/cohorts/preview", {"definition": {"op": "and", "conditions": [{"type": "cohort", "id": 99999}]}})
    check_eq(e.get("field"), "definition", "unknown cohort")
    check_eq(sec.err("POST", "/api/v1/cohorts/preview", {}).get("field"), "definition", "nothing to preview")
    sec.ok("DELETE", f"/api/v1/cohorts/{saved['id']}")


def test_static_cohort_and_merge():
    sec = S["sec"]
    c = sec.ok("POST", "/api/v1/cohorts", {"name": "vip", "kind": "static"}, 201)
    r = sec.ok("POST", f"/api/v1/cohorts/{c['id']}/members", "distinct_id\ndev-b\nghost\n", ctype="text/csv")
    check_eq(r["unknown"], ["dev-b", "ghost"], "unknown ids reported, not added")
    send([ev("page_view", "dev-b", "2026-12-01T11:00:00+08:00")])
    r = sec.ok("POST", f"/api/v1/cohorts/{c['id']}/members", {"distinct_ids": ["dev-b"]})
    check_eq(r["size"], 1, "dev-b added")
    # dev-b logs in as bob: the membership moves with the merged person.
    send([ev("$identify", "bob", "2026-12-01T11:01:00+08:00", {"$anon_distinct_id": "dev-b"})])
    lst = sec.ok("GET", f"/api/v1/persons?cohort={c['id']}")
    check_eq([p["distinct_id"] for p in lst["persons"]], ["bob"], "static member follows the merge")
    csv_body = sec.req("GET", f"/api/v1/cohorts/{c['id']}/export.csv").body.decode("utf-8")
    check("bob" in csv_body, f"export: {csv_body[:200]}")


def test_cohort_filters_in_queries():
    sec = S["sec"]
    payers, _ = S["ids"]
    q = {"kind": "trends", "date_from": "2026-11-01", "date_to": "2026-12-01",
         "series": [{"event": "page_view", "math": "total"}], "interval": "month"}
    total = sum(sec.ok("POST", "/api/v1/query", q)["series"][0]["values"])
    q["filters"] = [{"cohort": payers}]
    inside = sum(sec.ok("POST", "/api/v1/query", q)["series"][0]["values"])
    q["filters"] = [{"cohort": payers, "op": "not_in"}]
    outside = sum(sec.ok("POST", "/api/v1/query", q)["series"][0]["values"])
    check_eq(inside + outside, total, "in + not_in = all")
    q["filters"] = [{"cohort": 999}]
    e = sec.err("POST", "/api/v1/query", q)
    check_eq(e.get("field"), "filters[0].cohort", "unknown cohort named")
    rfm = sec.ok("POST", "/api/v1/query", {"kind": "rfm", "as_of": "2026-12-01", "cohort": payers})
    check_eq(rfm["persons_scored"], 3, "rfm over the payers")
    check_eq(len(rfm["segments"]), 8, "eight segments")
    lc = sec.ok("POST", "/api/v1/query", {"kind": "lifecycle", "date_from": "2026-11-01", "date_to": "2026-11-30",
                                          "interval": "month"})
    check_eq(lc["series"][0]["stage"], "new", "stages")
    q = {"kind": "trends", "date_from": "2026-11-01", "date_to": "2026-12-01", "interval": "month",
         "series": [{"event": "page_view"}], "breakdown": "cohort", "breakdown_cohorts": [payers]}
    got = sec.ok("POST", "/api/v1/query", q)
    check_eq([(s["breakdown_value"], sum(s["values"])) for s in got["series"]], [(payers, inside)], "cohort breakdown")
    q["breakdown_cohorts"] = [payers, 999]
    check_eq(sec.err("POST", "/api/v1/query", q).get("field"), "breakdown_cohorts", "unknown cohort in a breakdown")
    f = {"kind": "funnel", "date_from": "2026-11-01", "date_to": "2026-12-01",
         "steps": [{"event": "add_to_cart"}, {"event": "pay"}], "filters": [{"cohort": payers}]}
    check_eq(sec.ok("POST", "/api/v1/query", f)["steps"][0]["count"], 2, "funnel over a cohort")


def test_tiers_and_tags():
    sec = S["sec"]
    cat = sec.ok("GET", "/api/v1/tags")
    check(len(cat["base_tags"]) >= 50, f"at least 50 base tags, got {len(cat['base_tags'])}")
    check(len(cat["rule_tags"]) >= 20, f"at least 20 rule tags, got {len(cat['rule_tags'])}")
    p = sec.ok("GET", "/api/v1/persons/alice")
    check_eq(sorted(p["tiers"]), ["activity", "need", "social", "value"], "four tier dimensions")
    check_eq(p["tiers"]["value"], "high", "alice spends most (top 20% of payers, 2 orders)")
    check_eq(p["base_tags"]["city"], "杭州", "base tag from a person property")
    check_eq(p["base_tags"]["order_count_band"], "2-3", "orders band")
    check("repeat_buyer" in p["tags"], f"rule tag repeat_buyer: {p['tags']}")
    check_eq(sec.ok("GET", "/api/v1/persons/carol")["tiers"]["value"], "medium", "carol paid once (9)")
    c = sec.ok("POST", "/api/v1/cohorts", {"name": "hangzhou repeaters", "tag": True, "definition": {
        "op": "and", "conditions": [{"type": "tag", "tag": "city", "value": "杭州"},
                                    {"type": "tag", "tag": "repeat_buyer"},
                                    {"type": "tier", "dimension": "value", "level": "high"}]}}, 201)
    check_eq(c["size"], 1, "alice only")
    check("hangzhou repeaters" in sec.ok("GET", "/api/v1/persons/alice")["tags"], "a project tag on the person page")
    e = sec.err("POST", "/api/v1/cohorts", {"name": "bad", "definition": {"op": "and", "conditions": [
        {"type": "tier", "dimension": "value", "level": "gold"}]}})
    check_eq(e.get("field"), "definition.conditions[0].level", "bad tier level")


def test_cohort_as_key_user_group():
    sec = S["sec"]
    payers, _ = S["ids"]
    e = sec.err("POST", "/api/v1/scenarios", {"name": "recall", "key_user_group": {"cohort_id": 999}})
    check_eq(e.get("field"), "key_user_group.cohort_id", "an unknown cohort is named")
    check("999" in e["message"], f"the message names the cohort: {e}")
    sid = sec.ok("POST", "/api/v1/scenarios", {"name": "recall payers", "key_user_group": {"cohort_id": payers}},
                 201)["id"]
    size = sec.ok("GET", f"/api/v1/cohorts/{payers}")["size"]
    for path in (f"/api/v1/scenarios/{sid}", f"/api/v1/scenarios/{sid}/evaluation"):
        c = S["viewer"].ok("GET", path)["key_user_group_cohort"]
        check_eq((c["id"], c["name"], c["size"]), (payers, "payers", size), f"{path}: the cohort's name and size")
        check(c["as_of"].endswith("Z"), f"as_of: {c}")
    listed = [x for x in sec.ok("GET", "/api/v1/scenarios") if x["id"] == sid][0]
    check_eq(listed["key_user_group_cohort"]["name"], "payers", "in the scenario list too")
    body = sec.req("GET", f"/api/v1/scenarios/{sid}/export.csv?table=requirements&lang=en").body.decode("utf-8")
    check(f"payers (cohort #{payers}, {size} persons as of " in body, f"export: {body}")
    # A cohort a scenario names cannot be deleted: 409 naming the scenario.
    free = sec.ok("POST", "/api/v1/cohorts", {"name": "to delete", "kind": "static"}, 201)["id"]
    sec.ok("PATCH", f"/api/v1/scenarios/{sid}", {"key_user_group": {"cohort_id": free}})
    e = sec.err("DELETE", f"/api/v1/cohorts/{free}", expect=409)
    check(f"scenario {sid} 'recall payers'" in e["message"], f"409 names the scenario: {e}")
    sec.ok("PATCH", f"/api/v1/scenarios/{sid}", {"key_user_group": "anyone"})
    sec.ok("DELETE", f"/api/v1/cohorts/{free}")
    check("key_user_group_cohort" not in sec.ok("GET", f"/api/v1/scenarios/{sid}"), "a described group has none")
    sec.ok("DELETE", f"/api/v1/scenarios/{sid}")


def test_list_by_lifecycle_tier_tag():
    """GET /api/v1/persons (and .csv) with lifecycle=, tier=DIM:LEVEL, tag=KEY[:VALUE] and a
    cohort definition: each list equals the persons whose own page says so."""
    sec = S["sec"]
    everyone = sec.ok("GET", "/api/v1/persons")["persons"]
    pages = {p["distinct_id"]: sec.ok("GET", "/api/v1/persons/" + urllib.parse.quote(p["distinct_id"]))
             for p in everyone}

    def ids(query):
        return sorted(p["distinct_id"] for p in sec.ok("GET", "/api/v1/persons?" + query)["persons"])

    for stage in ("new", "active", "silent", "churned"):
        want = sorted(d for d, p in pages.items() if p["lifecycle"] == stage)
        check_eq(ids("lifecycle=" + stage), want, f"lifecycle={stage}")
    for dim, level in (("value", "high"), ("value", "medium"), ("activity", "silent")):
        want = sorted(d for d, p in pages.items() if p["tiers"][dim] == level)
        check_eq(ids(f"tier={dim}:{level}"), want, f"tier={dim}:{level}")
    check_eq(ids("tag=repeat_buyer"), sorted(d for d, p in pages.items() if "repeat_buyer" in p["tags"]),
             "rule tag")
    check_eq(ids("tag=" + urllib.parse.quote("city:杭州")), ["alice"], "base tag value")
    check_eq(ids("tag=" + urllib.parse.quote("city:上海") + "&tier=value:high"), [], "filters are ANDed")
    d = {"op": "or", "conditions": [{"type": "tag", "tag": "city", "value": "上海"},
                                    {"type": "lifecycle", "stage": pages["carol"]["lifecycle"]}]}
    want = sorted(x for x, p in pages.items()
                  if p["lifecycle"] == pages["carol"]["lifecycle"] or p["base_tags"].get("city") == "上海")
    check_eq(ids("definition=" + urllib.parse.quote(json.dumps(d))), want, "a cohort definition")
    # The CSV export takes the same filters.
    r = sec.req("GET", "/api/v1/persons.csv?tag=" + urllib.parse.quote("city:杭州"))
    check_eq(r.status, 200, "csv status")
    rows = list(csv.reader(io.StringIO(r.body.decode("utf-8").lstrip("\ufeff"))))
    check_eq([row[0] for row in rows[1:]], ["alice"], "csv rows follow the filter")
    # Every bad value is a 400 naming its parameter.
    for query, field in (("lifecycle=zombie", "lifecycle"), ("tier=value", "tier"), ("tier=value:gold", "tier"),
                         ("tier=size:high", "tier"), ("tag=no_such_tag", "tag"), ("definition=%7Bx", "definition"),
                         ("definition=" + urllib.parse.quote('{"op":"and","conditions":[{"type":"lifecycle"}]}'),
                          "definition.conditions[0].stage")):
        e = sec.err("GET", "/api/v1/persons?" + query)
        check_eq(e.get("field"), field, f"{query}: {e}")
        e = sec.err("GET", "/api/v1/persons.csv?" + query)
        check_eq(e.get("field"), field, f"csv {query}: {e}")


def test_tag_values():
    """GET /api/v1/tags/{key}/values: a base tag's values with their persons, masked for
    non-admins when the property is masked."""
    sec, viewer = S["sec"], S["viewer"]
    v = sec.ok("GET", "/api/v1/tags/city/values")
    check_eq(sorted((x["value"], x["persons"]) for x in v["values"]), [("上海", 1), ("杭州", 1)], "city values")
    check_eq((v["tag"], v["persons"], v["other_values"]), ("city", 2, 0), "totals")
    check(v["label"] and v["label_zh"] and v["as_of"].endswith("Z"), f"labels and as_of: {v}")
    one = sec.ok("GET", "/api/v1/tags/city/values?limit=1")
    check_eq((len(one["values"]), one["other_values"], one["persons"]), (1, 1, 2), "limit")
    bands = sec.ok("GET", "/api/v1/tags/order_count_band/values")
    check_eq(sum(x["persons"] for x in bands["values"]), bands["persons"], "persons = the sum over values")
    for x in bands["values"]:
        listed = sec.ok("GET", "/api/v1/persons?tag=" + urllib.parse.quote(f"order_count_band:{x['value']}"))["total"]
        check_eq(listed, x["persons"], f"order_count_band {x['value']}: the list has as many")
    e = sec.err("GET", "/api/v1/tags/repeat_buyer/values")
    check_eq(e.get("field"), "tag", "a rule tag has no values")
    check_eq(sec.req("GET", "/api/v1/tags/no_such_tag/values").status, 404, "unknown tag")
    check_eq(sec.err("GET", "/api/v1/tags/city/values?limit=0").get("field"), "limit", "limit validated")
    # A masked property's values are masked for everyone but admins.
    settings = sec.ok("GET", "/api/v1/people/settings")
    masked = settings["masked_properties"]
    sec.ok("PATCH", "/api/v1/people/settings", {"masked_properties": masked + ["city"]})
    try:
        shown = [x["value"] for x in viewer.ok("GET", "/api/v1/tags/city/values")["values"]]
        check("杭州" not in shown and "上海" not in shown, f"masked for a viewer: {shown}")
    finally:
        sec.ok("PATCH", "/api/v1/people/settings", {"masked_properties": masked})


def test_goal_kpi():
    """A scenario's goal.kpi_id names one of the project's KPIs (400 naming the field)."""
    sec = S["sec"]
    kpi = sec.ok("POST", "/api/v1/kpis", {"name": "pays", "query": {"kind": "trends", "series": [{"event": "pay"}]},
                                          "reduce": {"series": 0, "op": "sum"}, "target": 3,
                                          "period": {"type": "month"}}, 201)["id"]
    e = sec.err("POST", "/api/v1/scenarios", {"name": "g", "goal": {"metric": "pays", "kpi_id": kpi + 1000}})
    check_eq(e.get("field"), "goal.kpi_id", f"an unknown KPI is named: {e}")
    sid = sec.ok("POST", "/api/v1/scenarios", {"name": "g", "goal": {"metric": "pays", "kpi_id": kpi}}, 201)["id"]
    e = sec.err("PATCH", f"/api/v1/scenarios/{sid}", {"goal": {"metric": "pays", "kpi_id": kpi + 1000}})
    check_eq(e.get("field"), "goal.kpi_id", "checked on a PATCH too")
    check_eq(sec.ok("GET", f"/api/v1/scenarios/{sid}")["goal"]["kpi_id"], kpi, "the refusal changed nothing")
    sec.ok("DELETE", f"/api/v1/scenarios/{sid}")


def test_audit():
    log = S["sec"].ok("GET", "/api/v1/audit-log?limit=200")
    rows = log["entries"] if isinstance(log, dict) and "entries" in log else log
    text = str(rows)
    check("cohort" in text and "create" in text, f"cohort changes audited: {text[:300]}")
    check("13812345678" not in text and "dev-b" not in text, "no personal data in the audit log")


def test_settings():
    s = S["sec"].ok("PATCH", "/api/v1/people/settings", {"masked_properties": ["phone", "email", "city"]})
    check_eq(s["masked_properties"], ["phone", "email", "city"], "settings saved")
    p = S["viewer"].ok("GET", "/api/v1/persons/alice")
    check(p["properties"]["city"] != "杭州", f"city now masked: {p['properties']}")
    S["viewer"].err("PATCH", "/api/v1/people/settings", {"new_days": 3}, expect=403)
    # Rule tags follow the project's payment event.
    check("repeat_buyer" in S["sec"].ok("GET", "/api/v1/persons/alice")["tags"], "repeat buyer with pay")
    S["sec"].ok("PATCH", "/api/v1/people/settings", {"pay_event": "checkout"})
    check("repeat_buyer" not in S["sec"].ok("GET", "/api/v1/persons/alice")["tags"], "no checkout events")
    S["sec"].ok("PATCH", "/api/v1/people/settings", {"pay_event": "pay"})
    # So do the other events the tags count (cart_event, ...), in the catalogue too.
    check_eq(S["sec"].ok("GET", "/api/v1/persons/carol")["base_tags"]["cart_count_band"], "1-4", "carol carted")
    s = S["sec"].ok("PATCH", "/api/v1/people/settings", {"cart_event": "basket"})
    check_eq((s["cart_event"], s["review_event"]), ("basket", "review"), "event settings")
    check_eq(S["sec"].ok("GET", "/api/v1/persons/carol")["base_tags"]["cart_count_band"], "0", "no basket events")
    rule = [t for t in S["sec"].ok("GET", "/api/v1/tags")["rule_tags"] if t["key"] == "carted_not_paid_24h"][0]
    check_eq(rule["definition"]["conditions"][0]["event"], "basket", "the catalogue shows the project's event")
    S["sec"].ok("PATCH", "/api/v1/people/settings", {"cart_event": "add_to_cart"})
    check_eq(S["sec"].err("PATCH", "/api/v1/people/settings", {"search_event": ""}).get("field"), "search_event",
             "an empty event name")
    e = S["sec"].err("PATCH", "/api/v1/people/settings", {"churn_days": 10})
    check_eq(e.get("field"), "churn_days", "churn_days must exceed active_days")


def test_streamed_csv():
    """persons.csv is streamed (chunked), every match, formula-safe, masked for a viewer."""
    n = 3000
    for start in range(0, n, 1000):
        send([ev("$identify", f"bulk-{i:05d}", "2026-11-15T12:00:00+08:00",
                 {"$set": {"phone": f"139{i:08d}", "note": "=HYPERLINK(1)" if i % 2 else "plain, \"quoted\""}})
              for i in range(start, start + 1000)])
    for client, phone in ((S["sec"], "13900000007"), (S["viewer"], "139****0007")):
        r = client.req("GET", "/api/v1/persons.csv?q=bulk-")
        check_eq(r.status, 200, f"{client.name}: csv status")
        check_eq(r.headers.get("transfer-encoding"), "chunked", f"{client.name}: streamed")
        check("content-length" not in r.headers, f"{client.name}: no Content-Length: {r.header_list}")
        body = r.body.decode("utf-8")
        check(body.startswith("\ufeff") and body.count("\ufeff") == 1, "one BOM")
        rows = list(csv.reader(io.StringIO(body[1:])))
        head, rows = rows[0], rows[1:]
        check_eq(len(rows), n, f"{client.name}: every match")
        col = {k: i for i, k in enumerate(head)}
        by_id = {row[0]: row for row in rows}
        check_eq(by_id["bulk-00007"][col["phone"]], phone, f"{client.name}: phone")
        check_eq(by_id["bulk-00007"][col["note"]], "'=HYPERLINK(1)", "formula-safe cell")
        check_eq(by_id["bulk-00008"][col["note"]], 'plain, "quoted"', "quoted cell")
    e = S["sec"].err("GET", "/api/v1/persons.csv?cohort=99999")
    check_eq(e.get("field"), "cohort", "an unknown cohort is a 400 before any byte")
    S["sec"].err("GET", "/api/v1/cohorts/99999/export.csv", expect=404)


def main():
    return run_server_suite(S, "ns-people-", setup, (test_person_by_any_id, test_masking_for_viewers,
                            test_timeline_pages, test_list_search_csv, test_cohorts, test_cohort_preview,
                            test_static_cohort_and_merge, test_cohort_filters_in_queries,
                            test_cohort_as_key_user_group, test_tiers_and_tags, test_list_by_lifecycle_tier_tag,
                            test_tag_values, test_goal_kpi, test_settings, test_audit, test_streamed_csv))


if __name__ == "__main__":
    sys.exit(main())
