"""Standard codecs as image back-ends (HEVC / AVC / AV1 in process with PyAV, VVC through
imageio-ffmpeg's ffmpeg): real round trips at constant QP, rate falls with QP, odd sizes,
4:4:4, masked mode, corrupt payloads. Skipped without the GPL ``video`` extra."""

from pathlib import Path

import numpy as np
import pytest

from vcm.codecs import CODECS, BitstreamError
from vcm.metrics.quality import psnr

av = pytest.importorskip("av", reason="PyAV is not installed: pip install -e '.[video]' (GPL x264 / x265)")


@pytest.fixture(scope="module")
def crop(assets: Path) -> np.ndarray:
    from vcm.io import load_image

    return load_image(assets / "data" / "kodak" / "kodim05.png")[101:318, 203:458]  # 217x255: odd sizes


@pytest.mark.parametrize("name", ["hevc", "avc", "av1"])
def test_intra_round_trip_rate_falls_with_qp(name: str, crop: np.ndarray) -> None:
    lo, hi = (22, 40) if name != "av1" else (25, 55)
    out = {}
    for qp in (lo, hi):
        codec = CODECS.build(name, {"qp": qp})
        bs = codec.encode(image=crop)
        dec = codec.decode(bs.data)
        assert dec.image.shape == crop.shape and dec.mask is None
        out[qp] = (len(bs.data), psnr(crop, dec.image))
    assert out[lo][0] > 1.5 * out[hi][0] and out[lo][1] > out[hi][1] + 3  # more bits, better picture
    assert out[lo][1] > 30 and out[hi][1] > 20


def test_hevc_444_beats_420_on_colour_and_masked_mode_sends_the_grid(crop: np.ndarray) -> None:
    from vcm.masks import MASKS

    p420 = CODECS.build("hevc", {"qp": 22})
    p444 = CODECS.build("hevc", {"qp": 22, "chroma": "444"})
    q = [psnr(crop, c.decode(c.encode(image=crop).data).image) for c in (p420, p444)]
    assert q[1] > q[0]  # 4:2:0 loses chroma detail that 4:4:4 keeps
    mask = MASKS.build("random", {"visible_ratio": 0.3, "seed": 1})(image=crop, sample_id="k")
    masked = CODECS.build("hevc", {"qp": 30, "mode": "masked"})
    bs = masked.encode(image=crop, mask=mask)
    dec = masked.decode(bs.data)
    assert bs.side_bytes > 0 and (dec.mask.grid == mask.grid).all()
    assert len(bs.data) < len(CODECS.build("hevc", {"qp": 30}).encode(image=crop).data)


def test_corrupt_or_foreign_payloads_raise_bitstream_errors(crop: np.ndarray) -> None:
    codec = CODECS.build("hevc", {"qp": 30})
    data = codec.encode(image=crop).data
    for bad in (data[: len(data) // 2], data[:-40] + bytes(40)):
        with pytest.raises(BitstreamError):
            codec.decode(bad)
    from dataclasses import replace

    from vcm.codecs.container import pack, unpack

    rng = np.random.default_rng(0)
    for n in (0, 7, 3000):  # garbage that passes the container's checksum reaches FFmpeg itself
        c = unpack(data)
        garbage = pack(replace(c, sections=(rng.integers(0, 256, n, dtype=np.uint8).tobytes(),))).data
        with pytest.raises(BitstreamError):
            codec.decode(garbage)
    with pytest.raises(BitstreamError, match="codec"):
        CODECS.build("avc", {"qp": 30}).decode(data)
    with pytest.raises(ValueError, match="qp"):
        CODECS.build("hevc", {"qp": 60})


def test_vvc_intra_through_the_static_ffmpeg(crop: np.ndarray) -> None:
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed: pip install -e '.[video]'")
    codec = CODECS.build("vvc", {"qp": 32})
    bs = codec.encode(image=crop)
    dec = codec.decode(bs.data)
    hevc = CODECS.build("hevc", {"qp": 32}).encode(image=crop)
    assert dec.image.shape == crop.shape and psnr(crop, dec.image) > 28
    assert len(bs.data) < len(hevc.data)  # VVC needs fewer bits than HEVC at the same QP here
