"""The factorized prior with the likelihood of the compressai fork that MCM ships, and the
strict z decode (:func:`decompress_exact`) that SegPIC, EMIC, MCM and the compressai models run
before their y (GIT-SSIC codes z and y in one string per group: its group map must match the
announced grid instead).

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

from vcm.codecs.container import BitstreamError, is_exact


Z_LIMIT = float(1 << 24)  # |z| bound: real hyper-latents stay within a few hundred; float32 is exact to 2^24


class SignedEntropyBottleneck(EntropyBottleneck):
    """``EntropyBottleneck`` (same parameters and state dict) with the fork's likelihood."""

    def _likelihood(self, inputs: torch.Tensor, stop_gradient: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lower = self._logits_cumulative(inputs - 0.5, stop_gradient=stop_gradient)
        upper = self._logits_cumulative(inputs + 0.5, stop_gradient=stop_gradient)
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)), lower, upper


@torch.no_grad()
def decompress_exact(bottleneck: EntropyBottleneck, string: bytes, size: tuple[int, ...]) -> torch.Tensor:
    """``bottleneck.decompress`` of one (guarded) string into (1, C, *size), refused unless the
    string is exactly the coding of what it decodes to. The hyper-latent grid follows from the
    announced image size (and mask), so a header that lies about the size, or a z string from
    another image, is a :class:`BitstreamError` before y is decoded or any full-size tensor exists.
    Costs one rANS encode of z (1/4096 of the pixels x its channels; of y, 1/256, for a
    factorized-prior model, whose only string this is). Garbage can decode to
    escape values near 2^31, which compressai's encoder never writes and loops on (its escape
    length count overflows): those are refused first."""
    z_hat = bottleneck.decompress([string], size)
    if z_hat.numel() and float(z_hat.abs().max()) >= Z_LIMIT:
        raise BitstreamError(f"the hyper-latent (z) string decodes to {float(z_hat.abs().max()):.3g}, beyond any "
                             f"value an encoder writes (|z| < 2^24): the payload is corrupt")
    if not is_exact(string, bottleneck.compress(z_hat)[0]):
        grid = " x ".join(map(str, (z_hat.shape[1], *size)))
        raise BitstreamError(f"the hyper-latent (z) string does not code the {grid} grid that the announced image "
                             "size implies: the header's size (or mask) does not belong to this payload")
    return z_hat
