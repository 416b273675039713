"""``vcm train``: config validation, crops and masks, resumable and deterministic training, DDP."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vcm.config import ConfigError
from vcm.train.config import DataConfig, load_train_config, parse_train
from vcm.train.data import CropSampler
from vcm.train.loop import train


def _raw(out: Path, steps: int = 4) -> dict:
    return {
        "name": "t", "output_dir": str(out), "device": "cpu", "checkpoint_every": 1, "log_every": 1,
        "codec": {"type": "emic", "dims": [8, 8, 12, 16], "depths": [1, 1, 1, 1], "heads": [1, 1, 2, 2],
                  "hyper_channels": 4, "slices": 2},
        "data": {"root": "${VCM_ASSETS}/data/coco-mini", "crop": 32, "batch_size": 2, "limit": 3,
                 "masks": [{"type": "damask", "visible_ratio": [0.2, 0.9], "weight": 2},
                           {"type": "gt", "dilate": [0, 8]}, {"type": "random"}]},
        "rates": [{"name": "a", "lmbda": 0.01, "steps": steps}],
    }


def test_config_rejects_val_split_unknown_keys_and_bad_init(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    with pytest.raises(ConfigError, match="evaluation split"):
        parse_train({**raw, "data": {**raw["data"], "split": "val2017"}})
    with pytest.raises(ConfigError, match="unknown key 'bach_size'.*batch_size"):
        parse_train({**raw, "data": {**raw["data"], "bach_size": 2}})
    with pytest.raises(ConfigError, match="earlier rate point"):
        parse_train({**raw, "rates": [{"name": "a", "lmbda": 0.01, "steps": 1, "init": "b"}]})
    with pytest.raises(ConfigError, match="weight"):
        parse_train({**raw, "data": {**raw["data"], "masks": [{"type": "random", "weight": 0}]}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_train_config(path, ["rates.0.steps=7", "data.crop=64"])
    assert cfg.rates[0].steps == 7 and cfg.data.crop == 64 and cfg.data.masks[0].weight == 2.0


def test_crops_are_unit_aligned_train_images_with_visible_units(assets: Path, tmp_path: Path) -> None:
    cfg = parse_train(_raw(tmp_path))
    sampler = CropSampler(cfg.data, 16, np.random.default_rng(0))
    assert all(s.id in {str(i) for i in _train_ids(assets)} for s in sampler.samples)
    x, grid = sampler.batch(torch.device("cpu"))
    assert x.shape == (2, 3, 32, 32) and grid.shape == (2, 2, 2) and 0 <= x.min() and x.max() <= 1
    fractions = [sampler.crop()[1].mean() for _ in range(60)]
    assert min(fractions) > 0 and max(fractions) == 1 and min(fractions) < 1  # varied, never empty
    with pytest.raises(ValueError, match="multiple of the codec unit"):
        CropSampler(DataConfig(crop=40), 16, np.random.default_rng(0))


def _train_ids(assets: Path) -> list[int]:
    import json

    ann = json.loads((assets / "data/coco-mini/annotations/instances_train2017.json").read_text())
    return [im["id"] for im in ann["images"]]


def test_interrupted_training_resumes_to_identical_weights(tmp_path: Path) -> None:
    straight = train(parse_train(_raw(tmp_path / "s")), progress=False)["a"]
    cfg = parse_train(_raw(tmp_path / "r"))
    assert train(cfg, progress=False, until=2) == {"a": None}
    assert (tmp_path / "r" / "a" / "state.pth").is_file()
    resumed = train(cfg, progress=False)["a"]
    assert straight is not None and resumed is not None
    a, b = torch.load(straight)["state_dict"], torch.load(resumed)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "r" / "a" / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log] == ["step", "1", "2", "3", "4"]
    assert not (tmp_path / "r" / "a" / "state.pth").exists()  # removed once final weights exist


def test_trained_weights_load_as_a_codec(tmp_path: Path, noise_image: np.ndarray) -> None:
    from vcm.codecs import CODECS
    from vcm.types import Mask

    raw = _raw(tmp_path, steps=2)
    raw["rates"].append({"name": "b", "lmbda": 0.05, "steps": 3, "init": "a"})
    paths = train(parse_train({**raw, "half_weights": True}), progress=False)
    codec = CODECS.build("emic", {"checkpoint": str(paths["b"])})
    img = noise_image[:48, :64]
    dec = codec.decode(codec.encode(image=img, mask=Mask.full(48, 64)).data)
    assert dec.image.shape == img.shape and dec.image.any()
    assert torch.load(paths["b"])["train"]["lmbda"] == 0.05


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path, assets: Path) -> None:
    """DDP on CPU (Gloo): two ranks train together; rank 0 writes the final weights."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_raw(tmp_path / "ddp", steps=2)))
    env = {**os.environ, "VCM_ASSETS": str(assets), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "-m", "vcm.cli", "train", str(path), "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "ddp" / "a.pth").is_file() and out.stdout.count("[a] done") == 1


def test_gitssic_trains_through_vcm_train_and_loads_as_a_codec(tmp_path: Path, noise_image: np.ndarray) -> None:
    """GIT-SSIC's adapter: random group maps in the loss, a checkpoint the ``gitssic`` codec reads."""
    from vcm.codecs import CODECS
    from vcm.codecs.gitssic.rd import random_group_batch
    from vcm.types import Mask

    raw = _raw(tmp_path, steps=3)
    raw["codec"] = {"type": "gitssic", "dims": [8, 8, 12, 16], "depths": [1, 2, 1, 1], "heads": [1, 1, 2, 2],
                    "window": 2, "hyper_channels": 4, "slices": 2}
    raw["data"]["masks"] = [{"type": "none"}]
    paths = train(parse_train(raw), progress=False)
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert len(log) == 4 and all(float(line.split(",")[2]) > 0 for line in log[1:])  # bpp > 0 each step
    codec = CODECS.build("gitssic", {"checkpoint": str(paths["a"])})
    img = noise_image[:48, :64]
    dec = codec.decode(codec.encode(image=img, mask=Mask.full(48, 64)).data)
    assert dec.image.shape == img.shape and dec.image.any()
    torch.manual_seed(0)
    groups = random_group_batch(64, 8, 8, torch.device("cpu"))
    assert 10 < int((groups.amax((1, 2)) == 0).sum()) < 54  # about half of the maps are one group


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs" / "train").glob("*.yaml")))
def test_committed_train_configs_parse_and_build(path: Path) -> None:
    from vcm.train import LEARNED

    cfg = load_train_config(path)
    net = LEARNED.build(cfg.codec.type, {}).build(cfg.codec.params)  # unknown codec keys raise here
    assert sum(p.numel() for p in net.parameters()) > 0


def test_compressai_zoo_architecture_trains_and_loads_as_the_compressai_codec(tmp_path: Path,
                                                                               noise_image: np.ndarray) -> None:
    """The same-budget baseline path: ``codec: {type: compressai, arch: mbt2018-mean, n, m}``; the
    file keeps no coder tables (rebuilt on load) and the ``compressai`` codec reads it."""
    from vcm.codecs import CODECS
    from vcm.codecs.checkpoint import TABLES

    raw = _raw(tmp_path, steps=2)
    raw["codec"] = {"type": "compressai", "arch": "mbt2018-mean", "n": 16, "m": 24}
    raw["data"]["crop"] = 64
    paths = train(parse_train(raw), progress=False)
    state = torch.load(paths["a"], weights_only=False)["state_dict"]
    assert all(v.numel() == 0 for k, v in state.items() if k.endswith(TABLES)) and state["g_a.0.weight"].shape[0] == 16
    codec = CODECS.build("compressai", {"arch": "mbt2018-mean", "checkpoint": str(paths["a"])})
    bs = codec.encode(image=noise_image)
    assert codec.decode(bs.data).image.shape == noise_image.shape and bs.payload_bytes > 0
    with pytest.raises(ValueError, match="unknown compressai codec params"):
        train(parse_train({**raw, "codec": {"type": "compressai", "arch": "mbt2018-mean", "depth": 3}}), progress=False)
