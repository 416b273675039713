"""Complexity: MACs and parameters counted per call (exact on known layers, close to the published
figures of the TFLite heads), once per component and image size in a run, shown per series and
head in the report; the CTC export carries them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from vcm.cli import main
from vcm.metrics.complexity import counted, is_network, tflite_cost
from vcm.pipeline.plan import Choice
from vcm.pipeline.worker import Components

from .conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]


class TwoHalves(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dec = torch.nn.Conv2d(8, 3, 5, padding=2, bias=False)


def test_a_call_counts_its_own_macs_and_parameters() -> None:
    net, x = TwoHalves(), torch.rand(1, 3, 16, 24)
    y, enc = counted(lambda: net.enc(x), 16 * 24)
    assert enc.macs == 16 * 24 * 8 * 3 * 3 * 3 and enc.params == 8 * 27 + 8  # only the encoder's half
    _, dec = counted(lambda: net.dec(y), 16 * 24)
    assert dec.macs == 16 * 24 * 3 * 8 * 5 * 5 and dec.params == 3 * 8 * 25
    assert enc.kmac_per_pixel == pytest.approx(8 * 27 / 1e3) and enc.counter == "torch FlopCounterMode"


def test_a_counter_failure_never_stops_the_call_and_parameters_stay_trainable() -> None:
    from vcm.metrics.complexity import measure

    class Holder:
        def __init__(self) -> None:
            self.net = TwoHalves()

    holder = Holder()

    def boom() -> None:
        raise RuntimeError("unsupported under the counter")

    with pytest.warns(UserWarning, match="Holder: MACs not counted .RuntimeError: unsupported"):
        assert measure(holder, boom, 8, 8) is None
    assert all(p.requires_grad for p in holder.net.parameters())  # frozen for the count only
    cost = measure(holder, lambda: holder.net.enc.weight * 2, 8, 8)  # a parameter used as is: no hook to fail
    assert cost is not None and cost.params == 8 * 27 and all(p.requires_grad for p in holder.net.parameters())


@pytest.mark.parametrize(("model", "gmacs", "mparams"), [
    ("yolov8n-seg/yolov8n-seg_int8.tflite", 12.6 / 2, 3.4),  # Ultralytics: 12.6 GFLOPs (2 x MACs), 3.4 M
    ("yolo11n-pose/yolo11n-pose_int8.tflite", 7.6 / 2, 2.9),  # Ultralytics: 7.6 GFLOPs, 2.9 M
])
def test_tflite_heads_count_close_to_their_published_cost(assets: Path, model: str, gmacs: float, mparams: float) -> None:
    """The operator-graph count against Ultralytics' published figures at 640 x 640 (ours also
    counts the biases and int8 export's extra weights, so parameters run slightly over)."""
    macs, params, counter = tflite_cost(str(assets / "models" / model))
    assert 0.9 < macs / 1e9 / gmacs < 1.05 and 0.95 < params / 1e6 / mparams < 1.2 and "TFLite" in counter


def test_each_component_is_counted_once_per_image_size(coco_root: str) -> None:
    choice = Choice("emic", (("checkpoint", str(REPO / "vcm/weights/emic-tiny/q1.pth")),), "emic")
    jpeg = Choice("jpeg", (("quality", 50),), "jpeg")
    from vcm.types import Mask

    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    mask = Mask.full(64, 96)
    for mode, expected in (("per_size", [True, False, True]), ("once", [True, False, False]), ("off", [False] * 3)):
        comps = Components(torch.device("cpu"), mode)
        codec = comps.get("encode", choice)
        calls = [comps.measure("encode", choice, size, lambda: codec.encode(image=image, mask=mask)) for size in
                 ((64, 96), (64, 96), (96, 64))]
        assert [c is not None for c in calls] == expected, mode
    assert calls[0] is None and not is_network(comps.get("encode", jpeg)) and comps.measure(
        "encode", jpeg, (64, 96), lambda: None) is None
    cost = Components(torch.device("cpu")).measure("encode", choice, (64, 96), lambda: codec.encode(image=image, mask=mask))
    assert cost is not None and cost.macs > 0 and 0 < cost.params < sum(p.numel() for p in codec.model.parameters())


def test_report_and_ctc_export_show_complexity_per_series_and_head(tmp_path: Path, coco_root: str, capsys) -> None:
    import yaml

    cfg = tiny_config(tmp_path, coco_root, dataset={"type": "coco", "root": coco_root, "limit": 2})
    cfg["grid"]["mask"] = [{"type": "gt"}]
    cfg["grid"]["codec"] = [{"type": "jpeg", "mode": "full", "sweep": {"quality": [30, 70]}},
                            {"type": "emic", "label": "emic", "sweep": {"checkpoint": [
                                str(REPO / f"vcm/weights/emic-tiny/q{i}.pth") for i in (1, 3)]}}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(tmp_path / "c.yaml"), "--no-progress"]) == 0
    summary = __import__("json").loads((tmp_path / "run" / "report" / "summary.json").read_text())["complexity"]
    rows = {r["series"]: r for r in summary["series"]}
    assert rows["jpeg-full"]["encoder kMAC/px"] == "n/a (not a network)" and float(rows["jpeg-full"]["encode ms"]) > 0
    assert float(rows["emic"]["encoder kMAC/px"].split()[0]) > 0.5 and rows["emic"]["decoder params"].endswith(" M")
    (head,) = summary["tasks"]
    assert head["task head"] == "task:seg" and 15 < float(head["kMAC/px"]) < 40 and head["params"] == "3.80 M"
    assert "## Complexity" in (tmp_path / "run" / "report" / "report.md").read_text()
    capsys.readouterr()
    assert main(["export", str(tmp_path / "run"), "--format", "ctc"]) == 0
    assert "4 rows" in capsys.readouterr().out
    table = list(csv.DictReader((tmp_path / "run" / "ctc.csv").open()))
    assert {r["class"] for r in table} == {"all"} and all(len(r["decoded_md5"]) == 32 for r in table)
    emic = [r for r in table if r["series"] == "emic"]
    assert all(float(r["kmac_px_encode"]) > 0 and float(r["segm_AP"]) >= 0 and float(r["psnr"]) > 5 for r in emic)  # the whole image: the masked codec leaves the background dark
    assert all(r["kmac_px_encode"] == "" for r in table if r["series"] == "jpeg-full")
