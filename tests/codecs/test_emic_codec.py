"""EMIC invariants (b)-(e) on a tiny random-init model (CPU)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vcm.codecs import CODECS, BitstreamError
from vcm.codecs.emic.codec import save_emic_checkpoint
from vcm.codecs.emic.model import EmicConfig, EmicModel, prepare_input
from vcm.types import Mask

TINY = EmicConfig(dims=(8, 12, 16, 24), depths=(1, 1, 1, 1), heads=(1, 2, 2, 3), hyper_channels=8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, assets: Path) -> Path:
    """A tiny model trained for 60 steps on Kodak crops (~1 s), so its scales are in range."""
    from vcm.codecs.emic.rd import EmicLearned
    from vcm.io import load_image
    from vcm.train.loop import make_optimizers, optimisation_step

    torch.manual_seed(0)
    model = EmicModel(TINY)
    opts = make_optimizers(model, lr=1e-3, aux_lr=1e-2)
    aux = opts[1]
    x_all = prepare_input(torch.from_numpy(load_image(assets / "data" / "kodak" / "kodim23.png")), 16)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(60):
        i, j = rng.integers(0, x_all.shape[2] - 64), rng.integers(0, x_all.shape[3] - 64)
        grid = torch.from_numpy(rng.random((1, 4, 4)) < 0.7)
        grid[0, 0, 0] = True
        losses.append(float(optimisation_step(EmicLearned(), model, model, x_all[:, :, i:i + 64, j:j + 64], grid, 0.1,
                                                 opts, clip=1.0).loss))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])  # it learns
    for _ in range(500):  # settle the entropy bottleneck's quantiles (aux loss only, cheap)
        aux.zero_grad()
        model.aux_loss().backward()
        aux.step()
    return save_emic_checkpoint(model, tmp_path_factory.mktemp("emic") / "tiny.pth")


@pytest.fixture
def image() -> np.ndarray:
    return (np.random.default_rng(0).random((75, 101, 3)) * 255).astype(np.uint8)


def _mask(h: int, w: int) -> Mask:
    px = np.zeros((h, w), bool)
    px[5:40, 30:90] = True  # not unit-aligned: dilated to units by the codec
    return Mask.from_pixels(px)


def test_outside_pixels_change_no_byte_and_no_visible_pixel(ckpt: Path, image: np.ndarray) -> None:
    codec = CODECS.build("emic", {"checkpoint": str(ckpt)})
    mask = _mask(*image.shape[:2])
    other = image.copy()
    keep = mask.coded_pixels()
    other[~keep] = 255 - other[~keep]
    a, b = codec.encode(image=image, mask=mask), codec.encode(image=other, mask=mask)
    assert a.data == b.data and a.payload_bytes > 0
    dec = CODECS.build("emic", {"checkpoint": str(ckpt)}).decode(a.data)
    assert dec.image.shape == image.shape and (dec.mask.grid == mask.grid).all()
    assert not dec.image[~keep].any()  # nothing outside the mask is reconstructed


def test_decoding_in_a_separate_process_is_bit_identical(ckpt: Path, image: np.ndarray, tmp_path: Path) -> None:
    codec = CODECS.build("emic", {"checkpoint": str(ckpt)})
    data = codec.encode(image=image, mask=_mask(*image.shape[:2])).data
    (tmp_path / "bits.vcm").write_bytes(data)
    script = ("import sys, numpy as np; from vcm.codecs import CODECS; "
              "c = CODECS.build('emic', {'checkpoint': sys.argv[1]}); "
              "np.save(sys.argv[3], c.decode(open(sys.argv[2], 'rb').read()).image)")
    subprocess.run([sys.executable, "-c", script, str(ckpt), str(tmp_path / "bits.vcm"), str(tmp_path / "out.npy")],
                   check=True, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "out.npy"), codec.decode(data).image)


TRAINED = Path(__file__).resolve().parents[2] / "vcm" / "weights" / "emic-tiny"


@pytest.mark.parametrize("rate", ["q1", "q4"])
@pytest.mark.parametrize("visible", [1.0, 0.5])
def test_bytes_match_the_entropy_estimate(rate: str, visible: float, assets: Path) -> None:
    """Invariant (d) on the committed trained weights (Kodak kodim05, 768x512): the rANS payload is
    within 1 % of the entropy model's -log2 likelihoods, and header + side info + payload is the file."""
    from vcm.io import load_image
    from vcm.masks import MASKS

    codec = CODECS.build("emic", {"checkpoint": str(TRAINED / f"{rate}.pth")})
    img = load_image(assets / "data" / "kodak" / "kodim05.png")
    mask = MASKS.build("damask", {"visible_ratio": visible})(image=img, sample_id="kodim05")
    bs = codec.encode(image=img, mask=mask)
    with torch.no_grad():
        out = codec.model(prepare_input(torch.from_numpy(img.copy()), 16), torch.from_numpy(mask.grid)[None])
    est_bits = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
    assert abs(8 * bs.payload_bytes - est_bits) / est_bits < 0.01, (8 * bs.payload_bytes, est_bits)
    assert bs.header_bytes + bs.side_bytes + bs.payload_bytes == len(bs.data)
    assert bs.header_bytes < 32 and (bs.side_bytes == 1) == (visible == 1.0)


