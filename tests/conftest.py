"""Shared fixtures: the real assets folder, small images, tiny run configs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if "VCM_ASSETS" not in os.environ and (REPO.parent / "shared" / "assets").is_dir():
    os.environ["VCM_ASSETS"] = str(REPO.parent / "shared" / "assets")
if os.environ.get("VCM_ASSETS"):  # absolute, so tests that change folder still find the assets
    os.environ["VCM_ASSETS"] = str(Path(os.environ["VCM_ASSETS"]).resolve())


@pytest.fixture(scope="session")
def assets() -> Path:
    root = os.environ.get("VCM_ASSETS")
    if not root or not Path(root).is_dir():
        pytest.fail("VCM_ASSETS must point at the shared assets folder (e.g. ../shared/assets)")
    return Path(root)


@pytest.fixture(scope="session")
def coco_root(assets: Path) -> str:
    return str(assets / "data" / "coco-mini")


@pytest.fixture
def noise_image() -> np.ndarray:
    """A 67x101 image (odd size) of smooth noise."""
    rng = np.random.default_rng(0)
    base = rng.random((9, 13, 3))
    import cv2

    return (cv2.resize(base, (101, 67), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def tiny_config(tmp: Path, coco_root: str, **over: object) -> dict:
    """A small run: 3 coco-mini images, masks {none, gt}, JPEG full/masked at 2 qualities."""
    cfg = {
        "name": "tiny",
        "pipeline": str(REPO / "pipelines" / "mask_codec_task.yaml"),
        "dataset": {"type": "coco", "root": coco_root, "limit": 3},
        "grid": {
            "mask": [{"type": "none"}, {"type": "gt"}],
            "codec": [{"type": "jpeg", "mode": "full", "sweep": {"quality": [20, 60]}},
                      {"type": "jpeg", "mode": "masked", "fill": "constant", "sweep": {"quality": [20, 60]}}],
            "task": [{"type": "yolov8_seg", "label": "seg"}],
        },
        "output_dir": str(tmp / "run"),
    }
    cfg.update(over)
    return cfg
