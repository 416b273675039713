"""GIT-SSIC network (brief 2.2): GI Swin transforms, a conv hyperprior, ChARM 1x1.

    x (B,3,H,W), groups (B,H/16,W/16) --g_a--> y (B,M,H/16,W/16), clamped to [-255.5, 256.49]
    per group g: y * 1[g] --h_a--> z_g (B,Cz,H/64,W/64), kept on g's footprint cells only
    z_hat_g --h_s--> hyper (2M channels) at g's positions; summed over groups
    slice i: (mu_i, sigma_i) = nets_i(cat[hyper chunk i, y_hat_0..i-1])   (1x1 convs only)
    y_hat --g_s--> x_hat

Deviation from the released code [G] (kept in the default ``official`` layout): its z mixes all
groups (5x5 strided convs) and is sent whole, so group B's means, scales, strings and
reconstruction change when group A's pixels do, and z leaks A's content to a receiver of B.
Here each group has its own z, computed from that group's latents alone. With one group this
is the plain (whole-image) hyperprior, i.e. the official one-group model. The ``released``
layout reproduces the released multi-group code instead (one z of the whole y; NOT
group-independent). See :class:`GitSsicConfig` for what each layout changes.

:meth:`GitSsicModel.compress` gives each group its rANS strings: ``official``: [z_g, slice 1,
..., slice K] (the official code's one string per slice); ``released``: [slice 1..K] per group
and the shared [z] under :data:`SHARED`; ``vcm``: one string (z_g, then slices 1..K).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from compressai.models import CompressionModel
from compressai.ops import quantize_ste
from torch import nn

from vcm.codecs.checkpoint import SCALE_LEVELS, ArchConfig
from vcm.codecs.entropy import ChARM, conv_net
from vcm.codecs.gitssic.tables import FactorizedPrior, NearestGaussian
from vcm.codecs.gitssic.transform import Analysis, Synthesis

Z_CELL = 4  # latent cells per hyper-latent cell (two stride-2 convs)
MARGIN = 12  # latent cells around a group's box: more than h_a's and h_s's reach (7 cells)
LAYOUTS = ("official", "released", "vcm")
SHARED = -1  # key of the released layout's shared z string
Y_RANGE = (-255.5, 256.49)  # the official code clamps y to this


@dataclass(frozen=True)
class GitSsicConfig(ArchConfig):
    """Architecture; the defaults are the paper's (brief 2.2).

    ``layout``:
      - ``official`` (default): the official code's network and entropy coding (Swin blocks
        always shifted, zero padding inside each block, y clamped to :data:`Y_RANGE`, a z prior
        with filters (3, 3, 3) coded without a median offset, coder tables built as its
        ``data_compression`` does: :mod:`.tables`), with one z per group (the paper's group
        independence; with one group this is the official ``_woStructure`` model exactly);
      - ``released``: the released multi-group code, NOT group-independent: one z for the whole
        image, shifted-window labels region + group (they can collide), the group map resized
        over each padded stage;
      - ``vcm``: vcm's first layout (compressai's z prior with a median and tables, blocks not
        shifted on stages of one window, padding tokens with a label of their own, no clamp).
        Files written before this field existed are the vcm layout.
    ``scale_levels``: Gaussian scales in the y coder table (the official code has 64, and
    converted official files keep it; vcm's SCALE_LEVELS = 256 rounds scales less: 0.6 % over
    the estimate at ~1 bit a latent instead of 2 %).
    """

    LAYOUTS: ClassVar[tuple[str, ...]] = LAYOUTS

    dims: tuple[int, ...] = (128, 192, 256, 320)
    depths: tuple[int, ...] = (2, 2, 5, 1)
    heads: tuple[int, ...] = (8, 12, 16, 16)
    window: int = 8
    mlp_ratio: float = 4.0
    hyper_channels: int = 192
    slices: int = 10
    layout: str = "official"
    scale_levels: int = SCALE_LEVELS

    def __post_init__(self) -> None:
        self.check_coding()


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


class _Writer:
    """A group's rANS strings: one for all its symbols, or (``split``) one per :meth:`cut`."""

    def __init__(self, split: bool) -> None:
        from compressai.ans import BufferedRansEncoder

        self.split, self.strings, self.enc, self._new = split, [], BufferedRansEncoder(), BufferedRansEncoder

    def put(self, symbols: list[int], args: tuple[list[int], list[list[int]], list[int], list[int]]) -> None:
        self.enc.encode_with_indexes(symbols, *args)

    def cut(self) -> None:
        if self.split:
            self.strings.append(self.enc.flush())
            self.enc = self._new()

    def done(self) -> list[bytes]:
        return self.strings if self.split else [self.enc.flush()]