def test_empty_and_full_masks(ckpt: Path, image: np.ndarray) -> None:
    codec = CODECS.build("emic", {"checkpoint": str(ckpt)})
    h, w = image.shape[:2]
    empty = codec.encode(image=image, mask=Mask.from_pixels(np.zeros((h, w), bool)))
    assert empty.payload_bytes == 0 and not codec.decode(empty.data).image.any()
    full = codec.encode(image=image, mask=Mask.full(h, w))
    part = codec.encode(image=image, mask=_mask(h, w))
    assert part.payload_bytes < full.payload_bytes
    assert codec.decode(full.data).image.shape == image.shape
    with pytest.raises(BitstreamError):
        codec.decode(full.data[:-7])
    with pytest.raises(ValueError, match="needs a mask"):
        codec.encode(image=image)


@pytest.mark.parametrize("variant", [{"slices": 3}, {"hyper_pool": 1, "mu_window": 0},
                                     {"hyper_pool": 2, "mu_window": 2, "slices": 2}])
def test_round_trip_equals_the_forward_pass(tmp_path: Path, variant: dict) -> None:
    """The decoder, which rebuilds positions, hyper cells and each ChARM slice's context from the
    bytes, gets the encoder's latents exactly: its image equals the eval-mode forward pass (which
    rounds like the coder). Covers ChARM slices (one y string for all), one z per MU, and a cross-MU
    window (2 MUs) smaller than the image (8 x 10 MUs), where windowing is active."""
    from vcm.codecs.container import unpack

    torch.manual_seed(1)
    model = EmicModel(EmicConfig(**{**TINY.to_dict(), **variant}))
    model.update(force=True)
    codec = CODECS.build("emic", {"checkpoint": str(save_emic_checkpoint(model, tmp_path / "v.pth"))})
    image = (np.random.default_rng(2).random((128, 160, 3)) * 255).astype(np.uint8)
    px = np.zeros(image.shape[:2], bool)
    px[10:120, 5:60] = px[90:128, 100:150] = True
    mask = Mask.from_pixels(px, 16)
    bs = codec.encode(image=image, mask=mask)
    assert len(unpack(bs.data).sections) == 2
    with torch.no_grad():
        out = codec.model(prepare_input(torch.from_numpy(image), 16), torch.from_numpy(mask.grid)[None])
    n_z = out["likelihoods"]["z"].shape[-1]
    cells = mask.grid.reshape(4, 2, 5, 2).any(axis=(1, 3))  # 2x2 MU cells with a visible MU
    assert n_z == int(mask.grid.sum() if model.cfg.hyper_pool == 1 else cells.sum())
    ref_img = (out["x_hat"][0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(codec.decode(bs.data).image.astype(int) - ref_img.astype(int)).max() <= 1
