"""The model shipped in the repository loads, verifies and embeds every input kind."""

from __future__ import annotations

import pytest
import torch
from umr.training.checkpoint import BUILTIN_CHECKPOINTS, load_checkpoint, read_checkpoint_meta
from umr.training.model.build import has_lora
from umr.training.model.text_batch import TextBatcher

pytestmark = pytest.mark.slow


def test_shipped_model_is_small_and_verified() -> None:
    root = BUILTIN_CHECKPOINTS["default"]
    meta = read_checkpoint_meta(root)  # raises on any checksum mismatch
    assert meta["lora"] is True
    assert sum(p.stat().st_size for p in root.iterdir()) <= 20 * 1024 * 1024


def test_shipped_model_embeds_text_images_and_pairs() -> None:
    model = load_checkpoint("default").eval()
    assert model.cfg.name == "umr-minilm-vision" and has_lora(model)
    tb = TextBatcher(model.backbone_dir / "tokenizer.json", model.cfg.max_text_tokens)
    feeds = tb.encode(["grinning face", None, "dark skin tone"], ["Find the image.", None, None])
    px = torch.zeros(3, 3, model.cfg.image.size, model.cfg.image.size)
    with torch.no_grad():
        out = model(**feeds, pixels=px, has_image=torch.tensor([False, True, True]))
    assert out.shape == (3, 384) and torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
