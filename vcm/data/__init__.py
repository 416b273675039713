"""Datasets: sources of :class:`vcm.types.Sample` (images) or :class:`vcm.types.Clip` (sequences)."""

from vcm.data.base import DATASETS, Dataset, SequenceDataset

DATASETS.register_lazy("coco", "vcm.data.coco:CocoDataset")
DATASETS.register_lazy("folder", "vcm.data.folder:FolderDataset")
DATASETS.register_lazy("video", "vcm.data.video:VideoDataset", extra="video")
DATASETS.register_lazy("mot", "vcm.data.mot:MotDataset")
DATASETS.register_lazy("kwcoco", "vcm.data.video:KwcocoDataset", extra="video")

__all__ = ["DATASETS", "Dataset", "SequenceDataset"]