def _bound(guard: Callable[[bytes, int], bytes] | None, symbols: int) -> Callable[[bytes], bytes] | None:
    return None if guard is None else lambda s: guard(s, symbols)


class _Reader:
    """Reads what :class:`_Writer` wrote: each :meth:`get` opens the next string when ``split``."""

    def __init__(self, strings: list[bytes], split: bool, guard: Callable[[bytes], bytes] | None) -> None:
        self.strings, self.split, self.guard, self.dec = list(strings), split, guard or (lambda s: s), None
        if not split:
            self._open()

    def _open(self) -> None:
        from compressai.ans import RansDecoder

        if not self.strings:
            raise ValueError("a group has fewer rANS strings than the model decodes")
        self.dec = RansDecoder()
        self.dec.set_stream(self.guard(self.strings.pop(0)))

    def get(self, args: tuple[list[int], list[list[int]], list[int], list[int]]) -> list[int]:
        if self.split:
            self._open()
        return self.dec.decode_stream(*args)


def one_hot(groups: torch.Tensor, n: int) -> torch.Tensor:
    """int (B, h, w) -> float (B, n, h, w)."""
    return F.one_hot(groups.long(), n).permute(0, 3, 1, 2).float()


class GitSsicModel(CompressionModel):
    """GIT-SSIC codec network; x in [0, 1], H and W multiples of 16 (of 64 as the official code
    pads, for the released layout's z to match it)."""

    def __init__(self, cfg: GitSsicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m, cz, k = cfg.dims[-1], cfg.hyper_channels, cfg.slices
        if m % k or (2 * m) % k:
            raise ValueError(f"latent channels {m} do not split into {k} slices")
        self.g_a = Analysis(cfg.dims, cfg.depths, cfg.heads, cfg.window, cfg.mlp_ratio, cfg.layout)
        self.g_s = Synthesis(cfg.dims, cfg.depths, cfg.heads, cfg.window, cfg.mlp_ratio, cfg.layout)
        self.h_a = nn.Sequential(nn.Conv2d(m, cz, 3, padding=1), nn.ReLU(), nn.Conv2d(cz, cz, 5, 2, 2), nn.ReLU(),
                                 nn.Conv2d(cz, cz, 5, 2, 2))
        self.h_s = nn.Sequential(nn.ConvTranspose2d(cz, cz, 5, 2, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(cz, cz, 5, 2, 2, 1), nn.ReLU(), nn.Conv2d(cz, 2 * m, 3, padding=1))
        # the shared ChARM, GIT-SSIC's way: 1x1 ReLU nets, slice i conditioned on chunk i of the
        # hyper output and all earlier slices, no LRP (its coding stays per group, below)
        self.charm = ChARM(m, k, 2 * m // k, conv_net((m, m), kernel=1, act=nn.ReLU), lrp=False)
        self.register_load_state_dict_pre_hook(_legacy_slice_nets)
        legacy = cfg.layout == "vcm"
        self.entropy_bottleneck = EntropyBottleneck(cz) if legacy else FactorizedPrior(cz)
        self.gaussian_conditional = GaussianConditional(None) if legacy else NearestGaussian(cfg.scale_levels)

    def analysis(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """y (B, M, H/16, W/16), clamped to :data:`Y_RANGE` but in the vcm layout."""
        y = self.g_a(x, groups)
        return y if self.cfg.layout == "vcm" else y.clamp(*Y_RANGE)

    # -- hyperprior, one z per group (official, vcm) or one for the image (released) -----------
    @staticmethod
    def _pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, -t.shape[-1] % Z_CELL, 0, -t.shape[-2] % Z_CELL))

    def symbols(self, member: torch.Tensor) -> int:
        """bool (1, h, w) group membership -> how many symbols the group codes (its z cells x Cz
        and its y cells x M; the released layout's shared z apart)."""
        cells = int(self.footprint(member[:, None]).sum())
        return cells * self.cfg.hyper_channels + int(member.sum()) * self.cfg.dims[-1]

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

    def _hyper(self, y: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass of the hyperprior: (hyper (B, 2M, h, w), z likelihoods, 1 off footprints)."""
        if self.cfg.layout == "released":
            z_hat, z_lik = self.entropy_bottleneck(self.h_a(y))
            return self.hyper_synthesis(z_hat, y.shape[-2:]), z_lik
        b, n = y.shape[0], int(groups.max()) + 1
        member = one_hot(groups, n).reshape(b * n, 1, *y.shape[-2:])
        z_hat, z_lik = self.entropy_bottleneck(self.hyper_analysis(y.repeat_interleave(n, 0), member))
        foot = self.footprint(member)
        hyper = self.hyper_synthesis(z_hat * foot, y.shape[-2:]) * member
        return hyper.reshape(b, n, -1, *y.shape[-2:]).sum(1), z_lik.where(foot, 1.0)

    def forward(self, x: torch.Tensor, groups: torch.Tensor) -> dict[str, Any]:
        """Training pass; ``groups`` int (B, H/16, W/16). Likelihoods of z count footprints only."""
        y = self.analysis(x, groups)
        hyper, z_lik = self._hyper(y, groups)
        decoded: list[torch.Tensor] = []
        liks = []
        for i, y_i in enumerate(y.chunk(self.cfg.slices, 1)):
            mu, sigma = self.slice_params(i, hyper, decoded)
            _, lik = self.gaussian_conditional(y_i, sigma, means=mu)
            decoded.append(quantize_ste(y_i - mu) + mu)
            liks.append(lik)
        x_hat = self.g_s(torch.cat(decoded, 1), groups)
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(liks, 1), "z": z_lik}}

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

    def _z_medians(self) -> torch.Tensor:
        """(1, Cz, 1): the offsets of the z symbols (the medians; zeros in the official layouts)."""
        return self.entropy_bottleneck._get_medians().reshape(1, -1, 1)

    def _z_indexes(self, cells: int) -> torch.Tensor:
        """CDF index (its channel) of every z value of ``cells`` cells, channel-major."""
        return torch.arange(self.cfg.hyper_channels).repeat_interleave(cells)

    @torch.no_grad()
    def compress(self, x: torch.Tensor, groups: torch.Tensor) -> dict[int, list[bytes]]:
        """One image: {group id: its rANS strings} for every non-empty group (module docstring);
        y values of a group in channel-major raster order of its cells."""
        y = self.analysis(x, groups)
        ids, split = [int(g) for g in torch.unique(groups)], self.cfg.layout != "vcm"
        out = {g: _Writer(split) for g in ids}
        z_tab, y_tab, med = CoderTable(self.entropy_bottleneck), CoderTable(self.gaussian_conditional), self._z_medians()
        hyper = torch.zeros(1, 2 * y.shape[1], *y.shape[-2:], device=y.device)
        if self.cfg.layout == "released":
            out[SHARED] = _Writer(True)
            z = self.h_a(y)
            sym = self.entropy_bottleneck.quantize(z.reshape(*z.shape[:2], -1), "symbols", med)
            out[SHARED].put(sym.reshape(-1).tolist(), z_tab.args(self._z_indexes(sym.shape[-1])))
            out[SHARED].cut()
            z_hat = self.entropy_bottleneck.dequantize(sym, med).reshape(z.shape)
            hyper = self.hyper_synthesis(z_hat, y.shape[-2:])
        for g in ids if self.cfg.layout != "released" else ():
            sel = (groups == g)[:, None].float()
            sym = self.entropy_bottleneck.quantize(self._group_z(y, sel), "symbols", med)
            out[g].put(sym.reshape(-1).tolist(), z_tab.args(self._z_indexes(sym.shape[-1])))
            out[g].cut()
            hyper = self._group_hyper(self.entropy_bottleneck.dequantize(sym, med), sel, hyper)
        decoded: list[torch.Tensor] = []
        for i, y_i in enumerate(y.chunk(self.cfg.slices, 1)):
            mu, sigma = self.slice_params(i, hyper, decoded)
            sym = self.gaussian_conditional.quantize(y_i, "symbols", mu)
            idx = self.gaussian_conditional.build_indexes(sigma)
            for g in ids:
                at = groups[0] == g
                out[g].put(sym[..., at].reshape(-1).tolist(), y_tab.args(idx[..., at]))
                out[g].cut()
            decoded.append(self.gaussian_conditional.dequantize(sym, mu))
        return {g: w.done() for g, w in out.items()}

    @torch.no_grad()
    def decompress(self, strings: dict[int, list[bytes]], groups: torch.Tensor,
                   guard: Callable[[bytes, int], bytes] | None = None) -> torch.Tensor:
        """Decode the groups in ``strings`` (others stay zero) -> x_hat (1, 3, 16h, 16w).
        ``guard(string, symbols)`` pads each string as it is loaded by what the most symbols its
        group decodes could over-read (compressai's decoder does not bound-check:
        :func:`vcm.codecs.container.rans_guard`), so that many groups do not multiply the padding."""
        m, cz, (h, w) = self.cfg.dims[-1], self.cfg.hyper_channels, groups.shape[-2:]
        split = self.cfg.layout != "vcm"
        dec = {g: _Reader(s, split, _bound(guard, self.symbols(groups == g))) for g, s in strings.items() if g != SHARED}
        z_tab, y_tab, med = CoderTable(self.entropy_bottleneck), CoderTable(self.gaussian_conditional), self._z_medians()
        hyper = torch.zeros(1, 2 * m, h, w, device=groups.device)
        if self.cfg.layout == "released":
            if SHARED not in strings:
                raise ValueError("the released layout needs the shared z string")
            zh, zw = -(-h // Z_CELL), -(-w // Z_CELL)
            sym = torch.tensor(_Reader(strings[SHARED], True, _bound(guard, zh * zw * cz)).get(z_tab.args(self._z_indexes(zh * zw))))
            z_hat = self.entropy_bottleneck.dequantize(sym.reshape(1, cz, -1).to(med.device), med)
            hyper = self.hyper_synthesis(z_hat.reshape(1, cz, zh, zw), (h, w))
        for g, d in dec.items() if self.cfg.layout != "released" else ():
            sel = (groups == g)[:, None].float()
            cells = int(self.footprint(sel).sum())
            sym = torch.tensor(d.get(z_tab.args(self._z_indexes(cells)))).reshape(1, -1, cells)
            hyper = self._group_hyper(self.entropy_bottleneck.dequantize(sym.to(med.device), med), sel, hyper)
        decoded: list[torch.Tensor] = []
        for i in range(self.cfg.slices):
            mu, sigma = self.slice_params(i, hyper, decoded)
            idx = self.gaussian_conditional.build_indexes(sigma)
            y_i = torch.zeros_like(mu)
            for g, d in dec.items():
                at = groups[0] == g
                sym = torch.tensor(d.get(y_tab.args(idx[..., at])), device=mu.device)
                y_i[..., at] = self.gaussian_conditional.dequantize(sym.reshape(mu[..., at].shape), mu[..., at])
            decoded.append(y_i)
        return self.g_s(torch.cat(decoded, 1), groups)
