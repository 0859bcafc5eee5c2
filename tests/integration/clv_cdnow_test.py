#!/usr/bin/env python3
"""CLV on real data: the CDNOW sample (shared/datasets/cdnow: 6,919 purchases by 2,357
customers, 1997-01-01..1998-06-30) imported as payment events and fitted by the "clv" kind,
against what lifetimes publishes for the same data (docs/queries.md "CLV").

- The purchases are from 1997, which ingest refuses by default ("before 2000-01-01"): the
  remote import is refused, then the project's earliest_event_date is set to 1990-01-01 by
  PATCH /api/v1/settings and the file is imported by `northstar import` on the data directory
  (the server stopped), so the setting is checked on the CLI's local path too.
- Every customer's frequency, recency, T (weeks) and monetary (the mean spend of the repeat
  days) equal the lifetimes summary files to their 2 published decimals.
- BG/NBD r, alpha, a, b and Gamma-Gamma p, q, v equal lifetimes' printed figures to 2
  decimals (v: BTYD's 15.44, see below); five customers' expected purchases in the next week agree with the Quickstart's to
  3 decimals (it fits on recency rounded to 2 decimals; we fit on exact days).
- The holdout (1997-10-01..1998-06-30): 1,882 actual repeat purchase days (SOURCE.md), the
  model's prediction within 20% of it.
Skipped (exit 77) without the dataset. Runs in a few seconds."""

import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import request  # noqa: E402
from dataset_suite import dataset_candidates, first_existing, run_dataset_suite  # noqa: E402
from nsserver import Server, check, check_eq  # noqa: E402

CDNOW_CANDIDATES = dataset_candidates("NORTHSTAR_CDNOW_DIR", "cdnow")
DATASET = first_existing(CDNOW_CANDIDATES, "CDNOW_sample.txt")
PROJECT = "cdnow"
CTX = {}


