"""Running ``umr serve`` in a child process on loopback for the benchmark.

A child process keeps the server's event loop and the load generator's threads from
sharing one GIL, as in production; both still share the machine's cores.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from umr.errors import ServerError


def http_stack() -> dict[str, str]:
    """The HTTP parser and event loop uvicorn picks here (``"auto"``: the C ones if installed)."""
    from importlib.util import find_spec

    return {
        "http": "httptools" if find_spec("httptools") else "h11",
        "loop": "uvloop" if find_spec("uvloop") else "asyncio",
    }


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``umr serve --bundle B --index I`` on 127.0.0.1, stopped on exit.

    ``extra`` holds further CLI options (``--no-batching``, ``--threads 2``, ...).
    """

    def __init__(
        self, bundle: Path, index: Path, extra: list[str], start_timeout_s: float = 120.0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cmd = [
            sys.executable,
            "-m",
            "umr.runtime.cli.main",
            "serve",
            "--bundle",
            str(bundle),
            "--index",
            str(index),
            "--port",
            str(self.port),
            *extra,
        ]
        self._timeout = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self._proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServerError(f"umr serve exited with code {self._proc.returncode}")
            try:
                self.get("/healthz")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.__exit__()
        raise ServerError(f"umr serve did not answer /healthz within {self._timeout:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def cpu_seconds(self) -> dict[str, float] | None:
        """CPU time (user + system) the server has used so far: its main thread, which
        runs the event loop, and all the other threads (batcher, model workers, pools).
        ``None`` where ``/proc`` is missing (not Linux)."""
        if self._proc is None:
            return None
        pid = self._proc.pid
        total = _proc_cpu_s(f"/proc/{pid}/stat")  # the process's, exited threads included
        loop = _proc_cpu_s(f"/proc/{pid}/task/{pid}/stat")
        if total is None or loop is None:
            return None
        return {"event_loop": loop, "other_threads": total - loop}

    def get(self, path: str) -> bytes:
        """GET ``path`` from the server."""
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return response.read()

    def post_json(self, path: str, body: object) -> dict:
        """POST a JSON body; the parsed JSON answer."""
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())


def batch_stats(metrics_text: str) -> dict[str, float]:
    """Totals from a /metrics scrape: model calls, inputs and request parts embedded."""

    def total(name: str) -> float:
        pattern = rf"^{name}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$"
        return sum(float(m) for m in re.findall(pattern, metrics_text, flags=re.MULTILINE))

    return {
        "calls": total("umr_batch_items_count"),
        "items": total("umr_batch_items_sum"),
        "requests": total("umr_batch_requests_sum"),
    }


def _proc_cpu_s(stat_path: str) -> float | None:
    """utime + stime of a ``/proc/.../stat`` file, in seconds."""
    try:
        with open(stat_path, encoding="utf-8", errors="replace") as fh:  # names may be any bytes
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
