"""The text embedder: a verified bundle, one ONNX Runtime session, texts in, unit vectors out.

Only ``onnxruntime``, ``tokenizers`` and ``numpy`` are imported here; the graph
already pools and normalises, so serving needs no torch.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from umr.runtime.backend import open_backend, plan_backend
from umr.runtime.cuda_io import BatchRunner, OrtRunner
from umr.runtime.session import thread_plan, usable_cores
from umr.runtime.text_input import (
    Batch,
    TextTokenizer,
    check_batch_size,
    validate_instruction,
    validate_texts,
)

from umr.bundle import BundleManifest, Variant, read_manifest, verify_files
from umr.errors import BundleError, InputValueError

#: Padded tokens per ONNX Runtime call. Small batches of similar length beat big ones on
#: CPU: less padding, activations stay in cache. On all-MiniLM-L6-v2 (2 threads, 512
#: stdlib docstrings) 256 gave 1.5x the docs/s of plain 32-text batches; 128-384 were alike.
DEFAULT_MAX_BATCH_TOKENS = 256


class Embedder:
    """Embeds texts with one variant of a bundle on one execution provider.

    Build it with :meth:`load`. Attributes: ``manifest`` (the bundle's
    :class:`~umr.bundle.BundleManifest`), ``dim``, ``variant``, ``provider`` (the
    provider actually active: ``"cpu"``, ``"cuda"``, ``"tensorrt"`` or
    ``"tensorrt-engine"``), ``threads``,
    and ``max_batch_tokens`` (padded tokens per graph call, ``None`` for no limit, the
    default on GPUs; tunable; 1 runs each text alone). Safe to call from several
    threads at once. On TensorRT, calls never exceed the shape profile's batch size.

    A variant whose activations are quantized dynamically (one scale per batch
    tensor) gives a text a vector that depends on its batch-mates, so such variants
    run one text per call (``max_batch_tokens = 1``), which keeps every text's vector
    identical in any batch. On the CPU, batches run in parallel on ``threads``
    single-threaded workers (see :func:`umr.runtime.session.thread_plan`).
    """

    def __init__(
        self,
        manifest: BundleManifest,
        variant: str,
        session: object,
        provider: str,
        tokenizer: TextTokenizer,
        threads: int,
        *,
        run: BatchRunner | None = None,
        max_rows: int | None = None,
    ) -> None:
        self.manifest = manifest
        self.dim = manifest.dim
        self.variant = variant
        self.provider = provider
        self.threads = threads
        self._session = session
        self._tokenizer = tokenizer
        # One padded batch -> its vectors; GPU runners bind on the device (umr.runtime.cuda_io).
        self._run = run if run is not None else OrtRunner(session, manifest.output)
        self._max_rows = max_rows  # a TensorRT shape profile caps the rows per call
        workers = thread_plan(provider, threads)[1]
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="umr-embed") if workers > 1 else None
        )
        if self._pool is not None:
            weakref.finalize(self, self._pool.shutdown, wait=False)
        # The token budget is a CPU cache effect; a GPU wants whole batches.
        budget = DEFAULT_MAX_BATCH_TOKENS if provider == "cpu" else None
        self.max_batch_tokens: int | None = (
            1 if batch_dependent(manifest.variant(variant)) else budget
        )

    @classmethod
    def load(
        cls,
        bundle_dir: str | os.PathLike[str],
        variant: str = "fp32",
        provider: str = "cpu",
        threads: int | None = None,
    ) -> Embedder:
        """Open ``bundle_dir`` after checking every file's sha256 against its manifest.

        ``variant`` names a graph of the bundle (``"fp32"``, ``"int8"``, ...);
        ``provider`` is ``"cpu"``, ``"cuda"``, ``"tensorrt"`` (ONNX Runtime's providers),
        ``"tensorrt-engine"`` (the variant's serialized TensorRT engine for this GPU, run
        without ONNX Runtime) or ``"auto"`` (the best of those available, logged);
        ``threads`` defaults to the cores this process may use.

        Raises ``BundleError``/``ManifestError`` for a bad bundle, ``ChecksumError``
        naming a tampered or missing file, ``UnknownVariantError`` listing the
        variants, and ``ProviderUnavailableError`` when the provider is missing or
        ORT fell back from it.
        """
        root = Path(bundle_dir)
        manifest = read_manifest(root)
        if "text" not in manifest.modalities:
            raise BundleError(f"{root}: bundle modalities {manifest.modalities} lack 'text'")
        var = manifest.variant(variant)
        threads = usable_cores() if threads is None else _check_threads(threads)
        plan = plan_backend(root, manifest, variant, provider)  # fails before hashing
        _verify_all(root, manifest, threads)
        tokenizer = TextTokenizer.from_file(
            root / manifest.tokenizer, manifest.max_seq_length, manifest.inputs
        )
        backend = open_backend(plan, manifest, threads)
        if backend.is_ort:  # an engine checks its own tensors against the manifest
            _check_signature(backend.session, manifest, root / var.file)
        return cls(
            manifest,
            variant,
            backend.session,
            backend.provider,
            tokenizer,
            threads,
            run=backend.run,
            max_rows=backend.max_rows,
        )

    def embed_text(
        self, texts: Sequence[str], *, instruction: str | None = None, batch_size: int = 32
    ) -> np.ndarray:
        """Unit-norm float32 vectors ``[len(texts), dim]``, in input order.

        Texts longer than the model's ``max_seq_length`` tokens are truncated.
        ``instruction`` (e.g. a task prompt) is placed after the leading special
        token and conditions every text but is left out of the pooled mean.
        ``batch_size`` bounds how many texts run together; results do not depend
        on it beyond float rounding.

        Raises ``InputTypeError`` for a bare str/bytes or a non-str item and
        ``InputValueError`` for text that is not valid Unicode, both naming the index.
        """
        items = validate_texts(texts)
        check_batch_size(batch_size)
        if self._max_rows is not None:
            batch_size = min(batch_size, self._max_rows)
        instruction = validate_instruction(instruction)
        if instruction and "pool_mask" not in self._tokenizer.input_names:
            raise InputValueError(
                f"bundle {self.manifest.name!r} has no pool_mask input, so an instruction "
                f"would be pooled into the vector; prepend it to the texts instead"
            )
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        batches = list(
            self._tokenizer.batches(
                items,
                instruction=instruction,
                batch_size=batch_size,
                max_tokens=self.max_batch_tokens,
            )
        )
        run = self._run

        def embed(batch: Batch) -> None:
            out[batch.rows] = run(batch.feeds)

        if self._pool is None or len(batches) == 1:
            for batch in batches:
                embed(batch)
        else:  # ORT releases the GIL in run(): batches go in parallel, one per worker
            for _ in self._pool.map(embed, batches):
                pass
        return out

    def __repr__(self) -> str:
        return (
            f"Embedder({self.manifest.name!r}, variant={self.variant!r}, "
            f"provider={self.provider!r}, threads={self.threads}, dim={self.dim})"
        )


def batch_dependent(variant: Variant) -> bool:
    """Whether a variant's output for one text depends on the other texts in its batch.

    The exporter says so with ``details["batch_invariant"]``; older bundles are judged
    by ``details["activations"]`` naming dynamic quantization.
    """
    explicit = variant.details.get("batch_invariant")
    if isinstance(explicit, bool):
        return not explicit
    return "dynamic" in str(variant.details.get("activations", "")).lower()


def _verify_all(root: Path, manifest: BundleManifest, threads: int) -> None:
    """Check every listed file (and the tokenizer, listed or not) before anything is loaded.

    hashlib releases the GIL, so hashing the two model files in parallel halves the
    largest part of load time on an idle machine.
    """
    names = sorted({*manifest.files, manifest.tokenizer})
    if threads < 2 or len(names) < 2:
        verify_files(root, manifest, names)
        return
    by_size = sorted(names, key=lambda n: -_size(root / n))
    with ThreadPoolExecutor(max_workers=min(threads, 4)) as pool:
        list(pool.map(lambda n: verify_files(root, manifest, [n]), by_size))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # verify_files reports it as missing


def _check_threads(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    return threads


def _check_signature(session: object, manifest: BundleManifest, path: Path) -> None:
    """The graph must take exactly the manifest's inputs and produce its output."""
    inputs = sorted(i.name for i in session.get_inputs())  # type: ignore[attr-defined]
    outputs = [o for o in session.get_outputs() if o.name == manifest.output]  # type: ignore[attr-defined]
    if inputs != sorted(manifest.inputs):
        raise BundleError(f"{path}: graph inputs {inputs} differ from manifest.inputs")
    if not outputs:
        raise BundleError(f"{path}: graph has no output named {manifest.output!r}")
    dim = outputs[0].shape[-1] if outputs[0].shape else None
    if isinstance(dim, int) and dim != manifest.dim:
        raise BundleError(
            f"{path}: output {manifest.output!r} has dim {dim}, manifest says {manifest.dim}"
        )
