"""`import umr.runtime` + load + embed must not pull torch, transformers, optimum or onnx.

Runs in a fresh interpreter, since this test process itself imports onnx to build fixtures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "optimum", "onnx", "sentence_transformers")

_SCRIPT = f"""
import importlib, json, sys, time
for name in sys.argv[3:]:
    importlib.import_module(name)
t0 = time.perf_counter()
import umr.runtime
t1 = time.perf_counter()
emb = umr.runtime.Embedder.load(sys.argv[1], variant=sys.argv[2])
t2 = time.perf_counter()
vecs = emb.embed_text(["a short text", "the python list"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY)!r})
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "shape": list(vecs.shape),
                  "heavy": heavy}}))
"""


def run_fresh(bundle: Path, variant: str = "fp32", *preimport: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(bundle), variant, *preimport],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_runtime_imports_nothing_heavy(tiny_bundle) -> None:
    got = run_fresh(tiny_bundle.path)
    assert got["shape"] == [2, 8]
    assert got["heavy"] == []


def test_the_check_itself_sees_heavy_modules(tiny_bundle) -> None:
    # Guards the test above against passing vacuously (e.g. a broken module filter).
    got = run_fresh(tiny_bundle.path, "fp32", "onnx")
    assert "onnx" in got["heavy"]
    assert not any(m.startswith("onnxruntime") for m in got["heavy"])


@pytest.mark.slow
@pytest.mark.bundle
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_real_bundle_import_and_load_time(real_bundle, variant) -> None:
    got = run_fresh(real_bundle, variant)
    assert got["heavy"] == []
    assert got["shape"][0] == 2
    # Reported, not asserted: speed is the benchmarks' job.
    print(f"{variant}: import {got['import_s'] * 1e3:.0f} ms, load {got['load_s'] * 1e3:.0f} ms")
