"""The registered ``gitssic`` codec: a semantically structured bitstream with selective decoding.

Bitstream (vcm container, brief 2.5), format 2: header (size; one section length per group);
side info = a format byte, then the group map at the 16-px latent granularity the encoder used
(:mod:`.groups`); then one section per group id 0..n-1: the group's one rANS string (its z,
then slices 1..K; :meth:`GitSsicModel.compress`), stored by :func:`pack_stream`. A group that is
not transmitted has an empty section, so a receiver (or :func:`select_groups`) can drop groups
without re-encoding. Group 0 is the background (cells outside the keep-mask); ``send:
foreground`` transmits groups 1..n-1 only, and the decoder paints untransmitted groups black.

Format 1 (no format byte; 1 + K strings per group, each paying rANS's ~6-byte flush) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vcm.codecs.checkpoint import fingerprint, load_codec_checkpoint, one_thread, save_codec_checkpoint
from vcm.codecs.container import BitstreamError, Container, check_model, pack, rans_guard, unpack
from vcm.codecs.emic.tokens import pad_to_unit
from vcm.codecs.gitssic.groups import GroupMapError, decode_groups, encode_groups, group_map
from vcm.codecs.gitssic.model import GitSsicConfig, GitSsicModel
from vcm.codecs.gitssic.transform import LATENT
from vcm.types import Bitstream, Decoded, Mask, check_image

SEND = ("all", "foreground")
FORMAT = 2  # first side-info byte; format 1 began with the zlib map (0x78)
STATE = 8  # bytes of the rANS state that compressai's coder flushes at the front of a string


def save_gitssic_checkpoint(model: GitSsicModel, path: str | Path, half: bool = False, **extra: Any) -> Path:
    """Write ``{"config", "state_dict", ...}``: what :func:`load_gitssic` reads."""
    return save_codec_checkpoint(model, model.cfg.to_dict(), path, half, **extra)


def load_gitssic(path: str | Path) -> GitSsicModel:
    return load_codec_checkpoint(path, lambda cfg: GitSsicModel(GitSsicConfig.from_dict(cfg)), "GIT-SSIC")


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


def side_info(ids: np.ndarray) -> bytes:
    return bytes([FORMAT]) + encode_groups(ids)


def _group_ids(c: Container) -> np.ndarray:
    """The group map of a gitssic container, after checking its format byte and section count."""
    if not c.side or c.side[0] != FORMAT:
        old = c.side[:1] == b"\x78"
        raise BitstreamError("gitssic bitstream of format 1 (1 + K strings per group); this decoder reads format "
                             f"{FORMAT}: re-encode the image" if old else
                             f"gitssic bitstream of unknown format {c.side[:1].hex() or 'none'} (expected {FORMAT})")
    try:
        ids = decode_groups(c.side[1:], Mask.grid_shape(c.height, c.width, LATENT))
    except GroupMapError as e:
        raise BitstreamError(str(e)) from e
    if len(c.sections) != int(ids.max()) + 1:
        raise BitstreamError(f"gitssic bitstream with {int(ids.max()) + 1} groups has {len(c.sections)} sections")
    return ids


def _parse(data: bytes) -> tuple[Container, np.ndarray, dict[int, bytes]]:
    """Container, group map and the transmitted groups' rANS strings of a gitssic bitstream."""
    c = unpack(data, expect_codec="gitssic")
    ids = _group_ids(c)
    strings = {g: unpack_stream(s) for g, s in enumerate(c.sections) if s}
    if empty := [g for g in strings if not (ids == g).any()]:
        raise BitstreamError(f"gitssic group {empty[0]} is transmitted but has no cells")
    return c, ids, strings


def select_groups(data: bytes, keep: Iterable[int]) -> bytes:
    """The sub-stream a receiver fetches: only the groups in ``keep`` (no re-encoding)."""
    c, keep = unpack(data, expect_codec="gitssic"), set(keep)
    _group_ids(c)
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
        self.model, self.device = model.to(device or "cpu").eval(), device or torch.device("cpu")
        self.groups, self.send = groups, send
        self.fingerprint, self.source = fingerprint(model), source or "its weights"

    @one_thread()
    def encode(self, *, image: np.ndarray, mask: Mask | None = None) -> Bitstream:
        h, w = check_image(image).shape[:2]
        if mask is None:
            raise ValueError("gitssic needs a mask input (use mask type 'none' for one group)")
        mask.check_fits(image)
        ids = group_map(mask, LATENT, self.groups)
        x = pad_to_unit(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255), LATENT)
        strings = self.model.compress(x.to(self.device), torch.from_numpy(ids)[None].to(self.device))
        sections = tuple(pack_stream(strings[g]) if g in strings and (self.send == "all" or g > 0) else b""
                         for g in range(int(ids.max()) + 1))
        return pack(Container("gitssic", h, w, LATENT, True, side_info(ids), sections, self.fingerprint))

    @one_thread()
    def decode(self, data: bytes, groups: Iterable[int] | None = None) -> Decoded:
        """Decode the transmitted groups (or only ``groups`` of them); the rest stays black."""
        c, ids, strings = _parse(data)
        check_model(c, self.fingerprint, self.source)
        if groups is not None:
            keep = set(groups)
            strings = {g: s for g, s in strings.items() if g in keep}
        decoded = np.isin(ids, list(strings))
        mask = Mask.from_grid(decoded, c.height, c.width, LATENT)
        if not strings:
            return Decoded(np.zeros((c.height, c.width, 3), np.uint8), mask)
        try:
            x = self.model.decompress(strings, torch.from_numpy(ids)[None].to(self.device),
                                      lambda s: rans_guard((s,), c.height, c.width)[0])
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"gitssic payload cannot be decoded: {e}") from e
        img = (x[0, :, : c.height, : c.width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Decoded(np.where(mask.pixels[..., None], img, 0).astype(np.uint8), mask)


@one_thread()
def estimated_bytes(model: GitSsicModel, image: np.ndarray, mask: Mask, groups: str = "instances") -> float:
    """The entropy model's rate for ``image`` under ``mask``'s groups, in bytes: -log2 of the eval
    forward's likelihoods of y and of every group's z (no rANS coding); the payload approaches it."""
    ids = torch.from_numpy(group_map(mask, LATENT, groups))[None]
    x = pad_to_unit(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255), LATENT)
    with torch.no_grad():
        liks = model.eval()(x, ids)["likelihoods"]
    return float(sum(-torch.log2(v).sum() for v in liks.values())) / 8


def gitssic(*, checkpoint: str, groups: str = "instances", send: str = "all",
            device: torch.device | None = None) -> GitSsicCodec:
    """GIT-SSIC from a checkpoint written by :func:`save_gitssic_checkpoint` (or ``vcm train``)."""
    return GitSsicCodec(load_gitssic(checkpoint), groups, send, device, checkpoint)
