"""Training batches: random unit-aligned crops of training images with random masks.

Each crop draws one mask source from the config's weighted mix (DA-Mask, random patches,
ground truth, full frame, ...). The mask is made on the whole image, then cropped at a
unit-aligned offset, so its unit grid is exactly the grid the codec would code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vcm.data.coco import CocoDataset
from vcm.masks import MASKS
from vcm.train.config import DataConfig, TrainMask
from vcm.types import Mask, Sample


def _draw(params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Replace ``[lo, hi]`` number pairs by a uniform draw (ints stay ints)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, list) and len(v) == 2 and all(isinstance(a, (int, float)) for a in v):
            lo, hi = v
            out[k] = int(rng.integers(lo, hi + 1)) if all(isinstance(a, int) for a in v) else float(rng.uniform(lo, hi))
        else:
            out[k] = v
    return out


class CropSampler:
    """Draws batches ``x`` (B, 3, crop, crop) float in [0, 1] and grids (B, crop/unit, crop/unit)
    bool; with ``segments`` the second tensor is instead a long (B, crop, crop) map of segment ids
    0..S-1 per crop (the mask's instances, the rest one background segment), for codecs that use
    masks as training-time privileged information (SegPIC)."""

    def __init__(self, cfg: DataConfig, unit: int, rng: np.random.Generator, segments: bool = False) -> None:
        if cfg.crop % unit:
            raise ValueError(f"data.crop={cfg.crop} must be a multiple of the codec unit {unit}")
        ds = CocoDataset(root=cfg.root, split=cfg.split, limit=cfg.limit)
        self.samples: list[Sample] = [ds.load(i) for i in ds.ids()]
        small = [s.id for s in self.samples if min(s.image.shape[:2]) < cfg.crop]
        if small:
            raise ValueError(f"images smaller than data.crop={cfg.crop}: {', '.join(small[:5])}")
        self.cfg, self.unit, self.rng, self.segments = cfg, unit, rng, segments
        for m in cfg.masks:
            MASKS.get(m.type)  # unknown mask types fail now, not mid-training
        self.masks: tuple[TrainMask, ...] = cfg.masks or (TrainMask("none", {}),)
        w = np.array([m.weight for m in self.masks])
        self.p = w / w.sum()

    def _mask(self, sample: Sample) -> Mask:
        spec = self.masks[int(self.rng.choice(len(self.masks), p=self.p))]
        gen = MASKS.build(spec.type, _draw(spec.params, self.rng))
        # seeded generators (random, DA-Mask) draw from (seed, sample id): vary the id per crop
        ports = {"annotations": sample.annotations, "sample_id": f"{sample.id}#{self.rng.integers(2**62)}"}
        wanted = {k: v for k, v in ports.items() if k in gen.input_ports}
        return gen(image=sample.image, **wanted)

    def crop(self) -> tuple[np.ndarray, np.ndarray]:
        """One crop: image uint8 (c, c, 3) and its unit grid bool (c/unit, c/unit), or with
        ``segments`` its segment ids int64 (c, c)."""
        s = self.samples[int(self.rng.integers(len(self.samples)))]
        c, u = self.cfg.crop, self.unit
        h, w = s.image.shape[:2]
        i = int(self.rng.integers((h - c) // u + 1)) * u
        j = int(self.rng.integers((w - c) // u + 1)) * u
        mask = self._mask(s)
        ids = mask.labels if self.segments and mask.labels is not None else mask.pixels
        img, px = s.image[i:i + c, j:j + c], ids[i:i + c, j:j + c]
        if self.cfg.hflip and self.rng.random() < 0.5:
            img, px = img[:, ::-1], px[:, ::-1]
        if self.segments:  # contiguous ids 0..S-1 within the crop
            return np.ascontiguousarray(img), np.unique(px, return_inverse=True)[1].reshape(c, c).astype(np.int64)
        grid = Mask.from_pixels(px, u).grid
        if not grid.any():  # an all-masked crop teaches nothing: keep one random unit
            grid.flat[int(self.rng.integers(grid.size))] = True
        return np.ascontiguousarray(img), grid

    def batch(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, grids) or, with ``segments``, (x, segment maps)."""
        crops = [self.crop() for _ in range(self.cfg.batch_size)]
        x = torch.from_numpy(np.stack([c[0] for c in crops])).permute(0, 3, 1, 2).float().div(255)
        grid = torch.from_numpy(np.stack([c[1] for c in crops]))
        return x.to(device), grid.to(device)

