"""The web console's files served by `northstar serve --console-dir DIR` (server/static_routes):
SPA fallback for client routes, immutable hashed assets, no-cache index.html, gzip served
precompressed (and never compressed twice), ETag revalidation, a strict CSP, no path from a
request reaching the file system, /api/... staying JSON, and the page shown without a console.
Usage: console_serving_test.py /path/to/northstar"""

import gzip
import os
import shutil
import sys
import tempfile

from nsclient import Client
from nsserver import Server, binary_from_argv, check, check_eq, run_one

INDEX = b'<!doctype html><html><head><script type="module" src="/assets/index-3f9a1c.js"></script></head><body><div id="app"></div></body></html>\n'
SCRIPT = b"export const words = [" + b",".join(b'"w%d"' % i for i in range(4000)) + b"];\n"
CTX = {}
CONSOLE, BARE = Client(0, "console"), Client(0, "no console")  # their ports are set in main()


def test_client_routes_answer_index_html():
    for path in ["/", "/scenarios/3", "/insights/funnel", "/people?cohort=2"]:
        r = CONSOLE.req("GET", path)
        check_eq(r.status, 200, f"GET {path}")
        check_eq(r.body, INDEX, f"GET {path} body")
        check(r.headers["content-type"].startswith("text/html"), f"{path}: {r.headers}")
        check_eq(r.headers.get("cache-control"), "no-cache", f"{path} cache-control")
    r = CONSOLE.req("GET", "/index.html")
    check_eq((r.status, r.body), (200, INDEX), "GET /index.html")


