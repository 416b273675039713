"""Wrong wiring fails when the graph is built, before any image is processed."""

from pathlib import Path

import pytest
import yaml

from vcm.config import parse_experiment
from vcm.pipeline.graph import Graph, GraphError
from vcm.pipeline.runner import prepare
from vcm.registry import RegistryError

from .conftest import tiny_config


def _write(tmp_path: Path, nodes: dict) -> str:
    p = tmp_path / "pipe.yaml"
    p.write_text(yaml.safe_dump({"nodes": nodes}))
    return str(p)


BASE = {
    "mask": {"kind": "mask", "inputs": {"image": "image", "annotations": "annotations", "sample_id": "sample_id"}},
    "encode": {"kind": "encode", "component": "codec", "inputs": {"image": "image", "mask": "mask"}},
    "decode": {"kind": "decode", "component": "codec", "inputs": {"bitstream": "encode"}},
    "task": {"kind": "task", "inputs": {"image": "decode"}},
}


def _prepare(tmp_path: Path, coco_root: str, nodes: dict | None = None, **over: object):
    cfg = tiny_config(tmp_path, coco_root, **over)
    if nodes is not None:
        cfg["pipeline"] = _write(tmp_path, nodes)
    return prepare(parse_experiment(cfg))


def test_valid_graph_builds(tmp_path: Path, coco_root: str) -> None:
    exp = _prepare(tmp_path, coco_root, BASE)
    assert [n.name for n in exp.graph.nodes] == ["mask", "encode", "decode", "task"]
    assert len(exp.plan.points) == 4 and exp.plan.series() == ["jpeg-full", "gt/jpeg-masked"]
    assert dict(exp.plan.aliases) == {"none/jpeg-full": "jpeg-full", "none/jpeg-masked": "jpeg-full",
                                      "gt/jpeg-full": "jpeg-full"}


def test_one_series_per_distinct_computation(tmp_path: Path, coco_root: str) -> None:
    """A full-frame codec does not depend on the mask, nor on what the mask depends on (a
    structure chain); a masked codec under the full mask is the full-frame codec when the grid
    has it, else it keeps its own series; different fills under a real mask stay apart."""
    repo = Path(__file__).resolve().parents[1]
    grid = {"structure": [{"type": "gt"}, {"type": "none", "label": "nostruct"}],
            "mask": [{"type": "none"}, {"type": "damask", "visible_ratio": 0.5}],
            "codec": [{"type": "jpeg", "mode": "full", "sweep": {"quality": [20, 60]}},
                      {"type": "jpeg", "mode": "masked", "fill": "blur", "label": "blur", "sweep": {"quality": [20, 60]}},
                      {"type": "jpeg", "mode": "masked", "fill": "mean", "label": "mean", "sweep": {"quality": [20, 60]}}],
            "task": [{"type": "yolov8_seg"}]}
    exp = prepare(parse_experiment({**tiny_config(tmp_path, coco_root), "grid": grid,
                                    "pipeline": str(repo / "pipelines" / "structured_mask_codec_task.yaml")}))
    assert exp.plan.series() == ["jpeg-full", "gt/damask/blur", "gt/damask/mean", "nostruct/damask/blur",
                                 "nostruct/damask/mean"]
    assert exp.plan.resolve("nostruct/none/mean") == "jpeg-full" and exp.plan.resolve("gt/none/jpeg-full") == "jpeg-full"
    alone = dict(grid, codec=grid["codec"][1:], structure=grid["structure"][:1])
    exp = prepare(parse_experiment({**tiny_config(tmp_path, coco_root), "grid": alone,
                                    "pipeline": str(repo / "pipelines" / "structured_mask_codec_task.yaml")}))
    assert exp.plan.series() == ["none/blur", "damask/blur", "damask/mean"]  # no full-frame series to alias to
    assert exp.plan.resolve("none/mean") == "none/blur"


