"""Helpers shared by the integration tests: a `northstar serve` process on a free port, the
test runner, and the checks (from nsclient, the HTTP client). Standard library only."""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from nsclient import TestFailure, check, check_eq, close_connections, request  # noqa: F401 - re-exported


# --------------------------------------------------------------------------- server


class Server:
    """One `northstar serve` process. stdout's first line gives the port; the rest is drained."""

    def __init__(self, binary, data_dir, log_path, extra_args=()):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self._log = None

    def start(self, timeout=60):
        self._log = open(self.log_path, "ab")
        cmd = [self.binary, "serve", "--data", self.data_dir, "--host", "127.0.0.1", "--port", "0", "--no-demo"]
        self.proc = subprocess.Popen(cmd + self.extra_args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log)
        lines = queue.Queue()

        def drain(stream):
            for line in iter(stream.readline, b""):
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, args=(self.proc.stdout,), daemon=True).start()
        try:
            first = lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise TestFailure(f"server printed nothing within {timeout}s\n{self.log_tail()}")
        if first is None:
            rc = self.proc.wait()
            raise TestFailure(f"server exited with code {rc} before listening\n{self.log_tail()}")
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)\s*$", first.decode(errors="replace"))
        if not m:
            self.kill()
            raise TestFailure(f"unexpected first stdout line {first!r}")
        self.port = int(m.group(1))
        deadline = time.time() + timeout
        while True:
            try:
                r = request(self.port, "GET", "/healthz", timeout=5, fresh=True)
                if r.status == 200:
                    return self
            except OSError:
                pass
            if time.time() > deadline:
                raise TestFailure("server did not answer /healthz")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the exit code (SIGKILL after timeout). This thread's kept-alive
        connections to it are closed first (the server waits for open connections)."""
        if self.proc is None:
            return None
        if self.port is not None:
            close_connections(self.port)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure(f"server did not exit within {timeout}s of SIGTERM (killed)")
        return self._finish()

    def sigkill(self):
        """The crash: SIGKILL, no chance to flush."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return self._finish()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self._finish()

    def _finish(self):
        if self.port is not None:
            close_connections(self.port)  # a killed server's connections are dead
        rc = self.proc.returncode if self.proc else None
        if self.proc is not None and self.proc.stdout:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        if self._log:
            self._log.close()
            self._log = None
        return rc

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "--- server log (last lines) ---\n" + "\n".join(lines[-n:])
        except OSError:
            return ""


def run_one(fn):
    """Runs one test function and prints PASS or FAIL (with the failure or the traceback) and
    its time; True if it passed. The scripts call it for every test and go on after a failure."""
    t = time.time()
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report every failure and continue
        detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
        print(f"FAIL {fn.__name__}: {detail}", flush=True)
        return False
    print(f"PASS {fn.__name__} ({time.time() - t:.2f}s)", flush=True)
    return True


def binary_from_argv():
    """The northstar binary named by argv[1], or None after printing why it is unusable."""
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} /path/to/northstar", file=sys.stderr)
        return None
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        print(f"FAIL: {binary} is not an executable", file=sys.stderr)
        return None
    return binary


def run_check(binary, data_dir, where):
    """Runs `northstar check`; fails unless it exits 0 without PROBLEM lines. Returns its last line."""
    p = subprocess.run([binary, "check", "--data", data_dir], capture_output=True, timeout=120)
    out = (p.stdout + p.stderr).decode(errors="replace")
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM")]
    check(p.returncode == 0 and not problems, f"northstar check {where}: exit {p.returncode}\n{out[-3000:]}")
    return out.strip().splitlines()[-1] if out.strip() else ""


def run_server_suite(state, prefix, setup, tests):
    """main() of a suite on one server: `setup(binary, tmp)` starts it (and puts it in
    state["server"]), then every test of `tests` runs, each after a failure of another too. The
    temporary directory is removed if all passed and kept (and named) otherwise."""
    binary = binary_from_argv()
    if not binary:
        return 2
    tmp = tempfile.mkdtemp(prefix=prefix)
    ok = True
    t0 = time.time()
    try:
        setup(binary, tmp)
        for t in tests:
            ok &= run_one(t)
    finally:
        if "server" in state:
            state["server"].stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    print(f"total time {time.time() - t0:.1f}s")
    return 0 if ok else 1
