"""The unit-map record: the binary rANS coder, both models, its size on DA-Masks, old formats."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vcm.masks.binary_rans import BitDecoder, BitEncoder
from vcm.masks.sideinfo import FORMATS, SideInfoError, decode_grid, encode_grid

W = Path(__file__).resolve().parents[1] / "vcm" / "weights"
# bytes of the format-2 record (compressai rANS, 4-neighbour contexts) on these DA-Masks
FORMAT2_BYTES = {("kodim01", 0.25): 169, ("kodim01", 0.5): 201, ("kodim13", 0.25): 169,
                 ("kodim13", 0.5): 205, ("kodim20", 0.25): 149, ("kodim20", 0.5): 153}


def test_binary_rans_round_trip_near_the_information_content() -> None:
    """compressai's rANS with logit-quantised binary CDFs: exact round trip, and within 0.3 % plus
    the coder's flush (64 bits) and word padding of the information content."""
    rng = np.random.default_rng(0)
    for n in (1, 7, 500, 3000):
        p1 = rng.integers(1, 1 << 16, n)
        bits = (rng.random(n) * (1 << 16) < p1).astype(int).tolist()
        enc = BitEncoder()
        for b, p in zip(bits, p1.tolist()):
            enc.encode(b, p)
        data = enc.finish()
        info = -sum(math.log2(p / 65536 if b else 1 - p / 65536) for b, p in zip(bits, p1.tolist()))
        assert 8 * len(data) <= 1.003 * info + 64 + 32
        dec = BitDecoder(data, n)
        assert [dec.decode(p) for p in p1.tolist()] == bits


@pytest.mark.parametrize("model", list(FORMATS))
def test_both_models_round_trip_any_shape(model: str) -> None:
    rng = np.random.default_rng(FORMATS[model])
    for shape in [(1, 1), (1, 9), (9, 1), (3, 5), (7, 8), (27, 40), (32, 48)]:
        for p in (0.05, 0.5, 0.95):
            grid = rng.random(shape) < p
            if grid.all() or not grid.any():
                continue
            data = encode_grid(grid, model)
            assert data[0] == FORMATS[model] and (decode_grid(data, *shape) == grid).all()


def test_encoder_keeps_the_shorter_model() -> None:
    blob = np.zeros((30, 40), bool)
    blob[5:20, 10:30] = True
    assert encode_grid(blob)[0] == FORMATS["edges"] and len(encode_grid(blob)) < 30
    scattered = np.random.default_rng(0).random((30, 40)) < 0.4
    assert encode_grid(scattered) == min((encode_grid(scattered, m) for m in FORMATS), key=len)


@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_da_mask_unit_map_on_kodak(ratio: float, assets: Path) -> None:
    """Kodak 768x512 (48x32 units): exact round trip; bpp within 0.0034 (25 %) / 0.0041 (50 %),
    fewer bytes than format 2. (A DA-Mask is a random draw: even a decoder that knew the
    image's texture scores would need 0.0028 / 0.0032 bpp on average over Kodak; the rANS flush
    and word padding add about 7 bytes, 0.00014 bpp, to every record.)"""
    from vcm.io import load_image
    from vcm.masks import MASKS

    for name in ("kodim01", "kodim13", "kodim20"):
        image = load_image(assets / "data" / "kodak" / f"{name}.png")
        grid = MASKS.build("damask", {"visible_ratio": ratio})(image=image, sample_id=f"{name}.png").grid
        data = encode_grid(grid)
        assert (decode_grid(data, *grid.shape) == grid).all()
        assert 8 * len(data) / (image.shape[0] * image.shape[1]) <= (0.0034 if ratio == 0.25 else 0.0041)
        assert len(data) < FORMAT2_BYTES[name, ratio]


def test_old_format_and_corrupt_records_are_refused() -> None:
    with pytest.raises(SideInfoError, match="format 2"):
        decode_grid(bytes([2]) + bytes(12), 20, 20)
    for bad in (b"", bytes([9, 1, 2]), bytes([3]), bytes([0, 0])):
        with pytest.raises(SideInfoError):
            decode_grid(bad, 20, 20)
    data = encode_grid(np.random.default_rng(1).random((20, 20)) < 0.5)
    for bad in (data[:-3], data + b"\x00"):
        with pytest.raises(SideInfoError):
            decode_grid(bad, 20, 20)


def test_emic_refuses_a_format_2_unit_map_with_a_bitstream_error() -> None:
    from vcm.codecs import CODECS, BitstreamError
    from vcm.codecs.container import pack, unpack
    from vcm.types import Mask

    codec = CODECS.build("emic", {"checkpoint": str(W / "emic-tiny" / "q1.pth")})
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    grid = np.zeros((3, 4), bool)
    grid[1, 1:3] = True
    data = codec.encode(image=image, mask=Mask.from_grid(grid, 48, 64)).data
    assert (codec.decode(data).mask.grid == grid).all()
    old = pack(replace(unpack(data), side=bytes([2]) + bytes(8))).data
    with pytest.raises(BitstreamError, match="format 2"):
        codec.decode(old)
