"""Measured single-precision matmul peak: NumPy float32 ``n x n @ n x n``, best of N.

Run as ``python -m umr.bench.peak --n 2048 --repeats 7 --threads 2``; prints one JSON
line. :func:`measure_peak_subprocess` starts it with ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` removed from the child's environment: this machine sets them to
work around old OpenBLAS bugs, and with them a current NumPy picks a slower kernel.
Only this child sees the change; the kernel that actually ran is recorded
(threadpoolctl) so a reader can tell which one the peak belongs to.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

_BLAS_ENV_DROPPED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def measure_peak(n: int, repeats: int, threads: int) -> dict[str, Any]:
    """Best-of-``repeats`` GFLOP/s of an ``n``-cube float32 matmul in this process."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=out)  # warm-up: page in buffers, spin up threads
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
        info = threadpool_info()
    flops = 2.0 * n**3
    return {
        "n": n,
        "repeats": repeats,
        "threads": threads,
        "best_s": min(times),
        "gflops": flops / min(times) / 1e9,
        "median_gflops": flops / sorted(times)[len(times) // 2] / 1e9,
        "blas": [
            {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for d in info
            if d.get("user_api") == "blas"
        ],
        "env_dropped": list(_BLAS_ENV_DROPPED),
    }


def measure_peak_subprocess(n: int, repeats: int, threads: int) -> dict[str, Any]:
    """Run :func:`measure_peak` in a fresh interpreter with the OpenBLAS overrides removed."""
    env = {k: v for k, v in os.environ.items() if k not in _BLAS_ENV_DROPPED}
    cmd = [sys.executable, "-m", "umr.bench.peak", "--n", str(n), "--repeats", str(repeats)]
    cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"matmul peak subprocess failed ({proc.returncode}): {proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print one JSON line with the measured peak."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    print(json.dumps(measure_peak(a.n, a.repeats, a.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
