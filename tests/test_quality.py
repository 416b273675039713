"""Image-fidelity metrics: MS-SSIM (pytorch_msssim) and LPIPS from a local AlexNet file."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vcm._optional import is_available
from vcm.metrics.quality import MSSSIM_MIN_SIDE, ms_ssim


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = (rng.random((200, 240, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_ms_ssim_is_one_for_identical_lower_for_noisy_none_when_small() -> None:
    a, b = _pair()
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    assert 0 < ms_ssim(a, b) < 0.99
    small = a[: MSSSIM_MIN_SIDE - 1]
    assert ms_ssim(small, small) is None
    with pytest.raises(ValueError, match="differ in size"):
        ms_ssim(a, b[:100])


@pytest.mark.skipif(not is_available("lpips"), reason="lpips not installed: pip install 'vcm[metrics]'")
def test_lpips_reads_a_local_alexnet(tmp_path: Path) -> None:
    """Random AlexNet weights saved by the test (no ImageNet weights offline): the file is read,
    identical images score 0, different ones more; a wrong file is a clear error."""
    from torchvision.models import alexnet

    from vcm.metrics.quality import Lpips

    torch.save({f"features.{k}": v for k, v in alexnet().features.state_dict().items()}, tmp_path / "alexnet.pth")
    metric = Lpips(str(tmp_path / "alexnet.pth"))
    a, b = _pair()
    assert metric(a, a) == pytest.approx(0.0, abs=1e-6) and metric(a, b) > 0
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision AlexNet"):
        Lpips(str(tmp_path / "bad.pth"))


def test_coco_ap_bootstrap_reaccumulates_per_image_matches(coco_root: str) -> None:
    """The identity resample gives COCOeval's AP; a resample of one image repeated gives that
    image's own AP; resamples spread around the full-set AP."""
    from vcm.data import DATASETS
    from vcm.metrics.coco import coco_ap, coco_ap_bootstrap

    gt = DATASETS.build("coco", {"root": coco_root, "limit": 12}).coco_gt("instances")
    ids = sorted(gt.getImgIds())[:12]
    rng = np.random.default_rng(0)
    results = []
    for a in gt.loadAnns(gt.getAnnIds(imgIds=ids)):
        x, y, w, h = a["bbox"]
        shift = rng.normal(0, 0.15) * w  # imperfect boxes: AP strictly between 0 and 1
        results.append({"image_id": a["image_id"], "category_id": a["category_id"],
                        "bbox": [x + shift, y, w, h], "score": float(rng.random())})
    full = coco_ap(gt, results, ids, "bbox")["bbox_AP"]
    draws = np.vstack([np.arange(12), np.full(12, 3), rng.integers(0, 12, (30, 12))])
    boot = coco_ap_bootstrap(gt, results, ids, "bbox", draws)
    assert 0.05 < full < 0.95 and boot[0] == pytest.approx(full, abs=1e-9)
    assert boot[1] == pytest.approx(coco_ap(gt, results, [ids[3]], "bbox")["bbox_AP"], abs=1e-9)
    assert boot[2:].std() > 0 and boot[2:].min() < full < boot[2:].max()
