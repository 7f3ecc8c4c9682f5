"""The pooling benchmark on tiny graphs: both sides agree, rows and reports are complete."""

from __future__ import annotations

import json

import numpy as np
import pytest
from umr.bench import pooling_bench as pb
from umr.kernels.reference import pool

from umr.errors import InputValueError

TINY = pb.PoolingBenchConfig(
    shapes=((2, 5), (1, 1)), rounds=2, warmup=1, model="synthetic", hidden=16, layers=1
)


def test_fastembed_pool_matches_the_reference():
    rng = np.random.default_rng(0)
    states = rng.standard_normal((3, 6, 8)).astype(np.float32)
    attn = np.array([[1] * 6, [1, 1, 0, 0, 0, 0], [0] * 6], np.int64)
    got = pb.fastembed_mean_pool(states, attn)
    np.testing.assert_allclose(got, pool(states, attn, attn, "mean"), rtol=1e-5, atol=1e-6)


def test_run_writes_json_and_markdown(tmp_path):
    result = pb.run_pooling_bench(TINY)
    rows = result["rows"]
    assert [(r["model"], r["batch"], r["seq"]) for r in rows] == [
        ("synthetic", 2, 5),
        ("synthetic", 1, 1),
        ("identity", 2, 5),
        ("identity", 1, 1),
    ]
    for r in rows:
        assert r["fused_out_bytes"] == r["batch"] * 16 * 4  # [batch, hidden] fp32
        assert r["unfused_out_bytes"] == r["batch"] * r["seq"] * 16 * 4
        assert r["bytes_ratio"] == r["seq"]
        assert r["max_abs_diff"] < 1e-5  # same weights, only where the pooling runs differs
        assert r["fused_ms"] > 0 and r["unfused_ms"] > 0
    js, md = pb.write_outputs(result, tmp_path / "out")
    assert json.loads(js.read_text())["rows"] == rows
    text = md.read_text()
    assert "| synthetic | 2x5 |" in text and "Load average" in text


def test_main_prints_one_json_line(tmp_path, capsys):
    argv = ["--model", "synthetic", "--shapes", "1x3", "--rounds", "1", "--warmup", "0"]
    argv += ["--hidden", "8", "--layers", "1", "--no-pooling-only", "--out", str(tmp_path)]
    assert pb.main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert [r["model"] for r in json.loads(line)["rows"]] == ["synthetic"]
    assert (tmp_path / "pooling.json").is_file() and (tmp_path / "pooling.md").is_file()


def test_parse_shapes():
    assert pb.parse_shapes("32x128, 8X256") == ((32, 128), (8, 256))
    for bad in ("32", "0x4", "ax3", "4x"):
        with pytest.raises(InputValueError, match="BATCHxSEQ"):
            pb.parse_shapes(bad)


def test_unknown_model_is_named():
    with pytest.raises(InputValueError, match="'nope'"):
        pb.model_pair("nope", TINY)
