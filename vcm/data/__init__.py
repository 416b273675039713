"""Datasets: sources of :class:`vcm.types.Sample`."""

from vcm.data.base import DATASETS, Dataset

DATASETS.register_lazy("coco", "vcm.data.coco:CocoDataset")
DATASETS.register_lazy("folder", "vcm.data.folder:FolderDataset")

__all__ = ["DATASETS", "Dataset"]
