"""MCM network (brief 5.3): MAE encoder on visible patches -> LIC on the tokens -> MAE decoder.

    x (B,3,H,W), visible ids (B,V) --Encoder--> tokens (B,V,D) --layout--> (1,D,r,c) per image
    --g_a (1x1 convs)--> y (1,M,r,c) --h_a (3x3, two stride 2)--> z (1,Cz,r/4,c/4)
    z --EntropyBottleneck--> z_hat --h_mean_s, h_scale_s--> ctx (1,M,r,c) each
    y --ChARM (K slices, LRP; only the V real cells are coded)--> y_hat --g_s (1x1)--> (B,V,D)
    --Decoder (mask tokens at the H/p * W/p - V other places)--> x_hat (B,3,H,W): the whole image

Token layout: the V tokens, in the order the positions are sent, fill a near-square grid
row by row: c = ceil(sqrt(V)) columns, r = ceil(V / c) rows, the r*c - V last cells empty.
For a perfect square V this is exactly MCM's reshape to sqrt(V) x sqrt(V); other V work too.
The empty cells are not coded (the ChARM ``select``) and cost nothing. The grid is compact,
not the image's patch grid, so the hyper-latent has about V/16 cells whatever the image size
(z cost follows V, as in the paper); g_a / g_s are 1x1 and see one token at a time, and only
h_a / h_s and the 3x3 slice nets see grid neighbours, which in sampling order are arbitrary
tokens (MCM's own choice) and with spatially sorted ids are raster neighbours. Each image's
LIC runs on its own grid (a loop over the batch), so training sees exactly the layout,
zero padding and hyper grid that coding does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from vcm.codecs.checkpoint import SCALE_LEVELS, ArchConfig
from vcm.codecs.entropy import ChARM, conv_net
from vcm.codecs.entropy.bottleneck import SignedEntropyBottleneck, decompress_exact
from vcm.codecs.entropy.hyper import hyper_analysis, hyper_synthesis
from vcm.codecs.mcm.vit import Decoder, Encoder

ORDERS = ("sampling", "spatial")
LAYOUTS = ("official", "vcm")
LATENT_GAIN = 4.0  # std of y at initialisation, in quantisation steps


@dataclass(frozen=True)
class McmConfig(ArchConfig):
    """Architecture; the defaults are the paper's ViT-B model (brief 5.3).

    ``layout``: ``official`` is MCM's code (``compressai/models/MCM.py``): g_a and g_s end in a
    GELU, the position embeddings are stored ``pos_grid`` x ``pos_grid`` tables (MCM:
    256-px images / 16-px patches), and z's likelihood is its compressai fork's
    (:mod:`vcm.codecs.entropy.bottleneck`), so official checkpoints code exactly as MCM does
    (:mod:`vcm.codecs.mcm.official`). ``vcm`` is the legacy layout: no final GELU (y centred on
    0) and sin-cos positions computed for any grid (whole large images in one tile). Files
    written before this field existed are the vcm layout.
    """

    LAYOUTS: ClassVar[tuple[str, ...]] = LAYOUTS

    patch: int = 16
    enc_dim: int = 768
    enc_depth: int = 12
    enc_heads: int = 12
    dec_dim: int = 512
    dec_depth: int = 8
    dec_heads: int = 16
    mlp_ratio: float = 4.0
    analysis: tuple[int, ...] = (704, 640, 512, 384)   # 1x1 conv widths after the encoder; last = M
    hyper: tuple[int, ...] = (384, 336, 288, 240, 192)  # h_a widths (3rd and 5th stride 2); last = Cz
    slices: int = 12
    max_support: int = 6
    charm_hidden: tuple[int, ...] = (224, 176, 128, 64)
    order: str = "sampling"  # training token order: random permutation (MCM's sampling) or raster
    layout: str = "official"
    pos_grid: int = 16  # official layout: side of the stored position tables, in patches
    scale_levels: int = SCALE_LEVELS  # Gaussian scales of the y coder table (official code: 64)

    def __post_init__(self) -> None:
        self.check_coding()
        if self.pos_grid < 1:
            raise ValueError(f"pos_grid must be >= 1, got {self.pos_grid}")

    @property
    def official(self) -> bool:
        return self.layout == "official"

    @property
    def latent(self) -> int:
        return self.analysis[-1]


def layout(v: int) -> tuple[int, int]:
    """(rows, cols) of the compact grid for V >= 1 tokens."""
    cols = math.isqrt(v - 1) + 1
    return -(-v // cols), cols


def _pointwise(widths: tuple[int, ...], transpose: bool, final_act: bool) -> nn.Sequential:
    """1x1 (transposed) convs with GELU between and, when ``final_act``, after the last."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.ConvTranspose2d(a, b, 1) if transpose else nn.Conv2d(a, b, 1), nn.GELU()]
    return nn.Sequential(*(layers if final_act else layers[:-1]))


