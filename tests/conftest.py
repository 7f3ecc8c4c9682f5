"""Shared fixtures: a tiny text bundle built on the fly (no torch), and the real bundle if exported.

The tiny bundle has a WordPiece tokenizer and an ONNX graph small enough to recompute
in numpy (:meth:`TinyBundle.reference`), so tests can check the runtime exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Triton decides when it is first imported and when a kernel is decorated whether kernels
# run compiled or in its CPU interpreter; whichever test imports it first (torch and
# transformers may), the kernel tests need the interpreter on a machine without a GPU.
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")

TINY_MAX_LEN = 16
TINY_DIM = 8
ALL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pool_mask")
_WORDS = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "is",
    "in",
    "it",
    "for",
    "on",
    "with",
    "as",
    "was",
    "by",
    "that",
    "this",
    "python",
    "list",
    "text",
    "query",
]
_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


@dataclass(frozen=True)
class TinyBundle:
    """A tiny bundle on disk plus the weights to recompute its output in numpy."""

    path: Path
    inputs: tuple[str, ...]
    max_len: int
    emb: np.ndarray
    mix: np.ndarray
    types: np.ndarray

    def tokenizer(self):  # type: ignore[no-untyped-def]
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.path / "tokenizer.json"))

    def reference(self, ids: Sequence[int], pool: Sequence[int] | None = None) -> np.ndarray:
        """The graph's output for one unpadded row (token types 0), computed in float64."""
        x = self.emb[np.asarray(ids)].astype(np.float64)
        if "token_type_ids" in self.inputs:
            x = x + self.types[0]
        h = np.tanh(x @ self.mix)
        y = np.tanh(h + h.mean(axis=0))
        p = np.ones(len(ids)) if pool is None else np.asarray(pool, dtype=np.float64)
        v = (y * p[:, None]).sum(axis=0) / max(p.sum(), 1e-9)
        return v / max(np.linalg.norm(v), 1e-12)


def _vocab() -> dict[str, int]:
    letters = list(string.ascii_lowercase + string.digits)
    toks = [*_SPECIALS, *_WORDS, *letters, *(f"##{c}" for c in letters), *".,!?'-:;()"]
    return {t: i for i, t in enumerate(dict.fromkeys(toks))}


