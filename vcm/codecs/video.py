"""Standard codecs on whole clips: inter prediction at a constant QP, bytes from the packets.

GOP structures (``gop``): ``ai`` all-intra (every frame a key frame); ``ld`` low-delay (no
reordering, no future references: I then P/B-from-the-past frames, a key frame every
``intra_period`` frames); ``ra`` random access (hierarchical B-frames with reordering, same
intra period). In process with PyAV: x264 (avc), x265 (hevc), SVT-AV1 (av1), libvpx (vp9); as a
subprocess of imageio-ffmpeg's static ffmpeg: VVenC (vvc), kvazaar (hevc, ``encoder: kvazaar``) and
libaom (av1, ``encoder: aom``). Decoding is always FFmpeg in process,
from the elementary stream alone (Annex-B / OBU / VP9 superframes, no container).
"""

from __future__ import annotations

import fractions
import io
import subprocess
from typing import Any

import numpy as np

from vcm._optional import require
from vcm.codecs.container import BitstreamError, _read_varint, _varint

GOPS = ("ai", "ld", "ra")
DECODERS = {"hevc": "hevc", "avc": "h264", "av1": "libdav1d", "vp9": "vp9", "vvc": "vvc"}


def clip_options(name: str, qp: int, gop: str, period: int, preset: str | None, encoder: str | None = None) -> dict[str, str]:
    """FFmpeg encoder options for a constant-QP clip with GOP structure ``gop`` (``period``:
    frames between key frames; scene-cut detection off, so key frames fall where asked)."""
    k = 1 if gop == "ai" else period
    bf = {"ai": 0, "ld": 0, "ra": 3}[gop]
    if encoder == "kvazaar":  # lp-g4d3t1: kvazaar's low-delay P GOP; 8: its hierarchical random-access GOP
        gops = {"ai": "0", "ld": "lp-g4d3t1", "ra": "8"}
        return {"kvazaar-params": f"preset={preset or 'medium'},qp={qp},period={k},gop={gops[gop]}"}  # preset first: it resets the rest
    if encoder == "aom":  # constant quality with min = max quantiser; look-ahead (alt-refs) only in ra
        return {"crf": str(qp), "b:v": "0", "qmin": str(qp), "qmax": str(qp), "g": str(k), "cpu-used": preset or "6",
                "lag-in-frames": "19" if gop == "ra" else "0"}
    if name == "avc":
        return {"preset": preset or "medium", "x264-params": f"qp={qp}:keyint={k}:min-keyint={k}:scenecut=0:bframes={bf}"}
    if name == "hevc":
        return {"preset": preset or "medium", "x265-params":  # info=0: no 2 KB encoder-settings SEI per key frame
                f"qp={qp}:keyint={k}:min-keyint={k}:scenecut=0:bframes={bf}:b-pyramid={int(bf > 0)}:info=0:log-level=error"}
    if name == "av1":  # pred-struct 1: low delay, 2: random access (SVT-AV1's hierarchical levels)
        return {"qp": str(qp), "preset": preset or "8",
                "svtav1-params": f"keyint={k}:pred-struct={1 if gop == 'ld' else 2}:scd=0:enable-stat-report=0"}
    if name == "vp9":  # constant quality with qmin = qmax = q: one quantiser index; no look-ahead (no ra, see codec)
        return {"crf": str(qp), "qmin": str(qp), "qmax": str(qp), "b": "0", "g": str(k), "deadline": "good",
                "cpu-used": preset or "4", "lag-in-frames": "0"}
    ld = f"PicReordering=0:GOPSize=8:IntraPeriod={k}:POC0IDR=1:DecodingRefreshType=none"
    return {"qp": str(qp), "qpa": "0", "preset": preset or "medium",  # qpa 0: no perceptual QP changes
            "vvenc-params": {"ai": "IntraPeriod=1", "ld": ld, "ra": f"IntraPeriod={k}"}[gop]}


def encode_frames(name: str, encoder: str, options: dict[str, str], frames: np.ndarray, pix_fmt: str,
                  fps: float) -> bytes:
    """(T, H, W, 3) uint8 RGB frames (even H, W for 4:2:0) -> the elementary stream's bytes."""
    if encoder in SUBPROCESS:
        return _ffmpeg(encoder, options, frames, pix_fmt, fps)
    av = require("av")
    ctx = av.CodecContext.create(encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
    ctx.framerate = fractions.Fraction(fps).limit_denominator(1001)
    ctx.time_base = 1 / ctx.framerate
    ctx.options = dict(options)
    packets = []
    for t, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format=pix_fmt)
        frame.pts = t
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    if name == "avc":
        packets = _without_sei(av, packets)
    if name == "vp9":  # raw VP9 frames have no delimiters: each packet after its length (as IVF does)
        return b"".join(_varint(len(bytes(p))) + bytes(p) for p in packets)
    return b"".join(bytes(p) for p in packets)


