"""The vcm bitstream container: a small header, the mask record (side info), payload sections.

Layout (all counted in bpp)::

    header : b"vc" | codec tag (1 B) | flags (1 B: bit0 mask present, bits1-3 log2(unit))
             | height, width, number of payload sections, side length, section lengths (LEB128)
    side   : the coded mask grid (:mod:`vcm.masks.sideinfo`), empty when no mask is sent
    payload: the codec's sections, concatenated
"""

from __future__ import annotations

from dataclasses import dataclass

from vcm.types import Bitstream

MAGIC = b"vc"
TAGS = {"jpeg": 1, "webp": 2, "avif": 3, "png": 4, "compressai": 16, "emic": 32, "gitssic": 33,
        "mcm": 34, "segpic": 35}


class BitstreamError(ValueError):
    """A truncated, corrupt or foreign bitstream."""


@dataclass(frozen=True)
class Container:
    codec: str
    height: int
    width: int
    unit: int
    has_mask: bool
    side: bytes
    sections: tuple[bytes, ...]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data):
            raise BitstreamError("bitstream truncated inside the header")
        b = data[pos]
        n |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return n, pos
        if shift > 35:
            raise BitstreamError("bitstream header has an overlong number")


def pack(c: Container) -> Bitstream:
    """Serialise ``c``; the returned Bitstream records header / side / payload sizes."""
    if c.unit & (c.unit - 1) or not 1 <= c.unit <= 128:
        raise ValueError(f"mask unit must be a power of two <= 128, got {c.unit}")
    flags = int(c.has_mask) | (c.unit.bit_length() - 1) << 1
    header = MAGIC + bytes([TAGS[c.codec], flags])
    header += b"".join(_varint(v) for v in (c.height, c.width, len(c.sections), len(c.side)))
    header += b"".join(_varint(len(s)) for s in c.sections)
    payload = b"".join(c.sections)
    return Bitstream(header + c.side + payload, len(header), len(c.side), len(payload))


def unpack(data: bytes, expect_codec: str | None = None) -> Container:
    """Parse bytes from :func:`pack`; raises :class:`BitstreamError` on any inconsistency."""
    if len(data) < 4 or data[:2] != MAGIC:
        raise BitstreamError("not a vcm bitstream (bad magic) or truncated")
    names = {v: k for k, v in TAGS.items()}
    codec = names.get(data[2])
    if codec is None:
        raise BitstreamError(f"unknown codec tag {data[2]}")
    if expect_codec is not None and codec != expect_codec:
        raise BitstreamError(f"bitstream was made by codec {codec!r}, not {expect_codec!r}")
    flags, pos = data[3], 4
    height, pos = _read_varint(data, pos)
    width, pos = _read_varint(data, pos)
    count, pos = _read_varint(data, pos)
    side_len, pos = _read_varint(data, pos)
    lengths = []
    for _ in range(count):
        n, pos = _read_varint(data, pos)
        lengths.append(n)
    if height < 1 or width < 1:
        raise BitstreamError(f"bitstream header has an empty image size {height}x{width}")
    end = pos + side_len + sum(lengths)
    if len(data) != end:
        what = "truncated" if len(data) < end else "followed by trailing bytes"
        raise BitstreamError(f"bitstream {what}: {len(data)} bytes, header announces {end}")
    side, pos = data[pos:pos + side_len], pos + side_len
    sections = []
    for n in lengths:
        sections.append(data[pos:pos + n])
        pos += n
    return Container(codec, height, width, 1 << (flags >> 1 & 7), bool(flags & 1), side, tuple(sections))


MAX_LEARNED_SIDE = 1 << 14  # px; learned decoders refuse larger headers before allocating anything


def check_learned(c: Container, max_side: int = MAX_LEARNED_SIDE) -> None:
    """Checks a learned codec's container before its network and rANS decoder see it: the image
    size is bounded, and every payload section is a flushed rANS string (whole 32-bit words, at
    least two), since compressai's decoder reads its buffer without bounds checks."""
    if max(c.height, c.width) > max_side:
        raise BitstreamError(f"{c.codec} bitstream announces a {c.height}x{c.width} image (> {max_side} px a side)")
    if any(len(s) < 8 or len(s) % 4 for s in c.sections):
        raise BitstreamError(f"{c.codec} payload is corrupt (a rANS string is not a whole number of words)")
