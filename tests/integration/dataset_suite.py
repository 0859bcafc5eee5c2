"""Shared by the tests on real public datasets (shared/datasets/): where a dataset is found, the
Online Retail invoices' loader and import, and the runner every such script's main() is.

A dataset test skips (exit 77, ctest SKIP_RETURN_CODE) rather than fails on a machine without
the shared datasets, and says so loudly."""

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
import zoneinfo

from nsserver import Server, TestFailure, binary_from_argv, check, run_one

HERE = os.path.dirname(os.path.abspath(__file__))


def dataset_candidates(env_var, *relative):
    """Where a dataset may be: $env_var, then shared/datasets/<relative> beside the work tree
    (a developer's checkout) or under the machine's shared folder (/work/shared, where CI's
    clean clone finds it)."""
    return [os.environ.get(env_var, "")] + [
        os.path.join(root, "shared", "datasets", *relative)
        for root in (os.path.join(HERE, "..", "..", ".."), os.environ.get("NORTHSTAR_SHARED_ROOT", "/work"))]


def first_existing(candidates, probe=""):
    """The first candidate holding `probe` (a file inside it, or the candidate itself)."""
    return next((c for c in candidates if c and os.path.exists(os.path.join(c, probe) if probe else c)),
                candidates[1])


# ---------------------------------------------------------------- Online Retail invoices

RETAIL_CANDIDATES = dataset_candidates("NORTHSTAR_RETAIL_CSV", "online_retail_invoices",
                                       "online_retail_invoices.csv")
RETAIL_CSV = first_existing(RETAIL_CANDIDATES)
LONDON = zoneinfo.ZoneInfo("Europe/London")


def load_invoices():
    """[(invoice, customer, date, amount)] of the Online Retail file, and the counts of the rows
    left out: cancellations (invoice numbers starting with C) and rows without a customer."""
    out, cancelled, no_customer = [], 0, 0
    with open(RETAIL_CSV, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            inv, cust = row["InvoiceNo"].strip(), row["CustomerID"].strip()
            if not cust:
                no_customer += 1
                continue
            if inv.upper().startswith("C"):
                cancelled += 1
                continue
            if cust.endswith(".0"):  # some exports write the id as a float
                cust = cust[:-2]
            out.append((inv, cust, dt.date.fromisoformat(row["InvoiceDate"][:10]), round(float(row["TotalPrice"]), 2)))
    return out, cancelled, no_customer


def import_invoices(ctx):
    """Imports ctx["invoices"] through the running server with `northstar import --server`: one
    `pay` event per invoice at the first instant of its London date, order_id = InvoiceNo, the
    uuid from the invoice (so a second import stores nothing). Returns the command's stdout."""
    path = os.path.join(ctx["tmp"], "pay.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["distinct_id", "timestamp", "event", "order_id", "amount", "uuid"])
        for inv, cust, day, amount in ctx["invoices"]:
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=LONDON).isoformat()
            w.writerow([cust, midnight, "pay", inv, f"{amount:.2f}", f"invoice-{inv}"])
    url = f"http://127.0.0.1:{ctx['server'].port}"
    p = subprocess.run([ctx["bin"], "import", path, "--server", url, "--key", ctx["secret"], "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"import exited {p.returncode}: {p.stdout}{p.stderr[-2000:]}")
    m = re.search(r"imported ([\d,]+) events", p.stdout)
    check(m is not None and int(m.group(1).replace(",", "")) == len(ctx["invoices"]),
          f"import output: {p.stdout}{p.stderr[-2000:]}")
    return p.stdout


# ---------------------------------------------------------------- the runner


def run_dataset_suite(ctx, *, name, dataset, candidates, project, load, tests, tz=None, server_args=(),
                      required=()):
    """main() of a dataset test: usage check, skip without the dataset, a temporary data
    directory with one project (`tz` or the default zone) whose secret key lands in
    ctx["secret"], `load()` run once (its result is the caller's business: it fills ctx), a
    server in ctx["server"], then every test of `tests` in order. A failure of a test in
    `required` (e.g. the import) ends the run: the others would only repeat it. The temporary
    directory is removed; the server's log tail is printed on a failure."""
    binary = binary_from_argv()
    if binary is None:
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated by SIGTERM"))
    if not os.path.exists(dataset):
        print(f"SKIP: the dataset is not on this machine (looked at {[c for c in candidates if c]})")
        return 77
    tmp = tempfile.mkdtemp(prefix=f"northstar-{name}-")
    ctx.update(bin=binary, tmp=tmp)
    passed = failed = 0
    t0 = time.time()
    try:
        load()
        data = ctx["data"] = os.path.join(tmp, "data")
        cmd = [binary, "admin", "create-project", project, "--format", "json", "--data", data]
        if tz:
            cmd[4:4] = ["--tz", tz]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise TestFailure(f"create-project exited {p.returncode}: {p.stdout}{p.stderr}")
        ctx["secret"] = json.loads(p.stdout)["secret_key"]
        ctx["server"] = Server(binary, data, os.path.join(tmp, "server.log"), list(server_args)).start()
        for fn in tests:
            if run_one(fn):
                passed += 1
            else:
                failed += 1
                if fn in required:
                    break
    except Exception as e:  # noqa: BLE001
        failed += 1
        detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
        print(f"FAIL setup/teardown: {detail}", flush=True)
    finally:
        server = ctx.get("server")
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
