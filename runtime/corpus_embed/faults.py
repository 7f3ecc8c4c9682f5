"""Test hook: make chosen batches fail, so tests can exercise retries in both engines.

Set :data:`FAULT_ENV` to comma-separated entries, each naming an id as written in the
output's ``id`` column::

    doc-7            the batch holding doc-7 fails its first attempt (in each process)
    doc-7:2          ... its first 2 attempts
    doc-7:always     ... every attempt, so the run fails
    doc-7:exit:PATH  the process running it exits abruptly once (PATH marks that it did):
                     a crashed Ray actor, to be restarted by Ray (never use it locally)

The driver reads the variable (:func:`faults_from_env`) and passes the faults to the
batch function in its config, so they reach Ray actors however their environment is set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

FAULT_ENV = "UMR_EMBED_CORPUS_FAULT"
ALWAYS = -1


class InjectedFault(RuntimeError):
    """Raised by the :data:`FAULT_ENV` test hook."""


@dataclass(frozen=True)
class Fault:
    """Fail batches holding ``id``: ``times`` attempts (ALWAYS: all), or exit once."""

    id: str
    times: int = 1
    exit_marker: str | None = None


def faults_from_env(environ: Mapping[str, str] = os.environ) -> tuple[Fault, ...]:
    """Parse :data:`FAULT_ENV`; empty when unset."""
    faults = []
    for entry in filter(None, (e.strip() for e in environ.get(FAULT_ENV, "").split(","))):
        item_id, _, rest = entry.partition(":")
        if rest.startswith("exit:"):
            faults.append(Fault(item_id, 1, rest.removeprefix("exit:")))
        elif rest == "always":
            faults.append(Fault(item_id, ALWAYS))
        else:
            faults.append(Fault(item_id, int(rest or 1)))
    return tuple(faults)


class FaultInjector:
    """Per-process state of the faults: how many failures each id has left."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self._faults = {f.id: f for f in faults}
        self._left = {f.id: f.times for f in faults}

    def __bool__(self) -> bool:
        return bool(self._faults)

    def check(self, ids: Sequence[str]) -> None:
        """Fail (or exit) if a fault applies to a batch holding ``ids``."""
        for item_id in ids:
            fault = self._faults.get(item_id)
            if fault is None:
                continue
            if fault.exit_marker is not None:
                self._exit_once(Path(fault.exit_marker))
                continue
            left = self._left[item_id]
            if left:
                self._left[item_id] = left if left == ALWAYS else left - 1
                raise InjectedFault(f"injected failure for id {item_id!r} ({FAULT_ENV})")

    @staticmethod
    def _exit_once(marker: Path) -> None:
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return  # already crashed once: the restarted worker goes on
        os._exit(17)  # an abrupt death, as a native crash or the OOM killer would cause
