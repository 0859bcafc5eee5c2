#!/usr/bin/env python3
"""The churn model on real data: the UCI "Online Retail" invoices (shared/datasets/
online_retail_invoices, 2010-12-01..2011-12-09, 18,532 invoices of 4,338 customers), imported
as `pay` events in Europe/London exactly as rfm_retail_test.py does (its loader is reused).

The only activity is buying, so churn here means "no invoice in the next 30 days". The
last complete day is 2011-12-09: the model trains on T = 2011-10-10 (customers with an
invoice in the 90 days before it; label: none in 2011-10-11..2011-11-09) and is evaluated on
2011-11-09 (label: none up to 2011-12-09). Checked: the windows, sizes that follow from the
invoices (computed here in plain Python), AUC clearly above chance (> 0.65) and precision
at the top 10% above the base rate. The figures are printed for docs/models.md.
Skipped (exit 77) without the dataset. About 15 s.
"""

import datetime as dt
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from dataset_suite import RETAIL_CANDIDATES, RETAIL_CSV, import_invoices, load_invoices, run_dataset_suite  # noqa: E402
from nsserver import check, check_eq  # noqa: E402

PROJECT = "retail"
CTX = {}
LAST = dt.date(2011, 12, 9)


def population(invoices, T):
    """Customers with an invoice in the 90 days up to T, and which of them buy in (T, T + 30]."""
    seen, later = {}, set()
    for _, cust, day, _ in invoices:
        if day <= T:
            seen[cust] = max(seen.get(cust, day), day)
        elif day <= T + dt.timedelta(days=30):
            later.add(cust)
    pop = {c for c, last in seen.items() if (T - last).days < 90}
    return len(pop), len(pop - later)


def churn_on_invoices():
    sec = CTX["sec"]
    sec.ok("POST", "/api/v1/models/churn/train", {}, expect=202)
    t0 = time.time()
    while True:
        st = sec.ok("GET", "/api/v1/models/churn")
        if st["status"] in ("ready", "failed") or time.time() - t0 > 50:
            break
        time.sleep(0.3)
    check_eq(st["status"], "ready", f"trained (error: {st.get('error')})")
    T, T2 = LAST - dt.timedelta(days=60), LAST - dt.timedelta(days=30)
    check_eq((st["T"], st["evaluation_T"], st["scored_as_of"]), (T.isoformat(), T2.isoformat(), LAST.isoformat()),
             "the time split")
    for what, day in (("training", T), ("evaluation", T2)):
        n, churned = population(CTX["invoices"], day)
        check_eq((st[what]["persons"], st[what]["churned"]), (n, churned), f"{what} persons and churned")
    check(st["auc"] > 0.65, f"AUC {st['auc']}")
    check(st["precision_at_10"] > st["evaluation"]["churn_rate"], f"precision@10% {st['precision_at_10']}")
    top = [f["feature"] for f in st["feature_importance"][:5]]
    print(f"  online retail: AUC {st['auc']}, precision@10% {st['precision_at_10']}, base rate "
          f"{st['evaluation']['churn_rate']}, train AUC {st['training']['auc']}, sizes {st['training_size']} / "
          f"{st['evaluation_size']}, top features {top}, took {st['took_ms']} ms", flush=True)


def main():
    def load():
        CTX["invoices"], _, _ = load_invoices()

    def connect():
        CTX["sec"] = Client(CTX["server"].port, "secret", key=CTX["secret"])

    def import_through_server():
        import_invoices(CTX)

    return run_dataset_suite(CTX, name="churn-retail", dataset=RETAIL_CSV, candidates=RETAIL_CANDIDATES,
                             project=PROJECT, tz="Europe/London", load=load, server_args=("--no-scheduler",),
                             tests=(connect, import_through_server, churn_on_invoices),
                             required=(connect, import_through_server))


if __name__ == "__main__":
    sys.exit(main())
