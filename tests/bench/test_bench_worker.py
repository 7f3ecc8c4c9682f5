import io
import json

import numpy as np
from umr.bench.texts import BenchTexts
from umr.bench.worker import EngineServer, _serve


class FakeEngine:
    name = "fake"

    def __init__(self):
        self.calls = []

    def embed(self, texts, batch_size):
        self.calls.append((len(texts), batch_size))
        return np.ones((len(texts), 4), dtype=np.float32) / 2.0


def _server(tmp_path):
    texts = BenchTexts(
        corpus=["a", "b", "c"],
        short_queries=["q1", "q2"],
        passages=["p"],
        passage_topics=["t"],
        queries=["q"],
        query_topics=["t"],
        extra=[],
    )
    return EngineServer(FakeEngine(), texts, tmp_path)


def test_commands_run_and_save_vectors(tmp_path):
    server = _server(tmp_path)
    assert server.handle({"cmd": "warmup", "n_docs": 2, "n_queries": 2})["seconds"] >= 0
    reply = server.handle({"cmd": "embed", "set": "corpus", "batch_size": 32, "save": "c_x"})
    assert reply["n"] == 3 and reply["dim"] == 4
    assert np.load(tmp_path / "c_x.npy").shape == (3, 4)
    lat = server.handle({"cmd": "latency", "reps": 5})
    assert len(lat["samples_s"]) == 5
    assert server.engine.calls[-5:] == [(1, 1)] * 5


def test_protocol_reports_errors_and_stops_on_quit(tmp_path):
    lines = [
        {"cmd": "nope"},
        {"cmd": "embed", "set": "missing", "batch_size": 1},
        {"cmd": "quit"},
        {"cmd": "latency", "reps": 1},  # never read: quit ends the loop
    ]
    out = io.StringIO()
    _serve(_server(tmp_path), io.StringIO("".join(json.dumps(x) + "\n" for x in lines)), out)
    replies = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(replies) == 3
    assert "unknown command 'nope'" in replies[0]["error"]
    assert "InputValueError" in replies[1]["error"] and "'missing'" in replies[1]["error"]
    assert replies[2]["maxrss_mb"] > 0
