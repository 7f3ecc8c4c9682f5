"""Every image of a dataset decoded once into memory (RGBA uint8), then augmented per use.

Images are kept at their own size: compositing and resizing happen in
:func:`umr.images.to_model_input`, the one preprocessing the runtime uses too, so a
model sees the same pixels in training and in a bundle.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from umr.images import ImagePreprocess, open_image, to_model_input, to_rgba

from .augment import NO_AUGMENT, AugmentConfig, augment


class ImageCache:
    """RGBA arrays keyed by path; :meth:`pixels` turns a list of paths into model input."""

    def __init__(self, paths: Iterable[Path], pre: ImagePreprocess) -> None:
        self.pre = pre
        self._rgba: dict[Path, np.ndarray] = {}
        for p in sorted(set(paths)):
            self._rgba[p] = np.asarray(to_rgba(open_image(p, name=str(p))), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._rgba)

    def pixels(
        self,
        paths: list[Path | None],
        *,
        aug: AugmentConfig = NO_AUGMENT,
        rng: np.random.Generator | None = None,
        keep_colour: list[bool] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``pixels [B, 3, S, S]`` (zeros where a row has no image) and ``has_image [B]``."""
        from PIL import Image

        s = self.pre.size
        out = np.zeros((len(paths), 3, s, s), dtype=np.float32)
        has = np.zeros(len(paths), dtype=bool)
        for i, p in enumerate(paths):
            if p is None:
                continue
            img = Image.fromarray(self._rgba[p], mode="RGBA")
            if rng is not None and aug != NO_AUGMENT:
                img = augment(img, aug, rng, keep_colour[i] if keep_colour else False)
            out[i] = to_model_input(img, self.pre)
            has[i] = True
        return torch.from_numpy(out), torch.from_numpy(has)
