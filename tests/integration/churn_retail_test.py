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

import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import Client  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq, run_one  # noqa: E402
from rfm_retail_test import DATASET, LONDON, load_invoices  # noqa: E402

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


def import_invoices():
    path = os.path.join(CTX["tmp"], "pay.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["distinct_id", "timestamp", "event", "order_id", "amount", "uuid"])
        for inv, cust, day, amount in CTX["invoices"]:
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=LONDON).isoformat()
            w.writerow([cust, midnight, "pay", inv, f"{amount:.2f}", f"invoice-{inv}"])
    url = f"http://127.0.0.1:{CTX['server'].port}"
    p = subprocess.run([CTX["bin"], "import", path, "--server", url, "--key", CTX["secret"], "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"import exited {p.returncode}: {p.stdout}{p.stderr[-2000:]}")
    m = re.search(r"imported ([\d,]+) events", p.stdout)
    check(m is not None and int(m.group(1).replace(",", "")) == len(CTX["invoices"]), f"import: {p.stdout}")


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
    binary = binary_from_argv()
    if binary is None:
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated by SIGTERM"))
    if not os.path.exists(DATASET):
        print(f"SKIP: the dataset is not on this machine ({DATASET})")
        return 77
    tmp = tempfile.mkdtemp(prefix="northstar-churn-retail-")
    CTX.update(bin=binary, tmp=tmp)
    passed = failed = 0
    t0 = time.time()
    server = None
    try:
        CTX["invoices"], _, _ = load_invoices()
        data = os.path.join(tmp, "data")
        p = subprocess.run([binary, "admin", "create-project", PROJECT, "--tz", "Europe/London", "--format", "json",
                            "--data", data], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise TestFailure(f"create-project exited {p.returncode}: {p.stdout}{p.stderr}")
        CTX["secret"] = json.loads(p.stdout)["secret_key"]
        server = CTX["server"] = Server(binary, data, os.path.join(tmp, "server.log"), ["--no-scheduler"]).start()
        CTX["sec"] = Client(server.port, "secret", key=CTX["secret"])
        for fn in (import_invoices, churn_on_invoices):
            if run_one(fn):
                passed += 1
            else:
                failed += 1
                break
    except Exception as e:  # noqa: BLE001
        failed += 1
        detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
        print(f"FAIL setup/teardown: {detail}", flush=True)
    finally:
        if server is not None:
            try:
                server.stop(timeout=30)
            except Exception:  # noqa: BLE001
                server.kill()
            if failed:
                print(server.log_tail(40))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total time {time.time() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
