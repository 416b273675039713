"""Generic semantic head: torch modules (factory + state dict, TorchScript) and TFLite, label spaces
mapped to COCO, mIoU through the graph."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from vcm.data.coco import CocoDataset
from vcm.metrics.segmentation import IGNORE
from vcm.tasks import TASKS
from vcm.tasks.semantic import COCO_TO_VOC, VOC_CLASSES, LabelSpace

LRASPP = "torchvision.models.segmentation:lraspp_mobilenet_v3_large"
ARGS = {"num_classes": 2, "weights": None, "weights_backbone": None}
PERSON = {"classes": ["background", "person"], "coco_map": {1: 1}}


@pytest.fixture(scope="module")
def sample(coco_root: str):  # type: ignore[no-untyped-def]
    ds = CocoDataset(root=coco_root, split="val2017", limit=3)
    return max((ds.load(i) for i in ds.ids()), key=lambda s: len(s.annotations or []))


@pytest.fixture(scope="module")
def lraspp_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sem") / "lraspp.pth"
    torch.save(lraspp_mobilenet_v3_large(**ARGS).state_dict(), path)
    return path


def test_label_space_ground_truth(sample) -> None:  # type: ignore[no-untyped-def]
    h, w = sample.image.shape[:2]
    person = LabelSpace.of(PERSON["classes"], PERSON["coco_map"])
    gt = person.ground_truth(sample.annotations, h, w)
    assert set(np.unique(gt)) <= {0, 1, IGNORE} and (gt == 1).any()
    others = [a for a in sample.annotations if a["category_id"] != 1 and not a.get("iscrowd")]
    assert (gt == IGNORE).any() == bool(others)  # objects the model has no class for are ignored
    voc = LabelSpace.of("voc", None)
    assert voc.classes == VOC_CLASSES and voc.coco_to_class == COCO_TO_VOC
    assert ((voc.ground_truth(sample.annotations, h, w) == 15) == (gt == 1)).all()  # person = VOC 15
    with pytest.raises(ValueError, match="outside"):
        LabelSpace.of(["background", "person"], {1: 2})
    with pytest.raises(ValueError, match="coco_map"):
        LabelSpace.of(["background", "person"], None)


def test_torch_factory_head_loads_weights(sample, lraspp_weights: Path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)  # a different init: the weights file must decide the output
    head = TASKS.build("semantic", {"factory": LRASPP, "factory_args": ARGS, "weights": str(lraspp_weights),
                                    "max_size": 256, **PERSON})
    sem = head(image=sample.image).semantic
    assert sem.shape == sample.image.shape[:2] and sem.dtype == np.uint8 and sem.max() <= 1
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    net = lraspp_mobilenet_v3_large(**ARGS)
    net.load_state_dict(torch.load(lraspp_weights))
    assert sum(np.abs(p.detach().numpy() - q.detach().numpy()).sum()
               for p, q in zip(net.parameters(), head.net.parameters())) == 0


def test_torchscript_head_matches_its_module(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1))
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.trace(net.eval(), torch.zeros(1, 3, 32, 32)), str(path))
    head = TASKS.build("semantic", {"model": str(path), "max_size": 128, **PERSON})
    sem = head(image=sample.image).semantic
    h, w = sample.image.shape[:2]
    r = 128 / max(h, w)
    small = cv2.resize(sample.image, (round(w * r), round(h * r))).astype(np.float32)
    x = torch.from_numpy(((small - head.mean) / head.std).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.inference_mode():
        ref = torch.nn.functional.interpolate(net(x), size=sem.shape, mode="bilinear").argmax(1)[0].numpy()
    assert (sem == ref).mean() > 0.999
    with pytest.raises(ValueError, match="exactly one"):
        TASKS.build("semantic", {"model": str(path), "factory": LRASPP, **PERSON})


def test_class_beyond_the_label_space_is_an_error(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    net = torch.nn.Conv2d(3, 5, 1)
    path = tmp_path / "five.pt"
    torch.jit.save(torch.jit.trace(net.eval(), torch.zeros(1, 3, 8, 8)), str(path))
    with torch.no_grad():
        net.bias.copy_(torch.tensor([0, 0, 0, 0, 100.0]))
    torch.jit.save(torch.jit.trace(net.eval(), torch.zeros(1, 3, 8, 8)), str(path))
    head = TASKS.build("semantic", {"model": str(path), "max_size": 64, **PERSON})
    with pytest.raises(ValueError, match="label space has 2 classes"):
        head(image=sample.image)


def test_semantic_head_scored_through_the_graph(coco_root: str, tmp_path: Path, lraspp_weights: Path) -> None:
    from vcm.config import load_config
    from vcm.pipeline.runner import prepare, run
    from vcm.pipeline.store import ResultStore
    from vcm.report.aggregate import aggregate

    repo = Path(__file__).resolve().parents[1]
    cfg = {"name": "sem", "pipeline": str(repo / "pipelines" / "mask_codec_task.yaml"),
           "dataset": {"type": "coco", "root": coco_root, "limit": 2},
           "grid": {"mask": [{"type": "none"}],
                    "codec": [{"type": "jpeg", "mode": "full", "sweep": {"quality": [5, 90]}}],
                    "task": [{"type": "semantic", "factory": LRASPP, "factory_args": ARGS,
                              "weights": str(lraspp_weights), "max_size": 256, "label": "seg", **PERSON}]},
           "output_dir": str(tmp_path / "run")}
    path = tmp_path / "sem.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    exp = prepare(load_config(path))
    run(exp, progress=False)
    rows = aggregate(exp, ResultStore(exp.run_dir / "results.sqlite"))
    assert len(rows) == 3
    for r in rows:
        assert 0.0 <= r.values["mIoU"] <= 1.0 and "IoU_person" in r.values
