"""CompressAI zoo models (bmshj2018-*, mbt2018*, cheng2020-*): the official pretrained weights or a checkpoint file.

``pretrained: true`` with ``quality`` reads compressai's official file for (arch, metric, quality)
from torch's hub cache, ``$TORCH_HOME/hub/checkpoints/<file name of its URL>`` (where
``torch.hub.load_state_dict_from_url`` puts it), downloading it once when online. The attempt is
bounded by ``VCM_DOWNLOAD_TIMEOUT`` seconds per socket operation (default 20); ``VCM_OFFLINE=1``
skips it. A file that cannot be had is one error naming the cache file and the URL.
``checkpoint`` (a path) reads an official file fetched by hand or one ``vcm train`` wrote.

The canvas is padded to a multiple of 64, coded with the model's own entropy coder (rANS), and
cropped after decoding. The payload holds the latent shape (2 x uint16) followed by the model's strings.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vcm.assets import MissingAssetError, expand_path
from vcm.codecs.base import FrameCodec
from vcm.codecs.checkpoint import fingerprint, one_thread, update_tables
from vcm.codecs.container import BitstreamError, PeakMemory, rans_guard
from vcm.codecs.entropy.bottleneck import decompress_exact
from vcm.device import load_checkpoint

# Decode memory, B/px, tiny weights and paper size (benchmarks/decode_memory.py, 2026-12-05):
# mbt2018-mean; paper = the zoo model at quality 8 (N 192, M 320)
PEAK = PeakMemory(1_262_051, 412.0, 17_561_699, 966.0)
PAD = 64  # total down-sampling of every zoo model


def official_url(arch: str, metric: str, quality: int) -> str | None:
    from compressai.zoo.image import model_urls

    return model_urls.get(arch, {}).get(metric, {}).get(quality)


def zoo_qualities(arch: str, metric: str = "mse") -> list[int]:
    """The qualities compressai publishes weights for (``arch``, ``metric``); raises on an unknown pair."""
    from compressai.zoo.image import model_architectures, model_urls

    if arch not in model_architectures:
        raise ValueError(f"unknown compressai architecture {arch!r}; known: {', '.join(model_architectures)}")
    metrics = model_urls.get(arch, {})
    if metric not in metrics:
        known = ", ".join(metrics) or "none"
        raise ValueError(f"compressai publishes no {arch} weights for metric {metric!r}; metrics: {known}")
    return sorted(metrics[metric])


def zoo_file(arch: str, metric: str, quality: int) -> tuple[Path, str]:
    """(hub-cache path, URL) of compressai's official weights: ``torch.hub.get_dir()/checkpoints/<URL's
    file name>``, the file ``torch.hub.load_state_dict_from_url`` writes (``$TORCH_HOME`` is read now)."""
    qualities = zoo_qualities(arch, metric)
    if quality not in qualities:
        raise ValueError(f"compressai {arch} ({metric}) has qualities {qualities[0]}..{qualities[-1]}, got {quality}")
    url = official_url(arch, metric, quality)
    assert url is not None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url


def fetch_zoo_file(arch: str, metric: str, quality: int) -> Path:
    """The official weights file in the hub cache, downloaded first when absent (unless
    ``VCM_OFFLINE=1``); each socket operation waits at most ``VCM_DOWNLOAD_TIMEOUT`` s (20)."""
    import re

    path, url = zoo_file(arch, metric, quality)
    if path.is_file():
        return path
    where = f"compressai {arch} q{quality} ({metric}) weights not in the hub cache: {path}"
    fix = f"download {url} to that path (TORCH_HOME sets the cache folder)"
    if os.environ.get("VCM_OFFLINE", "") not in ("", "0"):
        raise MissingAssetError(f"{where}; VCM_OFFLINE is set, so {fix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    old, digest = socket.getdefaulttimeout(), re.search(r"-([a-f0-9]+)\.", path.name)
    socket.setdefaulttimeout(float(os.environ.get("VCM_DOWNLOAD_TIMEOUT", "20")))
    try:
        torch.hub.download_url_to_file(url, str(path), digest.group(1) if digest else None, progress=False)
    except (OSError, RuntimeError) as e:  # URLError, timeouts, a hash mismatch
        raise MissingAssetError(f"{where}; the download failed ({getattr(e, 'reason', e)}): {fix}") from e
    finally:
        socket.setdefaulttimeout(old)
    return path


def load_zoo_model(arch: str, checkpoint: str | Path) -> torch.nn.Module:
    """Build ``arch`` from a state-dict checkpoint (CPU), with CDF tables updated."""
    from compressai.zoo.image import load_pretrained, model_architectures

    if arch not in model_architectures:
        raise ValueError(f"unknown compressai architecture {arch!r}; known: {', '.join(model_architectures)}")
    state = load_checkpoint(checkpoint)
    state = state.get("state_dict", state)
    model = model_architectures[arch].from_state_dict(load_pretrained(state))
    update_tables(model)  # vcm's finer Gaussian scale table, as for every learned codec
    return model.eval()


class CompressAICoder:
    """Codes canvases with one compressai model."""

    name = "compressai"

    def __init__(self, model: torch.nn.Module, device: torch.device, source: str = "") -> None:
        self.model, self.device = model.to(device), device
        self.fingerprint, self.source = fingerprint(model), source or "its weights"
        self.bytes_per_pixel = PEAK.per_pixel(self.model)  # FrameCodec.decode checks the budget with it

    @torch.no_grad()
    @one_thread()
    def encode_canvas(self, image: np.ndarray) -> list[bytes]:
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255).to(self.device)
        hp, wp = -(-h // PAD) * PAD, -(-w // PAD) * PAD
        x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
        out = self.model.compress(x)
        shape = struct.pack(">HH", *out["shape"])  # latent shape the model decodes from
        return [shape] + [s[0] for s in out["strings"]]

    @torch.no_grad()
    @one_thread()
    def decode_canvas(self, sections: tuple[bytes, ...], height: int, width: int) -> np.ndarray:
        if len(sections) < 2 or len(sections[0]) != 4:
            raise BitstreamError("compressai bitstream lacks its latent-shape section")
        hp, wp = -(-height // PAD) * PAD, -(-width // PAD) * PAD
        shape = list(struct.unpack(">HH", sections[0]))
        if tuple(shape) not in ((hp // 64, wp // 64), (hp // 16, wp // 16)):  # hyperprior z / factorized y
            raise BitstreamError(f"compressai latent shape {shape} does not fit a {height}x{width} image")
        if len(sections) - 1 != (2 if hasattr(self.model, "h_s") else 1):
            raise BitstreamError(f"compressai bitstream has {len(sections) - 1} strings for this model")
        strings = rans_guard(sections[1:], hp, wp)
        try:
            decompress_exact(self.model.entropy_bottleneck, strings[-1], tuple(shape))  # z (y when factorized)
            out = self.model.decompress([[s] for s in strings], shape)
        except (RuntimeError, ValueError, IndexError) as e:
            raise BitstreamError(f"compressai payload cannot be decoded: {e}") from e
        x = out["x_hat"][0, :, :height, :width].clamp(0, 1)
        return np.ascontiguousarray((x * 255).round().byte().permute(1, 2, 0).cpu().numpy())


def compressai_codec(*, arch: str, checkpoint: str | None = None, quality: int | None = None,
                     pretrained: bool = False, metric: str = "mse", mode: str = "full", fill: str = "blur",
                     fill_value: int = 128, blur_sigma: float = 16.0, device: torch.device | None = None) -> FrameCodec:
    """A compressai zoo codec (``arch`` e.g. ``mbt2018-mean``): the official weights for ``quality``
    (``pretrained: true``, from torch's hub cache) or a ``checkpoint`` file (an official file, or
    one ``vcm train`` wrote; ``quality`` then only names the official URL when the file is absent)."""
    if checkpoint and pretrained:
        raise ValueError(f"compressai {arch}: give either checkpoint (a path) or pretrained: true, not both")
    if quality is not None:
        zoo_file(arch, metric, quality)  # an arch, metric and quality compressai publishes
    path = Path(expand_path(checkpoint)) if checkpoint else zoo_path(arch, metric, quality, pretrained)
    if not path.is_file():
        url = official_url(arch, metric, quality) if quality is not None else None
        hint = f"; the official weights are at {url}" if url else ""
        raise MissingAssetError(f"compressai checkpoint for {arch} not found: {path}{hint}")
    source = checkpoint or f"{arch} q{quality} ({metric}) official weights"
    coder = CompressAICoder(load_zoo_model(arch, path), device or torch.device("cpu"), source)
    return FrameCodec(coder, mode=mode, fill=fill, fill_value=fill_value, blur_sigma=blur_sigma)


def zoo_path(arch: str, metric: str, quality: int | None, pretrained: bool) -> Path:
    """The official file ``pretrained`` asks for (fetched when needed); refuses contradictory params."""
    if not pretrained:
        raise ValueError(f"compressai {arch}: give checkpoint (a path) or pretrained: true with a quality")
    if quality is None:
        qualities = zoo_qualities(arch, metric)
        raise ValueError(f"compressai {arch}: pretrained: true needs a quality ({qualities[0]}..{qualities[-1]})")
    return fetch_zoo_file(arch, metric, quality)


def save_random_checkpoint(arch: str, quality: int, path: str | Path, seed: int = 0) -> Path:
    """Write a random-init state dict for ``arch`` at ``quality`` (for tests and demos)."""
    from compressai.zoo import image as zoo

    torch.manual_seed(seed)
    model: Any = zoo._load_model(arch, "mse", quality, pretrained=False)
    torch.save(model.state_dict(), path)
    return Path(path)
