"""Driver side of the worker protocol: start a worker, send commands, read replies."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


class WorkerError(RuntimeError):
    """A measurement worker died or answered with an error."""


class WorkerProcess:
    """One ``python -m umr.bench.worker engine ...`` child speaking JSON lines."""

    def __init__(self, engine: str, args: list[str]):
        self.engine = engine
        cmd = [sys.executable, "-m", "umr.bench.worker", "engine", "--engine", engine, *args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise WorkerError(f"worker {self.engine!r} exited with code {code} (see stderr)")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"worker {self.engine!r}: {reply['error']}")
        return reply

    def request(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        """Send one command and wait for its reply."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> dict[str, Any]:
        """Ask the worker to quit; returns its final report (peak RSS)."""
        reply = self.request("quit")
        self.proc.wait(timeout=60)
        return reply

    def kill(self) -> None:
        """Stop the worker if it is still running (used on errors)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
