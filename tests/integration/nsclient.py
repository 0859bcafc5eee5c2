"""The one HTTP client of the integration tests: a request to a server on 127.0.0.1 with a
body (bytes, str, or any other value sent as JSON), auth by key (Authorization: Bearer) or
login session (cookie ns_session + X-CSRF-Token), on a kept-alive connection per thread and
port (reconnected once if the server closed it), answering a Response. Also the failure type
and the checks the tests assert with. Standard library only.

Raw sockets stay only where a test speaks malformed or slow HTTP on purpose."""

import http.client
import json
import threading

SESSION_COOKIE = "ns_session"


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(actual, expected, what):
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


# --------------------------------------------------------------------------- requests


class Response:
    """status, headers (lower-cased names; a repeated header keeps its last value),
    header_list (every (name, value), Set-Cookie may repeat), body (bytes), json()."""

    def __init__(self, status, header_list, body):
        self.status = status
        self.header_list = [(k.lower(), v) for k, v in header_list]
        self.headers = dict(self.header_list)
        self.body = body
        self._json = ...

    def json(self):
        """The body parsed as JSON; None when it is empty or not JSON."""
        if self._json is ...:
            try:
                self._json = json.loads(self.body) if self.body else None
            except ValueError:
                self._json = None
        return self._json

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:600]!r}"


_local = threading.local()


def _pool():
    return _local.__dict__.setdefault("pool", {})


def close_connections(port=None):
    """Closes this thread's kept-alive connections (to `port`, or all): a stopping server waits
    for open connections. Server.stop/kill/sigkill call it for their port."""
    pool = _pool()
    for p in [p for p in pool if port is None or p == port]:
        pool.pop(p).close()


def encode_body(body, headers):
    """bytes as they are, str as UTF-8, None as no body, anything else as JSON (with
    Content-Type: application/json unless headers name one)."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return body
    if isinstance(body, str):
        return body.encode()
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(body).encode()


def request(port, method, path, body=None, headers=None, key=None, ctype=None, timeout=60, fresh=False):
    """One request to 127.0.0.1:port. key: sent as Authorization: Bearer; ctype: the
    Content-Type; headers: added last (they win). fresh: a new connection, closed after
    (probes that must not ride on an already accepted connection)."""
    h = {}
    if key:
        h["Authorization"] = "Bearer " + key
    if ctype:
        h["Content-Type"] = ctype
    h.update(headers or {})
    data = encode_body(body, h)
    pool = _pool()
    for attempt in (0, 1):
        conn = None if fresh else pool.pop(port, None)
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        send_error = None
        try:
            try:
                conn.request(method, path, body=data, headers=h)
            except (BrokenPipeError, ConnectionResetError) as e:
                # The server may answer (e.g. 413) and close before reading a large body.
                send_error = e
            r = conn.getresponse()
            payload = r.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            if reused and attempt == 0 and isinstance(e, ConnectionError):
                continue  # the server closed the kept-alive connection: reconnect once
            if send_error:
                raise TestFailure(f"{method} {path}: connection failed while sending ({send_error!r}) "
                                  f"and no response ({e!r})") from e
            raise
        if fresh or r.will_close:
            conn.close()
        else:
            pool[port] = conn
        return Response(r.status, r.getheaders(), payload)


class Client:
    """Calls the API as one principal: a key (Authorization: Bearer), or a login session
    (cookie; X-CSRF-Token on requests other than GET/HEAD unless csrf is None), optionally
    choosing the project with X-Northstar-Project."""

    def __init__(self, port, name="", key=None, session=None, csrf=None, project=None, auth_header=None):
        self.port, self.name, self.key, self.session, self.csrf, self.project = port, name, key, session, csrf, project
        self.auth_header = auth_header  # a raw Authorization header value (malformed keys)

    def req(self, method, path, body=None, ctype=None, headers=None, timeout=60):
        h = {}
        if self.auth_header:
            h["Authorization"] = self.auth_header
        if self.session:
            h["Cookie"] = f"{SESSION_COOKIE}={self.session}"
        if self.csrf is not None and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        if self.project:
            h["X-Northstar-Project"] = self.project
        h.update(headers or {})
        return request(self.port, method, path, body, h, key=None if self.auth_header else self.key, ctype=ctype,
                       timeout=timeout)

    def ok(self, method, path, body=None, expect=200, ctype=None):
        """The JSON answer of a request that must return `expect` (the Response if not JSON)."""
        r = self.req(method, path, body, ctype=ctype)
        if r.status != expect:
            raise TestFailure(f"{self.name}: {method} {path} {json.dumps(body) if body is not None and not isinstance(body, (bytes, str)) else ''}"
                              f" -> expected HTTP {expect}, got {r}")
        out = r.json()
        return out if out is not None else r

    def err(self, method, path, body=None, expect=400, ctype=None):
        """The error object of a request that must fail with `expect`."""
        r = self.req(method, path, body, ctype=ctype)
        if r.status != expect:
            raise TestFailure(f"{self.name}: {method} {path} {body!r} -> expected HTTP {expect}, got {r}")
        out = r.json()
        check(isinstance(out, dict) and isinstance(out.get("error"), dict), f"error body of {method} {path}: {r}")
        return out["error"]


def cookies(resp):
    """Set-Cookie headers as {name: (value, [attributes])}."""
    out = {}
    for k, v in resp.header_list:
        if k != "set-cookie":
            continue
        parts = [p.strip() for p in v.split(";")]
        name, _, value = parts[0].partition("=")
        out[name] = (value, parts[1:])
    return out


def login(port, email, password, name=None, project=None):
    """Logs in; returns (Client with the session and CSRF token, login response)."""
    r = request(port, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    if r.status != 200:
        raise TestFailure(f"login {email}: {r}")
    c = cookies(r)
    check(SESSION_COOKIE in c, f"login {email}: no {SESSION_COOKIE} cookie in {r.header_list}")
    return Client(port, name or email, session=c[SESSION_COOKIE][0], csrf=r.json()["csrf_token"], project=project), r
