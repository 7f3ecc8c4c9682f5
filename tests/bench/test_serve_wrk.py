"""The wrk load generator: its summary line, its settings, and a real run where wrk exists."""

from __future__ import annotations

import json

import pytest
from umr.bench.serve_bench import summarize
from umr.bench.serve_wrk import find_wrk, parse_wrk, run_wrk

_LINE = (
    'UMR_WRK {"requests": 1000, "duration_us": 2000000, "bad": 3, "connect": 0, "read": 1, '
    '"write": 0, "timeout": 2, "p50_us": 1500, "p95_us": 4000, "p99_us": 9000, '
    '"mean_us": 1800.5}'
)


def test_summary_line_becomes_a_load_result() -> None:
    r = parse_wrk(f"Running 2s test\n{_LINE}\n")
    assert r.requests == 1001 and r.errors == 6 and r.duration_s == 2.0
    assert r.error_kinds == {"read": 1, "timeout": 2, "bad response": 3}
    assert r.latency == {"p50_ms": 1.5, "p95_ms": 4.0, "p99_ms": 9.0, "mean_ms": 1.8005, "n": 997}
    s = summarize(r, 0, {"calls": 0, "requests": 0}, {"calls": 10, "requests": 997})
    assert s["requests_per_s"] == pytest.approx(498.5) and s["latency"]["p99_ms"] == 9.0


def test_no_summary_names_wrks_complaint() -> None:
    with pytest.raises(RuntimeError, match="unable to connect"):
        parse_wrk("", "unable to connect to 127.0.0.1:1")


def test_all_failed_has_no_latency() -> None:
    r = parse_wrk(_LINE.replace('"bad": 3', '"bad": 1000'))
    assert r.latency is None and r.latency_ms() is None


@pytest.mark.parametrize(
    ("bodies", "clients", "duration"),
    [([b'{"input": "a\nb"}'], 1, 1.0), ([], 1, 1.0), ([b"{}"], 0, 1.0), ([b"{}"], 1, 0.0)],
)
def test_bad_settings_are_refused(bodies: list[bytes], clients: int, duration: float) -> None:
    with pytest.raises(ValueError):
        run_wrk("http://127.0.0.1:1", bodies, clients=clients, duration_s=duration)


@pytest.mark.skipif(find_wrk() is None, reason="wrk is not installed (Debian: apt install wrk)")
def test_real_run_counts_answers_and_rejections(tiny_server) -> None:
    good = json.dumps({"input": "fine"}).encode()
    r = run_wrk(tiny_server.url, [good, b'{"input": []}'], clients=2, duration_s=1)
    assert r.requests > 10 and 0.8 < r.duration_s < 3
    # Every other body is refused with a 400; wrk's round-robin is per thread (one here).
    assert r.error_kinds.keys() == {"bad response"}
    assert abs(r.errors - r.requests / 2) <= 2
    assert r.latency is not None and 0 < r.latency["p50_ms"] <= r.latency["p99_ms"]
