"""`umr serve` end to end on the tiny bundle: real uvicorn on a loopback socket, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from umr.runtime import Embedder
from umr.runtime.cli.main import build_parser, main
from umr.runtime.cli.serve_cmd import config_from_args
from umr.runtime.index import load as load_index
from umr.runtime.server.config import ServerConfig
from umr.runtime.server.launch import Sources, ThreadedServer, build_app

httpx = pytest.importorskip("httpx")
TOKEN = "launch-token"


@pytest.fixture
def served(tiny_bundle, tmp_path):  # type: ignore[no-untyped-def]
    config = ServerConfig(port=0, token=TOKEN)
    app = build_app(Sources(str(tiny_bundle.path), str(tmp_path / "idx"), threads=1), config)
    with ThreadedServer(app, config) as server:
        yield server


def test_real_http_round_trip(served, tiny_bundle, tmp_path) -> None:
    texts = ["the python list", "a query", "this is a text"]
    with httpx.Client(base_url=served.url, timeout=10) as http:
        assert http.get("/healthz").json()["model"] == "tiny"
        r = http.post("/v1/embeddings", json={"input": texts})
        assert r.status_code == 200
        got = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
        want = Embedder.load(tiny_bundle.path, threads=1).embed_text(texts)
        np.testing.assert_allclose(got, want, atol=1e-6)
        # usage counts the bundle's real tokens: [CLS] + words + [SEP]
        assert r.json()["usage"]["prompt_tokens"] == 5 + 4 + 6
        items = [{"id": i, "text": t} for i, t in enumerate(texts)]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert http.post("/v1/index/items", json={"items": items}, headers=auth).status_code == 200
        hits = http.post("/v1/search", json={"text": "a query", "k": 1}).json()["hits"]
        assert hits[0]["id"] == 1 and hits[0]["text"] == "a query"
        big = http.post("/v1/embeddings", content=b"x" * (17 * 1024 * 1024))
        assert big.status_code == 413
    assert len(load_index(tmp_path / "idx")) == 3


def test_cli_refuses_non_loopback_without_token(tiny_bundle, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("UMR_TOKEN", raising=False)
    argv = ["serve", "--bundle", str(tiny_bundle.path), "--index", str(tmp_path / "i")]
    assert main([*argv, "--host", "0.0.0.0"]) == 1
    assert "without a token" in capsys.readouterr().err


def test_cli_options_become_the_config(monkeypatch) -> None:
    monkeypatch.setenv("UMR_TOKEN", "env-token")
    args = build_parser().parse_args(
        [
            "serve",
            "--bundle",
            "b",
            "--index",
            "i",
            "--no-batching",
            "--batch-wait-ms",
            "5",
            "--max-items",
            "7",
            "--port",
            "9000",
        ]
    )
    config = config_from_args(args, workers=3)
    assert config.token == "env-token" and config.port == 9000
    assert not config.batching.enabled and config.batching.max_wait_ms == 5.0
    assert config.batching.workers == 3 and config.limits.max_items == 7
    assert config.host == "127.0.0.1"


def test_index_dim_must_match_the_bundle(tiny_bundle, tmp_path) -> None:
    from umr.runtime import ExactIndex

    from umr.errors import ServerError

    other = ExactIndex.create(5)
    other.add(np.ones((1, 5), dtype=np.float32), [1])
    other.save(tmp_path / "idx5")
    with pytest.raises(ServerError, match="5-dim"):
        build_app(Sources(str(tiny_bundle.path), str(tmp_path / "idx5")), ServerConfig())


@pytest.mark.parametrize("argv", [["serve"], ["bench", "serve"]])
def test_help(capsys, argv) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0 and "--bundle" in capsys.readouterr().out


def test_server_imports_no_training_stack() -> None:
    import json
    import subprocess
    import sys

    script = (
        "import json, sys; import umr.runtime.server.app, umr.runtime.server.launch; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'transformers', 'onnx', 'sentence_transformers'})))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_serve_forever_shortens_the_gil_switch_interval(monkeypatch) -> None:
    import sys

    import uvicorn
    from umr.runtime.server import launch

    seen: list[float] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()
    try:
        launch.serve_forever(object(), ServerConfig(port=0))
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(launch.GIL_SWITCH_INTERVAL_S)] and before > seen[0]
