"""Turning request inputs (text, image data URL, or both) into a checked embedding plan.

Every check names the request field it failed on. Order: cheap checks on all inputs
first (lengths, Unicode, whether the bundle can embed images at all), then image
decoding, so a request with a bad 200th text is refused before any image is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from umr.errors import ImageError

from .config import Limits
from .errors import ApiError, from_umr_error
from .images import ImageLimits, decode_data_url
from .limits import check_text

TEXT, IMAGE, FUSED = "text", "image", "fused"


@dataclass(frozen=True)
class Input:
    """One thing to embed, with the request paths of its parts for error messages."""

    text: str | None
    image: str | None  # a data URL, not yet decoded
    text_field: str
    image_field: str

    @property
    def kind(self) -> str:
        """``text``, ``image`` or ``fused`` (text+image embedded as one vector)."""
        if self.image is None:
            return TEXT
        return IMAGE if self.text is None else FUSED


@dataclass(frozen=True)
class Capabilities:
    """Which input kinds the embedder can embed, and what to say when it cannot."""

    image: bool
    fused: bool
    name: str = "?"
    modalities: tuple[str, ...] = ("text",)

    @classmethod
    def of(cls, embedder: Any) -> Capabilities:
        """Images need 'image' in the embedder's modalities *and* the embedding method.

        The embedder's own ``modalities`` win over its manifest's: a multimodal bundle
        served where its image graph cannot run (a TensorRT engine of its text graph only)
        embeds text only.
        """
        declared = getattr(embedder, "modalities", None)
        if declared is None:
            declared = getattr(embedder.manifest, "modalities", None)
        modalities = tuple(declared or ("text",))
        has_images = "image" in modalities
        return cls(
            image=has_images and callable(getattr(embedder, "embed_image", None)),
            fused=has_images and callable(getattr(embedder, "embed_fused", None)),
            name=str(getattr(embedder.manifest, "name", "?")),
            modalities=modalities,
        )

    def require(self, item: Input) -> None:
        """400 naming the image field when ``item`` needs what the bundle lacks."""
        kind = item.kind
        if (kind == IMAGE and not self.image) or (kind == FUSED and not self.fused):
            what = "images" if kind == IMAGE else "text+image pairs"
            if not self.image and not self.fused:
                why = f"has no image graph (modalities: {', '.join(self.modalities)}); it embeds"
                why += " text only"
            else:
                why = f"cannot embed {what}"
            raise ApiError(
                400,
                "unsupported_modality",
                f"{item.image_field}: bundle {self.name!r} {why}; {what} need a multimodal "
                "bundle (exported with the image graph)",
                item.image_field,
            )


@dataclass
class Plan:
    """Inputs grouped by kind; ``positions[kind][j]`` is the input index of row ``j``."""

    count: int
    texts: list[str] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)  # decoded PIL images
    fused: list[tuple[str, Any]] = field(default_factory=list)
    positions: dict[str, list[int]] = field(
        default_factory=lambda: {TEXT: [], IMAGE: [], FUSED: []}
    )
    image_urls: list[tuple[int, Input]] = field(default_factory=list)

    @property
    def image_count(self) -> int:
        """Images still to decode (the caller decides whether to do it off the event loop)."""
        return len(self.image_urls)

    def images_as_pairs(self) -> None:
        """Embed the lone images as pairs with the empty text: the layout the model was
        trained on for an image query with an instruction (``[CLS] image [instr] [SEP]``)."""
        self.fused.extend(("", img) for img in self.images)
        self.positions[FUSED].extend(self.positions[IMAGE])
        self.images, self.positions[IMAGE] = [], []


def plan_inputs(items: Sequence[Input], caps: Capabilities, limits: Limits) -> Plan:
    """Check every input and group them by kind; images are decoded by :func:`decode_images`."""
    plan = Plan(count=len(items))
    for i, item in enumerate(items):
        if item.text is not None:
            check_text(item.text, limits.max_text_chars, item.text_field)
        caps.require(item)
        if item.kind == TEXT:
            plan.positions[TEXT].append(i)
            plan.texts.append(item.text or "")
        else:
            plan.image_urls.append((i, item))
    return plan


def decode_images(plan: Plan, limits: Limits) -> None:
    """Decode every image of ``plan`` in place; the first bad one raises a 400 naming it."""
    bounds = ImageLimits(limits.max_image_bytes, limits.max_image_pixels)
    for i, item in plan.image_urls:
        assert item.image is not None
        try:
            image = decode_data_url(item.image, bounds, item.image_field)
        except ImageError as exc:
            raise from_umr_error(exc, item.image_field) from None
        if item.kind == IMAGE:
            plan.positions[IMAGE].append(i)
            plan.images.append(image)
        else:
            plan.positions[FUSED].append(i)
            plan.fused.append((item.text or "", image))
    plan.image_urls = []


def pixels(images: Sequence[Any]) -> int:
    """Total pixels of PIL images (the batcher's pixel budget)."""
    return sum(img.width * img.height for img in images)
