"""`umr bench image|fused`: options, inputs (emoji or synthetic), the worker's measurements
on a fake engine, the report's ratios and verdicts, and (slow, with a real multimodal
bundle) the whole run."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from umr.bench.mm_cli import configure_parser, resolve_config
from umr.bench.mm_data import FUSED_TASK, MMData, bench_data, emoji_data, synthetic_data
from umr.bench.mm_report import assemble, evaluate_targets, headline, markdown, write
from umr.bench.mm_worker import MultimodalServer


def parse(kind: str, *argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    configure_parser(p, kind)
    return p.parse_args(["--bundle", "b", *argv])


def test_help_names_engines_measurements_and_targets() -> None:
    p = argparse.ArgumentParser()
    configure_parser(p, "fused")
    text = p.format_help()
    for word in ("load_checkpoint", "eval mode, fp32", "p50/p95/p99", "end to end", "<= 10 ms"):
        assert word in text, word


def test_defaults_quick_and_bad_values() -> None:
    full = resolve_config(parse("fused"))
    assert (full["items"], full["rounds"], full["variants"]) == (128, 3, ["fp32", "int8"])
    assert full["kind"] == "fused" and full["e2e_reps"] == 300
    quick = resolve_config(parse("image", "--quick", "--items", "9", "--variants", "fp32,int8"))
    assert quick["items"] == 9 and quick["rounds"] == 1 and quick["variants"] == ["fp32", "int8"]
    assert "e2e_reps" not in quick
    with pytest.raises(SystemExit, match="--rounds must be positive"):
        resolve_config(parse("image", "--rounds", "0"))
    with pytest.raises(SystemExit, match="--variants"):
        resolve_config(parse("image", "--variants", "fp16"))


def fake_emoji(root: Path) -> Path:
    """A tiny emoji-like split: 6 images, 4 fused queries."""
    from PIL import Image

    (root / "images" / "s").mkdir(parents=True)
    for i in range(6):
        Image.new("RGBA", (8, 8), (i * 40, 0, 0, 255)).save(root / "images" / "s" / f"{i}.png")
    rows = []
    for i in range(4):
        query = {"text": f"change {i}", "image": f"images/s/{i}.png", "instruction": "Do it."}
        rows.append(
            {"task": FUSED_TASK, "query": query, "positive": {"image": f"images/s/{i + 2}.png"}}
        )
    rows.append({"task": "qt->ct", "query": {"text": "x"}, "positive": {"text": "y"}})
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_emoji_inputs(tmp_path: Path) -> None:
    data = emoji_data(fake_emoji(tmp_path / "emoji"), n_items=3, n_candidates=5)
    assert data.source == "emoji" and data.instruction == "Do it."
    assert len(data.images) == 3 and all(Path(p).is_file() for p in data.images)
    assert len(data.pairs) == 3 and data.pairs[0][0] == "change 0"
    assert len(data.candidates) == 5  # every positive, then a spread of the rest
    for (text, _), pos in zip(data.pairs, data.positives, strict=True):
        n = int(text.split()[1])
        assert data.candidates[pos].endswith(f"images/s/{n + 2}.png")


def test_synthetic_inputs_when_the_data_set_is_missing(tmp_path: Path) -> None:
    data = bench_data(tmp_path / "nope", tmp_path / "work", n_items=4, n_candidates=6)
    assert data.source == "synthetic" and len(data.candidates) == 6 and len(data.pairs) == 4
    again = synthetic_data(tmp_path / "work2", 4, 6)
    first = Path(data.images[0]).read_bytes()
    assert first == Path(again.images[0]).read_bytes()  # deterministic
    data.save(tmp_path / "d.json")
    assert MMData.load(tmp_path / "d.json") == data


class FakeEngine:
    """Vectors from path and text hashes: an image's vector is its pair with ''."""

    name = "fake"
    implementation = "fake"

    def _vec(self, *key: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(16)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def image(self, paths, batch_size):  # type: ignore[no-untyped-def]
        return np.stack([self._vec("", p) for p in paths])

    def fused(self, texts, paths, instruction, batch_size):  # type: ignore[no-untyped-def]
        # A perfect model: each query lands on its target image.
        return np.stack([self._vec("", p.replace(f"/{p[-5]}.png", f"/{int(p[-5]) + 2}.png"))
                         for t, p in zip(texts, paths, strict=True)])  # fmt: skip


def test_worker_measures_and_searches(tmp_path: Path) -> None:
    data = emoji_data(fake_emoji(tmp_path / "emoji"), n_items=4, n_candidates=6)
    server = MultimodalServer(FakeEngine(), data, tmp_path)
    assert server.handle({"cmd": "warmup", "kind": "fused", "n": 2})["seconds"] >= 0
    t = server.handle({"cmd": "throughput", "kind": "image", "batch_size": 2, "save": "v"})
    assert (t["n"], t["dim"]) == (4, 16) and np.load(tmp_path / "v.npy").shape == (4, 16)
    assert len(server.handle({"cmd": "latency", "kind": "fused", "reps": 7})["samples_s"]) == 7
    assert server.handle({"cmd": "build_index", "threads": 1})["n"] == 6
    e2e = server.handle({"cmd": "e2e", "reps": 9})
    assert len(e2e["samples_s"]) == 9 and e2e["hit_rate"] == 1.0 and e2e["k"] == 10
    assert "error" in server.handle({"cmd": "nope"})


def raw_run(tmp_path: Path, kind: str, fp32_s: float) -> tuple[dict, dict, MMData]:
    data = emoji_data(fake_emoji(tmp_path / "emoji"), n_items=4, n_candidates=6)
    vec = np.eye(4, 8, dtype=np.float32)
    np.save(tmp_path / f"{kind}_torch.npy", vec)
    np.save(tmp_path / f"{kind}_fp32.npy", vec)

    def engine(seconds: float, ms: float) -> dict:
        ready = {"implementation": "x", "load_s": 1.0, "torch_loaded": False}
        rounds = [seconds, seconds, seconds / 2]  # one fast round
        return {"ready": ready, "throughput_s": rounds, "latency_s": [ms / 1e3] * 5}

    raw = {"torch": engine(2.0, 40.0), "fp32": engine(fp32_s, 5.0)}
    cfg = resolve_config(parse(kind))
    return {"engines": raw, "load_avg": {"before": [3, 2, 1], "after": [4, 3, 2]}}, cfg, data


class Manifest:
    name, dim, variants, modalities = "mm", 8, {"fp32": None}, ("text", "image", "text+image")


@pytest.mark.parametrize(("fp32_s", "met"), [(0.5, True), (1.5, False)])
def test_image_report_ratio_and_verdict(tmp_path: Path, fp32_s: float, met: bool) -> None:
    raw, cfg, data = raw_run(tmp_path, "image", fp32_s)
    report = assemble(raw, cfg, data, Manifest(), {"cpu": "c"}, tmp_path)
    fp32 = report["engines"]["fp32"]
    assert fp32["throughput"]["x_torch"] == pytest.approx(2.0 / fp32_s)
    assert fp32["throughput"]["x_torch_best_round"] == pytest.approx(1.0 / fp32_s)
    assert fp32["latency"]["p50_x_torch"] == pytest.approx(8.0)
    assert [t.met for t in evaluate_targets(report)] == [met]
    assert report["parity_to_torch"]["fp32"]["min"] == pytest.approx(1.0)
    assert headline(report)["targets_met"] == f"{int(met)}/1"


def test_fused_report_targets_markdown_and_files(tmp_path: Path) -> None:
    raw, cfg, data = raw_run(tmp_path, "fused", 0.5)
    raw["engines"]["fp32"]["e2e"] = {
        "samples_s": [0.006] * 98 + [0.030] * 2,
        "hit_rate": 0.5,
        "k": 10,
        "index": {"n": 6, "embed_s": 0.1, "total_s": 0.2},
    }
    machine = {"cpu": "c", "cpu_flags": [], "cores": 2, "threads": 2, "os": "linux",
               "python": "3", "packages": {}, "date_utc": "now"}  # fmt: skip
    report = assemble(raw, cfg, data, Manifest(), machine, tmp_path)
    verdicts = {t.name: t.met for t in evaluate_targets(report)}
    assert verdicts == {
        "fp32 batch-1 fused query p50 (ms)": True,  # 5 ms <= 10
        "fp32 end-to-end fused query p99 (ms)": False,  # two 30 ms outliers in 100: p99 > 20
    }
    md = markdown(report)
    assert "| umr fp32 |" in md and "**not met**" in md and "End to end" in md
    assert "Load average (1/5/15 min) 3.0/2.0/1.0 before the run" in md
    assert headline(report)["fp32_e2e_hit_rate"] == 0.5
    out = tmp_path / "out"
    write(report, out)
    assert json.loads((out / "bench_fused.json").read_text())["schema"] == "umr.bench.fused/1"
    assert (out / "bench_fused.png").stat().st_size > 1000
    assert (out / "bench_fused.md").read_text() == md


def test_bench_cli_lists_image_and_fused(capsys) -> None:  # type: ignore[no-untyped-def]
    from umr.runtime.cli.main import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert "image" in text and "fused" in text


def test_text_only_bundle_is_refused(tiny_bundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from umr.bench.mm_cli import main

    with pytest.raises(SystemExit, match="has no image graph"):
        main(["image", "--bundle", str(tiny_bundle.path), "--out", str(tmp_path)])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image", "fused"])
def test_quick_run_end_to_end(tmp_path: Path, kind: str) -> None:
    bundle = os.environ.get("UMR_TEST_MM_BUNDLE")
    if not bundle:
        pytest.skip("UMR_TEST_MM_BUNDLE is not set (a multimodal bundle of the default model)")
    cmd = [sys.executable, "-m", "umr.bench.mm_cli", kind, "--bundle", bundle, "--quick"]
    cmd += ["--items", "16", "--latency-reps", "5", "--out", str(tmp_path)]
    if kind == "fused":
        cmd += ["--e2e-reps", "10", "--index-size", "100"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    head = json.loads(proc.stdout.strip().splitlines()[-1])
    assert head["kind"] == kind and head["fp32_x_torch"] > 0
    report = json.loads((tmp_path / f"bench_{kind}.json").read_text())
    assert report["engines"]["torch"]["torch_loaded"]
    assert not report["engines"]["fp32"]["torch_loaded"]
    assert report["parity_to_torch"]["fp32"]["min"] > 0.99
