"""MCM's side of ``vcm train``: two stages on the same network.

Stage ``mae`` (MAE pretraining of the ViT; brief 5.5): 75 % of the patches are hidden at random
(drawn here, whatever the data masks are), loss = pixel MSE on the hidden patches.
Stage ``rd`` (joint training), with the crop's data mask as the visible set::

    loss = bpp + lambda * (10 * L1 + 0.25 * (1 - SSIM) + w_p * perceptual)
    bpp  = -sum(log2 likelihoods of y and z) / (B * H * W)

SSIM is ``pytorch_msssim.ssim`` (window 11, sigma 1.5), on the whole image. The perceptual term
(MCM: VGG16 relu2_2 + relu3_3 feature MSE, weight 0.1) needs ImageNet VGG16 weights, which
cannot be downloaded here: it is off unless ``perceptual: PATH`` names a local torchvision
``vgg16`` state dict (a deviation from the paper when off; MCM's de-normalisation quirk is not
reproduced: the VGG sees ImageNet-normalised [0, 1] images). The position record is not in the
training rate (it is fixed by the mask, not by the network).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vcm.codecs.mcm.model import McmConfig, McmModel
from vcm.config import from_dict
from vcm.train.base import RDResult, bits_per_pixel

MAE_VISIBLE = 0.25


def visible_ids(grid: torch.Tensor, order: str, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """bool (B, gh, gw) -> ids (B, Vmax) long and pad (B, Vmax) bool (True = padding).

    ``spatial``: raster order; ``sampling``: a random order per image (MCM sends ids in the
    order DA-Mask drew them, which carries no spatial meaning).
    """
    flat = grid.flatten(1)
    keys = torch.rand(flat.shape, generator=generator, device=flat.device) if order == "sampling" else \
        torch.arange(flat.shape[1], device=flat.device, dtype=torch.float).expand_as(flat)
    keys = torch.where(flat, keys, keys.new_tensor(float("inf")))
    v = int(flat.sum(1).max())
    ids = keys.argsort(1)[:, :v]
    return ids, ~flat.gather(1, ids)


def random_visible(b: int, gh: int, gw: int, ratio: float, device: torch.device) -> torch.Tensor:
    """MAE masking: bool (B, gh, gw) with round(ratio * gh * gw) >= 1 random cells per image."""
    n = gh * gw
    keep = torch.rand(b, n, device=device).argsort(1)[:, : max(1, round(ratio * n))]
    return torch.zeros(b, n, dtype=torch.bool, device=device).scatter(1, keep, True).reshape(b, gh, gw)


class Perceptual(nn.Module):
    """VGG16 feature MSE at relu2_2 and relu3_3 from a local torchvision state dict (frozen):
    a whole ``vgg16`` state dict or only its ``features.*`` entries."""

    MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def __init__(self, path: str) -> None:
        super().__init__()
        from torchvision.models import vgg16

        from vcm.assets import expand_path, require_file
        from vcm.device import load_checkpoint

        state = load_checkpoint(require_file(expand_path(path), "VGG16 state dict"))
        if not isinstance(state, dict) or not any(k.startswith("features.") for k in state):
            raise ValueError(f"{path} is not a torchvision VGG16 state dict (no 'features.*' weights)")
        features = vgg16().features
        features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
        self.f2, self.f3 = features[:9].eval(), features[9:16].eval()
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1))

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a2, b2 = self.f2((x_hat - self.mean) / self.std), self.f2((x - self.mean) / self.std)
        return F.mse_loss(a2, b2) + F.mse_loss(self.f3(a2), self.f3(b2))


def distortion(x_hat: torch.Tensor, x: torch.Tensor, perceptual: Perceptual | None, w_p: float) -> torch.Tensor:
    """10 * L1 + 0.25 * (1 - SSIM) (+ w_p * perceptual); images in [0, 1]."""
    from pytorch_msssim import ssim

    d = 10 * F.l1_loss(x_hat, x) + 0.25 * (1 - ssim(x_hat, x, data_range=1.0, win_size=11, win_sigma=1.5))
    return d + w_p * perceptual(x_hat, x) if perceptual is not None else d


class McmLearned:
    """The :class:`vcm.train.LearnedCodec` adapter for MCM (registered as ``mcm``).

    Loss options ride in the codec params next to the architecture: ``perceptual`` (path or
    null) and ``perceptual_weight`` (0.1).
    """

    unit = McmConfig.patch
    stages = ("mae", "rd")

    def __init__(self) -> None:
        self.perceptual: Perceptual | None = None
        self.w_p = 0.1

    def build(self, params: Mapping[str, Any]) -> McmModel:
        params = dict(params)
        path, self.w_p = params.pop("perceptual", None), float(params.pop("perceptual_weight", 0.1))
        cfg = from_dict(McmConfig, params, "codec")
        self.unit = cfg.patch
        self.perceptual = Perceptual(path) if path else None
        return McmModel(cfg)

    @staticmethod
    def _model(net: nn.Module) -> McmModel:
        return net.module if hasattr(net, "module") else net  # type: ignore[return-value]

    def rd_loss(self, net: nn.Module, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult:
        """x (B, 3, H, W) in [0, 1]; grid bool (B, H/16, W/16), the visible patches."""
        ids, pad = visible_ids(grid, self._model(net).cfg.order)
        out = net(x, ids, pad)
        b, _, h, w = x.shape
        bpp = bits_per_pixel(out["likelihoods"], b, h, w)
        x_hat = out["x_hat"]
        if self.perceptual is not None:
            self.perceptual.to(x.device)
        d = distortion(x_hat, x, self.perceptual, self.w_p)  # no clamp: it would stop the gradient
        return RDResult(bpp + lmbda * d, bpp, F.mse_loss(x_hat.detach(), x))

    def stage_loss(self, stage: str, net: nn.Module, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult:
        """``rd`` is :meth:`rd_loss`; ``mae`` is MAE pretraining (75 % random masking)."""
        if stage == "rd":
            return self.rd_loss(net, x, grid, lmbda)
        model = self._model(net)
        p = model.cfg.patch
        keep = random_visible(len(x), x.shape[-2] // p, x.shape[-1] // p, MAE_VISIBLE, x.device)
        ids, pad = visible_ids(keep, "sampling")
        x_hat = net(x, ids, pad, mae=True)["x_hat"]
        hidden = (~keep).repeat_interleave(p, 1).repeat_interleave(p, 2)[:, None].to(x.dtype)
        mse = ((x_hat - x) ** 2 * hidden).sum() / (hidden.sum() * 3)
        return RDResult(mse, x.new_zeros(()), mse.detach())

    def save(self, model: nn.Module, path: Path, half: bool, **extra: Any) -> Path:
        from vcm.codecs.mcm.codec import save_mcm_checkpoint

        assert isinstance(model, McmModel)
        return save_mcm_checkpoint(model, path, half=half, **extra)
