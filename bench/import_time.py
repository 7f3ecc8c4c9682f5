"""Cold-start cost: ``import umr.runtime`` + ``Embedder.load`` timed in a fresh interpreter.

Each sample is a new process, so module caches are cold (the OS file cache is not,
which is also what a restarted service sees). The child also reports whether
torch got imported, which must never happen in a umr process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from umr.bench.stats import median

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import umr.runtime
t1 = time.perf_counter()
bundle, variant, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
umr.runtime.Embedder.load(bundle, variant=variant, provider="cpu", threads=threads)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0,
                  "torch_imported": "torch" in sys.modules}))
"""


def measure_cold_start(bundle: str, variant: str, threads: int, repeats: int) -> dict[str, Any]:
    """Median import / load / total seconds over ``repeats`` fresh processes."""
    samples = []
    for _ in range(repeats):
        cmd = [sys.executable, "-c", _CHILD, bundle, variant, str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start child failed for {variant}: {proc.stderr[-2000:]}")
        samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "variant": variant,
        "repeats": repeats,
        **{key: median([s[key] for s in samples]) for key in ("import_s", "load_s", "total_s")},
        "torch_imported": any(s["torch_imported"] for s in samples),
    }
