"""Checkpoints written by the seed papers' official code: detected by their keys, converted to
vcm's layout (architecture inferred from tensor shapes), loaded directly or written as vcm files.

Each learned codec with an official layout registers a :class:`Converter` factory under its codec
name in :data:`CONVERTERS` (lazily, ``"vcm.codecs.<codec>.official:Converter"``); a plugin codec
registers its own the same way. ``vcm convert-weights CODEC IN OUT`` is :func:`convert_file`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from vcm.registry import Registry

Format = Literal["auto", "vcm", "official"]
FORMATS = ("auto", "vcm", "official")


@dataclass(frozen=True)
class Converted:
    """vcm's form of an official checkpoint: the model config and its state dict (no coder tables)."""

    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    notes: tuple[str, ...] = field(default=())  # what the conversion decided, e.g. inferred widths


class Converter(Protocol):
    """Maps one codec's official state dict onto vcm's model; ``published`` says where the
    authors' checkpoints are (a URL), or that none were released."""

    published: str

    def matches(self, state: Mapping[str, torch.Tensor]) -> bool:
        """Whether ``state`` (unwrapped, see :func:`official_state`) has this codec's official keys."""

    def convert(self, state: Mapping[str, torch.Tensor]) -> Converted:
        """vcm config and state dict for ``state``; ValueError naming the keys that do not fit."""

    def model(self, config: dict[str, Any]) -> torch.nn.Module:
        """vcm's model for a converted ``config`` (random weights)."""


CONVERTERS: Registry[Converter] = Registry("weights converter")
CONVERTERS.register_lazy("segpic", "vcm.codecs.segpic.official:Converter")
CONVERTERS.register_lazy("gitssic", "vcm.codecs.gitssic.official:Converter")
CONVERTERS.register_lazy("mcm", "vcm.codecs.mcm.official:Converter")


def where_published(codec: str) -> str:
    """'; official <codec> checkpoints: <where>' for a missing-file message, or '' (no converter)."""
    if codec not in CONVERTERS:
        return ""
    return f"; official {codec} checkpoints: {CONVERTERS.get(codec)().published}"


def is_vcm_checkpoint(ckpt: Mapping[str, Any]) -> bool:
    return "config" in ckpt and "state_dict" in ckpt and isinstance(ckpt["config"], dict)


