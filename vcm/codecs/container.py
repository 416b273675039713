"""The vcm bitstream container: a small header, the mask record (side info), payload sections.

Layout (all counted in bpp)::

    header : b"vc" | codec tag (1 B; 0: the codec's name follows, LEB128 length + UTF-8)
             | flags (1 B: bit0 mask present, bits1-3 log2(unit), bit4 model fingerprint present)
             | height, width, number of payload sections, side length, section lengths (LEB128)
             | model fingerprint (4 B, learned codecs: which weights made the bytes)
             | CRC-32 of everything else (4 B, zlib)
    side   : the coded mask grid (:mod:`vcm.masks.sideinfo`), empty when no mask is sent
    payload: the codec's sections, concatenated

:func:`unpack` checks the length, the checksum and the image size (at most
``VCM_MAX_PIXELS``, default 2^28) before any decoder sees a byte.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any

from vcm.types import Bitstream

MAGIC = b"vc"
TAGS = {"jpeg": 1, "webp": 2, "avif": 3, "png": 4, "compressai": 16, "emic": 32, "gitssic": 33,
        "mcm": 34, "segpic": 35}  # built-ins get one byte; any other codec is named in full
MAX_PIXELS = 1 << 28  # default bound on height x width (16384 x 16384); env VCM_MAX_PIXELS overrides


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
    model: bytes = b""  # fingerprint of the weights that made the bytes (learned codecs, 4 B)


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
    if c.model and len(c.model) != 4:
        raise ValueError(f"a model fingerprint has 4 bytes, got {len(c.model)}")
    flags = int(c.has_mask) | (c.unit.bit_length() - 1) << 1 | int(bool(c.model)) << 4
    tag = TAGS.get(c.codec, 0)
    name = b"" if tag else _varint(len(c.codec.encode())) + c.codec.encode()
    header = MAGIC + bytes([tag, flags]) + name
    header += b"".join(_varint(v) for v in (c.height, c.width, len(c.sections), len(c.side)))
    header += b"".join(_varint(len(s)) for s in c.sections) + c.model
    payload = b"".join(c.sections)
    crc = zlib.crc32(c.side + payload, zlib.crc32(header)).to_bytes(4, "big")
    return Bitstream(header + crc + c.side + payload, len(header) + 4, len(c.side), len(payload))


def max_pixels() -> int:
    raw = os.environ.get("VCM_MAX_PIXELS", str(MAX_PIXELS))
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ValueError(f"VCM_MAX_PIXELS must be a positive integer, got {raw!r}")
    return int(raw)


def unpack(data: bytes, expect_codec: str | None = None) -> Container:
    """Parse bytes from :func:`pack`; raises :class:`BitstreamError` on any inconsistency,
    a checksum mismatch or an image larger than :func:`max_pixels`."""
    if len(data) < 4 or data[:2] != MAGIC:
        raise BitstreamError("not a vcm bitstream (bad magic) or truncated")
    codec, pos = _codec_name(data)
    if expect_codec is not None and codec != expect_codec:
        raise BitstreamError(f"bitstream was made by codec {codec!r}, not {expect_codec!r}")
    flags = data[3]
    height, pos = _read_varint(data, pos)
    width, pos = _read_varint(data, pos)
    count, pos = _read_varint(data, pos)
    side_len, pos = _read_varint(data, pos)
    if count > len(data):
        raise BitstreamError(f"bitstream header announces {count} sections in {len(data)} bytes")
    lengths = []
    for _ in range(count):
        n, pos = _read_varint(data, pos)
        lengths.append(n)
    model, pos = (data[pos:pos + 4], pos + 4) if flags & 16 else (b"", pos)
    end = pos + 4 + side_len + sum(lengths)
    if len(data) != end:
        what = "truncated" if len(data) < end else "followed by trailing bytes"
        raise BitstreamError(f"bitstream {what}: {len(data)} bytes, header announces {end}")
    if zlib.crc32(data[pos + 4:], zlib.crc32(data[:pos])).to_bytes(4, "big") != data[pos:pos + 4]:
        raise BitstreamError("bitstream checksum mismatch: the bytes were corrupted")
    if height < 1 or width < 1 or height * width > max_pixels():
        raise BitstreamError(f"bitstream announces a {height}x{width} image (1 to {max_pixels()} pixels allowed, "
                             "VCM_MAX_PIXELS)")
    pos += 4
    side, pos = data[pos:pos + side_len], pos + side_len
    sections = []
    for n in lengths:
        sections.append(data[pos:pos + n])
        pos += n
    return Container(codec, height, width, 1 << (flags >> 1 & 7), bool(flags & 1), side, tuple(sections), model)


def _codec_name(data: bytes) -> tuple[str, int]:
    """The codec's name and the position after it (built-in tag or a named codec)."""
    if data[2]:
        codec = {v: k for k, v in TAGS.items()}.get(data[2])
        if codec is None:
            raise BitstreamError(f"unknown codec tag {data[2]}")
        return codec, 4
    n, pos = _read_varint(data, 4)
    if n > 64 or pos + n > len(data):
        raise BitstreamError("bitstream header has a corrupt codec name")
    try:
        return data[pos:pos + n].decode(), pos + n
    except UnicodeDecodeError as e:
        raise BitstreamError("bitstream header has a corrupt codec name") from e


