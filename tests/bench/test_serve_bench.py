"""`umr bench serve`: the load generator, metrics parsing, report verdicts, CLI checks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from umr.bench import serve_cli, serve_wrk
from umr.bench.serve_bench import (
    ServeBenchConfig,
    concurrency_batch,
    run_benchmark,
    summarize,
    workload_texts,
)
from umr.bench.serve_load import LoadResult, run_load
from umr.bench.serve_report import assemble, headline, markdown, write
from umr.bench.serve_server import batch_stats, free_port


def bodies(*texts: str) -> list[bytes]:
    return [json.dumps({"input": t}).encode() for t in texts]


def test_load_is_bounded_by_request_count(tiny_server) -> None:
    r = run_load(tiny_server.url, bodies("a", "b"), clients=4, duration_s=30, max_requests=25)
    assert r.requests == 25 and r.errors == 0 and len(r.latencies_s) == 25


def test_load_is_bounded_by_time(tiny_server) -> None:
    r = run_load(tiny_server.url, bodies("a"), clients=2, duration_s=0.3, max_requests=10**9)
    assert r.requests > 0 and 0.3 <= r.duration_s < 5


def test_rejected_requests_count_as_errors(tiny_server) -> None:
    bad = [b'{"input": []}', *bodies("fine")]
    r = run_load(tiny_server.url, bad, clients=1, duration_s=30, max_requests=4)
    assert (r.requests, r.errors) == (4, 2) and r.error_kinds == {"HTTP 400": 2}


def test_unreachable_server_is_all_errors() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    r = run_load(url, bodies("a"), clients=2, duration_s=30, max_requests=6)
    assert r.requests == r.errors == 6 and not r.latencies_s


def test_batch_stats_sums_labelled_series() -> None:
    text = (
        'umr_batch_items_count{kind="text"} 4.0\n'
        'umr_batch_items_count{kind="image"} 1.0\n'
        'umr_batch_items_sum{kind="text"} 40.0\n'
        'umr_batch_requests_sum{kind="text"} 12.0\n'
        "umr_batch_items_created 1.7e9\n"
    )
    assert batch_stats(text) == {"calls": 5.0, "items": 40.0, "requests": 12.0}


def test_workload_texts_cycle_and_refuse_unknown() -> None:
    texts = workload_texts("queries", 200)
    assert len(texts) == 200 and texts[0] == texts[len(set(texts))]
    with pytest.raises(ValueError, match="unknown workload"):
        workload_texts("nope", 3)


def fake_raw(rps: float, p99: float, errors: int = 0) -> dict:
    offline = {
        "texts_per_s": 100.0,
        "runs_s": [1.0],
        "small_batch": {"size": 8, "workers": 2, "order": "arrival", "texts_per_s": 60.0},
        "batch1": {"p50_ms": 10.0},
    }
    result = LoadResult(requests=10, latencies_s=[p99 / 1e3] * 10, duration_s=10 / rps)
    mode = summarize(
        result,
        0,
        {"calls": 0, "requests": 0},
        {"calls": 5, "requests": 10},
        {"event_loop": 0.011, "other_threads": 0.042},
    )
    mode["errors"] = errors
    slower = {
        **offline,
        "texts_per_s": 90.0,
        "small_batch": {"size": 8, "workers": 2, "order": "arrival", "texts_per_s": 50.0},
        "batch1": {"p50_ms": 12.0},
    }
    workload = {
        "description": "d",
        "texts": 4,
        "offline_before": offline,
        "offline_after": slower,
        "batcher": {"clients": 16, "texts_per_s": 70.0, "latency": None, "mean_batch": 7.5},
        "server": {"batching": mode, "no-batching": dict(mode)},
    }
    return {"workloads": {"queries": workload}, "embedder": {"threads": 2, "provider": "cpu"}}


MACHINE = {
    "cpu": "cpu",
    "cores": 2,
    "threads": 2,
    "cpu_flags": [],
    "os": "os",
    "python": "3",
    "packages": {},
    "date_utc": "now",
}


@pytest.mark.parametrize(
    ("rps", "p99", "errors", "verdicts"),
    [
        (90.0, 25.0, 0, [True, True, True]),
        (70.0, 25.0, 0, [False, True, True]),
        (90.0, 31.0, 1, [True, False, False]),
    ],
)
def test_targets_are_computed_from_the_run(rps, p99, errors, verdicts) -> None:
    report = assemble(fake_raw(rps, p99, errors), {"clients": 16}, MACHINE)
    d = report["derived"]["queries"]
    assert d["offline_texts_per_s"] == 100.0 and d["batch1_p50_ms"] == 10.0  # the hard refs
    assert d["latency_floor_ms"] == pytest.approx(160.0)
    assert (d["small_batch_size"], d["ceiling_texts_per_s"]) == (8, 60.0)  # the faster run
    assert d["ceiling_share_of_offline"] == pytest.approx(0.6)
    assert d["batcher_share_of_offline"] == pytest.approx(0.7)
    assert d["modes"]["batching"]["share_of_ceiling"] == pytest.approx(rps / 60.0)
    assert [t["met"] for t in report["targets"]] == verdicts
    assert headline(report)["targets_met"] is all(verdicts)


def test_report_files(tmp_path) -> None:
    settings = {"clients": 16, "duration_s": 20.0, "batch_wait_ms": 2.0, "load_client": "wrk"}
    raw = {**fake_raw(90.0, 25.0), "server_stack": {"http": "httptools", "loop": "uvloop"}}
    report = assemble(raw, settings, MACHINE)
    write(report, tmp_path)
    assert json.loads((tmp_path / "bench_serve.json").read_text())["targets"]
    text = (tmp_path / "bench_serve.md").read_text()
    assert "| batching | 90.0 | 90.0 | 150.0 |" in text and "## Targets" in text
    assert "| 2.0 | 1.10 / 4.20 |" in text  # 10 requests per 5 calls; CPU ms per request
    assert "alone in arrival-order batches of 8 on 2 workers" in text
    assert "**60.0 texts/s**, 60% of offline" in text
    assert "16 in-process clients run **70.0 texts/s** (70% of offline) in batches of 7.5" in text
    assert "clients (wrk, one thread)" in text and "uvicorn with httptools and uvloop" in text
    assert markdown(report) == text


def test_reports_without_the_ceiling_or_batcher_still_render() -> None:
    raw = fake_raw(90.0, 25.0)
    for key in ("offline_before", "offline_after"):
        del raw["workloads"]["queries"][key]["small_batch"]
    del raw["workloads"]["queries"]["batcher"]
    del raw["workloads"]["queries"]["server"]["batching"]["server_cpu_ms_per_request"]
    report = assemble(raw, {"clients": 16, "duration_s": 20.0, "batch_wait_ms": 2.0}, MACHINE)
    d = report["derived"]["queries"]
    assert d["ceiling_texts_per_s"] is None and d["batcher_texts_per_s"] is None
    text = markdown(report)
    assert "| batching | 90.0 | 90.0 | n/a |" in text and "Batcher without HTTP" not in text
    assert "| 2.0 | n/a |" in text  # no CPU figures (not Linux, or an older report)


@pytest.mark.parametrize(("clients", "workers", "size"), [(16, 2, 8), (16, 3, 6), (1, 4, 1)])
def test_concurrency_batch(clients, workers, size) -> None:
    assert concurrency_batch(clients, workers) == size


@pytest.mark.parametrize(
    ("flag", "value"),
    [("workloads", "queries,bogus"), ("clients", 0), ("duration", 0.0), ("requests", -1)],
)
def test_cli_refuses_bad_settings(flag, value) -> None:
    p = argparse.ArgumentParser()
    serve_cli.configure_parser(p)
    args = p.parse_args(["--bundle", "b"])
    setattr(args, flag, value)
    with pytest.raises(SystemExit):
        serve_cli.config_from_args(args)


@pytest.mark.slow
def test_end_to_end_on_the_tiny_bundle(tiny_bundle) -> None:
    cfg = ServeBenchConfig(
        bundle=tiny_bundle.path,
        workloads=("queries",),
        clients=2,
        duration_s=0.5,
        texts=16,
        warmup_requests=4,
        batch1_reps=5,
        offline_reps=1,
        threads=1,
    )
    raw = run_benchmark(cfg)
    modes = raw["workloads"]["queries"]["server"]
    assert set(modes) == {"batching", "no-batching"}
    assert all(m["errors"] == 0 and m["requests_per_s"] > 0 for m in modes.values())
    assert modes["no-batching"]["mean_requests_per_call"] == 1.0
    cpu = modes["batching"]["server_cpu_ms_per_request"]  # Linux: read from /proc
    assert cpu["event_loop"] > 0 and cpu["other_threads"] > 0
    assert set(raw["server_stack"]) == {"http", "loop"}
    small = raw["workloads"]["queries"]["offline_before"]["small_batch"]
    assert small["size"] == 2 and small["texts_per_s"] > 0  # 2 clients, 1 worker
    assert (small["workers"], small["order"]) == (1, "arrival")
    batcher = raw["workloads"]["queries"]["batcher"]
    assert batcher["clients"] == 2 and batcher["texts_per_s"] > 0 and batcher["mean_batch"] >= 1


@pytest.mark.parametrize(
    ("asked", "wrk", "used"),
    [
        ("auto", "/usr/bin/wrk", "wrk"),
        ("auto", None, "python"),
        ("python", "/usr/bin/wrk", "python"),
    ],
)
def test_load_client_auto_resolves_to_who_runs(monkeypatch, asked, wrk, used) -> None:
    monkeypatch.setattr(serve_wrk, "find_wrk", lambda: wrk)
    p = argparse.ArgumentParser()
    serve_cli.configure_parser(p)
    cfg = serve_cli.config_from_args(p.parse_args(["--bundle", "b", "--load-client", asked]))
    assert cfg.load_client == used


def test_asking_for_wrk_without_it_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(serve_wrk, "find_wrk", lambda: None)
    p = argparse.ArgumentParser()
    serve_cli.configure_parser(p)
    with pytest.raises(SystemExit, match="wrk is not on PATH"):
        serve_cli.config_from_args(p.parse_args(["--bundle", "b", "--load-client", "wrk"]))


def test_config_refuses_an_unknown_load_client() -> None:
    with pytest.raises(ValueError, match="load_client 'auto'"):
        ServeBenchConfig(bundle=Path("b"), load_client="auto")
