"""compressai's official zoo weights by quality: read from torch's hub cache, refused clearly when
absent offline or when the params contradict each other."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from vcm.assets import MissingAssetError
from vcm.codecs import CODECS
from vcm.codecs.compressai import official_url, save_random_checkpoint, zoo_file

PRETRAINED = {"arch": "bmshj2018-factorized", "quality": 2, "pretrained": True}


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_zoo_file_is_where_torch_hub_caches_the_url(torch_home: Path) -> None:
    path, url = zoo_file("mbt2018-mean", "mse", 3)
    assert url == official_url("mbt2018-mean", "mse", 3) and url.startswith("https://")
    assert path == torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[1]


def test_pretrained_reads_the_cached_file_and_codes_from_bytes(torch_home: Path, noise_image: np.ndarray) -> None:
    path, _ = zoo_file(PRETRAINED["arch"], "mse", PRETRAINED["quality"])
    path.parent.mkdir(parents=True)
    save_random_checkpoint(PRETRAINED["arch"], PRETRAINED["quality"], path)
    bs = CODECS.build("compressai", PRETRAINED).encode(image=noise_image)
    dec = CODECS.build("compressai", dict(PRETRAINED)).decode(bs.data)  # a fresh codec: the bytes alone
    assert dec.image.shape == noise_image.shape and dec.image.dtype == np.uint8
    by_path = CODECS.build("compressai", {"arch": PRETRAINED["arch"], "checkpoint": str(path)})
    assert by_path.encode(image=noise_image).data == bs.data  # the same weights as by path
    other = save_random_checkpoint(PRETRAINED["arch"], PRETRAINED["quality"], path.with_name("other.pth"), seed=1)
    assert CODECS.build("compressai", {"arch": PRETRAINED["arch"], "checkpoint": str(other)}) \
        .encode(image=noise_image).data != bs.data  # and those weights really are the cached file's


def test_offline_missing_file_names_file_and_url(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCM_OFFLINE", "1")
    path, url = zoo_file("mbt2018-mean", "mse", 3)
    t = time.perf_counter()
    with pytest.raises(MissingAssetError) as e:
        CODECS.build("compressai", {"arch": "mbt2018-mean", "quality": 3, "pretrained": True})
    assert time.perf_counter() - t < 5 and not path.exists()
    assert str(path) in str(e.value) and url in str(e.value) and "VCM_OFFLINE" in str(e.value)


def test_failed_download_is_one_error_naming_file_and_url(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An online attempt that cannot connect (here: through a proxy on a closed port) fails at
    once with the cache file and the URL, and leaves no partial file."""
    monkeypatch.delenv("VCM_OFFLINE", raising=False)
    monkeypatch.setenv("VCM_DOWNLOAD_TIMEOUT", "3")
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    path, url = zoo_file("bmshj2018-factorized", "mse", 1)
    t = time.perf_counter()
    with pytest.raises(MissingAssetError) as e:
        CODECS.build("compressai", {"arch": "bmshj2018-factorized", "quality": 1, "pretrained": True})
    assert str(path) in str(e.value) and url in str(e.value) and "download failed" in str(e.value)
    assert time.perf_counter() - t < 30 and not any(path.parent.iterdir())


@pytest.mark.parametrize(("params", "message"), [
    ({"pretrained": True}, "pretrained: true needs a quality \\(1..8\\)"),
    ({"pretrained": True, "quality": 3, "checkpoint": "/x.pth"}, "either checkpoint .* or pretrained: true, not both"),
    ({"pretrained": True, "quality": 9}, "has qualities 1..8, got 9"),
    ({"pretrained": True, "quality": 2, "metric": "psnr"}, "no mbt2018-mean weights for metric 'psnr'; metrics: mse, ms-ssim"),
    ({}, "give checkpoint \\(a path\\) or pretrained: true"),
    ({"quality": 3}, "give checkpoint \\(a path\\) or pretrained: true"),
])
def test_contradictory_params_are_refused(params: dict, message: str, torch_home: Path) -> None:
    with pytest.raises(ValueError, match=message):
        CODECS.build("compressai", {"arch": "mbt2018-mean", **params})


def test_cheng2020_quality_range_is_its_own(torch_home: Path) -> None:
    with pytest.raises(ValueError, match="cheng2020-anchor \\(mse\\) has qualities 1..6, got 7"):
        CODECS.build("compressai", {"arch": "cheng2020-anchor", "quality": 7, "pretrained": True})
