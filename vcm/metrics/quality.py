"""Pixel fidelity: PSNR over the image and inside / outside a mask (8-bit peak); MS-SSIM."""

from __future__ import annotations

import math

import numpy as np

PSNR_CAP = 100.0  # dB used for lossless images when averaging PSNR over images


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float | None:
    """PSNR in dB between uint8 images over the pixels where ``where`` is True (all if None).

    None when the region is empty; ``inf`` when identical.
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    if where is not None:
        if where.shape != a.shape[:2]:
            raise ValueError(f"mask size {where.shape} does not match image size {a.shape[:2]}")
        diff = diff[where]
    if diff.size == 0:
        return None
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


MSSSIM_MIN_SIDE = 161  # 5 scales of pytorch_msssim's 11-px window need a side > (11 - 1) * 2**4


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM (pytorch_msssim, 5 scales, window 11, sigma 1.5) of uint8 RGB images, in [0, 1];
    None when the image is too small for 5 scales."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < MSSSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta, tb = (torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() for x in (a, b))
    return float(_ms_ssim(ta, tb, data_range=255.0))


class Lpips:
    """LPIPS (the ``lpips`` package's AlexNet variant; lower is better) with the AlexNet backbone
    read from a local torchvision ``alexnet`` state dict (whole, or its ``features.*``): the
    package ships its linear calibration layers but downloads the backbone, which cannot be
    done offline. Without such a file vcm reports LPIPS as "needs weights"."""

    def __init__(self, alexnet_path: str) -> None:
        from vcm._optional import require
        from vcm.assets import expand_path, require_file
        from vcm.device import load_checkpoint

        lpips = require("lpips")
        state = load_checkpoint(require_file(expand_path(alexnet_path), "AlexNet state dict (LPIPS backbone)"))
        self.model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
        own = self.model.net.state_dict()  # keys sliceK.I.* hold torchvision's features.I.*
        missing = [k for k in own if "features." + k.split(".", 1)[1] not in state]
        if missing:
            raise ValueError(f"{alexnet_path} is not a torchvision AlexNet state dict (no {missing[0]!r} weights)")
        self.model.net.load_state_dict({k: state["features." + k.split(".", 1)[1]] for k in own})

    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        """LPIPS distance of two uint8 RGB images (inputs scaled to [-1, 1])."""
        import torch

        ta, tb = (torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() / 127.5 - 1 for x in (a, b))
        with torch.no_grad():
            return float(self.model(ta, tb))
