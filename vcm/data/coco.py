"""COCO-format dataset: images + instances (+ person keypoints) via pycocotools."""

from __future__ import annotations

import contextlib
import io
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from vcm.assets import MissingAssetError, expand_path
from vcm.data.base import select
from vcm.io import load_image
from vcm.types import Sample


def quiet_coco(path: Path) -> Any:
    """Load a pycocotools COCO object without its prints."""
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, KeyError, TypeError, AssertionError, OSError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"COCO annotations {path} cannot be read: {type(e).__name__}: {e}") from e


class CocoDataset:
    """COCO layout ``root/{split}/*.jpg`` and ``root/annotations/{instances,person_keypoints}_{split}.json``.

    Args:
        root: dataset folder (``${VCM_ASSETS}`` is expanded).
        split: e.g. ``val2017``.
        limit: keep at most this many images.
        subset_seed: draw the ``limit`` images at random with this seed (else the first by id).
        image_ids: take exactly these COCO image ids (before ``limit``).
        exif: turn images upright by their EXIF orientation tag (default: stored pixel order, the
            order COCO's annotations use; an image whose turned size no longer fits them fails).
    """

    ports: ClassVar[frozenset[str]] = frozenset({"image", "annotations"})

    def __init__(self, *, root: str, split: str = "val2017", limit: int | None = None,
                 subset_seed: int | None = None, image_ids: list[int] | None = None, exif: bool = False) -> None:
        self.root, self.exif = Path(expand_path(root)), exif
        self.split = split
        self.image_dir = self.root / split
        self._ann_files = {
            "instances": self.root / "annotations" / f"instances_{split}.json",
            "keypoints": self.root / "annotations" / f"person_keypoints_{split}.json",
        }
        if not self._ann_files["instances"].is_file():
            raise MissingAssetError(f"COCO annotations not found: {self._ann_files['instances']}")
        all_ids = [str(i) for i in sorted(self.instances.getImgIds())]
        if image_ids is not None:
            missing = sorted(set(map(str, image_ids)) - set(all_ids))
            if missing:
                raise ValueError(f"image ids not in {self._ann_files['instances'].name}: {', '.join(missing)}")
            all_ids = [str(i) for i in sorted(set(image_ids))]
        self._ids = select(all_ids, limit, subset_seed)

    @cached_property
    def instances(self) -> Any:
        return quiet_coco(self._ann_files["instances"])

    def ids(self) -> list[str]:
        return list(self._ids)

    def load(self, sample_id: str) -> Sample:
        img_id = int(sample_id)
        info = self.instances.loadImgs(img_id)[0]
        path = self.image_dir / info["file_name"]
        image = load_image(path, self.exif)
        if image.shape[:2] != (info["height"], info["width"]):
            raise ValueError(f"{path}: size {image.shape[:2]} differs from its annotation "
                             f"({info['height']}, {info['width']})")
        anns = self.instances.loadAnns(self.instances.getAnnIds(imgIds=[img_id]))
        return Sample(sample_id, image, img_id, anns, str(path))

    def coco_gt(self, kind: str) -> Any:
        if kind == "instances":
            return self.instances
        path = self._ann_files.get(kind)
        if path is None or not path.is_file():
            raise MissingAssetError(f"no {kind} annotations for {self.root} {self.split}: {path}")
        return quiet_coco(path)