def official_state(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The weights of an official training script's file: ``{"state_dict": ...}`` (SegPIC), MCM's
    ``"model"``, GIT-SSIC's ``"parameters"``, a bare state dict, or any of them saved from
    ``nn.DataParallel`` (``module.`` prefix)."""
    for key in ("state_dict", "model", "parameters", "net"):
        if isinstance(ckpt.get(key), Mapping):
            ckpt = ckpt[key]
            break
    state = {k.removeprefix("module."): v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError("it holds no tensors")
    return state


def convert(codec: str, ckpt: Mapping[str, Any], source: str) -> Converted:
    """Convert an official checkpoint of ``codec`` read from ``source`` (a path, for messages)."""
    if codec not in CONVERTERS:
        raise ValueError(f"{source}: vcm reads no official {codec} checkpoints "
                         f"(converters: {', '.join(CONVERTERS.names())})")
    converter = CONVERTERS.get(codec)()
    try:
        state = official_state(ckpt)
    except ValueError as e:
        raise ValueError(f"{source} is not an official {codec} checkpoint: {e}") from e
    if not converter.matches(state):
        some = ", ".join(sorted(state)[:4])
        raise ValueError(f"{source} is neither a vcm {codec} checkpoint (no 'config') nor an official one "
                         f"(its keys, e.g. {some}, are not {codec}'s)")
    try:
        out = converter.convert(state)
    except (KeyError, IndexError) as e:
        raise ValueError(f"{source}: official {codec} checkpoint lacks {e}") from e
    except (ArithmeticError, RuntimeError) as e:
        raise ValueError(f"{source}: official {codec} checkpoint is incomplete or inconsistent: {e}") from e
    levels = out.config.get("scale_levels")
    note = (f"coder tables: {levels} Gaussian scales, as the official code, so the bytes are its bytes "
            "(scale_levels=256: vcm's finer table)") if levels is not None else None
    return replace(out, notes=(*out.notes, note)) if note else out


def read_codec_weights(ckpt: Mapping[str, Any], codec: str, source: str,
                       format: str = "auto") -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, state dict) of a vcm checkpoint or, by ``format`` or detection, an official one."""
    if format not in FORMATS:
        raise ValueError(f"checkpoint format must be one of {', '.join(FORMATS)}, got {format!r}")
    if is_vcm_checkpoint(ckpt):
        if format == "official":
            raise ValueError(f"{source} is a vcm {codec} checkpoint, not an official one (format: auto or vcm reads it)")
        return ckpt["config"], ckpt["state_dict"]
    if format == "vcm":
        raise ValueError(f"{source} is not a vcm {codec} checkpoint (needs 'config' and 'state_dict'); "
                         f"an official file loads with format: official or vcm convert-weights")
    out = convert(codec, ckpt, source)
    return out.config, out.state_dict


def check_state(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], source: str,
                what: str, skip: tuple[str, ...] = ()) -> None:
    """One line naming the missing, unexpected and misshapen keys of ``got`` against ``expected``."""
    want = {k: v for k, v in expected.items() if not k.endswith(skip)}
    have = {k: v for k, v in got.items() if not k.endswith(skip)}
    shapes = [f"{k} {tuple(have[k].shape)} (model {tuple(want[k].shape)})" for k in sorted(want.keys() & have.keys())
              if tuple(have[k].shape) != tuple(want[k].shape)]
    _refuse(sorted(want.keys() - have.keys()), sorted(have.keys() - want.keys()), shapes, source, what)


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, what: str) -> None:
    """``model.load_state_dict(state)`` with the model's load hooks (e.g. renames of older files),
    failing with one line that names the missing, unexpected and misshapen keys."""
    try:
        result = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as e:
        shapes = [f"{k} {a} (model {b})" for k, a, b in re.findall(
            r"size mismatch for ([^:]+): copying a param with shape torch.Size\((\[.*?\])\) from checkpoint, "
            r"the shape in current model is torch.Size\((\[.*?\])\)", str(e))]
        _refuse([], [], shapes or [str(e).splitlines()[0]], source, what)
        raise
    _refuse(sorted(result.missing_keys), sorted(result.unexpected_keys), [], source, what)


def _refuse(missing: list[str], unexpected: list[str], shapes: list[str], source: str, what: str) -> None:
    parts = [f"{label} {_few(keys)}" for label, keys in
             (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)) if keys]
    if parts:
        raise ValueError(f"{source} does not fit this {what} model: {'; '.join(parts)}")


def _few(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def convert_file(codec: str, src: str | Path, dst: str | Path,
                 overrides: list[str] | tuple[str, ...] = ()) -> tuple[Path, Converted]:
    """Write the vcm checkpoint of the official file ``src``; the result records the source's SHA-256.
    ``overrides`` (``key=value``, YAML values) set config fields no tensor shape shows, e.g. MCM's
    ``enc_heads=12 dec_heads=16``. The converted weights are loaded into vcm's model first, so a file or an
    override that does not fit fails here, before anything is written."""
    from vcm.config import apply_overrides
    from vcm.device import load_checkpoint

    out = convert(codec, load_checkpoint(src), str(src))
    for ov in overrides:
        if ov.partition("=")[0] not in out.config:
            raise ValueError(f"override {ov!r}: {codec} config has no such key (keys: {', '.join(out.config)})")
    out = replace(out, config=apply_overrides(dict(out.config), list(overrides)),
                  notes=(*out.notes, *((f"then set: {' '.join(overrides)}",) if overrides else ())))
    try:
        model = CONVERTERS.get(codec)().model(out.config)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{src}: converted {codec} config does not build a model: {e}") from e
    check_state(model.state_dict(), out.state_dict, str(src), codec, skip=_tables())
    digest = hashlib.sha256(Path(src).read_bytes()).hexdigest()
    source = {"format": "official", "file": Path(src).name, "sha256": digest, "notes": list(out.notes)}
    torch.save({"config": out.config, "state_dict": out.state_dict, "source": source}, dst)
    return Path(dst), out


def _tables() -> tuple[str, ...]:
    from vcm.codecs.checkpoint import TABLES

    return TABLES
