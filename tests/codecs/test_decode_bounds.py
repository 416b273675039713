"""A few bytes must not buy gigabytes: headers that lie about the image size, decode budgets,
bounded side records. Every case rewrites a real stream's header with a recomputed CRC."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vcm.codecs import CODECS
from vcm.codecs.container import BitstreamError, PeakMemory, check_budget, decode_budget, is_exact, pack, unpack
from vcm.io import load_image

W = Path(__file__).resolve().parents[2] / "vcm" / "weights"


@pytest.fixture(scope="module")
def image(assets: Path) -> np.ndarray:
    path = sorted((assets / "data" / "coco-mini" / "val2017").glob("*.jpg"))[0]
    return np.ascontiguousarray(load_image(path)[:256, :256])


def _resized(data: bytes, height: int, width: int) -> bytes:
    return pack(replace(unpack(data), height=height, width=width)).data


def test_a_segpic_header_claiming_4096x512_is_refused_before_synthesis(image: np.ndarray) -> None:
    """The issue's case: a 256x256 stream told to be 4096x512. The z string cannot code the
    hyper-latent grid of that size, so decoding stops before the synthesis transform runs."""
    codec = CODECS.build("segpic", {"checkpoint": str(W / "segpic-tiny" / "q2.pth")})
    data = codec.encode(image=image).data
    ran: list[str] = []
    for name in ("g_s1", "g_s2"):
        getattr(codec.model, name).register_forward_hook(lambda *_, n=name: ran.append(n))
    with pytest.raises(BitstreamError, match=r"hyper-latent \(z\) string does not code the .* grid"):
        codec.decode(_resized(data, 4096, 512))
    assert ran == []
    assert codec.decode(data).image.shape == (256, 256, 3) and ran == ["g_s1", "g_s2"]


@pytest.mark.parametrize("name", ["compressai", "emic", "gitssic", "mcm", "segpic"])
def test_every_learned_decoder_refuses_a_larger_size_lie(name: str, image: np.ndarray) -> None:
    params = {"checkpoint": str(W / f"{name}-tiny" / "q2.pth")}
    if name == "compressai":
        params = {"arch": "mbt2018-mean", "checkpoint": str(W / "mbt2018-mean-tiny" / "q2.pth")}
    codec = CODECS.build(name, params)
    data = codec.encode(image=image[:128, :192], **_mask(codec, 128, 192)).data
    for h, w in [(128, 3072), (512, 768), (2048, 192)]:
        if name == "mcm" and w == 192:  # MCM's record lists visible patch indices, which fit a taller
            # grid too: the stream is then a masked image with its first 128 rows sent, which is what
            # it decodes to, within MCM's budget (it decodes in tiles)
            assert codec.decode(_resized(data, h, w)).image.shape == (h, w, 3)
            continue
        with pytest.raises(BitstreamError):
            codec.decode(_resized(data, h, w))


def _mask(codec: object, h: int, w: int) -> dict:
    from vcm.types import Mask

    return {"mask": Mask.full(h, w)} if "mask" in getattr(type(codec), "input_ports", {}) else {}


def test_the_budget_refuses_before_the_network_runs(image: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    codec = CODECS.build("mcm", {"checkpoint": str(W / "mcm-tiny" / "q2.pth")})
    data = codec.encode(image=image, **_mask(codec, 256, 256)).data
    need = codec.bytes_per_pixel * 256 * 256
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", str(need * 0.9))
    ran: list[int] = []
    for m in codec.model.modules():
        m.register_forward_pre_hook(lambda *_: ran.append(1))
    with pytest.raises(BitstreamError, match=r"256x256 image: decoding it would take about 7.5 MiB \(120 B/px\), .*VCM_MAX_DECODE_BYTES"):
        codec.decode(data)
    assert ran == []
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", str(need * 1.1))
    assert codec.decode(data).image.shape == (256, 256, 3) and ran


def test_budget_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VCM_MAX_DECODE_BYTES", raising=False)
    assert decode_budget() == 8 << 30  # 2 workers on a 24 GB machine
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", "2e9")
    assert decode_budget() == 2e9
    check_budget("x", 1000, 1000, 1000.0)  # 1 GB fits
    with pytest.raises(BitstreamError, match="4 frames of 1000x1000"):
        check_budget("x", 1000, 1000, 1000.0, frames=4)
    for bad in ("lots", "inf", "nan", "-1", "0"):
        monkeypatch.setenv("VCM_MAX_DECODE_BYTES", bad)
        with pytest.raises(ValueError, match="VCM_MAX_DECODE_BYTES must be a positive number of bytes"):
            decode_budget()


def test_peak_memory_interpolates_on_width_and_never_drops_below_tiny() -> None:
    peak = PeakMemory(100, 50.0, 10_000, 500.0)  # sqrt: 10 -> 100

    def model(n: int) -> torch.nn.Module:
        return torch.nn.Linear(n, 1, bias=False)

    assert peak.per_pixel(model(100)) == 50.0 and peak.per_pixel(model(10_000)) == 500.0
    assert peak.per_pixel(model(3025)) == pytest.approx(50 + 450 * 45 / 90)  # sqrt 55: halfway
    assert peak.per_pixel(model(4)) == 50.0 and peak.per_pixel(model(40_000)) == pytest.approx(1000.0)


def test_is_exact_tolerates_trailing_zero_words_only() -> None:
    assert is_exact(b"abcd\0\0\0\0", b"abcd") and is_exact(b"abcd", b"abcd")
    assert not is_exact(b"abcd\0\0\1\0", b"abcd") and not is_exact(b"abce\0\0\0\0", b"abcd")
    assert not is_exact(b"abcd", b"abcdef")


def test_a_gitssic_group_map_cannot_inflate_past_its_grid() -> None:
    import zlib

    from vcm.codecs.gitssic.groups import GroupMapError, decode_groups

    bomb = zlib.compress(bytes(64 << 20), 9)  # 64 MB of zeros in ~65 KB
    with pytest.raises(GroupMapError, match="cells"):
        decode_groups(bomb, (16, 16))
    assert decode_groups(zlib.compress(bytes(256)), (16, 16)).shape == (16, 16)


@pytest.mark.parametrize("height,width", [(1024, 88), (72, 2048), (40, 88)])
def test_pillow_checks_the_payload_size_before_decoding_pixels(height: int, width: int, image: np.ndarray) -> None:
    codec = CODECS.build("jpeg", {"quality": 50})
    data = codec.encode(image=image[:72, :88]).data
    with pytest.raises(BitstreamError, match=r"jpeg payload is a 72x88 image, the header announces"):
        codec.decode(_resized(data, height, width))


def test_a_clip_refuses_frames_beyond_its_header(image: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("av")
    from vcm.codecs.container import _varint

    codec = CODECS.build("hevc", {"qp": 37})
    data = codec.encode_clip(frames=[image[:64, :96]] * 3).data
    c = unpack(data)
    for head, match in [(_varint(2), "more than the 2 frame"), (_varint(4), "decodes to 3 frames")]:
        with pytest.raises(BitstreamError, match=match):
            codec.decode_clip(pack(replace(c, sections=(head, c.sections[1]))).data)
    with pytest.raises(BitstreamError, match="frame 0 is 64x96, the header announces 32x96"):
        codec.decode_clip(_resized(data, 32, 96))
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", "5e4")
    with pytest.raises(BitstreamError, match="3 frames of 64x96"):
        codec.decode_clip(data)


def test_a_payload_in_another_format_is_refused(image: np.ndarray) -> None:
    """Image.open reads any format: a (cheaper to inflate) WebP must not pass as a JPEG payload."""
    jpeg, webp = (CODECS.build(n, {"quality": 50}) for n in ("jpeg", "webp"))
    c = unpack(jpeg.encode(image=image[:72, :88]).data)
    other = unpack(webp.encode(image=image[:72, :88]).data).sections
    with pytest.raises(BitstreamError, match="jpeg payload is a WEBP image"):
        jpeg.decode(pack(replace(c, sections=other)).data)


def test_frame_codecs_check_the_budget_before_the_mask_and_payload(image: np.ndarray,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from vcm.types import Mask

    codec = CODECS.build("jpeg", {"quality": 50, "mode": "masked"})
    data = codec.encode(image=image, mask=Mask.full(256, 256)).data
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", str(256 * 256 * 11))
    with pytest.raises(BitstreamError, match=r"jpeg bitstream announces a 256x256 image: .* \(12 B/px\)"):
        codec.decode(data)
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", str(256 * 256 * 12))
    assert codec.decode(data).mask is not None


def test_mask_grids_are_capped_and_the_payload_size_is_checked_first(image: np.ndarray) -> None:
    """The context coder decodes ~1.4 us a cell: a header with 1-px units must not buy minutes."""
    from vcm.masks.sideinfo import MAX_GRID_CELLS, SideInfoError, decode_grid, encode_grid
    from vcm.types import Mask

    grid = np.zeros((2048, 1025), bool)
    grid[:9, :9] = True
    with pytest.raises(SideInfoError, match=f"more than {MAX_GRID_CELLS} cells"):
        encode_grid(grid)
    with pytest.raises(SideInfoError, match="more than"):
        decode_grid(encode_grid(grid[:1024]), 2048, 1025)
    codec = CODECS.build("jpeg", {"quality": 50, "mode": "masked"})
    keep = np.zeros((72, 88), bool)
    keep[8:40, 16:64] = True
    c = unpack(codec.encode(image=image[:72, :88], mask=Mask.from_pixels(keep, 8)).data)
    with pytest.raises(BitstreamError, match="jpeg payload is a 72x88 image, the header announces 1440x2200"):
        codec.decode(pack(replace(c, height=1440, width=2200, unit=1)).data)


def test_emic_refuses_another_unit(image: np.ndarray) -> None:
    from vcm.types import Mask

    codec = CODECS.build("emic", {"checkpoint": str(W / "emic-tiny" / "q2.pth")})
    c = unpack(codec.encode(image=image[:64, :64], mask=Mask.full(64, 64)).data)
    with pytest.raises(BitstreamError, match=f"emic bitstream has 4-px units, the model uses {codec.unit}"):
        codec.decode(pack(replace(c, unit=4)).data)


def test_emic_is_budgeted_by_the_area_it_keeps(image: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from vcm.codecs.emic.codec import PEAK_KEPT
    from vcm.types import Mask

    codec = CODECS.build("emic", {"checkpoint": str(W / "emic-tiny" / "q2.pth")})
    keep = np.zeros((256, 256), bool)
    keep[:32, :64] = True  # 1/32 of the frame
    part, full = (codec.encode(image=image, mask=m).data for m in (Mask.from_pixels(keep, 16), Mask.full(256, 256)))
    frame, kept = codec.bytes_per_pixel * 256 * 256, PEAK_KEPT.per_pixel(codec.model) * 256 * 256
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", str(frame + kept / 32 * 1.1))
    assert codec.decode(part).image.shape == (256, 256, 3)
    with pytest.raises(BitstreamError, match="over the decode budget"):
        codec.decode(full)
    monkeypatch.setenv("VCM_MAX_DECODE_BYTES", str(frame + kept / 32 * 0.9))
    with pytest.raises(BitstreamError, match="over the decode budget"):
        codec.decode(part)
