"""SegPIC network (brief 4.2): SAL down/up blocks, WAMs, RATs steered by region prototypes,
hyperprior + the shared ChARM.

    x (B,3,H,W) --DownSAL x2, WAM--> y' (B,N,H/4,W/4)   prototypes p' of y' --code--> p'_hat
    RAT_enc(y', p'_hat) --DownSAL x2, WAM--> y (B,M,H/16,W/16)   prototypes p of y --code--> p_hat
    RAT_hyper(y, p_hat) --h_a--> z --EB--> z_hat --h_mean_s, h_scale_s, each + RAT(., p_hat)--> ctx
    y --ChARM (slices, LRP)--> y_hat --WAM, UpSAL x2--> RAT_dec(., p'_hat) --WAM, UpSAL x2, 1x1--> x_hat

Prototypes are region means of the features: per segment of a training mask (``seg``), else
per cell of a 4x4 grid (inference, no mask). Each level is coded through 1x1 convs + GDN and
its own EntropyBottleneck, and counted in the rate. H and W must be multiples of 64.

The ``official`` layout is the released ``sac.py`` (its checkpoints load through
:mod:`vcm.codecs.segpic.official`, tested equal to the official code); ``vcm`` is this module's
first layout, kept for the files written with it (:class:`SegpicConfig` lists the differences).
Left as in vcm in both: BL (``rat: false``, not in the released code) uses forward GDN in its
up-blocks (WACNN: inverse); in mask training a segment id absent from an image costs no bits
(released: every id up to the image's largest is coded, absent ones as zero prototypes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models import CompressionModel
from compressai.ops import quantize_ste
from torch import nn

from vcm.codecs.checkpoint import SCALE_LEVELS, ArchConfig
from vcm.codecs.entropy import ChARM, conv_net
from vcm.codecs.entropy.bottleneck import SignedEntropyBottleneck, decompress_exact
from vcm.codecs.entropy.hyper import hyper_analysis, hyper_synthesis
from vcm.codecs.segpic.rat import (
    DownSAL,
    RegionAdaptiveTransform,
    UpSAL,
    grid_expand,
    grid_pool,
    mask_expand,
    mask_pool,
)
from vcm.codecs.segpic.wam import WAM

GRID = 4  # inference prototypes: a 4x4 grid of regions
LAYOUTS = ("official", "vcm")


@dataclass(frozen=True)
class SegpicConfig(ArchConfig):
    """Architecture; the defaults are the paper's and the released code's (N 192, M 320; brief 4.2).

    ``layout``:
      - ``official`` (default): as released. WAM attention x + W-MSA, always shifted; the RAT's
        channel attention C -> C -> C; prototype coders of 1x1 convs + GDN, analysis
        C -> ``proto`` (level y') or C -> ``proto2`` (level y), synthesis last -> ``proto_synth``
        -> C with inverse GDN; hyper synthesis Cz -> Cz -> w3 -> w2 -> w1 -> M; in training the
        decoder sees z and the prototypes rounded around the medians (straight-through), the
        likelihoods noisy ones; z and prototype likelihoods (and tables) as compressai < 1.2
        computed them (:mod:`vcm.codecs.entropy.bottleneck`); images padded to 64 with centred zeros.
      - ``vcm``: vcm's first layout. WAM attention a Swin block (LayerNorm + MLP), not shifted on
        a map of one window; channel attention C -> C/4 -> C; both prototype coders
        C -> ``proto`` and back (``proto2``, ``proto_synth`` unused); hyper synthesis
        Cz -> w3 -> w2 -> w1 -> M -> M; the decoder sees noisy z and prototypes in training;
        compressai 1.2's entropy bottlenecks; centred replicate padding. Files written before this field existed are the vcm layout.
    ``head``: channels of the last up-block, before the 1x1 conv to RGB (32 as released).
    """

    LAYOUTS: ClassVar[tuple[str, ...]] = LAYOUTS

    n: int = 192
    m: int = 320
    heads: int = 8
    windows: tuple[int, ...] = (8, 4)  # WAM windows at y' and y (shift = half)
    proto: tuple[int, ...] = (128, 96, 96)  # prototype analysis widths at y'; last = EntropyBottleneck channels
    proto2: tuple[int, ...] = (192, 128, 96)  # ... at y (official layout)
    proto_synth: tuple[int, ...] = (128, 192)  # prototype synthesis hidden widths (official layout)
    hyper: tuple[int, ...] = (320, 288, 256, 224, 192)
    slices: int = 10
    max_support: int = 5
    charm_hidden: tuple[int, ...] = (224, 176, 128, 64)
    wam_units: int = 3  # ResUnits per WAM branch
    rat: bool = True  # False: the "BL" baseline (no RAT, no SAL)
    head: int = 32
    layout: str = "official"
    scale_levels: int = SCALE_LEVELS  # Gaussian scales of the y coder table (official code: 64)

    def __post_init__(self) -> None:
        self.check_coding()
        if self.n % self.heads or self.m % self.heads:
            raise ValueError(f"n {self.n} and m {self.m} must be multiples of heads {self.heads}")
        if len(self.windows) != 2 or not (self.proto and self.proto2):
            raise ValueError("windows needs two sizes (y', y); proto and proto2 at least one width")

    def proto_chains(self, c: int, level: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Channel chains (analysis, synthesis) of the prototype coder of a level (1: y', 2: y)
        with ``c`` feature channels."""
        if self.layout == "vcm":
            return (c, *self.proto), (*self.proto[::-1], c)
        widths = self.proto if level == 1 else self.proto2
        return (c, *widths), (widths[-1], *self.proto_synth, c)


def _proto_coder(chain: tuple[int, ...], inverse: bool) -> nn.Sequential:
    """1x1 convs along ``chain`` with (inverse) GDN between them."""
    layers: list[nn.Module] = []
    for a, b in zip(chain[:-1], chain[1:]):
        layers += [nn.Conv2d(a, b, 1), GDN(b, inverse=inverse)]
    return nn.Sequential(*layers[:-1])


def bottleneck(eb: EntropyBottleneck, t: torch.Tensor, ste: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoded t, likelihoods); ``ste``: the decoded value is t rounded around the medians with a
    straight-through gradient (the released training), else the entropy model's (noisy in training)."""
    t_hat, lik = eb(t)
    if ste:
        med = eb._get_medians()
        t_hat = quantize_ste(t - med) + med
    return t_hat, lik


class _Prototypes(nn.Module):
    """One level's prototype path: pool, code (1x1 + GDN, EntropyBottleneck), expand."""

    def __init__(self, chains: tuple[tuple[int, ...], tuple[int, ...]], official: bool) -> None:
        super().__init__()
        self.g_a, self.g_s = _proto_coder(chains[0], False), _proto_coder(chains[1], True)
        self.entropy_bottleneck = (SignedEntropyBottleneck if official else EntropyBottleneck)(chains[0][-1])
        self.ste = official

    def pool(self, f: torch.Tensor, seg: torch.Tensor | None, n: int) -> torch.Tensor:
        """Region means as a (B, C, R, 1) or (B, C, 4, 4) 'image' for the 1x1 coder."""
        if seg is None:
            return grid_pool(f, GRID)
        return mask_pool(f, seg, n).transpose(1, 2)[..., None]

    @staticmethod
    def expand(p: torch.Tensor, seg: torch.Tensor | None, size: torch.Size) -> torch.Tensor:
        if seg is None:
            return grid_expand(p, *size)
        return mask_expand(p[..., 0].transpose(1, 2), seg)

    def forward(self, f: torch.Tensor, seg: torch.Tensor | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (expanded decoded prototypes (B, C, h, w), likelihoods); segments absent from
        an image (the batch holds the largest count) cost nothing."""
        p_hat, lik = bottleneck(self.entropy_bottleneck, self.g_a(self.pool(f, seg, n)), self.ste)
        if seg is not None:
            present = torch.zeros(len(seg), n, dtype=torch.bool, device=seg.device).scatter(1, seg.flatten(1), True)
            lik = lik.where(present[:, None, :, None], 1.0)
        return self.expand(self.g_s(p_hat), seg, f.shape[-2:]), lik


class SegpicModel(CompressionModel):
    """x (B, 3, H, W) in [0, 1], H and W multiples of 64; ``seg`` only in training."""

    def __init__(self, cfg: SegpicConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, m, official = cfg.n, cfg.m, cfg.layout == "official"
        down = DownSAL if cfg.rat else _PlainDown
        up = UpSAL if cfg.rat else _PlainUp
        w1, w2 = cfg.windows
        wam1, wam2 = (partial(WAM, c, cfg.heads, w, w // 2, cfg.wam_units, official) for c, w in ((n, w1), (m, w2)))
        self.g_a1 = nn.Sequential(down(3, n), down(n, n), wam1())
        self.g_a2 = nn.Sequential(down(n, n), down(n, m), wam2())
        self.g_s1 = nn.Sequential(wam2(), up(m, n), up(n, n))
        self.g_s2 = nn.Sequential(wam1(), up(n, n), up(n, cfg.head), nn.Conv2d(cfg.head, 3, 1))
        if cfg.rat:  # BL has no prototypes (and DDP needs every parameter used)
            self.protos1 = _Prototypes(cfg.proto_chains(n, 1), official)
            self.protos2 = _Prototypes(cfg.proto_chains(m, 2), official)
        rats = ("rat_enc", "rat_dec", "rat_hyper", "rat_means", "rat_scales")
        for name, c in zip(rats, (n, n, m, m, m)):
            setattr(self, name, RegionAdaptiveTransform(c, c, r=1 if official else 4) if cfg.rat else None)
        self.h_a = hyper_analysis(m, cfg.hyper)
        self.h_mean_s, self.h_scale_s = (hyper_synthesis(m, cfg.hyper, official) for _ in range(2))
        self.charm = ChARM(m, cfg.slices, m, conv_net(cfg.charm_hidden), max_support=cfg.max_support)
        self.entropy_bottleneck = (SignedEntropyBottleneck if official else EntropyBottleneck)(cfg.hyper[-1])
        self.gaussian_conditional = GaussianConditional(None)

    @staticmethod
    def _rat(rat: RegionAdaptiveTransform | None, f: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        return f if rat is None or p is None else rat(f, p)

    def _context(self, z_hat: torch.Tensor, p2: torch.Tensor | None, size: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        """z_hat -> ChARM contexts (means, scales), each (B, M, h, w), RAT-refined."""
        r, c = size
        means = self._rat(self.rat_means, self.h_mean_s(z_hat)[..., :r, :c], p2)
        scales = self._rat(self.rat_scales, self.h_scale_s(z_hat)[..., :r, :c], p2)
        return means, scales

    def forward(self, x: torch.Tensor, seg: torch.Tensor | None = None) -> dict[str, Any]:
        """Training / estimation pass. ``seg`` long (B, H, W): segment ids 0..S-1 (privileged
        information, prototypes per segment); None: the 4x4 grid prototypes of inference."""
        n_seg = int(seg.max()) + 1 if seg is not None else 0
        seg4 = None if seg is None else F.interpolate(seg[:, None].float(), scale_factor=0.25, mode="nearest")[:, 0].long()
        seg16 = None if seg4 is None else F.interpolate(seg4[:, None].float(), scale_factor=0.25, mode="nearest")[:, 0].long()
        y1 = self.g_a1(x)
        p1, p1_lik = self.protos1(y1, seg4, n_seg) if self.cfg.rat else (None, None)
        y = self.g_a2(self._rat(self.rat_enc, y1, p1))
        p2, p2_lik = self.protos2(y, seg16, n_seg) if self.cfg.rat else (None, None)
        z = self.h_a(self._rat(self.rat_hyper, y, p2))
        z_hat, z_lik = bottleneck(self.entropy_bottleneck, z, self.cfg.layout == "official")
        means, scales = self._context(z_hat, p2, y.shape[-2:])
        y_hat, y_lik = self.charm(y, means, scales, self.gaussian_conditional)
        x_hat = self.g_s2(self._rat(self.rat_dec, self.g_s1(y_hat), p1))
        liks = {"y": y_lik, "z": z_lik} | ({"p1": p1_lik, "p2": p2_lik} if self.cfg.rat else {})
        return {"x_hat": x_hat, "likelihoods": liks}

    # -- coding (no mask: 4x4 grid prototypes) --------------------------------------------------
    def _code_protos(self, level: _Prototypes, f: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        q = level.g_a(grid_pool(f, GRID))
        s = level.entropy_bottleneck.compress(q)[0]
        return s, self._decode_protos(level, s, f.shape[-2:])

    @staticmethod
    def _decode_protos(level: _Prototypes, s: bytes, size: torch.Size) -> torch.Tensor:
        return grid_expand(level.g_s(level.entropy_bottleneck.decompress([s], (GRID, GRID))), *size)

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> list[bytes]:
        """One image (B = 1, H, W multiples of 64) -> [y, z, p', p] strings ([y, z] for BL)."""
        if x.shape[0] != 1:
            raise ValueError(f"compress codes one image at a time, got a batch of {x.shape[0]}")
        y1 = self.g_a1(x)
        s1, p1 = self._code_protos(self.protos1, y1) if self.cfg.rat else (b"", None)
        y = self.g_a2(self._rat(self.rat_enc, y1, p1))
        s2, p2 = self._code_protos(self.protos2, y) if self.cfg.rat else (b"", None)
        z = self.h_a(self._rat(self.rat_hyper, y, p2))
        z_str = self.entropy_bottleneck.compress(z)[0]
        z_hat = self.entropy_bottleneck.decompress([z_str], z.shape[-2:])
        means, scales = self._context(z_hat, p2, y.shape[-2:])
        y_str, _ = self.charm.compress(y, means, scales, self.gaussian_conditional)
        return [y_str, z_str] + ([s1, s2] if self.cfg.rat else [])

    @torch.no_grad()
    def decompress(self, strings: list[bytes], height: int, width: int) -> torch.Tensor:
        """Strings of :meth:`compress` -> x_hat (1, 3, height, width), multiples of 64."""
        if len(strings) != (4 if self.cfg.rat else 2):
            raise ValueError(f"expected {4 if self.cfg.rat else 2} strings, got {len(strings)}")
        size1, size2 = (height // 4, width // 4), (height // 16, width // 16)
        z_hat = decompress_exact(self.entropy_bottleneck, strings[1], (height // 64, width // 64))
        p1 = self._decode_protos(self.protos1, strings[2], size1) if self.cfg.rat else None
        p2 = self._decode_protos(self.protos2, strings[3], size2) if self.cfg.rat else None
        means, scales = self._context(z_hat, p2, size2)
        y_hat = self.charm.decompress(strings[0], means, scales, self.gaussian_conditional)
        return self.g_s2(self._rat(self.rat_dec, self.g_s1(y_hat), p1))


class _PlainDown(nn.Sequential):
    """BL: conv 5x5 stride 2 + GDN, no SAL."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 5, 2, 2), GDN(cout))


class _PlainUp(nn.Sequential):
    """BL: transposed conv 5x5 stride 2 + GDN, no SAL."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.ConvTranspose2d(cin, cout, 5, 2, 2, 1), GDN(cout))
