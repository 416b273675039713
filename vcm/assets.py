"""Locate the read-only assets folder (real data and pretrained task models) via ``VCM_ASSETS``."""

from __future__ import annotations

import os
from pathlib import Path


class MissingAssetError(FileNotFoundError):
    """An asset, dataset or checkpoint file that vcm needs is absent."""


def assets_root() -> Path:
    """The folder named by ``VCM_ASSETS``; raises if unset or missing."""
    root = os.environ.get("VCM_ASSETS")
    if not root:
        raise MissingAssetError(
            "VCM_ASSETS is not set: point it at the assets folder (e.g. VCM_ASSETS=../shared/assets)"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingAssetError(f"VCM_ASSETS={root} is not a directory")
    return path


def require_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise naming ``what``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingAssetError(f"{what} not found: {p}")
    return p


def expand_path(value: str) -> str:
    """Expand ``${VAR}`` and ``~`` in a config path; an unset variable is an error."""
    if "$" in value:
        import re

        for name in re.findall(r"\$\{(\w+)\}|\$(\w+)", value):
            var = name[0] or name[1]
            if var not in os.environ:
                raise MissingAssetError(f"environment variable {var} used in {value!r} is not set")
    return os.path.expanduser(os.path.expandvars(value))
