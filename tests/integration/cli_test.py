#!/usr/bin/env python3
"""CLI end to end: admin create-project (JSON contract), import CSV/NDJSON with bad lines
(line numbers, exit code 2, nothing good dropped), --dry-run, --map, query --format json,
check, and the data-directory lock. usage: cli_test.py NORTHSTAR_BINARY"""
import json, os, re, shutil, signal, subprocess, sys, tempfile

BIN = sys.argv[1]
passed = failed = 0


def run(*args, stdin=None):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, input=stdin, timeout=120)
    return p.returncode, p.stdout, p.stderr


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name}: {detail}")


tmp = tempfile.mkdtemp(prefix="ns-cli-")
try:
    data = os.path.join(tmp, "data")
    rc, out, err = run("admin", "create-project", "shop", "--tz", "Asia/Shanghai", "--format", "json", "--data", data)
    check("create-project exit 0", rc == 0, err)
    check("create-project prints exactly project, write_key, secret_key in that order",
          re.fullmatch(r'\{"project":"shop","write_key":"nsw_[0-9a-f]{32}","secret_key":"nss_[0-9a-f]{40}"\}\n', out) is not None, out)
    rc, out, err = run("admin", "create-project", "shop", "--data", data)
    check("duplicate project refused", rc == 1 and "already exists" in err, err)
    rc, out, err = run("admin", "create-project", "Bad Name", "--data", data)
    check("bad project name explained", rc == 1 and "may contain only" in err, err)
    rc, out, err = run("admin", "create-project", "x", "--tz", "Mars/Base", "--data", data)
    check("bad time zone explained", rc == 1 and "unknown time zone 'Mars/Base'" in err, err)

    csv_path = os.path.join(tmp, "events.csv")
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        f.write("user_id,ts,event,channel,amount\n")
        f.write("1,2025-03-01 10:00:00,register,ads,\n")      # line 2: local time in the project zone
        f.write("1,1740801600,pay,ads,12.5\n")                # line 3: epoch seconds (2025-03-01T04:00Z)
        f.write("2,not-a-time,pay,ads,1\n")                   # line 4: bad timestamp
        f.write("3,1740801600,,ads,1\n")                      # line 5: empty event
        f.write("4,1740801600,pay\n")                         # line 6: wrong field count
        f.write('5,1740801600,"quoted,event",seo,3\n')        # line 7
        f.write("6,1740801600,pay,\"multi\nline\",4\n")      # lines 8-9
        f.write("7,946684799,pay,ads,1\n")                    # line 10: before 2000
    rc, out, err = run("import", csv_path, "-p", "shop", "--data", data, "--dry-run")
    check("dry run exit 2 with bad lines", rc == 2, f"{rc} {out} {err}")
    check("dry run stores nothing", "would import 4 events" in out, out)
    rc, out, err = run("import", csv_path, "-p", "shop", "--data", data, "--no-progress")
    check("import exit 2 when some lines are rejected", rc == 2, f"{rc} {err}")
    check("import counts", "imported 4 events from 8 rows" in out and "4 rows rejected" in out, out)
    check("error names line 4 and the column", "line 4: column 'ts'" in err, err)
    check("error names line 5", "line 5: the event name is empty" in err, err)
    check("error names line 6", "line 6: 3 fields, the header has 5" in err, err)
    check("error names line 10", "line 10:" in err and "before 2000-01-01" in err, err)

    q = json.dumps({"kind": "trends", "series": [{"event": "$any", "math": "total"}],
                    "date_from": "2025-03-01", "date_to": "2025-03-01"})
    rc, out, err = run("query", "-p", "shop", "--data", data, "--json", "-", "--format", "json", stdin=q)
    check("query exit 0", rc == 0, err)
    res = json.loads(out) if rc == 0 else {}
    check("all 4 good events on 2025-03-01 (Shanghai)", res.get("series", [{}])[0].get("values") == [4], out)
    q2 = json.dumps({"kind": "trends", "series": [{"event": "pay", "math": "sum", "property": "amount"}],
                     "date_from": "2025-03-01", "date_to": "2025-03-01"})
    rc, out, err = run("query", "-p", "shop", "--data", data, "--json", "-", "--format", "json", stdin=q2)
    check("amounts numeric", rc == 0 and json.loads(out)["series"][0]["values"] == [16.5], out + err)
    rc, out, err = run("query", "-p", "shop", "--data", data, "--json", "-", stdin='{"kind":"trend"}')
    check("bad query explained", rc == 1 and "unknown query kind 'trend'" in err, err)

    nd = os.path.join(tmp, "e.ndjson")
    with open(nd, "wb") as f:
        f.write(b'{"event":"a","distinct_id":"u9","timestamp":"2025-03-02T01:00:00+08:00","uuid":"id-1"}\n')
        f.write(b'{"event":"a","distinct_id":"u9",\n')
        f.write(b'{"event":"b\xff","distinct_id":"u9"}\n')
        f.write(b'{"event":"a","distinct_id":"u9","timestamp":"2025-03-02T01:00:00+08:00","uuid":"id-1"}\n')
    rc, out, err = run("import", nd, "-p", "shop", "--data", data, "--no-progress")
    check("ndjson: one stored, one duplicate, two rejected", rc == 2 and "imported 1 events" in out and "1 duplicates" in out, out + err)
    check("ndjson malformed line reported with its number", "line 2: malformed JSON" in err, err)
    check("ndjson invalid UTF-8 reported", "line 3" in err, err)

    mapped = os.path.join(tmp, "m.csv")
    with open(mapped, "w") as f:
        f.write("who,when,what,plan\nz1,2025-03-03T00:00:00Z,visit,pro\n")
    rc, out, err = run("import", mapped, "-p", "shop", "--data", data, "--no-progress",
                       "--map", "who=distinct_id", "--map", "when=timestamp", "--map", "what=event", "--map", "plan=person.plan")
    check("--map import", rc == 0 and "imported 1 events" in out, out + err)
    rc, out, err = run("import", mapped, "-p", "shop", "--data", data, "--map", "nope=event")
    check("--map unknown column explained", rc == 1 and "the header has no column 'nope'" in err, err)
    q3 = json.dumps({"kind": "trends", "series": [{"event": "visit", "math": "dau"}], "date_from": "2025-03-03",
                     "date_to": "2025-03-03", "filters": [{"property": "person.plan", "op": "eq", "value": "pro"}]})
    rc, out, err = run("query", "-p", "shop", "--data", data, "--json", "-", "--format", "json", stdin=q3)
    check("person property from import filters", rc == 0 and json.loads(out)["series"][0]["values"] == [1], out + err)

    orders = os.path.join(tmp, "orders.csv")
    with open(orders, "w") as f:
        f.write("order_no,user,time,amount\nA-1,z2,2025-03-04 10:00:00,9.5\nA-2,z3,2025-03-04 11:00:00,1\n")
    rc, out, err = run("import", orders, "-p", "shop", "--data", data, "--no-progress", "--event", "order",
                       "--map", "order_no=uuid", "--map", "user=distinct_id")
    check("--event names every row", rc == 0 and "imported 2 events" in out, out + err)
    rc, out, err = run("import", orders, "-p", "shop", "--data", data, "--no-progress", "--map", "user=distinct_id")
    check("missing event column explained", rc == 1 and "--event NAME" in err, err)
    arr = os.path.join(tmp, "batch.json")
    with open(arr, "w") as f:
        json.dump([{"event": "j", "distinct_id": "z4", "timestamp": "2025-03-05T10:00:00+08:00"},
                   {"event": "j"}], f, indent=2)
    rc, out, err = run("import", arr, "-p", "shop", "--data", data, "--no-progress")
    check(".json array import", rc == 2 and "imported 1 events from 2 events" in out and "events[1].distinct_id" in err, out + err)
    q4 = json.dumps({"kind": "funnel", "steps": [{"event": "order"}, {"event": "pay"}], "date_from": "2025-03-04",
                     "date_to": "2025-03-04"})
    rc, out, err = run("query", "-p", "shop", "--data", data, "--json", "-", "--format", "json", stdin=q4)
    check("funnel over imported orders", rc == 0 and json.loads(out)["steps"][0]["count"] == 2, out + err)

    rc, out, err = run("check", "--data", data)
    check("check passes", rc == 0 and "0 problems" in out, out)

    # Configuration: a TOML file, its errors, and bad flag values.
    cfg = os.path.join(tmp, "ns.toml")
    with open(cfg, "w") as f:
        f.write('data = "%s"\n[server]\nport = 0\n' % data)
    rc, out, err = run("admin", "list-projects", "--config", cfg)
    check("TOML config supplies the data directory", rc == 0 and "shop" in out, out + err)
    with open(cfg, "w") as f:
        f.write('data = "unterminated\n')
    rc, out, err = run("check", "--config", cfg)
    check("bad TOML explained with its line", rc == 1 and "config" in err and "line 1" in err, err)
    rc, out, err = run("check", "--data", data, "--log-level", "verbose")
    check("unknown log level refused", rc != 0 and "verbose" in err, err)
    rc, out, err = run("serve", "--data", data, "--port", "70000")
    check("port out of range refused", rc != 0 and "70000" in err, err)
    # The flags of issues 3 and 4: bad values are refused with a message naming them, before serving.
    rc, out, err = run("serve", "--data", data, "--port", "0", "--sensors-project", "no-equals-sign")
    check("bad --sensors-project refused", rc == 1 and "--sensors-project: expected SA_PROJECT=PROJECT, got 'no-equals-sign'" in err, err)
    rc, out, err = run("serve", "--data", data, "--port", "0", "--snapshot-time", "25:00")
    check("bad --snapshot-time refused", rc == 1 and "snapshot_time: expected a local time HH:MM (00:00-23:59), got '25:00'" in err, err)
    rc, out, err = run("serve", "--data", data, "--port", "0", "--rate-limit", "-5")
    check("negative --rate-limit refused", rc != 0 and "--rate-limit" in err, err)
    rc, out, err = run("serve", "--data", data, "--port", "0", "--bulk-nice", "20")
    check("--bulk-nice over 19 refused", rc != 0 and "--bulk-nice: Value 20 not in range 0 to 19" in err, err)
    nice_cfg = os.path.join(tmp, "nice.toml")
    with open(nice_cfg, "w") as f:
        f.write("[server]\nbulk_nice = 30\n")
    rc, out, err = run("serve", "--config", nice_cfg, "--data", data, "--port", "0", "--no-demo")
    check("server.bulk_nice over 19 in the config refused",
          rc == 1 and "bulk_nice (--bulk-nice, server.bulk_nice): expected 0-19, got 30" in err, err)
    with open(nice_cfg, "w") as f:
        f.write("[server]\nbulk_nice = -1\n")
    rc, out, err = run("serve", "--config", nice_cfg, "--data", data, "--port", "0", "--no-demo")
    check("negative server.bulk_nice in the config refused",
          rc == 1 and "bulk_nice (--bulk-nice, server.bulk_nice): expected 0-19, got -1" in err, err)
    # Without the flag, collection yields to queries where request workers can switch their
    # nice value back (root here and in CI), and says which it chose.
    srv = subprocess.Popen([BIN, "serve", "--data", data, "--port", "0", "--no-demo"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    srv.stdout.readline()
    srv.send_signal(signal.SIGTERM)  # at once: it used to be lost if it came before the accept loop
    _, err = srv.communicate(timeout=60)
    check("SIGTERM right after the listening line stops the server", srv.returncode == 0, err)
    chosen = "event collection and flushes run 5 nice levels below queries" in err
    check("default CPU classes announced",
          chosen or "event collection runs at the queries' priority: request workers cannot switch" in err, err)
    # Whether this process may lower its nice value again (CAP_SYS_NICE or RLIMIT_NICE): then
    # the server may too, and must have chosen the classes.
    renice = "import os; b = os.getpriority(os.PRIO_PROCESS, 0); os.nice(1); os.setpriority(os.PRIO_PROCESS, 0, b)"
    may_renice = subprocess.run([sys.executable, "-c", renice], capture_output=True).returncode == 0
    check("default CPU classes chosen where workers can switch back", chosen == may_renice, err)
    rc, out, err = run("backup", "--data", os.path.join(tmp, "nothing-here"), "--out", os.path.join(tmp, "b"))
    check("backup of a directory without metadata refused", rc == 1 and "no metadata database" in err, err)

    # The data directory is locked by a running server.
    srv = subprocess.Popen([BIN, "serve", "--data", data, "--port", "0", "--no-demo"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        first = srv.stdout.readline()
        check("serve prints the listening line first", re.fullmatch(r"listening on http://127\.0\.0\.1:\d+\n", first) is not None, first)
        rc, out, err = run("import", mapped, "-p", "shop", "--data", data)
        check("import refused while a server runs", rc == 1 and "in use by another northstar process" in err, err)
    finally:
        srv.terminate()
        srv.wait(timeout=30)
    check("server exits 0 on SIGTERM", srv.returncode == 0, str(srv.returncode))

    # Corruption is reported with the file name.
    seg_dir = os.path.join(data, "projects", "shop", "segments")
    segs = sorted(os.listdir(seg_dir))
    with open(os.path.join(seg_dir, segs[0]), "r+b") as f:
        f.seek(20)
        b = f.read(1)
        f.seek(20)
        f.write(bytes([b[0] ^ 0xFF]))
    rc, out, err = run("check", "--data", data)
    check("check finds a flipped byte and names the file", rc == 1 and segs[0] in out and "PROBLEM" in out, out)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