def test_hashed_assets_are_immutable_and_precompressed():
    r = CONSOLE.req("GET", "/assets/index-3f9a1c.js")
    check_eq((r.status, r.body), (200, SCRIPT), "plain asset")
    check(r.headers["content-type"].startswith("text/javascript"), r.headers)
    check_eq(r.headers.get("cache-control"), "public, max-age=31536000, immutable", "asset cache-control")
    check("content-encoding" not in r.headers, f"no Accept-Encoding, no encoding: {r.headers}")
    # Browsers offer br too; the answer is the precompressed gzip, compressed exactly once.
    r = CONSOLE.req("GET", "/assets/index-3f9a1c.js", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    check_eq(r.headers.get("content-encoding"), "gzip", "encoding")
    check_eq(gzip.decompress(r.body), SCRIPT, "one gzip layer holds the file")
    check(len(r.body) < len(SCRIPT) / 2, f"compressed {len(r.body)} of {len(SCRIPT)}")
    check_eq(r.headers.get("vary"), "Accept-Encoding", "vary")
    r = CONSOLE.req("GET", "/assets/index-3f9a1c.js", headers={"Accept-Encoding": "br"})
    check("content-encoding" not in r.headers or r.headers["content-encoding"] != "br",
          f"no on-the-fly brotli of a large file: {r.headers}")


def test_etag_revalidation():
    r = CONSOLE.req("GET", "/")
    etag = r.headers.get("etag")
    check(etag and etag.startswith('"'), f"etag {etag!r}")
    r2 = CONSOLE.req("GET", "/scenarios/9", headers={"If-None-Match": etag})
    check_eq((r2.status, r2.body), (304, b""), "revalidated index")
    r3 = CONSOLE.req("GET", "/", headers={"If-None-Match": '"other"'})
    check_eq(r3.status, 200, "stale etag")


def test_security_headers():
    for path in ["/", "/assets/index-3f9a1c.js", "/assets/missing.js"]:
        h = CONSOLE.req("GET", path).headers
        csp = h.get("content-security-policy", "")
        check("script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0],
              f"{path}: scripts only from self, none inline: {csp!r}")
        check("frame-ancestors 'none'" in csp and "object-src 'none'" in csp, f"{path}: {csp!r}")
        check_eq(h.get("x-content-type-options"), "nosniff", f"{path} nosniff")


def test_missing_files_are_404_not_index():
    for path in ["/assets/missing.js", "/assets/x", "/logo.png", "/favicon.ico", "/assets/../../secret.txt",
                 "/secret.txt", "/%2e%2e/secret.txt"]:
        r = CONSOLE.req("GET", path)
        check_eq(r.status, 404, f"GET {path}")
        check(b"top secret" not in r.body, f"{path} leaked a file: {r.body[:80]!r}")
        check(r.body != INDEX, f"{path}: index.html for a file name")
    # Dot segments name no file of the console: at most the client-route fallback answers.
    for path in ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd"]:
        r = CONSOLE.req("GET", path)
        check(b"root:" not in r.body, f"{path} leaked a file: {r.body[:80]!r}")
        check(r.status == 404 or (r.status == 200 and r.body == INDEX), f"GET {path}: {r!r}")


def test_api_paths_stay_json():
    r = CONSOLE.req("GET", "/api/v1/no-such-route")
    check_eq(r.status, 404, "unknown API route")
    check(r.json() and r.json()["error"]["code"] == "not_found", f"JSON error: {r!r}")
    check_eq(CONSOLE.req("GET", "/healthz").status, 200, "routes before the console still answer")
    r = CONSOLE.req("POST", "/scenarios/3", b"{}", ctype="application/json")
    check_eq(r.status, 404, "POST to a client route")


def test_head_request():
    r = CONSOLE.req("HEAD", "/assets/index-3f9a1c.js")
    check_eq((r.status, r.body), (200, b""), "HEAD")


def test_without_console():
    r = BARE.req("GET", "/")
    check_eq(r.status, 404, "no console installed")
    check(b"console is not installed" in r.body, r.body[:200])
    check(r.headers["content-type"].startswith("text/html"), r.headers)
    check_eq(BARE.req("GET", "/api/v1/nope").json()["error"]["code"], "not_found", "API 404 without console")


def test_bad_console_dir_fails_start():
    import subprocess
    p = subprocess.run([CTX["binary"], "serve", "--data", os.path.join(CTX["tmp"], "d3"), "--port", "0", "--no-demo",
                        "--console-dir", os.path.join(CTX["tmp"], "empty")], capture_output=True, timeout=60)
    check(p.returncode != 0, "start with a console dir without index.html must fail")
    check(b"index.html" in p.stderr + p.stdout, (p.stderr + p.stdout)[-400:])


def main():
    binary = binary_from_argv()
    if not binary:
        return 2
    tmp = tempfile.mkdtemp(prefix="ns-console-")
    CTX.update(tmp=tmp, binary=binary)
    dist = os.path.join(tmp, "dist")
    os.makedirs(os.path.join(dist, "assets"))
    os.makedirs(os.path.join(tmp, "empty"))
    with open(os.path.join(dist, "index.html"), "wb") as f:
        f.write(INDEX)
    with open(os.path.join(dist, "assets", "index-3f9a1c.js"), "wb") as f:
        f.write(SCRIPT)
    with open(os.path.join(tmp, "secret.txt"), "wb") as f:
        f.write(b"top secret\n")
    os.symlink(os.path.join(tmp, "secret.txt"), os.path.join(dist, "secret.txt"))  # links are not served
    ok = True
    try:
        CTX["console"] = Server(binary, os.path.join(tmp, "d1"), os.path.join(tmp, "s1.log"),
                                ["--console-dir", dist, "--no-scheduler"]).start()
        # A server started elsewhere finds no web/dist: the "not installed" page.
        CTX["bare"] = Server(binary, os.path.join(tmp, "d2"), os.path.join(tmp, "s2.log"),
                             ["--no-scheduler", "--no-console"]).start()
        CONSOLE.port, BARE.port = CTX["console"].port, CTX["bare"].port
        for t in [test_client_routes_answer_index_html, test_hashed_assets_are_immutable_and_precompressed,
                  test_etag_revalidation, test_security_headers, test_missing_files_are_404_not_index,
                  test_api_paths_stay_json, test_head_request, test_without_console, test_bad_console_dir_fails_start]:
            ok &= run_one(t)
    finally:
        for k in ("console", "bare"):
            if k in CTX:
                CTX[k].stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
