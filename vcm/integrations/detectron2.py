"""detectron2: model-zoo models as vcm nodes, and vcm codecs inside detectron2's own data path.

Two uses:

- :func:`build_config` + :class:`Predictor`: a detectron2 model (a model-zoo config name or a YAML
  path, plus a checkpoint) that vcm mask and task nodes call on uint8 RGB images.
- :func:`evaluate_compressed` (:class:`CompressedMapper` + :class:`RateEvaluator`): any detectron2
  model is scored by detectron2's ``inference_on_dataset`` and evaluators (e.g. ``COCOEvaluator``)
  on images that went through a vcm mask generator and codec (bytes out, decoded from the bytes
  alone); the bits of every image are collected beside the accuracy.

detectron2 is not on PyPI: build it from source and put it on ``PYTHONPATH`` (see the README).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vcm._optional import require
from vcm.assets import expand_path
from vcm.metrics.quality import PSNR_CAP, psnr
from vcm.tasks.base import COCO80_IDS  # detectron2's contiguous order for COCO models, too
from vcm.types import Mask, check_image

log = logging.getLogger(__name__)



def checkpoint_url(config: str) -> str | None:
    """The official weights URL of a model-zoo config name, or None for other configs."""
    zoo = require("detectron2.model_zoo")
    try:
        return str(zoo.get_checkpoint_url(config))
    except RuntimeError:
        return None


def build_config(config: str, *, checkpoint: str | None, score_threshold: float | None = None,
                 overrides: Mapping[str, Any] | None = None, device: Any = "cpu") -> Any:
    """A detectron2 ``CfgNode`` from a model-zoo name (e.g.
    ``COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml``) or a YAML file.

    ``checkpoint`` is a weights file (``.pkl`` from the zoo or ``.pth``); None builds the model with
    random weights (for tests). ``overrides`` are dotted config keys (``MODEL.RESNETS.DEPTH: 18``).
    """
    config_mod = require("detectron2.config")
    zoo = require("detectron2.model_zoo")
    cfg = config_mod.get_cfg()
    path = expand_path(config)
    if not Path(path).is_file():
        if not config.endswith(".yaml"):
            raise ValueError(f"detectron2 config {config!r}: give a model-zoo .yaml name or a .yaml file")
        try:
            path = zoo.get_config_file(config)
        except RuntimeError as e:
            raise FileNotFoundError(f"detectron2 config {config!r} is neither a file nor a model-zoo name") from e
    cfg.merge_from_file(path)
    if overrides:
        cfg.merge_from_list([x for k, v in overrides.items() for x in (k, v)])
    cfg.MODEL.WEIGHTS = _weights(config, checkpoint)
    if score_threshold is not None:
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_threshold
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = score_threshold
    cfg.MODEL.DEVICE = str(device or "cpu")
    cfg.freeze()
    return cfg


def _weights(config: str, checkpoint: str | None) -> str:
    if checkpoint is None:
        log.warning("detectron2 %s: no checkpoint given, the model has random weights", config)
        return ""
    path = expand_path(checkpoint)
    if not Path(path).is_file():
        url = checkpoint_url(config)
        hint = f"; the official weights for this config are at {url}" if url else ""
        raise FileNotFoundError(f"detectron2 checkpoint not found: {path}{hint}")
    return path


def category_map(cfg: Any, category_ids: Sequence[int] | None) -> list[int]:
    """Dataset category id of each contiguous class index of the model in ``cfg``."""
    n = int(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    if category_ids is None:
        if cfg.MODEL.KEYPOINT_ON and n == 1:
            return [1]  # person
        if n == 80:
            return list(COCO80_IDS)
        raise ValueError(f"the model has {n} classes; give category_ids (dataset id of each class)")
    if len(category_ids) != n:
        raise ValueError(f"category_ids has {len(category_ids)} entries, the model has {n} classes")
    return list(category_ids)


class Predictor:
    """detectron2's ``DefaultPredictor`` (checkpoint, test resize, input format) on RGB images.

    Returns the ``Instances`` on CPU (boxes, scores, classes; masks / keypoints as the model has).
    """

    def __init__(self, cfg: Any) -> None:
        engine = require("detectron2.engine")
        self.cfg = cfg
        self.predictor = engine.DefaultPredictor(cfg)

    def __call__(self, image: np.ndarray) -> Any:
        bgr = np.ascontiguousarray(check_image(image)[:, :, ::-1])  # DefaultPredictor takes BGR
        return self.predictor(bgr)["instances"].to("cpu")


def coco_results(instances: Any, category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """COCO result dicts (no ``image_id``) via detectron2's own ``instances_to_coco_json``."""
    coco_eval = require("detectron2.evaluation.coco_evaluation")
    out = coco_eval.instances_to_coco_json(instances, 0)
    for r in out:
        r.pop("image_id")
        r["category_id"] = int(category_ids[r["category_id"]])
    return out  # type: ignore[no-any-return]