@pytest.mark.parametrize("change, message", [
    ({"task": {"kind": "task", "inputs": {"image": "mask"}}}, "expects image, but 'mask' gives mask"),
    ({"decode": {"kind": "decode", "component": "codec", "inputs": {"bitstream": "image"}}}, "expects bitstream"),
    ({"task": {"kind": "task", "inputs": {"image": "decoder"}}}, "'decoder', which is neither a node"),
    ({"task": {"kind": "task", "inputs": {}}}, "input 'image' (image) is not wired"),
    ({"mask": {"kind": "mask", "inputs": {"image": "task"}}}, "cycle"),
    ({"task": {"kind": "tusk", "inputs": {"image": "decode"}}}, "kind must be one of"),
])
def test_wrong_wiring_fails_at_build(tmp_path: Path, coco_root: str, change: dict, message: str) -> None:
    with pytest.raises(GraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _prepare(tmp_path, coco_root, {**BASE, **change})


def test_bad_components_fail_at_build(tmp_path: Path, coco_root: str) -> None:
    cfg = tiny_config(tmp_path, coco_root)
    cfg["grid"]["codec"][0]["qualty"] = 3
    with pytest.raises(RegistryError, match="unknown parameter.*'qualty'.*allowed: quality"):
        prepare(parse_experiment(cfg))
    cfg = tiny_config(tmp_path, coco_root)
    cfg["grid"]["codec"].append({"type": "jpg"})
    with pytest.raises(KeyError, match="did you mean 'jpeg'"):
        prepare(parse_experiment(cfg))
    cfg = tiny_config(tmp_path, coco_root)
    cfg["grid"]["extra"] = [{"type": "none"}]
    with pytest.raises(GraphError, match="grid entry 'extra' is used by no node"):
        prepare(parse_experiment(cfg))


def test_gt_mask_on_unlabeled_dataset_fails_at_build(tmp_path: Path, assets: Path) -> None:
    cfg = tiny_config(tmp_path, "", dataset={"type": "folder", "root": str(assets / "data" / "kodak"), "limit": 1})
    with pytest.raises(GraphError, match="needs 'annotations', which the dataset does not provide"):
        prepare(parse_experiment(cfg))


def test_missing_template_and_unknown_template_key(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="not found"):
        Graph.load(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("nodes: {}\nnodez: 1\n")
    with pytest.raises(GraphError, match="unknown key"):
        Graph.load(tmp_path / "p.yaml")


def test_exclude_skips_matching_combinations(tmp_path: Path, coco_root: str) -> None:
    exp = _prepare(tmp_path, coco_root, BASE, exclude=[{"mask": "gt", "codec": "*-full"},
                                                       {"mask": ["none"], "codec": "jpeg-masked"}])
    assert exp.plan.series() == ["jpeg-full", "gt/jpeg-masked"]
    with pytest.raises(Exception, match="unknown grid key"):
        _prepare(tmp_path, coco_root, BASE, exclude=[{"masks": "gt"}])
    with pytest.raises(Exception, match="no points"):
        _prepare(tmp_path, coco_root, BASE, exclude=[{"mask": "*"}])


def test_point_key_changes_when_a_named_file_changes(tmp_path: Path) -> None:
    """Retrained weights at the same path must not be served from the results cache."""
    import os

    from vcm.pipeline.plan import Choice

    ckpt = tmp_path / "q1.pth"
    ckpt.write_bytes(b"old weights")
    choice = Choice("emic", (("checkpoint", str(ckpt)),), "emic")
    before = choice.ident
    assert Choice("emic", (("checkpoint", str(ckpt)),), "emic").ident == before  # stable
    ckpt.write_bytes(b"new weights, longer")
    os.utime(ckpt, ns=(1, 1))
    assert choice.ident != before
    jpeg = Choice("jpeg", (("quality", 10),), "jpeg").ident  # non-path values hash as before
    assert jpeg != Choice("jpeg", (("quality", 25),), "jpeg").ident


def test_dedup_is_order_free_and_exact(tmp_path: Path, coco_root: str) -> None:
    """The full-frame series keeps its name whatever the grid order; a series is an alias only
    of one that computes exactly the same points; with only the mask varying, a full-frame
    codec is named by the codec; a sweep over `mode` keeps masks apart."""
    def plan(grid: dict) -> object:
        return prepare(parse_experiment({**tiny_config(tmp_path, coco_root), "grid": grid})).plan

    task = [{"type": "yolov8_seg"}]
    full = {"type": "jpeg", "mode": "full", "sweep": {"quality": [20, 60]}}
    masked = {"type": "jpeg", "mode": "masked", "sweep": {"quality": [20, 60]}}
    p = plan({"mask": [{"type": "none"}, {"type": "gt"}], "codec": [masked, full], "task": task})
    assert p.series() == ["jpeg-full", "gt/jpeg-masked"] and p.resolve("none/jpeg-masked") == "jpeg-full"
    fixed = {"type": "jpeg", "mode": "full", "quality": 20, "label": "j20"}
    p = plan({"mask": [{"type": "none"}], "codec": [full, fixed], "task": task})
    assert p.series() == ["jpeg-full", "j20"]  # one shared point is not the same series
    p = plan({"mask": [{"type": "none"}, {"type": "gt"}], "codec": [full], "task": task})
    assert p.series() == ["jpeg-full"] and len(p.points) == 2
    swept = {"type": "jpeg", "quality": 30, "sweep": {"mode": ["full", "masked"]}}
    p = plan({"mask": [{"type": "gt"}, {"type": "damask", "visible_ratio": 0.5}], "codec": [swept], "task": task})
    assert p.series() == ["gt", "damask"] and len(p.points) == 4