def write_tiny_tokenizer(path: Path, max_len: int) -> int:
    """A BERT-style WordPiece tokenizer.json; returns the vocab size."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = _vocab()
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.enable_truncation(max_len)
    # Padding left on purpose: the runtime must switch it off itself.
    tok.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]")
    tok.save(str(path))
    return len(vocab)


def _tiny_graph(emb: np.ndarray, mix: np.ndarray, types: np.ndarray, inputs: Sequence[str]):  # type: ignore[no-untyped-def]
    """Gather -> MatMul+Tanh -> add masked sequence mean (positions interact) -> Tanh ->
    mean over pool_mask -> L2 normalise."""
    from onnx import TensorProto, helper, numpy_helper

    h = helper.make_node
    pool_in = "pool_mask" if "pool_mask" in inputs else "attention_mask"
    nodes = [h("Gather", ["E", "input_ids"], ["x0"])]
    if "token_type_ids" in inputs:
        nodes += [h("Gather", ["T", "token_type_ids"], ["tt"]), h("Add", ["x0", "tt"], ["x"])]
    else:
        nodes += [h("Identity", ["x0"], ["x"])]
    nodes += [
        h("MatMul", ["x", "W"], ["xw"]),
        h("Tanh", ["xw"], ["hid"]),
        *_masked_mean(h, "hid", "attention_mask", "ctx", keepdims=1),
        h("Add", ["hid", "ctx"], ["pre"]),
        h("Tanh", ["pre"], ["y"]),
        *_masked_mean(h, "y", pool_in, "pooled", keepdims=0),
        h("ReduceL2", ["pooled"], ["norm"], axes=[1], keepdims=1),
        h("Max", ["norm", "eps"], ["norm_safe"]),
        h("Div", ["pooled", "norm_safe"], ["sentence_embedding"]),
    ]
    inits = [
        numpy_helper.from_array(emb, "E"),
        numpy_helper.from_array(mix, "W"),
        numpy_helper.from_array(types, "T"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "axis_last"),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "eps"),
    ]
    if "token_type_ids" not in inputs:
        inits = [i for i in inits if i.name != "T"]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in inputs],
        [
            helper.make_tensor_value_info(
                "sentence_embedding", TensorProto.FLOAT, ["batch", emb.shape[1]]
            )
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # onnx 1.23 writes IR 14, which older ORT rejects
    return model


def _masked_mean(h, x: str, mask: str, out: str, keepdims: int) -> list:  # type: ignore[no-untyped-def]
    m = f"{out}_m"
    return [
        h("Cast", [mask], [f"{m}f"], to=1),
        h("Unsqueeze", [f"{m}f", "axis_last"], [m]),
        h("Mul", [x, m], [f"{out}_xm"]),
        h("ReduceSum", [f"{out}_xm", "axis1"], [f"{out}_s"], keepdims=keepdims),
        h("ReduceSum", [m, "axis1"], [f"{out}_n"], keepdims=keepdims),
        h("Max", [f"{out}_n", "eps"], [f"{out}_nn"]),
        h("Div", [f"{out}_s", f"{out}_nn"], [out]),
    ]


def make_tiny_bundle(
    root: Path, *, inputs: Sequence[str] = ALL_INPUTS, max_len: int = TINY_MAX_LEN, seed: int = 0
) -> TinyBundle:
    """Write a complete tiny bundle (fp32 + a perturbed "int8" variant) to ``root``."""
    import onnx

    from umr.atomic import atomic_write_json
    from umr.bundle import BundleManifest, Variant, sha256_file

    root.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tiny_tokenizer(root / "tokenizer.json", max_len)
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((vocab_size, TINY_DIM)).astype(np.float32)
    mix = (rng.standard_normal((TINY_DIM, TINY_DIM)) / np.sqrt(TINY_DIM)).astype(np.float32)
    types = (0.1 * rng.standard_normal((2, TINY_DIM))).astype(np.float32)
    onnx.save(_tiny_graph(emb, mix, types, inputs), str(root / "model.onnx"))
    noisy = emb + np.float32(0.01) * rng.standard_normal(emb.shape).astype(np.float32)
    onnx.save(_tiny_graph(noisy, mix, types, inputs), str(root / "model.int8.onnx"))
    files = ("model.onnx", "model.int8.onnx", "tokenizer.json")
    manifest = BundleManifest(
        name="tiny",
        dim=TINY_DIM,
        pooling="mean",
        normalize=True,
        max_seq_length=max_len,
        inputs=tuple(inputs),
        output="sentence_embedding",
        tokenizer="tokenizer.json",
        variants={
            "fp32": Variant("fp32", "model.onnx", "float32"),
            "int8": Variant("int8", "model.int8.onnx", "int8"),
        },
        files={f: sha256_file(root / f) for f in files},
        created_by="tests/conftest.py",
    )
    atomic_write_json(root / "umr.json", manifest.to_json())
    return TinyBundle(root, tuple(inputs), max_len, emb, mix, types)


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> TinyBundle:
    """A tiny bundle taking all four text inputs, max_seq_length 16."""
    return make_tiny_bundle(tmp_path / "tiny")


@pytest.fixture
def tiny_bundle_factory(tmp_path: Path) -> Callable[..., TinyBundle]:
    """Build other tiny bundles: ``factory(name, inputs=..., max_len=...)``."""

    def build(name: str = "custom", **kwargs: object) -> TinyBundle:
        return make_tiny_bundle(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return build


@pytest.fixture(scope="session")
def real_bundle() -> Path:
    """The exported default bundle named by $UMR_TEST_BUNDLE; skips when unset."""
    value = os.environ.get("UMR_TEST_BUNDLE")
    if not value:
        pytest.skip("UMR_TEST_BUNDLE is not set (run `make bundle`, then point it at the bundle)")
    path = Path(value)
    if not (path / "umr.json").is_file():
        pytest.fail(f"UMR_TEST_BUNDLE={value} has no umr.json; re-run `make bundle`")
    return path


@pytest.fixture(scope="session")
def real_mm_bundle() -> Path:
    """The shipped multimodal model's bundle named by $UMR_TEST_MM_BUNDLE (built by
    `make mm-bundle`); skips when unset."""
    value = os.environ.get("UMR_TEST_MM_BUNDLE")
    if not value:
        pytest.skip("UMR_TEST_MM_BUNDLE is not set (run `make mm-bundle`, then point it at it)")
    path = Path(value)
    if not (path / "umr.json").is_file():
        pytest.fail(f"UMR_TEST_MM_BUNDLE={value} has no umr.json; re-run `make mm-bundle`")
    return path


# --- a tiny *multimodal* bundle ------------------------------------------------------------
#
# A tiny *multimodal* bundle built on the fly (no torch, no exporter), with a numpy reference.
#
# The tiny text bundle above plus a fused graph
# (``multimodal.onnx``) with the contract's inputs (``input_ids``, ``attention_mask``,
# ``pool_mask``, ``pixel_values``): the pixels are projected to ``TINY_IMAGE_TOKENS``
# image tokens inserted after position 0, attention and pool masks are extended with ones,
# and the text graph's layers follow (positions interact), then masked mean and L2.

TINY_IMAGE_SIZE = 8
TINY_IMAGE_TOKENS = 2
FUSED_INPUTS = ("input_ids", "attention_mask", "pool_mask", "pixel_values")


@dataclass(frozen=True)
class TinyMultimodalBundle:
    """A tiny multimodal bundle on disk plus the weights to recompute its fused graph."""

    path: Path
    text: object  # the TinyBundle it extends
    proj: np.ndarray  # [3*S*S, T*D]

    def tokenizer(self):  # type: ignore[no-untyped-def]
        tok = self.text.tokenizer()  # type: ignore[attr-defined]
        tok.no_padding()
        return tok

    def pixels(self, image: object) -> np.ndarray:
        """The model input of one image, by the shared preprocessing."""
        from umr.images import ImagePreprocess, open_image, to_model_input

        return to_model_input(open_image(image), ImagePreprocess(size=TINY_IMAGE_SIZE))

    def reference(
        self, text: str, image: object, instruction_ids: Sequence[int] = ()
    ) -> np.ndarray:
        """The fused graph's output for one (text, image) row, computed in float64."""
        ids = self.tokenizer().encode(text).ids
        ids = [ids[0], *instruction_ids, *ids[1:]]
        pool = [1] + [0] * len(instruction_ids) + [1] * (len(ids) - 1 - len(instruction_ids))
        return self.reference_ids(ids, pool, self.pixels(image))

    def reference_ids(self, ids: Sequence[int], pool: Sequence[int], px: np.ndarray) -> np.ndarray:
        t = self.text
        dim = t.emb.shape[1]  # type: ignore[attr-defined]
        x = t.emb[np.asarray(ids)].astype(np.float64)  # type: ignore[attr-defined]
        img = np.tanh(px.reshape(-1).astype(np.float64) @ self.proj).reshape(-1, dim)
        x = np.concatenate([x[:1], img, x[1:]])
        p = np.concatenate([[1.0], np.ones(len(img)), np.asarray(pool[1:], dtype=np.float64)])
        h = np.tanh(x @ t.mix)  # type: ignore[attr-defined]
        y = np.tanh(h + h.mean(axis=0))
        v = (y * p[:, None]).sum(axis=0) / p.sum()
        return v / np.linalg.norm(v)