def _without_sei(av: Any, packets: list[Any]) -> list[Any]:
    """x264's packets without SEI units: it writes a ~0.6 KB settings string into the first frame,
    which no decoder needs (FFmpeg's ``filter_units`` bitstream filter drops them)."""
    out = av.open(io.BytesIO(), "w", format="h264")
    stream = out.add_stream("h264", rate=25)
    bsf = av.bitstream.BitStreamFilterContext("filter_units=remove_types=6", stream)
    return [q for p in packets for q in bsf.filter(p)] + list(bsf.filter(None))


SUBPROCESS = {"libvvenc": "vvc", "libkvazaar": "hevc", "libaom-av1": "obu"}  # encoder -> raw output format


def _ffmpeg(encoder: str, options: dict[str, str], frames: np.ndarray, pix_fmt: str, fps: float) -> bytes:
    """VVenC, kvazaar or libaom through imageio-ffmpeg's GPLv3 ffmpeg (VVenC takes 10-bit 4:2:0 only)."""
    exe = require("imageio_ffmpeg").get_ffmpeg_exe()
    h, w = frames.shape[1:3]
    opts = [a for k, v in options.items() for a in (f"-{k}", v)]
    fmt = "yuv420p10le" if encoder == "libvvenc" else pix_fmt
    cmd = [exe, "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-",
           "-c:v", encoder, *opts, "-pix_fmt", fmt, "-f", SUBPROCESS[encoder], "-"]
    try:
        out = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, timeout=600 + 10 * len(frames), check=False)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"ffmpeg {encoder} took over {e.timeout:.0f} s for {len(frames)} frames") from e
    if out.returncode != 0 or not out.stdout:
        raise RuntimeError(f"ffmpeg {encoder} failed: {out.stderr.decode(errors='replace')[-500:]}")
    return out.stdout


def decode_frames(name: str, data: bytes, frames: int, height: int, width: int) -> list[np.ndarray]:
    """An elementary stream -> its frames in display order, (height, width, 3) uint8 RGB each,
    cropped as they are decoded. The stream must hold ``frames`` frames of ``height`` x ``width``
    (up to 15 rows / columns of coding padding more): a stream that goes past either is refused
    as soon as it does, before the frames it still holds are decoded."""
    av = require("av")
    out: list[np.ndarray] = []
    try:
        ctx = av.CodecContext.create(DECODERS[name], "r")
        packets = [av.Packet(p) for p in _split(data)] if name == "vp9" else ctx.parse(data) + ctx.parse(None)
        for packet in [*packets, None]:
            for f in ctx.decode(packet):
                _check_frame(name, len(out), (f.height, f.width), frames, height, width)
                rgb = f.to_ndarray(format="rgb24")
                out.append(rgb if rgb.shape[:2] == (height, width) else np.ascontiguousarray(rgb[:height, :width]))
    except (av.FFmpegError, ValueError) as e:
        raise BitstreamError(f"{name} clip payload cannot be decoded: {type(e).__name__}: {e}") from e
    return out


def _check_frame(name: str, index: int, size: tuple[int, int], frames: int, height: int, width: int) -> None:
    h, w = size
    if index >= frames:
        raise BitstreamError(f"{name} payload holds more than the {frames} frame(s) the header announces")
    if not (height <= h < height + 16 and width <= w < width + 16):
        raise BitstreamError(f"{name} payload frame {index} is {h}x{w}, the header announces {height}x{width}")


def _split(data: bytes) -> list[bytes]:
    """Length-prefixed packets back into packets."""
    out, pos = [], 0
    while pos < len(data):
        n, pos = _read_varint(data, pos)
        if n == 0 or pos + n > len(data):
            raise BitstreamError("vp9 clip payload is truncated or corrupt")
        out.append(data[pos:pos + n])
        pos += n
    return out


def check_gop(gop: str, intra_period: int) -> None:
    if gop not in GOPS:
        raise ValueError(f"gop must be one of {', '.join(GOPS)}, got {gop!r}")
    if isinstance(intra_period, bool) or not isinstance(intra_period, int) or intra_period < 1:
        raise ValueError(f"intra_period must be a positive integer (frames), got {intra_period!r}")


def padded(frames: list[np.ndarray], multiple: int) -> np.ndarray:
    """(T, H, W, 3) of the frames, edge-padded so H and W are multiples of ``multiple`` (2 for
    4:2:0, 8 for kvazaar's smallest coding unit); decoders crop back to the coded size."""
    clip = np.stack(frames)
    h, w = clip.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(clip, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else clip
