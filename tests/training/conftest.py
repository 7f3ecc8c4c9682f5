"""Tiny training fixtures made on the fly: a 2-layer BERT backbone and a shapes dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

WORDS = [
    "red",
    "green",
    "blue",
    "yellow",
    "circle",
    "square",
    "triangle",
    "cross",
    "filled",
    "outline",
    "dark",
    "light",
    "skin",
    "tone",
    "find",
    "the",
    "image",
    "of",
    "this",
    "name",
    "shape",
    "colour",
    "icon",
    "emoji",
    "a",
    "with",
    "in",
]
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
}
SHAPES = ("circle", "square", "triangle", "cross")


def write_backbone(path: Path) -> Path:
    """A random 2-layer BERT saved like a Hugging Face directory, with a WordPiece tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    path.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate([*SPECIALS, *WORDS])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(path / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(str(path), safe_serialization=True)
    return path


def _draw(shape: str, colour: tuple[int, int, int], size: int = 16):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    box = (2, 2, size - 3, size - 3)
    if shape == "circle":
        d.ellipse(box, fill=(*colour, 255))
    elif shape == "square":
        d.rectangle(box, fill=(*colour, 255))
    elif shape == "triangle":
        d.polygon([(size // 2, 2), (2, size - 3), (size - 3, size - 3)], fill=(*colour, 255))
    else:
        d.line((2, 2, size - 3, size - 3), fill=(*colour, 255), width=3)
        d.line((2, size - 3, size - 3, 2), fill=(*colour, 255), width=3)
    return img


def write_dataset(root: Path) -> Path:
    """train.jsonl and test.jsonl over 16 coloured shapes, five tasks."""
    from umr.training.data.records import Record, Side, write_records

    (root / "images").mkdir(parents=True, exist_ok=True)
    recs: list = []
    for shape in SHAPES:
        for name, rgb in COLOURS.items():
            base = root / "images" / f"{name}-{shape}.png"
            _draw(shape, rgb).save(base)
            dark = root / "images" / f"{name}-{shape}-dark.png"
            _draw(shape, tuple(int(c * 0.4) for c in rgb)).save(dark)
            text = f"{name} {shape}"
            meta = {"identity": text, "styles": ["flat"]}
            recs += [
                Record(
                    "qt->ci",
                    Side(text=text, instruction="find the image of this name"),
                    Side(image=base),
                    meta=meta,
                ),
                Record(
                    "qi->ct",
                    Side(image=base, instruction="find the name"),
                    Side(text=text),
                    meta=meta,
                ),
                Record("qi->ci", Side(image=base), Side(image=dark), meta=meta),
                Record("(qi,qt)->ci", Side(text="dark", image=base), Side(image=dark), meta=meta),
                Record("qt->ct", Side(text=f"{shape} {name}"), Side(text=text), meta=meta),
            ]
    write_records(root / "train.jsonl", recs)
    write_records(root / "test.jsonl", recs)
    return root


def write_recipe(path: Path, data: Path, steps: int = 4, **stage2: object) -> Path:
    recipe = {
        "name": "tiny",
        "model": "umr-tiny",
        "data": str(data),
        "seed": 0,
        "precision": "fp32",  # the same computation on every CPU ("auto" would vary)
        "log_every": 1,
        "checkpoint_every": 2,
        "stages": [
            {
                "name": "align",
                "steps": steps,
                "batch_size": 8,
                "lr": 0.003,
                "warmup": 1,
                "tasks": {"qt->ci": 1.0, "qi->ct": 1.0, "qi->ci": 1.0},
                "text_bank": True,
            },
            {
                "name": "multi",
                "steps": steps,
                "batch_size": 8,
                "lr": 0.002,
                "lora_lr": 0.001,
                "warmup": 1,
                "backbone": "lora",
                "hard_negatives": 1,
                "mine_before": True,
                "mine_top": 2,
                "text_bank": True,
                "tasks": {"qt->ci": 1.0, "(qi,qt)->ci": 1.0, "qt->ct": 0.5},
                **stage2,
            },
        ],
    }
    path.write_text(json.dumps(recipe))
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tiny models gain nothing from threads, and spinning OpenMP workers on a busy
    2-core machine turn millisecond steps into seconds."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_backbone(tmp_path_factory.mktemp("backbone"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("shapes"))


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def recipe_writer():  # type: ignore[no-untyped-def]
    """:func:`write_recipe` itself, for fixtures wider than one test."""
    return write_recipe


@pytest.fixture()
def make_recipe(tmp_path: Path, tiny_data: Path):  # type: ignore[no-untyped-def]
    """``make_recipe(steps=4, **stage2_overrides) -> Path`` of a two-stage tiny recipe."""

    def make(steps: int = 4, **stage2: object) -> Path:
        return write_recipe(tmp_path / "recipe.json", tiny_data, steps, **stage2)

    return make
