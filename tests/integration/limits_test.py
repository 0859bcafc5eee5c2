#!/usr/bin/env python3
"""Limits and behaviour under pressure, against a real `northstar serve`.

Usage: limits_test.py /path/to/northstar

  * per-key rate limit (--rate-limit N --rate-limit-burst B): a batch that does not fit is
    refused whole with 429 + Retry-After and nothing of it is stored; after waiting
    Retry-After seconds the same batch is accepted; another key is not affected; the
    Segment and PostHog routes share the key's bucket;
  * body over --max-body-bytes -> 413 (also a gzip body inflating past it), unsupported
    media type -> 415, wrong key -> 401, JSON nested deeper than 128 levels -> 400: nothing
    stored, and none of them retryable (4xx);
  * a server that cannot write: the data directory is on a small tmpfs (mounted here; a
    loop-mounted ext4 image if tmpfs cannot be mounted; skipped with a message if neither
    is possible, e.g. without CAP_SYS_ADMIN) that is filled up with a file. Ingest answers
    503 with Retry-After (native, Segment and PostHog routes), reads keep working, nothing
    of a refused batch is stored (its retry is accepted in full, not as duplicates), ingest
    works again once space is freed, and after a SIGKILL + restart exactly the acknowledged
    events are there; a graceful stop while the disk is full loses nothing either;
    `northstar check` passes at the end.

The SDKs retry on 429 and 5xx and drop the batch on other 4xx (Segment's analytics-node,
posthog-node), so these statuses decide whether data is lost or duplicated.

Standard library only. Prints one PASS/FAIL/SKIP line per test and "N passed, M failed".
"""

import base64
import datetime as dt
import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nsclient import request  # noqa: E402
from nsserver import Server, TestFailure, binary_from_argv, check, check_eq, run_check  # noqa: E402

RATE, BURST, MAX_BODY = 100, 200, 100_000
TODAY = dt.datetime.now(dt.timezone.utc).date()
DAY = TODAY - dt.timedelta(days=2)  # every event of this test is on this (UTC) day
CTX = {}


class Skip(Exception):
    pass


def ts_iso(i=0):
    t = dt.datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=i)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def events(name, n, pad=0, prefix=None):
    prefix = prefix or name
    return [{"event": name, "distinct_id": f"{prefix}-u{i % 13}", "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{i}")),
             "timestamp": ts_iso(i), "properties": {"i": i, "pad": "p" * pad}} for i in range(n)]


def create_project(binary, data_dir, name):
    p = subprocess.run([binary, "admin", "create-project", name, "--tz", "UTC", "--format", "json", "--data", data_dir],
                       capture_output=True, timeout=60)
    check(p.returncode == 0, f"admin create-project {name}: {p.stderr.decode(errors='replace')}")
    return json.loads(p.stdout)


def post(port, key, body, ctype="application/json", path="/api/v1/events", headers=None):
    return request(port, "POST", path, body, headers, key=key, ctype=ctype)


