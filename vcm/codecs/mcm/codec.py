"""The registered ``mcm`` codec: visible patches coded as MAE tokens, the whole image rebuilt.

Bitstream (vcm container; MCM's record is [y string, z string, positions], brief 5.4): header
(image size, patch), side info = the position record of the whole image (:mod:`.positions`,
counted as ``bpp_side``), payload sections [y string (all ChARM slices of all tiles in one
rANS stream), z string (all tiles)]. An empty mask sends no payload; the decoder then
inpaints from mask tokens alone. Masks on another unit or not patch-aligned are dilated to
16-px patches. The sending order is the mask's sampling order when its generator records one
(DA-Mask, random), else raster.

Tiles [G]: MCM trains and tests on 256x256 images; a ViT trained there and run on a whole
768x512 Kodak image (attention over 6x the tokens, positions it never saw) gave the tiny model
13 dB inside the coded patches. So images are coded in ``tile`` x ``tile`` pixel tiles (the
training crop; the last row / column of tiles may be smaller), each through the network on its
own with the ids that fall in it, in the same sending order; ``tile: 0`` codes the whole image
(vcm layout only: the official layout stores positions for ``pos_grid`` patches a side, MCM's
256 px, so its tiles are at most that; MCM's own code takes 256 x 256 images only).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vcm.codecs.checkpoint import fingerprint, load_codec_checkpoint, one_thread, save_codec_checkpoint
from vcm.codecs.container import (BitstreamError, Container, PeakMemory, check_learned, check_model, pack, rans_guard,
                                  unpack)
from vcm.codecs.emic.tokens import pad_to_unit
from vcm.codecs.mcm.model import McmConfig, McmModel
from vcm.codecs.mcm.positions import CODERS, PositionError, decode_positions, encode_positions
from vcm.types import Bitstream, Decoded, Mask, check_image


# Decode memory, B/px, tiny weights and paper size (benchmarks/decode_memory.py, 2026-12-05):
# MCM decodes in tiles: flat with size and width (paper-size: 104, 26, 12 B/px)
PEAK = PeakMemory(1_424_632, 120.0, 200_526_240, 120.0)


def save_mcm_checkpoint(model: McmModel, path: str | Path, half: bool = False, **extra: Any) -> Path:
    """Write ``{"config", "state_dict", ...}``: what :func:`load_mcm` reads (float16 when ``half``)."""
    return save_codec_checkpoint(model, model.cfg.to_dict(), path, half, **extra)


def load_mcm(path: str | Path, format: str = "auto", heads: tuple[int, int] | None = None,
             scale_levels: int | None = None) -> McmModel:
    """A vcm MCM checkpoint or an official one (converted on the way, :mod:`.official`);
    ``heads`` (encoder, decoder) replaces the stored attention head counts (an official file's
    shapes do not tell them: MCM's 12 and 16 otherwise), ``scale_levels`` the coder-table size
    (official files: 64, vcm's: 256)."""
    extra: dict[str, int] = {} if heads is None else {"enc_heads": int(heads[0]), "dec_heads": int(heads[1])}
    extra |= {} if scale_levels is None else {"scale_levels": scale_levels}
    return load_codec_checkpoint(path, lambda cfg: McmModel(McmConfig.from_dict({**cfg, **extra})), "MCM",
                                 codec="mcm", format=format)


def sending_order(mask: Mask) -> np.ndarray:
    """Visible flat patch ids of ``mask`` in sampling order if recorded, else raster order."""
    order = mask.order
    if order is not None and np.array_equal(np.sort(order), np.flatnonzero(mask.grid)):
        return np.asarray(order, np.int64)
    return np.flatnonzero(mask.grid)


def tiles(gh: int, gw: int, size: int) -> list[tuple[int, int, int, int]]:
    """(row, col, rows, cols) in patches of the tiles covering a gh x gw patch grid, raster order;
    ``size`` patches a side (0: one tile)."""
    th, tw = (gh, gw) if size <= 0 else (size, size)
    return [(r, c, min(th, gh - r), min(tw, gw - c)) for r in range(0, gh, th) for c in range(0, gw, tw)]


def tile_ids(ids: np.ndarray, gw: int, tile: tuple[int, int, int, int]) -> np.ndarray:
    """The ids (flat over the image's patch grid) inside ``tile``, in their order, renumbered
    flat over the tile."""
    r0, c0, th, tw = tile
    rows, cols = ids // gw, ids % gw
    inside = (rows >= r0) & (rows < r0 + th) & (cols >= c0) & (cols < c0 + tw)
    return ((rows[inside] - r0) * tw + cols[inside] - c0).astype(np.int64)


class McmCodec:
    """Masked-image codec; ``positions`` picks the position coder (``huffman`` or ``grid``),
    ``tile`` the tile side in pixels (a multiple of the patch; 0 = the whole image)."""

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "mask": "mask"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: McmModel, positions: str = "huffman", tile: int = 256,
                 device: torch.device | None = None, source: str = "") -> None:
        if positions not in CODERS:
            raise ValueError(f"positions must be one of {CODERS}, got {positions!r}")
        if tile < 0 or tile % model.cfg.patch:
            raise ValueError(f"tile must be 0 or a positive multiple of the {model.cfg.patch}-px patch, got {tile}")
        if model.cfg.official and not 0 < tile <= model.cfg.pos_grid * model.cfg.patch:
            raise ValueError(f"this MCM has positions for {model.cfg.pos_grid * model.cfg.patch}-px tiles: "
                             f"tile must be a multiple of {model.cfg.patch} up to that, got {tile}")
        self.device = device or torch.device("cpu")
        self.model, self.positions, self.patch = model.to(self.device).eval(), positions, model.cfg.patch
        self.tile = tile // self.patch
        self.bytes_per_pixel = PEAK.per_pixel(self.model)
        self.fingerprint, self.source = fingerprint(model), source or "its weights"

    @one_thread()
    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream:
        h, w = check_image(image).shape[:2]
        if mask is None:
            raise ValueError("mcm needs a mask input (use mask type 'none' for the full frame)")
        mask.check_fits(image)
        if mask.unit != self.patch:
            mask = Mask.from_pixels(mask.coded_pixels(), self.patch)  # dilate to MCM's patches
        record, ids = encode_positions(sending_order(mask), mask.grid.shape, self.positions)
        x = pad_to_unit(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255), self.patch)
        p, (gh, gw) = self.patch, mask.grid.shape
        parts = []
        for r0, c0, th, tw in tiles(gh, gw, self.tile):
            local = tile_ids(ids, gw, (r0, c0, th, tw))
            if local.size:
                crop = x[..., r0 * p:(r0 + th) * p, c0 * p:(c0 + tw) * p].to(self.device)
                parts.append((crop, torch.from_numpy(local).to(self.device)))
        sections = self.model.compress(parts) if parts else ()
        return pack(Container("mcm", h, w, self.patch, True, record, tuple(sections), self.fingerprint))

    @one_thread()
    def decode(self, data: bytes) -> Decoded:
        c = unpack(data, expect_codec="mcm")
        check_model(c, self.fingerprint, self.source)
        check_learned(c, self.bytes_per_pixel)
        if c.unit != self.patch:
            raise BitstreamError(f"mcm bitstream has {c.unit}-px patches, the model uses {self.patch}")
        shape = Mask.grid_shape(c.height, c.width, c.unit)
        try:
            ids = decode_positions(c.side, shape, self.positions)
        except PositionError as e:
            raise BitstreamError(str(e)) from e
        (gh, gw), p = shape, self.patch
        if len(c.sections) != (2 if ids.size else 0):
            raise BitstreamError(f"mcm bitstream with {ids.size} visible patches has {len(c.sections)} sections")
        parts = tiles(gh, gw, self.tile)
        x = torch.zeros(1, 3, gh * p, gw * p, device=self.device)
        try:
            out = self.model.decompress(*(rans_guard(c.sections, c.height, c.width) if c.sections else (b"", b"")), [
                (torch.from_numpy(tile_ids(ids, gw, t)).to(self.device), t[2] * p, t[3] * p) for t in parts])
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"mcm payload cannot be decoded: {e}") from e
        for (r0, c0, th, tw), part in zip(parts, out):
            x[..., r0 * p:(r0 + th) * p, c0 * p:(c0 + tw) * p] = part
        grid = np.zeros(gh * gw, bool)
        grid[ids] = True
        img = (x[0, :, : c.height, : c.width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Decoded(np.ascontiguousarray(img), Mask.from_grid(grid.reshape(shape), c.height, c.width, c.unit))


def mcm(*, checkpoint: str, format: str = "auto", positions: str = "huffman", tile: int = 256,
        heads: list[int] | None = None, scale_levels: int | None = None,
        device: torch.device | None = None) -> McmCodec:
    """MCM from a checkpoint written by :func:`save_mcm_checkpoint` (or ``vcm train``) or by
    MCM's official ``main_compress.py`` (``format``: auto / vcm / official; ``heads``: see :func:`load_mcm`)."""
    return McmCodec(load_mcm(checkpoint, format, None if heads is None else (heads[0], heads[1]), scale_levels),
                    positions, tile, device, checkpoint)
