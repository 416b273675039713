"""detectron2 integration against the real library: Mask R-CNN / Keypoint R-CNN with random weights
(small ResNet-18 backbone, small test size so CPU runs stay short) on real coco-mini images."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("detectron2", reason="detectron2 not installed: build it from source, see README")

import torch
import yaml
from pycocotools import mask as mask_utils

from vcm.codecs import CODECS
from vcm.data.coco import CocoDataset
from vcm.masks import MASKS
from vcm.tasks import TASKS
from vcm.tasks.base import COCO80_IDS

SMALL = {"MODEL.RESNETS.DEPTH": 18, "MODEL.RESNETS.RES2_OUT_CHANNELS": 64,
         "INPUT.MIN_SIZE_TEST": 192, "INPUT.MAX_SIZE_TEST": 256, "TEST.DETECTIONS_PER_IMAGE": 20}


@pytest.fixture(scope="module")
def sample(coco_root: str):  # type: ignore[no-untyped-def]
    ds = CocoDataset(root=coco_root, split="val2017", limit=2)
    return ds.load(ds.ids()[0])


def _seed() -> None:
    torch.manual_seed(0)


def test_mask_rcnn_head_gives_coco_results(sample) -> None:  # type: ignore[no-untyped-def]
    _seed()
    head = TASKS.build("detectron2", {"checkpoint": None, "score_threshold": 0.0, "overrides": SMALL})
    h, w = sample.image.shape[:2]
    inst = head(image=sample.image).instances
    assert 0 < len(inst) <= 20
    for r in inst:
        assert r["category_id"] in COCO80_IDS and 0.0 <= r["score"] <= 1.0
        x, y, bw, bh = r["bbox"]
        assert 0 <= x <= w and 0 <= y <= h and x + bw <= w + 1e-3 and y + bh <= h + 1e-3
        assert mask_utils.decode(r["segmentation"]).shape == (h, w)


def test_keypoint_rcnn_head_gives_17_keypoints(sample) -> None:  # type: ignore[no-untyped-def]
    _seed()
    head = TASKS.build("detectron2_keypoints", {"checkpoint": None, "score_threshold": 0.0, "overrides": SMALL})
    assert head.task_kind == "keypoints"
    inst = head(image=sample.image).instances
    assert inst and all(r["category_id"] == 1 and len(r["keypoints"]) == 51 for r in inst)


def test_mask_rcnn_mask_generator_filters_by_score_and_category(sample) -> None:  # type: ignore[no-untyped-def]
    _seed()
    params = {"checkpoint": None, "score_threshold": 0.0, "overrides": SMALL}
    gen = MASKS.build("maskrcnn", params)
    insts = gen.head(image=sample.image).instances
    m = gen(image=sample.image)
    assert m.labels is not None and m.labels.max() == len(insts) and ((m.labels > 0) == m.pixels).all()
    cat = insts[0]["category_id"]
    gen.category_ids = {cat}
    only = gen(image=sample.image)
    assert only.labels.max() == sum(r["category_id"] == cat for r in insts)
    gen.category_ids, gen.score_threshold = None, 1.01
    assert not gen(image=sample.image).pixels.any()


def test_missing_checkpoint_names_the_official_url(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation"):
        TASKS.build("detectron2", {"checkpoint": str(tmp_path / "model_final.pkl")})
    with pytest.raises(FileNotFoundError, match="neither a file nor a model-zoo name"):
        TASKS.build("detectron2", {"checkpoint": None, "config": "COCO-Nope/x.yaml"})


def test_checkpoint_is_loaded(tmp_path: Path, sample) -> None:  # type: ignore[no-untyped-def]
    """Weights saved from one random model and loaded into another give the same predictions."""
    _seed()
    a = TASKS.build("detectron2", {"checkpoint": None, "score_threshold": 0.0, "overrides": SMALL})
    path = tmp_path / "model.pth"
    torch.save({"model": a.predictor.predictor.model.state_dict()}, path)
    torch.manual_seed(1)
    b = TASKS.build("detectron2", {"checkpoint": str(path), "score_threshold": 0.0, "overrides": SMALL})
    pa, pb = a(image=sample.image).instances, b(image=sample.image).instances
    assert len(pa) == len(pb) > 0
    assert np.allclose([r["bbox"] for r in pa], [r["bbox"] for r in pb], atol=1e-3)


def test_plugin_feeds_decoded_images_to_the_model_and_records_bits(coco_root: str, tmp_path: Path) -> None:
    """detectron2's inference_on_dataset + COCOEvaluator on JPEG-compressed, GT-masked images."""
    from detectron2.data.detection_utils import read_image
    from detectron2.data.transforms import ResizeShortestEdge
    from detectron2.evaluation import COCOEvaluator
    from detectron2.modeling import build_model

    from vcm.integrations.detectron2 import build_config, evaluate_compressed, register_coco

    root = Path(coco_root)
    name = register_coco("vcm_test_val_2", str(root / "annotations" / "instances_val2017.json"),
                         str(root / "val2017"), limit=2)
    cfg = build_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml", checkpoint=None,
                       score_threshold=0.0, overrides=SMALL)
    _seed()
    model = build_model(cfg).eval()
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda _m, args: seen.extend(x["image"] for x in args[0]))
    codec = CODECS.build("jpeg", {"mode": "masked", "fill": "constant", "quality": 10})
    gt = MASKS.build("gt", {"category_ids": [1]})
    results, per_image = evaluate_compressed(model, cfg, name, codec, mask=gt,
                                             evaluator=COCOEvaluator(name, output_dir=str(tmp_path)))
    assert {"bbox", "segm", "rate"} <= set(results)
    assert results["rate"]["images"] == 2 and len(seen) == 2
    ds = CocoDataset(root=coco_root, split="val2017")
    for rec, tensor in zip(per_image, seen):
        sample = ds.load(str(rec["image_id"]))
        rgb = read_image(str(root / "val2017" / f"{rec['image_id']:012d}.jpg"), format="RGB")
        assert (rgb == sample.image).all()
        mask = gt(image=rgb, annotations=sample.annotations)  # COCO ids again: persons only
        bs = codec.encode(image=rgb, mask=mask)
        assert rec["bytes"] == len(bs.data)
        assert rec["bpp"] == pytest.approx(8 * len(bs.data) / (rgb.shape[0] * rgb.shape[1]))
        assert rec["visible_fraction"] == pytest.approx(mask.visible_fraction) and rec["visible_fraction"] < 1
        resize = ResizeShortestEdge(192, 256)
        decoded = resize.get_transform(rgb).apply_image(codec.decode(bs.data).image[:, :, ::-1])
        original = resize.get_transform(rgb).apply_image(rgb[:, :, ::-1])
        got = tensor.permute(1, 2, 0).numpy()
        assert got.shape == decoded.shape and (got == decoded).all()  # the decoded bytes reached the model
        assert np.abs(got.astype(int) - original).mean() > 2  # ... not the original image
    assert results["rate"]["bpp"] == pytest.approx(np.mean([r["bpp"] for r in per_image]))


