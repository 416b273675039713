"""The registered ``gitssic`` codec: a semantically structured bitstream with selective decoding.

Bitstream (vcm container, brief 2.5), format 2: header (size; one section length per group);
side info = a format byte, then the group map at the 16-px latent granularity the encoder used
(:mod:`.groups`); then one section per group id 0..n-1: the group's one rANS string (its z,
then slices 1..K; :meth:`GitSsicModel.compress`), stored by :func:`pack_stream`. A group that is
not transmitted has an empty section, so a receiver (or :func:`select_groups`) can drop groups
without re-encoding. Group 0 is the background (cells outside the keep-mask); ``send:
foreground`` transmits groups 1..n-1 only, and the decoder paints untransmitted groups black.

Format 1 (no format byte; 1 + K strings per group, each paying rANS's ~6-byte flush) is refused.

The official and released layouts (:class:`GitSsicConfig`) keep the official code's strings
(one rANS string per slice); the released layout also its padding of the image to multiples of
64 with zeros (the extra latent cells take the id of the map's edge). Format 3 (official): a group's section is its strings [z_g,
slice 1..K], each stored by :func:`pack_stream` after the varint length of all but the last.
Format 4 (released): sections 0..n-1 hold slices 1..K of each group, one more section the
image's z. The released layout is NOT group-independent (one z for all groups, attention across
groups): ``send: foreground``, decoding some groups and :func:`select_groups` are refused there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vcm.codecs.checkpoint import fingerprint, load_codec_checkpoint, one_thread, save_codec_checkpoint
from vcm.codecs.container import (BitstreamError, Container, PeakMemory, _read_varint, _varint, check_budget,
                                  check_model, pack, unpack)
from vcm.codecs.emic.tokens import pad_to_unit
from vcm.codecs.gitssic.groups import GroupMapError, decode_groups, encode_groups, group_map
from vcm.codecs.gitssic.model import SHARED, GitSsicConfig, GitSsicModel
from vcm.codecs.gitssic.transform import LATENT
from vcm.types import Bitstream, Decoded, Mask, check_image

# Decode memory, B/px, tiny weights and paper size (benchmarks/decode_memory.py, 2026-12-05):
# paper = GitSsicConfig()
PEAK = PeakMemory(940_316, 736.0, 23_201_884, 2940.0)
SEND = ("all", "foreground")
FORMATS = {"vcm": 2, "official": 3, "released": 4}  # first side-info byte; format 1 began with zlib's 0x78
FORMAT = FORMATS["vcm"]
STATE = 8  # bytes of the rANS state that compressai's coder flushes at the front of a string
OFFICIAL_PAD = 64  # the official code pads images to multiples of 64 with zeros


def save_gitssic_checkpoint(model: GitSsicModel, path: str | Path, half: bool = False, **extra: Any) -> Path:
    """Write ``{"config", "state_dict", ...}``: what :func:`load_gitssic` reads."""
    return save_codec_checkpoint(model, model.cfg.to_dict(), path, half, **extra)


def load_gitssic(path: str | Path, format: str = "auto", layout: str | None = None,
                 scale_levels: int | None = None) -> GitSsicModel:
    """A vcm or (converted on the fly) official checkpoint; ``layout`` switches between the
    official and released layouts (the same weights), ``scale_levels`` sets the y table."""

    def make(cfg: dict[str, Any]) -> GitSsicModel:
        c = GitSsicConfig.from_dict(cfg)
        if layout and layout != c.layout and "vcm" in (layout, c.layout):
            raise ValueError(f"the {c.layout} layout cannot run as {layout} (the vcm layout has other weights)")
        over = {"layout": layout or c.layout, "scale_levels": scale_levels or c.scale_levels}
        return GitSsicModel(GitSsicConfig.from_dict(c.to_dict() | over))

    return load_codec_checkpoint(path, make, "GIT-SSIC", codec="gitssic", format=format)


def pack_stream(s: bytes) -> bytes:
    """A compressai rANS string, stored shorter: its flushed 64-bit state (the first 8 bytes, low
    word first) moves to the end and up to 3 trailing zero bytes (the state's unused high bytes,
    ~1.6 on average) are dropped. Lossless for any string of whole 4-byte words, >= 8 bytes."""
    if len(s) < STATE or len(s) % 4:
        raise ValueError(f"not a flushed rANS string ({len(s)} bytes)")
    r = s[STATE:] + s[:STATE]
    return r[: max(len(r.rstrip(b"\0")), len(r) - 3)]


def unpack_stream(b: bytes) -> bytes:
    """Inverse of :func:`pack_stream`; raises :class:`BitstreamError` on a too-short record."""
    if len(b) < STATE - 3:
        raise BitstreamError(f"gitssic group string of {len(b)} bytes is truncated (at least {STATE - 3})")
    r = b + bytes(-len(b) % 4)
    return r[-STATE:] + r[:-STATE]


def pack_strings(strings: list[bytes]) -> bytes:
    """A group's rANS strings in one section: each by :func:`pack_stream`, all but the last after
    its varint length."""
    packed = [pack_stream(s) for s in strings]
    return b"".join(_varint(len(p)) + p for p in packed[:-1]) + packed[-1]


def unpack_strings(b: bytes, n: int) -> list[bytes]:
    """Inverse of :func:`pack_strings` for ``n`` strings."""
    out, pos = [], 0
    for _ in range(n - 1):
        size, pos = _read_varint(b, pos)
        if pos + size > len(b):
            raise BitstreamError("gitssic group section is truncated")
        out.append(b[pos:pos + size])
        pos += size
    return [unpack_stream(s) for s in (*out, b[pos:])]


def side_info(ids: np.ndarray, fmt: int = FORMAT) -> bytes:
    return bytes([fmt]) + encode_groups(ids)


def _group_ids(c: Container) -> tuple[np.ndarray, int]:
    """The group map and format of a gitssic container, after checking the section count."""
    if not c.side or c.side[0] not in FORMATS.values():
        old = c.side[:1] == b"\x78"
        raise BitstreamError("gitssic bitstream of format 1 (1 + K strings per group); this decoder reads formats "
                             f"{sorted(FORMATS.values())}: re-encode the image" if old else
                             f"gitssic bitstream of unknown format {c.side[:1].hex() or 'none'} "
                             f"(expected one of {sorted(FORMATS.values())})")
    try:
        ids = decode_groups(c.side[1:], Mask.grid_shape(c.height, c.width, LATENT))
    except GroupMapError as e:
        raise BitstreamError(str(e)) from e
    n = int(ids.max()) + 1 + (c.side[0] == FORMATS["released"])
    if len(c.sections) != n:
        raise BitstreamError(f"gitssic bitstream with {int(ids.max()) + 1} groups has {len(c.sections)} sections")
    return ids, c.side[0]


def _parse(data: bytes, cfg: GitSsicConfig) -> tuple[Container, np.ndarray, dict[int, list[bytes]]]:
    """Container, group map and the transmitted groups' rANS strings, for a model of ``cfg``."""
    c = unpack(data, expect_codec="gitssic")
    ids, fmt = _group_ids(c)
    if fmt != FORMATS[cfg.layout]:
        raise BitstreamError(f"gitssic bitstream of format {fmt}; this model ({cfg.layout} layout) reads "
                             f"format {FORMATS[cfg.layout]}")
    sections = dict(enumerate(c.sections[: int(ids.max()) + 1]))
    if cfg.layout == "vcm":
        strings = {g: [unpack_stream(s)] for g, s in sections.items() if s}
    else:
        count = cfg.slices + (cfg.layout == "official")
        strings = {g: unpack_strings(s, count) for g, s in sections.items() if s}
    if empty := [g for g in strings if not (ids == g).any()]:
        raise BitstreamError(f"gitssic group {empty[0]} is transmitted but has no cells")
    if cfg.layout == "released":
        strings[SHARED] = [unpack_stream(c.sections[-1])]
    return c, ids, strings