def rans_guard(sections: tuple[bytes, ...], height: int, width: int) -> list[bytes]:
    """Each rANS string followed by 4 zero bytes per pixel: compressai's decoder reads words
    without bounds checks, and garbage that passed every check (a checksum recomputed by an
    attacker, a buggy encoder) may make it read past a string's end; the padding keeps such
    reads inside memory we own (at most one word per decoded symbol, fewer symbols than 4 per
    pixel in every vcm codec). Valid strings decode identically."""
    pad = bytes(4 * height * width)
    return [s + pad for s in sections]


def check_model(c: Container, fingerprint: bytes, what: str) -> None:
    """Refuse bytes made by other weights than the decoder's (``what`` names its checkpoint)."""
    if c.model and c.model != fingerprint:
        raise BitstreamError(f"{c.codec} bitstream was made by model {c.model.hex()}, but this decoder is model "
                             f"{fingerprint.hex()} ({what}): decode with the weights that encoded it")


MAX_LEARNED_SIDE = 1 << 14  # px; learned decoders refuse larger headers before allocating anything
MAX_DECODE_BYTES = 8 << 30  # default decode budget: two workers and their task models fit 24 GB


def decode_budget() -> int:
    """Bytes one decode may cost: ``VCM_MAX_DECODE_BYTES``, default :data:`MAX_DECODE_BYTES`."""
    raw = os.environ.get("VCM_MAX_DECODE_BYTES", str(MAX_DECODE_BYTES))
    try:
        budget = int(float(raw))
    except (ValueError, OverflowError) as e:
        raise ValueError(f"VCM_MAX_DECODE_BYTES must be a positive number of bytes, got {raw!r}") from e
    if budget <= 0:
        raise ValueError(f"VCM_MAX_DECODE_BYTES must be a positive number of bytes, got {raw!r}")
    return budget


@dataclass(frozen=True)
class PeakMemory:
    """A learned decoder's peak memory per decoded pixel, bytes: the largest growth of the peak
    RSS over a warmed-up decoder that ``benchmarks/decode_memory.py`` measured (the sides are in
    each codec's comment) with vcm's tiny weights (``tiny_params`` parameters) and with the paper's
    architecture (random init). Activations scale with channel width, so a model in between or
    beyond is interpolated on the square root of its parameter count, never below ``tiny``."""

    tiny_params: int
    tiny: float
    paper_params: int
    paper: float

    def per_pixel(self, model: Any) -> float:
        """Bytes per pixel for ``model`` (a torch module: anything with ``parameters()``)."""
        parameters = sum(p.numel() for p in model.parameters())
        lo, hi = self.tiny_params ** 0.5, self.paper_params ** 0.5
        return max(self.tiny, self.tiny + (self.paper - self.tiny) * (parameters ** 0.5 - lo) / (hi - lo))


def check_budget(codec: str, height: int, width: int, bytes_per_pixel: float, frames: int = 1) -> None:
    """Refuse an announced size whose decode would cost more than :func:`decode_budget`."""
    need, budget = bytes_per_pixel * height * width * frames, decode_budget()
    if need > budget:
        what = f"{frames} frames of {height}x{width}" if frames > 1 else f"a {height}x{width} image"
        raise BitstreamError(f"{codec} bitstream announces {what}: decoding it would take about "
                             f"{_bytes(need)} ({bytes_per_pixel:.0f} B/px), over the decode budget of {_bytes(budget)} "
                             "(VCM_MAX_DECODE_BYTES)")


def _bytes(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def check_learned(c: Container, bytes_per_pixel: float, max_side: int = MAX_LEARNED_SIDE) -> None:
    """Checks a learned codec's container before its network and rANS decoder see it: the image
    size is bounded, decoding it fits :func:`decode_budget` (``bytes_per_pixel``: the decoder's
    measured peak per pixel), and every payload section is a flushed rANS string (whole 32-bit
    words, at least two), since compressai's decoder reads its buffer without bounds checks."""
    if max(c.height, c.width) > max_side:
        raise BitstreamError(f"{c.codec} bitstream announces a {c.height}x{c.width} image (> {max_side} px a side)")
    check_budget(c.codec, c.height, c.width, bytes_per_pixel)
    if any(len(s) < 8 or len(s) % 4 for s in c.sections):
        raise BitstreamError(f"{c.codec} payload is corrupt (a rANS string is not a whole number of words)")


def is_exact(guarded: bytes, string: bytes) -> bool:
    """Whether ``guarded`` (a section after :func:`rans_guard`) is ``string`` followed by zero
    bytes only: with ``string`` the re-encoding of what ``guarded`` decoded to, the section
    codes exactly that many symbols (trailing zero bytes decode the same and are tolerated)."""
    return guarded.startswith(string) and guarded.count(0, len(string)) == len(guarded) - len(string)
