"""The registered ``segpic`` codec: full frame, image only (masks were training-time privileged
information; no mask port, nothing about a mask in the bitstream).

Bitstream: vcm container header (image size), no side info, payload sections [y (all ChARM slices
in one rANS string), z, p', p] ([y, z] for the BL variant). The image is padded to a multiple of
64 around its centre (zeros, as the released evaluation; the vcm layout replicates the edges) and
cropped back after decoding. Official checkpoints load directly (``format``, see
:mod:`vcm.codecs.official`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from vcm.codecs.checkpoint import fingerprint, load_codec_checkpoint, one_thread, save_codec_checkpoint
from vcm.codecs.container import (BitstreamError, Container, PeakMemory, check_learned, check_model, pack, rans_guard,
                                  unpack)
from vcm.codecs.segpic.model import SegpicConfig, SegpicModel
from vcm.types import Bitstream, Decoded, Mask, check_image

# Decode memory, B/px, tiny weights and paper size (benchmarks/decode_memory.py, 2026-12-05):
# paper = SegpicConfig(); growth still rising at 768 px, so the 512 -> 768 slope
PEAK = PeakMemory(1_036_883, 956.0, 83_503_971, 2186.0)
ALIGN = 64


def save_segpic_checkpoint(model: SegpicModel, path: str | Path, half: bool = False, **extra: Any) -> Path:
    """Write ``{"config", "state_dict", ...}``: what :func:`load_segpic` reads."""
    return save_codec_checkpoint(model, model.cfg.to_dict(), path, half, **extra)


def load_segpic(path: str | Path, format: str = "auto", scale_levels: int | None = None) -> SegpicModel:
    """A vcm checkpoint, or the official code's (``format``: auto detects it by its keys);
    ``scale_levels`` replaces the stored coder-table size (official files: 64, vcm's: 256)."""
    extra = {} if scale_levels is None else {"scale_levels": scale_levels}
    return load_codec_checkpoint(path, lambda cfg: SegpicModel(SegpicConfig.from_dict({**cfg, **extra})), "SegPIC",
                                 codec="segpic", format=format)


def centred_padding(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding to the next multiples of 64, split around the centre."""
    dh, dw = -height % ALIGN, -width % ALIGN
    return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2


class SegpicCodec:
    """Full-frame learned codec; its ``encode`` takes the image only."""

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: SegpicModel, device: torch.device | None = None, source: str = "") -> None:
        self.device = device or torch.device("cpu")
        self.fingerprint, self.source = fingerprint(model), source or "its weights"
        self.model = model.to(self.device).eval()
        self.n_strings = 4 if model.cfg.rat else 2
        self.bytes_per_pixel = PEAK.per_pixel(self.model)
        self.pad_mode = "replicate" if model.cfg.layout == "vcm" else "constant"

    @one_thread()
    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream:
        if mask is not None:
            raise ValueError("segpic takes no mask at inference (masks only steer its training)")
        h, w = check_image(image).shape[:2]
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255)
        x = F.pad(x, centred_padding(h, w), mode=self.pad_mode).to(self.device)
        return pack(Container("segpic", h, w, 16, False, b"", tuple(self.model.compress(x)), self.fingerprint))

    @one_thread()
    def decode(self, data: bytes) -> Decoded:
        c = unpack(data, expect_codec="segpic")
        check_model(c, self.fingerprint, self.source)
        check_learned(c, self.bytes_per_pixel)
        if c.has_mask or c.side or len(c.sections) != self.n_strings:
            raise BitstreamError(f"segpic bitstream needs {self.n_strings} payload sections and no mask record")
        left, right, top, bottom = centred_padding(c.height, c.width)
        try:
            x = self.model.decompress(rans_guard(c.sections, c.height, c.width), c.height + top + bottom,
                                      c.width + left + right)
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"segpic payload cannot be decoded: {e}") from e
        x = x[0, :, top:top + c.height, left:left + c.width]
        img = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Decoded(np.ascontiguousarray(img))


def segpic(*, checkpoint: str, format: str = "auto", scale_levels: int | None = None,
           device: torch.device | None = None) -> SegpicCodec:
    """SegPIC from a checkpoint written by :func:`save_segpic_checkpoint` (or ``vcm train``), or
    from the official code's (``format``: ``auto``, ``vcm`` or ``official``; ``scale_levels``:
    see :func:`load_segpic`)."""
    return SegpicCodec(load_segpic(checkpoint, format, scale_levels), device, checkpoint)
