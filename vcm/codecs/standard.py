"""Standard video codecs at a constant QP through FFmpeg: images (one intra frame) and clips
(inter prediction, :mod:`vcm.codecs.video`).

- ``hevc`` (x265; the BPG-like anchor), ``avc`` (x264), ``av1`` (SVT-AV1) and ``vp9`` (libvpx)
  run in process with PyAV (``pip install -e ".[video]"``);
- ``vvc`` (VVenC) runs as a subprocess of the static ffmpeg that ``imageio-ffmpeg`` ships, and
  decodes with FFmpeg's own VVC decoder in process.

These builds are GPL (x264, x265, the ffmpeg binary): they live in the optional ``video`` extra,
and the default install works without them. The canvas is converted to Y'CbCr (BT.601, 4:2:0
or 4:4:4) by FFmpeg's scaler and back on decoding; 4:2:0 needs even sizes, so odd canvases are
padded by edge replication and cropped back. The bytes are the encoder's packets (raw Annex-B /
OBU stream, parameter sets included), with no container around them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vcm._optional import require
from vcm.codecs.base import FrameCodec, side_mask
from vcm.codecs.container import BitstreamError, Container, _read_varint, _varint, check_budget, pack, unpack
from vcm.codecs.video import check_gop, clip_options, decode_frames, encode_frames, padded
from vcm.types import DEFAULT_UNIT, Bitstream, Decoded, Mask, check_image

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration at every encode otherwise

QP_RANGE = {"hevc": (0, 51), "avc": (0, 51), "av1": (1, 63), "vp9": (0, 63), "vvc": (0, 63)}
CHROMA = {"420": "yuv420p", "444": "yuv444p"}
CLIP_BYTES_PER_PIXEL = 4.5  # per frame; measured 2.3 / 2.5 B/px for 100 HEVC frames of 1080x1920 / 1079x1919 (2026-12-05), + masks
ALTERNATIVES = {"hevc": {"kvazaar": "libkvazaar"}, "av1": {"aom": "libaom-av1"}}  # ffmpeg subprocess encoders


class StandardCoder:
    """One codec at one QP: an RGB canvas -> one intra frame's packets -> the canvas."""

    ENCODERS: Mapping[str, str] = {"hevc": "libx265", "avc": "libx264", "av1": "libsvtav1", "vp9": "libvpx-vp9",
                                   "vvc": "libvvenc"}
    bytes_per_pixel = 8.5  # decode peak per pixel, HEVC one frame at 1024 / 2048 px: 4.8 / 7.5 (2026-12-05), + mask

    def __init__(self, name: str, qp: int, chroma: str = "420", preset: str | None = None,
                 encoder: str | None = None) -> None:
        lo, hi = QP_RANGE[name]
        if isinstance(qp, bool) or not isinstance(qp, int) or not lo <= qp <= hi:
            raise ValueError(f"{name} qp must be an integer in [{lo}, {hi}], got {qp!r}")
        if chroma not in CHROMA:
            raise ValueError(f"chroma must be one of {', '.join(CHROMA)}, got {chroma!r}")
        require("av")  # fails here, with the install hint, when the video extra is missing
        if encoder not in ALTERNATIVES.get(name, {}) and encoder is not None:
            raise ValueError(f"{name} encoder must be one of {', '.join(ALTERNATIVES.get(name, {})) or 'the default'}, "
                             f"got {encoder!r}")
        self.name, self.qp, self.pix_fmt, self.preset, self.encoder = name, qp, CHROMA[chroma], preset, encoder
        self.lib = ALTERNATIVES[name][encoder] if encoder else self.ENCODERS[name]
        self.options = self.clip_options("ai", 1)  # one intra frame
        self.multiple = 8 if encoder == "kvazaar" else 2 if self.pix_fmt == "yuv420p" else 1  # padded sizes

    def clip_options(self, gop: str, intra_period: int) -> dict[str, str]:
        return clip_options(self.name, self.qp, gop, intra_period, self.preset, self.encoder)

    def encode_canvas(self, image: np.ndarray) -> list[bytes]:
        frames = padded([image], self.multiple)
        return [encode_frames(self.name, self.lib, self.options, frames, self.pix_fmt, 25.0)]

    def decode_canvas(self, sections: tuple[bytes, ...], height: int, width: int) -> np.ndarray:
        if len(sections) != 1 or not sections[0]:
            raise BitstreamError(f"{self.name} bitstream must have 1 non-empty payload section")
        frames = decode_frames(self.name, sections[0], 1, height, width)
        if len(frames) != 1:
            raise BitstreamError(f"{self.name} payload holds {len(frames)} frames, expected 1")
        return np.ascontiguousarray(frames[0][:height, :width])


