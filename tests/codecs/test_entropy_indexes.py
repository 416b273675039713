"""The vectorised CDF index builder gives compressai's indexes exactly."""

import pytest
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.google import get_scale_table

from vcm.codecs.checkpoint import SCALE_LEVELS
from vcm.codecs.entropy import build_indexes


def _gc(levels: int) -> GaussianConditional:
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table(levels=levels))
    return gc


def _scales(table: torch.Tensor) -> torch.Tensor:
    """Random scales over the table's range and beyond, every table value and its float32
    neighbours, values below the lower bound, above the top, and non-finite ones."""
    torch.manual_seed(0)
    lo, hi = torch.tensor(0.0), torch.tensor(1e9)
    edges = torch.tensor([0.0, -1.0, 1e-30, 0.11, 0.1100001, float("nan"), float("inf"), -float("inf"), 1e6])
    return torch.cat([torch.exp(torch.randn(5000) * 3), table, torch.nextafter(table, lo),
                      torch.nextafter(table, hi), table[:1] / 2, table[-1:] * 2, edges])


@pytest.mark.parametrize("levels", [64, SCALE_LEVELS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_equals_compressai_build_indexes(levels: int, dtype: torch.dtype) -> None:
    gc = _gc(levels)
    s = _scales(gc.scale_table).to(dtype)
    s = s[: len(s) // 6 * 6]
    for x in (s, s.reshape(2, 3, -1)[:, :, ::2], s.reshape(1, 6, -1).transpose(1, 2)):  # incl. non-contiguous
        want, got = gc.build_indexes(x), build_indexes(gc, x)
        assert got.dtype == want.dtype == torch.int32 and got.shape == want.shape
        assert torch.equal(got, want)
    assert build_indexes(gc, gc.scale_table).tolist() == list(range(levels))  # exact table values


def test_needs_the_scale_table() -> None:
    with pytest.raises(ValueError, match="scale table"):
        build_indexes(GaussianConditional(None), torch.ones(3))
