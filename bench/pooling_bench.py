"""Pooling inside the ONNX graph vs token embeddings out of the session + NumPy pooling.

Two sessions over the same weights: *fused* returns ``sentence_embedding`` [batch, hidden]
(umr's pooling function appended to the encoder); *unfused* returns ``last_hidden_state``
[batch, seq, hidden] and pools in NumPy afterwards, as fastembed does (mask-weighted mean,
divisor clipped at 1e-9, then L2). The unfused graph is the fused one with the pooling
stripped (:func:`umr.kernels.onnx_pooling.strip_pooling`), so only the pooling differs.

Models: the default bundle's fp32 graph when it exists (``--model auto``), else a small
synthetic encoder (embedding Gather + ``--layers`` FFN blocks of MatMul/Gelu/LayerNorm); and
``identity``: the token states are the input, so only the pooling (in ORT vs copy-out +
NumPy) is timed. Per shape: warm-up calls, then ``--rounds`` rounds alternating which side
goes first; medians of wall time and of process CPU time, and the bytes of the output
tensors that leave the session. Writes ``pooling.json`` + ``pooling.md`` to ``--out``
and ends with one JSON line.

    python -m umr.bench.pooling_bench --shapes 1x128,32x128,8x256 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from umr.bench.machine import machine_info, machine_line
from umr.kernels.onnx_pooling import PoolingSpec, append_pooling, strip_pooling

from umr.errors import InputValueError

BUNDLE = Path("artifacts/bundles/all-MiniLM-L6-v2")
DEFAULT_OUT = Path("artifacts/bench/pooling")
VOCAB = 30522  # BERT's, so random ids are valid for the bundle as well


@dataclass(frozen=True)
class PoolingBenchConfig:
    """What to run; the CLI's flags one to one."""

    shapes: tuple[tuple[int, int], ...] = ((1, 128), (32, 128), (8, 256))
    rounds: int = 7
    warmup: int = 2
    threads: int = 1
    model: str = "auto"  # auto | bundle | synthetic
    bundle: Path = BUNDLE
    hidden: int = 384  # synthetic and identity models only
    layers: int = 2
    pooling_only: bool = True
    seed: int = 0


