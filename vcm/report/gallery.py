"""A small gallery of decoded images for the report: for a few images, the original and each
series at its middle rate point, the region the codec coded outlined (green), with the image's
own bpp and PSNR. Images are re-coded here (bounded: ``images`` x series)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vcm.metrics.quality import psnr
from vcm.pipeline.plan import Point
from vcm.pipeline.runner import Experiment
from vcm.pipeline.worker import Components, SampleWorker

WIDTH = 360  # panel width, px


def middle_points(exp: Experiment) -> list[Point]:
    """Each series' middle point in sweep order (e.g. quality 50 of 10..90)."""
    by_series: dict[str, list[Point]] = {}
    for p in exp.plan.points:
        by_series.setdefault(p.series, []).append(p)
    return [pts[len(pts) // 2] for pts in by_series.values()]


def outline(image: np.ndarray, coded: np.ndarray | None) -> np.ndarray:
    """``image`` with the boundary of the coded region drawn in green (nothing for a full frame)."""
    out = image.copy()
    if coded is not None and not coded.all():
        contours, _ = cv2.findContours(coded.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (0, 255, 0), max(1, image.shape[1] // 300))
    return out


def panel(image: np.ndarray, caption: str) -> np.ndarray:
    """Resized to WIDTH with a caption strip on top (RGB uint8)."""
    h = round(image.shape[0] * WIDTH / image.shape[1])
    body = cv2.resize(image, (WIDTH, h), interpolation=cv2.INTER_AREA)
    strip = np.full((22, WIDTH, 3), 255, np.uint8)
    cv2.putText(strip, caption[:52], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([strip, body])


def gallery(exp: Experiment, out: Path, images: int, device: Any) -> list[Path]:
    """One JPEG per image (first ``images`` of the dataset) under ``out``; returns the paths.
    Files named by a hash of the points and images are reused: re-reporting re-codes nothing."""
    sids = exp.dataset.ids()[:images]
    tag = hashlib.sha1(json.dumps([[p.key for p in middle_points(exp)], sids, WIDTH]).encode()).hexdigest()[:10]
    cached = [out / f"gallery_{i}_{tag}.jpg" for i in range(len(sids))]
    if all(p.is_file() for p in cached):
        return cached
    for old in out.glob("gallery_*.jpg"):
        old.unlink()
    worker = SampleWorker(exp.graph, exp.plan, exp.dataset, Components(device, "off"))
    dec_node = exp.graph.by_kind("decode")[0].name
    paths: list[Path] = []
    for sid in sids:
        sample, memo = exp.dataset.load(sid), {}
        tiles = [panel(sample.image, f"original {sid}")]
        for point in middle_points(exp):
            values, _, _ = worker.node_values(sample, point, memo)
            dec, bits = values[dec_node], 8 * len(values[exp.graph.by_kind("encode")[0].name].data)
            coded = dec.mask.coded_pixels() if dec.mask is not None else None
            bpp, q = bits / sample.image[..., 0].size, psnr(sample.image, dec.image)
            tiles.append(panel(outline(dec.image, coded), f"{bpp:.3f} bpp {q:.1f} dB {point.series} {point.point}"))
        paths.append(cached[len(paths)])
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(grid_of(tiles), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return paths


def grid_of(tiles: list[np.ndarray], cols: int = 4) -> np.ndarray:
    """Tiles (same width) in rows of ``cols``, padded white."""
    h = max(t.shape[0] for t in tiles)
    padded = [np.vstack([t, np.full((h - t.shape[0], WIDTH, 3), 255, np.uint8)]) for t in tiles]
    padded += [np.full((h, WIDTH, 3), 255, np.uint8)] * (-len(padded) % cols)
    return np.vstack([np.hstack(padded[i:i + cols]) for i in range(0, len(padded), cols)])
