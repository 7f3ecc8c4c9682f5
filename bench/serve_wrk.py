"""Closed-loop HTTP load from wrk, a load generator written in C.

On a 2-core machine the load generator shares the cores with the server. The Python
clients of :mod:`umr.bench.serve_load` hold the GIL for every request they send and
parse, so they take a core's worth of CPU that the server then lacks: the benchmark
partly measures itself. wrk sends the same requests, over the same number of
keep-alive connections, each waiting for its answer, for a fraction of that CPU.

A request counts as an error unless it gets a 200 whose body starts like an
embeddings response, as with the Python clients. wrk reports latency percentiles
from its own histogram, not every sample, and it runs for a duration only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from umr.bench.serve_load import LoadResult

_MARK = "UMR_WRK "

# Bodies come one per line from the file named after `--`. Every thread is one Lua
# state: `bad` is a global so that done() can read each thread's count.
WRK_LUA = r"""
local bodies, n, i = {}, 0, 0
local path = "/"
function init(args)
  path = args[2]
  for line in io.lines(args[1]) do
    n = n + 1
    bodies[n] = line
  end
  bad = 0
end
function request()
  i = i % n + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[i])
end
function response(status, headers, body)
  if status ~= 200 or string.sub(body, 1, 16) ~= '{"object":"list"' then
    bad = bad + 1
  end
end
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'UMR_WRK {"requests": %d, "duration_us": %d, "bad": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, b, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
"""


def find_wrk() -> str | None:
    """The path of wrk, or ``None`` when it is not installed (Debian: ``apt install wrk``)."""
    return shutil.which("wrk")


def run_wrk(
    url: str,
    bodies: Sequence[bytes],
    *,
    clients: int,
    duration_s: float,
    path: str = "/v1/embeddings",
    timeout_s: float = 30.0,
    wrk: str = "wrk",
) -> LoadResult:
    """``clients`` connections sending ``bodies`` round-robin for ``duration_s`` seconds.

    Raises:
        ValueError: bad settings, or a body with a newline (the script reads lines).
        RuntimeError: wrk failed or printed no summary; the message has its stderr.
    """
    if clients < 1 or duration_s <= 0 or not bodies:
        raise ValueError("clients and duration_s must be positive; bodies non-empty")
    if any(b"\n" in b for b in bodies):
        raise ValueError("request bodies must be single lines (JSON from json.dumps is)")
    with tempfile.TemporaryDirectory(prefix="umr-wrk-") as tmp:
        script, lines = Path(tmp) / "load.lua", Path(tmp) / "bodies.txt"
        script.write_text(WRK_LUA, encoding="utf-8")
        lines.write_bytes(b"\n".join(bodies) + b"\n")
        cmd = [
            wrk,
            "-t1",  # one thread drives every connection: the least CPU taken from the server
            f"-c{clients}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={max(1, round(timeout_s))}s",
            "-s",
            str(script),
            url.rstrip("/") + path,
            "--",
            str(lines),
            path,
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration_s + timeout_s + 60, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return parse_wrk(done.stdout, done.stderr)


def parse_wrk(stdout: str, stderr: str = "") -> LoadResult:
    """The :class:`LoadResult` in the summary line our script prints at the end of a run."""
    line = next((x for x in stdout.splitlines() if x.startswith(_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary; stderr: {stderr.strip()[-500:]}")
    d = json.loads(line[len(_MARK) :])
    kinds = {k: d[k] for k in ("connect", "read", "write", "timeout") if d[k]}
    if d["bad"]:
        kinds["bad response"] = d["bad"]
    ok = d["requests"] - d["bad"]
    ms = {f"{k}_ms": d[f"{k}_us"] / 1e3 for k in ("p50", "p95", "p99", "mean")}
    return LoadResult(
        # Responses, and attempts a socket error ended; a timed-out one may still answer.
        requests=d["requests"] + d["connect"] + d["read"] + d["write"],
        errors=sum(kinds.values()),
        error_kinds=kinds,
        duration_s=d["duration_us"] / 1e6,
        latency={**ms, "n": ok} if ok > 0 else None,
    )