def model_input(model: GitSsicModel, image: np.ndarray, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (1, 3, H', W') in [0, 1], group ids (1, H'/16, W'/16)) as ``model``'s layout pads them:
    replicated to multiples of 16, or zeros to multiples of 64 (released code), the extra latent
    cells taking the id of the map's edge."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255)
    if model.cfg.layout != "released":
        return pad_to_unit(x, LATENT), torch.from_numpy(ids)[None]
    x = torch.nn.functional.pad(x, (0, -x.shape[-1] % OFFICIAL_PAD, 0, -x.shape[-2] % OFFICIAL_PAD))
    padded = np.pad(ids, ((0, x.shape[-2] // LATENT - ids.shape[0]), (0, x.shape[-1] // LATENT - ids.shape[1])),
                    mode="edge")
    return x, torch.from_numpy(padded)[None]


def select_groups(data: bytes, keep: Iterable[int]) -> bytes:
    """The sub-stream a receiver fetches: only the groups in ``keep`` (no re-encoding); refused
    for the released layout (its groups depend on each other)."""
    c, keep = unpack(data, expect_codec="gitssic"), set(keep)
    if _group_ids(c)[1] == FORMATS["released"]:
        raise BitstreamError("gitssic released layout: groups share z and attend to each other, "
                             "so a sub-stream of some groups does not decode them as the full stream does")
    sections = tuple(s if g in keep else b"" for g, s in enumerate(c.sections))
    return pack(Container(c.codec, c.height, c.width, c.unit, c.has_mask, c.side, sections, c.model)).data


class GitSsicCodec:
    """Codes the whole image group by group; ``groups`` says how the keep-mask becomes groups
    (``instances``: one per instance of the mask's labels; ``components``: 4-connected parts)."""

    input_ports: ClassVar[Mapping[str, str]] = {"image": "image", "mask": "mask"}
    optional_ports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: GitSsicModel, groups: str = "instances", send: str = "all",
                 device: torch.device | None = None, source: str = "") -> None:
        if groups not in ("instances", "components"):
            raise ValueError(f"groups must be 'instances' or 'components', got {groups!r}")
        if send not in SEND:
            raise ValueError(f"send must be one of {SEND}, got {send!r}")
        if send != "all" and model.cfg.layout == "released":
            raise ValueError("send: foreground is refused for the released layout (its groups depend on each other)")
        self.model, self.device = model.to(device or "cpu").eval(), device or torch.device("cpu")
        self.groups, self.send = groups, send
        self.fingerprint, self.source = fingerprint(model), source or "its weights"
        self.bytes_per_pixel = PEAK.per_pixel(self.model)

    @one_thread()
    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream:
        h, w = check_image(image).shape[:2]
        if mask is None:
            raise ValueError("gitssic needs a mask input (use mask type 'none' for one group)")
        mask.check_fits(image)
        ids = group_map(mask, LATENT, self.groups)
        x, padded = model_input(self.model, image, ids)
        strings = self.model.compress(x.to(self.device), padded.to(self.device))
        layout = self.model.cfg.layout
        packer = (lambda s: pack_stream(s[0])) if layout == "vcm" else pack_strings
        sections = tuple(packer(strings[g]) if g in strings and (self.send == "all" or g > 0) else b""
                         for g in range(int(ids.max()) + 1))
        if layout == "released":
            sections += (pack_stream(strings[SHARED][0]),)
        return pack(Container("gitssic", h, w, LATENT, True, side_info(ids, FORMATS[layout]), sections,
                              self.fingerprint))

    @one_thread()
    def decode(self, data: bytes, groups: Iterable[int] | None = None) -> Decoded:
        """Decode the transmitted groups (or only ``groups`` of them); the rest stays black."""
        c, ids, strings = _parse(data, self.model.cfg)
        check_model(c, self.fingerprint, self.source)
        check_budget("gitssic", c.height, c.width, self.bytes_per_pixel)
        if groups is not None:
            if self.model.cfg.layout == "released":
                raise ValueError("decoding some groups is refused for the released layout (they depend on each other)")
            keep = set(groups)
            strings = {g: s for g, s in strings.items() if g in keep}
        decoded = np.isin(ids, list(strings))
        mask = Mask.from_grid(decoded, c.height, c.width, LATENT)
        if not strings:
            return Decoded(np.zeros((c.height, c.width, 3), np.uint8), mask)
        _, padded = model_input(self.model, np.zeros((c.height, c.width, 3), np.uint8), ids)
        try:
            x = self.model.decompress(strings, padded.to(self.device), lambda s, symbols: s + bytes(4 * symbols))
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"gitssic payload cannot be decoded: {e}") from e
        img = (x[0, :, : c.height, : c.width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Decoded(np.where(mask.pixels[..., None], img, 0).astype(np.uint8), mask)


@one_thread()
def estimated_bytes(model: GitSsicModel, image: np.ndarray, mask: Mask, groups: str = "instances") -> float:
    """The entropy model's rate for ``image`` under ``mask``'s groups, in bytes: -log2 of the eval
    forward's likelihoods of y and of every group's z (no rANS coding); the payload approaches it."""
    x, ids = model_input(model, image, group_map(mask, LATENT, groups))
    with torch.no_grad():
        liks = model.eval()(x, ids)["likelihoods"]
    return float(sum(-torch.log2(v).sum() for v in liks.values())) / 8


def gitssic(*, checkpoint: str, groups: str = "instances", send: str = "all", device: torch.device | None = None,
            format: str = "auto", layout: str | None = None, scale_levels: int | None = None) -> GitSsicCodec:
    """GIT-SSIC from a checkpoint written by :func:`save_gitssic_checkpoint` (or ``vcm train``) or
    by the official code (``format``: auto detects it; :mod:`.official`); ``layout`` and
    ``scale_levels`` override the checkpoint's (:func:`load_gitssic`)."""
    return GitSsicCodec(load_gitssic(checkpoint, format, layout, scale_levels), groups, send, device, checkpoint)