def segment_batch(port, write_key, evs):
    body = {"batch": [{"type": "track", "event": e["event"], "userId": e["distinct_id"], "messageId": e["uuid"],
                       "timestamp": e["timestamp"], "properties": e["properties"]} for e in evs],
            "sentAt": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    auth = "Basic " + base64.b64encode((write_key + ":").encode()).decode()
    return post(port, None, body, path="/v1/batch", headers={"Authorization": auth})


def posthog_batch(port, write_key, evs):
    body = {"api_key": write_key,
            "batch": [{"event": e["event"], "distinct_id": e["distinct_id"], "uuid": e["uuid"],
                       "timestamp": e["timestamp"], "properties": e["properties"]} for e in evs]}
    return post(port, None, body, path="/batch/")


def route_exists(port, path):
    r = request(port, "POST", path, body=b"{}", headers={"Content-Type": "application/json"})
    return r.status != 404


def count(port, secret, name):
    q = {"kind": "trends", "series": [{"event": name, "math": "total"}], "date_from": str(DAY - dt.timedelta(days=1)),
         "date_to": str(TODAY)}
    r = post(port, secret, q, path="/api/v1/query")
    check(r.status == 200, f"count query for {name}: {r}")
    return int(sum(r.json()["series"][0]["values"]))


def expect_status(r, status, what, retry_after=None):
    check(r.status == status, f"{what}: expected HTTP {status}, got {r}")
    if retry_after is not None:
        ra = r.headers.get("retry-after")
        check(ra is not None and ra.isdigit() and int(ra) >= 1, f"{what}: Retry-After missing or not a positive integer ({ra!r})")
        return int(ra)
    return None


def expect_accepted(r, accepted, duplicates=0, what="ingest"):
    check(r.status == 200, f"{what}: expected HTTP 200, got {r}")
    check_eq((r.json().get("accepted"), r.json().get("duplicates")), (accepted, duplicates), f"{what}: (accepted, duplicates)")


# --------------------------------------------------------------------------- rate limits and 4xx


def start_limited_server():
    data = os.path.join(CTX["tmp"], "limited")
    os.makedirs(data)
    CTX["p1"] = create_project(CTX["bin"], data, "limits")
    CTX["p2"] = create_project(CTX["bin"], data, "other")
    srv = Server(CTX["bin"], data, os.path.join(CTX["tmp"], "limited.log"),
                 ["--rate-limit", str(RATE), "--rate-limit-burst", str(BURST), "--max-body-bytes", str(MAX_BODY)])
    CTX["limited"] = srv.start()


def test_4xx_not_stored():
    port, p1 = CTX["limited"].port, CTX["p1"]
    evs = events("bad_requests", 3)
    r = post(port, "nsw_" + "0" * 28 + "dead", evs)
    expect_status(r, 401, "unknown write key")
    r = post(port, None, evs)
    expect_status(r, 401, "no key")
    r = post(port, p1["write_key"], b"event,distinct_id\nx,u\n", ctype="text/csv")
    expect_status(r, 415, "text/csv body")
    big = events("bad_requests", 60, pad=2000)  # ~125 KB > --max-body-bytes
    body = json.dumps(big).encode()
    check(len(body) > MAX_BODY, "test body is not over the limit")
    r = post(port, p1["write_key"], body)
    expect_status(r, 413, f"{len(body)} byte body with --max-body-bytes {MAX_BODY}")
    bomb = gzip.compress(b"[" + b" " * (MAX_BODY * 3) + b"]")
    r = post(port, p1["write_key"], bomb)
    expect_status(r, 413, "gzip body inflating past --max-body-bytes")
    # Nesting deeper than 128 levels is refused before parsing (it used to overflow the stack).
    deep = b'[{"event":"bad_requests","distinct_id":"u","properties":{"x":' + b"[" * 30000 + b"]" * 30000 + b"}}]"
    r = post(port, p1["write_key"], deep)
    expect_status(r, 400, "an event nested 30,000 levels deep")
    check_eq(request(port, "GET", "/healthz").status, 200, "/healthz after the deep body")
    check_eq(count(port, p1["secret_key"], "bad_requests"), 0, "events stored by refused requests")


def test_rate_limit_429():
    port, p1, p2 = CTX["limited"].port, CTX["p1"], CTX["p2"]
    first = events("rl", BURST, prefix="rl1")
    expect_accepted(post(port, p1["write_key"], first), BURST, what="a batch of the burst size")
    second = events("rl", 150, prefix="rl2")
    r = post(port, p1["write_key"], second)
    wait = expect_status(r, 429, "a batch over the remaining tokens", retry_after=True)
    check_eq(r.json().get("error", {}).get("code"), "rate_limited", "error.code")
    check(wait <= 3, f"Retry-After {wait} s is more than the refill time of 150 events at {RATE}/s")
    check_eq(count(port, p1["secret_key"], "rl"), BURST, "events stored after the refused batch")
    # Another key has its own bucket.
    expect_accepted(post(port, p2["write_key"], events("rl", BURST, prefix="rl-other")), BURST, what="another key")
    time.sleep(wait + 0.2)
    expect_accepted(post(port, p1["write_key"], second), 150, what="the refused batch after Retry-After")
    check_eq(count(port, p1["secret_key"], "rl"), BURST + 150, "events stored after the retry")


def test_rate_limit_collect_routes():
    port, p1 = CTX["limited"].port, CTX["p1"]
    have_segment, have_posthog = route_exists(port, "/v1/batch"), route_exists(port, "/batch/")
    if not have_segment and not have_posthog:
        raise Skip("no /v1/batch or /batch/ route in this build")
    time.sleep(BURST / RATE + 0.3)  # bucket full again
    expect_accepted(post(port, p1["write_key"], events("rl_c", BURST, prefix="rlc0")), BURST, what="drain the bucket")
    if have_segment:
        r = segment_batch(port, p1["write_key"], events("rl_seg", 100))
        expect_status(r, 429, "Segment /v1/batch over the rate limit", retry_after=True)
        check_eq(count(port, p1["secret_key"], "rl_seg"), 0, "Segment events stored by a 429")
    if have_posthog:
        r = posthog_batch(port, p1["write_key"], events("rl_ph", 100))
        expect_status(r, 429, "PostHog /batch/ over the rate limit", retry_after=True)
        check_eq(count(port, p1["secret_key"], "rl_ph"), 0, "PostHog events stored by a 429")
    time.sleep(100 / RATE + 1.2)
    if have_segment:
        r = segment_batch(port, p1["write_key"], events("rl_seg", 100))
        check(r.status == 200, f"Segment batch after waiting: {r}")
        check_eq(count(port, p1["secret_key"], "rl_seg"), 100, "Segment events after the retry")
    if have_posthog:
        time.sleep(100 / RATE + 0.2)
        r = posthog_batch(port, p1["write_key"], events("rl_ph", 100))
        check(r.status == 200, f"PostHog batch after waiting: {r}")
        check_eq(count(port, p1["secret_key"], "rl_ph"), 100, "PostHog events after the retry")
    # Wrong keys are 4xx (not retried by the SDKs), never 5xx.
    if have_segment:
        r = segment_batch(port, "nsw_" + "0" * 28 + "dead", events("rl_seg_bad", 1))
        expect_status(r, 401, "Segment /v1/batch with an unknown write key")
    if have_posthog:
        r = posthog_batch(port, "nsw_" + "0" * 28 + "dead", events("rl_ph_bad", 1))
        check(400 <= r.status < 500 and r.status != 429, f"PostHog /batch/ with an unknown key: expected a 4xx, got {r}")


# --------------------------------------------------------------------------- disk full


def mount_small_fs(mnt, size_mb):
    """Mounts a small file system at mnt; returns a description, or raises Skip."""
    os.makedirs(mnt, exist_ok=True)
    if os.geteuid() != 0:
        raise Skip("not root: cannot mount a small file system to fill (run as root for the disk-full test)")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", mnt], capture_output=True)
    if p.returncode == 0:
        return f"tmpfs of {size_mb} MiB"
    why = p.stderr.decode(errors="replace").strip()
    img = mnt + ".img"
    try:
        with open(img, "wb") as f:
            f.truncate(size_mb << 20)
        q = subprocess.run(["mkfs.ext4", "-q", "-F", img], capture_output=True)
        if q.returncode == 0:
            q = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True)
            if q.returncode == 0:
                return f"loop-mounted ext4 image of {size_mb} MiB (tmpfs failed: {why})"
        raise Skip(f"cannot mount a small file system: tmpfs: {why}; loop ext4: {q.stderr.decode(errors='replace').strip()}")
    except OSError as e:
        raise Skip(f"cannot mount a small file system: tmpfs: {why}; loop ext4: {e}")


