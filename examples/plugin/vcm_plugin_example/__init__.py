"""An example vcm plugin, installed with ``pip install -e examples/plugin``: it adds a codec and a
task head through entry points, without touching vcm.

- codec ``posterize``: keeps ``bits`` bits per channel (Pillow's posterize) and codes the result
  losslessly as PNG; full frame or masked, like every vcm frame codec.
- task ``person_seg``: YOLOv8n-seg's instances, people only (COCO category 1).
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageOps

from vcm.codecs.base import FrameCodec
from vcm.codecs.pillow import PillowCoder
from vcm.types import Prediction


class PosterizeCoder(PillowCoder):
    """A canvas coder: ``bits`` (1-8) bits per channel, then PNG (decoding is vcm's Pillow one)."""

    def __init__(self, bits: int) -> None:
        if not 1 <= bits <= 8:
            raise ValueError(f"posterize bits must be in [1, 8], got {bits}")
        super().__init__("posterize", "PNG", 0, optimize=True)  # not in vcm's tag table: named in full
        self.bits = bits

    def encode_canvas(self, image: np.ndarray) -> list[bytes]:
        buf = io.BytesIO()
        ImageOps.posterize(Image.fromarray(image, "RGB"), self.bits).save(buf, "PNG", optimize=True)
        return [buf.getvalue()]


def posterize(*, bits: int = 4, mode: str = "full", fill: str = "blur") -> FrameCodec:
    """The registered codec factory (entry point ``vcm.codecs: posterize``)."""
    return FrameCodec(PosterizeCoder(bits), mode=mode, fill=fill)


class PersonSeg:
    """YOLOv8n-seg restricted to people (entry point ``vcm.tasks: person_seg``)."""

    task_kind: ClassVar[str] = "instances"
    input_ports: ClassVar[dict[str, str]] = {"image": "image"}

    def __init__(self, *, score: float = 0.01) -> None:
        from vcm.tasks import TASKS

        self.head: Any = TASKS.build("yolov8_seg", {"score_threshold": score})

    def __call__(self, *, image: np.ndarray) -> Prediction:
        return Prediction([r for r in self.head(image=image).instances if r["category_id"] == 1])
