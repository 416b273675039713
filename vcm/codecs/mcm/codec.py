"""The registered ``mcm`` codec: visible patches coded as MAE tokens, the whole image rebuilt.

Bitstream (vcm container; MCM's record is [y string, z string, positions], brief 5.4): header
(image size, patch), side info = the position record (:mod:`.positions`, counted as
``bpp_side``), payload sections [y string (all ChARM slices in one rANS stream), z string].
An empty mask sends no payload; the decoder then inpaints the image from mask tokens alone.
Masks on another unit or not patch-aligned are dilated to 16-px patches. The sending order is
the mask's sampling order when its generator records one (DA-Mask, random), else raster.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vcm.codecs.checkpoint import load_codec_checkpoint, save_codec_checkpoint
from vcm.codecs.container import BitstreamError, Container, pack, unpack
from vcm.codecs.emic.tokens import pad_to_unit
from vcm.codecs.mcm.model import McmConfig, McmModel
from vcm.codecs.mcm.positions import CODERS, PositionError, decode_positions, encode_positions
from vcm.types import Bitstream, Decoded, Mask, check_image


def save_mcm_checkpoint(model: McmModel, path: str | Path, half: bool = False, **extra: Any) -> Path:
    """Write ``{"config", "state_dict", ...}``: what :func:`load_mcm` reads (float16 when ``half``)."""
    return save_codec_checkpoint(model, model.cfg.to_dict(), path, half, **extra)


def load_mcm(path: str | Path) -> McmModel:
    return load_codec_checkpoint(path, lambda cfg: McmModel(McmConfig.from_dict(cfg)), "MCM")


def sending_order(mask: Mask) -> np.ndarray:
    """Visible flat patch ids of ``mask`` in sampling order if recorded, else raster order."""
    order = mask.order
    if order is not None and np.array_equal(np.sort(order), np.flatnonzero(mask.grid)):
        return np.asarray(order, np.int64)
    return np.flatnonzero(mask.grid)


class McmCodec:
    """Masked-image codec; ``positions`` picks the position coder (``huffman`` or ``grid``)."""

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "mask": "mask"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: McmModel, positions: str = "huffman", device: torch.device | None = None) -> None:
        if positions not in CODERS:
            raise ValueError(f"positions must be one of {CODERS}, got {positions!r}")
        self.device = device or torch.device("cpu")
        self.model, self.positions, self.patch = model.to(self.device).eval(), positions, model.cfg.patch

    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream:
        h, w = check_image(image).shape[:2]
        if mask is None:
            raise ValueError("mcm needs a mask input (use mask type 'none' for the full frame)")
        mask.check_fits(image)
        if mask.unit != self.patch:
            mask = Mask.from_pixels(mask.coded_pixels(), self.patch)  # dilate to MCM's patches
        record, ids = encode_positions(sending_order(mask), mask.grid.shape, self.positions)
        sections: tuple[bytes, ...] = ()
        if ids.size:
            x = pad_to_unit(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255), self.patch)
            out = self.model.compress(x.to(self.device), torch.from_numpy(ids).to(self.device))
            sections = (out["y"], out["z"])
        return pack(Container("mcm", h, w, self.patch, True, record, sections))

    def decode(self, data: bytes) -> Decoded:
        c = unpack(data, expect_codec="mcm")
        if c.unit != self.patch:
            raise BitstreamError(f"mcm bitstream has {c.unit}-px patches, the model uses {self.patch}")
        shape = Mask.grid_shape(c.height, c.width, c.unit)
        try:
            ids = decode_positions(c.side, shape, self.positions)
        except PositionError as e:
            raise BitstreamError(str(e)) from e
        if len(c.sections) != (2 if ids.size else 0):
            raise BitstreamError(f"mcm bitstream with {ids.size} visible patches has {len(c.sections)} sections")
        grid = np.zeros(shape[0] * shape[1], bool)
        grid[ids] = True
        try:
            x = self.model.decompress(*(c.sections or (b"", b"")), torch.from_numpy(ids).to(self.device),
                                      shape[0] * c.unit, shape[1] * c.unit)
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"mcm payload cannot be decoded: {e}") from e
        img = (x[0, :, : c.height, : c.width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Decoded(np.ascontiguousarray(img), Mask.from_grid(grid.reshape(shape), c.height, c.width, c.unit))


def mcm(*, checkpoint: str, positions: str = "huffman", device: torch.device | None = None) -> McmCodec:
    """MCM from a checkpoint written by :func:`save_mcm_checkpoint` (or ``vcm train``)."""
    return McmCodec(load_mcm(checkpoint), positions, device)