def fill(path, leave=0):
    """Fills the file system of path with one file, leaving about `leave` bytes free."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 20, 64 << 10, 4 << 10, 512):
            block = b"\1" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    if leave:
        os.truncate(path, max(0, os.path.getsize(path) - leave))
    st = os.statvfs(os.path.dirname(path))
    return st.f_bavail * st.f_frsize


def test_disk_full_503():
    mnt = os.path.join(CTX["tmp"], "small")
    how = mount_small_fs(mnt, 48)
    CTX["mounted"] = mnt
    print(f"  data directory on a {how}")
    data = os.path.join(mnt, "data")
    os.makedirs(data)
    p = create_project(CTX["bin"], data, "full")
    log = os.path.join(CTX["tmp"], "full.log")
    srv = Server(CTX["bin"], data, log).start()
    CTX["full"] = srv
    have_segment, have_posthog = route_exists(srv.port, "/v1/batch"), route_exists(srv.port, "/batch/")
    filler = os.path.join(mnt, "filler")
    acked = {}

    def stored(name):
        return count(srv.port, p["secret_key"], name)

    a = events("df_a", 200)
    expect_accepted(post(srv.port, p["write_key"], a), 200, what="before the disk is full")
    acked["df_a"] = a
    # Leave 16 KiB: the ~330 KB WAL record of batch b is written part-way, then ENOSPC.
    free = fill(filler, leave=16 << 10)
    print(f"  filled: {free} bytes free")
    b = events("df_b", 300, pad=1000)
    for attempt in range(3):
        r = post(srv.port, p["write_key"], b)
        expect_status(r, 503, f"native batch on a full disk (attempt {attempt + 1})", retry_after=True)
        check_eq(r.json().get("error", {}).get("code"), "unavailable", "error.code")
    if have_segment:
        r = segment_batch(srv.port, p["write_key"], events("df_seg", 100, pad=1000))
        expect_status(r, 503, "Segment /v1/batch on a full disk", retry_after=True)
    if have_posthog:
        r = posthog_batch(srv.port, p["write_key"], events("df_ph", 100, pad=1000))
        expect_status(r, 503, "PostHog /batch/ on a full disk", retry_after=True)
    # Reads keep working.
    check_eq(request(srv.port, "GET", "/healthz").status, 200, "/healthz while the disk is full")
    check_eq(stored("df_a"), 200, "acknowledged events readable while the disk is full")
    check_eq(stored("df_b"), 0, "events of the refused batch")
    # Space again: the same batch is accepted in full (nothing of it was stored or remembered).
    os.unlink(filler)
    expect_accepted(post(srv.port, p["write_key"], b), 300, 0, what="the refused batch once space is free")
    acked["df_b"] = b
    c = events("df_c", 100)
    expect_accepted(post(srv.port, p["write_key"], c), 100, what="a new batch once space is free")
    acked["df_c"] = c
    if have_segment:
        r = segment_batch(srv.port, p["write_key"], events("df_seg", 100, pad=1000))
        check(r.status == 200, f"Segment batch once space is free: {r}")
        acked["df_seg"] = events("df_seg", 100, pad=1000)
    if have_posthog:
        r = posthog_batch(srv.port, p["write_key"], events("df_ph", 100, pad=1000))
        check(r.status == 200, f"PostHog batch once space is free: {r}")
        acked["df_ph"] = events("df_ph", 100, pad=1000)

    # The crash: SIGKILL, restart, every acknowledged event there exactly once.
    srv.sigkill()
    srv = Server(CTX["bin"], data, log).start()
    CTX["full"] = srv
    for name, evs in acked.items():
        check_eq(stored(name), len(evs), f"{name} after SIGKILL and restart")
    check_eq(stored("df_b") + stored("df_a"), 500, "no partial batch after restart")
    for name in ("df_a", "df_b", "df_c"):
        expect_accepted(post(srv.port, p["write_key"], acked[name]), 0, len(acked[name]), what=f"re-sending {name}")

    # A graceful stop while the disk is full: the final flush fails, the WAL keeps the events.
    d = events("df_d", 50)
    expect_accepted(post(srv.port, p["write_key"], d), 50, what="batch d")
    acked["df_d"] = d
    fill(filler)
    rc = srv.stop()
    print(f"  stopped with the disk full (exit code {rc})")
    os.unlink(filler)
    srv = Server(CTX["bin"], data, log).start()
    CTX["full"] = srv
    for name, evs in acked.items():
        check_eq(stored(name), len(evs), f"{name} after a stop on a full disk and restart")
    srv.stop()
    run_check(CTX["bin"], data, "after the disk-full test")
    with open(log, errors="replace") as f:
        notes = [line.rstrip() for line in f if " error " in line or " warn" in line]
    for line in notes[:8]:
        print("  server log: " + line[:300])


# --------------------------------------------------------------------------- main


TESTS = [test_4xx_not_stored, test_rate_limit_429, test_rate_limit_collect_routes, test_disk_full_503]


def main():
    binary = binary_from_argv()
    if not binary:
        return 2
    CTX["bin"] = binary
    CTX["tmp"] = tempfile.mkdtemp(prefix="ns-limits-")
    passed = failed = 0
    try:
        start_limited_server()
        for t in TESTS:
            name = t.__name__[5:]
            try:
                t()
                print(f"PASS {name}")
                passed += 1
            except Skip as e:
                print(f"SKIP {name}: {e}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {e}")
                if not isinstance(e, TestFailure):
                    traceback.print_exc()
                for key in ("limited", "full"):
                    if key in CTX and CTX[key].alive():
                        print(CTX[key].log_tail(15))
    finally:
        for key in ("limited", "full"):
            if key in CTX:
                CTX[key].kill()
        if "mounted" in CTX:
            subprocess.run(["umount", "-l", CTX["mounted"]], capture_output=True)
        shutil.rmtree(CTX["tmp"], ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
