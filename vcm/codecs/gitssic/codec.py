"""The registered ``gitssic`` codec: a semantically structured bitstream with selective decoding.

Bitstream (vcm container, brief 2.5): header (size); side info = the group map at the 16-px
latent granularity the encoder used (:mod:`.groups`); then, for every group id 0..n-1, one
string set [z, slice 1..K]. A group that is not transmitted has empty strings, so a receiver
(or :func:`select_groups`) can drop groups without re-encoding. Group 0 is the background
(cells outside the keep-mask); ``send: foreground`` transmits groups 1..n-1 only, and the
decoder paints untransmitted groups black.
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


def save_gitssic_checkpoint(model: GitSsicModel, path: str | Path, half: bool = False, **extra: Any) -> Path:
    """Write ``{"config", "state_dict", ...}``: what :func:`load_gitssic` reads."""
    return save_codec_checkpoint(model, model.cfg.to_dict(), path, half, **extra)


def load_gitssic(path: str | Path) -> GitSsicModel:
    return load_codec_checkpoint(path, lambda cfg: GitSsicModel(GitSsicConfig.from_dict(cfg)), "GIT-SSIC")


def _parse(data: bytes, slices: int) -> tuple[Container, np.ndarray, dict[int, list[bytes]]]:
    """Container, group map and the transmitted groups' strings of a gitssic bitstream."""
    c = unpack(data, expect_codec="gitssic")
    try:
        ids = decode_groups(c.side, Mask.grid_shape(c.height, c.width, LATENT))
    except GroupMapError as e:
        raise BitstreamError(str(e)) from e
    n, per = int(ids.max()) + 1, 1 + slices
    if len(c.sections) != n * per:
        raise BitstreamError(f"gitssic bitstream with {n} groups needs {n * per} sections, has {len(c.sections)}")
    strings = {}
    for g in range(n):
        s = list(c.sections[g * per:(g + 1) * per])
        if all(s) and (ids == g).any():
            strings[g] = s
        elif any(s):
            raise BitstreamError(f"group {g} is partly transmitted or has no cells")
    return c, ids, strings


def select_groups(data: bytes, keep: Iterable[int]) -> bytes:
    """The sub-stream a receiver fetches: only the groups in ``keep`` (no re-encoding)."""
    c = unpack(data, expect_codec="gitssic")
    n = int(decode_groups(c.side, Mask.grid_shape(c.height, c.width, LATENT)).max()) + 1
    per, keep = len(c.sections) // max(n, 1), set(keep)
    sections = tuple(s if i // per in keep else b"" for i, s in enumerate(c.sections))
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
        per = 1 + self.model.cfg.slices
        sent = {g for g in strings if self.send == "all" or g > 0}
        sections = tuple(s for g in range(int(ids.max()) + 1)
                         for s in (strings[g] if g in sent else [b""] * per))
        return pack(Container("gitssic", h, w, LATENT, True, encode_groups(ids), sections, self.fingerprint))

    @one_thread()
    def decode(self, data: bytes, groups: Iterable[int] | None = None) -> Decoded:
        """Decode the transmitted groups (or only ``groups`` of them); the rest stays black."""
        c, ids, strings = _parse(data, self.model.cfg.slices)
        check_model(c, self.fingerprint, self.source)
        if groups is not None:
            strings = {g: s for g, s in strings.items() if g in set(groups)}
        decoded = np.isin(ids, list(strings))
        mask = Mask.from_grid(decoded, c.height, c.width, LATENT)
        if not strings:
            return Decoded(np.zeros((c.height, c.width, 3), np.uint8), mask)
        try:
            guarded = {g: rans_guard(tuple(s), c.height, c.width) for g, s in strings.items()}
            x = self.model.decompress(guarded, torch.from_numpy(ids)[None].to(self.device))
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"gitssic payload cannot be decoded: {e}") from e
        img = (x[0, :, : c.height, : c.width].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Decoded(np.where(mask.pixels[..., None], img, 0).astype(np.uint8), mask)


def gitssic(*, checkpoint: str, groups: str = "instances", send: str = "all",
            device: torch.device | None = None) -> GitSsicCodec:
    """GIT-SSIC from a checkpoint written by :func:`save_gitssic_checkpoint` (or ``vcm train``)."""
    return GitSsicCodec(load_gitssic(checkpoint), groups, send, device, checkpoint)
