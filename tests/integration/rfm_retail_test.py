#!/usr/bin/env python3
"""RFM on real data: the UCI "Online Retail" invoices (shared/datasets/online_retail_invoices,
a UK gift retailer, 2010-12-01..2011-12-09, 18,532 invoices of 4,338 customers) imported as
`pay` events into a project in Europe/London, then the `rfm` query kind compared customer by
customer with an independent computation here in plain Python.

usage: rfm_retail_test.py NORTHSTAR_BINARY

How the invoices become events (decided here, so both sides agree):
  - one `pay` event per invoice: distinct_id = CustomerID, order_id = InvoiceNo, uuid =
    "invoice-<InvoiceNo>" (a retried import stores nothing twice), amount = the invoice's
    TotalPrice (sum of Quantity * UnitPrice of its lines) rounded to cents, as the dataset's
    SOURCE.md advises (the file carries float noise such as 22.200000000000003);
  - rows without a CustomerID are skipped;
  - cancellations (InvoiceNo starting with 'C') are skipped: a cancellation is not a purchase,
    and netting it against its original invoice is not possible from the file. The derived
    file already dropped them (SOURCE.md step 2), so the test asserts that none is left;
  - InvoiceDate has no time of day: each event is at the first instant of its date in
    London, sent with its UTC offset (zoneinfo), so the instant does not depend on how the
    server reads the text. During British Summer Time that is 23:00 UTC of the day before:
    an answer that counted UTC days instead of the project's local days would be one day
    off for every customer whose last invoice was in summer.

Checked: every customer's recency_days (whole local days from the last invoice to
2011-12-10), frequency (invoices) and monetary (their sum, within 1e-6 relative), the
scores and segments by the documented rule, the eight segments' persons and revenue; and the
same with date_from (only invoices on or after that day count).
Runs in about 5 s. Prints PASS/FAIL lines and "N passed, M failed"."""

import bisect
import collections
import datetime as dt
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import request  # noqa: E402
from dataset_suite import RETAIL_CANDIDATES, RETAIL_CSV, import_invoices, load_invoices, run_dataset_suite  # noqa: E402
from nsserver import check, check_eq  # noqa: E402

PROJECT = "retail"
AS_OF = dt.date(2011, 12, 10)
DATE_FROM = dt.date(2011, 9, 1)
SEGMENTS = ["hibernating", "cant_lose", "need_attention", "at_risk_loyal",
            "promising", "potential", "loyal", "champions"]  # index r_high << 2 | f_high << 1 | m_high

CTX = {}


def expected_rfm(invoices, as_of, date_from=None):
    """Per customer: recency_days, frequency, monetary; then the documented quintile scores
    (F, M: 1 + floor(5 * #(values < x) / N); R: 1 + floor(5 * #(values > x) / N)) and segment
    (a score strictly above the population's mean score is high)."""
    last, orders, money = {}, collections.defaultdict(set), collections.defaultdict(float)
    for inv, cust, day, amount in invoices:
        if day > as_of or (date_from and day < date_from):
            continue
        last[cust] = max(last.get(cust, day), day)
        if inv not in orders[cust]:
            orders[cust].add(inv)
            money[cust] += amount
    people = {c: {"recency_days": (as_of - last[c]).days, "frequency": len(orders[c]), "monetary": money[c]}
              for c in last}
    n = len(people)
    rs = sorted(p["recency_days"] for p in people.values())
    fs = sorted(p["frequency"] for p in people.values())
    ms = sorted(p["monetary"] for p in people.values())
    for p in people.values():
        p["r"] = 1 + 5 * (n - bisect.bisect_right(rs, p["recency_days"])) // n
        p["f"] = 1 + 5 * bisect.bisect_left(fs, p["frequency"]) // n
        p["m"] = 1 + 5 * bisect.bisect_left(ms, p["monetary"]) // n
    means = {k: sum(p[k] for p in people.values()) / n for k in "rfm"}
    for p in people.values():
        p["segment"] = SEGMENTS[(p["r"] > means["r"]) << 2 | (p["f"] > means["f"]) << 1 | (p["m"] > means["m"])]
    return people, means


def rfm_query(body):
    r = request(CTX["server"].port, "POST", "/api/v1/query", body, key=CTX["secret"], timeout=120)
    check(r.status == 200, f"rfm query {json.dumps(body)} -> {r}")
    return r.json()


