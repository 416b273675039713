"""Resolve ``device: auto | cpu | cuda[:N]`` once, and load weights on CPU first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; explicit CUDA without a GPU is an error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} requested but CUDA is not available")
    return dev


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file on CPU (``map_location='cpu'``)."""
    obj = torch.load(Path(path), map_location="cpu", weights_only=False)
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj
