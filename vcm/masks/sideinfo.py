"""Lossless coding of the unit grid (the transmitted mask), counted as side information.

Units are coded in raster order, one binary symbol each, on compressai's rANS coder
(:mod:`vcm.masks.binary_rans`) with an adaptive probability that only depends on units already
coded, so no table is transmitted.
Two probability models; the encoder codes the grid with both and keeps the shorter record:

* ``edges``: the 4 causal neighbours (left, above-left, above, above-right) select one of 16
  contexts with Krichevsky-Trofimov counts. Best for compact regions (objects).
* ``density``: the weighted fraction of kept units in the causal window of ``R`` units
  (weights 12 // (|dy| + |dx|)), shrunk towards the fraction kept so far with weight ``BETA``:
  ``p1 = (S + BETA * rate) / (N + BETA)``. Best for scattered masks (DA-Mask, random units),
  whose density follows the image texture.

Record, first byte (the format): 0 = all units kept, 1 = none kept, 3 = ``edges`` model,
4 = ``density`` model; the rANS string follows (a multiple of 4 bytes). Format 5 is an exact
pixel mask (:func:`encode_pixels`): lossless WebP (libwebp via Pillow) of the 0/255 mask. Format 2 (vcm's earlier
coder: ``edges`` contexts with unquantised probabilities) is refused with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vcm.masks.binary_rans import PROB_ONE, BinaryRansError, BitDecoder, BitEncoder

_ALL, _NONE, _RANS_V1, PIXELS = 0, 1, 2, 5
FORMATS = {"edges": 3, "density": 4}  # model name -> format byte
R = 4  # density window: rows r-R..r, columns c-R..c+R (units)
BETA = 48  # prior weight of the running rate, in the same units as the weights
Code = Callable[[int], int]  # p1 -> the bit (encoder: codes the known bit; decoder: decodes it)


class SideInfoError(ValueError):
    """A truncated or corrupt mask record."""


def _clamp(p1: int) -> int:
    return min(max(p1, 1), PROB_ONE - 1)


def _edges(h: int, w: int, code: Code) -> np.ndarray:
    """Scan an (h, w) grid with the ``edges`` model; ``code`` gives each bit."""
    grid = np.zeros((h, w), np.uint8)
    counts = [[0, 0] for _ in range(16)]
    prev = [0] * (w + 2)  # row above, one zero each side
    for r in range(h):
        cur = [0] * (w + 2)
        for c in range(1, w + 1):
            ctx = cur[c - 1] | prev[c - 1] << 1 | prev[c] << 2 | prev[c + 1] << 3
            n0, n1 = counts[ctx]
            bit = code(_clamp(((2 * n1 + 1) << 16) // (2 * (n0 + n1) + 2)))
            counts[ctx][bit] += 1
            cur[c] = bit
        grid[r] = cur[1:-1]
        prev = cur
    return grid


def _weights() -> np.ndarray:
    """Integer weights of the causal window, (R + 1, 2R + 1); row R is the current row."""
    dy, dx = np.mgrid[R:-1:-1, -R:R + 1]
    wgt = 12 // np.maximum(np.abs(dy) + np.abs(dx), 1)
    wgt[R, R:] = 0  # the unit itself and the units after it
    return wgt.astype(np.int64)


def _row_terms(row: np.ndarray, wgt: np.ndarray) -> np.ndarray:
    """What a finished row adds to the weighted sums of the R rows below it: (R, w), entry
    [dy - 1, c] for the row dy below, column c (the weights are symmetric in dx)."""
    return np.stack([np.convolve(row, wgt[R - dy])[R:R + len(row)] for dy in range(1, R + 1)])


def _density(h: int, w: int, code: Code) -> np.ndarray:
    """Scan an (h, w) grid with the ``density`` model; ``code`` gives each bit."""
    wgt = _weights()
    left = wgt[R, R - 1::-1].tolist()  # weights of the units 1..R to the left
    left_sum = [sum(left[k] for k in range(R) if m >> k & 1) for m in range(1 << R)]  # by the last R bits
    n_left = [sum(left[:min(c, R)]) for c in range(w)]
    n_terms = _row_terms(np.ones(w, np.int64), wgt)
    grid = np.zeros((h, w), np.uint8)
    acc = np.zeros((R, w), np.int64)  # acc[i]: the weighted sums from the rows done, for row r + i
    ones = count = 0
    for r in range(h):
        s_above, n_above = acc[0].tolist(), n_terms[:min(r, R)].sum(0).tolist()
        row, last = [], 0  # last: the previous R bits of this row, the nearest in bit 0
        for c in range(w):
            num = 2 * (s_above[c] + left_sum[last]) * (count + 1) + BETA * (2 * ones + 1)
            bit = code(_clamp((num << 16) // (2 * (n_above[c] + n_left[c] + BETA) * (count + 1))))
            row.append(bit)
            last = (last << 1 | bit) & ((1 << R) - 1)
            ones, count = ones + bit, count + 1
        grid[r] = row
        acc = np.concatenate([acc[1:], np.zeros((1, w), np.int64)]) + _row_terms(np.array(row, np.int64), wgt)
    return grid


_MODELS: dict[int, Callable[[int, int, Code], np.ndarray]] = {FORMATS["edges"]: _edges,
                                                              FORMATS["density"]: _density}


def _encode_with(fmt: int, grid: np.ndarray) -> bytes:
    enc, bits = BitEncoder(), iter(grid.reshape(-1).tolist())
    _MODELS[fmt](*grid.shape, lambda p1: enc.encode(int(next(bits)), p1))
    return bytes([fmt]) + enc.finish()


MAX_GRID_CELLS = 1 << 21  # the context coder decodes ~1.4 us a cell: 2M cells ~3 s (16384^2 px at unit 16: 1M)


def _check_cells(height: int, width: int) -> None:
    if height * width > MAX_GRID_CELLS:
        raise SideInfoError(f"a {height}x{width} mask grid has more than {MAX_GRID_CELLS} cells: use a larger "
                            "unit, or precision 'pixel' for an exact mask")


def encode_grid(grid: np.ndarray, model: str | None = None) -> bytes:
    """Code a bool (h, w) grid to bytes; the decoder must know (h, w). ``model`` (a key of
    :data:`FORMATS`) forces one model for a grid that is neither all kept nor all masked;
    None keeps the shorter record. Grids over :data:`MAX_GRID_CELLS` are refused."""
    grid = np.asarray(grid, bool)
    _check_cells(*grid.shape)
    if grid.all():
        return bytes([_ALL])
    if not grid.any():
        return bytes([_NONE])
    if model is not None:
        return _encode_with(FORMATS[model], grid)
    return min((_encode_with(fmt, grid) for fmt in _MODELS), key=len)


def decode_grid(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_grid` for a grid of shape (height, width)."""
    if not data:
        raise SideInfoError("mask record is empty")
    fmt = data[0]
    if fmt in (_ALL, _NONE):
        if len(data) != 1:
            raise SideInfoError("mask record has trailing bytes")
        return np.full((height, width), fmt == _ALL)
    if fmt == _RANS_V1:
        raise SideInfoError("mask record has format 2 (the unit-map coder vcm used before formats 3/4), "
                            "which this vcm no longer reads: encode the image again")
    if fmt not in _MODELS or len(data) < 5 or (len(data) - 1) % 4:
        raise SideInfoError(f"mask record is corrupt or truncated ({len(data)} bytes, format {fmt})")
    _check_cells(height, width)
    try:
        grid = _MODELS[fmt](height, width, BitDecoder(data[1:], height * width).decode).astype(bool)
    except BinaryRansError as e:
        raise SideInfoError(f"mask record is corrupt: {e}") from e
    if grid.all() or not grid.any():
        raise SideInfoError("mask record is corrupt (a coded grid that is all kept or all masked)")
    return grid


def encode_pixels(pixels: np.ndarray) -> bytes:
    """An exact bool (H, W) mask as a format-5 record: lossless WebP, about 0.01-0.02 bpp for
    COCO object masks (the unit grid costs ~0.0007)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8) * 255, "L").save(buf, "WEBP", lossless=True, quality=100, method=6)
    return bytes([PIXELS]) + buf.getvalue()


def decode_pixels(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_pixels`; the record must hold a (height, width) 0/255 mask."""
    import io

    from PIL import Image

    if data[:1] != bytes([PIXELS]):
        raise SideInfoError(f"not a pixel-mask record (format {data[:1].hex() or 'missing'})")
    try:
        with Image.open(io.BytesIO(data[1:])) as im:
            if im.format != "WEBP" or im.size != (width, height):
                raise SideInfoError(f"pixel mask is {im.format} {im.size[0]}x{im.size[1]}, expected WEBP {width}x{height}")
            arr = np.asarray(im.convert("L"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise SideInfoError(f"pixel mask cannot be decoded: {type(e).__name__}: {e}") from e
    if not np.isin(arr, (0, 255)).all():
        raise SideInfoError("pixel mask holds values other than 0 and 255")
    return arr > 0
