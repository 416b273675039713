"""``vcm train`` configs: YAML -> validated dataclasses (unknown keys are errors).

Example (``configs/train/emic_tiny.yaml``)::

    name: emic-tiny
    codec: {type: emic, dims: [32, 48, 64, 96], depths: [1, 1, 2, 1]}
    data: {root: ${VCM_ASSETS}/data/coco-mini, split: train2017, crop: 128, batch_size: 8,
           masks: [{type: damask, weight: 2, visible_ratio: [0.1, 1.0]}, {type: none}]}
    optim: {lr: 1.0e-4}
    rates: [{name: r1, lmbda: 0.0018, steps: 4000}, {name: r2, lmbda: 0.0035, steps: 2000, init: r1}]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcm.config import ComponentSpec, ConfigError, as_list, from_dict, read_yaml


@dataclass(frozen=True)
class TrainMask:
    """One mask source of the training mix; a two-item list param ``[lo, hi]`` is drawn uniformly per crop."""

    type: str
    params: dict[str, Any]
    weight: float = 1.0


@dataclass(frozen=True)
class DataConfig:
    root: str = "${VCM_ASSETS}/data/coco-mini"
    split: str = "train2017"
    crop: int = 128              # square crop side, px (a multiple of the codec's unit)
    batch_size: int = 8
    limit: int | None = None     # use only the first N training images
    hflip: bool = True
    masks: tuple[TrainMask, ...] = ()


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    aux_lr: float = 1e-3         # entropy-bottleneck quantiles (compressai's aux loss)
    clip: float = 1.0            # gradient-norm clip
    decay_at: float = 0.8        # lr x 0.1 after this fraction of a rate point's steps


@dataclass(frozen=True)
class RatePoint:
    name: str
    steps: int
    lmbda: float = 0.0           # distortion weight of an ``rd`` stage (each codec states its loss)
    init: str | None = None      # start from this (earlier) rate point's final weights
    stage: str = "rd"            # training objective; codecs may offer more (MCM: ``mae`` pretraining)


@dataclass(frozen=True)
class TrainConfig:
    name: str
    codec: ComponentSpec
    rates: tuple[RatePoint, ...]
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    output_dir: str = "runs/train/${name}"
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 200  # steps between resumable state files
    log_every: int = 50
    half_weights: bool = False   # store the final weights as float16 (smaller files)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["codec"] = self.codec.to_dict()
        return d


def _parse_masks(raw: Any, where: str) -> tuple[TrainMask, ...]:
    out = []
    for i, item in enumerate(as_list(raw or [{"type": "none"}])):
        spec = ComponentSpec.parse(item, f"{where}[{i}]")
        params = dict(spec.params)
        weight = params.pop("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(f"{where}[{i}].weight: must be a positive number, got {weight!r}")
        out.append(TrainMask(spec.type, params, float(weight)))
    return tuple(out)


def parse_train(raw: Mapping[str, Any], where: str = "config") -> TrainConfig:
    """Validate a raw mapping into a :class:`TrainConfig`."""
    raw = dict(raw)
    for key in ("name", "codec", "rates"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key {key!r}")
    codec = ComponentSpec.parse(raw.pop("codec"), f"{where}.codec")
    data_raw = dict(raw.pop("data", None) or {})
    masks = _parse_masks(data_raw.pop("masks", None), f"{where}.data.masks")
    rates = tuple(from_dict(RatePoint, r, f"{where}.rates[{i}]") for i, r in enumerate(as_list(raw.pop("rates"))))
    data = from_dict(DataConfig, data_raw, f"{where}.data")
    base = from_dict(TrainConfig, {**raw, "codec": {"type": "_"}, "rates": ()}, where)
    cfg = dataclasses.replace(base, codec=codec, rates=rates, data=dataclasses.replace(data, masks=masks))
    _check(cfg, where)
    return dataclasses.replace(cfg, output_dir=cfg.output_dir.replace("${name}", cfg.name))


def _check(cfg: TrainConfig, where: str) -> None:
    if "val" in cfg.data.split:
        raise ConfigError(f"{where}.data.split: {cfg.data.split!r} is an evaluation split; train on train2017")
    if not cfg.rates:
        raise ConfigError(f"{where}.rates: give at least one rate point")
    seen: set[str] = set()
    for r in cfg.rates:
        if r.name in seen:
            raise ConfigError(f"{where}.rates: duplicate rate point name {r.name!r}")
        if r.init is not None and r.init not in seen:
            raise ConfigError(f"{where}.rates.{r.name}.init: {r.init!r} must name an earlier rate point")
        if r.steps < 1 or (r.stage == "rd" and r.lmbda <= 0):
            raise ConfigError(f"{where}.rates.{r.name}: steps and lmbda must be positive")
        seen.add(r.name)
    if cfg.data.batch_size < 1 or cfg.data.crop < 16:
        raise ConfigError(f"{where}.data: batch_size >= 1 and crop >= 16 required")


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML training config, apply ``a.b=value`` overrides, validate."""
    return parse_train(read_yaml(path, overrides), str(path))
