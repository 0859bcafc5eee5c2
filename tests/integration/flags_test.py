#!/usr/bin/env python3
"""Feature flags end to end (docs/flags.md): flags made over the API, then asked for by the real
posthog-node SDK from npm (tests/clients/flags_client.js: getFeatureFlag, isFeatureEnabled,
getFeatureFlagPayload, a multivariate flag, a condition on person properties), every answer
checked against an independent Python version of PostHog's bucketing (hashlib.sha1), and the
SDK's $feature_flag_called exposure events counted in the store. Also: the native evaluate
route (write key: values only), /decide's older format, stickiness across an identity merge,
exposures recorded by the native route once per person, flag and day, and the roles.

Usage: flags_test.py /path/to/northstar"""

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nsclient import request  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq  # noqa: E402

CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients")
IDS = 40


# ---- the reference: PostHog's bucketing, written again from its documentation
def ph_hash(key, distinct_id, salt=""):
    h = hashlib.sha1(f"{key}.{distinct_id}{salt}".encode()).hexdigest()[:15]
    return int(h, 16) / 0xFFFFFFFFFFFFFFF


def ref_variant(key, distinct_id, rollout, variants):
    """False, or True, or the variant's key."""
    if ph_hash(key, distinct_id) > rollout / 100:
        return False
    if not variants:
        return True
    h, lo = ph_hash(key, distinct_id, "variant"), 0.0
    for k, pct in variants:
        if lo <= h < lo + pct / 100:
            return k
        lo += pct / 100
    return True


