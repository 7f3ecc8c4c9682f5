"""The embedder: a verified bundle, its graphs on one provider, inputs in, unit vectors out.

Texts run through the text graph; images and text+image pairs through the fused graph
of a multimodal bundle (:mod:`umr.runtime.image_input`). Only ``onnxruntime``,
``tokenizers``, ``numpy`` (and Pillow, for images) are imported here; the graphs already
pool and normalise, so serving needs no torch.
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
from umr.runtime.image_input import (
    ImageGraph,
    check_signature,
    decode_images,
    open_image_graph,
    validate_images,
)
from umr.runtime.session import thread_plan, usable_cores
from umr.runtime.text_input import (
    Batch,
    TextTokenizer,
    check_batch_size,
    validate_instruction,
    validate_texts,
)

from umr.bundle import BundleManifest, Variant, read_manifest, verify_files
from umr.errors import BundleError, InputValueError, ProviderUnavailableError
from umr.images import DEFAULT_MAX_PIXELS

#: Padded tokens per ONNX Runtime call. Small batches of similar length beat big ones on
#: CPU: less padding, activations stay in cache. On all-MiniLM-L6-v2 (2 threads, 512
#: stdlib docstrings) 256 gave 1.5x the docs/s of plain 32-text batches; 128-384 were alike.
DEFAULT_MAX_BATCH_TOKENS = 256


class Embedder:
    """Embeds texts (and, with a multimodal bundle, images and text+image pairs) with one
    variant of a bundle on one execution provider.

    Build it with :meth:`load`. Attributes: ``manifest`` (the bundle's
    :class:`~umr.bundle.BundleManifest`), ``dim``, ``variant``, ``provider`` (the
    provider actually active: ``"cpu"``, ``"cuda"``, ``"tensorrt"`` or
    ``"tensorrt-engine"``), ``threads``,
    ``max_batch_tokens`` (padded tokens per graph call, ``None`` for no limit, the
    default on GPUs; tunable; 1 runs each text alone; image tokens count too), and
    ``max_image_pixels`` (images with more pixels are refused; tunable). Safe to call
    from several threads at once. On TensorRT, calls never exceed the shape profile's
    batch size.

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
        image: ImageGraph | None = None,
        no_image: str | None = None,
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
        self._image = image  # the fused graph; None for text bundles
        self._no_image = no_image  # why a multimodal bundle's fused graph is not open
        self.max_image_pixels = DEFAULT_MAX_PIXELS
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
        ``threads`` defaults to the cores this process may use. A multimodal bundle's
        fused graph is opened too, on the provider the text graph runs on; with
        ``"tensorrt-engine"`` it runs the fused graph's own engine (built by ``umr export
        --checkpoint ... --tensorrt``), and where the bundle has none for this GPU texts
        still embed and images are refused saying why.

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
            check_signature(backend.session, manifest, root / var.file)
        image, no_image = open_image_graph(root, manifest, variant, provider, backend, threads)
        return cls(
            manifest,
            variant,
            backend.session,
            backend.provider,
            tokenizer,
            threads,
            run=backend.run,
            max_rows=backend.max_rows,
            image=image,
            no_image=no_image,
        )

    @property
    def modalities(self) -> tuple[str, ...]:
        """What this embedder can embed: the manifest's modalities, or ``("text",)``
        when the fused graph is not open (a text bundle, or a TensorRT engine)."""
        return tuple(self.manifest.modalities) if self._image is not None else ("text",)

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
        instruction = self._instruction(instruction, self._tokenizer)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        batches = self._tokenizer.batches(
            items, instruction=instruction, batch_size=batch_size, max_tokens=self.max_batch_tokens
        )
        return self._run_all(len(items), list(batches), self._run)

    def embed_image(self, images: Sequence[object], *, batch_size: int = 32) -> np.ndarray:
        """Unit-norm float32 vectors ``[len(images), dim]`` of images, in input order.

        Items are paths, encoded bytes, PIL images or ``HxWxC`` uint8 arrays (any mode:
        palette, grey, CMYK, 16-bit, transparency; EXIF orientation is applied). Every
        image is decoded first: a corrupt, truncated or unsupported file, or one over
        ``max_image_pixels``, raises ``ImageError`` naming ``image i`` before anything
        is embedded. A text bundle raises ``BundleError``.
        """
        items = validate_images(images)
        return self._embed_pairs([""] * len(items), items, None, batch_size)

    def embed_fused(
        self,
        texts: Sequence[str],
        images: Sequence[object],
        *,
        instruction: str | None = None,
        batch_size: int = 32,
    ) -> np.ndarray:
        """One unit vector per (text, image) pair, ``[len(texts), dim]``, in input order.

        ``texts[i]`` goes with ``images[i]`` (as in :meth:`embed_text` and
        :meth:`embed_image`); ``instruction`` conditions every pair, left out of the
        pooled mean. Unequal lengths raise ``InputValueError``.
        """
        items, pics = validate_texts(texts), validate_images(images)
        if len(items) != len(pics):
            raise InputValueError(
                f"embed_fused needs one image per text: got {len(items)} texts and "
                f"{len(pics)} images"
            )
        return self._embed_pairs(items, pics, instruction, batch_size)

    def _instruction(self, instruction: object, tokenizer: TextTokenizer) -> str | None:
        checked = validate_instruction(instruction)
        if checked and "pool_mask" not in tokenizer.input_names:
            raise InputValueError(
                f"bundle {self.manifest.name!r} has no pool_mask input, so an instruction "
                f"would be pooled into the vector; prepend it to the texts instead"
            )
        return checked

    def _embed_pairs(
        self, texts: list[str], images: list[object], instruction: object, batch_size: int
    ) -> np.ndarray:
        graph = self._image_graph()
        check_batch_size(batch_size)
        instruction = self._instruction(instruction, graph.tokenizer)
        if graph.backend.max_rows is not None:
            batch_size = min(batch_size, graph.backend.max_rows)
        pmap = self._pool.map if self._pool is not None else map
        pixels = decode_images(
            images, graph.preprocess, max_pixels=self.max_image_pixels, map_fn=pmap
        )
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        # A dynamically quantized fused graph runs each row alone, as its text graph does.
        budget = 1 if batch_dependent(graph.variant) else self.max_batch_tokens
        batches = graph.batches(
            texts, pixels, instruction=instruction, batch_size=batch_size, max_tokens=budget
        )
        return self._run_all(len(texts), list(batches), graph.backend.run)

    def _image_graph(self) -> ImageGraph:
        if self._image is not None:
            return self._image
        if self._no_image is not None:
            raise ProviderUnavailableError(self._no_image)
        raise BundleError(
            f"bundle {self.manifest.name!r} has no image graph (modalities: "
            f"{', '.join(self.manifest.modalities)}); it embeds text only"
        )

    def _run_all(self, rows: int, batches: list[Batch], run: BatchRunner) -> np.ndarray:
        out = np.empty((rows, self.dim), dtype=np.float32)

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
