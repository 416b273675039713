"""Dataset protocol and registry."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from vcm.registry import Registry
from vcm.types import Clip, Sample


@runtime_checkable
class Dataset(Protocol):
    """An indexed set of samples. ``ports`` lists what each sample provides to the graph."""

    ports: ClassVar[frozenset[str]]

    def ids(self) -> list[str]: ...

    def load(self, sample_id: str) -> Sample: ...

    def coco_gt(self, kind: str) -> Any:
        """pycocotools COCO ground truth for ``kind`` in {instances, keypoints}, or None."""
        ...


@runtime_checkable
class SequenceDataset(Protocol):
    """An indexed set of video sequences (``scope == "sequence"``); ``load`` gives a whole
    :class:`~vcm.types.Clip`. Registered in :data:`DATASETS` beside image datasets: tell them
    apart by ``getattr(dataset, "scope", "image")``."""

    scope: ClassVar[str] = "sequence"
    ports: ClassVar[frozenset[str]]

    def ids(self) -> list[str]:
        """Sequence ids."""
        ...

    def load(self, seq_id: str) -> Clip: ...

    def coco_gt(self, kind: str) -> Any:
        """pycocotools COCO over all frames of the selected sequences (image id = each frame's
        ``coco_id``, annotations with ``track_id`` where the data has tracks), or None."""
        ...

    def frame_count(self, seq_id: str) -> int:
        """Frames ``load`` returns, found without decoding pixels where possible."""
        ...

    def fps(self, seq_id: str) -> float:
        """Frames per second."""
        ...


DATASETS: Registry[Dataset | SequenceDataset] = Registry("dataset")


def select(ids: Sequence[str], limit: int | None, subset_seed: int | None) -> list[str]:
    """First ``limit`` ids in order, or a seeded random subset when ``subset_seed`` is set."""
    out = list(ids)
    n = len(out) if limit is None else min(limit, len(out))
    if subset_seed is not None:
        return sorted(random.Random(subset_seed).sample(out, n))
    return out[:n]