def load():
    rows = []
    with open(os.path.join(DATASET, "CDNOW_sample.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 5:
                rows.append((int(parts[1]), dt.date(int(parts[2][:4]), int(parts[2][4:6]), int(parts[2][6:])),
                             float(parts[4])))
    summary = {}
    with open(os.path.join(DATASET, "cdnow_customers_summary_with_transactions.csv"), newline="") as f:
        for r in csv.DictReader(f):
            summary[int(r["ID"])] = (int(r["x"]), float(r["t_x"]), float(r["T"]), float(r["zbar"]))
    return rows, summary


def post(body):
    r = request(CTX["server"].port, "POST", "/api/v1/query", body, key=CTX["secret"], timeout=120)
    check(r.status == 200, f"query {json.dumps(body)} -> {r}")
    return r.json()


def write_csv():
    path = os.path.join(CTX["tmp"], "cdnow.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["distinct_id", "timestamp", "event", "amount", "uuid"])
        for i, (cid, day, amount) in enumerate(CTX["rows"]):
            # Midnight in the project's time zone (Asia/Shanghai, the default): the local day.
            w.writerow([f"c{cid}", f"{day.isoformat()}T00:00:00+08:00", "pay", f"{amount:.2f}", f"cdnow-{i}"])
    return path


def import_refused_before_setting():
    path = write_csv()
    url = f"http://127.0.0.1:{CTX['server'].port}"
    p = subprocess.run([CTX["bin"], "import", path, "--server", url, "--key", CTX["secret"], "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    check("is before 2000-01-01 (rejected as implausible)" in out, f"the default refuses 1997: {out[-2000:]}")
    check(re.search(r"imported 0 events", out) is not None, f"nothing imported: {out[-2000:]}")


def import_after_setting():
    r = request(CTX["server"].port, "PATCH", "/api/v1/settings", {"earliest_event_date": "1990-01-01"},
                key=CTX["secret"])
    check_eq(r.status, 200, f"PATCH settings: {r}")
    CTX["server"].stop(timeout=30)  # the local import needs the data directory to itself
    p = subprocess.run([CTX["bin"], "import", os.path.join(CTX["tmp"], "cdnow.csv"), "--project", PROJECT,
                        "--data", CTX["data"], "--no-progress"], capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"import exited {p.returncode}: {p.stdout}{p.stderr[-2000:]}")
    m = re.search(r"imported ([\d,]+) events", p.stdout)
    check(m is not None and int(m.group(1).replace(",", "")) == len(CTX["rows"]), f"import: {p.stdout}{p.stderr}")
    CTX["server"] = Server(CTX["bin"], CTX["data"], os.path.join(CTX["tmp"], "server.log")).start()


def clv_matches_lifetimes():
    got = post({"kind": "clv", "calibration_to": "1997-09-30", "time_unit": "week", "horizon_days": 7,
                "limit": 100000})
    summary = CTX["summary"]
    check_eq(got["customers"], 2357, "customers")
    check_eq(got["repeaters"], 946, "repeaters (x > 0)")
    bad = []
    by_id = {}
    for p in got["persons"]:
        cid = int(p["distinct_id"][1:])
        by_id[cid] = p
        x, tx, T, zbar = summary[cid]
        if p["frequency"] != x or round(p["recency"], 2) != tx or round(p["T"], 2) != T or \
                abs(p["monetary"] - zbar) > 0.005 + 1e-9:
            bad.append(f"{cid}: {p} vs {summary[cid]}")
    check(not bad, f"{len(bad)} customers differ from the summary file, first: {bad[:5]}")
    check_eq(len(by_id), 2357, "every customer listed once")
    bg, gg = got["model"]["bg_nbd"], got["model"]["gamma_gamma"]
    # lifetimes: "<BetaGeoFitter: fitted with 2357 subjects, a: 0.79, alpha: 4.41, b: 2.43, r: 0.24>"
    for k, want in (("r", 0.24), ("alpha", 4.41), ("a", 0.79), ("b", 2.43)):
        check_eq(round(bg[k], 2), want, f"bg_nbd {k} = {bg[k]}")
    # lifetimes prints "p: 6.25, q: 3.74, v: 15.45" fitted on zbar rounded to cents (clv_model_test
    # reproduces that); on the exact amounts v is 15.44, the figure of R's BTYD documentation
    # ("params <- c(6.25, 3.74, 15.44)", spend.plot.average.transaction.value).
    for k, want in (("p", 6.25), ("q", 3.74), ("v", 15.44)):
        check_eq(round(gg[k], 2), want, f"gamma_gamma {k} = {gg[k]}")
    # Quickstart, "Ranking customers": expected purchases in the next period (t = 1 week).
    for cid, want in ((509, 0.424877), (841, 0.474738), (1981, 0.486526), (157, 0.662396), (1516, 0.710623)):
        got_e = by_id[cid]["expected_purchases"]
        check(abs(got_e - want) < 5e-4, f"customer {cid}: expected purchases {got_e}, lifetimes {want}")
    h = got["holdout"]
    check_eq((h["from"], h["to"]), ("1997-10-01", "1998-06-30"), "holdout period")
    check_eq(h["totals"]["actual_purchases"], 1882, "holdout purchase days")
    # The model's conditional expectation for the same 39 weeks (a figure of ours, in
    # docs/queries.md): under-predicts the holdout by about 12%.
    check(abs(h["totals"]["predicted_purchases"] / 1882 - 1) < 0.2,
          f"predicted holdout purchases {h['totals']['predicted_purchases']} within 20% of 1882")
    print(f"  bg_nbd {bg}\n  gamma_gamma {gg}\n  holdout totals {h['totals']}", flush=True)


def main():
    def read_dataset():
        CTX["rows"], CTX["summary"] = load()

    return run_dataset_suite(CTX, name="clv-cdnow", dataset=os.path.join(DATASET, "CDNOW_sample.txt"),
                             candidates=CDNOW_CANDIDATES, project=PROJECT, load=read_dataset,
                             tests=(import_refused_before_setting, import_after_setting, clv_matches_lifetimes),
                             required=(import_refused_before_setting, import_after_setting))


if __name__ == "__main__":
    sys.exit(main())
