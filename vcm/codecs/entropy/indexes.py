"""CDF indexes of Gaussian scales in one vectorised search (for every learned codec that codes y).

compressai's ``GaussianConditional.build_indexes`` bounds the scales from below, then loops in
Python over the scale table (255 comparisons of the whole tensor with vcm's 256 levels)::

    index = len(table) - 1 - #{j < len(table) - 1 : scale <= table[j]}

Since the table is sorted, that count is ``len(table) - 1`` minus the number of
``table[:-1]`` entries below the scale, so the index is ``searchsorted(table[:-1], scale)``
(left side), the same integers for every input, NaN included (it maps to the last index in both).
"""

from __future__ import annotations

import torch
from compressai.entropy_models import GaussianConditional


def build_indexes(gc: GaussianConditional, scales: torch.Tensor) -> torch.Tensor:
    """Index of each scale's CDF in ``gc``'s table: int32, the shape of ``scales``.

    Equal to ``gc.build_indexes(scales)`` (also in its dtype promotions: the table is compared
    in the dtype of the bounded scales); needs the coder tables (``gc.update()``) built.
    """
    if gc.scale_table.numel() == 0:
        raise ValueError("the Gaussian conditional has no scale table: update its coder tables first")
    bounded = gc.lower_bound_scale(scales)
    bounds = gc.scale_table[:-1].to(bounded.dtype)
    return torch.searchsorted(bounds, bounded.contiguous(), out_int32=True)
