"""Pretrained heads on uncompressed coco-mini val2017 must reproduce the assets' reference AP."""

import copy

import numpy as np
import pytest

from vcm.assets import MissingAssetError
from vcm.data import DATASETS
from vcm.metrics.coco import coco_ap
from vcm.tasks import TASKS

REFERENCE = {"segm_AP": 0.361, "bbox_AP": 0.422, "kp_AP": 0.465}


def _run_head(name: str, coco_root: str) -> tuple[list[dict], list[int], object]:
    ds = DATASETS.build("coco", {"root": coco_root})
    head = TASKS.build(name, {})
    results, ids = [], []
    for sid in ds.ids():
        s = ds.load(sid)
        ids.append(s.coco_id)
        results += [{**r, "image_id": s.coco_id} for r in head(image=s.image).instances]
    return results, ids, ds


@pytest.mark.slow
def test_yolov8_seg_reproduces_reference_ap(coco_root: str) -> None:
    results, ids, ds = _run_head("yolov8_seg", coco_root)
    assert len(ids) == 79
    scores = {**coco_ap(ds.coco_gt("instances"), results, ids, "segm"),
              **coco_ap(ds.coco_gt("instances"), results, ids, "bbox")}
    assert scores["segm_AP"] == pytest.approx(REFERENCE["segm_AP"], abs=0.01)
    assert scores["bbox_AP"] == pytest.approx(REFERENCE["bbox_AP"], abs=0.01)


@pytest.mark.slow
def test_yolo11_pose_reproduces_reference_ap(coco_root: str) -> None:
    results, ids, ds = _run_head("yolo11_pose", coco_root)
    assert all(len(r["keypoints"]) == 51 for r in results)
    kp = coco_ap(ds.coco_gt("keypoints"), results, ids, "keypoints")["kp_AP"]
    assert kp == pytest.approx(REFERENCE["kp_AP"], abs=0.01)


def test_coco_ap_is_one_on_ground_truth_as_predictions(coco_root: str) -> None:
    ds = DATASETS.build("coco", {"root": coco_root, "limit": 5})
    gt = ds.coco_gt("instances")
    ids = [int(i) for i in ds.ids()]
    results = []
    for a in gt.loadAnns(gt.getAnnIds(imgIds=ids, iscrowd=False)):
        rle = gt.annToRLE(copy.deepcopy(a))
        rle["counts"] = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                        "score": 1.0, "segmentation": rle})
    assert coco_ap(gt, results, ids, "segm")["segm_AP"] == pytest.approx(1.0)
    assert coco_ap(gt, results, ids, "bbox")["bbox_AP"] == pytest.approx(1.0)
    assert coco_ap(gt, [], ids, "bbox")["bbox_AP"] == 0.0


def test_deeplab_class_map_and_odd_sizes(coco_root: str) -> None:
    ds = DATASETS.build("coco", {"root": coco_root, "limit": 1})
    s = ds.load(ds.ids()[0])
    head = TASKS.build("deeplabv3", {})
    pred = head(image=s.image).semantic
    assert pred.shape == s.image.shape[:2] and pred.max() < 21
    odd = head(image=np.ascontiguousarray(s.image[:101, :37])).semantic
    assert odd.shape == (101, 37)


def test_missing_model_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(MissingAssetError, match="YOLOv8n-seg model file"):
        TASKS.build("yolov8_seg", {"model": str(tmp_path / "absent.tflite")})
