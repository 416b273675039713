"""MCM position records: which patches are visible, and in what order the tokens were sent.

``huffman`` (the paper's record, byte-exact with MCM's evaluation code): the ids in sampling
order written as decimal text separated by single spaces, Huffman-coded with MCM's fixed
11-symbol table, preceded by one byte giving the number (1..8) of zero bits padding the end.
The code tree is built exactly as MCM's ``huffman.py`` does (a ``heapq`` of nodes compared by
frequency only, left = 0), which fixes the tie-breaks and so the bytes; no library builds this
tree, so the ~40 lines below are our own. Decoding also gives the sending order.

``grid`` (our cheaper deviation): the ids sorted spatially, sent as vcm's unit-grid side info
(:mod:`vcm.masks.sideinfo`, context-adaptive arithmetic coding); the order is then raster by definition.
"""

from __future__ import annotations

import heapq
import re

import numpy as np

from vcm.masks.sideinfo import SideInfoError, decode_grid, encode_grid

TABLE = {" ": 255, "0": 46, "1": 156, "2": 112, "3": 56, "4": 56, "5": 52, "6": 45, "7": 45, "8": 45, "9": 45}
CODERS = ("huffman", "grid")


class PositionError(ValueError):
    """A corrupt or inconsistent position record."""


class _Node:
    """A Huffman tree node ordered by frequency alone, as in MCM's ``HeapNode``."""

    def __init__(self, freq: int, char: str | None = None, left: _Node | None = None,
                 right: _Node | None = None) -> None:
        self.freq, self.char, self.left, self.right = freq, char, left, right

    def __lt__(self, other: _Node) -> bool:
        return self.freq < other.freq


def huffman_codes(table: dict[str, int] = TABLE) -> dict[str, str]:
    """Symbol -> bit string; nodes pushed in table order, two smallest merged until one is left."""
    heap: list[_Node] = []
    for ch, f in table.items():
        heapq.heappush(heap, _Node(f, ch))
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        heapq.heappush(heap, _Node(a.freq + b.freq, None, a, b))
    codes: dict[str, str] = {}
    stack = [(heap[0], "")]
    while stack:
        node, code = stack.pop()
        if node.char is not None:
            codes[node.char] = code
        else:
            stack += [(node.right, code + "1"), (node.left, code + "0")]  # type: ignore[list-item]
    return codes


CODES = huffman_codes()
_DECODE = {v: k for k, v in CODES.items()}


def huffman_encode(ids: np.ndarray) -> bytes:
    """ids (V,) in sending order -> MCM's record (``np.savetxt`` of the (1, V) row, rstripped)."""
    bits = "".join(CODES[ch] for ch in " ".join(str(int(i)) for i in ids))
    pad = 8 - len(bits) % 8  # 1..8: a whole zero byte when already aligned, as in MCM
    bits = f"{pad:08b}" + bits + "0" * pad
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def huffman_decode(data: bytes, total: int) -> np.ndarray:
    """Inverse of :func:`huffman_encode`; ``total`` = number of patches (ids must be < total)."""
    if len(data) < 2 or not 1 <= data[0] <= 8:
        raise PositionError(f"position record is truncated or corrupt ({len(data)} bytes)")
    bits = "".join(f"{b:08b}" for b in data[1:])[: -data[0]]
    text, cur = [], ""
    for bit in bits:
        cur += bit
        if cur in _DECODE:
            text.append(_DECODE[cur])
            cur = ""
    s, digits = "".join(text), len(str(max(total - 1, 0)))
    if cur or (s and not re.fullmatch(r"(0|[1-9][0-9]{0,%d})( (0|[1-9][0-9]{0,%d}))*" % (digits - 1, digits - 1), s)):
        raise PositionError("position record is corrupt (not a list of patch ids)")
    ids = np.array([int(t) for t in s.split()], np.int64)
    if ids.size and (ids.max() >= total or len(np.unique(ids)) != ids.size):
        raise PositionError(f"position record is corrupt (ids repeat or exceed the {total} patches)")
    return ids


def encode_positions(ids: np.ndarray, grid_shape: tuple[int, int], coder: str) -> tuple[bytes, np.ndarray]:
    """(record, ids in the order the tokens must be laid out) for visible ``ids`` (V,)."""
    if coder == "huffman":
        return huffman_encode(ids), np.asarray(ids, np.int64)
    if coder == "grid":
        grid = np.zeros(grid_shape[0] * grid_shape[1], bool)
        grid[ids] = True
        return encode_grid(grid.reshape(grid_shape)), np.flatnonzero(grid)
    raise ValueError(f"position coder must be one of {CODERS}, got {coder!r}")


def decode_positions(data: bytes, grid_shape: tuple[int, int], coder: str) -> np.ndarray:
    """ids (V,) in layout order from a record; raises :class:`PositionError`."""
    if coder == "huffman":
        return huffman_decode(data, grid_shape[0] * grid_shape[1])
    try:
        return np.flatnonzero(decode_grid(data, *grid_shape))
    except SideInfoError as e:
        raise PositionError(str(e)) from e
