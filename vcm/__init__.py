"""vcm: evaluate coding for machines (mask -> mask-before-encode codec -> task head -> report).

Importing vcm loads nothing heavy; the public entry points are imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_config", "make_report", "prepare", "run"]


def __getattr__(name: str) -> Any:
    if name == "load_config":
        from vcm.config import load_config

        return load_config
    if name in ("prepare", "run"):
        from vcm.pipeline import runner

        return getattr(runner, name)
    if name == "make_report":
        from vcm.report.build import make_report

        return make_report
    raise AttributeError(f"module 'vcm' has no attribute {name!r}")