def compare(got, want, means, what):
    check_eq(got["timezone"], "Europe/London", f"{what}: timezone")
    check_eq(got["persons_scored"], len(want), f"{what}: persons_scored")
    check_eq(got["persons_total"], len(want), f"{what}: persons_total")
    check_eq(len(got["persons"]), len(want), f"{what}: persons listed (limit 100000)")
    for k in "rfm":
        check(abs(got["mean_scores"][k] - means[k]) < 1e-9, f"{what}: mean {k} score {got['mean_scores'][k]} != {means[k]}")
    seen, bad = set(), []
    for p in got["persons"]:
        cust = p["distinct_id"]
        check(cust not in seen, f"{what}: customer {cust} listed twice")
        seen.add(cust)
        w = want.get(cust)
        if w is None:
            bad.append(f"{cust}: not a customer with an invoice")
            continue
        for k in ("recency_days", "frequency", "r", "f", "m", "segment"):
            if p[k] != w[k]:
                bad.append(f"{cust}: {k} {p[k]!r}, expected {w[k]!r}")
        if abs(p["monetary"] - w["monetary"]) > 1e-6 * max(1.0, abs(w["monetary"])):
            bad.append(f"{cust}: monetary {p['monetary']!r}, expected {w['monetary']!r}")
    check(not bad, f"{what}: {len(bad)} mismatches, first: " + "; ".join(bad[:10]))
    check_eq(seen, set(want), f"{what}: the customers listed")
    # Listed by monetary, largest first.
    ms = [p["monetary"] for p in got["persons"]]
    check(all(a >= b for a, b in zip(ms, ms[1:])), f"{what}: persons not ordered by monetary")
    by_seg = collections.defaultdict(lambda: [0, 0.0])
    for w in want.values():
        by_seg[w["segment"]][0] += 1
        by_seg[w["segment"]][1] += w["monetary"]
    check_eq(sorted(s["segment"] for s in got["segments"]), sorted(SEGMENTS), f"{what}: segment keys")
    for s in got["segments"]:
        n, rev = by_seg[s["segment"]]
        check_eq(s["persons"], n, f"{what}: persons of {s['segment']}")
        check(abs(s["revenue"] - rev) <= 1e-6 * max(1.0, rev), f"{what}: revenue of {s['segment']} {s['revenue']} != {rev}")


def dataset_as_expected():
    invoices, cancelled, no_customer = CTX["invoices"], CTX["cancelled"], CTX["no_customer"]
    # SOURCE.md's counts: the derived file has no cancellations and no row without a customer.
    check_eq(cancelled, 0, "cancellation invoices left in the file")
    check_eq(no_customer, 0, "rows without a CustomerID")
    check_eq(len(invoices), 18532, "invoices")
    check_eq(len({c for _, c, _, _ in invoices}), 4338, "customers")
    check_eq(len({i for i, _, _, _ in invoices}), len(invoices), "invoice numbers are unique")


def import_through_server():
    import_invoices(CTX)


def rfm_every_customer():
    want, means = expected_rfm(CTX["invoices"], AS_OF)
    got = rfm_query({"kind": "rfm", "as_of": AS_OF.isoformat(), "limit": 100000})
    check_eq(got["as_of"], AS_OF.isoformat(), "as_of")
    compare(got, want, means, "rfm as of 2011-12-10")


def rfm_date_from():
    want, means = expected_rfm(CTX["invoices"], AS_OF, DATE_FROM)
    got = rfm_query({"kind": "rfm", "as_of": AS_OF.isoformat(), "date_from": DATE_FROM.isoformat(),
                     "limit": 100000})
    compare(got, want, means, "rfm from 2011-09-01")


def rfm_import_again_changes_nothing():
    # Every event has a uuid: importing the file again stores nothing and the answer stays.
    before = rfm_query({"kind": "rfm", "as_of": AS_OF.isoformat(), "limit": 100000})
    path = os.path.join(CTX["tmp"], "pay.csv")
    url = f"http://127.0.0.1:{CTX['server'].port}"
    p = subprocess.run([CTX["bin"], "import", path, "--server", url, "--key", CTX["secret"], "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"second import exited {p.returncode}: {p.stdout}{p.stderr[-2000:]}")
    check(re.search(r"imported 0 events .*\(([\d,]+) duplicates skipped", p.stdout) is not None,
          f"second import output: {p.stdout}")
    after = rfm_query({"kind": "rfm", "as_of": AS_OF.isoformat(), "limit": 100000})
    for k in ("persons", "segments", "persons_scored"):
        check_eq(after[k], before[k], f"{k} after importing the file again")


def main():
    def load():
        CTX["invoices"], CTX["cancelled"], CTX["no_customer"] = load_invoices()

    return run_dataset_suite(CTX, name="rfm-retail", dataset=RETAIL_CSV, candidates=RETAIL_CANDIDATES,
                             project=PROJECT, tz="Europe/London", load=load,
                             tests=(dataset_as_expected, import_through_server, rfm_every_customer, rfm_date_from,
                                    rfm_import_again_changes_nothing),
                             required=(import_through_server,))  # nothing to query without it


if __name__ == "__main__":
    sys.exit(main())