def _fused_graph(emb: np.ndarray, mix: np.ndarray, proj: np.ndarray):  # type: ignore[no-untyped-def]
    from onnx import TensorProto, helper, numpy_helper

    h, T = helper.make_node, TINY_IMAGE_TOKENS
    dim = emb.shape[1]

    def masked_mean(x: str, mask: str, out: str, keepdims: int) -> list:
        return [
            h("Cast", [mask], [f"{out}_mf"], to=1),
            h("Unsqueeze", [f"{out}_mf", "axis_last"], [f"{out}_m"]),
            h("Mul", [x, f"{out}_m"], [f"{out}_xm"]),
            h("ReduceSum", [f"{out}_xm", "axis1"], [f"{out}_s"], keepdims=keepdims),
            h("ReduceSum", [f"{out}_m", "axis1"], [f"{out}_n"], keepdims=keepdims),
            h("Max", [f"{out}_n", "eps"], [f"{out}_nn"]),
            h("Div", [f"{out}_s", f"{out}_nn"], [out]),
        ]

    def after_first(x: str, extra: str, out: str) -> list:  # [x[:, :1], extra, x[:, 1:]]
        return [
            h("Slice", [x, "zero", "one", "axis1"], [f"{out}_head"]),
            h("Slice", [x, "one", "big", "axis1"], [f"{out}_tail"]),
            h("Concat", [f"{out}_head", extra, f"{out}_tail"], [out], axis=1),
        ]

    nodes = [
        h("Gather", ["E", "input_ids"], ["tok"]),
        h("Reshape", ["pixel_values", "flat_shape"], ["flat"]),
        h("MatMul", ["flat", "P"], ["proj"]),
        h("Tanh", ["proj"], ["proj_t"]),
        h("Reshape", ["proj_t", "img_shape"], ["img"]),
        h("Shape", ["input_ids"], ["batch"], end=1),
        h("Concat", ["batch", "t_len"], ["ones_shape"], axis=0),
        h("Expand", ["one_i64", "ones_shape"], ["ones"]),
        *after_first("tok", "img", "x"),
        *after_first("attention_mask", "ones", "attn"),
        *after_first("pool_mask", "ones", "pool"),
        h("MatMul", ["x", "W"], ["xw"]),
        h("Tanh", ["xw"], ["hid"]),
        *masked_mean("hid", "attn", "ctx", keepdims=1),
        h("Add", ["hid", "ctx"], ["pre"]),
        h("Tanh", ["pre"], ["y"]),
        *masked_mean("y", "pool", "pooled", keepdims=0),
        h("ReduceL2", ["pooled"], ["norm"], axes=[1], keepdims=1),
        h("Max", ["norm", "eps"], ["norm_safe"]),
        h("Div", ["pooled", "norm_safe"], ["sentence_embedding"]),
    ]
    consts = {
        "E": emb,
        "W": mix,
        "P": proj,
        "flat_shape": np.array([0, -1], dtype=np.int64),
        "img_shape": np.array([0, T, dim], dtype=np.int64),
        "t_len": np.array([T], dtype=np.int64),
        "one_i64": np.ones((1, 1), dtype=np.int64),
        "zero": np.array([0], dtype=np.int64),
        "one": np.array([1], dtype=np.int64),
        "big": np.array([1 << 30], dtype=np.int64),
        "axis1": np.array([1], dtype=np.int64),
        "axis_last": np.array([-1], dtype=np.int64),
        "eps": np.array(1e-9, dtype=np.float32),
    }
    size = TINY_IMAGE_SIZE
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
        for n in FUSED_INPUTS[:3]
    ]
    inputs.append(
        helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, size, size])
    )
    graph = helper.make_graph(
        nodes,
        "tiny-fused",
        inputs,
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # onnx 1.23 writes IR 14, which older ORT rejects
    return model


def make_multimodal_bundle(text_bundle: object, *, seed: int = 1) -> TinyMultimodalBundle:
    """Add a fused graph (fp32 and a perturbed "int8") and the manifest fields to a tiny bundle."""
    import onnx

    from umr.atomic import atomic_write_json
    from umr.bundle import ImageInput, read_manifest, sha256_file
    from umr.images import ImagePreprocess

    root: Path = text_bundle.path  # type: ignore[attr-defined]
    emb, mix = text_bundle.emb, text_bundle.mix  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    flat, dim = 3 * TINY_IMAGE_SIZE**2, emb.shape[1]
    proj = (rng.standard_normal((flat, TINY_IMAGE_TOKENS * dim)) / np.sqrt(flat)).astype(np.float32)
    onnx.save(_fused_graph(emb, mix, proj), str(root / "multimodal.onnx"))
    noisy = emb + np.float32(0.01) * rng.standard_normal(emb.shape).astype(np.float32)
    onnx.save(_fused_graph(noisy, mix, proj), str(root / "multimodal.int8.onnx"))
    manifest = read_manifest(root)
    files = dict(manifest.files)
    for name in ("multimodal.onnx", "multimodal.int8.onnx"):
        files[name] = sha256_file(root / name)
    seq = ("batch", "sequence")
    image = ImageInput(
        preprocess=ImagePreprocess(size=TINY_IMAGE_SIZE),
        inputs=FUSED_INPUTS,
        image_tokens=TINY_IMAGE_TOKENS,
        input_dims={
            **{n: seq for n in FUSED_INPUTS[:3]},
            "pixel_values": ("batch", 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
        },
    )
    graphs = {"fp32": "multimodal.onnx", "int8": "multimodal.int8.onnx"}
    variants = {
        k: dataclasses.replace(v, image_file=graphs[k]) for k, v in manifest.variants.items()
    }
    manifest = dataclasses.replace(
        manifest,
        name="tiny-mm",
        modalities=("text", "image", "text+image"),
        image=image,
        variants=variants,
        files=files,
    )
    atomic_write_json(root / "umr.json", manifest.to_json())
    return TinyMultimodalBundle(root, text_bundle, proj.astype(np.float64))


@pytest.fixture
def mm_bundle(tiny_bundle_factory: Callable[..., object]) -> TinyMultimodalBundle:
    """A tiny multimodal bundle: fp32 and int8 variants, 8x8 images, 2 image tokens."""
    return make_multimodal_bundle(tiny_bundle_factory("tiny-mm"))


def edit_manifest(path: Path, **changes: object) -> None:
    """Rewrite top-level fields of a bundle's ``umr.json`` (tests of bad bundles)."""
    doc = json.loads((path / "umr.json").read_text(encoding="utf-8"))
    doc.update(changes)
    (path / "umr.json").write_text(json.dumps(doc), encoding="utf-8")


@pytest.fixture
def cpu_only_ort(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime as a CPU-only install offers it (on any machine, a GPU one too)."""
    from umr.runtime import backend, providers

    monkeypatch.setattr(providers, "available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(backend, "available_providers", lambda: ["CPUExecutionProvider"])
