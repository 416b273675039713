"""Standard video codecs as still-image back-ends, intra at a constant QP, through FFmpeg.

- ``hevc`` (x265; the BPG-like anchor), ``avc`` (x264) and ``av1`` (SVT-AV1) run in process
  with PyAV (``pip install -e ".[video]"``);
- ``vvc`` (VVenC) runs as a subprocess of the static ffmpeg that ``imageio-ffmpeg`` ships, and
  decodes with FFmpeg's own VVC decoder in process.

These builds are GPL (x264, x265, the ffmpeg binary): they live in the optional ``video`` extra,
and the default install works without them. The canvas is converted to Y'CbCr (BT.601, 4:2:0
or 4:4:4) by FFmpeg's scaler and back on decoding; 4:2:0 needs even sizes, so odd canvases are
padded by edge replication and cropped back. The bytes are the encoder's packets (raw Annex-B /
OBU stream, parameter sets included), with no container around them.
"""

from __future__ import annotations

import fractions
import os
import subprocess
from collections.abc import Callable, Mapping

import numpy as np

from vcm._optional import require
from vcm.codecs.base import FrameCodec
from vcm.codecs.container import BitstreamError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration at every encode otherwise

QP_RANGE = {"hevc": (0, 51), "avc": (0, 51), "av1": (1, 63), "vvc": (0, 63)}
DECODERS = {"hevc": "hevc", "avc": "h264", "av1": "libdav1d", "vvc": "vvc"}
CHROMA = {"420": "yuv420p", "444": "yuv444p"}


def _options(name: str, qp: int, preset: str | None) -> dict[str, str]:
    """FFmpeg encoder options for one intra frame at a constant QP."""
    if name == "hevc":
        return {"x265-params": f"qp={qp}:keyint=1:log-level=error", "preset": preset or "medium"}
    if name == "avc":
        return {"qp": str(qp), "preset": preset or "medium", "g": "1"}
    if name == "av1":
        return {"qp": str(qp), "preset": preset or "8", "svtav1-params": "keyint=1:enable-stat-report=0"}
    return {"qp": str(qp), "preset": preset or "medium"}


class StandardCoder:
    """One codec at one QP: an RGB canvas -> one intra frame's packets -> the canvas."""

    ENCODERS: Mapping[str, str] = {"hevc": "libx265", "avc": "libx264", "av1": "libsvtav1", "vvc": "libvvenc"}

    def __init__(self, name: str, qp: int, chroma: str = "420", preset: str | None = None) -> None:
        lo, hi = QP_RANGE[name]
        if isinstance(qp, bool) or not isinstance(qp, int) or not lo <= qp <= hi:
            raise ValueError(f"{name} qp must be an integer in [{lo}, {hi}], got {qp!r}")
        if chroma not in CHROMA:
            raise ValueError(f"chroma must be one of {', '.join(CHROMA)}, got {chroma!r}")
        self.av = require("av")
        self.name, self.qp, self.pix_fmt = name, qp, CHROMA[chroma]
        self.options = _options(name, qp, preset)

    def _padded(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.pix_fmt == "yuv420p" and (h % 2 or w % 2):
            image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        return np.ascontiguousarray(image)

    def encode_canvas(self, image: np.ndarray) -> list[bytes]:
        image = self._padded(image)
        if self.name == "vvc":
            return [self._ffmpeg_encode(image)]
        ctx = self.av.CodecContext.create(self.ENCODERS[self.name], "w")
        ctx.width, ctx.height, ctx.pix_fmt = image.shape[1], image.shape[0], self.pix_fmt
        ctx.time_base, ctx.options = fractions.Fraction(1, 25), dict(self.options)
        frame = self.av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=self.pix_fmt)
        frame.pts = 0
        packets = list(ctx.encode(frame)) + list(ctx.encode(None))
        return [b"".join(bytes(p) for p in packets)]

    def _ffmpeg_encode(self, image: np.ndarray) -> bytes:
        exe = require("imageio_ffmpeg").get_ffmpeg_exe()
        h, w = image.shape[:2]
        opts = [a for k, v in self.options.items() for a in (f"-{k}", v)]
        cmd = [exe, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-",
               "-frames:v", "1", "-c:v", "libvvenc", *opts, "-pix_fmt", self.pix_fmt, "-f", "vvc", "-"]
        out = subprocess.run(cmd, input=image.tobytes(), capture_output=True, timeout=600, check=False)
        if out.returncode != 0 or not out.stdout:
            raise RuntimeError(f"ffmpeg libvvenc failed: {out.stderr.decode(errors='replace')[-500:]}")
        return out.stdout

    def decode_canvas(self, sections: tuple[bytes, ...], height: int, width: int) -> np.ndarray:
        if len(sections) != 1 or not sections[0]:
            raise BitstreamError(f"{self.name} bitstream must have 1 non-empty payload section")
        try:
            ctx = self.av.CodecContext.create(DECODERS[self.name], "r")
            packets = ctx.parse(sections[0]) + ctx.parse(None)
            frames = [f for p in packets for f in ctx.decode(p)] + list(ctx.decode(None))
        except (self.av.FFmpegError, ValueError) as e:
            raise BitstreamError(f"{self.name} payload cannot be decoded: {type(e).__name__}: {e}") from e
        if len(frames) != 1:
            raise BitstreamError(f"{self.name} payload holds {len(frames)} frames, expected 1")
        image = frames[0].to_ndarray(format="rgb24")
        if image.shape[0] < height or image.shape[1] < width:
            raise BitstreamError(f"{self.name} frame is {image.shape[1]}x{image.shape[0]}, smaller than {width}x{height}")
        return np.ascontiguousarray(image[:height, :width])


def _factory(name: str, default_qp: int, doc: str) -> Callable[..., FrameCodec]:
    """The registered factory of one standard codec (same parameters for all four)."""
    def make(*, qp: int = default_qp, chroma: str = "420", preset: str | None = None, mode: str = "full",
             fill: str = "blur", fill_value: int = 128, blur_sigma: float = 16.0, scale: float = 1.0,
             precision: str = "unit") -> FrameCodec:
        return FrameCodec(StandardCoder(name, qp, chroma, preset), mode=mode, fill=fill, fill_value=fill_value,
                          blur_sigma=blur_sigma, scale=scale, precision=precision)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = doc
    return make


hevc = _factory("hevc", 32, "HEVC intra (x265 via PyAV), QP 0-51: the BPG-like anchor; ``chroma`` 420 or 444.")
avc = _factory("avc", 32, "AVC intra (x264 via PyAV), QP 0-51.")
av1 = _factory("av1", 40, "AV1 intra (SVT-AV1 via PyAV, decoded by dav1d), QP 1-63; SVT-AV1 codes 4:2:0 only.")
vvc = _factory("vvc", 32, "VVC intra (VVenC through imageio-ffmpeg's ffmpeg; FFmpeg's VVC decoder), QP 0-63.")
