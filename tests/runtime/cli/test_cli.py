"""The `umr` command line on a tiny bundle: help, info, index build, search, and bad input."""

from __future__ import annotations

import json

import pytest
from umr.runtime.cli.main import main

TEXTS = ["the python list", "a text query", "this is it", "with the text of python", "on a list"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [[], ["export"], ["info"], ["index", "build"], ["search"], ["bench", "text"], ["demo"]],
)
def test_every_command_has_help(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


def test_info_describes_and_verifies(capsys, tiny_bundle):
    code, out, _ = _run(capsys, "info", str(tiny_bundle.path), "--verify")
    assert code == 0
    assert "dim            8" in out and "every file matches its sha256" in out
    code, out, _ = _run(capsys, "info", str(tiny_bundle.path), "--json")
    assert json.loads(out)["dim"] == 8


def test_info_on_tampered_bundle_fails_in_one_line(capsys, tiny_bundle):
    onnx = tiny_bundle.path / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    code, out, err = _run(capsys, "info", str(tiny_bundle.path), "--verify")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "model.onnx" in err and "does not match" in err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "docs.jsonl"
    rows = [{"id": f"d{i}", "text": t, "metadata": {"n": i}} for i, t in enumerate(TEXTS)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("exact", [False, True])
def test_build_then_search_finds_the_identical_text(capsys, tmp_path, tiny_bundle, corpus, exact):
    out_dir = tmp_path / "idx"
    b = str(tiny_bundle.path)
    argv = ["index", "build", "--bundle", b, "--input", str(corpus), "--out", str(out_dir)]
    code, _, err = _run(capsys, *argv, "--no-progress", *(["--exact"] if exact else []))
    assert code == 0, err
    assert "indexed 5 items" in err
    code, out, err = _run(
        capsys, "search", "--bundle", b, "--index", str(out_dir), TEXTS[3], "-k", "3", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert [h["rank"] for h in result["hits"]] == [1, 2, 3]
    top = result["hits"][0]
    assert top["id"] == "d3" and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert top["metadata"] == {"text": TEXTS[3], "metadata": {"n": 3}}
    code, out, _ = _run(capsys, "search", "--bundle", b, "--index", str(out_dir), TEXTS[0])
    assert code == 0 and "d0" in out.splitlines()[2]


def test_bad_input_line_is_named_and_nothing_is_written(capsys, tmp_path, tiny_bundle):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "the list"}\n{"txt": "oops"}\n', encoding="utf-8")
    out_dir = tmp_path / "idx"
    code, _, err = _run(
        capsys,
        "index",
        "build",
        "--bundle",
        str(tiny_bundle.path),
        "--input",
        str(bad),
        "--out",
        str(out_dir),
    )
    assert code == 1
    assert "bad.jsonl:2" in err and "'text' must be a string" in err
    assert not out_dir.exists()


def test_existing_index_needs_force(capsys, tmp_path, tiny_bundle, corpus):
    out_dir = tmp_path / "idx"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("x")
    code, _, err = _run(
        capsys,
        "index",
        "build",
        "--bundle",
        str(tiny_bundle.path),
        "--input",
        str(corpus),
        "--out",
        str(out_dir),
    )
    assert code == 1 and "--force" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["info", "/nonexistent/bundle"], "bundle directory not found"),
        (
            ["search", "--bundle", "/nonexistent", "--index", "/x", "q"],
            "bundle directory not found",
        ),
    ],
)
def test_missing_paths_fail_in_one_line(capsys, argv, expected):
    code, _, err = _run(capsys, *argv)
    assert code == 1 and expected in err and err.count("\n") == 1


def test_search_rejects_bad_k_and_missing_index(capsys, tmp_path, tiny_bundle):
    b = str(tiny_bundle.path)
    code, _, err = _run(capsys, "search", "--bundle", b, "--index", str(tmp_path), "q", "-k", "0")
    assert code == 1 and "-k must be at least 1" in err
    code, _, err = _run(capsys, "search", "--bundle", b, "--index", str(tmp_path / "none"), "q")
    assert code == 1 and err.startswith("umr: error:")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "q"], "the following arguments are required: --bundle, --index"),
        (["index", "build", "--bundle", "b"], "the following arguments are required"),
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["search", "--bundle", "b", "--index", "i", "q", "-k", "x"], "invalid int value: 'x'"),
    ],
)
def test_usage_errors_are_one_line_with_a_help_pointer(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and expected in err and "--help')" in err


def test_export_refuses_a_non_empty_out_dir_without_force(capsys, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    code, _, err = _run(capsys, "export", "--out", str(tmp_path))
    assert code == 1 and "pass --force to replace it" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