@torch.no_grad()
def _init_pointwise(seq: nn.Sequential, out_gain: float = 1.0, in_gain: float = 1.0) -> None:
    """[G] Scale-preserving init (He for GELU layers, unit gain for the last) with y spanning
    several quantisation steps: with torch's default init the LayerNorm'd tokens (std ~1) shrink
    to std ~0.05 through the 1x1 stack, all of y rounds to 0, and the decoder learns to ignore
    it (observed: no information passed in 450 steps). g_a ends x ``out_gain``; g_s starts / ``in_gain``."""
    convs = [m for m in seq if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for i, c in enumerate(convs):
        last = i == len(convs) - 1
        nn.init.normal_(c.weight, 0.0, math.sqrt((1.0 if last else 2.0) / c.in_channels))
        nn.init.zeros_(c.bias)
    convs[-1].weight.mul_(out_gain)
    convs[0].weight.div_(in_gain)


class McmModel(CompressionModel):
    """Inputs (B, 3, H, W) in [0, 1] with H, W multiples of ``patch``; visible ids (B, V)."""

    def __init__(self, cfg: McmConfig) -> None:
        super().__init__()
        if cfg.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {cfg.order!r}")
        if len(cfg.hyper) != 5:
            raise ValueError(f"hyper needs 5 widths (h_a's five convs), got {len(cfg.hyper)}")
        self.cfg = cfg
        m, h = cfg.latent, cfg.hyper
        table = cfg.pos_grid if cfg.official else 0
        self.encoder = Encoder(cfg.patch, cfg.enc_dim, cfg.enc_depth, cfg.enc_heads, cfg.mlp_ratio, table)
        self.decoder = Decoder(cfg.patch, cfg.enc_dim, cfg.dec_dim, cfg.dec_depth, cfg.dec_heads, cfg.mlp_ratio, table)
        self.g_a = _pointwise((cfg.enc_dim, *cfg.analysis), transpose=False, final_act=cfg.official)
        self.g_s = _pointwise((cfg.enc_dim, *cfg.analysis)[::-1], transpose=True, final_act=cfg.official)
        _init_pointwise(self.g_a, out_gain=LATENT_GAIN)
        _init_pointwise(self.g_s, in_gain=LATENT_GAIN)
        self.h_a = hyper_analysis(m, h)
        self.h_mean_s, self.h_scale_s = hyper_synthesis(m, h), hyper_synthesis(m, h)
        self.charm = ChARM(m, cfg.slices, m, conv_net(cfg.charm_hidden), max_support=cfg.max_support)
        self.entropy_bottleneck = (SignedEntropyBottleneck if cfg.official else EntropyBottleneck)(h[-1])
        self.gaussian_conditional = GaussianConditional(None)

    # -- token grid ---------------------------------------------------------------------------
    @staticmethod
    def to_grid(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(V, D) -> grid (1, D, r, c) and select bool (1, r, c) of the V real cells."""
        v, d = tokens.shape
        r, c = layout(v)
        flat = torch.cat([tokens, tokens.new_zeros(r * c - v, d)])
        sel = torch.arange(r * c, device=tokens.device) < v
        return flat.T.reshape(1, d, r, c), sel.reshape(1, r, c)

    @staticmethod
    def from_grid(grid: torch.Tensor, v: int) -> torch.Tensor:
        """(1, D, r, c) -> (V, D)."""
        return grid.flatten(2)[0, :, :v].T

    def _hyper(self, z_hat: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """z_hat (1, Cz, r', c') -> ChARM contexts (means, scales), each (1, M, r, c)."""
        r, c = size
        return self.h_mean_s(z_hat)[..., :r, :c], self.h_scale_s(z_hat)[..., :r, :c]

    def _lic(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training LIC of one image's V tokens (V, D): (y_hat tokens (V, D), likelihoods)."""
        grid, sel = self.to_grid(tokens)
        y = self.g_a(grid)
        z_hat, z_lik = self.entropy_bottleneck(self.h_a(y))
        means, scales = self._hyper(z_hat, y.shape[-2:])
        y_hat, y_lik = self.charm(y, means, scales, self.gaussian_conditional, sel)
        return self.from_grid(self.g_s(y_hat), tokens.shape[0]), {"y": y_lik, "z": z_lik}

    # -- passes ---------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, ids: torch.Tensor, pad: torch.Tensor, mae: bool = False) -> dict[str, Any]:
        """Joint RD pass: x_hat (B, 3, H, W) and the likelihoods of every coded symbol (flat).

        ids (B, Vmax) long, visible patches; pad (B, Vmax) bool, True on padding, which comes last
        in each row (:func:`vcm.codecs.mcm.rd.visible_ids`). ``mae``: stage 1 instead (through
        forward, so DistributedDataParallel syncs its gradients): {"x_hat"} only.
        """
        if mae:
            return {"x_hat": self.forward_mae(x, ids, pad)}
        tokens = self.encoder(x, ids, pad)
        rec, liks = [], []
        for b in range(len(x)):
            t, lik = self._lic(tokens[b, : int((~pad[b]).sum())])
            rec.append(t)
            liks += [lik["y"].reshape(-1), lik["z"].reshape(-1)]
        gh, gw = x.shape[-2] // self.cfg.patch, x.shape[-1] // self.cfg.patch
        x_hat = self.decoder(pad_sequence(rec, batch_first=True), ids, pad, gh, gw)
        return {"x_hat": x_hat, "likelihoods": {"all": torch.cat(liks)}}

    def forward_mae(self, x: torch.Tensor, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Stage 1 (MAE pretraining): encoder straight into the decoder, no coding -> x_hat."""
        gh, gw = x.shape[-2] // self.cfg.patch, x.shape[-1] // self.cfg.patch
        return self.decoder(self.encoder(x, ids, pad), ids, pad, gh, gw)

    @torch.no_grad()
    def compress(self, tiles: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[bytes, bytes]:
        """Tiles (x (1, 3, h, w), ids (V,) with V >= 1, in sending order) -> (y string, z string):
        one rANS string for every tile's y and one for every tile's z (a string costs up to ~12
        bytes of flush and padding, which matters at 0.01 bpp)."""
        from compressai.ans import BufferedRansEncoder

        coded = []
        for x, ids in tiles:
            grid, sel = self.to_grid(self.encoder(x, ids[None])[0])
            y = self.g_a(grid)
            coded.append((y, sel, self.h_a(y)))
        z_all = torch.cat([z.flatten(2) for *_, z in coded], 2)  # (1, Cz, sum of z cells)
        z_str = self.entropy_bottleneck.compress(z_all)[0]
        z_hats = self._split_z(self.entropy_bottleneck.decompress([z_str], z_all.shape[-1:]), [z.shape[-2:] for *_, z in coded])
        enc = BufferedRansEncoder()
        for (y, sel, _), z_hat in zip(coded, z_hats):
            means, scales = self._hyper(z_hat, y.shape[-2:])
            self.charm.compress(y, means, scales, self.gaussian_conditional, sel, encoder=enc)
        return enc.flush(), z_str

    @staticmethod
    def _split_z(z_all: torch.Tensor, shapes: list[torch.Size | tuple[int, int]]) -> list[torch.Tensor]:
        """(1, Cz, N) -> per tile (1, Cz, zh, zw)."""
        sizes = [int(h) * int(w) for h, w in shapes]
        return [z.reshape(*z.shape[:2], *shape) for z, shape in zip(z_all.split(sizes, 2), shapes)]

    @staticmethod
    def z_shape(v: int) -> tuple[int, int]:
        """Hyper-latent grid of V tokens: h_a's two stride-2 'same' convs halve, rounding up."""
        r, c = layout(v)
        return -(-r // 4), -(-c // 4)

    @torch.no_grad()
    def decompress(self, y_str: bytes, z_str: bytes, tiles: list[tuple[torch.Tensor, int, int]]) -> list[torch.Tensor]:
        """Strings + tiles (ids (V,), height, width; multiples of the patch) -> x_hat (1, 3, h, w)
        per tile. A tile with V = 0 is inpainted from mask tokens alone."""
        from compressai.ans import RansDecoder

        shapes = [self.z_shape(int(ids.numel())) for ids, _, _ in tiles if ids.numel()]
        z_hats: Any = iter(())
        dec = RansDecoder()
        if shapes:  # compressai's rANS decoder does not bound-check: the codec checks the strings
            z_all = decompress_exact(self.entropy_bottleneck, z_str, (sum(h * w for h, w in shapes),))
            z_hats = iter(self._split_z(z_all, shapes))
            dec.set_stream(y_str)
        out = []
        for ids, h, w in tiles:
            gh, gw, v = h // self.cfg.patch, w // self.cfg.patch, int(ids.numel())
            tokens = torch.zeros(1, 0, self.cfg.enc_dim, device=ids.device)
            if v:
                r, c = layout(v)
                means, scales = self._hyper(next(z_hats), (r, c))
                sel = (torch.arange(r * c, device=ids.device) < v).reshape(1, r, c)
                y_hat = self.charm.decompress(b"", means, scales, self.gaussian_conditional, sel, decoder=dec)
                tokens = self.from_grid(self.g_s(y_hat), v)[None]
            out.append(self.decoder(tokens, ids[None], None, gh, gw))
        return out
