"""mmpose top-down head with the real library: RTMPose-t from mmpose's bundled config, random weights
(or weights the test saves), person boxes from ground truth or a detector node, COCO keypoint AP."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from vcm.config import load_config, parse_experiment
from vcm.pipeline.graph import GraphError
from vcm.pipeline.runner import prepare

REPO = Path(__file__).resolve().parents[1]


def _cfg(tmp_path: Path, coco_root: str, pipeline: str, **grid: object) -> dict:
    return {"name": "pose", "pipeline": str(REPO / "pipelines" / pipeline),
            "dataset": {"type": "coco", "root": coco_root, "limit": 3},
            "grid": {"mask": [{"type": "none"}],
                     "codec": [{"type": "jpeg", "mode": "full", "sweep": {"quality": [10, 90]}}],
                     "task": [{"type": "mmpose_topdown", "checkpoint": None, "label": "rtmpose"}], **grid},
            "output_dir": str(tmp_path / "run")}


def test_boxes_port_accepts_annotations_or_masks_only(tmp_path: Path, coco_root: str) -> None:
    """Graph checks need no mmpose: the head's ports are declared on the class."""
    prepare(parse_experiment(_cfg(tmp_path, coco_root, "topdown_pose.yaml")))
    prepare(parse_experiment(_cfg(tmp_path, coco_root, "topdown_pose_detected.yaml",
                                  detector=[{"type": "gt", "category_ids": [1]}])))
    nodes = yaml.safe_load((REPO / "pipelines" / "topdown_pose.yaml").read_text())["nodes"]
    nodes["task"]["inputs"]["boxes"] = "image"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"nodes": nodes}))
    with pytest.raises(GraphError, match="'boxes' expects boxes, but 'image' gives image"):
        prepare(parse_experiment({**_cfg(tmp_path, coco_root, "topdown_pose.yaml"), "pipeline": str(bad)}))
    del nodes["task"]["inputs"]["boxes"]
    bad.write_text(yaml.safe_dump({"nodes": nodes}))
    with pytest.raises(GraphError, match="input 'boxes' .* is not wired"):
        prepare(parse_experiment({**_cfg(tmp_path, coco_root, "topdown_pose.yaml"), "pipeline": str(bad)}))


mmpose_apis = pytest.importorskip(
    "mmpose.apis", reason="mmpose (with mmcv built from source) not installed: see README, 'mmpose'")
torch = pytest.importorskip("torch")

from vcm.data.coco import CocoDataset
from vcm.masks import MASKS
from vcm.tasks import TASKS


@pytest.fixture(scope="module")
def sample(coco_root: str):  # type: ignore[no-untyped-def]
    ds = CocoDataset(root=coco_root, split="val2017", limit=8)
    return max((ds.load(i) for i in ds.ids()), key=lambda s: sum(a["category_id"] == 1 for a in s.annotations))


def _persons(sample) -> list[dict]:  # type: ignore[no-untyped-def]
    return [a for a in sample.annotations if a["category_id"] == 1 and not a.get("iscrowd")]


def test_one_pose_per_ground_truth_person(sample) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    head = TASKS.build("mmpose_topdown", {"checkpoint": None})
    out = head(image=sample.image, boxes=sample.annotations).instances
    persons = _persons(sample)
    assert len(out) == len(persons) >= 2
    w = sample.image.shape[1]
    for r, a in zip(out, persons):
        assert r["category_id"] == 1 and len(r["keypoints"]) == 51
        assert np.allclose(r["bbox"], a["bbox"], atol=1e-3)
        xy = np.asarray(r["keypoints"]).reshape(17, 3)[:, :2]
        assert np.isfinite(xy).all() and (xy[:, 0] > -w).all() and (xy[:, 0] < 2 * w).all()
    assert head(image=sample.image, boxes=[]).instances == []


def test_boxes_from_a_mask_node_and_checkpoint_loading(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    a = TASKS.build("mmpose_topdown", {"checkpoint": None})
    path = tmp_path / "rtmpose.pth"
    torch.save({"state_dict": a.model.state_dict()}, path)
    torch.manual_seed(1)
    b = TASKS.build("mmpose_topdown", {"checkpoint": str(path)})
    persons = MASKS.build("gt", {"category_ids": [1], "include_crowd": False})(
        image=sample.image, annotations=sample.annotations)
    pa, pb = a(image=sample.image, boxes=persons).instances, b(image=sample.image, boxes=persons).instances
    assert len(pa) == len(_persons(sample))
    assert np.allclose([r["keypoints"] for r in pa], [r["keypoints"] for r in pb], atol=1e-4)
    with pytest.raises(FileNotFoundError, match="mmpose checkpoint not found"):
        TASKS.build("mmpose_topdown", {"checkpoint": str(tmp_path / "nope.pth")})
    with pytest.raises(FileNotFoundError, match="bundled with mmpose"):
        TASKS.build("mmpose_topdown", {"checkpoint": None, "config": "body_2d_keypoint/nope.py"})


@pytest.mark.parametrize("pipeline", ["topdown_pose.yaml", "topdown_pose_detected.yaml"])
def test_keypoint_ap_through_the_graph(tmp_path: Path, coco_root: str, pipeline: str) -> None:
    from vcm.pipeline.runner import run
    from vcm.pipeline.store import ResultStore
    from vcm.report.aggregate import aggregate

    extra = {"detector": [{"type": "gt", "category_ids": [1]}]} if "detected" in pipeline else {}
    path = tmp_path / "pose.yaml"
    path.write_text(yaml.safe_dump(_cfg(tmp_path, coco_root, pipeline, **extra), sort_keys=False))
    exp = prepare(load_config(path))
    assert run(exp, progress=False).computed == 3 * 3
    store = ResultStore(exp.run_dir / "results.sqlite")
    ds = CocoDataset(root=coco_root, split="val2017", limit=3)
    for sid, key, rec in store.records():  # one pose per person box, the reference included
        assert len(rec["predictions"]["rtmpose"]["instances"]) == len(_persons(ds.load(sid))), key
    rows = aggregate(exp, store)
    assert [r.point for r in rows] == ["uncompressed", "quality=10", "quality=90"]
    for r in rows:
        assert r.values["kp_AP"] is not None and 0.0 <= r.values["kp_AP"] <= 1.0