def fastembed_mean_pool(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """fastembed's post-processing: mask-weighted mean (count clipped at 1e-9), then L2."""
    mask = attention_mask[..., None].astype(token_embeddings.dtype)
    summed = (token_embeddings * mask).sum(axis=1)
    pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def synthetic_encoder(hidden: int, layers: int, seed: int = 0) -> onnx.ModelProto:
    """input_ids/attention_mask -> last_hidden_state: a Gather then ``layers`` residual FFN
    blocks (MatMul, Gelu as Erf, MatMul, LayerNorm); encoder-shaped work without attention."""
    rng = np.random.default_rng(seed)
    inits = [_weight(rng, "emb", (VOCAB, hidden))]
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["x0"])]
    for i in range(layers):
        inits += [_weight(rng, f"w1_{i}", (hidden, 4 * hidden))]
        inits += [_weight(rng, f"w2_{i}", (4 * hidden, hidden))]
        nodes += _ffn_block(i, f"x{i}", f"x{i + 1}")
    inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in _CONSTS.items()]
    inits += [numpy_helper.from_array(np.ones(hidden, np.float32), "ln_scale")]
    nodes.append(helper.make_node("Identity", [f"x{layers}"], ["last_hidden_state"]))
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    attn = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden]
    )
    graph = helper.make_graph(nodes, "synthetic_encoder", [ids, attn], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


_CONSTS = {"half": 0.5, "one": 1.0, "inv_sqrt2": 0.7071067811865476}


def _weight(rng: np.random.Generator, name: str, shape: tuple[int, int]) -> onnx.TensorProto:
    w = rng.standard_normal(shape) / np.sqrt(shape[0])  # unit-variance activations
    return numpy_helper.from_array(w.astype(np.float32), name)


def _ffn_block(i: int, x: str, y: str) -> list[onnx.NodeProto]:
    def n(op: str, ins: list[str], out: str, **kw: Any) -> onnx.NodeProto:
        return helper.make_node(op, ins, [f"{out}_{i}"], **kw)

    return [
        n("MatMul", [x, f"w1_{i}"], "up"),
        n("Mul", [f"up_{i}", "inv_sqrt2"], "scaled"),
        n("Erf", [f"scaled_{i}"], "erf"),
        n("Add", [f"erf_{i}", "one"], "erf1"),
        n("Mul", [f"up_{i}", f"erf1_{i}"], "gelu2"),
        n("Mul", [f"gelu2_{i}", "half"], "gelu"),
        n("MatMul", [f"gelu_{i}", f"w2_{i}"], "down"),
        n("Add", [x, f"down_{i}"], "res"),
        helper.make_node("LayerNormalization", [f"res_{i}", "ln_scale"], [y], axis=-1),
    ]


def identity_encoder(hidden: int) -> onnx.ModelProto:
    """The token states are the input: fused vs unfused then differ only in the pooling."""
    h = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", hidden])
    attn = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden]
    )
    node = helper.make_node("Identity", ["hidden"], ["last_hidden_state"])
    graph = helper.make_graph([node], "identity", [h, attn], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def model_pair(name: str, cfg: PoolingBenchConfig) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(fused, unfused) graphs over the same weights for ``name``: bundle/synthetic/identity."""
    if name == "bundle":
        fused = onnx.load(str(cfg.bundle / "model.onnx"))
    elif name in ("synthetic", "identity"):
        enc = (
            synthetic_encoder(cfg.hidden, cfg.layers, cfg.seed)
            if name == "synthetic"
            else identity_encoder(cfg.hidden)
        )
        fused = append_pooling(enc, PoolingSpec(mode="mean"))
    else:
        raise InputValueError(f"model: {name!r} is not one of 'bundle', 'synthetic', 'identity'")
    return fused, strip_pooling(fused)


def _session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # the stripped graph leaves token_type_ids etc. as they were
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _feeds(
    sess: ort.InferenceSession, batch: int, seq: int, hidden: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Inputs the session takes: random ids, right padding to lengths in [seq/2, seq]."""
    lengths = rng.integers(max(1, seq // 2), seq + 1, size=batch)
    attn = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    values = {
        "input_ids": rng.integers(1000, VOCAB, size=(batch, seq)) * attn,
        "attention_mask": attn,
        "token_type_ids": np.zeros_like(attn),
        "pool_mask": attn,  # pool every attended token, as fastembed does
        "hidden": rng.standard_normal((batch, seq, hidden)).astype(np.float32),
    }
    return {i.name: values[i.name] for i in sess.get_inputs()}


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def bench_shape(
    fused: ort.InferenceSession,
    unfused: ort.InferenceSession,
    batch: int,
    seq: int,
    cfg: PoolingBenchConfig,
) -> dict[str, Any]:
    """Median wall/CPU ms of each whole call, output bytes, and the largest difference."""
    feeds = _feeds(fused, batch, seq, cfg.hidden, np.random.default_rng(cfg.seed))
    u_feeds = {k: feeds[k] for k in (i.name for i in unfused.get_inputs())}
    attn = feeds["attention_mask"]

    def run_fused() -> tuple[np.ndarray, int]:
        (out,) = fused.run(None, feeds)
        return out, out.nbytes

    def run_unfused() -> tuple[np.ndarray, int]:
        (states,) = unfused.run(None, u_feeds)
        return fastembed_mean_pool(states, attn), states.nbytes

    sides = {"fused": run_fused, "unfused": run_unfused}
    for _ in range(cfg.warmup):
        for fn in sides.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    results: dict[str, Any] = {}
    for r in range(cfg.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))  # no side always first
        for name in order:
            w, c, results[name] = _timed(sides[name])
            wall[name].append(w)
            cpu[name].append(c)
    row: dict[str, Any] = {"batch": batch, "seq": seq}
    for name in sides:
        row[f"{name}_ms"] = statistics.median(wall[name]) * 1e3
        row[f"{name}_cpu_ms"] = statistics.median(cpu[name]) * 1e3
        row[f"{name}_out_bytes"] = results[name][1]
    row["unfused_over_fused"] = row["unfused_ms"] / row["fused_ms"]
    row["bytes_ratio"] = row["unfused_out_bytes"] / row["fused_out_bytes"]
    row["max_abs_diff"] = float(np.abs(results["fused"][0] - results["unfused"][0]).max())
    return row


def run_pooling_bench(cfg: PoolingBenchConfig) -> dict[str, Any]:
    """Run every model x shape; the result dict (what ``pooling.json`` holds)."""
    models = [_resolve_model(cfg)] + (["identity"] if cfg.pooling_only else [])
    load_before = os.getloadavg()
    rows = []
    for name in models:
        fused_model, unfused_model = model_pair(name, cfg)
        fused, unfused = _session(fused_model, cfg.threads), _session(unfused_model, cfg.threads)
        for batch, seq in cfg.shapes:
            row = {"model": name, **bench_shape(fused, unfused, batch, seq, cfg)}
            _log(row)
            rows.append(row)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    return {
        "bench": "pooling",
        "config": config,
        "machine": machine_info(cfg.threads),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "rows": rows,
    }


def _resolve_model(cfg: PoolingBenchConfig) -> str:
    if cfg.model != "auto":
        return cfg.model
    return "bundle" if (cfg.bundle / "model.onnx").is_file() else "synthetic"


def _log(row: dict[str, Any]) -> None:
    print(
        f"{row['model']:>9} {row['batch']:>4}x{row['seq']:<4} fused {row['fused_ms']:9.2f} ms"
        f"  unfused {row['unfused_ms']:9.2f} ms  x{row['unfused_over_fused']:.3f}",
        file=sys.stderr,
        flush=True,
    )


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown report: one table row per model x shape."""
    lines = [
        "# Pooling: in-graph (fused) vs NumPy after the session (unfused)",
        "",
        f"Machine: {machine_line(result['machine'])}",
        f"Load average before/after: {_load(result['loadavg_before'])} / "
        f"{_load(result['loadavg_after'])} (other jobs share this machine: times are noisy).",
        f"Medians of {result['config']['rounds']} interleaved rounds after "
        f"{result['config']['warmup']} warm-up calls; whole call incl. NumPy pooling; "
        f"ORT intra-op threads {result['config']['threads']}.",
        "",
        "| model | batch x seq | fused ms | unfused ms | unfused/fused | fused CPU ms "
        "| unfused CPU ms | bytes out fused | bytes out unfused | bytes ratio | max abs diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['batch']}x{r['seq']} | {r['fused_ms']:.2f} "
            f"| {r['unfused_ms']:.2f} | {r['unfused_over_fused']:.3f} | {r['fused_cpu_ms']:.2f} "
            f"| {r['unfused_cpu_ms']:.2f} | {r['fused_out_bytes']:,} "
            f"| {r['unfused_out_bytes']:,} | {r['bytes_ratio']:.0f} | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def _load(avg: Sequence[float]) -> str:
    return "/".join(f"{x:.2f}" for x in avg)


def write_outputs(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``pooling.json`` and ``pooling.md`` into ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "pooling.json", out_dir / "pooling.md"
    js.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md.write_text(markdown(result), encoding="utf-8")
    return js, md


def parse_shapes(text: str) -> tuple[tuple[int, int], ...]:
    """``"32x128,8x256"`` -> ((32, 128), (8, 256)); an InputValueError names a bad item."""
    shapes = []
    for item in text.split(","):
        b, sep, s = item.strip().lower().partition("x")
        if not (sep and b.isdigit() and s.isdigit() and int(b) > 0 and int(s) > 0):
            raise InputValueError(f"shapes: {item!r} is not BATCHxSEQ with positive ints")
        shapes.append((int(b), int(s)))
    return tuple(shapes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's flags, for wiring into another CLI."""
    d = PoolingBenchConfig()
    parser.add_argument("--shapes", default="1x128,32x128,8x256", help="BATCHxSEQ,...")
    parser.add_argument("--rounds", type=int, default=d.rounds)
    parser.add_argument("--warmup", type=int, default=d.warmup)
    parser.add_argument("--threads", type=int, default=d.threads, help="ORT intra-op threads")
    parser.add_argument("--model", choices=("auto", "bundle", "synthetic"), default=d.model)
    parser.add_argument("--bundle", type=Path, default=d.bundle)
    parser.add_argument("--hidden", type=int, default=d.hidden, help="synthetic/identity only")
    parser.add_argument("--layers", type=int, default=d.layers, help="synthetic only")
    parser.add_argument("--no-pooling-only", dest="pooling_only", action="store_false")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)


def config_from_args(args: argparse.Namespace) -> PoolingBenchConfig:
    """A config from parsed :func:`add_arguments` flags."""
    return PoolingBenchConfig(
        shapes=parse_shapes(args.shapes),
        rounds=args.rounds,
        warmup=args.warmup,
        threads=args.threads,
        model=args.model,
        bundle=args.bundle,
        hidden=args.hidden,
        layers=args.layers,
        pooling_only=args.pooling_only,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: run, write JSON + Markdown to ``--out``, print one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m umr.bench.pooling_bench", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    result = run_pooling_bench(config_from_args(args))
    js, md = write_outputs(result, args.out)
    print(f"wrote {js} and {md}", file=sys.stderr)
    print(json.dumps({"bench": "pooling", "rows": result["rows"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
