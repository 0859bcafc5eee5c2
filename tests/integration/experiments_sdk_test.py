#!/usr/bin/env python3
"""The seed "new checkout flag at 10% -> experiment on pay conversion with SRM check" end to end:
the flag `new-checkout` is created at a 10% rollout over HTTP; the real posthog-node SDK
(tests/clients/experiment_client.js) asks Northstar for it (getFeatureFlag -> POST /flags) for
every person, sends the `$feature_flag_called` exposures itself, then logins (alias) and
payments; an experiment on the flag (variants "false" 90 / "true" 10) counts every exposed
person and converter as generated (10% -> 13%, the lift inside the interval), with the SRM check
done and not flagged. Which persons the flag let in is checked against an independent Python
version of PostHog's bucketing (hashlib.sha1).

Usage: experiments_sdk_test.py /path/to/northstar. Needs node and npm (tests/clients).
"""

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq  # noqa: E402
from opsclient import create_project  # noqa: E402

CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients")
PERSONS = 3000


def ensure_node_modules():
    for tool in ("node", "npm"):
        check(shutil.which(tool) is not None, f"'{tool}' is not on PATH: the test needs Node.js >= 20 and npm")
    if os.path.isdir(os.path.join(CLIENTS, "node_modules", "posthog-node")):
        return
    cmd = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    p = subprocess.run(cmd, cwd=CLIENTS, capture_output=True, timeout=600)
    check(p.returncode == 0, f"{' '.join(cmd)} in tests/clients failed:\n{(p.stdout + p.stderr).decode()[-3000:]}")


def in_rollout(distinct_id, key="new-checkout", pct=10):
    """PostHog's bucketing, written apart from src/flags: sha1("key.id"), 15 hex digits, <= pct."""
    h = int(hashlib.sha1(f"{key}.{distinct_id}".encode()).hexdigest()[:15], 16) / 0xFFFFFFFFFFFFFFF
    return h <= pct / 100


def expected():
    """Persons and converters per variant ("false", "true"), from the workload in experiment_client.js."""
    n = {"false": 0, "true": 0}
    conv = {"false": 0, "true": 0}
    for i in range(PERSONS):
        v = "true" if in_rollout(f"ph-anon-{i}") else "false"
        j = n[v]
        n[v] += 1
        if (j % 100 < 13) if v == "true" else (j % 10 == 0):
            conv[v] += 1
    return n, conv


def main():
    binary = binary_from_argv()
    if binary is None:
        return 2
    tmp = tempfile.mkdtemp(prefix="ns-exp-sdk-")
    server = None
    ok = False
    try:
        ensure_node_modules()
        data = os.path.join(tmp, "data")
        keys = create_project(binary, data, "shop", tz="Asia/Shanghai")
        server = Server(binary, data, os.path.join(tmp, "server.log")).start()
        sec = Client(server.port, "secret", key=keys["secret_key"])
        today = datetime.datetime.now(ZoneInfo("Asia/Shanghai")).date()
        start, end = today - datetime.timedelta(days=1), today + datetime.timedelta(days=1)
        sec.ok("POST", "/api/v1/flags", {"key": "new-checkout", "name": "New checkout", "active": True,
                                         "rollout_percentage": 10}, 201)
        p = subprocess.run(["node", os.path.join(CLIENTS, "experiment_client.js"), str(server.port), keys["write_key"],
                            str(PERSONS)], capture_output=True, timeout=300, cwd=CLIENTS)
        check(p.returncode == 0, f"experiment_client.js failed ({p.returncode}):\n{(p.stdout + p.stderr).decode()[-3000:]}")
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
        sent, answers = out["sent"], out["answers"]
        check(sent > PERSONS, f"the SDK sent {sent} messages")
        wrong = [d for d, a in answers.items() if a != in_rollout(d)]
        check(not wrong, f"the SDK got Northstar's answer, PostHog's bucketing, for every id: {wrong[:5]}")

        exp = sec.ok("POST", "/api/v1/experiments", {
            "name": "New checkout at 10%", "flag_key": "new-checkout", "status": "running",
            "hypothesis": "The new checkout converts more",
            "variants": [{"key": "false", "weight": 90}, {"key": "true", "weight": 10}],
            "start_date": start.isoformat(), "end_date": end.isoformat(),
            "primary_metrics": [{"name": "pay conversion", "type": "funnel", "steps": ["pay"]}]}, 201)
        r = sec.ok("GET", f"/api/v1/experiments/{exp['id']}/results")
        n, conv = expected()
        check_eq([v["exposed"] for v in r["variants"]], [n["false"], n["true"]], "persons per variant (90/10)")
        check_eq(r["multiple_exposures"], 0, "nobody saw both variants")
        check(r["srm_checked"] and not r["srm_flagged"], f"a 90/10 split as planned is not SRM: {r['srm_p_value']}")
        m = r["metrics"][0]
        check_eq([v["n"] for v in m["variants"]], [n["false"], n["true"]], "n")
        check_eq([v["conversions"] for v in m["variants"]], [conv["false"], conv["true"]],
                 "converters: payments before the exposure do not count, logins after it join the person")
        e = m["effects"][0]
        true_lift = (conv["true"] / n["true"]) / (conv["false"] / n["false"]) - 1
        check(abs(true_lift - 0.30) < 0.1, f"generated lift {true_lift} (13% against 10%, rounded per group)")
        check(abs(e["expected"] - true_lift) < 1e-9 and e["ci"][0] <= true_lift <= e["ci"][1],
              f"the generated lift {true_lift} is the estimate, inside its interval: {e}")
        print(f"PASS seed_new_checkout_experiment ({sent} SDK messages)")
        ok = True
    except TestFailure as e:
        print(f"FAIL seed_new_checkout_experiment: {e}")
    finally:
        if server is not None:
            if not ok:
                print(server.log_tail())
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
