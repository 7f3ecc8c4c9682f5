"""Embedder.embed_image / embed_fused on the tiny multimodal bundle (tests/runtime/conftest.py)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from umr.runtime import Embedder
from umr.runtime.image_input import open_image_graph

from umr.errors import (
    BundleError,
    ChecksumError,
    ImageError,
    InputTypeError,
    InputValueError,
    ProviderUnavailableError,
)

TEXTS = ["the python list", "a", "", "query text on the list", "this is it for the text"]


def _images(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (5 + i % 7, 9 - i % 5, 3), dtype=np.uint8) for i in range(n)]


def _encoded(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def emb(mm_bundle) -> Embedder:
    return Embedder.load(mm_bundle.path, threads=2)


def test_load_opens_the_fused_graph(emb) -> None:
    assert emb.modalities == ("text", "image", "text+image")
    assert emb.dim == 8 and emb.provider == "cpu"


def test_images_match_the_numpy_reference_in_input_order(emb, mm_bundle) -> None:
    images = _images()
    vecs = emb.embed_image(images, batch_size=2)
    assert vecs.dtype == np.float32 and vecs.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    for img, vec in zip(images, vecs, strict=True):
        assert float(vec @ mm_bundle.reference("", img)) > 0.99999


def test_pairs_match_the_numpy_reference_in_input_order(emb, mm_bundle) -> None:
    images = _images()
    vecs = emb.embed_fused(TEXTS, images, batch_size=3)
    for text, img, vec in zip(TEXTS, images, vecs, strict=True):
        assert float(vec @ mm_bundle.reference(text, img)) > 0.99999, text


def test_instruction_conditions_pairs_but_is_not_pooled(emb, mm_bundle) -> None:
    images = _images(2)
    instruction = "find the list"
    ids = mm_bundle.tokenizer().encode(instruction, add_special_tokens=False).ids
    vecs = emb.embed_fused(TEXTS[:2], images, instruction=instruction)
    plain = emb.embed_fused(TEXTS[:2], images)
    for text, img, vec in zip(TEXTS[:2], images, vecs, strict=True):
        assert float(vec @ mm_bundle.reference(text, img, ids)) > 0.99999
    assert float((vecs * plain).sum(axis=1).max()) < 0.9999  # it does change the vector


def test_an_image_is_a_pair_with_empty_text(emb) -> None:
    images = _images(3)
    np.testing.assert_allclose(
        emb.embed_image(images), emb.embed_fused([""] * 3, images), atol=1e-6
    )


def test_text_graph_still_embeds_texts(emb, mm_bundle) -> None:
    tok = mm_bundle.text.tokenizer()
    tok.no_padding()
    vec = emb.embed_text(["the python list"])[0]
    assert float(vec @ mm_bundle.text.reference(tok.encode("the python list").ids)) > 0.99999


def test_every_input_type_gives_the_same_vector(emb, tmp_path) -> None:
    arr = _images(1)[0]
    pil = Image.fromarray(arr)
    path = tmp_path / "a.png"
    pil.save(path)
    data = path.read_bytes()
    items = [arr, pil, str(path), path, data, bytearray(data), memoryview(data), pil.copy()]
    vecs = emb.embed_image(items)
    np.testing.assert_allclose(vecs, np.broadcast_to(vecs[0], vecs.shape), atol=1e-6)
    batch = emb.embed_image(np.stack([arr, arr]))  # [N, H, W, C] is N images
    np.testing.assert_allclose(batch, vecs[:2], atol=1e-6)


def test_grey_and_alpha_arrays(emb) -> None:
    grey = np.full((6, 6), 90, dtype=np.uint8)
    rgb = np.full((6, 6, 3), 90, dtype=np.uint8)
    clear = np.zeros((6, 6, 4), dtype=np.uint8)  # fully transparent -> white background
    white = np.full((6, 6, 3), 255, dtype=np.uint8)
    vecs = emb.embed_image([grey, grey[:, :, None], rgb, clear, white])
    np.testing.assert_allclose(vecs[0], vecs[2], atol=1e-6)
    np.testing.assert_allclose(vecs[1], vecs[2], atol=1e-6)
    np.testing.assert_allclose(vecs[3], vecs[4], atol=1e-6)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16", "1", "RGB", "PA"])
def test_every_mode_converts(emb, mode) -> None:
    img = Image.new(mode, (7, 5))
    vecs = emb.embed_image([img, _encoded(img) if mode not in ("CMYK", "PA") else img])
    assert np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-6)


def test_sixteen_bit_image_equals_its_eight_bit_version(emb) -> None:
    arr16 = (np.arange(36, dtype=np.uint16).reshape(6, 6) * 1800).astype(np.uint16)
    arr8 = (arr16.astype(np.float64) * 255.0 / 65535.0).clip(0, 255).astype(np.uint8)
    a, b = emb.embed_image([_encoded(Image.fromarray(arr16)), arr8])
    assert float(a @ b) > 0.9999


def test_exif_orientation_is_applied(emb) -> None:
    arr = _images(1)[0]
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    tagged = _encoded(img, "PNG", exif=exif.tobytes())
    upright = img.transpose(Image.Transpose.ROTATE_270)
    a, b, c = emb.embed_image([tagged, upright, img])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert float(a @ c) < 0.9999


def _truncated_png() -> bytes:
    data = _encoded(Image.fromarray(_images(1)[0]).resize((64, 64)))
    return data[: len(data) // 2]


def _lazy_truncated(tmp_path: Path) -> Image.Image:
    path = tmp_path / "cut.png"
    path.write_bytes(_truncated_png())
    return Image.open(path)  # opens the header only; decoding fails later


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda _: b"not an image", "not an image"),
        (lambda _: _truncated_png(), "corrupt or truncated"),
        (_lazy_truncated, "corrupt, truncated"),
        (lambda _: 12, "expected a path"),
        (lambda _: "/no/such/file.png", "is not a file"),
        (lambda _: np.zeros((4, 4, 2), dtype=np.uint8), "channels"),
        (lambda _: np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (lambda _: _encoded(Image.new("L", (300, 300))), "exceeds the limit"),
    ],
)
def test_bad_image_names_its_index_and_nothing_is_embedded(
    emb, monkeypatch, tmp_path, bad, message
) -> None:
    emb.max_image_pixels = 50_000  # 300x300 is over it
    calls: list[int] = []
    monkeypatch.setattr(emb, "_run_all", lambda *a: calls.append(1))
    images = [*_images(40)]
    images[33] = bad(tmp_path)
    with pytest.raises(ImageError, match=rf"^image 33\b.*{message}"):
        emb.embed_image(images)
    with pytest.raises(ImageError, match=rf"^image 33\b.*{message}"):
        emb.embed_fused(["a"] * 40, images)
    assert calls == []


def test_pixel_limit_is_configurable(emb) -> None:
    big = np.zeros((40, 40, 3), dtype=np.uint8)
    assert emb.embed_image([big]).shape == (1, 8)
    emb.max_image_pixels = 1000
    with pytest.raises(ImageError, match=r"image 0: 40x40 pixels exceeds the limit of 1000"):
        emb.embed_image([big])


def test_pillow_decompression_bomb_is_refused(emb, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own guard, below ours
    with pytest.raises(ImageError, match=r"image 0: .*(bomb|exceeds)"):
        emb.embed_image([_encoded(Image.new("L", (30, 30)))])


@pytest.mark.parametrize("bare", ["a.png", b"\x89PNG", Path("a.png")])
def test_bare_image_is_refused(emb, bare) -> None:
    with pytest.raises(InputTypeError, match=r"list of images.*pass \[image\]"):
        emb.embed_image(bare)


def test_bare_pil_image_or_array_is_refused(emb) -> None:
    with pytest.raises(InputTypeError, match="bare Image"):
        emb.embed_image(Image.new("RGB", (4, 4)))
    with pytest.raises(InputTypeError, match="bare ndarray"):
        emb.embed_image(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(InputTypeError, match="list of images"):
        emb.embed_image(5)


def test_pair_errors(emb) -> None:
    images = _images(2)
    with pytest.raises(InputValueError, match="2 texts and 1 images"):
        emb.embed_fused(["a", "b"], images[:1])
    with pytest.raises(InputTypeError, match=r"texts\[1\]"):
        emb.embed_fused(["a", 5], images)
    with pytest.raises(InputTypeError, match="bare str"):
        emb.embed_fused("ab", images)
    with pytest.raises(InputValueError, match="instruction"):
        emb.embed_fused(["a", "b"], images, instruction="x\udc80")
    with pytest.raises(ValueError, match="batch_size"):
        emb.embed_image(images, batch_size=0)


def test_empty_lists(emb) -> None:
    assert emb.embed_image([]).shape == (0, 8)
    assert emb.embed_fused([], []).shape == (0, 8)


def test_text_bundle_refuses_images(tiny_bundle) -> None:
    emb = Embedder.load(tiny_bundle.path, threads=1)
    assert emb.modalities == ("text",)
    with pytest.raises(BundleError, match=r"'tiny' has no image graph.*text only"):
        emb.embed_image(_images(1))
    with pytest.raises(BundleError, match="no image graph"):
        emb.embed_fused(["a"], _images(1))


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("budget", ["default", None, 1, 40])
def test_batch_invariance(mm_bundle, variant, budget) -> None:
    emb = Embedder.load(mm_bundle.path, variant=variant, threads=2)
    if budget != "default":
        emb.max_batch_tokens = budget
    images = _images()
    alone_img = np.stack([emb.embed_image([img])[0] for img in images])
    alone_pair = np.stack(
        [emb.embed_fused([t], [i])[0] for t, i in zip(TEXTS, images, strict=True)]
    )
    for bs in (1, 2, 3, 32):
        together = emb.embed_image(images, batch_size=bs)
        assert (alone_img * together).sum(axis=1).min() >= 0.99999, bs
        pairs = emb.embed_fused(TEXTS, images, batch_size=bs)
        assert (alone_pair * pairs).sum(axis=1).min() >= 0.99999, bs
    shuffled = emb.embed_fused(TEXTS[::-1], images[::-1])[::-1]
    assert (alone_pair * shuffled).sum(axis=1).min() >= 0.99999


def test_threads_do_not_change_vectors(mm_bundle) -> None:
    images = _images(40)
    texts = [TEXTS[i % len(TEXTS)] for i in range(40)]
    one = Embedder.load(mm_bundle.path, threads=1).embed_fused(texts, images, batch_size=4)
    two = Embedder.load(mm_bundle.path, threads=2).embed_fused(texts, images, batch_size=4)
    np.testing.assert_allclose(one, two, atol=1e-6)


def test_missing_fused_graph_is_named(mm_bundle) -> None:
    (mm_bundle.path / "multimodal.onnx").unlink()
    with pytest.raises(ChecksumError, match=r"multimodal\.onnx.*missing"):
        Embedder.load(mm_bundle.path)


def test_fused_graph_must_take_the_manifest_inputs(mm_bundle) -> None:
    doc = json.loads((mm_bundle.path / "umr.json").read_text())
    doc["image"]["inputs"] = [*doc["image"]["inputs"], "token_type_ids"]
    (mm_bundle.path / "umr.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"multimodal\.onnx: graph inputs .* differ"):
        Embedder.load(mm_bundle.path)


def test_tensorrt_engine_refuses_images_with_a_reason(mm_bundle) -> None:
    from umr.runtime.providers import ENGINE

    from umr.bundle import read_manifest

    manifest = read_manifest(mm_bundle.path)
    graph, why = open_image_graph(mm_bundle.path, manifest, "fp32", ENGINE, None, 1)  # type: ignore[arg-type]
    assert graph is None and "text graph only" in why
    emb = Embedder.load(mm_bundle.path, threads=1)
    emb._image, emb._no_image = None, why  # what load() does for provider='tensorrt-engine'
    assert emb.modalities == ("text",)
    with pytest.raises(ProviderUnavailableError, match="cover the text graph only"):
        emb.embed_image(_images(1))


def test_images_need_no_torch(mm_bundle, tmp_path) -> None:
    script = (
        "import json, sys, numpy as np\n"
        "import umr.runtime\n"
        "e = umr.runtime.Embedder.load(sys.argv[1])\n"
        "v = e.embed_fused(['a'], [np.zeros((4, 4, 3), dtype=np.uint8)])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'optimum', 'onnx')]\n"
        "print(json.dumps({'shape': list(v.shape), 'heavy': heavy}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(mm_bundle.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,  # not the repo root, whose umr/ folder would shadow the install
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"shape": [1, 8], "heavy": []}


def test_fused_graph_gets_its_own_tensorrt_profile_and_cache(mm_bundle, monkeypatch, tmp_path):
    from umr.runtime import backend as backend_mod
    from umr.runtime.backend import plan_backend
    from umr.runtime.gpu_env import GpuInfo
    from umr.runtime.image_input import fused_manifest

    from umr.bundle import read_manifest

    monkeypatch.setattr(backend_mod, "gpu_info", lambda device_id=0: GpuInfo("H100", "9.0"))
    monkeypatch.setenv("UMR_CACHE_DIR", str(tmp_path / "cache"))
    have = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    m = read_manifest(mm_bundle.path)
    text = plan_backend(mm_bundle.path, m, "fp32", "tensorrt", available=have)
    fused_m = fused_manifest(m, "fp32")
    fused = plan_backend(mm_bundle.path, fused_m, "fp32", "tensorrt", available=have)
    assert fused.path.name == "multimodal.onnx" and fused.max_rows == 64
    opts = fused.providers[0][1]
    assert "pixel_values:64x3x8x8" in opts["trt_profile_max_shapes"].split(",")
    assert opts["trt_engine_cache_path"] != text.providers[0][1]["trt_engine_cache_path"]
    assert fused_m.inputs == ("input_ids", "attention_mask", "pool_mask", "pixel_values")


def test_fused_graph_details_decide_its_batching(mm_bundle, monkeypatch) -> None:
    doc = json.loads((mm_bundle.path / "umr.json").read_text())
    doc["variants"]["fp32"]["details"] = {"fused_graph": {"batch_invariant": False}}
    (mm_bundle.path / "umr.json").write_text(json.dumps(doc))
    emb = Embedder.load(mm_bundle.path, threads=1)
    assert emb.max_batch_tokens is not None  # the text graph still batches
    sizes: list[int] = []
    run_all = emb._run_all

    def spy(rows, batches, run):  # type: ignore[no-untyped-def]
        sizes.extend(len(b.rows) for b in batches)
        return run_all(rows, batches, run)

    monkeypatch.setattr(emb, "_run_all", spy)
    emb.embed_image(_images(5))
    assert sizes == [1] * 5  # each row alone: its vector cannot depend on batch-mates


@pytest.mark.slow
@pytest.mark.bundle
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_real_bundle_images_and_pairs_are_batch_invariant(real_mm_bundle, variant) -> None:
    emb = Embedder.load(real_mm_bundle, variant=variant, threads=2)
    assert emb.modalities == ("text", "image", "text+image")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(6)]
    texts = ["red heart", "", "medium-dark skin tone", "a very long description " * 8, "x", "ok"]
    alone = np.stack([emb.embed_fused([t], [i])[0] for t, i in zip(texts, images, strict=True)])
    for bs in (2, 32):
        together = emb.embed_fused(texts, images, batch_size=bs)
        assert (alone * together).sum(axis=1).min() >= 0.9999, bs
    image_alone = np.stack([emb.embed_image([i])[0] for i in images])
    assert (image_alone * emb.embed_image(images)).sum(axis=1).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize(("batch_size", "budget"), [(3, None), (32, 40), (32, 1), (2, 200)])
def test_calls_respect_batch_size_and_token_budget(emb, monkeypatch, batch_size, budget) -> None:
    emb.max_batch_tokens = budget
    calls: list[tuple[int, int]] = []
    run_all = emb._run_all

    def spy(rows, batches, run):  # type: ignore[no-untyped-def]
        calls.extend(b.feeds["input_ids"].shape for b in batches)
        for b in batches:
            assert b.feeds["pixel_values"].shape == (len(b.rows), 3, 8, 8)
            assert b.feeds["attention_mask"][:, -1].any()  # padded to its own longest row
        return run_all(rows, batches, run)

    monkeypatch.setattr(emb, "_run_all", spy)
    texts = [TEXTS[i % len(TEXTS)] for i in range(40)]
    emb.embed_fused(texts, _images(40), batch_size=batch_size)
    assert sum(rows for rows, _ in calls) == 40
    for rows, width in calls:
        assert rows <= batch_size
        assert budget is None or rows == 1 or rows * (width + 2) <= budget


@pytest.mark.parametrize(("variant", "fused_threads"), [("fp32", 2), ("int8", 1)])
def test_fused_graph_threads_follow_the_plan(mm_bundle, variant, fused_threads) -> None:
    emb = Embedder.load(mm_bundle.path, variant=variant, threads=2)
    assert emb._session.get_session_options().intra_op_num_threads == 1
    fused = emb._image_graph().backend.session
    assert fused.get_session_options().intra_op_num_threads == fused_threads