class CompressedMapper:
    """A detectron2 dataset mapper whose images pass through a vcm mask and codec.

    Per dataset dict: read the file (RGB), make the mask (if any), encode to bytes, decode those
    bytes alone, convert to the model's input format, apply the test augmentations. The dict gets
    ``image`` (uint8 (3, H', W') tensor) and ``vcm`` (bytes, bpp, PSNR of the decoded image).

    Args:
        codec: a vcm codec (``encode``); ``decoder`` decodes (default: the same object).
        mask: a vcm mask generator, or None to encode the whole frame.
        augmentations: detectron2 test augmentations (e.g. ``ResizeShortestEdge``).
        image_format: the model's ``cfg.INPUT.FORMAT`` (``BGR`` or ``RGB``).
        category_ids: dataset category id of each contiguous class (to give mask generators
            COCO-style annotations).
    """

    def __init__(self, codec: Any, *, mask: Any = None, decoder: Any = None,
                 augmentations: Sequence[Any] = (), image_format: str = "BGR",
                 category_ids: Sequence[int] | None = None) -> None:
        if image_format not in ("BGR", "RGB"):
            raise ValueError(f"image_format must be BGR or RGB, got {image_format!r}")
        transforms = require("detectron2.data.transforms")
        self.codec, self.decoder, self.mask = codec, decoder or codec, mask
        self.augmentations = transforms.AugmentationList(list(augmentations))
        self.image_format, self.category_ids = image_format, category_ids

    @classmethod
    def from_config(cls, cfg: Any, codec: Any, **kwargs: Any) -> CompressedMapper:
        """Test augmentations and input format as ``cfg`` gives them."""
        utils = require("detectron2.data.detection_utils")
        return cls(codec, augmentations=utils.build_augmentation(cfg, is_train=False),
                   image_format=cfg.INPUT.FORMAT, **kwargs)

    def __call__(self, dataset_dict: dict[str, Any]) -> dict[str, Any]:
        import torch

        transforms = require("detectron2.data.transforms")
        utils = require("detectron2.data.detection_utils")
        d = copy.deepcopy(dataset_dict)
        rgb = np.ascontiguousarray(utils.read_image(d["file_name"], format="RGB"))
        mask = self._mask(rgb, d)
        bitstream = self.codec.encode(image=rgb, mask=mask) if mask is not None else self.codec.encode(image=rgb)
        decoded = self.decoder.decode(bitstream.data).image
        px = rgb.shape[0] * rgb.shape[1]
        d["vcm"] = {"bytes": len(bitstream.data), "bpp": 8 * len(bitstream.data) / px,
                    "bpp_side": 8 * bitstream.side_bytes / px, "psnr": psnr(rgb, decoded),
                    "visible_fraction": mask.visible_fraction if mask is not None else 1.0}
        image = decoded[:, :, ::-1] if self.image_format == "BGR" else decoded
        aug = transforms.AugInput(np.ascontiguousarray(image))
        self.augmentations(aug)
        d["image"] = torch.as_tensor(np.ascontiguousarray(aug.image.transpose(2, 0, 1)))
        d.pop("annotations", None)
        d.pop("sem_seg_file_name", None)
        return d

    def _mask(self, rgb: np.ndarray, d: dict[str, Any]) -> Mask | None:
        if self.mask is None:
            return None
        ports = getattr(type(self.mask), "input_ports", {"image": "image"})
        inputs: dict[str, Any] = {"image": rgb, "sample_id": str(d.get("image_id", d["file_name"]))}
        if "annotations" in ports:
            inputs["annotations"] = self._coco_annotations(d.get("annotations"))
        mask = self.mask(**{k: v for k, v in inputs.items() if k in ports})
        mask.check_fits(rgb)
        return mask  # type: ignore[no-any-return]

    def _coco_annotations(self, anns: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        """detectron2 annotations with dataset (COCO) category ids again."""
        if anns is None or self.category_ids is None:
            return anns
        return [{**a, "category_id": self.category_ids[a["category_id"]]} for a in anns]


class RateEvaluator:
    """A detectron2 evaluator that collects the ``vcm`` rate record of every input.

    ``evaluate()`` returns ``{"rate": {"bpp", "bpp_side", "psnr", "visible_fraction", "images"}}``
    (means over images); ``per_image`` keeps each image's record with its ``image_id``.
    """

    def __init__(self) -> None:
        self.per_image: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.per_image = []

    def process(self, inputs: list[dict[str, Any]], outputs: list[Any]) -> None:
        for inp in inputs:
            if "vcm" not in inp:
                raise ValueError("input has no 'vcm' rate record: was the data loader built with "
                                 "CompressedMapper?")
            self.per_image.append({"image_id": inp.get("image_id"), **inp["vcm"]})

    def evaluate(self) -> dict[str, dict[str, float]]:
        comm = require("detectron2.utils.comm")
        gathered = comm.gather(self.per_image, dst=0)
        if not comm.is_main_process():
            return {}
        self.per_image = [r for part in gathered for r in part]
        if not self.per_image:
            return {"rate": {"images": 0}}
        keys = ("bpp", "bpp_side", "psnr", "visible_fraction")
        out = {k: float(np.mean([min(r[k], PSNR_CAP) for r in self.per_image])) for k in keys}
        return {"rate": {**out, "images": len(self.per_image)}}


def register_coco(name: str, json_file: str, image_root: str, limit: int | None = None) -> str:
    """Register a COCO json + image folder with detectron2 (first ``limit`` images); returns ``name``."""
    catalog = require("detectron2.data")
    coco = require("detectron2.data.datasets.coco")
    if name in catalog.DatasetCatalog.list():
        return name
    catalog.DatasetCatalog.register(name, lambda: coco.load_coco_json(json_file, image_root, name)[:limit])
    catalog.MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="coco")
    return name


