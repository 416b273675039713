"""The factorized prior with the likelihood of the compressai fork that MCM ships.

compressai 1.2.8 takes ``sigmoid(upper) - sigmoid(lower)`` of the cumulative logits at x +- 1/2;
the fork (an older compressai) flips both logits to the lower tail first,
``|sigmoid(s * upper) - sigmoid(s * lower)|`` with ``s = -sign(lower + upper)``, which is the
same number in exact arithmetic but not in float32 where both sigmoids are near 1. The coder
tables are built from these likelihoods, so z strings are byte-identical to the fork's only
with its form (measured: same length, different bytes with 1.2.8's). SegPIC's fork has the same
form: with 1.2.8's, 5 of the 192 z channels of a seeded full-size SegPIC got other CDFs.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck


class SignedEntropyBottleneck(EntropyBottleneck):
    """``EntropyBottleneck`` (same parameters and state dict) with the fork's likelihood."""

    def _likelihood(self, inputs: torch.Tensor, stop_gradient: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lower = self._logits_cumulative(inputs - 0.5, stop_gradient=stop_gradient)
        upper = self._logits_cumulative(inputs + 0.5, stop_gradient=stop_gradient)
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)), lower, upper