CHECKOUT = {"key": "new-checkout", "name": "New checkout", "rollout_percentage": 60,
            "variants": [{"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}],
            "payloads": {"control": {"button": "blue"}, "test": {"button": "green", "steps": 2}}}
CHECKOUT_VARIANTS = [("control", 50), ("test", 50)]
VIP = {"key": "vip-only", "groups": [{"properties": [{"key": "plan", "operator": "exact", "value": ["vip"]}],
                                      "rollout_percentage": 100}]}
PLAIN = {"key": "plain", "payloads": {"true": {"banner": "hello"}}}
OFF = {"key": "off", "active": False}


def ensure_node_modules():
    check(shutil.which("node") is not None and shutil.which("npm") is not None, "node and npm must be on PATH")
    if os.path.isdir(os.path.join(CLIENTS, "node_modules", "posthog-node")):
        return
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CLIENTS,
                       capture_output=True, timeout=600)
    check(p.returncode == 0, f"npm ci in tests/clients failed:\n{(p.stdout + p.stderr).decode(errors='replace')[-3000:]}")


def create_project(binary, data_dir, name):
    p = subprocess.run([binary, "admin", "--data", data_dir, "create-project", name, "--tz", "UTC", "--format", "json"],
                       capture_output=True, timeout=60)
    check(p.returncode == 0, f"create-project {name}: {p.stderr.decode(errors='replace')}")
    out = json.loads(p.stdout)
    return out["write_key"], out["secret_key"]


def ok(port, method, path, body=None, key=None, expect=200):
    r = request(port, method, path, body, key=key)
    check(r.status == expect, f"{method} {path} -> {r.status} {r.body[:500]!r}, expected {expect}")
    return r.json() if r.body else None


def capture(port, write, events):
    ok(port, "POST", "/batch", {"api_key": write, "batch": events})


def event_count(port, secret, event, filters):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    q = {"kind": "trends", "series": [{"event": event}], "filters": filters,
         "date_from": (today - datetime.timedelta(days=1)).isoformat(), "date_to": today.isoformat()}
    r = ok(port, "POST", "/api/v1/query", q, key=secret)
    return sum(r["series"][0]["values"])


def test_sdk(port, write, secret):
    # Persons: every third one is a vip (a stored person property).
    capture(port, write, [{"event": "signup", "distinct_id": f"u{i}",
                           "properties": {"$set": {"plan": "vip" if i % 3 == 0 else "basic"}}} for i in range(IDS)])
    # The SDK also sends person_properties, which win over stored ones: u1 says it is a vip.
    ids = [{"id": f"u{i}", "person_properties": {"plan": "vip"} if i == 1 else None} for i in range(IDS)]
    t0 = time.time()
    p = subprocess.run(["node", "flags_client.js", str(port), write, json.dumps(ids)], cwd=CLIENTS,
                       capture_output=True, timeout=120)
    check(p.returncode == 0, f"flags client exited {p.returncode}: {p.stderr.decode(errors='replace')[-3000:]}")
    answers = json.loads(p.stdout.decode().strip().splitlines()[-1])["answers"]
    print(f"  posthog-node asked {IDS} ids x 6 flags in {time.time() - t0:.1f}s")
    variants = {}
    for i in range(IDS):
        d = f"u{i}"
        a = answers[d]
        want = ref_variant("new-checkout", d, 60, CHECKOUT_VARIANTS)
        variants[d] = want
        check_eq(a["checkout"], want, f"getFeatureFlag('new-checkout', {d})")
        check_eq(a["enabled"], want is not False, f"isFeatureEnabled('new-checkout', {d})")
        check_eq(a["payload"], CHECKOUT["payloads"][want] if want else None, f"getFeatureFlagPayload(new-checkout, {d})")
        check_eq(a["vip"], i % 3 == 0 or i == 1, f"getFeatureFlag('vip-only', {d}) (plan condition)")
        check_eq(a["plain"], True, f"getFeatureFlag('plain', {d})")
        check_eq(a["plain_payload"], {"banner": "hello"}, f"getFeatureFlagPayload('plain', {d})")
        check_eq(a["missing"], None, f"getFeatureFlag of an unknown flag ({d})")
    counts = {v: list(variants.values()).count(v) for v in ("control", "test", False)}
    check(counts["control"] > 0 and counts["test"] > 0 and counts[False] > 0, f"a spread of answers: {counts}")

    # The native route answers the same for every id.
    for i in range(IDS):
        r = ok(port, "POST", "/api/v1/flags/evaluate", {"distinct_id": f"u{i}"}, key=write)
        want = variants[f"u{i}"]
        got = r["flags"]["new-checkout"]
        check_eq((got["enabled"], got["variant"]), (want is not False, want if isinstance(want, str) else None),
                 f"native evaluate u{i}")
        check("off" not in r["flags"], "an inactive flag is left out")

    # Exposures: the SDK's $feature_flag_called events, one per id and flag (the SDK dedups),
    # with $feature_flag and $feature_flag_response as sent.
    deadline = time.time() + 30
    while True:
        n = event_count(port, secret, "$feature_flag_called", [{"property": "$feature_flag", "value": "new-checkout"}])
        if n >= IDS or time.time() > deadline:
            break
        time.sleep(0.3)
    check_eq(n, IDS, "$feature_flag_called events of new-checkout")
    for v in ("control", "test"):
        got = event_count(port, secret, "$feature_flag_called", [{"property": "$feature_flag", "value": "new-checkout"},
                                                                  {"property": "$feature_flag_response", "value": v}])
        check_eq(got, counts[v], f"exposures answered '{v}'")


def test_native_and_decide(port, write, secret):
    # Stickiness: an anonymous id and a login id with different variants of their own; after
    # the $identify both get the login id's, and so does a device merged later.
    want = lambda d: ref_variant("new-checkout", d, 60, CHECKOUT_VARIANTS)  # noqa: E731
    anon = next(f"anon-{i}" for i in range(1000) if want(f"anon-{i}") == "control")
    login = next(f"login-{i}" for i in range(1000) if want(f"login-{i}") == "test")
    late = next(f"late-{i}" for i in range(1000) if want(f"late-{i}") is False)
    capture(port, write, [{"event": "view", "distinct_id": anon}])
    ev = lambda d: ok(port, "POST", "/api/v1/flags/evaluate", {"distinct_id": d, "flags": ["new-checkout"]},  # noqa
                      key=write)["flags"]["new-checkout"]["variant"]
    check_eq(ev(anon), "control", "anonymous id before login: its own bucket")
    capture(port, write, [{"event": "$identify", "distinct_id": login, "properties": {"$anon_distinct_id": anon}}])
    check_eq(ev(anon), "test", "after $identify: the login id's bucket")
    check_eq(ev(login), "test", "the login id")
    capture(port, write, [{"event": "$identify", "distinct_id": login, "properties": {"$anon_distinct_id": late}}])
    check_eq(ev(late), "test", "a device merged later")

    # record_exposure: one event per person, flag, answer and day, however often asked.
    body = {"distinct_id": login, "flags": ["new-checkout"], "record_exposure": True}
    check_eq(ok(port, "POST", "/api/v1/flags/evaluate", body, key=write)["exposures_recorded"], 1, "first exposure")
    check_eq(ok(port, "POST", "/api/v1/flags/evaluate", body, key=write)["exposures_recorded"], 0, "same day again")
    body["distinct_id"] = anon
    check_eq(ok(port, "POST", "/api/v1/flags/evaluate", body, key=write)["exposures_recorded"], 0, "another id of the person")

    # /decide?v=3: featureFlags and featureFlagPayloads (payloads as JSON text, like PostHog).
    d = ok(port, "POST", "/decide/?v=3", {"api_key": write, "distinct_id": login})
    check_eq(d["featureFlags"]["new-checkout"], "test", "/decide featureFlags")
    check_eq(json.loads(d["featureFlagPayloads"]["new-checkout"]), CHECKOUT["payloads"]["test"], "/decide payloads")
    check_eq(d["errorsWhileComputingFlags"], False, "/decide errors")
    f = ok(port, "POST", "/flags/?v=2&config=true", {"token": write, "distinct_id": login})
    detail = f["flags"]["new-checkout"]
    check_eq((detail["enabled"], detail["variant"], detail["reason"]["code"]), (True, "test", "condition_match"),
             "/flags detail")
    check_eq(f["flags"]["plain"]["variant"], None, "a boolean flag has no variant")

    # How posthog-js sends it: a form `data=` of base64 JSON, or a gzip body (?compression=gzip-js);
    # flag_keys_to_evaluate limits the answer; a browser's preflight is answered.
    import base64
    import gzip
    import urllib.parse
    payload = json.dumps({"token": write, "distinct_id": login, "flag_keys_to_evaluate": ["new-checkout"]})
    form = "data=" + urllib.parse.quote(base64.b64encode(payload.encode()).decode())
    r = request(port, "POST", "/flags/?v=2&config=true", form, ctype="application/x-www-form-urlencoded")
    check_eq((r.status, sorted(r.json()["flags"])), (200, ["new-checkout"]), "/flags with a base64 form")
    check_eq(r.json()["flags"]["new-checkout"]["variant"], "test", "/flags base64 form answer")
    r = request(port, "POST", "/decide/?v=3&compression=gzip-js", gzip.compress(payload.encode()), ctype="text/plain")
    check_eq((r.status, r.json()["featureFlags"]), (200, {"new-checkout": "test"}), "/decide with a gzip body")
    r = request(port, "OPTIONS", "/flags/", headers={"Origin": "https://shop.example",
                                                      "Access-Control-Request-Method": "POST"})
    check_eq((r.status, r.headers.get("access-control-allow-origin")), (204, "https://shop.example"), "CORS preflight")

    # Keys: a wrong key is PostHog's 401; a write key evaluates but never reads definitions.
    r = request(port, "POST", "/flags/?v=2", {"token": "nsw_nope", "distinct_id": "x"})
    check_eq((r.status, r.json()["type"]), (401, "authentication_error"), "unknown key on /flags")
    check_eq(request(port, "GET", "/api/v1/flags", key=write).status, 403, "write key lists flags")
    check_eq(request(port, "POST", "/api/v1/flags", {"key": "x"}, key=write).status, 403, "write key creates a flag")
    check_eq(request(port, "POST", "/api/v1/flags/evaluate", {"distinct_id": "x"}).status, 401, "no key")
    r = request(port, "POST", "/api/v1/flags/evaluate", {"distinct_id": "x", "flag": ["a"]}, key=write)
    check_eq((r.status, r.json()["error"]["field"]), (400, "flag"), "unknown field named")


def test_crud(port, secret):
    flags = ok(port, "GET", "/api/v1/flags", key=secret)["flags"]
    check_eq(sorted(f["key"] for f in flags), ["new-checkout", "off", "plain", "vip-only"], "listed flags")
    fid = next(f["id"] for f in flags if f["key"] == "plain")
    r = request(port, "POST", "/api/v1/flags", PLAIN, key=secret)
    check_eq(r.status, 409, "a second flag with the same key")
    r = request(port, "PATCH", f"/api/v1/flags/{fid}",
                {"variants": [{"key": "a", "rollout_percentage": 60}, {"key": "b", "rollout_percentage": 30}]},
                key=secret)
    check_eq((r.status, r.json()["error"]["field"]), (400, "variants"), "weights not summing to 100")
    check("sum to 90" in r.json()["error"]["message"], r.json()["error"]["message"])
    patched = ok(port, "PATCH", f"/api/v1/flags/{fid}", {"rollout_percentage": 0}, key=secret)
    check_eq((patched["rollout_percentage"], patched["version"]), (0, 2), "patched flag")
    audit = ok(port, "GET", "/api/v1/audit-log?limit=50", key=secret)
    entries = audit if isinstance(audit, list) else audit.get("entries", audit.get("audit", []))
    check(any(e.get("entity") == "feature_flag" and e.get("action") == "update" for e in entries),
          f"the change is in the audit log: {str(audit)[:300]}")
    ok(port, "DELETE", f"/api/v1/flags/{fid}", key=secret)
    check_eq(request(port, "GET", f"/api/v1/flags/{fid}", key=secret).status, 404, "deleted flag")


def test_cohort_condition(port, write, secret):
    # A static cohort of two persons; a flag for its members only, and one for everyone else.
    capture(port, write, [{"event": "signup", "distinct_id": d} for d in ("c1", "c2", "c3")])
    cohort = ok(port, "POST", "/api/v1/cohorts", {"name": "beta testers", "kind": "static"}, key=secret, expect=201)
    ok(port, "POST", f"/api/v1/cohorts/{cohort['id']}/members", {"distinct_ids": ["c1", "c2"]}, key=secret)
    for key, op in (("beta", "in"), ("not-beta", "not_in")):
        ok(port, "POST", "/api/v1/flags", {"key": key, "groups": [{"properties": [
            {"key": "id", "type": "cohort", "operator": op, "value": cohort["id"]}]}]}, key=secret, expect=201)
    for d, member in (("c1", True), ("c2", True), ("c3", False), ("stranger", False)):
        r = ok(port, "POST", "/flags/?v=2", {"token": write, "distinct_id": d, "flag_keys_to_evaluate": ["beta", "not-beta"]})
        check_eq((r["flags"]["beta"]["enabled"], r["flags"]["not-beta"]["enabled"]), (member, not member),
                 f"cohort condition for {d}")
    r = request(port, "DELETE", f"/api/v1/cohorts/{cohort['id']}", key=secret)
    check(r.status == 409 and "feature flag 'beta'" in r.body.decode(), f"a cohort a flag names is kept: {r}")
    for key in ("beta", "not-beta"):
        fid = next(f["id"] for f in ok(port, "GET", "/api/v1/flags", key=secret)["flags"] if f["key"] == key)
        ok(port, "DELETE", f"/api/v1/flags/{fid}", key=secret)
    ok(port, "DELETE", f"/api/v1/cohorts/{cohort['id']}", key=secret)


def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="ns-flags-")
    server = None
    failed = 0
    try:
        ensure_node_modules()
        data = os.path.join(tmp, "data")
        write, secret = create_project(binary, data, "flags")
        server = Server(binary, data, os.path.join(tmp, "server.log")).start()
        for body in (CHECKOUT, VIP, PLAIN, OFF):
            ok(server.port, "POST", "/api/v1/flags", body, key=secret, expect=201)
        for name, fn in (("sdk", lambda: test_sdk(server.port, write, secret)),
                         ("native_and_decide", lambda: test_native_and_decide(server.port, write, secret)),
                         ("cohort_condition", lambda: test_cohort_condition(server.port, write, secret)),
                         ("crud", lambda: test_crud(server.port, secret))):
            try:
                fn()
                print(f"PASS {name}")
            except TestFailure as e:
                print(f"FAIL {name}: {e}")
                failed += 1
    except TestFailure as e:
        print(f"FAIL setup: {e}")
        failed += 1
    finally:
        if server is not None:
            if failed:
                print(server.log_tail())
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"flags: {'FAILED' if failed else 'ok'} in {time.time() - t0:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
