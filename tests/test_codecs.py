from pathlib import Path

import numpy as np
import pytest

from vcm.assets import MissingAssetError
from vcm.codecs import CODECS, BitstreamError
from vcm.codecs.compressai import save_random_checkpoint
from vcm.codecs.container import Container, pack, unpack
from vcm.metrics.quality import psnr
from vcm.types import Mask


def _center_mask(h: int, w: int) -> Mask:
    px = np.zeros((h, w), bool)
    px[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    return Mask.from_pixels(px)


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
@pytest.mark.parametrize("mode", ["full", "masked"])
def test_roundtrip_bytes_and_exact_bpp(name: str, mode: str, noise_image: np.ndarray) -> None:
    h, w = noise_image.shape[:2]
    mask = _center_mask(h, w)
    enc = CODECS.build(name, {"quality": 60, "mode": mode})
    bs = enc.encode(image=noise_image, mask=mask)
    assert isinstance(bs.data, bytes) and bs.payload_bytes > 0
    assert bs.header_bytes + bs.side_bytes + bs.payload_bytes == len(bs.data)
    assert (bs.side_bytes > 0) == (mode == "masked")
    dec = CODECS.build(name, {"quality": 60, "mode": mode}).decode(bs.data)  # a separate decoder object
    assert dec.image.shape == noise_image.shape and dec.image.dtype == np.uint8
    assert psnr(noise_image, dec.image, mask.coded_pixels()) > 25
    if mode == "masked":
        assert (dec.mask.grid == mask.grid).all()


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_rate_rises_with_quality_and_falls_with_mask(name: str, noise_image: np.ndarray) -> None:
    h, w = noise_image.shape[:2]
    sizes = [len(CODECS.build(name, {"quality": q}).encode(image=noise_image).data) for q in (10, 50, 90)]
    assert sizes[0] < sizes[1] < sizes[2]
    masked = CODECS.build(name, {"quality": 50, "mode": "masked", "fill": "constant"})
    empty = len(masked.encode(image=noise_image, mask=Mask.from_pixels(np.zeros((h, w), bool))).data)
    full = len(masked.encode(image=noise_image, mask=Mask.full(h, w)).data)
    assert empty < full


def test_constant_fill_makes_bytes_independent_of_background(noise_image: np.ndarray) -> None:
    h, w = noise_image.shape[:2]
    mask = _center_mask(h, w)
    other = noise_image.copy()
    other[~mask.coded_pixels()] = 255 - other[~mask.coded_pixels()]
    codec = CODECS.build("jpeg", {"quality": 50, "mode": "masked", "fill": "constant"})
    assert codec.encode(image=noise_image, mask=mask).data == codec.encode(image=other, mask=mask).data


def test_mask_size_mismatch_and_missing_mask(noise_image: np.ndarray) -> None:
    codec = CODECS.build("jpeg", {"quality": 50, "mode": "masked"})
    with pytest.raises(ValueError, match="does not match image size"):
        codec.encode(image=noise_image, mask=Mask.full(10, 10))
    with pytest.raises(ValueError, match="needs a mask"):
        codec.encode(image=noise_image)
    with pytest.raises(ValueError, match="mode must be"):
        CODECS.build("jpeg", {"mode": "sideways"})


def test_truncated_corrupt_and_foreign_bitstreams(noise_image: np.ndarray) -> None:
    h, w = noise_image.shape[:2]
    jpeg = CODECS.build("jpeg", {"quality": 50, "mode": "masked"})
    data = jpeg.encode(image=noise_image, mask=_center_mask(h, w)).data
    for bad in (data[:-10], data[:3], data + b"x", b"", b"PK\x03\x04" + data[4:]):
        with pytest.raises(BitstreamError):
            jpeg.decode(bad)
    with pytest.raises(BitstreamError, match="made by codec 'jpeg'"):
        CODECS.build("webp", {}).decode(data)
    garbled = bytearray(data)
    garbled[-40:] = b"\x00" * 40
    try:  # a damaged payload either decodes to some image of the right size or raises clearly
        assert jpeg.decode(bytes(garbled)).image.shape == noise_image.shape
    except BitstreamError:
        pass


def test_container_header_is_small_and_exact() -> None:
    c = Container("webp", 4000, 3000, 16, True, b"ab", (b"x" * 300, b""))
    bs = pack(c)
    assert bs.header_bytes <= 20 and unpack(bs.data) == c  # 4 of them: the CRC-32
    named = Container("my-plugin-codec", 64, 48, 8, False, b"", (b"abc",), model=b"\x01\x02\x03\x04")
    assert unpack(pack(named).data) == named  # codecs outside the tag table are named in full


def test_container_checksum_size_bound_and_model_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every single-bit flip anywhere is caught before a decoder runs; a header announcing
    more than VCM_MAX_PIXELS is refused; bytes of another model are refused naming both."""
    from vcm.codecs.container import check_model

    data = pack(Container("jpeg", 480, 640, 16, True, b"side", (b"payload" * 20,))).data
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(BitstreamError):
                unpack(bytes(bad))
    monkeypatch.setenv("VCM_MAX_PIXELS", str(480 * 640 - 1))
    with pytest.raises(BitstreamError, match="480x640 image"):
        unpack(data)
    c = Container("emic", 8, 8, 16, True, b"", (b"x" * 8,), model=bytes.fromhex("0a0b0c0d"))
    with pytest.raises(BitstreamError, match="made by model 0a0b0c0d.*model 01020304 \\(q2.pth\\)"):
        check_model(c, bytes.fromhex("01020304"), "q2.pth")
    check_model(c, bytes.fromhex("0a0b0c0d"), "q1.pth")


ARCHS = ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "cheng2020-anchor"]


@pytest.mark.parametrize("arch", ARCHS)
def test_compressai_zoo_roundtrip(arch: str, tmp_path: Path, noise_image: np.ndarray) -> None:
    ckpt = save_random_checkpoint(arch, 1, tmp_path / f"{arch}.pth")
    params = {"arch": arch, "quality": 1, "checkpoint": str(ckpt)}
    bs = CODECS.build("compressai", params).encode(image=noise_image)
    again = CODECS.build("compressai", params).encode(image=noise_image)
    assert bs.data == again.data  # deterministic
    dec = CODECS.build("compressai", params).decode(bs.data)
    assert dec.image.shape == noise_image.shape
    with pytest.raises(BitstreamError):
        CODECS.build("compressai", params).decode(bs.data[:-5])


def test_compressai_missing_checkpoint_names_path_and_url() -> None:
    with pytest.raises(MissingAssetError, match=r"/nowhere/m.pth; the official weights are at https://"):
        CODECS.build("compressai", {"arch": "mbt2018-mean", "quality": 3, "checkpoint": "/nowhere/m.pth"})


@pytest.mark.parametrize("name", ["jpeg", "avif"])
def test_downscaled_canvas_cuts_rate_and_decodes_at_full_size(name: str, assets: Path) -> None:
    from vcm.io import load_image

    img = load_image(assets / "data" / "kodak" / "kodim05.png")[:203, :301]  # odd size
    full = CODECS.build(name, {"quality": 10})
    half = CODECS.build(name, {"quality": 10, "scale": 0.5})
    a, b = full.encode(image=img), half.encode(image=img)
    assert b.payload_bytes < 0.6 * a.payload_bytes
    dec = half.decode(b.data).image
    assert dec.shape == img.shape and psnr(img, dec) > 15
    with pytest.raises(ValueError, match="scale"):
        CODECS.build(name, {"scale": 0})


@pytest.mark.parametrize("codec", ["emic", "segpic"])
def test_bytes_of_one_model_are_refused_by_another(codec: str, noise_image: np.ndarray) -> None:
    """q1 bytes given to the q2 weights: a clear error naming both models, not a wrong image."""
    weights = Path(__file__).resolve().parents[1] / "vcm" / "weights" / f"{codec}-tiny"
    q1, q2 = (CODECS.build(codec, {"checkpoint": str(weights / f"{q}.pth")}) for q in ("q1", "q2"))
    kw = {"mask": Mask.full(*noise_image.shape[:2])} if codec == "emic" else {}
    data = q1.encode(image=noise_image, **kw).data
    assert q1.decode(data).image.shape == noise_image.shape
    with pytest.raises(BitstreamError, match=f"made by model {q1.fingerprint.hex()}.*{q2.fingerprint.hex()}.*q2.pth"):
        q2.decode(data)


def test_learned_decoding_does_not_depend_on_the_thread_count(tmp_path: Path, assets: Path) -> None:
    """GIT-SSIC bytes decode to the same pixels under torch.set_num_threads(1) and (2): the
    codecs run their networks on one thread (a multi-threaded sum once moved a scale across a
    table boundary and desynchronised the whole rANS decode)."""
    import subprocess
    import sys

    ckpt = Path(__file__).resolve().parents[1] / "vcm" / "weights" / "gitssic-tiny" / "q1.pth"
    script = ("import sys, numpy as np, torch; torch.set_num_threads(int(sys.argv[1])); "
              "from vcm.codecs import CODECS; from vcm.io import load_image; from vcm.types import Mask; "
              "c = CODECS.build('gitssic', {'checkpoint': sys.argv[2]}); img = load_image(sys.argv[3])[:192, :256]; "
              "bits = sys.argv[4]\n"
              "if sys.argv[1] == '2' and not __import__('os').path.exists(bits): "
              "open(bits, 'wb').write(c.encode(image=img, mask=Mask.full(192, 256)).data)\n"
              "np.save(sys.argv[5], c.decode(open(bits, 'rb').read()).image)")
    args = [str(ckpt), str(assets / "data" / "kodak" / "kodim05.png"), str(tmp_path / "b")]
    for t in ("2", "1"):
        subprocess.run([sys.executable, "-c", script, t, *args, str(tmp_path / f"{t}.npy")], check=True, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "1.npy"), np.load(tmp_path / "2.npy"))


def test_masked_mode_with_the_exact_pixel_mask(coco_root: str) -> None:
    """``precision: pixel`` fills outside the exact object pixels and sends them losslessly: the
    decoder gets the very mask back, its bytes are side info, and WebP spends fewer payload bytes
    than with the 16-px grid (less area to code)."""
    from dataclasses import replace

    from vcm.data import DATASETS
    from vcm.masks import MASKS

    ds = DATASETS.build("coco", {"root": coco_root, "limit": 1})
    s = ds.load(ds.ids()[0])
    mask = MASKS.build("gt", {})(image=s.image, annotations=s.annotations, sample_id=s.id)
    out = {}
    for precision in ("unit", "pixel"):
        codec = CODECS.build("webp", {"quality": 50, "mode": "masked", "precision": precision})
        bs = codec.encode(image=s.image, mask=mask)
        out[precision] = (bs, codec.decode(bs.data))
    exact = out["pixel"][1].mask
    assert exact.exact and (exact.pixels == mask.pixels).all() and (exact.coded_pixels() == mask.pixels).all()
    assert exact.visible_fraction == pytest.approx(mask.pixels.mean())
    assert out["pixel"][0].side_bytes > out["unit"][0].side_bytes > 0
    assert out["pixel"][0].payload_bytes < out["unit"][0].payload_bytes
    assert not out["unit"][1].mask.exact
    c = unpack(out["pixel"][0].data)
    for side in (c.side[:20], c.side[:1] + b"RIFF" + bytes(30), bytes([5])):
        with pytest.raises(BitstreamError):
            CODECS.build("webp", {"quality": 50, "mode": "masked"}).decode(pack(replace(c, side=side)).data)
