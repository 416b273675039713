"""EMIC transforms: only visible mask units enter; pixels outside the mask never matter."""

import torch

from vcm.codecs.emic.tokens import merge2x2, patchify, split2x2, unpatchify
from vcm.codecs.emic.transform import Analysis, Synthesis

TINY = {"dims": (8, 12, 16, 24), "depths": (1, 1, 1, 1), "heads": (1, 2, 2, 3)}


def _grid(b: int, gh: int, gw: int, p: float, seed: int) -> torch.Tensor:
    g = torch.rand(b, gh, gw, generator=torch.Generator().manual_seed(seed)) < p
    g[:, 0, 0] = True
    return g


def test_patchify_unpatchify_roundtrip_keeps_only_visible_units() -> None:
    img = torch.rand(2, 3, 48, 64)
    grid = _grid(2, 3, 4, 0.5, 0)
    t = patchify(img, grid, 16, 2)
    assert t.x.shape[2:] == (64, 12)
    back = unpatchify(t, 48, 64, 16)
    keep = grid.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, None]
    assert torch.equal(back, img * keep)


def test_merge_split_are_inverse_reshapes() -> None:
    x = torch.randn(2, 3, 16, 5)
    assert torch.equal(split2x2(merge2x2(x, 4), 2), x)


def test_outside_pixels_do_not_change_latent_or_reconstruction() -> None:
    torch.manual_seed(0)
    enc, dec = Analysis(**TINY).eval(), Synthesis(**TINY).eval()
    img = torch.rand(1, 3, 64, 48)
    grid = _grid(1, 4, 3, 0.5, 1)
    keep = grid.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, None]
    other = torch.where(keep, img, torch.rand_like(img))
    with torch.no_grad():
        y1, y2 = enc(img, grid), enc(other, grid)
        assert torch.equal(y1.x, y2.x) and y1.x.shape == (1, int(grid.sum()), 1, 24)
        out = dec(y1, 64, 48)
    assert out.shape == img.shape and torch.equal(out * ~keep, torch.zeros_like(out))


def test_batching_with_padding_equals_one_image_at_a_time() -> None:
    torch.manual_seed(0)
    enc = Analysis(**TINY).eval()
    img = torch.rand(2, 3, 32, 48)
    grid = torch.zeros(2, 2, 3, dtype=torch.bool)
    grid[0, 0, :2] = True
    grid[1] = True
    with torch.no_grad():
        both = enc(img, grid)
        first = enc(img[:1], grid[:1])
    n = int(grid[0].sum())
    assert (both.x[0, :n] - first.x[0]).abs().max() < 1e-5