@pytest.mark.parametrize(("head", "metric"), [("detectron2", "segm_AP"), ("detectron2_keypoints", "kp_AP")])
def test_detectron2_head_scored_through_the_graph(coco_root: str, tmp_path: Path, head: str, metric: str) -> None:
    """vcm run with a Mask R-CNN / Keypoint R-CNN head: COCO AP per point, from the common evaluation."""
    from vcm.config import load_config
    from vcm.pipeline.runner import prepare, run
    from vcm.report.aggregate import aggregate

    repo = Path(__file__).resolve().parents[1]
    cfg = {"name": "d2", "pipeline": str(repo / "pipelines" / "mask_codec_task.yaml"),
           "dataset": {"type": "coco", "root": coco_root, "limit": 2},
           "grid": {"mask": [{"type": "none"}],
                    "codec": [{"type": "jpeg", "mode": "full", "sweep": {"quality": [30]}}],
                    "task": [{"type": head, "checkpoint": None, "score_threshold": 0.0,
                              "overrides": SMALL, "label": "mrcnn"}]},
           "output_dir": str(tmp_path / "run")}
    path = tmp_path / "d2.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    exp = prepare(load_config(path))
    assert run(exp, progress=False).computed == 4
    from vcm.pipeline.store import ResultStore

    rows = aggregate(exp, ResultStore(exp.run_dir / "results.sqlite"))
    assert [r.point for r in rows] == ["uncompressed", "quality=30"]
    for r in rows:
        assert r.values[metric] is not None and 0.0 <= r.values[metric] <= 1.0


def test_integrations_demo_config_runs_with_user_checkpoints(coco_root: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/integrations_demo.yaml as shipped, with small random checkpoints standing in for the
    official ones: YOLOv8n-seg boxes -> SAM -> codecs -> Mask R-CNN, report with BD-rate anchor."""
    pytest.importorskip("segment_anything", reason="segment-anything not installed: pip install 'vcm[sam]'")
    pytest.importorskip("ai_edge_litert", reason="TFLite runtime not installed: pip install 'vcm[tflite]'")
    import importlib

    from detectron2.modeling import build_model

    from vcm.integrations.detectron2 import build_config
    from vcm.pipeline.runner import prepare, run
    from vcm.report.build import make_report

    torch.manual_seed(0)
    sam = importlib.import_module("segment_anything.build_sam")._build_sam(32, 2, 2, [1])
    torch.save(sam.state_dict(), tmp_path / "sam.pth")
    cfg = build_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml", checkpoint=None, overrides=SMALL)
    torch.save({"model": build_model(cfg).state_dict()}, tmp_path / "mrcnn.pth")
    monkeypatch.setenv("SAM_CHECKPOINT", str(tmp_path / "sam.pth"))
    monkeypatch.setenv("MASK_RCNN_CHECKPOINT", str(tmp_path / "mrcnn.pth"))

    repo = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((repo / "configs" / "integrations_demo.yaml").read_text())
    raw["dataset"]["limit"], raw["output_dir"] = 1, str(tmp_path / "run")
    raw["grid"]["mask"][0].update(model_type="custom", arch={"embed_dim": 32, "depth": 2, "heads": 2,
                                                             "global_attn": [1]})
    raw["grid"]["task"][0].update(overrides=SMALL, score_threshold=0.0)  # the small stand-in model
    for spec in raw["grid"]["codec"]:
        values = next(iter(spec["sweep"].values()))
        spec["sweep"] = {next(iter(spec["sweep"])): [values[0], values[-1]]}
        if spec["type"] == "gitssic":
            spec["sweep"]["checkpoint"] = [str(repo / p) for p in spec["sweep"]["checkpoint"]]
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    from vcm.config import load_config

    summary = run(prepare(load_config(path)), progress=False)
    assert summary.computed == 1 + 3 * 2  # reference + 3 codecs x 2 points, one image
    files = make_report(summary.run_dir)
    text = files["md"].read_text()
    assert "segm_AP" in text and "jpeg-full" in text
