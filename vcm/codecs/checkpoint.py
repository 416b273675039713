"""Checkpoints of learned codecs: ``{"config", "state_dict", ...}`` with coder tables left out.

The entropy coder's tables (CDFs, offsets, scale tables) are rebuilt from the loaded weights
with :func:`update_tables`, so encoder and decoder always agree, also for float16 files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from compressai.models import CompressionModel
from typing_extensions import Self

from vcm.assets import MissingAssetError, expand_path, require_file
from vcm.device import load_checkpoint

TABLES = ("._quantized_cdf", "._offset", "._cdf_length", ".scale_table")
SCALE_LEVELS = 256  # Gaussian scales 0.11..256; compressai's default 64 (13 % steps) rounds each
# scale up so coarsely that at ~1 bit a latent the bytes exceed the estimate by 2 % (0.6 % at 256)
OFFICIAL_SCALE_LEVELS = 64  # what the seed papers' code (compressai's table) uses: converted
# official checkpoints keep it, so their bytes are the official code's


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside: a learned codec's entropy parameters must be the same
    floats at encoder and decoder, and a multi-threaded conv may sum in another order, move a
    scale across a table boundary and desynchronise the whole rANS decode (seen for GIT-SSIC
    between 1 and 2 threads). Encode and decode both run here, whatever the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def update_tables(model: CompressionModel) -> None:
    """Rebuild every entropy model's coder tables from the weights (Gaussian scale table of the
    model config's ``scale_levels`` log-spaced scales, else ``SCALE_LEVELS``)."""
    from compressai.models.google import get_scale_table

    levels = getattr(getattr(model, "cfg", None), "scale_levels", SCALE_LEVELS)
    model.update(scale_table=get_scale_table(levels=levels), force=True)
M = TypeVar("M", bound=CompressionModel)
C = TypeVar("C", bound="ArchConfig")


class ArchConfig:
    """Mixin for frozen architecture dataclasses stored in checkpoints (tuples <-> YAML lists).

    A config with a ``layout`` field (the official code's layout or vcm's first one) names its
    choices in ``LAYOUTS``; a stored config without ``layout`` predates the field: ``vcm``.
    """

    LAYOUTS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        d = {"layout": "vcm", **d} if cls.LAYOUTS else d
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def check_coding(self) -> None:
        """The checks layout-aware configs share: ``layout`` one of ``LAYOUTS``, ``scale_levels`` >= 2."""
        layout, levels = getattr(self, "layout", None), getattr(self, "scale_levels", SCALE_LEVELS)
        if self.LAYOUTS and layout not in self.LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(self.LAYOUTS)}, got {layout!r}")
        if levels < 2:
            raise ValueError(f"scale_levels must be at least 2, got {levels}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}  # type: ignore[call-overload]


def save_codec_checkpoint(model: CompressionModel, config: dict[str, Any], path: str | Path,
                          half: bool = False, **extra: Any) -> Path:
    """Write the weights (float16 when ``half``; they load back as float32) and ``config``."""
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()
             if not k.endswith(TABLES)}
    torch.save({"config": config, "state_dict": state, **extra}, path)
    return Path(path)


def fingerprint(model: torch.nn.Module) -> bytes:
    """4 bytes naming the weights (and, through names and shapes, the architecture): SHA-1 of
    every parameter and buffer but the coder tables, in float16 as the files store them, and the
    scale-table size when it is not ``SCALE_LEVELS`` (so 64- and 256-level streams are told apart)."""
    h = hashlib.sha1()
    levels = getattr(getattr(model, "cfg", None), "scale_levels", SCALE_LEVELS)
    if levels != SCALE_LEVELS:  # another coder table: streams of one do not decode with the other
        h.update(f"scale_levels={levels}".encode())
    for k, v in sorted(model.state_dict().items()):
        if k.endswith(TABLES):
            continue
        t = v.detach().cpu()
        h.update(f"{k}{tuple(t.shape)}".encode() + (t.half() if t.is_floating_point() else t).numpy().tobytes())
    return h.digest()[:4]


def load_codec_checkpoint(path: str | Path, make: Callable[[dict[str, Any]], M], what: str,
                          codec: str | None = None, format: str = "auto") -> M:
    """Build ``make(config)``, load the weights, rebuild the coder tables; eval mode. ``codec``
    names the registered codec whose official checkpoints (``format: official``, or detected by
    their keys under ``auto``) are converted on the way (:mod:`vcm.codecs.official`)."""
    from vcm.codecs.official import load_weights, read_codec_weights, where_published

    try:
        file = require_file(expand_path(str(path)), f"{what} checkpoint")
    except MissingAssetError as e:  # an unset variable or a missing file: say where official files are
        raise MissingAssetError(f"{e}{where_published(codec) if codec and format != 'vcm' else ''}") from e
    ckpt = load_checkpoint(file)
    if codec is None and format == "auto" and not ("config" in ckpt and "state_dict" in ckpt):
        raise ValueError(f"{path} is not a {what} checkpoint (needs 'config' and 'state_dict')")
    config, weights = read_codec_weights(ckpt, codec or what, str(path), "vcm" if codec is None else format)
    try:
        model = make(config)
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a checkpoint of {what} (its config does not fit: {e})") from e
    update_tables(model)  # placeholder coder tables for the keys the file leaves out
    state = {k: v for k, v in model.state_dict().items() if k.endswith(TABLES)} | dict(weights)
    load_weights(model, state, str(path), what)
    update_tables(model)  # the coder tables of the loaded weights
    return model.eval()
