"""Helpers for the operations API tests (ops_auth_test.py, ops_api_test.py): a client that
authenticates with a key or a login session (cookie ns_session + X-CSRF-Token), login,
project creation with the CLI, and a loopback HTTP receiver for notification channels.
Standard library only."""

import hashlib
import hmac
import http.client
import http.server
import json
import subprocess
import threading

from nsserver import Resp, TestFailure, check

SESSION_COOKIE = "ns_session"


_conns = threading.local()


def call(port, method, path, body=None, headers=None, timeout=60):
    """One HTTP request on a kept-alive connection (one per thread and port; reconnects once
    if the server closed it); the response keeps every header (Set-Cookie may repeat) in
    .header_list."""
    pool = _conns.__dict__.setdefault("pool", {})
    for attempt in (0, 1):
        conn = pool.get(port)
        if conn is None:
            conn = pool[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
        except (http.client.HTTPException, ConnectionError, BrokenPipeError):
            conn.close()
            pool.pop(port, None)
            if attempt:
                raise
            continue
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            pool.pop(port, None)
        resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        resp.header_list = [(k.lower(), v) for k, v in r.getheaders()]
        return resp


def close_connections():
    """Closes this thread's kept-alive connections (before stopping a server: it waits for them)."""
    for conn in _conns.__dict__.get("pool", {}).values():
        conn.close()
    _conns.__dict__["pool"] = {}


class Client:
    """Calls the API as one principal: a key (Authorization: Bearer), or a login session
    (cookie; X-CSRF-Token on requests other than GET unless csrf is None), optionally
    choosing the project with X-Northstar-Project."""

    def __init__(self, port, name="", key=None, session=None, csrf=None, project=None, auth_header=None):
        self.port, self.name, self.key, self.session, self.csrf, self.project = port, name, key, session, csrf, project
        self.auth_header = auth_header  # a raw Authorization header value (malformed keys)

    def req(self, method, path, body=None, ctype=None, headers=None):
        h = {}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        if self.auth_header:
            h["Authorization"] = self.auth_header
        if self.session:
            h["Cookie"] = f"{SESSION_COOKIE}={self.session}"
        if self.csrf is not None and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        if self.project:
            h["X-Northstar-Project"] = self.project
        if body is not None and not isinstance(body, (bytes, bytearray, str)):
            body = json.dumps(body).encode()
            ctype = ctype or "application/json"
        if isinstance(body, str):
            body = body.encode()
        if ctype:
            h["Content-Type"] = ctype
        h.update(headers or {})
        return call(self.port, method, path, body=body, headers=h)

    def ok(self, method, path, body=None, expect=200, ctype=None):
        """The JSON answer of a request that must return `expect`."""
        r = self.req(method, path, body, ctype=ctype)
        if r.status != expect:
            raise TestFailure(f"{self.name}: {method} {path} {json.dumps(body) if body is not None and not isinstance(body, (bytes, str)) else ''}"
                              f" -> expected HTTP {expect}, got {r}")
        return r.json if r.json is not None else r

    def err(self, method, path, body=None, expect=400, ctype=None):
        """The error object of a request that must fail with `expect`."""
        r = self.req(method, path, body, ctype=ctype)
        if r.status != expect:
            raise TestFailure(f"{self.name}: {method} {path} {body!r} -> expected HTTP {expect}, got {r}")
        check(isinstance(r.json, dict) and isinstance(r.json.get("error"), dict), f"error body of {method} {path}: {r}")
        return r.json["error"]


def cookies(resp):
    """Set-Cookie headers as {name: (value, [attributes])}."""
    out = {}
    for k, v in getattr(resp, "header_list", []):
        if k != "set-cookie":
            continue
        parts = [p.strip() for p in v.split(";")]
        name, _, value = parts[0].partition("=")
        out[name] = (value, parts[1:])
    return out


def login(port, email, password, name=None, project=None):
    """Logs in; returns (Client with the session and CSRF token, login response)."""
    r = call(port, "POST", "/api/v1/auth/login", body=json.dumps({"email": email, "password": password}).encode(),
             headers={"Content-Type": "application/json"})
    if r.status != 200:
        raise TestFailure(f"login {email}: {r}")
    c = cookies(r)
    check(SESSION_COOKIE in c, f"login {email}: no {SESSION_COOKIE} cookie in {r.header_list}")
    return Client(port, name or email, session=c[SESSION_COOKIE][0], csrf=r.json["csrf_token"], project=project), r


def create_project(binary, data_dir, name, tz="Asia/Shanghai"):
    p = subprocess.run([binary, "admin", "--data", data_dir, "create-project", name, "--tz", tz, "--format", "json"],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise TestFailure(f"create-project {name}: {(p.stdout + p.stderr).decode(errors='replace')}")
    return json.loads(p.stdout)


class Receiver:
    """A loopback HTTP server that records every POST (path, headers, raw body) and answers
    `status` with `reply` (both changeable)."""

    def __init__(self):
        self.requests = []
        self.status = 200
        self.reply = b'{"ok":true}'
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body})
                    status, reply = outer.status, outer.reply
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def webhook_signature(secret, raw_body):
    return "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
