"""The entropy models of the official GIT-SSIC code, on compressai's coder (brief 2.2).

The official code (``data_compression``) builds its rANS tables differently from compressai, so
the same weights give other bytes unless the tables are rebuilt its way:

- z: a factorized prior with filters (3, 3, 3) (compressai's default has four), z rounded to
  integers (no median offset); its table covers [floor(lower tail), ceil(upper tail)] for a tail
  mass of 2^-8, plus one overflow bin of mass max(0, 1 - sum), probabilities taken from the
  survival function right of the median and from the CDF left of it;
- y: Gaussians of a scale table exp(log 0.11 + k (log 256 - log 0.11) / (L - 1)), k < L (L = 64
  in the official code), each tabled over [floor(q), ceil(-q)] with q its 2^-9 quantile plus the
  overflow bin; a scale, clamped to the table's ends, takes the *nearest* entry (compressai: the
  next larger one).

The string format (ryg_rans, 16-bit precision, 4-bit bypass escapes) is the same in both.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

TAIL = 2.0**-8  # the official tail mass of both tables
SCALE_RANGE = (0.11, 256.0)


def scale_table(levels: int) -> torch.Tensor:
    """The official code's Gaussian scales: ``levels`` log-spaced values over SCALE_RANGE, float32."""
    lo, hi = (math.log(s) for s in SCALE_RANGE)
    return torch.exp(lo + (hi - lo) / (levels - 1) * torch.arange(levels))


def _tables(pmf: torch.Tensor, lengths: torch.Tensor, em: EntropyBottleneck | GaussianConditional) -> torch.Tensor:
    """Quantized CDF rows (N, max + 2) of pmf rows (N, max), each cut to its length plus an
    overflow bin of the mass left over."""
    rows = [p[:n] for p, n in zip(pmf, lengths.tolist())]
    overflow = torch.stack([(1 - p.sum(0, keepdim=True)).clamp_min(0) for p in rows])
    return em._pmf_to_cdf(pmf, overflow, lengths, int(lengths.max()))


class FactorizedPrior(EntropyBottleneck):
    """The official z prior (see the module docstring); ``quantiles`` hold the table's tails
    (trained by the auxiliary loss to the 2^-8 tail mass; their median is not used)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, tail_mass=TAIL, filters=(3, 3, 3))

    def _get_medians(self) -> torch.Tensor:
        return torch.zeros_like(self.quantiles[:, :, 1:2])

    def _grid_logits(self, v: torch.Tensor) -> torch.Tensor:
        """Cumulative logits of values (L, C), computed as (L, C, 1, 1) columns as the official
        code does (the same float operations, so the same tables)."""
        t = v[..., None, None]
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            t = F.softplus(m.detach())[None] @ t + b.detach()[None]
            if i < len(self.factors):
                t = t + torch.tanh(self.factors[i].detach())[None] * torch.tanh(t)
        return t.reshape(v.shape)

    def _pmf(self, v: torch.Tensor) -> torch.Tensor:
        up, low = self._grid_logits(v + 0.5), self._grid_logits(v - 0.5)
        right = torch.sigmoid(-up) < torch.sigmoid(up)
        return torch.where(right, torch.sigmoid(-low) - torch.sigmoid(-up), torch.sigmoid(up) - torch.sigmoid(low))

    def update(self, force: bool = False, update_quantiles: bool = False) -> bool:
        if self._offset.numel() > 0 and not force:
            return False
        lo = torch.floor(self.quantiles[:, 0, 0].detach()).int()
        length = torch.ceil(self.quantiles[:, 0, 2].detach()).int() - lo + 1
        if (length < 1).any():
            raise ValueError("z prior tails are inverted (upper below lower): not a trained model")
        samples = torch.arange(int(length.max()), device=lo.device)[:, None] + lo[None]
        with torch.no_grad():
            pmf = self._pmf(samples).T.contiguous()
        self._quantized_cdf = _tables(pmf, length, self)
        self._offset, self._cdf_length = lo, length + 2
        return True


class NearestGaussian(GaussianConditional):
    """The official y entropy model: tables of :func:`scale_table` (``levels`` scales) built as
    the module docstring says; CDF index = nearest scale."""

    def __init__(self, levels: int) -> None:
        super().__init__(None)
        self.levels = levels

    def update_scale_table(self, table: torch.Tensor | None = None, force: bool = False) -> bool:
        """Build the tables; ``table`` is ignored (the levels are the model's)."""
        if self._offset.numel() > 0 and not force:
            return False
        self.scale_table = scale_table(self.levels).to(self.scale_table.device)
        self.update()
        return True

    def update(self) -> None:
        table = self.scale_table
        normal = torch.distributions.Normal(torch.zeros_like(table), table)
        lo = torch.floor(normal.icdf(torch.tensor(TAIL / 2))).int()
        length = torch.ceil(normal.icdf(torch.tensor(1 - TAIL / 2))).int() - lo + 1
        y = (torch.arange(int(length.max()), device=table.device)[:, None] + lo[None]).float()
        pmf = (normal.cdf(y + 0.5) - normal.cdf(y - 0.5)).T.contiguous()
        self._quantized_cdf = _tables(pmf, length, self)
        self._offset, self._cdf_length = lo, length + 2

    def build_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """Index of the table scale nearest to each scale (the lower one on a tie), int32."""
        t = self.scale_table
        s = scales.clamp(float(t[0]), float(t[-1]))
        i = torch.searchsorted(t, s.contiguous()).clamp(1, len(t) - 1)
        upper = (s - t[i]).abs() < (s - t[i - 1]).abs()
        return torch.where(upper, i, i - 1).int()


def tail_target() -> np.ndarray:
    """The auxiliary-loss targets of :class:`FactorizedPrior` (logits of the 2^-9 tails)."""
    t = np.log(2 / TAIL - 1)
    return np.array([-t, 0.0, t], dtype=np.float32)
