"""Channel-wise autoregressive entropy model (ChARM, Minnen & Singh 2020) with latent residual
prediction (LRP); the template the brief (section 1.3) found identical in MCM and SegPIC.

y (B, M, *S) is coded in K slices of M/K channels. For slice i, ``support`` is the first
min(i, max_support) decoded slices and ``ctx_means``, ``ctx_scales`` (B, C, *S) come from the
hyperprior::

    mu_i    = mean_i (cat[ctx_means,  *support])
    sigma_i = scale_i(cat[ctx_scales, *support])
    y_hat_i = round(y_i - mu_i) + mu_i                       (straight-through in training)
    y_hat_i = y_hat_i + 0.5 * tanh(lrp_i(cat[ctx_means, *support, y_hat_i]))   (when ``lrp``)

``joint`` nets instead map cat[ctx_means, ctx_scales, *support] to (mu_i, sigma_i) in one net
(EMIC's channel context). ``select`` (bool (B, *S); B = 1 when coding) marks the positions that
are coded; the others cost nothing and take y_hat_i = mu_i on both sides, so a caller can code
a ragged set of positions laid out on a grid. All slices go into one rANS string
(compressai's ``BufferedRansEncoder``), as in MCM and SegPIC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from compressai.entropy_models import GaussianConditional
from compressai.ops import quantize_ste
from torch import nn

from vcm.codecs.entropy.indexes import build_indexes

NetBuilder = Callable[[int, int], nn.Module]


def conv_net(hidden: tuple[int, ...], kernel: int = 3, act: type[nn.Module] = nn.GELU) -> NetBuilder:
    """Builder of 'same' conv stacks cin -> hidden... -> cout with ``act`` between (ChARM nets)."""

    def build(cin: int, cout: int) -> nn.Module:
        widths = (cin, *hidden, cout)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, kernel, padding=kernel // 2), act()]
        return nn.Sequential(*layers[:-1])

    return build


class _ChannelLinear(nn.Linear):
    """nn.Linear over dim 1 of (B, C, N) tokens (a 1x1 conv with Linear's weight layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, -1)).transpose(1, -1)


def token_mlp(hidden: int) -> NetBuilder:
    """Builder of per-token two-layer MLPs on (B, C, N): cin -> hidden -> cout, GELU between."""

    def build(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(_ChannelLinear(cin, hidden), nn.GELU(), _ChannelLinear(hidden, cout))

    return build


class ChARM(nn.Module):
    """Slice-wise conditional Gaussian model of y; see the module docstring.

    Args:
        channels: M, latent channels (divisible by ``slices``).
        slices: K.
        ctx_channels: channels of each of ``ctx_means`` and ``ctx_scales``.
        net: builder of one slice network, ``net(in_channels, out_channels)``.
        max_support: at most this many earlier slices condition a slice (None: all).
        lrp: add latent residual prediction.
        joint: one net per slice predicts both mu and sigma (needs ``lrp=False``).
    """

    def __init__(self, channels: int, slices: int, ctx_channels: int, net: NetBuilder, *,
                 max_support: int | None = None, lrp: bool = True, joint: bool = False) -> None:
        super().__init__()
        if slices < 1 or channels % slices:
            raise ValueError(f"latent channels {channels} do not split into {slices} slices")
        if joint and lrp:
            raise ValueError("joint slice nets have no latent residual prediction")
        s, self.slices, self.joint = channels // slices, slices, joint
        self.max_support = slices if max_support is None else max_support
        sup = [s * min(i, self.max_support) for i in range(slices)]
        if joint:
            self.nets = nn.ModuleList(net(2 * ctx_channels + sup[i], 2 * s) for i in range(slices))
        else:
            self.mean_nets = nn.ModuleList(net(ctx_channels + sup[i], s) for i in range(slices))
            self.scale_nets = nn.ModuleList(net(ctx_channels + sup[i], s) for i in range(slices))
        self.lrp_nets = nn.ModuleList(net(ctx_channels + sup[i] + s, s) for i in range(slices)) if lrp else None

    def params(self, i: int, ctx_means: torch.Tensor, ctx_scales: torch.Tensor,
               decoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_i, sigma_i), each (B, M/K, *S)."""
        support = decoded[: self.max_support]
        if self.joint:
            mu, sigma = self.nets[i](torch.cat([ctx_means, ctx_scales, *support], 1)).chunk(2, 1)
            return mu, sigma
        return (self.mean_nets[i](torch.cat([ctx_means, *support], 1)),
                self.scale_nets[i](torch.cat([ctx_scales, *support], 1)))

    def _refine(self, i: int, ctx_means: torch.Tensor, decoded: list[torch.Tensor], y_hat: torch.Tensor) -> torch.Tensor:
        if self.lrp_nets is None:
            return y_hat
        lrp = self.lrp_nets[i](torch.cat([ctx_means, *decoded[: self.max_support], y_hat], 1))
        return y_hat + 0.5 * torch.tanh(lrp)

    def forward(self, y: torch.Tensor, ctx_means: torch.Tensor, ctx_scales: torch.Tensor,
                gc: GaussianConditional, select: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (y_hat (B, M, *S), likelihoods (B, M, *S), 1 where not selected)."""
        decoded: list[torch.Tensor] = []
        liks = []
        for i, y_i in enumerate(y.chunk(self.slices, 1)):
            mu, sigma = self.params(i, ctx_means, ctx_scales, decoded)
            _, lik = gc(y_i, sigma, means=mu)
            y_hat = quantize_ste(y_i - mu) + mu
            if select is not None:
                y_hat, lik = y_hat.where(select[:, None], mu), lik.where(select[:, None], 1.0)
            decoded.append(self._refine(i, ctx_means, decoded, y_hat))
            liks.append(lik)
        return torch.cat(decoded, 1), torch.cat(liks, 1)

    @staticmethod
    def _tables(gc: GaussianConditional) -> tuple[list[list[int]], list[int], list[int]]:
        return gc.quantized_cdf.tolist(), gc.cdf_length.reshape(-1).int().tolist(), gc.offset.reshape(-1).int().tolist()

    @staticmethod
    def _keep(t: torch.Tensor, select: torch.Tensor | None) -> torch.Tensor:
        """Values of (1, C, *S) at the selected positions, channel-major order."""
        return t.reshape(-1) if select is None else t[0][:, select[0]].reshape(-1)

    @torch.no_grad()
    def compress(self, y: torch.Tensor, ctx_means: torch.Tensor, ctx_scales: torch.Tensor,
                 gc: GaussianConditional, select: torch.Tensor | None = None,
                 encoder: Any = None) -> tuple[bytes, torch.Tensor]:
        """One image (B = 1) -> (one rANS string for all slices, y_hat as the decoder gets it).

        With ``encoder`` (a ``BufferedRansEncoder`` shared by several calls) the symbols go there
        and the string is ``b""``: the caller flushes once (e.g. one string for all tiles)."""
        from compressai.ans import BufferedRansEncoder

        enc, decoded, tables = encoder or BufferedRansEncoder(), [], self._tables(gc)
        for i, y_i in enumerate(y.chunk(self.slices, 1)):
            mu, sigma = self.params(i, ctx_means, ctx_scales, decoded)
            sym = gc.quantize(y_i, "symbols", mu)
            idx = build_indexes(gc, sigma)
            enc.encode_with_indexes(self._keep(sym, select).tolist(), self._keep(idx, select).tolist(), *tables)
            y_hat = gc.dequantize(sym, mu)
            if select is not None:
                y_hat = y_hat.where(select[:, None], mu)
            decoded.append(self._refine(i, ctx_means, decoded, y_hat))
        return b"" if encoder is not None else enc.flush(), torch.cat(decoded, 1)

    @torch.no_grad()
    def decompress(self, data: bytes, ctx_means: torch.Tensor, ctx_scales: torch.Tensor,
                   gc: GaussianConditional, select: torch.Tensor | None = None, decoder: Any = None) -> torch.Tensor:
        """Inverse of :meth:`compress`; the shapes come from the context tensors. With ``decoder``
        (a ``RansDecoder`` whose stream is set) ``data`` is ignored and decoding continues there."""
        from compressai.ans import RansDecoder

        dec, decoded, tables = decoder or RansDecoder(), [], self._tables(gc)
        if decoder is None:
            dec.set_stream(data)
        for i in range(self.slices):
            mu, sigma = self.params(i, ctx_means, ctx_scales, decoded)
            idx = self._keep(build_indexes(gc, sigma), select)
            sym = torch.tensor(dec.decode_stream(idx.tolist(), *tables), dtype=mu.dtype, device=mu.device)
            y_hat = mu.clone()
            if select is None:
                y_hat = y_hat + sym.reshape(mu.shape)
            else:
                y_hat[0][:, select[0]] += sym.reshape(mu.shape[1], -1)
            decoded.append(self._refine(i, ctx_means, decoded, y_hat))
        return torch.cat(decoded, 1)
