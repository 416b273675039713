"""GIT-SSIC network (brief 2.2): GI Swin transforms, a group-wise conv hyperprior, ChARM 1x1.

    x (B,3,H,W), groups (B,H/16,W/16) --g_a--> y (B,M,H/16,W/16)
    per group g: y * 1[g] --h_a--> z_g (B,Cz,H/64,W/64), kept on g's footprint cells only
    z_hat_g --h_s--> hyper (2M channels) at g's positions; summed over groups
    slice i: (mu_i, sigma_i) = nets_i(cat[hyper chunk i, y_hat_0..i-1])   (1x1 convs only)
    y_hat --g_s--> x_hat

Deviation from the released code [G]: its z mixes all groups (5x5 strided convs) and is sent
whole, so group B's means, scales, strings and reconstruction change when group A's pixels do,
and z leaks A's content to a receiver of B. Here each group has its own z, computed from that
group's latents alone and coded in the group's one rANS string, ahead of its y values. With one
group this is the plain (whole-image) hyperprior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from compressai.models import CompressionModel
from compressai.ops import quantize_ste
from torch import nn

from vcm.codecs.checkpoint import ArchConfig
from vcm.codecs.entropy import ChARM, conv_net
from vcm.codecs.gitssic.transform import Analysis, Synthesis

Z_CELL = 4  # latent cells per hyper-latent cell (two stride-2 convs)
MARGIN = 12  # latent cells around a group's box: more than h_a's and h_s's reach (7 cells)


@dataclass(frozen=True)
class GitSsicConfig(ArchConfig):
    """Architecture; the defaults are the paper's (brief 2.2)."""

    dims: tuple[int, ...] = (128, 192, 256, 320)
    depths: tuple[int, ...] = (2, 2, 5, 1)
    heads: tuple[int, ...] = (8, 12, 16, 16)
    window: int = 8
    mlp_ratio: float = 4.0
    hyper_channels: int = 192
    slices: int = 10


