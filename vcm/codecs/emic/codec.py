"""The registered ``emic`` codec: real bytes from the EMIC model, decodable from bytes alone.

Bitstream: the vcm container header, the unit map as side info (:mod:`vcm.masks.sideinfo`),
then the payload sections: the z string and the y string (all ChARM slices in one rANS string). An empty mask sends no payload.
Masks that are not unit-aligned are dilated to units (a unit is kept if any pixel is kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vcm.codecs.checkpoint import fingerprint, load_codec_checkpoint, one_thread, save_codec_checkpoint
from vcm.codecs.container import (BitstreamError, Container, PeakMemory, check_budget, check_learned, check_model, pack,
                                  rans_guard, unpack)
from vcm.codecs.emic.model import EmicConfig, EmicModel, prepare_input
from vcm.masks.sideinfo import SideInfoError, decode_grid, encode_grid
from vcm.types import Bitstream, Decoded, Mask, check_image


# Decode memory, B/px, tiny weights and paper size (EmicConfig()), 2026-12-05 (benchmarks/decode_memory.py
# --kept 0 0.5 1 [--paper]): EMIC decodes only the kept MUs, so its peak is a part per frame pixel (one
# kept MU: tiny 19 / 47 at 256 / 512 px, 14 / 33 at 512 / 1024; paper 9 / 2 at 512 / 1024) and a part per
# kept pixel (half and all of the frame kept, 512 / 1024 px: tiny 650, 780 / 756, 673; paper 5486,
# 4230 / 3568, 1177); the largest of each, with some margin on the noisy frame part
PEAK_FRAME = PeakMemory(951_804, 60.0, 20_955_468, 60.0)
PEAK_KEPT = PeakMemory(951_804, 780.0, 20_955_468, 5486.0)


def save_emic_checkpoint(model: EmicModel, path: str | Path, half: bool = False, **extra: Any) -> Path:
    """Write ``{"config", "state_dict", ...}``: what :func:`load_emic` reads (float16 when ``half``)."""
    return save_codec_checkpoint(model, model.cfg.to_dict(), path, half, **extra)


def load_emic(path: str | Path) -> EmicModel:
    return load_codec_checkpoint(path, lambda cfg: EmicModel(EmicConfig.from_dict(cfg)), "EMIC")


class EmicCodec:
    """Encodes only the visible mask units; the decoder reconstructs them on a black canvas."""

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "mask": "mask"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: EmicModel, device: torch.device | None = None, source: str = "") -> None:
        self.model, self.device = model.to(device or "cpu").eval(), device or torch.device("cpu")
        self.unit, self.fingerprint, self.source = model.cfg.unit, fingerprint(model), source or "its weights"
        self.bytes_per_pixel = PEAK_FRAME.per_pixel(self.model)  # before the grid; + PEAK_KEPT per kept pixel

    @one_thread()
    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream:
        h, w = check_image(image).shape[:2]
        if mask is None:
            raise ValueError("emic needs a mask input (use mask type 'none' for the full frame)")
        mask.check_fits(image)
        mask = Mask.from_pixels(mask.coded_pixels(), self.unit)  # dilate to EMIC's unit
        sections: tuple[bytes, ...] = ()
        if mask.grid.any():
            x = prepare_input(torch.from_numpy(np.array(image)), self.unit).to(self.device)  # owned copy
            grid = torch.from_numpy(mask.grid)[None].to(self.device)
            sections = tuple(self.model.compress(x, grid)["strings"])
        return pack(Container("emic", h, w, self.unit, True, encode_grid(mask.grid), sections, self.fingerprint))

    @one_thread()
    def decode(self, data: bytes) -> Decoded:
        c = unpack(data, expect_codec="emic")
        check_model(c, self.fingerprint, self.source)
        check_learned(c, self.bytes_per_pixel)
        if c.unit != self.unit:
            raise BitstreamError(f"emic bitstream has {c.unit}-px units, the model uses {self.unit}")
        try:
            grid = decode_grid(c.side, *Mask.grid_shape(c.height, c.width, c.unit))
        except SideInfoError as e:
            raise BitstreamError(str(e)) from e
        kept = int(grid.sum()) * c.unit**2 / (c.height * c.width)  # fraction of the frame (padding may add)
        check_budget("emic", c.height, c.width, self.bytes_per_pixel + PEAK_KEPT.per_pixel(self.model) * kept)
        mask = Mask.from_grid(grid, c.height, c.width, c.unit)
        if not grid.any():
            return Decoded(np.zeros((c.height, c.width, 3), np.uint8), mask)
        want = 2
        if len(c.sections) != want:
            raise BitstreamError(f"emic bitstream needs {want} payload sections, has {len(c.sections)}")
        hp, wp = grid.shape[0] * c.unit, grid.shape[1] * c.unit
        try:
            x = self.model.decompress(rans_guard(c.sections, hp, wp), torch.from_numpy(grid)[None].to(self.device), hp, wp)
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"emic payload cannot be decoded: {e}") from e
        img = (x[0, :, : c.height, : c.width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Decoded(np.ascontiguousarray(img), mask)


def emic(*, checkpoint: str, device: torch.device | None = None) -> EmicCodec:
    """EMIC from a checkpoint written by :func:`save_emic_checkpoint` (or ``vcm train``)."""
    return EmicCodec(load_emic(checkpoint), device, checkpoint)
