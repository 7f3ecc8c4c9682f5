import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from umr.bench.report import HEADLINE_KEYS
from umr.bench.report_md import END, START
from umr.bench.text_cli import configure_parser, resolve_config
from umr.bench.texts import short_queries, spread


def _parser():
    p = argparse.ArgumentParser()
    configure_parser(p)
    return p


def test_help_explains_what_is_measured():
    text = _parser().format_help()
    for word in ("throughput", "latency", "GFLOP/s", "Recall@10", "hnswlib", "peak RSS"):
        assert word in text, word


def test_quick_defaults_and_explicit_overrides():
    cfg = resolve_config(_parser().parse_args(["--bundle", "b", "--quick", "--docs", "7"]))
    assert cfg["docs"] == 7 and cfg["rounds"] == 1 and cfg["quick"] is True
    full = resolve_config(_parser().parse_args(["--bundle", "b"]))
    assert full["index_size"] == 100000 and full["rounds"] == 3 and full["threads"] == 2
    with pytest.raises(SystemExit, match="--index-size must be positive"):
        resolve_config(_parser().parse_args(["--bundle", "b", "--index-size", "0"]))


def test_spread_is_fixed_and_even():
    items = [str(i) for i in range(10)]
    assert spread(items, 5) == ["0", "2", "4", "6", "8"]
    assert spread(items, 50) == items


class _WordTokenizer:
    class _Enc:
        def __init__(self, n):
            self.ids = list(range(n))

    def encode(self, text):
        return self._Enc(len(text.split()) + 2)


def test_short_queries_respect_the_token_cap():
    long = " ".join(["w"] * 30)
    out = short_queries(_WordTokenizer(), ["short one", long], ["Doc first. More", long], 10)
    assert out == ["short one", "Doc first"]


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path, real_bundle):
    bundle = str(real_bundle)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\n{END}\n")
    cmd = [sys.executable, "-m", "umr.bench.text_cli", "--bundle", bundle, "--quick"]
    cmd += ["--out", str(tmp_path / "out"), "--update-readme", str(readme)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    head = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(HEADLINE_KEYS) <= set(head)
    out = Path(tmp_path / "out")
    report = json.loads((out / "bench_text.json").read_text())
    assert set(report["engines"]) == {"st", "fp32", "int8"}
    assert not report["engines"]["fp32"]["torch_loaded"]
    assert report["engines"]["st"]["torch_loaded"]
    assert (out / "bench_text.png").stat().st_size > 1000
    assert "| umr int8 |" in (out / "bench_text.md").read_text()
    assert "| umr fp32 |" in readme.read_text()
