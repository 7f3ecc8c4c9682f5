"""The encoder: registry, config validation, text path = backbone, image tokens, LoRA merge."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from umr.training.model.build import build_model, has_lora, merge_lora
from umr.training.model.config import config_from_dict
from umr.training.model.registry import get_config, list_models
from umr.training.model.text_batch import TextBatcher

from umr.errors import ConfigError


def test_registry_lists_and_names_what_exists() -> None:
    assert {"umr-minilm-vision", "umr-minilm-score-fusion", "umr-tiny"} <= set(list_models())
    with pytest.raises(ConfigError, match="built-in models"):
        get_config("nope")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"fusion": "late"}, "fusion"),
        ({"vision": {"image_tokens": 5}}, "square"),
        ({"vision": {"wdth": 3}}, "unknown keys"),
        ({"extra": 1}, "unknown keys"),
    ],
)
def test_bad_configs(patch: dict, message: str) -> None:
    data = {**get_config("umr-tiny").to_dict(), **patch}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_config_round_trips() -> None:
    cfg = get_config("umr-minilm-vision")
    assert config_from_dict(cfg.to_dict()) == cfg


def _model(backbone: Path, **kw: object):  # type: ignore[no-untyped-def]
    return build_model("umr-tiny", backbone_dir=backbone, **kw)


def test_text_only_rows_run_the_backbone_unchanged(tiny_backbone: Path) -> None:
    model = _model(tiny_backbone).eval()
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    feeds = tb.encode(["red circle", "blue square with a cross"], [None, None])
    with torch.no_grad():
        ours = model(**feeds)
        hidden = model.backbone(
            input_ids=feeds["input_ids"], attention_mask=feeds["attention_mask"]
        )
        m = feeds["attention_mask"].unsqueeze(-1).float()
        ref = torch.nn.functional.normalize(
            (hidden.last_hidden_state * m).sum(1) / m.sum(1), dim=-1
        )
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_instruction_is_attended_but_not_pooled(tiny_backbone: Path) -> None:
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    feeds = tb.encode(["red circle", "red circle"], ["find the image", None])
    assert feeds["pool_mask"][0].tolist()[:4] == [1, 0, 0, 0]
    assert feeds["pool_mask"][0].sum() == feeds["pool_mask"][1].sum()
    with torch.no_grad():
        out = _model(tiny_backbone).eval()(**feeds)
    assert not torch.allclose(out[0], out[1])  # the instruction conditions the vector


def test_images_pairs_and_batch_invariance(tiny_backbone: Path) -> None:
    model = _model(tiny_backbone).eval()
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    feeds = tb.encode([None, "dark", "red"], [None, None, None])
    px = torch.randn(3, 3, 16, 16)
    has = torch.tensor([True, True, False])
    with torch.no_grad():
        both = model(**feeds, pixels=px, has_image=has)
        alone = model(**tb.encode(["red"], [None]))
        first = model(**tb.encode([None], [None]), pixels=px[:1], has_image=has[:1])
    torch.testing.assert_close(both[2], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[0], first[0], atol=1e-5, rtol=1e-5)
    assert torch.allclose(both.norm(dim=-1), torch.ones(3))


def test_lora_merge_keeps_outputs(tiny_backbone: Path) -> None:
    model = _model(tiny_backbone, lora=True).eval()
    with torch.no_grad():
        for n, p in model.backbone.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)  # B starts at zero; make the adapter do something
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    feeds = tb.encode(["red circle"], [None])
    with torch.no_grad():
        before = model(**feeds)
        merge_lora(model)
        after = model(**feeds)
    assert not has_lora(model)
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-4)


def test_score_fusion_sums_the_two_vectors(tiny_backbone: Path) -> None:
    cfg = config_from_dict({**get_config("umr-tiny").to_dict(), "fusion": "score"})
    model = build_model(cfg, backbone_dir=tiny_backbone).eval()
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    px = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        t = model(**tb.encode(["red"], [None]))
        i = model(**tb.encode([None], [None]), pixels=px, has_image=torch.tensor([True]))
        pair = model(**tb.encode(["red"], [None]), pixels=px, has_image=torch.tensor([True]))
    torch.testing.assert_close(
        pair, torch.nn.functional.normalize(t + i, dim=-1), atol=1e-5, rtol=1e-5
    )


def test_encode_text_is_early_fusions_text_path_for_either_fusion(tiny_backbone: Path) -> None:
    early = _model(tiny_backbone).eval()
    cfg = config_from_dict({**get_config("umr-tiny").to_dict(), "fusion": "score"})
    score = build_model(cfg, backbone_dir=tiny_backbone).eval()
    tb = TextBatcher(tiny_backbone / "tokenizer.json", 16)
    feeds = tb.encode(["red circle", "blue square with a cross"], ["find the image", None])
    ids, attn, pool = feeds["input_ids"], feeds["attention_mask"], feeds["pool_mask"]
    with torch.no_grad():
        # Bit for bit: the default run's text lookups must not change (training/branch.py).
        assert torch.equal(early.encode_text(ids, attn, pool), early(**feeds))
        assert torch.equal(score.encode_text(ids, attn, pool), early(**feeds))
        torch.testing.assert_close(score(**feeds), early(**feeds), atol=1e-6, rtol=0)
