"""Rate-distortion objective and optimisation step for EMIC (the core of ``vcm train`` for it).

    loss = bpp + lambda * 255^2 * MSE over visible pixels
    bpp  = -sum(log2 likelihoods of y and z) / (H * W)   # full image area, so rates compare
                                                          # with full-frame codecs
The entropy bottleneck's quantiles are trained separately with compressai's ``aux_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vcm.codecs.emic.model import EmicModel


@dataclass
class RDResult:
    loss: torch.Tensor
    bpp: torch.Tensor
    mse_visible: torch.Tensor


def rd_loss(model: EmicModel, x: torch.Tensor, grid: torch.Tensor, lmbda: float) -> RDResult:
    """x: (B, 3, H, W) in [0, 1], H and W multiples of the unit; grid: bool (B, H/unit, W/unit)."""
    out = model(x, grid)
    b, _, h, w = x.shape
    bits = sum(-torch.log2(lik).sum() for lik in out["likelihoods"].values())
    bpp = bits / (b * h * w)
    keep = grid.repeat_interleave(model.cfg.unit, 1).repeat_interleave(model.cfg.unit, 2)[:, None]
    err = ((out["x_hat"] - x) ** 2 * keep).sum() / (keep.sum().clamp(min=1) * x.shape[1])
    return RDResult(bpp + lmbda * 255**2 * err, bpp, err)


def make_optimizers(model: EmicModel, lr: float = 1e-4, aux_lr: float = 1e-3) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for the network, Adam for the entropy-bottleneck quantiles (compressai convention)."""
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=aux_lr)


def train_step(model: EmicModel, x: torch.Tensor, grid: torch.Tensor, lmbda: float,
               opt: torch.optim.Optimizer, aux_opt: torch.optim.Optimizer, clip: float = 1.0) -> RDResult:
    """One optimisation step on a batch; returns the (detached) loss terms."""
    model.train()
    res = rd_loss(model, x, grid, lmbda)
    opt.zero_grad()
    res.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    aux = model.aux_loss()
    aux_opt.zero_grad()
    aux.backward()
    aux_opt.step()
    return RDResult(res.loss.detach(), res.bpp.detach(), res.mse_visible.detach())
