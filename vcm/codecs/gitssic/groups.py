"""Group maps for GIT-SSIC: one int id per 16x16-pixel latent cell (brief sections 2.4, 2.5).

Id 0 is the background (cells outside the keep-mask); ids 1..K are the kept groups. The map is
coded at the latent granularity the encoder uses (16 px), so the decoder sees exactly the
encoder's grouping (the released code sends it at 32 px: brief 2.5 pitfall).
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from vcm.types import Mask

MAX_GROUPS = 256  # ids fit one byte in the coded map


class GroupMapError(ValueError):
    """A group map that cannot be coded or a corrupt group-map record."""


def components(grid: np.ndarray) -> np.ndarray:
    """Connected components (4-connectivity) of a bool (h, w) grid: int32 ids, 0 = outside."""
    _, labels = cv2.connectedComponents(grid.astype(np.uint8), connectivity=4)
    return labels.astype(np.int32)


def _cell_majority(labels: np.ndarray, grid: np.ndarray, unit: int) -> np.ndarray:
    """Per kept cell, its most frequent instance id (0 where no pixel has an id)."""
    gh, gw = grid.shape
    padded = np.zeros((gh * unit, gw * unit), np.int32)
    padded[: labels.shape[0], : labels.shape[1]] = labels
    cells = padded.reshape(gh, unit, gw, unit).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    out = np.zeros((gh, gw), np.int32)
    for r, c in zip(*np.nonzero(grid)):
        ids = cells[r, c][cells[r, c] > 0]
        if ids.size:
            out[r, c] = np.bincount(ids).argmax()
    return out


def instance_groups(mask: Mask, unit: int) -> np.ndarray:
    """One group per instance of ``mask.labels`` on the unit grid; kept cells without an id
    (e.g. from dilation) join the nearest instance. Falls back to components without labels."""
    grid = Mask.from_pixels(mask.coded_pixels(), unit).grid
    if mask.labels is None or not (mask.labels > 0).any():
        return components(grid)
    cell = _cell_majority(mask.labels, grid, unit)
    if not cell.any():
        return components(grid)
    from scipy.ndimage import distance_transform_edt

    _, (ri, ci) = distance_transform_edt(cell == 0, return_indices=True)
    return np.where(grid, cell[ri, ci], 0).astype(np.int32)


def relabel(ids: np.ndarray) -> np.ndarray:
    """Renumber ids to 0..K in order of first appearance, keeping 0 as the background."""
    uniq, first = np.unique(ids.ravel(), return_index=True)
    order = [u for _, u in sorted(zip(first, uniq)) if u != 0]
    lut = {0: 0} | {u: i + 1 for i, u in enumerate(order)}
    return np.vectorize(lut.__getitem__, otypes=[np.int32])(ids) if ids.size else ids.astype(np.int32)


def group_map(mask: Mask, unit: int, mode: str) -> np.ndarray:
    """int32 (ceil(H/unit), ceil(W/unit)) ids from a keep-mask: ``components`` or ``instances``."""
    if mode == "components":
        ids = components(Mask.from_pixels(mask.coded_pixels(), unit).grid)
    elif mode == "instances":
        ids = instance_groups(mask, unit)
    else:
        raise ValueError(f"unknown group mode {mode!r} (components, instances)")
    ids = relabel(ids)
    if ids.max(initial=0) >= MAX_GROUPS:
        raise GroupMapError(f"{ids.max() + 1} groups; at most {MAX_GROUPS} can be coded")
    return ids


def encode_groups(ids: np.ndarray) -> bytes:
    """Lossless record of an id map; the decoder knows its shape from the image size."""
    return zlib.compress(ids.astype(np.uint8).tobytes(), 9)


def decode_groups(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(data, shape[0] * shape[1] + 1)  # a record cannot inflate beyond its map
    except zlib.error as e:
        raise GroupMapError(f"group map record is corrupt: {e}") from e
    if len(raw) != shape[0] * shape[1] or not inflate.eof:
        raise GroupMapError(f"group map has {len(raw)} cells, the image needs {shape[0]}x{shape[1]}")
    return np.frombuffer(raw, np.uint8).reshape(shape).astype(np.int32)


def random_groups(h: int, w: int, rng: np.random.Generator, cell: int = 2, p: float = 0.1,
                  empty: float = 0.5) -> np.ndarray:
    """Training group map on an (h, w) latent grid (brief 2.4, the released generator's logic).

    Seeds fall on ``cell``-latent cells (32 px) with probability ``p``; each grows into a box of
    2-3 x 2-3 cells; connected components become groups. With probability ``empty`` the map is
    all zeros (one group: plain coding).
    """
    out = np.zeros((h, w), bool)
    if rng.random() >= empty:
        ch, cw = -(-h // cell), -(-w // cell)
        for r, c in zip(*np.nonzero(rng.random((ch, cw)) < p)):
            bh, bw = rng.integers(2, 4, size=2)
            out[r * cell:(r + bh) * cell, c * cell:(c + bw) * cell] = True
    return components(out)


def partition_mask(height: int, width: int, n: int, unit: int = 16, seed: int = 0) -> Mask:
    """A keep-everything mask whose instance labels split the frame into ``n`` groups (nearest of
    ``n`` random seed cells on the ``unit`` grid): ``instances`` grouping gives exactly ``n``."""
    gh, gw = Mask.grid_shape(height, width, unit)
    if not 1 <= n <= min(gh * gw, MAX_GROUPS - 1):
        raise ValueError(f"cannot split a {gh}x{gw} grid into {n} groups")
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    seeds = np.random.default_rng(seed).choice(gh * gw, n, replace=False)
    nearest = ((rows[:, None] - rows[seeds]) ** 2 + (cols[:, None] - cols[seeds]) ** 2).argmin(1)
    labels = (nearest + 1).reshape(gh, gw).astype(np.int32).repeat(unit, 0).repeat(unit, 1)[:height, :width]
    return Mask.from_pixels(np.ones((height, width), bool), unit, labels)
