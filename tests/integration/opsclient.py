"""Helpers for the operations API tests (ops_auth_test.py, ops_api_test.py): project creation
with the CLI, and a loopback HTTP receiver for notification channels (the client is nsclient).
Standard library only."""

import hashlib
import hmac
import http.server
import json
import subprocess
import threading

from nsclient import TestFailure


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