class StandardCodec(FrameCodec):
    """A standard codec for images (one intra frame, :class:`FrameCodec`) and for clips
    (:class:`~vcm.codecs.base.SequenceCodec`: ``gop`` ai / ld / ra, a key frame every
    ``intra_period`` frames). A clip's container (codec ``<name>-clip``) holds a header section
    (the frame count), the elementary stream, and in masked mode every frame's mask record."""

    def __init__(self, coder: StandardCoder, gop: str, intra_period: int, **frame: Any) -> None:
        check_gop(gop, intra_period)
        if coder.name == "vp9" and gop == "ra":  # measured: one-pass libvpx places no alt-ref, so ra == ld
            raise ValueError("vp9 gop 'ra' needs libvpx's two-pass alt-ref frames, which vcm does not run; use 'ld' or 'ai'")
        super().__init__(coder, **frame)
        self.gop, self.intra_period = gop, intra_period

    def encode_clip(self, *, frames: list[np.ndarray], masks: list[Mask] | None = None, fps: float = 25.0) -> Bitstream:
        if not frames or not 0 < fps < 1000:
            raise ValueError(f"a clip needs frames and a frame rate in (0, 1000), got {len(frames)} frames at {fps}")
        h, w = check_image(frames[0]).shape[:2]
        if any(f.shape != frames[0].shape for f in frames):
            raise ValueError("every frame of a clip must have one size")
        masks = masks if masks is not None else [None] * len(frames)  # type: ignore[list-item]
        coded = [self.masked(f, m) for f, m in zip(frames, masks)]
        c = self.coder
        canvas = padded([f for f, _ in coded], c.multiple)
        stream = encode_frames(c.name, c.lib, c.clip_options(self.gop, self.intra_period), canvas, c.pix_fmt, fps)
        side = b"".join(_varint(len(r)) + r for _, r in coded) if self.mode == "masked" else b""
        head = _varint(len(frames))
        unit = next((m.unit for m in masks if m is not None), DEFAULT_UNIT)
        bs = pack(Container(f"{c.name}-clip", h, w, unit, self.mode == "masked", side, (head, stream)))
        return Bitstream(bs.data, bs.header_bytes + len(head), bs.side_bytes, bs.payload_bytes - len(head))

    def decode_clip(self, data: bytes) -> list[Decoded]:
        c = unpack(data, expect_codec=f"{self.coder.name}-clip")
        if len(c.sections) != 2 or not c.sections[1]:
            raise BitstreamError(f"{c.codec} bitstream must have a header and a non-empty payload section")
        n, end = _read_varint(c.sections[0], 0)
        if end != len(c.sections[0]) or not 1 <= n <= 1 << 20:
            raise BitstreamError(f"{c.codec} clip header is corrupt")
        check_budget(c.codec, c.height, c.width, CLIP_BYTES_PER_PIXEL, frames=n)
        images = decode_frames(self.coder.name, c.sections[1], n, c.height, c.width)
        if len(images) != n:
            raise BitstreamError(f"{c.codec} payload decodes to {len(images)} frames, the header says {n}")
        masks = _side_masks(c, n) if c.has_mask else [None] * n
        return [Decoded(i, m) for i, m in zip(images, masks)]


def _side_masks(c: Container, n: int) -> list[Mask]:
    """Every frame's mask record, each after its length."""
    out, pos = [], 0
    for _ in range(n):
        size, pos = _read_varint(c.side, pos)
        if pos + size > len(c.side):
            raise BitstreamError(f"{c.codec} mask records are truncated")
        out.append(side_mask(c.side[pos:pos + size], c.height, c.width, c.unit))
        pos += size
    if pos != len(c.side):
        raise BitstreamError(f"{c.codec} mask records are followed by trailing bytes")
    return out


def _factory(name: str, default_qp: int, doc: str) -> Callable[..., StandardCodec]:
    """The registered factory of one standard codec (same parameters for all of them)."""
    def make(*, qp: int = default_qp, chroma: str = "420", preset: str | None = None, encoder: str | None = None, gop: str = "ld",
             intra_period: int = 32, mode: str = "full", fill: str = "blur", fill_value: int = 128,
             blur_sigma: float = 16.0, scale: float = 1.0, precision: str = "unit") -> StandardCodec:
        return StandardCodec(StandardCoder(name, qp, chroma, preset, encoder), gop, intra_period, mode=mode, fill=fill,
                             fill_value=fill_value, blur_sigma=blur_sigma, scale=scale, precision=precision)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = doc + " Images: one intra frame; clips: ``gop`` ai / ld / ra, ``intra_period`` frames."
    return make


hevc = _factory("hevc", 32, "HEVC (x265 via PyAV; ``encoder: kvazaar`` as an ffmpeg subprocess), QP 0-51: the "
                             "BPG-like anchor; ``chroma`` 420 or 444.")
avc = _factory("avc", 32, "AVC (x264 via PyAV), QP 0-51.")
av1 = _factory("av1", 40, "AV1 (SVT-AV1 via PyAV; ``encoder: aom`` as an ffmpeg subprocess; decoded by dav1d), "
                          "QP 1-63; SVT-AV1 codes 4:2:0 only.")
vp9 = _factory("vp9", 40, "VP9 (libvpx via PyAV, quantiser fixed by qmin = qmax), QP 0-63.")
vvc = _factory("vvc", 32, "VVC (VVenC through imageio-ffmpeg's ffmpeg; FFmpeg's VVC decoder), QP 0-63.")