def evaluate_compressed(model: Any, cfg: Any, dataset_name: str, codec: Any, *, mask: Any = None,
                        decoder: Any = None, evaluator: Any = None,
                        num_workers: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run detectron2's ``inference_on_dataset`` on ``dataset_name`` through the codec.

    Returns (results, per-image rate records): ``results`` merges the evaluator's output (e.g.
    ``{"bbox": ..., "segm": ...}`` from ``COCOEvaluator``) with ``{"rate": ...}``.
    """
    data = require("detectron2.data")
    evaluation = require("detectron2.evaluation")
    dicts = data.DatasetCatalog.get(dataset_name)  # loading sets the category metadata
    meta = data.MetadataCatalog.get(dataset_name)
    to_dataset = getattr(meta, "thing_dataset_id_to_contiguous_id", None)
    ids = [k for k, _ in sorted(to_dataset.items(), key=lambda kv: kv[1])] if to_dataset else None
    mapper = CompressedMapper.from_config(cfg, codec, mask=mask, decoder=decoder, category_ids=ids)
    loader = data.build_detection_test_loader(dicts, mapper=mapper,
                                              num_workers=num_workers)
    rate = RateEvaluator()
    evaluators = evaluation.DatasetEvaluators([rate] + ([evaluator] if evaluator is not None else []))
    results = evaluation.inference_on_dataset(model, loader, evaluators)
    return dict(results), rate.per_image
