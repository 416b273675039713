"""SAM mask generator with the real segment-anything library and a tiny SAM the test saves itself."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("segment_anything", reason="segment-anything not installed: pip install 'vcm[sam]'")

import torch

from vcm.data.coco import CocoDataset
from vcm.masks import MASKS
from vcm.types import Mask

ARCH = {"embed_dim": 32, "depth": 2, "heads": 2, "global_attn": [1]}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init SAM with a 2-block, 32-wide ViT image encoder (the real mask decoder)."""
    import importlib

    builders = importlib.import_module("segment_anything.build_sam")
    torch.manual_seed(0)
    model = builders._build_sam(32, 2, 2, [1])
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def sample(coco_root: str):  # type: ignore[no-untyped-def]
    ds = CocoDataset(root=coco_root, split="val2017", limit=5)
    s = max((ds.load(i) for i in ds.ids()), key=lambda s: len(s.annotations or []))
    return s.image[:192, :256].copy(), [a for a in s.annotations if not a.get("iscrowd")], s


def _sam(ckpt: Path, **kw: object):  # type: ignore[no-untyped-def]
    return MASKS.build("sam", {"checkpoint": str(ckpt), "model_type": "custom", "arch": ARCH, **kw})


def test_automatic_mode_end_to_end(ckpt: Path, sample) -> None:  # type: ignore[no-untyped-def]
    image = sample[0]
    gen = _sam(ckpt, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, max_instances=5)
    m = gen(image=image)
    assert m.shape == image.shape[:2] and m.labels is not None
    assert 1 <= m.labels.max() <= 5
    assert ((m.labels > 0) == m.pixels).all()
    assert (gen(image=image).labels == m.labels).all()  # deterministic
    assert _sam(ckpt, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                max_instances=1)(image=image).labels.max() == 1


def test_box_prompts_from_another_mask_node(ckpt: Path, sample) -> None:  # type: ignore[no-untyped-def]
    """Boxes from the instances of a ground-truth mask node; SAM refines one mask per box."""
    _, _, s = sample
    image = s.image
    prompts = MASKS.build("gt", {})(image=image, annotations=s.annotations)
    n = len(np.unique(prompts.labels[prompts.labels > 0]))
    m = _sam(ckpt, clip_to_box=True)(image=image, prompts=prompts)
    from vcm.masks.base import instance_boxes

    boxes = instance_boxes(prompts)
    assert len(boxes) == n
    assert m.labels.max() <= n
    for k in np.unique(m.labels[m.labels > 0]):  # clipped: every instance stays inside its box
        x0, y0, x1, y1 = boxes[k - 1].astype(int)
        ys, xs = np.nonzero(m.labels == k)
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
    one = Mask.from_pixels(prompts.labels == 1, 16, (prompts.labels == 1).astype(np.int32))
    assert _sam(ckpt)(image=image, prompts=one).labels.max() <= 1
    with pytest.raises(ValueError, match="does not match"):
        _sam(ckpt)(image=image, prompts=Mask.full(10, 10))


def test_missing_checkpoint_names_the_official_url(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sam_vit_b_01ec64.pth"):
        MASKS.build("sam", {"checkpoint": str(tmp_path / "nope.pth")})
    with pytest.raises(ValueError, match="arch"):
        MASKS.build("sam", {"checkpoint": __file__, "model_type": "custom"})


def test_sam_refines_yolo_boxes_inside_a_pipeline(ckpt: Path, tmp_path: Path, coco_root: str) -> None:
    """Graph: YOLOv8n-seg instances -> box prompts -> SAM -> JPEG (masked) -> YOLOv8n-seg head."""
    pytest.importorskip("ai_edge_litert", reason="TFLite runtime not installed: pip install 'vcm[tflite]'")
    import yaml

    from vcm.config import load_config
    from vcm.pipeline.runner import prepare, run

    repo = Path(__file__).resolve().parents[1]
    cfg = {
        "name": "sam", "pipeline": str(repo / "pipelines" / "prompted_mask_codec_task.yaml"),
        "dataset": {"type": "coco", "root": coco_root, "limit": 2},
        "grid": {"prompt": [{"type": "yolo_seg", "label": "yolo"}],
                 "mask": [{"type": "sam", "checkpoint": str(ckpt), "model_type": "custom", "arch": ARCH,
                           "clip_to_box": True, "label": "sam"}],
                 "codec": [{"type": "jpeg", "mode": "masked", "fill": "constant", "sweep": {"quality": [50]}}],
                 "task": [{"type": "yolov8_seg", "label": "seg"}]},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "sam.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    summary = run(prepare(load_config(path)), progress=False)
    assert summary.computed == 2 * 2  # 2 images x (1 point + the uncompressed reference)
    from vcm.pipeline.store import ResultStore

    store = ResultStore(summary.run_dir / "results.sqlite")
    recs = [r for _, key, r in store.records() if key != "@reference"]
    store.close()
    assert len(recs) == 2 and all(r["bytes"]["side"] > 0 and r["bpp"] > 0 for r in recs)
    assert all(0.0 < r["visible_fraction"] < 1.0 for r in recs)  # SAM's masks, not the full frame
