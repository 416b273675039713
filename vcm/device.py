"""Resolve ``device: auto | cpu | cuda[:N]`` once, and load weights on CPU first."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; explicit CUDA without a GPU is an error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {spec!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} requested but CUDA is not available here (use device: auto or cpu)")
    return dev


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Load a checkpoint file on CPU. Untrusted files are read with ``weights_only`` (tensors and
    plain containers, no code); ``trusted`` is for vcm's own training state (RNG states)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # official training scripts' 'args'
            obj = torch.load(Path(path), map_location="cpu", weights_only=not trusted)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as e:
        raise ValueError(f"checkpoint {path} cannot be read as a torch file of weights: {type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else 'empty or truncated file'}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj
