"""``umr embed-corpus``: embed a JSONL/Parquet corpus (texts, images, text+image pairs) into
Parquet vectors, locally or on Ray."""

from __future__ import annotations

import argparse
import sys

_DESCRIPTION = """\
Embed every row of --input with a bundle and write the vectors to --out as Parquet.

Input: a .jsonl/.ndjson or .parquet file, or a directory of them (searched recursively;
names starting with '.' or '_' are skipped). JSONL rows are
  {"id": 7 | "doc-7", "text": "...", "image": "img/a.png", "metadata": {...}}
with "text" or "image" required; both make a text+image pair embedded as one vector (a
missing id is the line number). Parquet rows take the text from --text-field, the id
(integer or string) from --id-field (the 1-based row number when that column is absent),
the image path from an optional --image-field column (null: a text row; the text may be
null where there is an image) and metadata from an optional "metadata" column (a struct
or a JSON-object string). Image paths are relative to the file that names them, or
absolute; images need a multimodal bundle. Every row is validated before anything is
embedded: a bad row, a missing image file or a repeated id (across all files) is an
error naming file:line (file:row N for Parquet).

Output (--out DIR, read back with umr.runtime.corpus_embed.vectors.read_vectors, e.g. by
`umr index build --from-vectors DIR`):
  part-00000.parquet ...  columns id (string), id_type ("int"/"str"), vector
                          (fixed_size_list<float32>[dim], unit norm), metadata (JSON or null)
  _umr_vectors.json       dim, count, bundle, model sha256, variant, sha256 of every part,
                          the input; written last, so a directory without it is incomplete.

Engines: --engine local runs in this process with --num-cpus ONNX Runtime threads;
--engine ray reads with Ray Data and embeds on --actors actors (one ONNX Runtime session
each), on the cluster at --ray-address or on a Ray started here with --num-cpus CPUs.
Both produce the same files. A batch that fails is retried (twice in the batch function;
a crashed Ray actor is restarted twice); if it still fails, the run fails with the batch's
ids and no manifest is written; when images fail to decode, the error names every
failing row of the batch (id, file, reason). At the end the rows written must equal the
rows read.
"""

_EPILOG = """\
examples:
  umr embed-corpus --bundle BUNDLE --input docs.jsonl --out vectors/
  umr embed-corpus --bundle BUNDLE --input shards/ --out vectors/ --engine ray --num-cpus 8
  umr embed-corpus --bundle BUNDLE --input data.parquet --text-field body --id-field doc_id \\
      --out vectors/ --engine ray --ray-address ray://head:10001 --actors 32
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed-corpus",
        help="batch-embed a JSONL/Parquet corpus to Parquet vectors (local or Ray)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = p.add_argument_group("input and output")
    io.add_argument("--input", required=True, metavar="PATH", help="JSONL/Parquet file or dir")
    io.add_argument("--out", required=True, metavar="DIR", help="vectors directory to write")
    io.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier embed-corpus output at --out (never deletes other files)",
    )
    io.add_argument("--text-field", default="text", help="Parquet text column (default: text)")
    io.add_argument("--id-field", default="id", help="Parquet id column (default: id)")
    io.add_argument(
        "--image-field", default="image", help="Parquet image-path column (default: image)"
    )
    model = p.add_argument_group("model")
    model.add_argument("--bundle", required=True, metavar="DIR", help="bundle directory")
    model.add_argument("--variant", default="fp32", help="bundle variant (default: fp32)")
    model.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="texts, images or pairs per model call (default: 32)",
    )
    eng = p.add_argument_group("engine")
    eng.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: Ray Data with an actor pool (default: local)",
    )
    eng.add_argument(
        "--num-cpus",
        type=int,
        default=None,
        metavar="N",
        help="local: ONNX Runtime threads; ray: CPUs of the Ray started here "
        "(default: all usable cores; ignored with --ray-address)",
    )
    eng.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="join this Ray cluster (e.g. ray://head:10001 or auto) instead of starting Ray; "
        "umr must be installed on its workers and --bundle/--input readable there",
    )
    eng.add_argument(
        "--actors",
        type=int,
        default=None,
        metavar="N",
        help="ray: embedding actors, each with CPUs/N threads (default: one per CPU)",
    )
    eng.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code (errors raise and main prints them)."""
    from umr.runtime.corpus_embed.reader import Fields
    from umr.runtime.corpus_embed.run import embed_corpus

    result = embed_corpus(
        args.input,
        args.out,
        bundle=args.bundle,
        variant=args.variant,
        engine=args.engine,
        fields=Fields(text=args.text_field, id=args.id_field, image=args.image_field),
        batch_size=args.batch_size,
        num_cpus=args.num_cpus,
        actors=args.actors,
        ray_address=args.ray_address,
        force=args.force,
        progress=not args.no_progress,
        log_to_driver=bool(getattr(args, "verbose", False)),
    )
    extra = f", {result.retried_rows} rows after a retry" if result.retried_rows else ""
    images = result.manifest["input"].get("image_rows", 0)
    extra += f", {images} with images" if images else ""
    print(
        f"embedded {result.count} rows (dim {result.dim}) from {args.input} into {result.out} "
        f"with the {result.engine} engine in {result.seconds:.1f} s "
        f"({result.docs_per_s:.0f} docs/s{extra})",
        file=sys.stderr,
    )
    return 0
