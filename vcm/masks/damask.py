"""DA-Mask (MCM, Li et al. 2023): texture x structure scores per mask unit, sampled to a ratio.

Per unit i (16x16 by default, at native resolution; MCM resizes to 256x256 first):
    t_i = mean(convertScaleAbs(Laplacian(gray(crop_i), CV_16S, ksize=3)))   # per-crop, reflect-101
    s_i = mean(255 * S[crop_i]) + 0.1     # S: a structure mask from another node (else s_i = 1)
    c_i = t_i * s_i
Then V = round(ratio * units) are drawn without replacement with probability proportional to
c_i (MCM's code: torch.multinomial), done here as Gumbel-top-V on log c_i, which has the same
distribution. ``sampling: softmax`` gives the paper's text instead (proportional to exp(c_i)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import cv2
import numpy as np

from vcm.masks.base import sample_rng, visible_count
from vcm.types import DEFAULT_UNIT, Mask, check_image


def texture_scores(image: np.ndarray, unit: int = DEFAULT_UNIT) -> np.ndarray:
    """Mean absolute 3x3 Laplacian per unit crop, float (ceil(H/unit), ceil(W/unit))."""
    gray = cv2.cvtColor(check_image(image), cv2.COLOR_RGB2GRAY)
    gh, gw = Mask.grid_shape(*gray.shape, unit)
    out = np.zeros((gh, gw))
    for r in range(gh):
        for c in range(gw):
            crop = np.ascontiguousarray(gray[r * unit:(r + 1) * unit, c * unit:(c + 1) * unit])
            lap = cv2.convertScaleAbs(cv2.Laplacian(crop, cv2.CV_16S, ksize=3))
            out[r, c] = lap.mean()
    return out


def structure_scores(structure: Mask, unit: int = DEFAULT_UNIT) -> np.ndarray:
    """Mean of the 0/255 structure map per unit, plus 0.1."""
    px = structure.pixels.astype(np.float64) * 255.0
    h, w = px.shape
    gh, gw = Mask.grid_shape(h, w, unit)
    out = np.zeros((gh, gw))
    for r in range(gh):
        for c in range(gw):
            out[r, c] = px[r * unit:(r + 1) * unit, c * unit:(c + 1) * unit].mean() + 0.1
    return out


def sample_visible(scores: np.ndarray, count: int, rng: np.random.Generator,
                   sampling: str = "multinomial") -> np.ndarray:
    """Indices of ``count`` units drawn without replacement; flat indices into ``scores``."""
    flat = scores.reshape(-1).astype(np.float64)
    if sampling == "multinomial":
        logits = np.log(np.maximum(flat, 0.0) + 1e-12)
    elif sampling == "softmax":
        logits = flat
    else:
        raise ValueError(f"sampling must be 'multinomial' or 'softmax', got {sampling!r}")
    keys = logits + rng.gumbel(size=flat.shape)
    return np.argsort(-keys, kind="stable")[:count]


TERMS = ("both", "texture", "structure")


class DAMask:
    """Dual-adaptive mask.

    Args:
        visible_ratio: fraction of units kept, in [0, 1].
        seed: base seed; each image gets its own stream from (seed, sample id).
        sampling: ``multinomial`` (MCM code) or ``softmax`` (MCM paper text).
        terms: which scores drive sampling: ``both`` (t_i * s_i, DA-Mask), ``texture`` (t_i)
            or ``structure`` (s_i; needs the structure input): MCM's Table 2 ablation.
        unit: mask-unit size in pixels.
    """

    input_ports: ClassVar[Mapping[str, str]] = {
        "image": "image", "sample_id": "sample_id", "structure": "mask"}
    optional_ports: ClassVar[frozenset[str]] = frozenset({"structure"})

    def __init__(self, *, visible_ratio: float = 0.5, seed: int = 0, sampling: str = "multinomial",
                 terms: str = "both", unit: int = DEFAULT_UNIT) -> None:
        visible_count(1, visible_ratio)
        if sampling not in ("multinomial", "softmax"):
            raise ValueError(f"sampling must be 'multinomial' or 'softmax', got {sampling!r}")
        if terms not in TERMS:
            raise ValueError(f"terms must be one of {TERMS}, got {terms!r}")
        self.visible_ratio, self.seed, self.sampling, self.unit = visible_ratio, seed, sampling, unit
        self.terms = terms

    def __call__(self, *, image: np.ndarray, sample_id: str = "", structure: Mask | None = None,
                 **_: Any) -> Mask:
        h, w = check_image(image).shape[:2]
        scores = texture_scores(image, self.unit) if self.terms != "structure" else np.ones(Mask.grid_shape(h, w, self.unit))
        if self.terms == "structure" and structure is None:
            raise ValueError("DA-Mask with terms='structure' needs a structure mask input")
        if structure is not None and self.terms != "texture":
            structure.check_fits(image)
            scores = scores * structure_scores(structure, self.unit)
        keep = sample_visible(scores, visible_count(scores.size, self.visible_ratio),
                              sample_rng(self.seed, sample_id), self.sampling)
        grid = np.zeros(scores.size, bool)
        grid[keep] = True
        return replace(Mask.from_grid(grid.reshape(scores.shape), h, w, self.unit), order=keep.astype(np.int64))
