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


# Skips are rare and loud: every skip is listed with its reason (-rs in the test command), and
# under CI (CI=true) a skip the test command could have avoided fails the run. Allowed: mmpose,
# whose mmcv must be compiled from source (too long for CI), and tests that need a GPU.
ALLOWED_SKIPS = ("mmpose", "CUDA", "GPU")
_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    avoidable = [s for s in _skips if not any(a in s for a in ALLOWED_SKIPS)]
    if os.environ.get("CI") == "true" and avoidable and exitstatus == 0:
        session.exitstatus = 1
        session.config._vcm_avoidable = avoidable  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    avoidable = getattr(terminalreporter.config, "_vcm_avoidable", [])
    if avoidable:
        terminalreporter.write_line(f"CI: {len(avoidable)} skip(s) the test command could have avoided "
                                    f"(allowed: {', '.join(ALLOWED_SKIPS)}):", red=True)
        for s in avoidable:
            terminalreporter.write_line(f"  {s}", red=True)
