"""Lossless coding of the unit grid (the transmitted mask), counted as side information.

Each unit is a binary symbol coded with compressai's rANS coder. Its probability adapts per
context, the context being the 4 causal neighbours (left, above-left, above, above-right):
16 contexts with Krichevsky-Trofimov counts, so no probability table is transmitted.
First byte: 0 = all kept, 1 = none kept, 2 = rANS stream follows.
"""

from __future__ import annotations

import numpy as np

_ALL, _NONE, _CODED = 0, 1, 2
_PRECISION = 16


class SideInfoError(ValueError):
    """A truncated or corrupt mask record."""


def _cdf(ones: float, zeros: float) -> list[int]:
    from compressai._CXX import pmf_to_quantized_cdf

    p1 = ones / (ones + zeros)
    return pmf_to_quantized_cdf([1.0 - p1, p1, 1e-6], _PRECISION)  # type: ignore[no-any-return]


def _context(grid: np.ndarray, r: int, c: int) -> int:
    h, w = grid.shape
    left = grid[r, c - 1] if c > 0 else 0
    up = grid[r - 1, c] if r > 0 else 0
    ul = grid[r - 1, c - 1] if r > 0 and c > 0 else 0
    ur = grid[r - 1, c + 1] if r > 0 and c + 1 < w else 0
    return int(left) | int(ul) << 1 | int(up) << 2 | int(ur) << 3


def encode_grid(grid: np.ndarray) -> bytes:
    """Code a bool (h, w) grid to bytes; the decoder must know (h, w)."""
    from compressai.ans import BufferedRansEncoder

    grid = np.asarray(grid, bool)
    if grid.all():
        return bytes([_ALL])
    if not grid.any():
        return bytes([_NONE])
    counts = np.full((16, 2), 0.5)
    enc = BufferedRansEncoder()
    for r in range(grid.shape[0]):
        for c in range(grid.shape[1]):
            ctx, bit = _context(grid, r, c), int(grid[r, c])
            cdf = _cdf(counts[ctx, 1], counts[ctx, 0])
            enc.encode_with_indexes([bit], [0], [cdf], [len(cdf)], [0])
            counts[ctx, bit] += 1
    return bytes([_CODED]) + enc.flush()


def decode_grid(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_grid` for a grid of shape (height, width)."""
    from compressai.ans import RansDecoder

    if not data:
        raise SideInfoError("mask record is empty")
    mode = data[0]
    if mode in (_ALL, _NONE):
        if len(data) != 1:
            raise SideInfoError("mask record has trailing bytes")
        return np.full((height, width), mode == _ALL)
    if mode != _CODED or len(data) < 5 or (len(data) - 1) % 4:
        raise SideInfoError(f"mask record is corrupt or truncated ({len(data)} bytes, mode {mode})")
    dec = RansDecoder()
    dec.set_stream(data[1:])
    grid = np.zeros((height, width), bool)
    counts = np.full((16, 2), 0.5)
    for r in range(height):
        for c in range(width):
            ctx = _context(grid, r, c)
            cdf = _cdf(counts[ctx, 1], counts[ctx, 0])
            bit = dec.decode_stream([0], [cdf], [len(cdf)], [0])[0]
            if bit not in (0, 1):
                raise SideInfoError("mask record is corrupt (decoded a non-binary symbol)")
            grid[r, c] = bool(bit)
            counts[ctx, bit] += 1
    return grid
