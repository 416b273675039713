"""A plain folder of images without labels (rate/quality runs, pseudo-GT task scoring)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from vcm.assets import MissingAssetError, expand_path
from vcm.data.base import select
from vcm.io import load_image
from vcm.types import Sample

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class FolderDataset:
    """All images directly inside ``root`` (sorted by file name).

    Args:
        root: the folder (``${VCM_ASSETS}`` is expanded).
        limit: keep at most this many images.
        subset_seed: draw the ``limit`` images at random with this seed.
        exif: turn images upright by their EXIF orientation tag (default: stored pixel order).
    """

    ports: ClassVar[frozenset[str]] = frozenset({"image"})

    def __init__(self, *, root: str, limit: int | None = None, subset_seed: int | None = None,
                 exif: bool = False) -> None:
        self.root, self.exif = Path(expand_path(root)), exif
        if not self.root.is_dir():
            raise MissingAssetError(f"image folder not found: {self.root}")
        names = sorted(p.name for p in self.root.iterdir() if p.suffix.lower() in EXTENSIONS)
        if not names:
            raise MissingAssetError(f"no images ({', '.join(EXTENSIONS)}) in {self.root}")
        self._ids = select(names, limit, subset_seed)

    def ids(self) -> list[str]:
        return list(self._ids)

    def load(self, sample_id: str) -> Sample:
        path = self.root / sample_id
        return Sample(sample_id, load_image(path, self.exif), path=str(path))

    def coco_gt(self, kind: str) -> Any:
        return None