def _legacy_slice_nets(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Checkpoints written before the shared ChARM kept the slice nets at the top level."""
    for key in [k for k in state_dict if k.startswith((prefix + "mean_nets.", prefix + "scale_nets."))]:
        state_dict[prefix + "charm." + key[len(prefix):]] = state_dict.pop(key)


class CoderTable:
    """An entropy model's coder tables as Python lists (CDF rows cut to their lengths), made once
    per image. compressai's rANS coder converts every row it is handed on every call, so
    :meth:`args` hands it only the rows that one call uses."""

    def __init__(self, em: EntropyModel) -> None:
        self.lengths = em.cdf_length.reshape(-1).int().tolist()
        self.cdfs = [row[:n] for row, n in zip(em.quantized_cdf.tolist(), self.lengths)]
        self.offsets = em.offset.reshape(-1).int().tolist()

    def args(self, indexes: torch.Tensor) -> tuple[list[int], list[list[int]], list[int], list[int]]:
        """CDF indexes (any shape) -> (indexes into the rows used, those rows, lengths, offsets)."""
        used, local = torch.unique(indexes.reshape(-1), return_inverse=True)
        u = used.tolist()
        return local.tolist(), [self.cdfs[i] for i in u], [self.lengths[i] for i in u], [self.offsets[i] for i in u]


def one_hot(groups: torch.Tensor, n: int) -> torch.Tensor:
    """int (B, h, w) -> float (B, n, h, w)."""
    return F.one_hot(groups.long(), n).permute(0, 3, 1, 2).float()


class GitSsicModel(CompressionModel):
    """Group-independent codec network; x in [0, 1], H and W multiples of 16."""

    def __init__(self, cfg: GitSsicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m, cz, k = cfg.dims[-1], cfg.hyper_channels, cfg.slices
        if m % k or (2 * m) % k:
            raise ValueError(f"latent channels {m} do not split into {k} slices")
        self.g_a = Analysis(cfg.dims, cfg.depths, cfg.heads, cfg.window, cfg.mlp_ratio)
        self.g_s = Synthesis(cfg.dims, cfg.depths, cfg.heads, cfg.window, cfg.mlp_ratio)
        self.h_a = nn.Sequential(nn.Conv2d(m, cz, 3, padding=1), nn.ReLU(), nn.Conv2d(cz, cz, 5, 2, 2), nn.ReLU(),
                                 nn.Conv2d(cz, cz, 5, 2, 2))
        self.h_s = nn.Sequential(nn.ConvTranspose2d(cz, cz, 5, 2, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(cz, cz, 5, 2, 2, 1), nn.ReLU(), nn.Conv2d(cz, 2 * m, 3, padding=1))
        # the shared ChARM, GIT-SSIC's way: 1x1 ReLU nets, slice i conditioned on chunk i of the
        # hyper output and all earlier slices, no LRP (its coding stays per group, below)
        self.charm = ChARM(m, k, 2 * m // k, conv_net((m, m), kernel=1, act=nn.ReLU), lrp=False)
        self.register_load_state_dict_pre_hook(_legacy_slice_nets)
        self.entropy_bottleneck = EntropyBottleneck(cz)
        self.gaussian_conditional = GaussianConditional(None)

    # -- hyperprior, one z per group -------------------------------------------------------
    @staticmethod
    def _pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, -t.shape[-1] % Z_CELL, 0, -t.shape[-2] % Z_CELL))

    def footprint(self, member: torch.Tensor) -> torch.Tensor:
        """bool (N, 1, h, w) group membership -> bool (N, 1, h', w'): z cells the group touches."""
        return F.max_pool2d(self._pad(member.float()), Z_CELL) > 0

    def hyper_analysis(self, y: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """y (N, M, h, w) and one group's membership (N, 1, h, w) -> z (N, Cz, h', w')."""
        return self.h_a(self._pad(y * member))

    def hyper_synthesis(self, z_hat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """z_hat (N, Cz, h', w'), zero off the footprint -> hyper parameters (N, 2M, h, w)."""
        return self.h_s(z_hat)[..., : size[0], : size[1]]

    def slice_params(self, i: int, hyper: torch.Tensor, decoded: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, sigma) of slice i from its hyper chunk and the slices decoded before it."""
        ctx = hyper.chunk(self.cfg.slices, 1)[i]
        return self.charm.params(i, ctx, ctx, decoded)

    def forward(self, x: torch.Tensor, groups: torch.Tensor) -> dict[str, Any]:
        """Training pass; ``groups`` int (B, H/16, W/16). Likelihoods of z count footprints only."""
        b, n = x.shape[0], int(groups.max()) + 1
        y = self.g_a(x, groups)
        member = one_hot(groups, n).reshape(b * n, 1, *y.shape[-2:])
        y_rep = y.repeat_interleave(n, 0)
        z = self.hyper_analysis(y_rep, member)
        z_hat, z_lik = self.entropy_bottleneck(z)
        foot = self.footprint(member)
        hyper = self.hyper_synthesis(z_hat * foot, y.shape[-2:]) * member
        hyper = hyper.reshape(b, n, -1, *y.shape[-2:]).sum(1)
        decoded: list[torch.Tensor] = []
        liks = []
        for i, y_i in enumerate(y.chunk(self.cfg.slices, 1)):
            mu, sigma = self.slice_params(i, hyper, decoded)
            _, lik = self.gaussian_conditional(y_i, sigma, means=mu)
            decoded.append(quantize_ste(y_i - mu) + mu)
            liks.append(lik)
        x_hat = self.g_s(torch.cat(decoded, 1), groups)
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(liks, 1), "z": z_lik.where(foot, 1.0)}}

    # -- coding, group by group ------------------------------------------------------------
    @staticmethod
    def _box(sel: torch.Tensor) -> tuple[slice, slice]:
        """Rows and columns of the padded latent grid around a group, aligned to z cells, so the
        hyper networks run on the group's surroundings only (cost ~ group size, not image size)."""
        out = []
        for other, size in ((1, sel.shape[2]), (0, sel.shape[3])):
            idx = torch.nonzero(sel[0, 0].bool().any(dim=other)).flatten()
            lo = max(0, (int(idx[0]) - MARGIN) // Z_CELL * Z_CELL)
            hi = -(-(int(idx[-1]) + 1 + MARGIN) // Z_CELL) * Z_CELL
            out.append(slice(lo, min(-(-size // Z_CELL) * Z_CELL, hi)))
        return out[0], out[1]

    def _group_z(self, y: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        """One group's z values on its footprint cells (1, Cz, L), raster order."""
        rows, cols = self._box(sel)
        box = self._pad(sel)[..., rows, cols]
        return self.hyper_analysis(self._pad(y)[..., rows, cols], box)[..., self.footprint(box)[0, 0]]

    def _group_hyper(self, z_hat: torch.Tensor, sel: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """Add one group's hyper parameters (from its z values) to ``hyper`` at its positions."""
        rows, cols = self._box(sel)
        box = self._pad(sel)[..., rows, cols]
        foot = self.footprint(box)
        grid = torch.zeros(1, z_hat.shape[1], *foot.shape[-2:], device=z_hat.device)
        grid[..., foot[0, 0]] = z_hat
        part = self.hyper_synthesis(grid, box.shape[-2:]) * box
        full = self._pad(hyper.new_zeros(hyper.shape))
        full[..., rows, cols] = part
        return hyper + full[..., : hyper.shape[2], : hyper.shape[3]]

    # -- rANS coding: one string per group (its z values, then slices 1..K at its cells) ---------
    def _z_medians(self) -> torch.Tensor:
        """(1, Cz, 1): the entropy bottleneck's medians, the offsets of its symbols."""
        return self.entropy_bottleneck.quantiles[:, 0, 1].reshape(1, -1, 1)

    def _z_indexes(self, cells: int) -> torch.Tensor:
        """CDF index (its channel) of every z value of a group with ``cells`` footprint cells."""
        return torch.arange(self.cfg.hyper_channels).repeat_interleave(cells)

    @torch.no_grad()
    def compress(self, x: torch.Tensor, groups: torch.Tensor) -> dict[int, bytes]:
        """One image: {group id: one rANS string} for every non-empty group. A group's string holds
        its z values, then its y values of slices 1..K (channel-major), in decoding order."""
        from compressai.ans import BufferedRansEncoder

        y = self.g_a(x, groups)
        ids = [int(g) for g in torch.unique(groups)]
        enc = {g: BufferedRansEncoder() for g in ids}
        z_tab, y_tab, med = CoderTable(self.entropy_bottleneck), CoderTable(self.gaussian_conditional), self._z_medians()
        hyper = torch.zeros(1, 2 * y.shape[1], *y.shape[-2:], device=y.device)
        for g in ids:
            sel = (groups == g)[:, None].float()
            sym = self.entropy_bottleneck.quantize(self._group_z(y, sel), "symbols", med)
            enc[g].encode_with_indexes(sym.reshape(-1).tolist(), *z_tab.args(self._z_indexes(sym.shape[-1])))
            hyper = self._group_hyper(self.entropy_bottleneck.dequantize(sym, med), sel, hyper)
        decoded: list[torch.Tensor] = []
        for i, y_i in enumerate(y.chunk(self.cfg.slices, 1)):
            mu, sigma = self.slice_params(i, hyper, decoded)
            sym = self.gaussian_conditional.quantize(y_i, "symbols", mu)
            idx = self.gaussian_conditional.build_indexes(sigma)
            for g in ids:
                at = groups[0] == g
                enc[g].encode_with_indexes(sym[..., at].reshape(-1).tolist(), *y_tab.args(idx[..., at]))
            decoded.append(self.gaussian_conditional.dequantize(sym, mu))
        return {g: e.flush() for g, e in enc.items()}

    @torch.no_grad()
    def decompress(self, strings: dict[int, bytes], groups: torch.Tensor,
                   guard: Callable[[bytes], bytes] | None = None) -> torch.Tensor:
        """Decode the groups in ``strings`` (others stay zero) -> x_hat (1, 3, 16h, 16w).
        ``guard`` pads each string as it is loaded (compressai's decoder does not bound-check:
        :func:`vcm.codecs.container.rans_guard`)."""
        from compressai.ans import RansDecoder

        m, (h, w) = self.cfg.dims[-1], groups.shape[-2:]
        dec = {g: RansDecoder() for g in strings}
        for g, s in strings.items():
            dec[g].set_stream(guard(s) if guard else s)
        z_tab, y_tab, med = CoderTable(self.entropy_bottleneck), CoderTable(self.gaussian_conditional), self._z_medians()
        hyper = torch.zeros(1, 2 * m, h, w, device=groups.device)
        for g, d in dec.items():
            sel = (groups == g)[:, None].float()
            cells = int(self.footprint(sel).sum())
            sym = torch.tensor(d.decode_stream(*z_tab.args(self._z_indexes(cells)))).reshape(1, -1, cells)
            hyper = self._group_hyper(self.entropy_bottleneck.dequantize(sym.to(med.device), med), sel, hyper)
        decoded: list[torch.Tensor] = []
        for i in range(self.cfg.slices):
            mu, sigma = self.slice_params(i, hyper, decoded)
            idx = self.gaussian_conditional.build_indexes(sigma)
            y_i = torch.zeros_like(mu)
            for g, d in dec.items():
                at = groups[0] == g
                sym = torch.tensor(d.decode_stream(*y_tab.args(idx[..., at])), device=mu.device)
                y_i[..., at] = self.gaussian_conditional.dequantize(sym.reshape(mu[..., at].shape), mu[..., at])
            decoded.append(y_i)
        return self.g_s(torch.cat(decoded, 1), groups)
