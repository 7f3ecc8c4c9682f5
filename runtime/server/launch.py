"""Opening the bundle and index named on the command line, and running uvicorn.

Kept apart from the CLI module so the benchmark (and tests) can start the same server
in a thread: :func:`build_app` + :class:`ThreadedServer`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umr.errors import ServerError

from .config import ServerConfig

log = logging.getLogger("umr.server")


@dataclass(frozen=True)
class Sources:
    """Where the model and the index come from."""

    bundle: str
    index: str
    variant: str = "fp32"
    threads: int | None = None
    backend: str | None = None  # None: guessed from the location
    collection: str | None = None  # Milvus only


def open_or_create_index(sources: Sources, dim: int) -> Any:
    """Open the index at ``sources.index``; a missing local directory starts empty."""
    from umr.runtime.index import create_index, open_index
    from umr.runtime.index.backends import is_milvus_location

    location = sources.index
    options: dict[str, Any] = {}
    if sources.collection is not None:
        options["collection"] = sources.collection
    if not is_milvus_location(location) and not Path(location).exists():
        # First write saves it; until then nothing is on disk.
        log.warning("index %s does not exist; starting an empty one there", location)
        return create_index(sources.backend or "hnswlib", dim)
    return open_index(location, backend=sources.backend, **options)


def build_app(sources: Sources, config: ServerConfig) -> Any:
    """Load the bundle (checksums verified) and the index, and return the app."""
    from umr.runtime import Embedder

    from .app import create_app
    from .tokens import BundleTokenCounter

    embedder = Embedder.load(sources.bundle, variant=sources.variant, threads=sources.threads)
    if hasattr(embedder, "max_image_pixels"):  # the server's limit is checked first anyway
        embedder.max_image_pixels = config.limits.max_image_pixels
    index = open_or_create_index(sources, embedder.dim)
    counter = BundleTokenCounter.for_bundle(sources.bundle, embedder.manifest)
    return create_app(embedder, index, location=sources.index, config=config, token_counter=counter)


def uvicorn_config(app: Any, config: ServerConfig, log_level: str = "warning") -> Any:
    """Uvicorn settings: no access log of its own (ours carries no contents)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


#: How often (s) the interpreter hands the GIL to a waiting thread; Python's default is
#: 5 ms. A model call ends in a batch thread that must win the GIL back from the event
#: loop before its requests can be answered, and so does every hand-over between the
#: loop, the batcher and the batch threads: at 5 ms each can wait that long. With 16
#: wrk clients sending short queries on 2 cores, 0.5 ms gave 280-296 req/s against
#: 227-238 at 5 ms (three runs each; 0.2 ms and 0.1 ms were no better).
GIL_SWITCH_INTERVAL_S = 0.0005


def serve_forever(app: Any, config: ServerConfig, log_level: str = "warning") -> None:
    """Run until interrupted (SIGINT/SIGTERM shut down gracefully).

    Sets the process's GIL switch interval to :data:`GIL_SWITCH_INTERVAL_S` (this is
    the ``umr serve`` process; :class:`ThreadedServer` leaves its host's setting alone).
    """
    import uvicorn

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    uvicorn.Server(uvicorn_config(app, config, log_level)).run()


class ThreadedServer:
    """Uvicorn in a background thread, for benchmarks and tests.

    >>> with ThreadedServer(app, ServerConfig(port=0)) as server:
    ...     httpx.get(server.url + "/healthz")
    """

    def __init__(self, app: Any, config: ServerConfig, start_timeout: float = 30.0) -> None:
        import uvicorn

        self._server = uvicorn.Server(uvicorn_config(app, config))
        self._thread = threading.Thread(target=self._server.run, name="umr-uvicorn", daemon=True)
        self._timeout = start_timeout
        self.url = ""

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServerError("the server did not start (port in use?)")
            time.sleep(0.01)
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def token_from_env(explicit: str | None) -> str | None:
    """``--token`` if given, else ``$UMR_TOKEN`` (unset or empty: no token)."""
    if explicit is not None:
        return explicit
    return os.environ.get("UMR_TOKEN") or None
